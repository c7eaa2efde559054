"""Contact sheets of a leave-one-source-out fold's mistakes, to audit them by eye.

For each confusion (true -> predicted) the most confident mistakes of the held-out faces are tiled
into one PNG, with a CSV of every mistake (image, box, true, predicted, probabilities), so a person
can tell label noise from hard negatives (hands, food, scarves, beards, profiles, blur). The sheets
hold faces of the held-out dataset: write them under ``runs/`` (git-ignored), never into the repo.

    python benchmarks/loso_error_sheets.py --fold runs/loso_s96/ilc2021-scenes --out runs/loso_errors
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskwatch import LABELS  # noqa: E402

TILE = 96
COLUMNS = 8


def sheet(crops: list[np.ndarray]) -> np.ndarray:
    tiles = [cv2.resize(c, (TILE, TILE), interpolation=cv2.INTER_AREA)[:, :, ::-1] for c in crops]
    tiles += [np.zeros((TILE, TILE, 3), np.uint8)] * (-len(tiles) % COLUMNS)
    return np.vstack([np.hstack(tiles[i:i + COLUMNS]) for i in range(0, len(tiles), COLUMNS)])


def main(argv=None) -> int:
    from train.data import load_manifest
    from train.evaluate import load_predictor, read_manifest_split

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fold", type=Path, required=True, help="one held-out folder of a loso run (data/, fit/best.keras)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the sheets and mistakes.csv (under runs/)")
    ap.add_argument("--per-sheet", type=int, default=64, help="mistakes per sheet, most confident first")
    args = ap.parse_args(argv)
    data = args.fold / "data"
    predictor = load_predictor(args.fold / "fit" / "best.keras")
    ds = read_manifest_split(data, "test", predictor.input_size, predictor.margin, cache_dir=data / "cache")
    rows = [r for r in load_manifest(data / "manifest.csv") if r["split"] == "test"]
    x = ds.at_size(predictor.input_size)
    probs = predictor.predict(x, calibrated=False)
    pred = probs.argmax(axis=1)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "mistakes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "x1", "y1", "x2", "y2", "face_w", "true", "predicted", *(f"p_{k}" for k in LABELS)])
        for i in np.where(pred != ds.y)[0]:
            r = rows[i]
            w.writerow([r["path"], r["x1"], r["y1"], r["x2"], r["y2"], r["face_w"], LABELS[ds.y[i]], LABELS[pred[i]],
                        *(f"{v:.4f}" for v in probs[i])])
    for t, p in ((t, p) for t in range(len(LABELS)) for p in range(len(LABELS)) if t != p):
        idx = np.where((ds.y == t) & (pred == p))[0]
        if not len(idx):
            continue
        idx = idx[np.argsort(-probs[idx, p])][:args.per_sheet]
        path = args.out / f"{LABELS[t]}_as_{LABELS[p]}.png"
        cv2.imwrite(str(path), sheet([x[i] for i in idx]))
        print(f"{LABELS[t]} -> {LABELS[p]}: {int(((ds.y == t) & (pred == p)).sum())} faces; sheet {path}")
    print(f"mistakes: {args.out / 'mistakes.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

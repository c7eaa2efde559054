"""Sample sheet of ``train.synthesis`` for the model card: one column per real unmasked face, rows
target / over_nose / under_nose / mouth_only / chin (one donor mask per column, only its height changes).

Shows only faces whose licence allows showing them: by default targets *and* donors from
``facemask-scenes`` (Kaggle "Face Mask Detection", CC0 1.0). ``ilc2021-scenes`` states no licence
and is not shown. Tiles are the app's crop (``maskwatch.crop.crop_face``, margin 0.2) of the
composite, enlarged bilinearly like a small face in the app.

    python scripts/synthesis_sample_sheet.py --data runs/pool --out models/synthesis_samples.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maskwatch.crop import DEFAULT_MARGIN, crop_face  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402
from train import synthesis as S  # noqa: E402
from train.data import load_manifest  # noqa: E402

ROWS = ("target", "over_nose", "under_nose", "mouth_only", "chin")
SHOWABLE = ("facemask-scenes",)
"""Sources whose licence allows reproducing their faces in the repository (CC0)."""


def _faces(rows, label, min_w, cache):
    """(row, image, keypoints) of plausible train faces with this label, at least ``min_w`` px wide."""
    out = []
    for r in rows:
        if r["label"] != label or r["split"] != "train" or r["x1"] is None or r["face_w"] < min_w:
            continue
        img = cv2.imread(r["path"], cv2.IMREAD_COLOR)
        if img is None:
            continue
        box = (r["x1"], r["y1"], r["x2"], r["y2"])
        kps = S.match_keypoints(box, cache.get(r["path"], img))
        if kps is not None and S.plausible_keypoints(kps, box, max_yaw=0.2) is None:
            out.append((r, img, kps))
    return out


def sheet(data: str, out: str, sources=SHOWABLE, columns: int = 7, tile: int = 96, seed: int = 0,
          min_target: float = 40.0, cache: str = "runs/keypoints/retina.json") -> Path:
    rows = [r for r in load_manifest(data) if r["source"] in sources]
    kc = S.KeypointCache(cache)
    try:
        targets = _faces(rows, "without_mask", min_target, kc)
        donors = []
        for r, img, kps in _faces(rows, "with_mask", 40.0, kc):
            d, _ = S.extract_donor(img, kps, r["face_w"])
            if d is not None:
                d.source, d.path = r["source"], S._face_ref(r)
                donors.append(d)
    finally:
        kc.close()
    if not targets or not donors:
        raise MaskwatchError(f"no usable faces of {', '.join(sources)} in {data} "
                             f"({len(targets)} targets, {len(donors)} donors)")
    rng = np.random.default_rng(seed)
    picked = [targets[i] for i in sorted(rng.choice(len(targets), min(columns, len(targets)), replace=False))]
    label_w = 118
    grid = np.full((len(ROWS) * tile, label_w + len(picked) * tile, 3), 255, np.uint8)
    for c, (r, img, kps) in enumerate(picked):
        donor = S.pick_donor(donors, S.yaw_of(kps), r["face_w"], rng)
        box = (r["x1"], r["y1"], r["x2"], r["y2"])
        for i, name in enumerate(ROWS):
            pos = S.POSITIONS.get(name)
            top = None if pos is None else sum(pos.top) / 2
            composite, _ = S.compose(img, kps, donor, top)
            crop = crop_face(composite, box, tile, DEFAULT_MARGIN, bgr=True)
            grid[i * tile:(i + 1) * tile, label_w + c * tile:label_w + (c + 1) * tile] = crop[..., ::-1]
        print(f"column {c + 1}: target {S._face_ref(r)}; donor {donor.path}{' (mirrored)' if donor.flipped else ''}")
    for i, name in enumerate(ROWS):
        label = "without_mask (real)" if name == "target" else S.POSITIONS[name].label.replace("mask_worn_incorrectly", "incorrect")
        y = i * tile + tile // 2
        cv2.putText(grid, name, (6, y - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(grid, label, (6, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # a 256-colour palette keeps the sheet small enough for the repository (photos: ~3x smaller)
    Image.fromarray(grid[..., ::-1]).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="prepare output folder holding facemask-scenes faces")
    p.add_argument("--out", default="models/synthesis_samples.png")
    p.add_argument("--sources", default=",".join(SHOWABLE), help="sources whose faces may be shown (default: CC0 only)")
    p.add_argument("--columns", type=int, default=7)
    p.add_argument("--tile", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="runs/keypoints/retina.json")
    args = p.parse_args(argv)
    try:
        path = sheet(args.data, args.out, tuple(s for s in args.sources.split(",") if s), args.columns, args.tile,
                     args.seed, cache=args.cache)
    except MaskwatchError as e:
        print(f"synthesis_sample_sheet: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build the real clips' ground truth (``<clip>.csv`` + ``<clip>.people.csv``) from ``real.toml``.

    python benchmarks/truth/make_truth.py                 # every clip in real.toml
    python benchmarks/truth/make_truth.py --sheets runs/truth   # also a crop sheet per tracklet, to check by eye

A detector pass (RetinaFace at ``[pass] min_score``, every frame, no motion gating) linked into
tracklets by the centroid tracker gives the boxes; ``real.toml`` says which tracklet is which person,
which are not faces, and each person's label by frame range. Gaps of up to ``max_gap`` frames inside
a person's tracklets are filled by linear interpolation. The boxes are the detector's (the people
in these clips are found on nearly every frame; see README.md for what was checked by eye).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from maskwatch.config import Config, DetectorConfig, TrackerConfig  # noqa: E402
from maskwatch.pipeline import Pipeline  # noqa: E402

FIELDS = ["frame", "person", "x1", "y1", "x2", "y2", "label", "visible"]


def data_root() -> Path:
    import os

    return Path(os.environ.get("MASKWATCH_DATA", ROOT.parent / "shared" / "data"))


def truth_name(clip: str) -> str:
    return Path(clip).stem


def detector_pass(path: Path, min_score: float) -> dict[int, list[tuple[int, np.ndarray]]]:
    """tracklet id -> [(frame, box)] from the detector + centroid tracker."""
    config = Config(source=str(path), interval_s=3600,
                    detector=DetectorConfig(min_score=min_score, options={"motion": False}),
                    tracker=TrackerConfig(kind="centroid")).validate()
    out: dict[int, list] = {}
    with Pipeline(config) as pipeline:
        for r in pipeline:
            if r.frame is None:
                continue
            for k in range(len(r.faces)):
                out.setdefault(int(r.faces.track_id[k]), []).append((r.frame.index, r.faces.xyxy[k].copy()))
    return out


def label_at(ranges, frame: int) -> str | None:
    for a, b, label in ranges:
        if a <= frame <= b:
            return label
    return None


def build(clip: str, spec: dict, pass_cfg: dict, sheets: Path | None) -> tuple[list[dict], list[dict]]:
    path = data_root() / clip
    tracklets = detector_pass(path, float(pass_cfg["min_score"]))
    if sheets is not None:
        write_sheet(path, tracklets, sheets / f"{truth_name(clip)}_tracklets.png")
    mapping = {int(k): int(v) for k, v in spec["tracklets"].items()}
    max_gap = int(pass_cfg["max_gap"])
    rows = []
    for pid, person in sorted((int(k), v) for k, v in spec["people"].items()):
        obs = sorted(fb for t, fbs in tracklets.items() if mapping.get(t) == pid for fb in fbs)
        if not obs:
            raise SystemExit(f"{clip}: person {pid} has no tracklet")
        frames = [f for f, _ in obs]
        boxes = np.stack([b for _, b in obs])
        for i, f in enumerate(frames):
            rows.append(row(f, pid, boxes[i], label_at(person["labels"], f)))
            if i + 1 < len(frames) and 1 < frames[i + 1] - f <= max_gap + 1:
                for g in range(f + 1, frames[i + 1]):
                    a = (g - f) / (frames[i + 1] - f)
                    rows.append(row(g, pid, boxes[i] * (1 - a) + boxes[i + 1] * a, label_at(person["labels"], g)))
    rows.sort(key=lambda r: (r["frame"], r["person"]))
    people = [{"person": int(k), "kind": v["kind"], "note": v.get("note", "")} for k, v in sorted(spec["people"].items(), key=lambda kv: int(kv[0]))]
    return rows, people


def row(frame: int, pid: int, box, label) -> dict:
    return {"frame": frame, "person": pid, **{k: round(float(v), 1) for k, v in zip(("x1", "y1", "x2", "y2"), box)},
            "label": label or "transition", "visible": 1}


def write_sheet(path: Path, tracklets: dict, out: Path) -> None:
    import cv2

    out.parent.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(path))
    images, i = {}, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        images[i] = img
        i += 1
    tiles = []
    for tid, obs in sorted(tracklets.items()):
        picks = np.linspace(0, len(obs) - 1, min(12, len(obs))).astype(int)
        row_tiles = []
        for j in picks:
            f, (x1, y1, x2, y2) = obs[j]
            img = images[f]
            w, h = x2 - x1, y2 - y1
            crop = img[int(max(y1 - 0.3 * h, 0)):int(min(y2 + 0.3 * h, img.shape[0])),
                       int(max(x1 - 0.3 * w, 0)):int(min(x2 + 0.3 * w, img.shape[1]))]
            tile = cv2.resize(crop, (96, 96))
            cv2.putText(tile, str(f), (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1)
            row_tiles.append(tile)
        row_tiles += [np.zeros((96, 96, 3), np.uint8)] * (12 - len(row_tiles))
        label = np.zeros((96, 90, 3), np.uint8)
        cv2.putText(label, f"#{tid} n{len(obs)}", (2, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        tiles.append(np.hstack([label] + row_tiles))
    cv2.imwrite(str(out), np.vstack(tiles))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheets", type=Path, help="also write a crop sheet per clip into this folder")
    args = ap.parse_args(argv)
    decisions = tomllib.loads((HERE / "real.toml").read_text())
    for clip, spec in decisions["clips"].items():
        if not (data_root() / clip).is_file():
            raise SystemExit(f"make_truth: clip not found: {data_root() / clip} (set MASKWATCH_DATA)")
        rows, people = build(clip, spec, decisions["pass"], args.sheets)
        name = truth_name(clip)
        with open(HERE / f"{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            w.writeheader()
            w.writerows(rows)
        with open(HERE / f"{name}.people.csv", "w", newline="") as f:
            w = csv.DictWriter(f, ["person", "kind", "note"])
            w.writeheader()
            w.writerows(people)
        print(f"{name}: {len(rows)} rows, {len(people)} people")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

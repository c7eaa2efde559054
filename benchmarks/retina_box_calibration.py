"""Fit RetinaFace's box calibration on a training split and measure what it does to the mask labels.

    maskwatch-train prepare ../shared/data/facemask-scenes ... --out runs/data2     # the shipped model's split
    python benchmarks/retina_box_calibration.py --data ../shared/data/facemask-scenes --manifest runs/data2/manifest.csv

RetinaFace's boxes follow WIDER FACE's convention; the classifier was trained on Pascal VOC face
boxes. For every annotated face that raw RetinaFace boxes match (IoU >= 0.3, Hungarian), this takes
the box's offset to the annotation (centre shift in box widths/heights, width and height factors);
the medians over the images of the manifest's ``train`` split are the calibration
(``maskwatch.detection.retina.RetinaDetector.CALIBRATION``). On the ``val`` and ``test`` images it then
classifies each matched face three ways (annotation box, raw box, calibrated box) with the
shipped classifier and prints accuracy, macro F1 and per-class recall (scikit-learn).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import accuracy_score, f1_score, recall_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from face_recall import load_voc  # noqa: E402

from maskwatch import LABELS  # noqa: E402
from maskwatch.classification import MaskClassifier  # noqa: E402
from maskwatch.detection import FaceDetector, box_iou, calibrate_boxes  # noqa: E402


def offsets(gt: np.ndarray, det: np.ndarray) -> np.ndarray:
    """(dx, dy, sw, sh) that turn each ``det`` box into its ``gt`` box."""
    dwh = det[:, 2:] - det[:, :2]
    shift = ((gt[:, :2] + gt[:, 2:]) - (det[:, :2] + det[:, 2:])) / 2 / dwh
    return np.hstack([shift, (gt[:, 2:] - gt[:, :2]) / dwh])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="Pascal-VOC folder (images/, annotations/)")
    ap.add_argument("--manifest", type=Path, required=True, help="manifest.csv of maskwatch-train prepare (its split column)")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "mask_classifier.tflite")
    ap.add_argument("--min-score", type=float, default=0.5)
    args = ap.parse_args(argv)
    split_of = {Path(r["path"]).name: r["split"] for r in csv.DictReader(args.manifest.open())}
    matched: dict[str, list] = defaultdict(list)  # split -> [(image path, gt box, raw box, label)]
    with FaceDetector("retina", min_score=args.min_score, calibrate=False) as det:
        for path, gt, names in load_voc(args.data, None):
            split = split_of.get(path.name)
            if split is None or not len(gt):
                continue
            faces = det.detect(cv2.imread(str(path)))
            if not len(faces):
                continue
            iou = box_iou(gt, faces.xyxy)
            for i, j in zip(*linear_sum_assignment(-iou)):
                if iou[i, j] >= 0.3:
                    matched[split].append((path, gt[i], faces.xyxy[j], names[i]))
    train = matched["train"]
    if not train:
        raise SystemExit(f"no matched faces in the train split of {args.manifest}")
    calib = np.median(offsets(np.array([m[1] for m in train]), np.array([m[2] for m in train])), axis=0)
    print(f"calibration from {len(train)} train faces (dx, dy, sw, sh): ({', '.join(f'{v:.3f}' for v in calib)})")
    clf = MaskClassifier(args.model)
    for split in ("val", "test"):
        by_image = defaultdict(list)
        for path, g, d, name in matched[split]:
            by_image[path].append((g, d, name))
        truth, pred = [], defaultdict(list)
        for path, faces in by_image.items():
            image = cv2.imread(str(path))
            gt, raw = np.array([f[0] for f in faces], np.float32), np.array([f[1] for f in faces], np.float32)
            for kind, boxes in (("annotation box", gt), ("raw RetinaFace box", raw), ("calibrated box", calibrate_boxes(raw, calib))):
                pred[kind].extend(np.array(LABELS)[clf.classify_faces(image, boxes).argmax(axis=1)])
            truth.extend(f[2] for f in faces)
        print(f"\n{split}: {len(truth)} matched faces")
        for kind, p in pred.items():
            rec = recall_score(truth, p, labels=list(LABELS), average=None, zero_division=0)
            print(f"  {kind:20s} accuracy {accuracy_score(truth, p):.3f}  macro F1 {f1_score(truth, p, labels=list(LABELS), average='macro', zero_division=0):.3f}  "
                  f"recall {' / '.join(f'{r:.3f}' for r in rec)} ({' / '.join(LABELS)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

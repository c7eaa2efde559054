"""Face-crop datasets: ingest ImageFolder trees, Pascal VOC and YOLO folders, de-duplicate, split, load.

``prepare`` turns any mix of sources into ``OUT/manifest.csv`` (one row per face: source image, the
source dataset (its folder name), box in source pixels, label, face size, split, group, and the class
name as the dataset wrote it) plus ImageFolders of crops ``OUT/{train,val,test}/{label}/*.png`` cut
with :func:`maskwatch.crop.crop_faces` — the app's own crop function, so training and serving see
identical pixels. ``load_split`` re-cuts a split at any size/margin.

Three kinds of source folder (see :func:`source_kind`):

- ImageFolder: ``ROOT/<class>/**/*.jpg``, one face (or one scene to detect it in) per image;
- Pascal VOC: ``ROOT/images/`` + ``ROOT/annotations/*.xml``;
- YOLO: ``ROOT/images/**`` + ``ROOT/labels/**/*.txt`` (``cls cx cy w h``, normalised) or per-split
  ``ROOT/<split>/images`` + ``ROOT/<split>/labels`` (Roboflow exports), class names from
  ``data.yaml`` (``names:`` list or dict) or ``classes.txt``. The dataset's own splits are ignored:
  ``prepare`` makes its grouped split over everything.

Class names go through :func:`canonical_label` (aliases) after an optional label map
(``NAME=LABEL``, LABEL a project label or ``ignore``). A class name in a VOC or YOLO annotation that
is neither is an error listing every such name with the ``--label-map`` that fixes it: an
annotated box is a face someone labelled, and dropping it silently would lose data (all 452
incorrectly-worn faces of ``ilc2021-scenes``, named ``with_incorrect_mask``). ImageFolder
sub-folders with unknown names are only reported, since such trees often hold other folders.

Example::

    from train.data import prepare, load_manifest, load_split
    prepare(["../shared/data/facemask-12k", "../shared/data/facemask-scenes"], "runs/data")
    rows = load_manifest("runs/data/manifest.csv")
    x, y = load_split(rows, "train", size=64, margin=0.2)     # uint8 (N,64,64,3) RGB, int labels
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shlex
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field, asdict
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.crop import DEFAULT_MARGIN, crop_faces
from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.data")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MANIFEST_COLUMNS = ["path", "source", "label", "face_w", "face_h", "split", "group", "x1", "y1", "x2", "y2",
                    "box_from", "source_label"]
"""``source`` is the input folder's name (one value per dataset: what leave-one-source-out holds out);
``source_label`` the class name as the dataset wrote it (before aliases and the label map)."""
SPLITS = ("train", "val", "test")
IGNORE = "ignore"
"""Label-map target that drops a class (``--label-map person=ignore``)."""

_ALIASES = {
    "with_mask": "with_mask", "mask": "with_mask", "masked": "with_mask", "withmask": "with_mask",
    "with mask": "with_mask", "with-mask": "with_mask", "correct_mask": "with_mask", "mask_correct": "with_mask",
    "without_mask": "without_mask", "no_mask": "without_mask", "nomask": "without_mask", "unmasked": "without_mask",
    "without mask": "without_mask", "without-mask": "without_mask", "withoutmask": "without_mask",
    "mask_worn_incorrectly": "mask_worn_incorrectly", "mask_weared_incorrect": "mask_worn_incorrectly",
    "mask_weared_incorrectly": "mask_worn_incorrectly", "mask_worn_incorrect": "mask_worn_incorrectly",
    "incorrect_mask": "mask_worn_incorrectly", "incorrect mask": "mask_worn_incorrectly",
    "mask_incorrect": "mask_worn_incorrectly", "improper_mask": "mask_worn_incorrectly",
    "incorrectly_worn": "mask_worn_incorrectly", "mask worn incorrectly": "mask_worn_incorrectly",
}


def canonical_label(name: str) -> str | None:
    """Map a folder/VOC class name to one of ``maskwatch.LABELS`` (None if unknown).

    >>> canonical_label("mask_weared_incorrect"), canonical_label("With Mask"), canonical_label("cat")
    ('mask_worn_incorrectly', 'with_mask', None)
    """
    key = name.strip().lower().replace("-", "_")
    return _ALIASES.get(key) or _ALIASES.get(key.replace("_", " "))


def _map_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_label_map(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["NAME=LABEL", ...]`` (the repeatable ``--label-map``) -> ``{name key: label or "ignore"}``.

    LABEL is a project label (or one of its aliases) or ``ignore``; names match case-insensitively,
    with ``-``, ``_`` and spaces alike.

    >>> parse_label_map(["with_incorrect_mask=mask_worn_incorrectly", "Person=ignore"])
    {'with_incorrect_mask': 'mask_worn_incorrectly', 'person': 'ignore'}
    """
    if not items:
        return {}
    pairs = list(items.items()) if isinstance(items, dict) else []
    if not isinstance(items, dict):
        for item in items:
            name, eq, label = str(item).rpartition("=")
            if not eq or not name.strip() or not label.strip():
                raise MaskwatchError(f"--label-map {item!r}: expected NAME=LABEL, LABEL one of "
                                     f"{', '.join(LABELS)} or {IGNORE}")
            pairs.append((name, label))
    out: dict[str, str] = {}
    for name, label in pairs:
        target = IGNORE if label.strip().lower() == IGNORE else canonical_label(label)
        if target is None:
            raise MaskwatchError(f"--label-map {name}={label}: LABEL must be one of {', '.join(LABELS)} or {IGNORE}")
        key = _map_key(name)
        if out.get(key, target) != target:
            raise MaskwatchError(f"--label-map maps {name!r} twice ({out[key]} and {target})")
        out[key] = target
    return out


def resolve_label(name: str, label_map: dict[str, str] | None = None) -> str | None:
    """A dataset's class name -> project label, ``"ignore"``, or None (unknown). The map wins over aliases.

    >>> resolve_label("with_incorrect_mask", {"with_incorrect_mask": "mask_worn_incorrectly"})
    'mask_worn_incorrectly'
    >>> resolve_label("mask_weared_incorrect"), resolve_label("with_incorrect_mask")
    ('mask_worn_incorrectly', None)
    """
    if label_map:
        hit = label_map.get(_map_key(name))
        if hit is not None:
            return hit
    return canonical_label(name)


def suggest_label(name: str) -> str | None:
    """A guess at what an unknown class name means, for the error's ``--label-map`` hint (None: no guess).

    >>> suggest_label("with_incorrect_mask"), suggest_label("No-Mask"), suggest_label("face_mask"), suggest_label("cat")
    ('mask_worn_incorrectly', 'without_mask', 'with_mask', None)
    """
    key = _map_key(name)
    if re.search(r"incorrect|improper|wrong|weared|nose|chin|partial|bad|under", key):
        return "mask_worn_incorrectly"
    if re.search(r"without|(^|_)(no|non|not)_?mask|unmask|bare|nomask", key):
        return "without_mask"
    if "mask" in key:
        return "with_mask"
    return None


def unknown_names_error(unknown: dict[str, Counter]) -> MaskwatchError:
    """The one-line error for class names no alias or label map covers, with the fix.

    >>> str(unknown_names_error({"ilc2021-scenes": Counter({"with_incorrect_mask": 452})}))
    'unknown class names in ilc2021-scenes: with_incorrect_mask (use --label-map with_incorrect_mask=mask_worn_incorrectly)'
    """
    parts, fixes, unguessed = [], {}, False
    for source, names in unknown.items():
        parts.append(f"{source}: {', '.join(sorted(names))}")
        for name in sorted(names):
            guess = suggest_label(name)
            unguessed |= guess is None
            mapping = f"{name}={guess or 'LABEL'}"
            fixes.setdefault(name, f"--label-map {shlex.quote(mapping)}")
    hint = " ".join(fixes.values())
    if unguessed:
        hint += f"; LABEL is one of {', '.join(LABELS)} or {IGNORE}"
    return MaskwatchError(f"unknown class names in {'; in '.join(parts)} (use {hint})")


@dataclass
class Face:
    """One labelled face before splitting (box in source-image pixels)."""

    path: str
    source: str
    label: str
    box: tuple[float, float, float, float]
    box_from: str  # "annotation", "detector", "whole_image"
    scene: str     # faces of one scene share it
    split: str = ""
    group: int = -1
    source_label: str = ""  # the class name as the dataset wrote it


@dataclass
class Annotated:
    """One annotated image of a VOC or YOLO source, before detection: class names as written."""

    image: Path
    objects: list[tuple[str, tuple[float, float, float, float]]]
    normalized: bool = False  # YOLO: boxes are (cx, cy, w, h) in 0..1 of the image size
    scene: str = ""


@dataclass
class PrepareReport:
    """Counts of what ``prepare`` kept and dropped, printed by the CLI and saved as JSON."""

    images: int = 0
    faces: int = 0
    corrupt: list[str] = field(default_factory=list)
    unknown_labels: Counter = field(default_factory=Counter)
    ignored_labels: Counter = field(default_factory=Counter)  # dropped by the label map (NAME=ignore)
    unlabelled_images: int = 0  # YOLO images without a label file or with an empty one
    bad_label_lines: int = 0    # YOLO label lines that are neither a box nor a polygon
    class_names_from: dict = field(default_factory=dict)  # YOLO source -> file its class names came from
    no_face: int = 0
    too_small: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    box_from: Counter = field(default_factory=Counter)
    per_split: dict = field(default_factory=dict)
    per_source: dict = field(default_factory=dict)   # source -> {label: faces kept}
    sources: dict = field(default_factory=dict)      # source -> {"path": ..., "kind": voc|yolo|imagefolder}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["corrupt"] = self.corrupt[:50]
        d["n_corrupt"] = len(self.corrupt)
        d["unknown_labels"] = dict(self.unknown_labels)
        d["ignored_labels"] = dict(self.ignored_labels)
        d["box_from"] = dict(self.box_from)
        return d


# ---------------------------------------------------------------- detection (the app's detector)

class _Detector:
    """Face boxes for re-detection, from the app's ``maskwatch.detection.FaceDetector``.

    Crops and small images are padded before detection (the short-range model misses faces that fill
    the whole frame); large scenes also use the full-range model.
    """

    def __init__(self, min_score: float = 0.5):
        self.min_score = min_score
        self._dets = {}

    def _get(self, mode: str):
        if mode not in self._dets:
            try:
                from maskwatch.detection import FaceDetector
            except ImportError as e:
                raise MaskwatchError(f"re-detecting faces needs the app's detector ({e}); or use --redetect none") from None
            self._dets[mode] = FaceDetector(mode=mode, min_score=self.min_score)
        return self._dets[mode]

    def detect(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(xyxy (N,4) float, score (N,)) in ``image_bgr`` pixels."""
        h, w = image_bgr.shape[:2]
        boxes, scores = [], []
        pad = int(0.3 * max(h, w)) if max(h, w) <= 400 else 0
        img = cv2.copyMakeBorder(image_bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0) if pad else image_bgr
        modes = ("short",) if max(h, w) <= 400 else ("short", "full")
        for mode in modes:
            faces = self._get(mode).detect(img)
            if len(faces.xyxy):
                boxes.append(np.asarray(faces.xyxy, np.float32) - pad)
                scores.append(np.asarray(faces.score, np.float32))
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        return np.concatenate(boxes), np.concatenate(scores)


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, (len(a), len(b))."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-6)


# ---------------------------------------------------------------- scanning sources

def _is_voc(root: Path) -> bool:
    return (root / "annotations").is_dir() and (root / "images").is_dir()


def _yolo_dirs(root: Path) -> list[tuple[Path, Path]]:
    """(images dir, labels dir) pairs of a YOLO folder: ROOT/images + ROOT/labels, or per split
    ROOT/<split>/images + ROOT/<split>/labels (Roboflow/Ultralytics exports); [] if not YOLO."""
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return [(root / "images", root / "labels")]
    return [(d / "images", d / "labels") for d in sorted(root.iterdir())
            if d.is_dir() and (d / "images").is_dir() and (d / "labels").is_dir()]


def source_kind(root: str | Path) -> str:
    """``"voc"``, ``"yolo"`` or ``"imagefolder"``: how :func:`prepare` reads the folder ``root``."""
    root = Path(root)
    if _is_voc(root):
        return "voc"
    if _yolo_dirs(root):
        return "yolo"
    return "imagefolder"


def _read_image(path: Path, report: PrepareReport) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        report.corrupt.append(str(path))
        return None
    return img


def _voc_objects(xml_path: Path) -> tuple[str | None, list[tuple[str, tuple[float, ...]]]]:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        return None, []
    fname = root.findtext("filename")
    objs = []
    for o in root.iter("object"):
        bb = o.find("bndbox")
        if bb is None:
            continue
        try:
            box = tuple(float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            continue
        objs.append(((o.findtext("name") or "").strip(), box))
    return fname, objs


def read_voc(root: Path, source: str) -> list[Annotated]:
    """The annotated images of a Pascal VOC folder (``images/`` + ``annotations/*.xml``)."""
    items = []
    for xml_path in sorted((root / "annotations").glob("*.xml")):
        fname, objs = _voc_objects(xml_path)
        img_path = root / "images" / (fname or xml_path.stem + ".jpg")
        if not img_path.is_file():
            cands = [p for p in (root / "images").glob(xml_path.stem + ".*") if p.suffix.lower() in IMAGE_SUFFIXES]
            if not cands:
                continue
            img_path = cands[0]
        if objs:
            items.append(Annotated(img_path, objs, scene=f"{source}/{img_path.name}"))
    return items


def _names_from_yaml(path: Path) -> list[str] | None:
    """The ``names:`` of an Ultralytics/Roboflow data YAML (a list, or a dict index -> name); None if absent."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise MaskwatchError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if names is None:
        return None
    if isinstance(names, dict):
        try:
            by_index = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise MaskwatchError(f"{path}: the keys of 'names' must be class indices 0, 1, ...") from None
        return [by_index.get(i, str(i)) for i in range(max(by_index, default=-1) + 1)]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise MaskwatchError(f"{path}: 'names' must be a list or a mapping of class index to name")


def yolo_class_names(root: Path) -> tuple[list[str], Path]:
    """Class names of a YOLO folder and the file they came from: ``data.yaml`` (or ``data.yml``,
    ``dataset.yaml``, another top-level YAML with ``names:``), else ``classes.txt`` (top level or in
    ``labels/``), else darknet's ``obj.names``."""
    yamls = [root / n for n in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")]
    yamls += sorted(p for p in root.glob("*.y*ml") if p not in yamls)
    for path in yamls:
        if path.is_file():
            names = _names_from_yaml(path)
            if names is not None:
                return names, path
    for path in (root / "classes.txt", root / "labels" / "classes.txt", root / "obj.names"):
        if path.is_file():
            names = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
            while names and not names[-1]:
                names.pop()
            return names, path
    raise MaskwatchError(f"YOLO folder {root} has no class names: add classes.txt (one name a line, "
                         "in class-index order) or a data.yaml with a names: list")


def _yolo_box(values: list[float]) -> tuple[float, float, float, float] | None:
    """(cx, cy, w, h) normalised from a label line's numbers after the class: a box (4 numbers) or
    a segmentation polygon (x y pairs, its bounding box); None if neither."""
    if len(values) == 4:
        return tuple(values)
    if len(values) >= 6 and len(values) % 2 == 0:
        xs, ys = values[0::2], values[1::2]
        return ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
    return None


def read_yolo(root: Path, source: str, report: PrepareReport) -> list[Annotated]:
    """The annotated images of a YOLO folder; class indices become the names of :func:`yolo_class_names`
    (an index with no name becomes its number, so it is reported as an unknown class)."""
    names, names_file = yolo_class_names(root)
    report.class_names_from[source] = str(names_file)
    items = []
    for images, labels in _yolo_dirs(root):
        for img_path in sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
            label_path = (labels / img_path.relative_to(images)).with_suffix(".txt")
            objs = []
            if label_path.is_file():
                for line in label_path.read_text(encoding="utf-8", errors="replace").splitlines():
                    parts = line.split()
                    if not parts:
                        continue
                    try:
                        cls = int(float(parts[0]))
                        box = _yolo_box([float(v) for v in parts[1:]])
                    except ValueError:
                        box = None
                    if box is None:
                        report.bad_label_lines += 1
                        log.warning("%s: not a YOLO box line: %r", label_path, line[:80])
                        continue
                    objs.append((names[cls] if 0 <= cls < len(names) else str(cls), box))
            if not objs:
                report.unlabelled_images += 1
                continue
            items.append(Annotated(img_path, objs, normalized=True,
                                   scene=f"{source}/{img_path.relative_to(root).as_posix()}"))
    return items


def unknown_annotation_names(items: list[Annotated], label_map: dict[str, str] | None) -> Counter:
    """Class names of annotated boxes that neither an alias nor ``label_map`` covers, with their counts."""
    return Counter(name for it in items for name, _ in it.objects if resolve_label(name, label_map) is None)


def _faces_from_annotations(items: list[Annotated], source: str, detector, report: PrepareReport, progress,
                            label_map: dict[str, str] | None = None, kind: str = "VOC") -> list[Face]:
    """Faces of annotated images (VOC or YOLO alike): each annotated box is replaced by the detection
    that covers >= 50% of it, so the framing is the app's; boxes the detector misses stay as annotated."""
    faces = []
    for item in progress(items, desc=f"{source} ({kind})", unit="img"):
        labelled = []
        for name, box in item.objects:
            lab = resolve_label(name, label_map)
            if lab == IGNORE:
                report.ignored_labels[name] += 1
            elif lab is None:
                report.unknown_labels[name] += 1
            else:
                labelled.append((lab, box, name))
        if not labelled:
            continue
        img = _read_image(item.image, report)
        if img is None:
            continue
        report.images += 1
        if item.normalized:
            h, w = img.shape[:2]
            labelled = [(lab, (max(0.0, (cx - bw / 2) * w), max(0.0, (cy - bh / 2) * h),
                               min(float(w), (cx + bw / 2) * w), min(float(h), (cy + bh / 2) * h)), name)
                        for lab, (cx, cy, bw, bh), name in labelled]
        ann = np.array([b for _, b, _ in labelled], np.float32)
        chosen = [(tuple(b), "annotation") for b in ann]
        if detector is not None:
            det, _ = detector.detect(img)
            if len(det):
                ov = _overlap(ann, det)
                used = set()
                for i in np.argsort(-ov.max(axis=1)):
                    j = int(np.argmax(np.where([k in used for k in range(len(det))], -1, ov[i])))
                    if ov[i, j] >= 0.5 and j not in used:
                        used.add(j)
                        chosen[i] = (tuple(float(v) for v in det[j]), "detector")
        for (lab, _, name), (box, how) in zip(labelled, chosen):
            faces.append(Face(str(item.image), source, lab, box, how, scene=item.scene, source_label=name))
    return faces


def fit_box_inside(box, w: int, h: int, margin: float) -> tuple[float, float, float, float]:
    """Shrink/shift a face box so its crop square (box + margin) lies inside a w x h image.

    Pre-cropped face photos are tight: the serving margin would reach past their edges and
    ``crop_face`` would fill that with replicated border stripes that only these (class-skewed)
    sources have. Better a slightly tighter framing than a stripe shortcut.

    >>> fit_box_inside((0, 0, 100, 100), 100, 100, 0.2)
    (14.285714285714285, 14.285714285714285, 85.71428571428572, 85.71428571428572)
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    side = max(bw, bh) * (1.0 + 2.0 * margin)
    k = min(1.0, min(w, h) / side) if side > 0 else 1.0
    bw, bh, side = bw * k, bh * k, side * k
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    cx = min(max(cx, side / 2.0), w - side / 2.0)
    cy = min(max(cy, side / 2.0), h - side / 2.0)
    return (cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0)


def _scan_imagefolder(root: Path, source: str, detector, report: PrepareReport, progress,
                      margin: float = DEFAULT_MARGIN, drop_undetected: bool = True,
                      label_map: dict[str, str] | None = None) -> list[Face]:
    faces = []
    class_dirs = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        lab = resolve_label(d.name, label_map)
        if lab == IGNORE:
            report.ignored_labels[d.name] += 1
        elif lab is None:
            report.unknown_labels[d.name] += 1
        else:
            class_dirs.append((d, lab))
    files = [(f, lab, d.name) for d, lab in class_dirs for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    for f, lab, folder in progress(files, desc=f"{source} (folders)", unit="img"):
        img = _read_image(f, report)
        if img is None:
            continue
        report.images += 1
        h, w = img.shape[:2]
        box, how = None, "whole_image"
        if detector is not None:
            det, score = detector.detect(img)
            if len(det):
                area = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
                box, how = tuple(float(v) for v in det[int(np.argmax(area * score))]), "detector"
            elif max(h, w) > 400:  # a whole scene with no face found: nothing to crop
                report.no_face += 1
                continue
        if box is None:
            if detector is not None and drop_undetected:
                # the app never classifies a face its detector misses; and the misses are class-skewed
                # (masked crops), so keeping them as whole-image crops would teach a framing shortcut
                report.no_face += 1
                continue
            # a pre-cropped face: assume it is framed like a serving crop
            side = min(h, w) / (1.0 + 2.0 * margin)
            cx, cy = w / 2.0, h / 2.0
            box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        else:
            box = fit_box_inside(box, w, h, margin)
        faces.append(Face(str(f), source, lab, box, how, scene=f"{source}/{f.parent.name}/{f.name}",
                          source_label=folder))
    return faces


# ---------------------------------------------------------------- de-duplication and splitting

class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return int(i)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _phashes(crops: np.ndarray) -> np.ndarray:
    import imagehash
    from PIL import Image

    out = np.empty(len(crops), np.uint64)
    for i, c in enumerate(crops):
        bits = imagehash.phash(Image.fromarray(c)).hash.flatten()
        out[i] = np.uint64(int("".join("1" if b else "0" for b in bits), 2))
    return out


def _near_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 512):
    """Yield (i, j, distance) with i < j and Hamming distance <= max_distance."""
    for s in range(0, len(hashes), chunk):
        block = hashes[s:s + chunk]
        d = np.bitwise_count(block[:, None] ^ hashes[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        for i, j in zip(ii + s, jj):
            if i < j:
                yield int(i), int(j), int(d[i - s, j])


def deduplicate_and_group(faces: list[Face], crops: np.ndarray, report: PrepareReport,
                          drop_distance: int = 3, group_distance: int = 8) -> np.ndarray:
    """Drop exact and near duplicates (same label, phash distance <= drop_distance) and give every
    face a group id: faces of one scene and faces within ``group_distance`` share a group.
    Returns the indices of the kept faces (their ``group`` is set)."""
    n = len(faces)
    keep = np.ones(n, bool)
    seen: dict[str, int] = {}
    for i, c in enumerate(crops):
        digest = hashlib.md5(c.tobytes()).hexdigest()
        if digest in seen:
            keep[i] = False
            report.exact_duplicates += 1
        else:
            seen[digest] = i
    hashes = _phashes(crops)
    uf = _UnionFind(n)
    by_scene: dict[str, int] = {}
    for i, f in enumerate(faces):
        if f.scene in by_scene:
            uf.union(by_scene[f.scene], i)
        else:
            by_scene[f.scene] = i
    for i, j, d in _near_pairs(hashes, group_distance):
        uf.union(i, j)
        if d <= drop_distance and keep[i] and keep[j] and faces[i].label == faces[j].label \
                and faces[i].scene != faces[j].scene:
            keep[j] = False
            report.near_duplicates += 1
    for i in range(n):
        faces[i].group = uf.find(i)
    return np.flatnonzero(keep)


def assign_splits(faces: list[Face], val: float, test: float, seed: int) -> None:
    """Stratified by label, grouped by ``Face.group`` (a group never straddles two splits)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.array([LABELS.index(f.label) for f in faces])
    g = np.array([f.group for f in faces])
    idx = np.arange(len(faces))
    split = np.array(["train"] * len(faces), dtype=object)

    def carve(sub: np.ndarray, frac: float, name: str, rs: int) -> None:
        if frac <= 0 or len(sub) < 2:
            return
        k = max(2, int(round(1.0 / frac)))
        n_groups = len(set(g[sub]))
        if n_groups < k:
            k = n_groups
        if k < 2:
            return
        sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=rs)
        try:
            _, held = next(sgkf.split(sub, y[sub], g[sub]))
        except ValueError:  # fewer members than folds in some class
            from sklearn.model_selection import GroupShuffleSplit

            _, held = next(GroupShuffleSplit(n_splits=1, test_size=frac, random_state=rs).split(sub, y[sub], g[sub]))
        split[sub[held]] = name

    carve(idx, test, "test", seed)
    rest = idx[split == "train"]
    carve(rest, val / max(1e-9, 1.0 - test), "val", seed + 1)
    for f, s in zip(faces, split):
        f.split = s


# ---------------------------------------------------------------- prepare

def _progress(enabled: bool):
    if not enabled:
        return lambda it, **kw: it
    from tqdm import tqdm

    return lambda it, **kw: tqdm(it, **kw)


def prepare(inputs: list[str | Path], out: str | Path, size: int = 64, margin: float = DEFAULT_MARGIN,
            redetect: str = "all", min_face: float = 8.0, val: float = 0.15, test: float = 0.15,
            seed: int = 0, min_score: float = 0.5, drop_distance: int = 3, group_distance: int = 8,
            write_crops: bool = True, drop_undetected: bool = True, progress: bool = True,
            label_map: list[str] | dict[str, str] | None = None) -> PrepareReport:
    """Ingest ``inputs`` (ImageFolder trees, VOC and YOLO folders), write the manifest and crop folders.

    ``redetect``: ``all`` re-detects faces with the app's detector everywhere (VOC/YOLO boxes are
    replaced by the overlapping detection, so framing matches serving; unmatched boxes are kept),
    ``crops`` only in ImageFolder images, ``none`` never (ImageFolder images are then taken as face
    crops). ``drop_undetected``: ImageFolder images where re-detection finds no face are dropped (the
    app never classifies such a face) instead of being kept as whole-image crops. ``label_map``:
    ``["NAME=LABEL", ...]`` or ``{NAME: LABEL}`` (:func:`parse_label_map`). Each input's folder name is
    its ``source`` in the manifest, so two inputs may not share a folder name.

    Unknown class names in VOC/YOLO annotations fail before any detection, with the fix
    (:func:`unknown_names_error`).
    """
    import json

    if redetect not in ("all", "crops", "none"):
        raise MaskwatchError(f"--redetect must be all, crops or none, not {redetect!r}")
    lmap = parse_label_map(label_map)
    out = Path(out)
    report = PrepareReport()
    bar = _progress(progress)
    if not inputs:
        raise MaskwatchError("no input folders given")
    plan = []   # (root, source, kind, annotated items or None)
    for inp in inputs:
        root = Path(inp).expanduser()
        if not root.is_dir():
            raise MaskwatchError(f"input folder not found: {root}")
        source = Path(os.path.abspath(root)).name   # "." gets its real name; a symlink keeps its own
        if source in report.sources:
            raise MaskwatchError(f"inputs {report.sources[source]['path']} and {root} have the same folder name "
                                 f"{source!r}: the manifest tells sources apart by it (leave-one-source-out "
                                 "holds out one by name); give each source its own folder name")
        if (root / "synthesis.json").is_file():  # written by train.synthesis next to its generated crops
            raise MaskwatchError(f"{root} holds generated faces (maskwatch-train synthesize): they may only be "
                                 f"trained on, never split into validation or test; use --data {root / 'combined'} "
                                 "for fit instead of preparing them")
        kind = source_kind(root)
        report.sources[source] = {"path": str(root), "kind": kind}
        items = read_voc(root, source) if kind == "voc" else read_yolo(root, source, report) if kind == "yolo" else None
        plan.append((root, source, kind, items))
    unknown = {}
    for _, source, _, items in plan:
        names = unknown_annotation_names(items, lmap) if items is not None else None
        if names:
            unknown[source] = names
    if unknown:   # before any detection: a typo should not cost minutes
        raise unknown_names_error(unknown)
    detector = None if redetect == "none" else _Detector(min_score)
    faces: list[Face] = []
    for root, source, kind, items in plan:
        if kind == "imagefolder":
            faces += _scan_imagefolder(root, source, detector, report, bar, margin, drop_undetected, lmap)
        else:
            faces += _faces_from_annotations(items, source, detector if redetect == "all" else None, report, bar,
                                             lmap, kind="VOC" if kind == "voc" else "YOLO")
    if report.corrupt:
        log.warning("skipped %d unreadable images, e.g. %s", len(report.corrupt), report.corrupt[0])
    if not faces:
        known = ", ".join(LABELS)
        unknown_folders = ", ".join(sorted(report.unknown_labels)) or "none"
        hint = ""
        if report.unknown_labels:
            first = sorted(report.unknown_labels)[0]
            hint = f"; or map them: --label-map {shlex.quote(f'{first}=LABEL')}, LABEL one of {known} or {IGNORE}"
        raise MaskwatchError(f"no labelled faces found in {', '.join(map(str, inputs))} "
                             f"(class folders/names must be {known} or an alias; found: {unknown_folders}{hint})")
    widths = np.array([f.box[2] - f.box[0] for f in faces])
    small = widths < min_face
    report.too_small = int(small.sum())
    faces = [f for f, s in zip(faces, small) if not s]
    crops = crop_rows(faces, size, margin, progress=progress)
    kept = deduplicate_and_group(faces, crops, report, drop_distance, group_distance)
    faces = [faces[i] for i in kept]
    crops = crops[kept]
    assign_splits(faces, val, test, seed)
    report.faces = len(faces)
    report.box_from = Counter(f.box_from for f in faces)
    report.per_split = {s: dict(Counter(f.label for f in faces if f.split == s)) for s in SPLITS}
    report.per_source = {src: dict(sorted(Counter(f.label for f in faces if f.source == src).items()))
                         for src in report.sources}
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MANIFEST_COLUMNS)
        for f in faces:
            x1, y1, x2, y2 = f.box
            w.writerow([f.path, f.source, f.label, round(x2 - x1, 1), round(y2 - y1, 1), f.split, f.group,
                        round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1), f.box_from, f.source_label])
    if write_crops:
        counters: Counter = Counter()
        for f, c in zip(faces, crops):
            d = out / f.split / f.label
            d.mkdir(parents=True, exist_ok=True)
            counters[(f.split, f.label)] += 1
            name = f"{f.source}_{Path(f.path).stem}_{counters[(f.split, f.label)]:05d}.png"
            cv2.imwrite(str(d / name), cv2.cvtColor(c, cv2.COLOR_RGB2BGR))
    (out / "prepare.json").write_text(json.dumps(
        {"inputs": [str(i) for i in inputs], "size": size, "margin": margin, "redetect": redetect,
         "min_face": min_face, "drop_undetected": drop_undetected, "val": val, "test": test, "seed": seed,
         "label_map": lmap, "report": report.as_dict()}, indent=2))
    return report


# ---------------------------------------------------------------- loading

def load_manifest(path: str | Path) -> list[dict]:
    """Rows of ``manifest.csv`` as dicts (box floats, ``None`` when empty)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise MaskwatchError(f"manifest not found: {path} (run maskwatch-train prepare first)")
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(MANIFEST_COLUMNS[:11]) - set(reader.fieldnames or [])
        if missing:
            raise MaskwatchError(f"{path} is not a maskwatch manifest (missing {', '.join(sorted(missing))})")
        for r in reader:
            for k in ("face_w", "face_h", "x1", "y1", "x2", "y2"):
                r[k] = float(r[k]) if r.get(k) not in (None, "") else None
            rows.append(r)
    leaked = Counter(r["split"] for r in rows if r.get("generated") == "1" and r["split"] != "train")
    if leaked:  # generated faces (train.synthesis) teach; only real faces may validate or test
        raise MaskwatchError(f"{path}: generated faces (generated=1) in the "
                             f"{', '.join(f'{s} split ({n})' for s, n in sorted(leaked.items()))}; they may only be in train")
    return rows


def write_manifest(rows: list[dict], path: str | Path) -> Path:
    """Write manifest rows (as :func:`load_manifest` returns them) to ``path``: the standard columns first,
    then any extra ones the rows carry. Used for derived manifests (leave-one-source-out)."""
    path = Path(path)
    if path.suffix != ".csv":
        path = path / "manifest.csv"
    extra = [k for r in rows[:1] for k in r if k not in MANIFEST_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS + extra, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if v is None else v for k, v in r.items()})
    return path


def crop_rows(rows, size: int, margin: float, progress: bool = False) -> np.ndarray:
    """Cut the faces of manifest rows / ``Face`` objects: RGB uint8 (N, size, size, 3).

    Each source image is read once; a row without a box is the whole image (a pre-cropped face)."""
    def get(r, k):
        return getattr(r, k) if not isinstance(r, dict) else r[k]

    def box_of(r):
        if isinstance(r, Face):
            return r.box
        if r["x1"] is None:
            return None
        return (r["x1"], r["y1"], r["x2"], r["y2"])

    out = np.zeros((len(rows), size, size, 3), np.uint8)
    by_path: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_path.setdefault(get(r, "path"), []).append(i)
    items = _progress(progress)(list(by_path.items()), desc=f"cropping {size}px", unit="img")
    for path, idx in items:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise MaskwatchError(f"cannot read {path} listed in the manifest")
        h, w = img.shape[:2]
        boxes = []
        for i in idx:
            b = box_of(rows[i])
            if b is None:
                side = min(h, w) / (1.0 + 2.0 * margin)
                b = (w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2)
            boxes.append(b)
        out[idx] = crop_faces(img, np.array(boxes, np.float32), size, margin, bgr=True)
    return out


def load_split(manifest, split: str, size: int, margin: float = DEFAULT_MARGIN, cache_dir: str | Path | None = None,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Crops and labels of one split: (x uint8 (N, size, size, 3) RGB, y int (N,) in LABELS order).

    ``manifest`` is a path (file or prepare folder) or rows from :func:`load_manifest`. With
    ``cache_dir`` the arrays are cached as ``.npz`` keyed by split, size, margin and manifest content."""
    rows = load_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest
    if split not in SPLITS and split != "all":
        raise MaskwatchError(f"unknown split {split!r} (train, val, test or all)")
    sel = [r for r in rows if split == "all" or r["split"] == split]
    cache = None
    if cache_dir is not None:
        key = hashlib.md5(repr([(r["path"], r["x1"], r["y1"], r["x2"], r["y2"], r["label"]) for r in sel]).encode()).hexdigest()[:10]
        cache = Path(cache_dir) / f"{split}_{size}_{margin:g}_{key}.npz"
        if cache.is_file():
            z = np.load(cache)
            return z["x"], z["y"]
    x = crop_rows(sel, size, margin, progress=progress)
    y = np.array([LABELS.index(r["label"]) for r in sel], np.int64)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=x, y=y)
    return x, y


def face_widths(manifest, split: str) -> np.ndarray:
    """Face width in source pixels of each row of ``split`` (same order as :func:`load_split`)."""
    rows = load_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest
    return np.array([r["face_w"] or 0.0 for r in rows if split == "all" or r["split"] == split], np.float32)


def load_imagefolder(root: str | Path, size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """An ImageFolder of crops (``root/{label}/*``; unknown folder names ignored) -> (x RGB uint8, y, paths).

    Crops of another size are resized (area when shrinking, bilinear when enlarging, as ``crop_face``)."""
    root = Path(root)
    if not root.is_dir():
        raise MaskwatchError(f"folder not found: {root}")
    xs, ys, paths = [], [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        lab = canonical_label(d.name)
        if lab is None:
            continue
        for f in sorted(d.rglob("*")):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("skipping unreadable image %s", f)
                continue
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if size is not None and img.shape[:2] != (size, size):
                interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
                img = cv2.resize(img, (size, size), interpolation=interp)
            xs.append(img)
            ys.append(LABELS.index(lab))
            paths.append(str(f))
    if not xs:
        raise MaskwatchError(f"no images in class folders ({', '.join(LABELS)}) under {root}")
    if size is None and len({x.shape for x in xs}) > 1:
        raise MaskwatchError(f"crops under {root} have different sizes; pass a size")
    return np.stack(xs), np.array(ys, np.int64), paths

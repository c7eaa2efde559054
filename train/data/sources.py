"""Reading the three kinds of source folder: Pascal VOC, YOLO and ImageFolder trees -> :class:`Face` lists.

Annotated boxes (VOC, YOLO) are replaced by the app's detection that covers most of them
(:func:`maskwatch.boxes.box_ios`); ImageFolder images are re-detected or taken as face crops.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from maskwatch.boxes import box_ios
from maskwatch.crop import DEFAULT_MARGIN
from maskwatch.errors import MaskwatchError
from train.data.labels import IGNORE, resolve_label
from train.data.records import IMAGE_SUFFIXES, Annotated, Face, PrepareReport

log = logging.getLogger("maskwatch.train.data")


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
        for k, (name, box) in enumerate(item.objects):
            lab = item.corrected.get(k) or resolve_label(name, label_map)
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
                ov = box_ios(ann, det)
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

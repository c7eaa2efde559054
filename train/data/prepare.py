"""``prepare``: any mix of sources -> ``OUT/manifest.csv``, crop folders and ``prepare.json``."""

from __future__ import annotations

import csv
import logging
import os
import shlex
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.crop import DEFAULT_MARGIN
from maskwatch.errors import MaskwatchError
from train.data.corrections import CORRECTIONS_FILE, apply_corrections, load_corrections
from train.data.detector import _Detector
from train.data.labels import IGNORE, parse_label_map, unknown_names_error
from train.data.loading import _progress, crop_rows
from train.data.records import MANIFEST_COLUMNS, SPLITS, Face, PrepareReport
from train.data.sources import (_faces_from_annotations, _scan_imagefolder, read_voc, read_yolo, source_kind,
                               unknown_annotation_names)
from train.data.split import assign_splits, deduplicate_and_group

log = logging.getLogger("maskwatch.train.data")


def prepare(inputs: list[str | Path], out: str | Path, size: int = 64, margin: float = DEFAULT_MARGIN,
            redetect: str = "all", min_face: float = 8.0, val: float = 0.15, test: float = 0.15,
            seed: int = 0, min_score: float = 0.5, drop_distance: int = 3, group_distance: int = 8,
            write_crops: bool = True, drop_undetected: bool = True, progress: bool = True,
            label_map: list[str] | dict[str, str] | None = None,
            corrections: str | Path | None = CORRECTIONS_FILE) -> PrepareReport:
    """Ingest ``inputs`` (ImageFolder trees, VOC and YOLO folders), write the manifest and crop folders.

    ``redetect``: ``all`` re-detects faces with the app's detector everywhere (VOC/YOLO boxes are
    replaced by the overlapping detection, so framing matches serving; unmatched boxes are kept),
    ``crops`` only in ImageFolder images, ``none`` never (ImageFolder images are then taken as face
    crops). ``drop_undetected``: ImageFolder images where re-detection finds no face are dropped (the
    app never classifies such a face) instead of being kept as whole-image crops. ``label_map``:
    ``["NAME=LABEL", ...]`` or ``{NAME: LABEL}`` (:func:`parse_label_map`). Each input's folder name is
    its ``source`` in the manifest, so two inputs may not share a folder name.

    Unknown class names in VOC/YOLO annotations fail before any detection, with the fix
    (:func:`unknown_names_error`). ``corrections``: a label-corrections CSV
    (:mod:`train.data.corrections`; by default the repository's ``train/label_corrections.csv``,
    ``None`` for none), applied to the VOC and YOLO sources it names.
    """
    import json

    if redetect not in ("all", "crops", "none"):
        raise MaskwatchError(f"--redetect must be all, crops or none, not {redetect!r}")
    lmap = parse_label_map(label_map)
    fixes = load_corrections(corrections)
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
    for root, source, _, items in plan:  # before any detection too: a stale correction is an error
        if items is not None:
            n = apply_corrections(items, root, source, fixes, lmap)
            if n:
                report.corrected[source] = n
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
         "label_map": lmap, "corrections": None if corrections is None else str(corrections),
         "report": report.as_dict()}, indent=2))
    return report

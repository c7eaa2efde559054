"""The records ``prepare`` passes between its steps, and the manifest's columns.

:class:`Face` (one labelled face), :class:`Annotated` (one annotated image of a VOC or YOLO source),
:class:`PrepareReport` (what was kept and dropped); ``MANIFEST_COLUMNS``, ``SPLITS`` and the image
file suffixes every reader accepts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, asdict
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MANIFEST_COLUMNS = ["path", "source", "label", "face_w", "face_h", "split", "group", "x1", "y1", "x2", "y2",
                    "box_from", "source_label"]
"""``source`` is the input folder's name (one value per dataset: what leave-one-source-out holds out);
``source_label`` the class name as the dataset wrote it (before aliases and the label map)."""
SPLITS = ("train", "val", "test")


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
    corrected: dict[int, str] = field(default_factory=dict)  # object index -> label (train.data.corrections)


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
    corrected: dict = field(default_factory=dict)    # source -> faces whose label a correction changed

    def as_dict(self) -> dict:
        d = asdict(self)
        d["corrupt"] = self.corrupt[:50]
        d["n_corrupt"] = len(self.corrupt)
        d["unknown_labels"] = dict(self.unknown_labels)
        d["ignored_labels"] = dict(self.ignored_labels)
        d["box_from"] = dict(self.box_from)
        return d

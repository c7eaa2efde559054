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

The package, one module an idea (every name is importable from ``train.data`` itself):
:mod:`~train.data.labels` (class names, aliases, the label map), :mod:`~train.data.records` (the
records and manifest columns), :mod:`~train.data.detector` (the app's detector), :mod:`~train.data.sources`
(reading VOC, YOLO and ImageFolder folders), :mod:`~train.data.split` (de-duplication and the grouped
split), :mod:`~train.data.corrections` (label corrections applied at ``prepare``),
:mod:`~train.data.prepare` (``prepare``), :mod:`~train.data.loading` (manifests and crops).
"""

from train.data.corrections import (  # noqa: F401
    CORRECTIONS_FILE, Correction, apply_corrections, load_corrections, read_corrections,
)
from train.data.detector import _Detector  # noqa: F401 - re-exported: the old train.data names stay importable
from train.data.labels import (  # noqa: F401
    _ALIASES, IGNORE, _map_key, canonical_label, parse_label_map, resolve_label, suggest_label, unknown_names_error,
)
from train.data.loading import (  # noqa: F401
    _progress, crop_rows, face_widths, load_imagefolder, load_manifest, load_split, write_manifest,
)
from train.data.prepare import prepare  # noqa: F401
from train.data.records import IMAGE_SUFFIXES, MANIFEST_COLUMNS, SPLITS, Annotated, Face, PrepareReport  # noqa: F401
from train.data.sources import (  # noqa: F401
    _faces_from_annotations, _is_voc, _names_from_yaml, _read_image, _scan_imagefolder, _voc_objects, _yolo_box,
    _yolo_dirs, fit_box_inside, read_voc, read_yolo, source_kind, unknown_annotation_names, yolo_class_names,
)
from train.data.split import _near_pairs, _phashes, _UnionFind, assign_splits, deduplicate_and_group  # noqa: F401

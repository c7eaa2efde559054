"""Label corrections: annotated faces whose label a person re-checked and found wrong, applied at ``prepare``.

The shared datasets stay as they are; ``train/label_corrections.csv`` (shipped with the repository,
:data:`CORRECTIONS_FILE`) lists each correction with its reason, and ``prepare`` applies those of
the sources it reads (a source is its folder's name) before anything is detected or cut. Columns:

- ``source``: the dataset folder's name (``ilc2021-scenes``);
- ``image``: the image, relative to that folder (``images/1213....jpg``);
- ``box``: the object's position in the image's annotation (0 = the first ``<object>`` of a VOC
  file, the first line of a YOLO file), or ``all``;
- ``from``, ``to``: the label as annotated (after the label map) and the right one (project labels);
- ``reason``: why, in words (what the face shows).

A correction that no longer fits its source (the image is not there, the box does not exist, the
annotation says neither ``from`` nor ``to``) is a one-line error: the file and the data went apart,
and a silent skip would train on the old label. The manifest's ``source_label`` keeps the name the
dataset wrote; its ``label`` is the corrected one.

>>> import io
>>> fixes = read_corrections(io.StringIO(
...     "source,image,box,from,to,reason\\n"
...     "scenes,images/a.jpg,all,without_mask,with_mask,every face wears a mask over nose and mouth\\n"))
>>> fixes[0].box is None, fixes[0].to_label
(True, 'with_mask')
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from train.data.labels import resolve_label
from train.data.records import Annotated

CORRECTIONS_FILE = Path(__file__).resolve().parents[1] / "label_corrections.csv"
"""The corrections shipped with the repository (``train/label_corrections.csv``)."""

COLUMNS = ("source", "image", "box", "from", "to", "reason")


@dataclass(frozen=True)
class Correction:
    source: str
    image: str
    box: int | None  # None: every object of the image
    from_label: str
    to_label: str
    reason: str
    line: int = 0  # in the corrections file, for error messages
    where: str = "label corrections"  # the file


def read_corrections(fh, where: str = "label corrections") -> list[Correction]:
    """The corrections of a CSV file object; each problem is one line naming ``where`` and the line."""
    rows = list(csv.reader(fh))
    if not rows or tuple(c.strip() for c in rows[0]) != COLUMNS:
        raise MaskwatchError(f"{where}: the header must be {','.join(COLUMNS)}")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(COLUMNS):
            raise MaskwatchError(f"{where} line {n}: {len(row)} fields, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
        source, image, box, frm, to, reason = (c.strip() for c in row)
        for name, label in (("from", frm), ("to", to)):
            if label not in LABELS:
                raise MaskwatchError(f"{where} line {n}: {name} must be one of {', '.join(LABELS)}, got {label!r}")
        if box != "all" and not box.isdigit():
            raise MaskwatchError(f"{where} line {n}: box must be an object's position (0, 1, ...) or all, got {box!r}")
        if not (source and image and reason) or frm == to:
            raise MaskwatchError(f"{where} line {n}: source, image and a reason are needed, and from differs from to")
        out.append(Correction(source, image, None if box == "all" else int(box), frm, to, reason, n, where))
    return out


def load_corrections(path: str | Path | None) -> list[Correction]:
    """The corrections of ``path`` (``None``: none)."""
    if path is None:
        return []
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MaskwatchError(f"cannot read label corrections {path}: {e.strerror or e}") from None
    return read_corrections(io.StringIO(text), where=str(path))


def apply_corrections(items: list[Annotated], root: Path, source: str, corrections: list[Correction],
                      label_map: dict[str, str] | None) -> int:
    """Set ``item.corrected`` on the annotated images of ``source``; the number of faces corrected."""
    mine = [c for c in corrections if c.source == source]
    if not mine:
        return 0
    by_image = {}
    for item in items:
        try:
            by_image[item.image.resolve().relative_to(root.resolve()).as_posix()] = item
        except ValueError:
            continue
    changed = 0
    fix = "fix or remove that line, or prepare with --no-corrections"
    for c in mine:
        item = by_image.get(c.image)
        if item is None:
            raise MaskwatchError(f"{c.where} line {c.line}: {source} has no annotated image {c.image} ({fix})")
        indices = range(len(item.objects)) if c.box is None else [c.box]
        for i in indices:
            if not 0 <= i < len(item.objects):
                raise MaskwatchError(f"{c.where} line {c.line}: {source}/{c.image} has no object {i} "
                                     f"({len(item.objects)} annotated; {fix})")
            label = resolve_label(item.objects[i][0], label_map)
            if c.box is None and label != c.from_label:
                continue  # "all": every face annotated ``from``
            if label != c.from_label:
                raise MaskwatchError(f"{c.where} line {c.line}: {source}/{c.image} object {i} is annotated "
                                     f"{label}, not {c.from_label}: the correction no longer fits the data ({fix})")
            item.corrected[i] = c.to_label
            changed += 1
    return changed

"""Reading and writing manifests, and cutting their faces: ``load_manifest``, ``write_manifest``,
``crop_rows``, ``load_split``, ``face_widths``, ``load_imagefolder``."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from maskwatch import LABELS
from maskwatch.crop import DEFAULT_MARGIN, crop_faces
from maskwatch.errors import MaskwatchError
from train.data.labels import canonical_label
from train.data.records import IMAGE_SUFFIXES, MANIFEST_COLUMNS, SPLITS, Face

log = logging.getLogger("maskwatch.train.data")


def _progress(enabled: bool):
    if not enabled:
        return lambda it, **kw: it
    from tqdm import tqdm

    return lambda it, **kw: tqdm(it, **kw)


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

"""``maskwatch-train finetune``: adapt the shipped classifier to one site from a folder of labelled crops.

The loop the review tab closes: collected crops are labelled into an ImageFolder
(``DIR/labelled/<label>/``), and this module trains the shipped float model
(``models/mask_classifier.keras``) briefly on them — the training augmentations of ``train.fit``,
a small learning rate, the head first, then the top blocks of the backbone — optionally mixed with
*replay* faces from a prepared pool (``--replay runs/pool``) so that the sites it already knew are
not forgotten. A stratified, seeded slice of the site crops, split by person (a collected track, an
image-folder image: never on both sides), is held out and reported before
(the base int8 model) and after (the new int8 model). The int8 model and its metadata are written by
``train.export`` into the run folder, ready for ``maskwatch --model RUN/mask_classifier.tflite``.

Everything goes through a manifest (``RUN/data/manifest.csv``) whose crops are cut by
``train.data.crop_rows``, the function serving uses: a collected crop is cut to its served box
(``collected.csv`` tells where the face is inside the saved image; a collector's crop whose row is
gone is cut to its central 1/1.5, the served square), a plain crop is taken whole.

Before anything is trained, :func:`preflight` reads the site folder and says what the run will be
(one line each, in the terminal and in the app's Review tab): a set whose crops are all one class is
refused unless ``--replay`` supplies the other classes or ``--allow-single-class`` is given (then it
is a warning); a set too small to hold any crop out is a warning (no before/after); without
``--replay`` a line says plainly that nothing of the original training pool is replayed (maskwatch
ships no pool). ``--progress-lines`` prints machine-readable ``@progress {json}`` lines (and one
``@result {json}`` line at the end) for the app's background fine-tune.

Example::

    from train.finetune import FinetuneConfig, finetune
    report = finetune(FinetuneConfig(data="site/labelled", out="runs/site_ft", replay="runs/pool"))
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.paths import models_dir

DEFAULT_MODEL_NAME = "mask_classifier.keras"
PROGRESS_PREFIX = "@progress "
RESULT_PREFIX = "@result "
"""``--progress-lines``: ``@progress {"fraction": 0.42, "stage": "training", "detail": "top epoch 2/4"}`` lines
while it runs and one ``@result {"model": ..., "warnings": [...], ...}`` line at the end (stdout, flushed)."""


def default_model() -> str:
    """The shipped float model, as an absolute path: ``maskwatch.paths.models_dir()/mask_classifier.keras``
    (``$MASKWATCH_MODELS``, the installed package's ``maskwatch/models`` or a clone's ``models/``), so the
    default works from any folder."""
    return str((models_dir() / DEFAULT_MODEL_NAME).resolve())

MIN_PER_CLASS = 5
"""A class with fewer site crops than this is not held out (all of its crops train) and is warned about."""
IGNORED_FOLDERS = {"not_a_face", "not a face", "notaface", "not_face", "no_face", "skip", "skipped", "unsure",
                   "x", "ignore", "ignored"}
"""Folder names the review tab (or a person) uses for crops that are not training data: left out, counted."""
SITE_SOURCE = "site"


@dataclass
class FinetuneConfig:
    data: str                                # ImageFolder of site crops (or a collect folder with labelled/)
    out: str                                 # run folder
    model: str = field(default_factory=default_model)   # float .keras model to start from
    replay: str | None = None                # a prepared pool (manifest.csv) to mix in
    replay_size: int = 900                   # replay train faces, the pool's class mix (and half as many val faces)
    site_share: float = 0.2                  # with replay: site crops' share of each epoch (repeated to reach it)
    epochs: int = 6                          # total: a third (at least 1) head-only, the rest head + top blocks
    holdout: float = 0.2                     # fraction of each class's site crops held out for before/after
    batch_size: int = 32
    lr_head: float = 3e-4
    lr_top: float = 5e-5
    top_fraction: float = 0.3                # top fraction of backbone layers trained in phase 2
    augment: str = "lowres_heavy"
    label_smoothing: float = 0.05
    class_weight: str = "sqrt"
    calib_size: int = 200
    version: str | None = None               # default "<base version>+ft.<YYYYMMDD>"
    temperature: str = "base"                # base (as the base model's metadata) | fit | none
    seed: int = 0
    allow_single_class: bool = False         # without replay, a single-class set is refused unless this is set
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- the site folder


@dataclass
class SiteCrop:
    path: str
    label: str
    box: tuple[float, float, float, float] | None = None   # face box inside the image (from collected.csv)
    group: str = ""          # crops of one person (a collected track, an image) share it: never split across hold-out
    served_fraction: float = 1.0   # without a box: side of the served square over the image's (central square)

    def __post_init__(self):
        self.group = self.group or f"file:{self.path}"


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise MaskwatchError(f"cannot read {path}: {e}") from None


def _float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _box_in_file(row: dict) -> tuple[float, float, float, float] | None:
    """The face box inside a collected file (``face_x1..face_y2`` of ``collected.csv``, written by
    ``maskwatch.sinks.collect``), or None when the row has none.

    >>> _box_in_file({"file": "a.png", "face_x1": "10", "face_y1": "12", "face_x2": "40", "face_y2": "50"})
    (10.0, 12.0, 40.0, 50.0)
    >>> _box_in_file({"file": "a.jpg"}) is None
    True
    """
    vals = [_float(row.get("face_" + k)) for k in ("x1", "y1", "x2", "y2")]
    if any(v is None for v in vals) or vals[2] <= vals[0] or vals[3] <= vals[1]:
        return None
    return tuple(vals)  # type: ignore[return-value]


def _group_of(row: dict, fallback: str) -> str:
    """The hold-out group of a collected crop: ``(camera, track)`` (a track id is unique within one
    collect run), for image-folder faces (track -1) the source image, else ``fallback`` (the file).

    >>> _group_of({"camera": "cam1", "track": "7", "image": ""}, "f")
    'track:cam1|7'
    >>> _group_of({"camera": "imgs", "track": "-1", "image": "a.jpg"}, "f"), _group_of({"track": "-1"}, "f")
    ('image:imgs|a.jpg', 'f')
    """
    track = str(row.get("track") or "").strip()
    camera = row.get("camera") or ""
    if track.lstrip("-").isdigit() and int(track) >= 0:
        return f"track:{camera}|{int(track)}"
    if row.get("image"):
        return f"image:{camera}|{row['image']}"
    return fallback


def _rowless_group(name: str, fallback: str) -> str:
    """A collector's crop without its row: its track from the name (``000012_t7.png``), else ``fallback``.

    Tracks of different collect runs may share the number; grouping them together only holds out
    more conservatively, it never leaks.

    >>> _rowless_group("000012_t7.png", "f"), _rowless_group("000012.png", "f")
    ('name-track:7', 'f')
    """
    import re

    m = re.fullmatch(r"\d{6,}_t(\d+)\.png", name)
    return f"name-track:{m.group(1)}" if m else fallback


def site_root(data: str | Path) -> tuple[Path, Path | None]:
    """(folder with the ``<label>/`` folders, collect folder with ``collected.csv`` or None).

    ``data`` may be the labelled folder itself or the collect folder that holds ``labelled/``."""
    data = Path(data)
    if not data.is_dir():
        raise MaskwatchError(f"folder not found: {data}")
    if (data / "labelled").is_dir() and not any(canonical(d.name) for d in data.iterdir() if d.is_dir()):
        data = data / "labelled"
    for cand in (data, data.parent):
        if (cand / "collected.csv").is_file():
            return data, cand
    return data, None


def canonical(name: str) -> str | None:
    from train.data import canonical_label

    return canonical_label(name)


def read_site(data: str | Path) -> tuple[list[SiteCrop], Counter, list[str]]:
    """The labelled crops of a site folder -> (crops, ignored folder counts, notes).

    Unknown folder names are an error naming them and the fix; ``not_a_face`` / ``skip`` folders
    are left out and counted. Files listed in ``collected.csv`` with their face box are re-cut to the
    served box; anything else is taken as the crop itself."""
    from train.data import IMAGE_SUFFIXES

    root, collect_dir = site_root(data)
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    unknown = [d.name for d in dirs if canonical(d.name) is None and d.name.strip().lower() not in IGNORED_FOLDERS]
    if unknown:
        raise MaskwatchError(
            f"unknown class folders in {root}: {', '.join(unknown)} (rename each to with_mask, without_mask or "
            f"mask_worn_incorrectly, or to not_a_face to leave it out)")
    from maskwatch.sinks.collect import CONTEXT, CROP_NAME

    # rows by their path relative to the collect folder, as the review tab names the copy (a/x.png -> a__x.png);
    # by base name only as a fallback, and only where the base name is unique
    by_path: dict[str, dict] = {}
    by_base: dict[str, list[dict]] = {}
    if collect_dir is not None:
        for row in _read_csv(collect_dir / "collected.csv"):
            if row.get("file"):
                by_path[row["file"].replace("\\", "/").replace("/", "__")] = row
                by_base.setdefault(Path(row["file"]).name, []).append(row)
    crops, ignored, notes = [], Counter(), []
    n_path = n_base = n_rowless = 0
    for d in dirs:
        files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        label = canonical(d.name)
        if label is None:
            ignored[d.name] += len(files)
            continue
        for f in files:
            row = by_path.get(f.name)
            if row is not None:
                n_path += 1
            elif len(by_base.get(f.name, ())) == 1:
                row = by_base[f.name][0]
                n_base += 1
            if row is not None:
                box = _box_in_file(row)
                frac = 1.0 / CONTEXT if box is None and CROP_NAME.fullmatch(f.name) else 1.0
                crops.append(SiteCrop(str(f), label, box, _group_of(row, f"file:{f}"), frac))
            elif CROP_NAME.fullmatch(f.name):
                # the collector's crop whose row is gone (pruned, expired, copied elsewhere): it was saved
                # CONTEXT times the served square, so the central square of side 1/CONTEXT is what was served
                n_rowless += 1
                crops.append(SiteCrop(str(f), label, None, _rowless_group(f.name, f"file:{f}"),
                                      served_fraction=1.0 / CONTEXT))
            else:
                crops.append(SiteCrop(str(f), label))
    if not crops:
        raise MaskwatchError(f"no labelled crops in {root} (expected {', '.join(LABELS)} folders of images)")
    n_boxed = sum(c.box is not None for c in crops)
    if n_boxed:
        how = f"{n_path} matched by path relative to the collect folder"
        if n_base:
            how += f", {n_base} by base name only"
        notes.append(f"{n_boxed} collected crops re-cut to their served box (from {collect_dir}; {how}), "
                     f"{len(crops) - n_boxed - n_rowless} taken whole")
    if n_rowless:
        notes.append(f"warning: {n_rowless} collected crops have no collected.csv row (pruned, expired or copied "
                     f"elsewhere): cut to their central 1/{CONTEXT:g} square, where the collector saves the served crop")
    return crops, ignored, notes


def check_counts(counts: Counter) -> list[str]:
    """Warnings for classes with 1..MIN_PER_CLASS-1 site crops; an error when no class can be held out.

    A class with a few crops is a warning, not an error: a site may truly see almost no badly worn
    masks, and refusing would push the user to mislabel or delete. Those crops all train (none held
    out, so that class has no before/after), and the replay pool keeps the class alive.

    >>> check_counts(Counter(with_mask=20, without_mask=12, mask_worn_incorrectly=2))
    ['only 2 mask_worn_incorrectly crops (fewer than 5): all of them train, none is held out, so its recall is not reported; label more to measure it']
    >>> check_counts(Counter(with_mask=3))
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: too few labelled crops: with_mask 3; fine-tuning needs at least 5 site crops in one class, with or without --replay (label more)
    """
    if not any(n >= MIN_PER_CLASS for n in counts.values()):
        have = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        raise MaskwatchError(f"too few labelled crops: {have}; fine-tuning needs at least {MIN_PER_CLASS} site crops "
                             f"in one class, with or without --replay (label more)")
    return [f"only {n} {lab} crops (fewer than {MIN_PER_CLASS}): all of them train, none is held out, so its recall "
            f"is not reported; label more to measure it" for lab, n in counts.items() if 0 < n < MIN_PER_CLASS]


def holdout_split(labels: list[str], fraction: float, seed: int, groups: list[str] | None = None) -> np.ndarray:
    """Boolean mask of held-out crops: about ``fraction`` of each class with >= MIN_PER_CLASS crops, seeded.

    Split by ``groups`` (the crops of one collected track, one source image): a group is wholly held
    out or wholly trains, so one person is never on both sides (sklearn's StratifiedGroupKFold keeps
    the class mix as well as the groups allow). A group with a crop of a class that has fewer than
    MIN_PER_CLASS crops trains; every class keeps at least one training crop.

    >>> m = holdout_split(["a"] * 10 + ["b"] * 3, 0.2, 0)
    >>> int(m[:10].sum()), int(m[10:].sum())
    (2, 0)
    >>> m = holdout_split(["a"] * 10, 0.5, 0, groups=["p", "p", "q", "q", "r", "r", "s", "s", "t", "t"])
    >>> int(m.sum()) % 2, all(m[i] == m[i + 1] for i in range(0, 10, 2))
    (0, True)
    """
    from sklearn.model_selection import StratifiedGroupKFold

    labels_arr = np.asarray(labels)
    n = len(labels_arr)
    mask = np.zeros(n, bool)
    if fraction <= 0 or n == 0:
        return mask
    groups_arr = np.asarray(groups if groups is not None else [f"#{i}" for i in range(n)])
    counts = Counter(labels)
    small = {lab for lab, k in counts.items() if k < MIN_PER_CLASS}
    blocked = set(groups_arr[np.isin(labels_arr, list(small))]) if small else set()
    eligible = np.flatnonzero(~np.isin(groups_arr, list(blocked)))
    n_groups = len(set(groups_arr[eligible]))
    if n_groups < 2:
        return mask
    # fold 0 of k folds holds out 1/k; above a half, all folds but fold 0 do
    k = max(2, int(round(1 / fraction if fraction <= 0.5 else 1 / (1 - fraction))))
    k = min(k, n_groups)
    rng = np.random.default_rng(seed)
    order = eligible[rng.permutation(len(eligible))]   # the splitter's ties follow the input order: seed it too
    import warnings

    with warnings.catch_warnings():   # "the least populated class has only N members": expected for a small site
        warnings.simplefilter("ignore", UserWarning)
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        _, fold0 = next(splitter.split(np.zeros(len(order)), labels_arr[order], groups_arr[order]))
    held = order[fold0]
    if fraction > 0.5:
        held = np.setdiff1d(order, held)
    mask[held] = True
    for lab in counts:   # a class wholly held out would not train: its groups train
        idx = np.flatnonzero(labels_arr == lab)
        if mask[idx].all():
            mask[np.isin(groups_arr, list(set(groups_arr[idx])))] = False
    return mask


@dataclass
class Preflight:
    """What a fine-tune of a site folder will be, known before anything is trained (:func:`preflight`)."""

    crops: list[SiteCrop]
    counts: Counter
    ignored: Counter
    held: np.ndarray                 # the hold-out mask over ``crops``
    notes: list[str]                 # how the crops were read (printed indented)
    warnings: list[str]              # printed as ``warning: ...``: few crops of a class, one class, nothing held out
    replay_note: str                 # what is replayed, or plainly that nothing is

    @property
    def single_class(self) -> str | None:
        """The one class every labelled crop has, or None when there are two or more."""
        present = [lab for lab, n in self.counts.items() if n > 0]
        return present[0] if len(present) == 1 else None

    def lines(self) -> list[str]:
        """The one-line summaries the CLI prints and the app shows before it trains."""
        return [f"warning: {w}" for w in self.warnings] + [self.replay_note]


def single_class_problem(counts: Counter) -> str | None:
    """The text about a set whose crops are all one class, or None.

    >>> single_class_problem(Counter(with_mask=15))
    'all 15 labelled crops are with_mask: trained on one class alone, the model drifts towards calling every face with_mask, and a hold-out of that class alone cannot show it'
    >>> single_class_problem(Counter(with_mask=15, without_mask=1)) is None
    True
    """
    present = [(lab, n) for lab, n in counts.items() if n > 0]
    if len(present) != 1:
        return None
    lab, n = present[0]
    return (f"all {n} labelled crops are {lab}: trained on one class alone, the model drifts towards calling every "
            f"face {lab}, and a hold-out of that class alone cannot show it")


def preflight(cfg: FinetuneConfig) -> Preflight:
    """Read the site folder and check what the run would be, without TensorFlow (the app calls it
    before it starts the background fine-tune, and asks before a single-class one).

    Raises a one-line :class:`MaskwatchError` for what is refused: unknown folders, too few crops,
    and a single-class set without ``--replay`` unless ``--allow-single-class``. A single class with
    replay or with the flag, too few crops to hold any out, and a class with 1-4 crops are warnings."""
    crops, ignored, notes = read_site(cfg.data)
    counts = Counter(c.label for c in crops)
    warnings = check_counts(counts)
    one = single_class_problem(counts)
    if one is not None:
        if cfg.replay:
            warnings.append(f"single class: {one}; the replay faces are the only other classes it sees")
        elif cfg.allow_single_class:
            warnings.append(f"single class: {one}, and there is no replay to show it the others "
                            f"(--allow-single-class)")
        else:
            raise MaskwatchError(f"{one}; label faces of the other classes too, mix in a training pool with "
                                 f"--replay POOL, or pass --allow-single-class to train on it anyway")
    held = holdout_split([c.label for c in crops], cfg.holdout, cfg.seed, [c.group for c in crops])
    if not held.any():
        if cfg.holdout <= 0:
            warnings.append("nothing held out (--holdout 0): there will be no before/after measure of the new model")
        else:
            warnings.append(f"nothing held out: {len(crops)} crops are too few to hold any out (a class needs "
                            f"{MIN_PER_CLASS} crops from at least 2 tracks or images), so there will be no "
                            f"before/after measure of the new model; label more")
    if cfg.replay:
        replay_note = (f"replay: {cfg.replay_size} training faces of {cfg.replay} (its own class mix) train "
                       f"next to the site crops, so the sources it knew are not forgotten")
    else:
        replay_note = ("no replay: only these site crops train (maskwatch ships no training pool; --replay POOL "
                       "mixes in faces of a pool made by maskwatch-train prepare), so what the model knew of "
                       "other cameras may drift")
    return Preflight(crops, counts, ignored, held, notes, warnings, replay_note)


def _replay_rows(manifest: str | Path, size: int, seed: int) -> list[dict]:
    """``size`` train faces and ``size // 2`` val faces of a prepared pool, drawn at random (seeded).

    Drawn in the pool's own class mix, not balanced per class: balanced replay (a third of it worn
    incorrectly, against 5% in the pool) taught the rare class's prior and the old sources lost
    0.04 macro F1 (benchmarks/site_adaptation.py), with_mask faces turning into mask_worn_incorrectly.
    """
    from train.data import load_manifest

    rows = [r for r in load_manifest(manifest) if r.get("generated") != "1"]
    rng = np.random.default_rng(seed)
    out = []
    for split, k in (("train", size), ("val", size // 2)):
        cand = [r for r in rows if r["split"] == split]
        out += [cand[i] for i in sorted(rng.permutation(len(cand))[:k])]
    if not any(r["split"] == "train" for r in out):
        raise MaskwatchError(f"no training faces in the replay manifest {manifest}")
    return out


def _served_face_box(path: str, fraction: float, margin: float) -> tuple[float, float, float, float]:
    """The face box whose served square (``square_box(box, margin)``) is the central square of side
    ``fraction`` of the image's shorter side: how a collected crop without its row is cut."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError as e:
        raise MaskwatchError(f"cannot read {path}: {e}") from None
    side = min(w, h) * fraction / (1.0 + 2.0 * margin)
    return (w / 2 - side / 2, h / 2 - side / 2, w / 2 + side / 2, h / 2 + side / 2)


def _site_rows(crops: list[SiteCrop], held: np.ndarray, margin: float = 0.2) -> list[dict]:
    rows = []
    for c, h in zip(crops, held):
        box, box_from = c.box, "collected"
        if box is None and c.served_fraction < 1.0:
            box, box_from = _served_face_box(c.path, c.served_fraction, margin), "collected_central"
        b = box or (None, None, None, None)
        w = (b[2] - b[0]) if box else None
        hh = (b[3] - b[1]) if box else None
        rows.append({"path": c.path, "source": SITE_SOURCE, "label": c.label, "face_w": w, "face_h": hh,
                     "split": "test" if h else "train", "group": f"site:{c.group}",
                     "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3],
                     "box_from": box_from if box else "crop", "source_label": c.label})
    return rows


# --------------------------------------------------------------------------- the base model


def base_metadata(model_path: str | Path) -> dict:
    """The metadata JSON of the int8 model the float model belongs to (``X.keras`` -> ``X.json``), or {}."""
    p = Path(model_path)
    for cand in (p.with_suffix(".json"), p.parent / "mask_classifier.json"):
        if cand.is_file() and cand != p:
            try:
                meta = json.loads(cand.read_text())
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(meta, dict) and "labels" in meta:
                return meta
    return {}


def _base_probs(model_path: Path, float_model, x: np.ndarray) -> tuple[np.ndarray, str]:
    """Probabilities of the model the user runs now: the int8 file next to the float one, else the float model."""
    from train.export import tflite_predict

    tfl = model_path.with_suffix(".tflite")
    if tfl.is_file():
        try:
            return tflite_predict(tfl, x), f"{tfl} (int8)"
        except (ValueError, RuntimeError):
            pass
    return float_model.predict(x.astype(np.float32), batch_size=128, verbose=0), f"{model_path} (float)"


def _report(y: np.ndarray, probs: np.ndarray) -> dict:
    from train.export import basic_metrics

    m = basic_metrics(y, probs)
    present = [lab for lab in LABELS if m["per_class"][lab]["support"] > 0]
    if len(present) < len(LABELS):  # macro F1 over the classes that are held out, not zeros for absent ones
        from sklearn.metrics import f1_score

        labs = [LABELS.index(lab) for lab in present]
        m["macro_f1"] = round(float(f1_score(y, probs.argmax(1), labels=labs, average="macro", zero_division=0)), 4)
        m["macro_f1_over"] = present
    return {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "recall": {lab: (m["per_class"][lab]["recall"] if lab in present else None) for lab in LABELS},
            "confusion_matrix": m["confusion_matrix"]}


# --------------------------------------------------------------------------- training


def _train(model, x_tr, y_tr, cfg: FinetuneConfig, progress: bool, on_batch=None) -> list[dict]:
    """The head alone, then the head and the top blocks of the backbone (BatchNorm frozen).

    ``on_batch(fraction, detail)``: called after each batch (at most every 0.2 s) and epoch, the
    fraction of all training batches done."""
    import keras

    from train.augment import Augmenter
    from train.fit import _batches_class, _tqdm_callback, class_weights
    from train.models import backbone_of, set_backbone_trainable

    onehot = np.eye(len(LABELS), dtype=np.float32)[y_tr]
    Batches = _batches_class()
    data = Batches(x_tr, onehot, cfg.batch_size, Augmenter(cfg.augment, cfg.seed), cfg.seed)
    cw = class_weights(y_tr, cfg.class_weight)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing)
    history: list[dict] = []
    try:
        base = backbone_of(model)
    except ValueError:
        base = None   # a model without a nested "backbone": everything trains in both phases
    epochs_head = max(1, cfg.epochs // 3) if cfg.epochs > 1 else cfg.epochs
    phases = [("head", epochs_head, cfg.lr_head), ("top", cfg.epochs - epochs_head, cfg.lr_top)]
    for phase, epochs, lr in phases:
        if epochs <= 0:
            continue
        if base is not None:
            if phase == "head":
                base.trainable = False
            else:
                set_backbone_trainable(model, cfg.top_fraction)
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
        cbs = [_tqdm_callback(f"finetune {phase}", epochs, len(data))] if progress else []
        if on_batch is not None:
            cbs.append(_batch_callback(on_batch, phase, epochs, len(data), done_before=len(history) * len(data),
                                       total=cfg.epochs * len(data)))
        h = model.fit(data, epochs=epochs, class_weight=cw, callbacks=cbs, verbose=0)
        for i in range(epochs):
            history.append({"phase": phase, "epoch": i + 1, **{k: float(v[i]) for k, v in h.history.items()}})
    return history


def _batch_callback(on_batch, phase: str, epochs: int, steps: int, done_before: int, total: int):
    import keras

    class BatchProgress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch, self.last = 0, 0.0

        def _say(self, batches: int, force: bool = False) -> None:
            now = time.monotonic()
            if force or now - self.last >= 0.2:
                self.last = now
                on_batch((done_before + batches) / max(1, total), f"{phase} epoch {self.epoch + 1}/{epochs}")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self._say(epoch * steps, force=True)

        def on_train_batch_end(self, batch, logs=None):
            self._say(self.epoch * steps + batch + 1)

        def on_epoch_end(self, epoch, logs=None):
            self._say((epoch + 1) * steps, force=True)

    return BatchProgress()


def default_version(base_version: str, today: _dt.date | None = None) -> str:
    """``0.4.0`` -> ``0.4.0+ft.20261129`` (a fine-tune of an already fine-tuned model keeps one ``+ft``).

    >>> default_version("0.4.0", _dt.date(2026, 11, 29)), default_version("0.4.0+ft.20261101", _dt.date(2026, 11, 29))
    ('0.4.0+ft.20261129', '0.4.0+ft.20261129')
    """
    today = today or _dt.datetime.now(_dt.timezone.utc).date()
    return f"{base_version.split('+')[0]}+ft.{today:%Y%m%d}"


def validate(cfg: FinetuneConfig) -> None:
    """Every option checked before anything is read or written: a bad one is a one-line error naming it.

    >>> validate(FinetuneConfig(data="d", out="o", batch_size=0))
    Traceback (most recent call last):
    ...
    maskwatch.errors.MaskwatchError: --batch-size must be at least 1, not 0
    """
    checks = [
        (0 <= cfg.holdout < 1, f"--holdout must be in [0, 1), not {cfg.holdout}"),
        (0 < cfg.site_share < 1, f"--site-share must be in (0, 1), not {cfg.site_share}"),
        (cfg.epochs >= 1, f"--epochs must be at least 1, not {cfg.epochs}"),
        (cfg.batch_size >= 1, f"--batch-size must be at least 1, not {cfg.batch_size}"),
        (cfg.calib_size >= 1, f"--calib-size must be at least 1, not {cfg.calib_size}"),
        (cfg.replay_size >= 0, f"--replay-size must be at least 0, not {cfg.replay_size}"),
        (0 < cfg.top_fraction <= 1, f"--top-fraction must be in (0, 1], not {cfg.top_fraction}"),
        (cfg.lr_head > 0, f"--lr-head must be above 0, not {cfg.lr_head}"),
        (cfg.lr_top > 0, f"--lr-top must be above 0, not {cfg.lr_top}"),
        (0 <= cfg.label_smoothing < 1, f"label_smoothing must be in [0, 1), not {cfg.label_smoothing}"),
    ]
    for ok, message in checks:
        if not ok:   # also False for NaN
            raise MaskwatchError(message)
    model_path = Path(cfg.model)
    if model_path.suffix != ".keras" and not model_path.is_dir():
        raise MaskwatchError(f"--model must be a float .keras model (the .tflite cannot be trained), not {model_path}")
    if not model_path.exists():
        raise MaskwatchError(f"--model: no float model at {model_path} (the shipped one is "
                             f"{default_model()}; a fine-tune's is RUN/finetuned.keras)")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise MaskwatchError(f"--out must be a folder, and {out} is a file")
    if cfg.replay:
        replay = Path(cfg.replay)
        if not (replay.is_file() or (replay / "manifest.csv").is_file()):
            raise MaskwatchError(f"--replay: no manifest at {replay} (a prepared pool folder with manifest.csv, "
                                 f"from maskwatch-train prepare)")


def finetune(cfg: FinetuneConfig, progress: bool = True, say=print, events=None) -> dict:
    """Fine-tune per ``cfg``; writes ``RUN/mask_classifier.tflite`` (+ ``.json``), ``RUN/finetuned.keras``,
    ``RUN/finetune.json`` (the report, also returned) and ``RUN/data/manifest.csv``.

    ``events(fraction, stage, detail)``, when given, is called as the run goes (0..1 of the whole
    run; ``--progress-lines`` prints them as ``@progress`` lines)."""
    def event(fraction: float, stage: str, detail: str = "") -> None:
        if events is not None:
            events(min(1.0, max(0.0, fraction)), stage, detail)

    t0 = time.time()
    event(0.0, "checking", "reading the labelled crops")
    validate(cfg)
    model_path = Path(cfg.model)
    pre = preflight(cfg)   # before TensorFlow is imported: a refused set is a one-line error in a second
    crops, counts, ignored, notes, warnings = pre.crops, pre.counts, pre.ignored, pre.notes, pre.warnings
    # the replay pool is read before the run folder exists: a bad pool leaves no empty run folder behind
    rep = _replay_rows(cfg.replay, cfg.replay_size, cfg.seed) if cfg.replay else []

    from train.data import load_split, write_manifest
    from train.export import export, load_keras_model
    from train.fit import seed_everything

    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MaskwatchError(f"cannot create --out folder {out}: {e.strerror or e}") from None
    seed_everything(cfg.seed)

    model = load_keras_model(model_path)
    size = int(model.input_shape[1])
    meta0 = base_metadata(model_path)
    margin = float(meta0.get("crop_margin", 0.2))
    base_version = str(meta0.get("version", "0.0.0"))
    held = pre.held
    rows = _site_rows(crops, held, margin) + rep
    data_dir = out / "data"
    write_manifest(rows, data_dir / "manifest.csv")
    # the recipe's margin and backbone, for train.export (it reads the model folder's config.json)
    backbone = meta0.get("backbone") or model.name
    (out / "config.json").write_text(json.dumps({"margin": margin, "backbone": backbone, "input_size": size,
                                                 "finetune": asdict(cfg)}, indent=2))

    # one load per split, cached where train.export looks, so the export does not cut the crops again
    cache = data_dir / "cache"
    event(0.02, "loading", f"cutting {len(rows)} crops")
    x_all, y_all = load_split(rows, "train", size, margin, cache_dir=cache, progress=progress)
    is_site = np.array([r["source"] == SITE_SOURCE for r in rows if r["split"] == "train"], bool)
    x_site_tr, y_site_tr = x_all[is_site], y_all[is_site]
    x_rep, y_rep = x_all[~is_site], y_all[~is_site]
    x_hold, y_hold = load_split(rows, "test", size, margin, cache_dir=cache, progress=progress)
    if len(x_site_tr) == 0:
        raise MaskwatchError("every labelled crop was held out; lower --holdout")
    # site crops repeated to about ``site_share`` of what each epoch sees next to the replay faces
    # (a few dozen crops alone would be drowned by the replay; repeated to half, they over-fit and the
    # old sources lost 0.05 macro F1 in benchmarks/site_adaptation.py)
    want = cfg.site_share / max(1e-6, 1 - cfg.site_share) * len(x_rep)
    repeat = max(1, int(round(want / len(x_site_tr)))) if len(x_rep) else 1
    x_tr = np.concatenate([np.repeat(x_site_tr, repeat, axis=0), x_rep])
    y_tr = np.concatenate([np.repeat(y_site_tr, repeat), y_rep])

    before, before_of = None, None
    if len(x_hold):
        p0, before_of = _base_probs(model_path, model, x_hold)
        before = _report(y_hold, p0)
    say(f"site crops: {len(crops)} (" + ", ".join(f"{lab} {counts.get(lab, 0)}" for lab in LABELS) + f"); "
        f"training on {len(x_site_tr)} (x{repeat}) + {len(x_rep)} replay, holding out {len(x_hold)}"
        + ("; left out: " + ", ".join(f"{k} {v}" for k, v in ignored.items()) if ignored else ""))
    for n in notes:
        say("  " + n)
    for line in pre.lines():
        say(line)

    t1 = time.time()
    event(0.1, "training", "")
    history = _train(model, x_tr, y_tr, cfg, progress,
                     lambda f, detail: event(0.1 + 0.7 * f, "training", detail))
    t_train = time.time() - t1
    keras_path = out / "finetuned.keras"
    model.save(keras_path)

    version = cfg.version or default_version(base_version)
    if cfg.temperature == "base":
        apply_t = bool(meta0.get("calibration", {}).get("applied", "temperature" in meta0 and meta0["temperature"] != 1.0))
    else:
        apply_t = cfg.temperature == "fit"
    tflite = out / "mask_classifier.tflite"
    t2 = time.time()
    event(0.8, "exporting", "int8 TFLite, calibrated")
    command = cfg.extra.get("command", "")
    meta = export(keras_path, tflite, data_dir, calib_size=cfg.calib_size, seed=cfg.seed, margin=margin,
                  version=version, command=command, training_seconds=round(t_train, 1), progress=progress,
                  apply_temperature=apply_t)
    t_export = time.time() - t2
    event(0.97, "measuring", "the held-out crops" if len(x_hold) else "")
    after = None
    if len(x_hold):
        from train.export import tflite_predict

        after = _report(y_hold, tflite_predict(tflite, x_hold))
    # the metadata says where the model came from (the app shows version and source)
    meta["base_model"] = {"path": str(model_path), "version": base_version}
    meta["finetune"] = {"site_crops": dict(counts), "held_out": int(len(x_hold)), "replay": cfg.replay,
                        "replay_faces": int(len(x_rep)), "before": before, "after": after}
    tflite.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    report = {"model": str(tflite), "version": version, "base_model": str(model_path), "base_version": base_version,
              "before_measured_with": before_of, "site_crops": {lab: counts.get(lab, 0) for lab in LABELS},
              "ignored_folders": dict(ignored), "site_train": int(len(x_site_tr)), "site_repeat": repeat,
              "held_out": int(len(x_hold)), "replay_faces": int(len(x_rep)), "before": before, "after": after,
              "warnings": warnings, "history": history, "seconds_train": round(t_train, 1),
              "seconds_export": round(t_export, 1), "seconds_total": round(time.time() - t0, 1),
              "config": asdict(cfg)}
    (out / "finetune.json").write_text(json.dumps(report, indent=2) + "\n")
    event(1.0, "done", str(tflite))
    return report


def format_report(r: dict) -> list[str]:
    """The terminal summary of a :func:`finetune` report."""
    lines = []
    if r["before"] and r["after"]:
        b, a = r["before"], r["after"]
        lines.append(f"held-out site crops ({r['held_out']}): macro F1 {b['macro_f1']:.3f} -> {a['macro_f1']:.3f}; recall "
                     + ", ".join(f"{lab} {b['recall'][lab]:.2f} -> {a['recall'][lab]:.2f}" for lab in LABELS
                                 if b["recall"][lab] is not None))
    elif r["config"].get("holdout", 0) <= 0:
        lines.append("no site crops held out (--holdout 0): no before/after")
    else:
        lines.append("no site crops held out (too few to hold any out): no before/after")
    lines.append(f"fine-tuned in {r['seconds_train']:.0f} s, exported in {r['seconds_export']:.0f} s "
                 f"(total {r['seconds_total']:.0f} s); version {r['version']}")
    lines.append(f"wrote {r['model']} (+ .json); use it: maskwatch --model {r['model']}")
    return lines


def register(sub) -> None:
    """Add the ``finetune`` subcommand to ``maskwatch-train``."""
    d = FinetuneConfig(data="", out="")
    p = sub.add_parser("finetune", help="adapt the shipped model to a site from a folder of labelled crops -> int8 model")
    p.add_argument("--data", required=True, help="ImageFolder of face crops (<label>/ folders; the review tab's "
                   "DIR/labelled or DIR itself); not_a_face/ and skip/ folders are left out")
    p.add_argument("--out", required=True, help="run folder: mask_classifier.tflite + .json, finetune.json, finetuned.keras")
    p.add_argument("--model", default=d.model, help="float .keras model to start from (default %(default)s)")
    p.add_argument("--replay", default=None, metavar="MANIFEST",
                   help="prepared pool (folder with manifest.csv) whose faces are mixed in so old sites are not forgotten")
    p.add_argument("--replay-size", type=int, default=d.replay_size,
                   help="replay training faces, drawn in the pool's class mix (default %(default)s)")
    p.add_argument("--site-share", type=float, default=d.site_share,
                   help="with --replay: share of each epoch made of site crops (repeated to reach it; default %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs in all, a third head-only (default %(default)s)")
    p.add_argument("--holdout", type=float, default=d.holdout,
                   help="fraction of each class's site crops held out for the before/after report (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr-head", type=float, default=d.lr_head)
    p.add_argument("--lr-top", type=float, default=d.lr_top)
    p.add_argument("--top-fraction", type=float, default=d.top_fraction,
                   help="top fraction of the backbone's layers trained after the head (default %(default)s)")
    p.add_argument("--calib-size", type=int, default=d.calib_size, help="crops that calibrate the int8 export")
    p.add_argument("--model-version", dest="ft_version", default=None,
                   help="version written to the metadata (default <base version>+ft.<date>)")
    p.add_argument("--temperature", choices=("base", "fit", "none"), default=d.temperature,
                   help="base: apply a fitted temperature only if the base model's metadata does (default)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--allow-single-class", action="store_true",
                   help="train even when every labelled crop is one class and there is no --replay (refused "
                        "otherwise: the model would learn to call every face that class)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--progress-lines", action="store_true",
                   help="print machine-readable '@progress {json}' lines and an '@result {json}' line instead of "
                        "progress bars (the app's background fine-tune reads them)")
    p.set_defaults(func=_cmd_finetune)


def _cmd_finetune(args) -> int:
    from train.cli import command_line

    cfg = FinetuneConfig(data=args.data, out=args.out, model=args.model, replay=args.replay,
                         replay_size=args.replay_size, site_share=args.site_share,
                         epochs=args.epochs, holdout=args.holdout,
                         batch_size=args.batch_size, lr_head=args.lr_head, lr_top=args.lr_top,
                         top_fraction=args.top_fraction, calib_size=args.calib_size, version=args.ft_version,
                         temperature=args.temperature, seed=args.seed, allow_single_class=args.allow_single_class,
                         extra={"command": command_line(args)})
    if args.progress_lines:
        def events(fraction: float, stage: str, detail: str) -> None:
            print(PROGRESS_PREFIX + json.dumps({"fraction": round(fraction, 4), "stage": stage, "detail": detail}),
                  flush=True)

        def say(line: str) -> None:
            print(line, flush=True)

        report = finetune(cfg, progress=False, say=say, events=events)
    else:
        report = finetune(cfg, progress=not args.no_progress)
    for line in format_report(report):
        print(line, flush=True)
    if args.progress_lines:
        summary = {k: report[k] for k in ("model", "version", "held_out", "before", "after", "warnings",
                                          "site_crops", "replay_faces")}
        summary["summary"] = format_report(report)[0]
        print(RESULT_PREFIX + json.dumps(summary), flush=True)
    return 0

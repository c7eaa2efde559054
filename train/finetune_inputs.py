"""What a fine-tune reads and checks before TensorFlow is imported: its options
(:class:`FinetuneConfig`, :func:`validate`), the site folder of labelled crops (:func:`read_site`,
``collected.csv`` boxes and tracks), the counts and the person-grouped hold-out, :func:`preflight`
(what the run will be, said before it starts), and the rows of the run's manifest: the site crops
(:func:`_site_rows`) and the replay faces of a prepared pool (:func:`_replay_rows`).

:mod:`train.finetune` trains on them and re-exports every name here; the app's Review tab calls
:func:`preflight` and :func:`validate` through it.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from maskwatch.paths import models_dir

DEFAULT_MODEL_NAME = "mask_classifier.keras"


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

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

The options, the site folder, the hold-out and :func:`preflight` are :mod:`train.finetune_inputs`
(no TensorFlow; every name is importable from here too); this module trains, measures and exports.

Example::

    from train.finetune import FinetuneConfig, finetune
    report = finetune(FinetuneConfig(data="site/labelled", out="runs/site_ft", replay="runs/pool"))
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError
from train.finetune_inputs import (  # noqa: F401 - re-exported: the site folder and the checks lived here
    DEFAULT_MODEL_NAME, IGNORED_FOLDERS, MIN_PER_CLASS, SITE_SOURCE, FinetuneConfig, Preflight, SiteCrop, _box_in_file,
    _float, _group_of, _read_csv, _replay_rows, _rowless_group, _served_face_box, _site_rows, canonical, check_counts,
    default_model, holdout_split, preflight, read_site, single_class_problem, site_root, validate,
)

PROGRESS_PREFIX = "@progress "
RESULT_PREFIX = "@result "
"""``--progress-lines``: ``@progress {"fraction": 0.42, "stage": "training", "detail": "top epoch 2/4"}`` lines
while it runs and one ``@result {"model": ..., "warnings": [...], ...}`` line at the end (stdout, flushed)."""


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

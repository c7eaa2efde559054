"""Two-phase transfer learning: frozen backbone + head, then fine-tune the top of the backbone.

A run folder gets ``config.json``, ``history.csv`` (both phases, a ``phase`` column), ``best.keras``
(best validation loss over both phases), ``last.keras`` and ``fit.json`` (timings, val metrics).

Example::

    from train.fit import FitConfig, fit
    fit(FitConfig(data="runs/data", out="runs/lite0", backbone="efficientnet_lite0", input_size=64))
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.crop import DEFAULT_MARGIN
from maskwatch.errors import MaskwatchError


@dataclass
class FitConfig:
    data: str = "runs/data"                 # a prepare output folder (manifest.csv)
    out: str = "runs/fit"
    backbone: str = "efficientnet_lite0"
    input_size: int = 64
    margin: float = DEFAULT_MARGIN
    weights: str = "imagenet"               # imagenet | none | path to a backbone .weights.h5
    alpha: float = 1.0                      # MobileNetV2 width multiplier
    lite0_blocks: int | None = 11           # EfficientNet-Lite0 blocks kept (16 = all)
    augment: str = "lowres_heavy"  # the shipped recipe (models/MODEL_CARD.md)
    epochs_head: int = 2
    epochs_finetune: int = 12
    batch_size: int = 64
    lr_head: float = 1e-3
    lr_finetune: float = 5e-4
    finetune_fraction: float = 0.8          # top fraction of backbone layers unfrozen in phase 2
    class_weight: str = "sqrt"              # sqrt | balanced | none
    label_smoothing: float = 0.05
    dropout: float = 0.2
    patience: int = 3
    seed: int = 0
    max_train: int | None = None            # cap on training faces (quick experiments)
    extra: dict = field(default_factory=dict)


RECIPE_EXCLUDED = ("data", "out", "extra")
"""FitConfig fields that say where, not how: left out of :func:`recipe_of`."""


def recipe_of(cfg: FitConfig) -> dict:
    """The training recipe of ``cfg`` (every field but data, out and extra): what must match for two
    runs to be comparable, or for a stored result to be reused."""
    return {k: v for k, v in asdict(cfg).items() if k not in RECIPE_EXCLUDED}


def add_fit_arguments(p) -> None:
    """The recipe options of ``maskwatch-train fit`` (all but --data/--out), defaults from :class:`FitConfig`.

    Shared by ``fit`` and ``loso`` so that both train the same recipe from the same flags."""
    from train.augment import PRESETS
    from train.models import BACKBONES

    d = FitConfig()
    p.add_argument("--backbone", choices=BACKBONES, default=d.backbone)
    p.add_argument("--size", type=int, default=d.input_size, help="model input side in px (default %(default)s)")
    p.add_argument("--margin", type=float, default=d.margin)
    p.add_argument("--weights", default=d.weights, help="imagenet, none, or a backbone .weights.h5 file")
    p.add_argument("--alpha", type=float, default=d.alpha, help="MobileNetV2 width multiplier")
    p.add_argument("--lite0-blocks", type=int, default=d.lite0_blocks,
                   help="EfficientNet-Lite0 blocks kept (16 = whole network; default %(default)s)")
    p.add_argument("--augment", choices=tuple(PRESETS), default=d.augment)
    p.add_argument("--epochs-head", type=int, default=d.epochs_head)
    p.add_argument("--epochs-finetune", type=int, default=d.epochs_finetune)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr-head", type=float, default=d.lr_head)
    p.add_argument("--lr-finetune", type=float, default=d.lr_finetune)
    p.add_argument("--finetune-fraction", type=float, default=d.finetune_fraction,
                   help="top fraction of backbone layers fine-tuned")
    p.add_argument("--class-weight", choices=("sqrt", "balanced", "none"), default=d.class_weight,
                   help="class weights: sqrt of balanced (default), balanced, none")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--max-train", type=int, default=d.max_train, help="cap the number of training faces")
    p.add_argument("--seed", type=int, default=d.seed)


def fit_config_from_args(args, data: str, out: str, extra: dict | None = None) -> FitConfig:
    """The :class:`FitConfig` of parsed :func:`add_fit_arguments` options."""
    return FitConfig(data=str(data), out=str(out), backbone=args.backbone, input_size=args.size, margin=args.margin,
                     weights=args.weights, alpha=args.alpha, lite0_blocks=args.lite0_blocks, augment=args.augment,
                     epochs_head=args.epochs_head, epochs_finetune=args.epochs_finetune, batch_size=args.batch_size,
                     lr_head=args.lr_head, lr_finetune=args.lr_finetune, finetune_fraction=args.finetune_fraction,
                     class_weight=args.class_weight, label_smoothing=args.label_smoothing, patience=args.patience,
                     seed=args.seed, max_train=args.max_train, extra=dict(extra or {}))


def seed_everything(seed: int) -> None:
    import keras

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def class_weights(y: np.ndarray, mode: str) -> dict[int, float] | None:
    """``balanced``: n / (k * count), the rare third class weighs more; ``sqrt``: its square root; ``none``."""
    if mode == "none":
        return None
    if mode not in ("balanced", "sqrt"):
        raise MaskwatchError(f"--class-weight must be sqrt, balanced or none, not {mode!r}")
    counts = np.bincount(y, minlength=len(LABELS)).astype(float)
    present = counts > 0
    w = np.ones(len(LABELS))
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    if mode == "sqrt":  # softer: full balancing made the rare class over-predicted (precision 0.57 on val)
        w = np.sqrt(w)
    return {i: float(v) for i, v in enumerate(w)}


def _batches_class():
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """Shuffled, augmented uint8 batches -> float32 0..255 (the model normalises)."""

        def __init__(self, x, y, batch_size, augmenter, seed, sample_weight=None):
            super().__init__()
            self.x, self.y, self.bs, self.aug = x, y, batch_size, augmenter
            self.sw = sample_weight
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return int(np.ceil(len(self.x) / self.bs))

        def __getitem__(self, i):
            idx = self.order[i * self.bs:(i + 1) * self.bs]
            xb = self.aug(self.x[idx]).astype(np.float32)
            if self.sw is None:
                return xb, self.y[idx]
            return xb, self.y[idx], self.sw[idx]

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(self.x))

    return AugmentedBatches


def _tqdm_callback(phase: str, epochs: int, steps: int):
    import keras
    from tqdm import tqdm

    class TqdmProgress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.bar = tqdm(total=steps, desc=f"{phase} epoch {epoch + 1}/{epochs}", unit="batch", leave=True)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)
            if logs and batch % 10 == 0:
                self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}", acc=f"{logs.get('accuracy', 0):.3f}")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")})
            self.bar.close()

    return TqdmProgress()


def _val_metrics(model, x, y, batch_size=256) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    pred = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0).argmax(1)
    rec = recall_score(y, pred, labels=range(len(LABELS)), average=None, zero_division=0)
    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=range(len(LABELS)), average="macro", zero_division=0)),
            "recall": {lab: float(r) for lab, r in zip(LABELS, rec)}}


def fit(cfg: FitConfig, progress: bool = True) -> Path:
    """Train per ``cfg``; returns the run folder (with ``best.keras``)."""
    import keras

    from train.augment import Augmenter
    from train.data import load_manifest, load_split
    from train.models import backbone_of, build_model, set_backbone_trainable

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    seed_everything(cfg.seed)
    t0 = time.time()
    rows = load_manifest(cfg.data)
    cache = Path(cfg.data) / "cache"
    x_tr, y_tr = load_split(rows, "train", cfg.input_size, cfg.margin, cache_dir=cache, progress=progress)
    x_va, y_va = load_split(rows, "val", cfg.input_size, cfg.margin, cache_dir=cache, progress=progress)
    if len(x_tr) == 0:
        raise MaskwatchError(f"no training faces in {cfg.data}")
    if len(x_va) == 0:  # tiny datasets: validate on the training faces rather than fail
        x_va, y_va = x_tr, y_tr
    if cfg.max_train and len(x_tr) > cfg.max_train:
        keep = np.random.default_rng(cfg.seed).permutation(len(x_tr))[:cfg.max_train]
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    cw = class_weights(y_tr, cfg.class_weight)
    t_data = time.time() - t0

    model = build_model(cfg.backbone, cfg.input_size, len(LABELS), cfg.weights, cfg.alpha, cfg.dropout,
                        cfg.lite0_blocks)
    Batches = _batches_class()
    train_ds = Batches(x_tr, y_tr, cfg.batch_size, Augmenter(cfg.augment, cfg.seed), cfg.seed)
    x_va_f = x_va.astype(np.float32)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing) if cfg.label_smoothing \
        else keras.losses.SparseCategoricalCrossentropy()

    class OneHot(keras.utils.PyDataset):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            xb, yb = self.inner[i]
            return xb, np.eye(len(LABELS), dtype=np.float32)[yb] if cfg.label_smoothing else yb

        def on_epoch_end(self):
            self.inner.on_epoch_end()

    train_data = OneHot(train_ds)
    val_y = np.eye(len(LABELS), dtype=np.float32)[y_va] if cfg.label_smoothing else y_va
    history_rows: list[dict] = []
    best_path = out / "best.keras"
    best = {"val_loss": np.inf}

    class KeepBest(keras.callbacks.Callback):
        """Checkpoint the best validation loss across both phases."""

        def __init__(self, phase):
            super().__init__()
            self.phase = phase

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            history_rows.append({"phase": self.phase, "epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
            if logs.get("val_loss", np.inf) < best["val_loss"]:
                best["val_loss"] = logs["val_loss"]
                self.model.save(best_path)

    def run_phase(phase, epochs, lr):
        if epochs <= 0:
            return
        model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=["accuracy"])
        cbs = [KeepBest(phase),
               keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)]
        if progress:
            cbs.append(_tqdm_callback(phase, epochs, len(train_data)))
        if epochs > 1:
            cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, cfg.patience - 1)))
        model.fit(train_data, validation_data=(x_va_f, val_y), epochs=epochs, class_weight=cw, callbacks=cbs,
                  verbose=0 if progress else 2)

    t1 = time.time()
    has_pretrained = cfg.weights != "none"
    if has_pretrained:
        backbone_of(model).trainable = False
        run_phase("head", cfg.epochs_head, cfg.lr_head)
        n_trainable = set_backbone_trainable(model, cfg.finetune_fraction)
        run_phase("finetune", cfg.epochs_finetune, cfg.lr_finetune)
    else:  # from scratch: everything trains (BatchNorm too), one phase
        n_trainable = len(backbone_of(model).layers)
        run_phase("scratch", cfg.epochs_head + cfg.epochs_finetune, cfg.lr_head)
    t_train = time.time() - t1
    model.save(out / "last.keras")
    if not best_path.is_file():
        model.save(best_path)
    with open(out / "history.csv", "w", newline="") as fh:
        keys = sorted({k for r in history_rows for k in r}, key=lambda k: (k not in ("phase", "epoch"), k))
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history_rows)
    best_model = keras.models.load_model(best_path)
    val_metrics = _val_metrics(best_model, x_va, y_va)
    summary = {"seconds_total": round(time.time() - t0, 1), "seconds_data": round(t_data, 1),
               "seconds_train": round(t_train, 1), "train_faces": int(len(x_tr)), "val_faces": int(len(x_va)),
               "class_weight": cw, "finetune_trainable_layers": n_trainable, "val": val_metrics,
               "params": int(best_model.count_params())}
    (out / "fit.json").write_text(json.dumps(summary, indent=2))
    return out

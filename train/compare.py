"""The experiment grid done properly: backbones x augmentation presets x seeds on the SAME split.

Each run is trained with :func:`train.fit.fit`, exported to int8 with :func:`train.export.export`
(calibrated on training crops) and evaluated with :func:`train.evaluate.evaluate` on the held-out
split through the app's ``MaskClassifier``. The speed column is milliseconds per face of the int8
model in the app's runtime (one thread, batches of 32 crops, median of 5 after a warm-up).

Writes ``compare.md`` (one table, plus mean ± std over seeds when there are several),
``compare.json`` (every figure) and ``compare.png`` (macro F1 and accuracy per run).

Example::

    maskwatch-train compare --manifest runs/data --backbones lowres_cnn,efficientnet_lite0 \\
        --augment none,basic,lowres --epochs 6 --seeds 0,1 --out runs/compare
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.compare")

AUTO_WEIGHTS = {"lowres_cnn": "none"}
"""``--weights auto``: ImageNet where the backbone has it (EfficientNet-Lite0 offline from its pip
package; Keras' download for the others), ``none`` for lowres_cnn or when the download fails."""


@dataclass
class CompareConfig:
    backbones: list[str]
    augments: list[str]
    seeds: list[int]
    out: str
    manifest: str | None = None     # a prepare folder / manifest.csv
    data: str | None = None         # or an ImageFolder of face crops (prepared once into out/data)
    epochs: int = 6
    input_size: int = 64
    lite0_blocks: int | None = None  # EfficientNet-Lite0 blocks kept (None: train.fit's default)
    weights: str = "auto"           # auto | none | imagenet
    batch_size: int = 64
    max_train: int | None = None
    patience: int = 3
    split: str = "test"
    calib_size: int = 200
    command: str = ""


def _parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise MaskwatchError(f"--{what} needs at least one value")
    return items


def check_config(cfg: CompareConfig) -> None:
    """Fail before any training on unknown backbones/presets or bad numbers."""
    from train.augment import PRESETS
    from train.models import BACKBONES

    bad = [b for b in cfg.backbones if b not in BACKBONES]
    if bad:
        raise MaskwatchError(f"unknown backbone {bad[0]!r}; choose from {', '.join(BACKBONES)}")
    bad = [a for a in cfg.augments if a not in PRESETS]
    if bad:
        raise MaskwatchError(f"unknown augmentation preset {bad[0]!r}; choose from {', '.join(PRESETS)}")
    if cfg.weights not in ("auto", "none", "imagenet"):
        raise MaskwatchError(f"--weights must be auto, none or imagenet, not {cfg.weights!r}")
    if cfg.epochs < 1:
        raise MaskwatchError("--epochs must be at least 1")
    if (cfg.manifest is None) == (cfg.data is None):
        raise MaskwatchError("give either --manifest (a prepare folder) or --data (an ImageFolder of crops)")


def _weights_for(backbone: str, mode: str) -> str:
    if mode == "auto":
        return AUTO_WEIGHTS.get(backbone, "imagenet")
    return mode


def _fit_config(cfg: CompareConfig, data: Path, backbone: str, augment: str, seed: int, weights: str, out: Path):
    from train.fit import FitConfig

    if weights == "none":   # trained from scratch: one phase of all epochs
        head, finetune = cfg.epochs, 0
    else:                   # frozen backbone for a third, fine-tuning for the rest
        head = max(1, round(cfg.epochs / 3))
        finetune = max(0, cfg.epochs - head)
    extra = {} if cfg.lite0_blocks is None else {"lite0_blocks": cfg.lite0_blocks}
    return FitConfig(data=str(data), out=str(out), backbone=backbone, input_size=cfg.input_size, weights=weights,
                     augment=augment, epochs_head=head, epochs_finetune=finetune, batch_size=cfg.batch_size,
                     patience=cfg.patience, seed=seed, max_train=cfg.max_train,
                     extra={"command": cfg.command, "compare": True}, **extra)


def run_one(cfg: CompareConfig, data: Path, backbone: str, augment: str, seed: int, progress: bool = False) -> dict:
    """Fit, export int8, evaluate and time one cell of the grid; returns its row."""
    from train.evaluate import evaluate, load_predictor, read_manifest_split, time_per_face
    from train.export import export
    from train.fit import fit

    name = f"{backbone}_{augment}_s{seed}"
    run_dir = Path(cfg.out) / "runs" / name
    weights = _weights_for(backbone, cfg.weights)
    t0 = time.time()
    try:
        fit(_fit_config(cfg, data, backbone, augment, seed, weights, run_dir), progress=progress)
    except MaskwatchError as e:
        if cfg.weights != "auto" or weights == "none" or "weights" not in str(e):
            raise
        log.warning("%s: %s; training from scratch instead", backbone, e)
        weights = "none"
        fit(_fit_config(cfg, data, backbone, augment, seed, weights, run_dir), progress=progress)
    fit_seconds = time.time() - t0
    tflite = run_dir / "model_int8.tflite"
    meta = export(run_dir / "best.keras", tflite, data, calib_size=cfg.calib_size, seed=seed, command=cfg.command,
                  progress=progress)
    m = evaluate(tflite, manifest=data, split=cfg.split, size_buckets=True, cache_dir=Path(data) / "cache")
    pred = load_predictor(tflite, num_threads=1)
    x = read_manifest_split(data, cfg.split, pred.input_size, pred.margin, cache_dir=Path(data) / "cache").at_size(
        pred.input_size)
    ms = time_per_face(pred, x, batch=32)
    bucket = {r["bucket"]: r for r in m["by_face_width"]}["16-32"]
    agree = meta.get("metrics", {}).get("val", {}).get("int8_float_agreement")
    row = {"run": name, "backbone": backbone, "augment": augment, "seed": seed, "weights": weights,
           "epochs": cfg.epochs, "input_size": cfg.input_size, "n_eval": m["n"], "accuracy": m["accuracy"],
           "macro_f1": m["macro_f1"], "incorrect_recall": m["incorrect_recall"],
           "two_class_accuracy": m["two_class"]["accuracy"], "accuracy_16_32": bucket["accuracy"],
           "n_16_32": bucket["n"], "int8_float_agreement_val": agree,
           "size_kb": round(tflite.stat().st_size / 1024, 1), "ms_per_face": round(ms, 3),
           "train_seconds": round(fit_seconds, 1), "model": str(tflite)}
    (run_dir / "evaluation.json").write_text(json.dumps(m, indent=2))
    return row


def _f(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def table_markdown(rows: list[dict]) -> str:
    """The one comparison table (markdown)."""
    head = ("| backbone | augment | seed | weights | accuracy | macro F1 | incorrect recall | acc. 16–32 px | "
            "2-class acc. | int8=float (val) | size KB | ms/face | train s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['augment']} | {r['seed']} | {r['weights']} | {_f(r['accuracy'])} | "
                     f"{_f(r['macro_f1'])} | {_f(r['incorrect_recall'])} | {_f(r['accuracy_16_32'])} "
                     f"(n={r['n_16_32']}) | {_f(r['two_class_accuracy'])} | {_f(r['int8_float_agreement_val'])} | "
                     f"{r['size_kb']:.0f} | {r['ms_per_face']:.2f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def summary_markdown(rows: list[dict]) -> str:
    """Mean ± std over seeds per (backbone, augment), when some cell has more than one seed."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["backbone"], r["augment"]), []).append(r)
    if all(len(g) < 2 for g in groups.values()):
        return ""
    lines = ["| backbone | augment | seeds | accuracy | macro F1 | incorrect recall |", "|---|---|---|---|---|---|"]
    for (bb, aug), g in groups.items():
        def ms(k):
            v = np.array([r[k] for r in g if r[k] is not None], float)
            return "–" if not len(v) else f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"
        lines.append(f"| {bb} | {aug} | {len(g)} | {ms('accuracy')} | {ms('macro_f1')} | {ms('incorrect_recall')} |")
    return "\n".join(lines) + "\n"


def save_chart(rows: list[dict], path: str | Path) -> Path:
    """Bar chart: macro F1 and accuracy of each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['backbone']}\n{r['augment']} s{r['seed']}" for r in rows]
    f1 = [r["macro_f1"] or 0.0 for r in rows]
    acc = [r["accuracy"] or 0.0 for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.25 * len(rows) + 1.5), 4.2), dpi=120)
    b1 = ax.bar(x - 0.2, f1, 0.4, label="macro F1", color="#3b7dd8")
    b2 = ax.bar(x + 0.2, acc, 0.4, label="accuracy", color="#f39c34")
    for bars in (b1, b2):
        for b in bars:
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() + 0.01, f"{b.get_height():.2f}", ha="center",
                    va="bottom", fontsize=7)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("int8 model on the held-out split")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(rows: list[dict], cfg: CompareConfig, data: Path, failures: list[dict]) -> Path:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps({"config": cfg.__dict__, "data": str(data), "rows": rows,
                                                  "failures": failures}, indent=2))
    if rows:
        save_chart(rows, out / "compare.png")
    n_eval = rows[0]["n_eval"] if rows else 0
    md = ["# Backbone × augmentation comparison", "",
          f"- command: `{cfg.command}`" if cfg.command else "",
          f"- data: `{data}`; every run trains on its train split and is evaluated, as int8 TFLite through the "
          f"app's MaskClassifier, on the same `{cfg.split}` split ({n_eval} faces)",
          f"- {cfg.epochs} epochs, input {cfg.input_size} px, batch {cfg.batch_size}"
          + (f", EfficientNet-Lite0 blocks {cfg.lite0_blocks}" if cfg.lite0_blocks else "")
          + (f", at most {cfg.max_train} training faces" if cfg.max_train else ""),
          "- ms/face: int8 model, 1 thread, batches of 32 crops, median of 5 runs on this machine", "",
          table_markdown(rows) if rows else "_no run finished_", ""]
    summary = summary_markdown(rows)
    if summary:
        md += ["## Mean ± std over seeds", "", summary, ""]
    if failures:
        md += ["## Failed runs", ""] + [f"- {f['run']}: {f['error']}" for f in failures] + [""]
    if rows:
        md += ["![macro F1 and accuracy per run](compare.png)", ""]
    (out / "compare.md").write_text("\n".join(line for line in md if line is not None))
    return out / "compare.md"


def compare(cfg: CompareConfig, progress: bool = True) -> list[dict]:
    """Run the grid; returns the rows (also written to ``cfg.out``)."""
    check_config(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.data is not None:
        from train.data import prepare

        data = out / "data"
        prepare([cfg.data], data, size=cfg.input_size, redetect="none", progress=progress)
    else:
        from train.data import load_manifest

        data = Path(cfg.manifest)
        if data.is_file():
            data = data.parent
        load_manifest(data)  # fails early with one line when it is not a manifest
    grid = [(b, a, s) for b in cfg.backbones for a in cfg.augments for s in cfg.seeds]
    rows, failures = [], []
    for i, (bb, aug, seed) in enumerate(grid, 1):
        print(f"[{i}/{len(grid)}] {bb} / {aug} / seed {seed}", file=sys.stderr, flush=True)
        try:
            row = run_one(cfg, data, bb, aug, seed, progress=progress)
        except MaskwatchError as e:
            if len(grid) == 1:
                raise
            log.warning("run %s_%s_s%s failed: %s", bb, aug, seed, e)
            failures.append({"run": f"{bb}_{aug}_s{seed}", "error": str(e).splitlines()[0]})
            continue
        rows.append(row)
        print(f"    accuracy {_f(row['accuracy'])}, macro F1 {_f(row['macro_f1'])}, incorrect recall "
              f"{_f(row['incorrect_recall'])}, {row['size_kb']:.0f} KB, {row['ms_per_face']:.2f} ms/face",
              file=sys.stderr, flush=True)
        write_outputs(rows, cfg, data, failures)   # partial results survive an interrupted grid
    write_outputs(rows, cfg, data, failures)
    if not rows:
        raise MaskwatchError(f"every run failed, first: {failures[0]['error']}")
    return rows


def register(subparsers) -> None:
    """Add ``compare`` to ``maskwatch-train``'s sub-commands."""
    p = subparsers.add_parser("compare", help="backbones x augmentation presets x seeds on one split -> table + chart",
                              description="Train, export (int8) and evaluate every backbone x augmentation x seed on "
                                          "the same split; writes compare.md, compare.json and compare.png.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="prepare output folder (or its manifest.csv)")
    src.add_argument("--data", help="ImageFolder of face crops (prepared once into OUT/data, faces taken as crops)")
    from train.augment import PRESETS
    from train.models import BACKBONES

    p.add_argument("--backbones", default="lowres_cnn,efficientnet_lite0",
                   help=f"comma-separated, of {', '.join(BACKBONES)} (default %(default)s)")
    p.add_argument("--augment", default="none,lowres",
                   help=f"comma-separated augmentation presets, of {', '.join(PRESETS)} (default %(default)s)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per run (pretrained: 1/3 head, rest fine-tune)")
    p.add_argument("--size", type=int, default=64, help="input size in px (default 64)")
    p.add_argument("--lite0-blocks", type=int, default=None,
                   help="EfficientNet-Lite0 blocks kept (default: train.fit's; 16 = whole network)")
    p.add_argument("--weights", default="auto", help="auto (ImageNet where available), none or imagenet")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-train", type=int, default=None, help="cap on training faces per run")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--split", default="test", help="evaluation split (default test)")
    p.add_argument("--out", required=True, help="output folder: compare.md, compare.json, compare.png, runs/")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _command_line(args) -> str:
    """The equivalent ``maskwatch-train compare`` command of the parsed ``args`` (for the report)."""
    parts = ["maskwatch-train", "compare", "--manifest" if args.manifest else "--data", args.manifest or args.data,
             "--backbones", args.backbones, "--augment", args.augment, "--seeds", args.seeds,
             "--epochs", str(args.epochs), "--size", str(args.size), "--weights", args.weights,
             "--batch-size", str(args.batch_size)]
    for flag, value in (("--lite0-blocks", args.lite0_blocks), ("--max-train", args.max_train)):
        if value is not None:
            parts += [flag, str(value)]
    if args.split != "test":
        parts += ["--split", args.split]
    return " ".join(shlex.quote(p) for p in parts + ["--out", args.out])


def run(args) -> int:
    try:
        seeds = [int(s) for s in _parse_list(args.seeds, "seeds")]
    except ValueError:
        raise MaskwatchError(f"--seeds must be integers, got {args.seeds!r}") from None
    cfg = CompareConfig(backbones=_parse_list(args.backbones, "backbones"), augments=_parse_list(args.augment, "augment"),
                        seeds=seeds, out=args.out, manifest=args.manifest, data=args.data, epochs=args.epochs,
                        input_size=args.size, lite0_blocks=args.lite0_blocks, weights=args.weights,
                        batch_size=args.batch_size, max_train=args.max_train,
                        patience=args.patience, split=args.split,
                        command=_command_line(args))
    compare(cfg, progress=not args.no_progress)
    print((Path(args.out) / "compare.md").read_text())
    return 0

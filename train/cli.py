"""``maskwatch-train``: prepare, fit, export (and evaluate, explain, compare, loso, finetune when present).

    maskwatch-train prepare ../shared/data/facemask-scenes ../shared/data/facemask-12k --out runs/data
    maskwatch-train prepare ../shared/data/ilc2021-scenes --label-map with_incorrect_mask=mask_worn_incorrectly --out runs/ilc
    maskwatch-train fit --data runs/data --out runs/lite0 --backbone efficientnet_lite0 --size 64
    maskwatch-train export runs/lite0/best.keras --data runs/data --out models/mask_classifier.tflite
    maskwatch-train loso --manifest runs/pool --holdout facemask-scenes,ilc2021-scenes --out runs/loso
    maskwatch-train finetune --data site/labelled --out runs/site_ft --replay runs/pool

Every user error is one line (``maskwatch-train: error: ...``) and exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from maskwatch.errors import MaskwatchError

PROG = "maskwatch-train"


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")


def _cmd_prepare(args) -> int:
    from train.data import prepare
    from train.data.corrections import CORRECTIONS_FILE

    if args.corrections is None:
        args.corrections = CORRECTIONS_FILE

    report = prepare(args.inputs, args.out, size=args.size, margin=args.margin, redetect=args.redetect,
                     min_face=args.min_face, val=args.val, test=args.test, seed=args.seed,
                     min_score=args.min_score, drop_distance=args.dup_distance, group_distance=args.group_distance,
                     write_crops=not args.no_crops, drop_undetected=not args.keep_undetected,
                     progress=not args.no_progress, label_map=args.label_map,
                     corrections=None if args.no_corrections else args.corrections)
    d = report.as_dict()
    print(f"faces kept: {d['faces']} from {d['images']} images "
          f"(unreadable skipped: {d['n_corrupt']}, no face found: {d['no_face']}, smaller than {args.min_face:g} px: "
          f"{d['too_small']}, exact duplicates: {d['exact_duplicates']}, near duplicates: {d['near_duplicates']})")
    for split, counts in d["per_split"].items():
        print(f"  {split:5s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for source, counts in d["per_source"].items():
        kind = d["sources"][source]["kind"]
        print(f"  source {source} ({kind}): " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "no faces"))
    if d["unknown_labels"]:
        print("  ignored folders (not a class name): " + ", ".join(f"{k} ({v})" for k, v in d["unknown_labels"].items())
              + "; to keep one: --label-map NAME=LABEL")
    for source, n in d["corrected"].items():
        print(f"  label corrections: {n} face{'s' if n != 1 else ''} of {source} relabelled "
              f"({'none' if args.no_corrections else args.corrections}; each with its reason)")
    if d["ignored_labels"]:
        print("  dropped by --label-map: " + ", ".join(f"{k} ({v})" for k, v in d["ignored_labels"].items()))
    if d["unlabelled_images"] or d["bad_label_lines"]:
        print(f"  YOLO: {d['unlabelled_images']} images without boxes, {d['bad_label_lines']} unreadable label lines")
    if d["n_corrupt"]:
        print(f"  unreadable images ({d['n_corrupt']}), e.g. {d['corrupt'][0]}")
    print(f"manifest: {args.out}/manifest.csv; crops: {args.out}/{{train,val,test}}/<label>/")
    return 0


def command_line(args) -> str:
    """The ``maskwatch-train ...`` command that was run (the argv given to :func:`main`), for the records."""
    return " ".join([PROG] + [shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:])])


def _cmd_fit(args) -> int:
    from train.fit import fit, fit_config_from_args

    cfg = fit_config_from_args(args, args.data, args.out, extra={"command": command_line(args)})
    out = fit(cfg, progress=not args.no_progress)
    summary = json.loads((out / "fit.json").read_text())
    val = summary["val"]
    print(f"trained in {summary['seconds_total']:.0f} s; best model {out / 'best.keras'}; "
          f"val accuracy {val['accuracy']:.4f}, macro F1 {val['macro_f1']:.4f}, "
          f"mask_worn_incorrectly recall {val['recall']['mask_worn_incorrectly']:.4f}")
    return 0


def _cmd_export(args) -> int:
    from train.export import export

    command = args.command_line or " ".join([PROG] + [shlex.quote(a) for a in sys.argv[1:]])
    meta = export(args.model, args.out, args.data, calib_size=args.calib_size, seed=args.seed,
                  version=args.version, command=command, evaluation=args.evaluation,
                  progress=not args.no_progress, apply_temperature=args.temperature == "fit")
    print(f"wrote {args.out} ({meta['size_bytes'] / 1e6:.2f} MB, input {meta['input_size'][0]} px) and its metadata JSON")
    cal = meta.get("calibration", {})
    if "val" in cal:
        print(f"  calibration: temperature {cal['temperature']:.3f} fitted on val"
              + (" (applied)" if cal.get("applied") else " (not applied: --temperature none; the app reads raw outputs)")
              + f"; expected calibration error (val) {cal['val']['ece_before']:.4f} -> {cal['val']['ece_after']:.4f}"
              + ("; test {ece_before:.4f} -> {ece_after:.4f}".format(**cal["test"]) if "test" in cal else ""))
    for split, m in meta["metrics"].items():
        if "int8" not in m:
            continue
        f, q = m["float"], m["int8"]
        print(f"  {split}: int8 agrees with float on {m['int8_float_agreement'] * 100:.2f}%; accuracy float "
              f"{f['accuracy']:.4f} int8 {q['accuracy']:.4f} (delta {q['accuracy'] - f['accuracy']:+.4f}); "
              f"macro F1 float {f['macro_f1']:.4f} int8 {q['macro_f1']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from maskwatch.crop import DEFAULT_MARGIN

    parser = argparse.ArgumentParser(prog=PROG, description="Train and export maskwatch's face-mask classifier.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (TensorFlow messages included)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("prepare", help="cut faces from ImageFolder/VOC/YOLO sources, de-duplicate, split, write a manifest")
    p.add_argument("inputs", nargs="+", help="ImageFolder trees (with_mask/ without_mask/ mask_worn_incorrectly/ or "
                   "aliases), Pascal VOC folders (images/ + annotations/) and YOLO folders (images/ + labels/, "
                   "class names in data.yaml or classes.txt); each folder's name is its source in the manifest")
    p.add_argument("--label-map", action="append", metavar="NAME=LABEL", default=[],
                   help="map a dataset's class name to with_mask, without_mask, mask_worn_incorrectly, or 'ignore' "
                        "to drop it (repeatable), e.g. --label-map with_incorrect_mask=mask_worn_incorrectly")
    p.add_argument("--out", required=True, help="output folder: manifest.csv, prepare.json, {train,val,test}/<label>/ crops")
    p.add_argument("--size", type=int, default=64, help="side of the crops written to the split folders (default 64)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="crop margin, as serving (default %(default)s)")
    p.add_argument("--redetect", choices=("all", "crops", "none"), default="all",
                   help="re-detect faces with the app's detector: all (VOC too), crops (ImageFolders only), none")
    p.add_argument("--keep-undetected", action="store_true",
                   help="keep ImageFolder images where re-detection finds no face (as whole-image crops)")
    p.add_argument("--min-score", type=float, default=0.5, help="detector score threshold (default 0.5)")
    p.add_argument("--min-face", type=float, default=8.0, help="drop faces narrower than this many px (default 8)")
    p.add_argument("--val", type=float, default=0.15)
    p.add_argument("--test", type=float, default=0.15)
    p.add_argument("--dup-distance", type=int, default=3, help="phash distance at or under which a same-label face is a duplicate")
    p.add_argument("--group-distance", type=int, default=8, help="phash distance at or under which faces stay in one split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-crops", action="store_true", help="write only the manifest")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--corrections", type=Path, default=None, metavar="CSV",
                   help="label corrections applied to the sources they name (default: the repository's "
                        "train/label_corrections.csv: source,image,box,from,to,reason)")
    p.add_argument("--no-corrections", action="store_true", help="apply no label corrections")
    p.set_defaults(func=_cmd_prepare)

    from train.fit import add_fit_arguments

    p = sub.add_parser("fit", help="two-phase transfer learning -> run folder with best.keras")
    p.add_argument("--data", required=True, help="prepare output folder (manifest.csv)")
    p.add_argument("--out", required=True, help="run folder (config.json, history.csv, best.keras)")
    add_fit_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("export", help="int8 TFLite (uint8 in/out) + metadata JSON, checked against float")
    p.add_argument("model", help="a .keras model or a run folder (uses best.keras)")
    p.add_argument("--data", required=True, help="prepare folder: train crops calibrate, val/test check")
    p.add_argument("--out", default="models/mask_classifier.tflite")
    p.add_argument("--calib-size", type=int, default=300, help="training crops used to calibrate (default 300)")
    p.add_argument("--version", default=None, help="model version written to the metadata")
    p.add_argument("--command-line", default=None, help="training command recorded in the metadata")
    p.add_argument("--evaluation", default=None, help="metrics.json from 'maskwatch-train evaluate' to copy into the metadata")
    p.add_argument("--temperature", choices=("fit", "none"), default="fit",
                   help="fit: the temperature fitted on val goes into the metadata and the app applies it "
                        "(default); none: fitted and reported only, the app reads raw outputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_export)

    for name in ("evaluate", "explain", "compare", "loso", "synthesis", "finetune"):
        try:
            mod = importlib.import_module(f"train.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"train.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "version", "x") is None:
        from maskwatch import __version__

        args.version = __version__
    try:
        return int(args.func(args) or 0)
    except MaskwatchError as e:
        print(f"{PROG}: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a file the command writes or reads (a full disk, a file where a folder goes): one line
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"{PROG}: error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Leave-one-source-out: how the recipe does on a camera, a place and people it never trained on.

The in-pool test split shares its sources with training and flatters the model (issue 9: macro F1
0.966 there, 0.686 on a held-out real source). For each held-out source S this trains the recipe —
:func:`train.fit.fit`, the code and defaults of ``maskwatch-train fit`` — on the *other* sources'
train split (best epoch by their val split) and tests it on every face of S, whatever split
``prepare`` gave it. Faces of other sources that share a near-duplicate group with a face of S
(``prepare``'s ``group``: same scene or phash distance <= 8) are left out of training, so no copy
of a test face leaks in. The other sources' test faces are not used.

Per held-out source: per-class precision and recall, macro F1, accuracy by face width (the buckets
of ``evaluate --size-buckets``) and the confusion matrix of the float model (``best.keras``), and
the expected calibration error of its probabilities on the held-out faces before and after a
temperature fitted on the *training* sources' val split (``train.calibration``; never on the
held-out source). Results stored before this was added show "–" there.
Writes ``OUT/loso.md`` (one row per held-out source, then the per-class detail), ``OUT/loso.png``
(the confusion matrices side by side) and ``OUT/loso.json`` (every figure).

Resumable: each held-out source's ``OUT/<source>/result.json`` is written atomically at its end
and a later run skips that source (``--force`` redoes it); a finished fit (``fit.json``) is reused
too. A stored result made with another recipe or manifest is refused rather than mixed in.

Example::

    maskwatch-train loso --manifest runs/pool --holdout facemask-scenes,ilc2021-scenes --out runs/loso
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError

log = logging.getLogger("maskwatch.train.loso")

SHORT = {"with_mask": "with", "without_mask": "without", "mask_worn_incorrectly": "incorrect"}


def holdout_rows(rows: list[dict], source: str) -> tuple[list[dict], dict]:
    """The manifest rows of one leave-one-source-out run, and counts of what went where.

    Every face of ``source`` becomes ``test`` (all of its splits); other sources keep their train and
    val faces, minus those in a group with a face of ``source``; their test faces are dropped.

    >>> rows = [{"source": "a", "split": "train", "group": "1"}, {"source": "a", "split": "test", "group": "2"},
    ...         {"source": "b", "split": "train", "group": "1"}, {"source": "b", "split": "val", "group": "3"},
    ...         {"source": "b", "split": "test", "group": "4"}]
    >>> out, n = holdout_rows(rows, "a")
    >>> [(r["source"], r["split"]) for r in out], n["left_out_same_group"], n["other_test_unused"]
    ([('a', 'test'), ('a', 'test'), ('b', 'val')], 1, 1)
    >>> synth = {"source": "synthetic-position", "split": "train", "group": "9", "generated": "1", "donor_source": "a"}
    >>> holdout_rows([synth], "a")[1]["left_out_donor"], len(holdout_rows([synth], "b")[0])
    (1, 1)
    """
    held_groups = {r["group"] for r in rows if r["source"] == source}
    out, n = [], Counter()
    for r in rows:
        if r["source"] == source:
            out.append({**r, "split": "test"})
        elif r["split"] not in ("train", "val"):
            n["other_test_unused"] += 1
        elif r["group"] in held_groups:
            n["left_out_same_group"] += 1
        elif r.get("generated") == "1" and r.get("donor_source") == source:
            n["left_out_donor"] += 1  # a generated face wearing a mask cut from the held-out source
        else:
            out.append(r)
    return out, {k: n[k] for k in ("left_out_same_group", "other_test_unused", "left_out_donor")}


def _label_counts(rows: list[dict], split: str) -> dict:
    c = Counter(r["label"] for r in rows if r["split"] == split)
    return {lab: c.get(lab, 0) for lab in LABELS}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_json_atomic(path: Path, obj) -> None:
    """A kill during the write leaves the old file or none, never half a JSON that reads as 'done'."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _differences(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_holdout(source: str, rows: list[dict], template, out: Path, manifest_md5: str, force: bool = False,
                progress: bool = True, tag: str = "") -> dict:
    """Train without ``source``, test on all of it; returns (and stores) its result dict."""
    from dataclasses import replace

    from train.data import write_manifest
    from train.evaluate import (by_face_width, calibration_metrics, classification_metrics, load_predictor,
                                read_manifest_split)
    from train.fit import fit, recipe_of

    run_dir = out / source
    result_path = run_dir / "result.json"
    data_dir, fit_dir = run_dir / "data", run_dir / "fit"
    cfg = replace(template, data=str(data_dir), out=str(fit_dir),
                  extra={**template.extra, "loso_holdout": source, "loso_manifest_md5": manifest_md5})
    recipe = recipe_of(cfg)
    sub, moved = holdout_rows(rows, source)
    n_train = sum(r["split"] == "train" for r in sub)
    n_val = sum(r["split"] == "val" for r in sub)
    n_test = sum(r["split"] == "test" for r in sub)
    if n_train == 0:
        raise MaskwatchError(f"holding out {source} leaves no training faces (the manifest has no other source)")
    train_sources = sorted({r["source"] for r in sub if r["split"] != "test"})
    missing = [lab for lab, k in _label_counts(sub, "train").items() if k == 0]
    if missing:
        log.warning("%s held out: no %s face left to train on", source, ", ".join(missing))
    data_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(sub, data_dir / "manifest.csv")

    fit_json, best = fit_dir / "fit.json", fit_dir / "best.keras"
    done = _read_json(fit_dir / "config.json") if fit_json.is_file() and _read_json(fit_json) and best.is_file() else None
    reuse = done is not None and not force and recipe_of_dict(done) == recipe \
        and done.get("extra", {}).get("loso_manifest_md5") == manifest_md5
    t0 = time.time()
    if reuse:
        _say(f"{tag} {source}: reusing the finished fit in {fit_dir}")
    else:
        fit_json.unlink(missing_ok=True)   # until this fit ends, nothing in fit_dir counts as finished
        _say(f"{tag} {source}: training on {n_train} faces of {', '.join(train_sources)} (val {n_val}; "
             f"{moved['left_out_same_group']} near-duplicates of {source} faces left out) -> {fit_dir}")
        fit(cfg, progress=progress)
    seconds_fit = time.time() - t0
    fit_summary = _read_json(fit_json) or {}

    _say(f"{tag} {source}: testing on all {n_test} of its faces")
    predictor = load_predictor(best)
    ds = read_manifest_split(data_dir, "test", predictor.input_size, predictor.margin, cache_dir=data_dir / "cache")
    probs = predictor.predict(ds.at_size(predictor.input_size), calibrated=False)
    metrics = classification_metrics(ds.y, probs)
    val = None
    if n_val:   # the temperature comes from the training sources' val faces, never from the held-out source
        vs = read_manifest_split(data_dir, "val", predictor.input_size, predictor.margin, cache_dir=data_dir / "cache")
        val = predictor.predict(vs.at_size(predictor.input_size), calibrated=False), vs.y
    calibration = calibration_metrics(ds.y, probs, 1.0, val, fitted_on="val split of " + ", ".join(train_sources))
    result = {
        "holdout": source, "recipe": recipe, "manifest_md5": manifest_md5, "model": str(best),
        "train_sources": train_sources, "n_train": n_train, "n_val": n_val, "n_test": n_test, **moved,
        "train_labels": _label_counts(sub, "train"), "test_labels": _label_counts(sub, "test"),
        "seconds_fit": round(seconds_fit, 1), "fit_reused": reuse, "fit_seconds_total": fit_summary.get("seconds_total"),
        "val": fit_summary.get("val"),
        "metrics": metrics, "by_face_width": by_face_width(ds.y, probs, ds.face_w), "calibration": calibration,
    }
    _write_json_atomic(result_path, result)
    return result


def recipe_of_dict(config: dict) -> dict:
    """:func:`train.fit.recipe_of` of a stored ``config.json``."""
    from train.fit import RECIPE_EXCLUDED

    return {k: v for k, v in config.items() if k not in RECIPE_EXCLUDED}


def loso(manifest: str | Path, holdouts: list[str], out: str | Path, template, force: bool = False,
         progress: bool = True, command: str = "") -> dict:
    """Leave each of ``holdouts`` out in turn (see the module doc); returns the ``loso.json`` content.

    ``template`` is a :class:`train.fit.FitConfig` (its data/out are set per held-out source)."""
    from train.data import load_manifest
    from train.fit import recipe_of

    manifest = Path(manifest)
    manifest_csv = manifest / "manifest.csv" if manifest.is_dir() else manifest
    rows = load_manifest(manifest_csv)
    sources = sorted({r["source"] for r in rows})
    if not holdouts:
        raise MaskwatchError(f"--holdout needs at least one source; the manifest's sources: {', '.join(sources)}")
    unknown = [s for s in holdouts if s not in sources]
    if unknown:
        raise MaskwatchError(f"--holdout {', '.join(unknown)}: not a source of {manifest_csv} "
                             f"(its sources: {', '.join(sources)})")
    if len(set(holdouts)) != len(holdouts):
        raise MaskwatchError("--holdout names a source twice")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest_md5 = _md5(manifest_csv)
    recipe = recipe_of(template)
    stored = {s: None if force else _read_json(out / s / "result.json") for s in holdouts}
    for source, r in stored.items():   # refuse before any training, not after hours of it
        if r is not None and (r.get("recipe") != recipe or r.get("manifest_md5") != manifest_md5):
            what = (_differences(r.get("recipe", {}), recipe) if r.get("recipe") != recipe
                    else f"manifest {manifest_csv} changed since")
            raise MaskwatchError(f"{out / source / 'result.json'} was made with another recipe or manifest "
                                 f"({what}): pass --force to redo it, or use another --out")
    results = []
    for i, source in enumerate(holdouts, 1):
        tag = f"[{i}/{len(holdouts)}]"
        if stored[source] is not None:
            _say(f"{tag} {source}: result exists ({out / source / 'result.json'}), skipped (--force to redo)")
            results.append(stored[source])
            continue
        t0 = time.time()
        r = run_holdout(source, rows, template, out, manifest_md5, force=force, progress=progress, tag=tag)
        m = r["metrics"]
        rec = " / ".join(_f(m["per_class"][lab]["recall"]) for lab in LABELS)
        _say(f"{tag} {source}: done in {time.time() - t0:.0f} s: accuracy {_f(m['accuracy'])}, macro F1 "
             f"{_f(m['macro_f1'])}, recall with / without / incorrect {rec}")
        results.append(r)
        write_outputs(out, results, manifest_csv, manifest_md5, recipe, command)  # partial tables survive a kill
    return write_outputs(out, results, manifest_csv, manifest_md5, recipe, command)


# ---------------------------------------------------------------- reports

def _f(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def ece_text(r: dict) -> str:
    """``ECE before → after`` of a result (temperature fitted on the training sources' val split);
    "–" for a result stored before calibration was measured, or whose training sources had no val faces."""
    c = r.get("calibration") or {}
    if c.get("ece_before") is None:
        return "–"
    if c.get("ece_after") is None:
        return f"{_f(c['ece_before'])} → –"
    return f"{_f(c['ece_before'])} → {_f(c['ece_after'])} (T {c['temperature']:.2f})"


def table_markdown(results: list[dict]) -> str:
    """The headline table: one row per held-out source."""
    head = ("| held-out source | test faces | accuracy | macro F1 | recall with / without / incorrect | "
            "precision with / without / incorrect | mask vs no-mask acc. | ECE before → after | trained on (faces) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        m = r["metrics"]
        rec = " / ".join(_f(m["per_class"][lab]["recall"]) for lab in LABELS)
        prec = " / ".join(_f(m["per_class"][lab]["precision"]) for lab in LABELS)
        lines.append(f"| {r['holdout']} | {r['n_test']} | {_f(m['accuracy'])} | **{_f(m['macro_f1'])}** | {rec} | "
                     f"{prec} | {_f(m['two_class']['accuracy'])} | {ece_text(r)} | "
                     f"{', '.join(r['train_sources'])} ({r['n_train']}) |")
    return "\n".join(lines) + "\n"


def detail_markdown(r: dict) -> str:
    """Per-class figures, confusion matrix and face-width buckets of one held-out source."""
    from train.evaluate import WIDTH_BUCKETS

    m = r["metrics"]
    lines = [f"## {r['holdout']} held out", "",
             f"Trained on {r['n_train']} faces of {', '.join(r['train_sources'])} (train labels: "
             + ", ".join(f"{SHORT[k]} {v}" for k, v in r["train_labels"].items())
             + f"), validated on {r['n_val']}; {r['left_out_same_group']} faces of other sources left out as "
             f"near-duplicates of {r['holdout']} faces. Tested on all {r['n_test']} faces of {r['holdout']}. "
             f"Fit {r['seconds_fit']:.0f} s" + (" (reused)" if r.get("fit_reused") else "") + ". "
             f"Expected calibration error on the held-out faces (15 bins), before → after a temperature fitted "
             f"on the training sources' val split: {ece_text(r)}.", "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab in LABELS:
        c = m["per_class"][lab]
        lines.append(f"| {lab} | {_f(c['precision'])} | {_f(c['recall'])} | {_f(c['f1-score'])} | {c['support']} |")
    lines += ["", "Confusion matrix (rows true, columns predicted):", "",
              "| true \\ predicted | " + " | ".join(LABELS) + " |", "|---" * (len(LABELS) + 1) + "|"]
    for lab, row in zip(LABELS, m["confusion_matrix"]["matrix"]):
        lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    bucket_names = ", ".join(b[2] for b in WIDTH_BUCKETS)
    lines += ["", f"By face width (source px; buckets {bucket_names}; macro F1 over the classes present):", "",
              "| face width | n | accuracy | macro F1 | recall with / without / incorrect (support) |",
              "|---|---|---|---|---|"]
    for b in r["by_face_width"]:
        rec = " / ".join(f"{_f(b['recall'][lab])} ({b['support'][lab]})" for lab in LABELS) if b.get("recall") else "–"
        lines.append(f"| {b['bucket']} | {b['n']} | {_f(b['accuracy'])} | {_f(b['macro_f1'])} | {rec} |")
    return "\n".join(lines) + "\n"


def save_confusion_matrices(results: list[dict], path: str | Path) -> Path:
    """The held-out sources' confusion matrices side by side (counts, row-normalised colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.4), dpi=120, squeeze=False)
    short = [SHORT[lab] for lab in LABELS]
    for ax, r in zip(axes[0], results):
        cm = np.array(r["metrics"]["confusion_matrix"]["matrix"], np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(LABELS)):
            for j in range(len(LABELS)):
                ax.text(j, i, f"{int(cm[i, j])}\n{100 * norm[i, j]:.0f}%", ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
        ax.set_xticks(range(len(LABELS)), short)
        ax.set_yticks(range(len(LABELS)), short)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        m = r["metrics"]
        ax.set_title(f"{r['holdout']} held out ({r['n_test']} faces)\nacc {_f(m['accuracy'])}, "
                     f"macro F1 {_f(m['macro_f1'])}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(out: Path, results: list[dict], manifest: Path, manifest_md5: str, recipe: dict,
                  command: str) -> dict:
    """``loso.json``, ``loso.md`` and ``loso.png`` of the results so far; returns the JSON content."""
    summary = {"command": command, "manifest": str(manifest), "manifest_md5": manifest_md5, "recipe": recipe,
               "model": "float Keras (best.keras of each fit)", "results": results}
    _write_json_atomic(out / "loso.json", summary)
    if results:
        save_confusion_matrices(results, out / "loso.png")
    recipe_text = ", ".join(f"{k} {v}" for k, v in recipe.items())
    md = ["# Leave-one-source-out: tested on a source the model never trained on", "",
          f"- command: `{command}`" if command else "- command: (Python API)",
          f"- manifest: `{manifest}` (md5 {manifest_md5[:12]})",
          f"- recipe (`maskwatch-train fit`'s code): {recipe_text}",
          "- each row: trained on the other sources' train split (best epoch by their val split), tested with "
          "the float model on every face of the held-out source; faces of other sources in a near-duplicate "
          "group with a held-out face are left out of training",
          "- ECE: expected calibration error of the held-out faces' probabilities (15 equal-width bins), raw → "
          "with one temperature fitted on the training sources' val split (never on the held-out source)", "",
          table_markdown(results) if results else "_no held-out source finished yet_", ""]
    if results:
        md += ["![confusion matrices](loso.png)", ""]
    md += [detail_markdown(r) for r in results]
    (out / "loso.md").write_text("\n".join(md))
    return summary


# ---------------------------------------------------------------- CLI

def register(subparsers) -> None:
    """Add ``loso`` to ``maskwatch-train``'s sub-commands."""
    from train.fit import add_fit_arguments

    p = subparsers.add_parser(
        "loso", help="leave-one-source-out: train without a source, test on all of its faces -> table + PNG",
        description="For each held-out source: train the fit recipe (same flags and defaults as 'fit') on the "
                    "other sources' train+val faces, test on every face of the held-out source; writes loso.md, "
                    "loso.png and loso.json. Resumable: finished sources are skipped unless --force.")
    p.add_argument("--manifest", required=True, help="prepare output folder (or its manifest.csv)")
    p.add_argument("--holdout", required=True, help="comma-separated source names (the manifest's source column)")
    p.add_argument("--out", required=True, help="output folder: loso.md, loso.png, loso.json, <source>/{data,fit}")
    p.add_argument("--force", action="store_true", help="redo held-out sources that already have a result")
    add_fit_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    import shlex

    from train.fit import fit_config_from_args

    holdouts = [s.strip() for s in str(args.holdout).split(",") if s.strip()]
    command = "maskwatch-train " + shlex.join(getattr(args, "argv", sys.argv[1:]))
    template = fit_config_from_args(args, data="", out="", extra={"command": command})
    summary = loso(args.manifest, holdouts, args.out, template, force=args.force, progress=not args.no_progress,
                   command=command)
    print(table_markdown(summary["results"]), end="")
    print(f"report: {Path(args.out) / 'loso.md'}, {Path(args.out) / 'loso.png'}, {Path(args.out) / 'loso.json'}")
    return 0

"""The reports of :func:`train.evaluate.evaluate`'s metrics: markdown (``report.md``), the confusion
matrix and most-confident-mistakes pictures, ``metrics.json`` (:func:`write_report`) and the terminal
tables (:func:`print_report`). :mod:`train.evaluate` re-exports every name here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maskwatch import LABELS

def _fmt(v, pct=False) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{100 * v:.1f}%" if pct else f"{v:.3f}"
    return str(v)


def report_markdown(m: dict) -> str:
    """A readable markdown report of :func:`evaluate`'s result."""
    lines = [f"# Evaluation of `{Path(m['model']).name}`", "",
             f"- model: `{m['model']}` ({m['model_kind']}, input {m['input_size']} px)",
             f"- data: `{m['data']}` — {m['n']} faces" + (f", {m['skipped_unreadable']} unreadable skipped"
                                                         if m.get("skipped_unreadable") else ""),
             f"- accuracy **{_fmt(m['accuracy'])}**, macro F1 **{_fmt(m['macro_f1'])}**, "
             f"mask_worn_incorrectly recall **{_fmt(m['incorrect_recall'])}**",
             f"- 2-class (mask / no mask, {m['two_class']['n']} faces): accuracy {_fmt(m['two_class']['accuracy'])} "
             f"(p(with_mask) vs p(without_mask)), strict 3-class {_fmt(m['two_class']['accuracy_strict'])}", "",
             "## Per class", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for lab, r in m["per_class"].items():
        lines.append(f"| {lab} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['f1-score'])} | {r['support']} |")
    cm = m["confusion_matrix"]
    lines += ["", "## Confusion matrix (rows true, columns predicted)", "",
              "| true \\ predicted | " + " | ".join(cm["labels"]) + " |", "|---" * (len(cm["labels"]) + 1) + "|"]
    for lab, row in zip(cm["labels"], cm["matrix"]):
        lines.append(f"| {lab} | " + " | ".join(str(v) for v in row) + " |")
    if "calibration" in m:
        lines += ["", *calibration_markdown(m["calibration"])]
    if "by_face_width" in m:
        lines += ["", f"## By face width (px; {m['face_width_source']})", "",
                  "Macro F1 averages the classes present in the bucket; recall per class with its support.", "",
                  "| face width | n | accuracy | macro F1 | " + " | ".join(f"recall {lab}" for lab in LABELS) + " |",
                  "|---|---|---|---|" + "---|" * len(LABELS)]
        for r in m["by_face_width"]:
            rec = [f"{_fmt(r['recall'][lab])} ({r['support'][lab]})" if r.get("recall") else "–" for lab in LABELS]
            lines.append(f"| {r['bucket']} | {r['n']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                         + " | ".join(rec) + " |")
    if "by_source" in m:
        lines += ["", "## By source dataset", "", "| source | n | accuracy | macro F1 | "
                  + " | ".join(f"n {lab}" for lab in LABELS) + " |", "|---|---|---|---|" + "---|" * len(LABELS)]
        lines += [f"| {r['source']} | {r['n']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} | "
                  + " | ".join(str(r["support"][lab]) for lab in LABELS) + " |" for r in m["by_source"]]
    if "lowres" in m:
        lines += ["", "## Low-res slice (every face shrunk to N px wide, enlarged back as the app does)", "",
                  "| face width | crop side | accuracy | macro F1 |", "|---|---|---|---|"]
        lines += [f"| {r['face_px']} px | {r['crop_side']} px | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |"
                  for r in m["lowres"]]
    if "float_vs_int8" in m:
        f = m["float_vs_int8"]
        lines += ["", f"## Float vs int8 (same {f['n']} faces)", "", "| model | accuracy | macro F1 |", "|---|---|---|"]
        lines += [f"| {r['model']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |" for r in f["models"]]
        lines += ["", f"Prediction agreement: **{_fmt(f['agreement'], pct=True)}**; "
                      f"largest probability difference {_fmt(f['max_abs_prob_diff'])}."]
    return "\n".join(lines) + "\n"


def calibration_markdown(c: dict) -> list[str]:
    """The calibration section of the report: ECE of the raw, the model's and the val-fitted probabilities."""
    lines = [f"## Calibration (expected calibration error, {c['bins']} equal-width bins of the top probability)", "",
             "| probabilities | temperature | ECE |", "|---|---|---|",
             f"| raw model outputs | 1 | {_fmt(c['ece_before'])} |"]
    if c["model_temperature"] != 1.0:
        lines.append(f"| with the model's metadata temperature (what the app reads) | {c['model_temperature']:.3f} | "
                     f"{_fmt(c['ece_model'])} |")
    if c.get("temperature") is not None:
        where = f"fitted on {c['fitted_on']} ({c['n_fit']} faces" + (", the same faces: in-sample" if c["in_sample"]
                                                                      else "") + ")"
        lines.append(f"| {where} | {c['temperature']:.3f} | {_fmt(c['ece_after'])} |")
    else:
        lines.append("| fitted on a val split | – (no val split: ImageFolder data or empty val) | – |")
    return lines


def save_confusion_matrix(m: dict, path: str | Path) -> Path:
    """Confusion-matrix PNG (counts, and row-normalised colour) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(m["confusion_matrix"]["matrix"], np.float64)
    labels = m["confusion_matrix"]["labels"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4), dpi=120)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(cm[i, j])}\n{100 * norm[i, j]:.0f}%", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    short = [lab.replace("mask_worn_incorrectly", "incorrect").replace("_", " ") for lab in labels]
    ax.set_xticks(range(len(labels)), short)
    ax.set_yticks(range(len(labels)), short)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{Path(m['model']).name}: acc {_fmt(m['accuracy'])}, macro F1 {_fmt(m['macro_f1'])}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def public(m: dict) -> dict:
    """The metrics without private (``_``-prefixed) entries such as crops: what goes to JSON."""
    return {k: v for k, v in m.items() if not k.startswith("_")}


def save_mistakes(m: dict, crops: np.ndarray, path: str | Path) -> Path:
    """Grid of the most confident mistakes: crop, ``true -> predicted p``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(crops)
    cols = min(8, max(1, n))
    rows = max(1, int(np.ceil(n / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(1.45 * cols, 1.65 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    short = {lab: lab.replace("mask_worn_incorrectly", "incorrect").replace("_mask", "").replace("_", " ")
             for lab in LABELS}
    for ax, crop, mk in zip(axes.flat, crops, m["mistakes"]):
        ax.imshow(crop)
        ax.set_title(f"{short[mk['true']]}→{short[mk['predicted']]} {mk['p']:.2f}", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(m: dict, out_dir: str | Path) -> Path:
    """``report.md``, ``metrics.json``, ``confusion_matrix.png`` (and ``mistakes.png``) in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(public(m), indent=2))
    save_confusion_matrix(m, out / "confusion_matrix.png")
    md = report_markdown(m) + "\n![confusion matrix](confusion_matrix.png)\n"
    if m.get("_reliability") is not None and "calibration" in m:
        from train.calibration import save_reliability_diagram

        c = m["calibration"]
        t = c["temperature"] if c.get("temperature") is not None else c["model_temperature"]
        save_reliability_diagram(*m["_reliability"], out / "reliability.png", temperature=t,
                                 title=f"{Path(m['model']).name} on {m['n']} faces")
        md += "\n![reliability diagram](reliability.png)\n"
    crops = m.get("_mistake_crops")
    if m.get("mistakes") and crops is not None and len(crops):
        save_mistakes(m, crops, out / "mistakes.png")
        md += (f"\n## Most confident mistakes ({len(crops)} shown, true → predicted, p)\n\n"
               "![mistakes](mistakes.png)\n")
    (out / "report.md").write_text(md)
    return out


def print_report(m: dict) -> None:
    """Readable terminal report (rich tables)."""
    from rich.console import Console
    from rich.markup import escape   # "runs/pool [test]" is text, not a style tag
    from rich.table import Table

    con = Console()

    def table(title: str, columns, rows, left_first: bool = False) -> None:
        t = Table(title=title)
        for k, c in enumerate(columns):
            t.add_column(c, justify="left" if left_first and k == 0 else "right")
        for row in rows:
            t.add_row(*row)
        con.print(t)

    con.print(f"[bold]{escape(Path(m['model']).name)}[/] ({m['model_kind']}, {m['input_size']} px) on {escape(m['data'])}: "
              f"{m['n']} faces" + (f", {m['skipped_unreadable']} unreadable skipped" if m.get("skipped_unreadable") else ""))
    table(f"accuracy {_fmt(m['accuracy'])} · macro F1 {_fmt(m['macro_f1'])} · "
          f"2-class accuracy {_fmt(m['two_class']['accuracy'])}",
          ("class", "precision", "recall", "F1", "support"),
          ((lab, _fmt(r["precision"]), _fmt(r["recall"]), _fmt(r["f1-score"]), str(r["support"]))
           for lab, r in m["per_class"].items()),
          left_first=True)
    cm = m["confusion_matrix"]
    table("confusion matrix (rows true, columns predicted)", ("true \\ pred", *cm["labels"]),
          ((lab, *map(str, row)) for lab, row in zip(cm["labels"], cm["matrix"])), left_first=True)
    if "calibration" in m:
        c = m["calibration"]
        after = (f"; T {c['temperature']:.3f} fitted on {c['fitted_on']}"
                 + (" (in-sample)" if c["in_sample"] else "") + f": {_fmt(c['ece_after'])}"
                 if c.get("temperature") is not None else "")
        model_t = f"; with the model's T {c['model_temperature']:.3f}: {_fmt(c['ece_model'])}" \
            if c["model_temperature"] != 1.0 else ""
        con.print(escape(f"expected calibration error: raw {_fmt(c['ece_before'])}{model_t}{after}"))
    if "by_face_width" in m:
        table(f"by face width ({m['face_width_source']})", ("face width", "n", "accuracy", "macro F1"),
              ((r["bucket"], str(r["n"]), _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in m["by_face_width"]))
    if "by_source" in m:
        table("by source dataset", ("source", "n", "accuracy", "macro F1"),
              ((r["source"], str(r["n"]), _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in m["by_source"]))
    if "lowres" in m:
        table("low-res slice (faces shrunk to N px and enlarged back)", ("face width", "accuracy", "macro F1"),
              ((f"{r['face_px']} px", _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in m["lowres"]))
    if "float_vs_int8" in m:
        f = m["float_vs_int8"]
        table(f"float vs int8: agreement {_fmt(f['agreement'], pct=True)}", ("model", "accuracy", "macro F1"),
              ((r["model"], _fmt(r["accuracy"]), _fmt(r["macro_f1"])) for r in f["models"]))

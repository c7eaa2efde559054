"""Horizontal-flip test-time averaging of the classifier: what it does to held-out faces, what it costs.

    python benchmarks/flip_tta.py --manifest runs/adityap27 --model models/mask_classifier.tflite \\
        --md benchmarks/results/flip_tta_adityap27.md --json benchmarks/results/flip_tta_adityap27.json

Each face of the manifest (every split: ``--split all``, the default) is cut as the app cuts it
(``train.data.load_split`` at the model's input size and crop margin) and classified three ways:

- ``plain``: the model's probabilities, as the app uses them today;
- ``flip``: the mean of the probabilities of the crop and of its mirror image;
- ``flip if unsure``: the mean only for faces whose plain top probability is under ``--unsure``
  (the others keep ``plain``), so only a share of the faces pays for a second pass.

Scored as the issue-21 targets are: accuracy and macro F1 over the classes present, recall by
class, the 2-class accuracy (p(with_mask) vs p(without_mask), as ``maskwatch-train evaluate``), and
the share of unmasked faces called ``with_mask`` and called ``mask_worn_incorrectly``. A source that
labels a mask under the nose ``mask`` (``adityap27-web``) is scored on ``without_mask`` vs the rest
for its masked faces: a masked face called ``mask_worn_incorrectly`` is not counted wrong there
(``--two-class-masked``).

Cost: ms per face at batch 1 (the app classifies the faces of one frame in one batch; batch 1 is
the worst case), plain and plain + mirror, timed in the same run (``--repeats`` passes over up to
``--time-faces`` faces, best pass kept); a ratio, not a number to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskwatch import LABELS  # noqa: E402
from maskwatch.classification import MaskClassifier  # noqa: E402
from train.data import load_split  # noqa: E402
from train.evaluate import classification_metrics  # noqa: E402

WITH, WITHOUT, INCORRECT = (LABELS.index(k) for k in ("with_mask", "without_mask", "mask_worn_incorrectly"))


def scores(y: np.ndarray, probs: np.ndarray, two_class_masked: bool) -> dict:
    """The targets' figures, read off :func:`train.evaluate.classification_metrics` (the metrics
    ``maskwatch-train evaluate`` reports): macro F1 over the classes the source has."""
    m = classification_metrics(y, probs)
    cm = np.asarray(m["confusion_matrix"]["matrix"], float)  # rows true, columns predicted
    present = [c for c in range(len(LABELS)) if cm[c].sum()]
    correct = np.trace(cm) + (cm[WITH, INCORRECT] if two_class_masked else 0.0)  # the source cannot tell those

    def share(true: int, pred: int) -> float | None:
        return float(cm[true, pred] / cm[true].sum()) if cm[true].sum() else None

    return {
        "n": m["n"],
        "accuracy": float(correct / cm.sum()),
        "macro_f1_3class": float(np.mean([m["per_class"][LABELS[c]]["f1-score"] for c in present])),
        "recall": {LABELS[c]: m["per_class"][LABELS[c]]["recall"] for c in present},
        "two_class_accuracy": m["two_class"]["accuracy"],
        "unmasked_called_with_mask": share(WITHOUT, WITH),
        "unmasked_called_incorrect": share(WITHOUT, INCORRECT),
        "masked_called_without": share(WITH, WITHOUT),
    }


def per_face_ms(model: MaskClassifier, x: np.ndarray, repeats: int) -> tuple[float, float]:
    """(plain, plain + mirror) ms per face at batch 1, best of ``repeats`` passes."""
    best_plain = best_flip = float("inf")
    mirrored = np.ascontiguousarray(x[:, :, ::-1])
    model.classify(x[:1])  # warm-up (allocation)
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(len(x)):
            model.classify(x[i:i + 1])
        t1 = time.perf_counter()
        for i in range(len(x)):
            model.classify(x[i:i + 1])
            model.classify(mirrored[i:i + 1])
        t2 = time.perf_counter()
        best_plain = min(best_plain, (t1 - t0) * 1000 / len(x))
        best_flip = min(best_flip, (t2 - t1) * 1000 / len(x))
    return best_plain, best_flip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True, help="a prepare folder (or its manifest.csv)")
    ap.add_argument("--model", type=Path, default=Path("models/mask_classifier.tflite"))
    ap.add_argument("--split", default="all")
    ap.add_argument("--unsure", type=float, default=0.75, help="'flip if unsure': top probability under this")
    ap.add_argument("--two-class-masked", action="store_true",
                    help="the source's 'mask' includes masks under the nose: with_mask called incorrect is not wrong")
    ap.add_argument("--time-faces", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)

    model = MaskClassifier(args.model)
    x, y = load_split(args.manifest, args.split, size=model.input_size, margin=model.margin)
    plain = model.classify(x)
    mirrored = model.classify(np.ascontiguousarray(x[:, :, ::-1]))
    flip = (plain + mirrored) / 2
    unsure = plain.max(1) < args.unsure
    gated = np.where(unsure[:, None], flip, plain)
    ms_plain, ms_flip = per_face_ms(model, x[:args.time_faces], args.repeats)
    report = {
        "model": str(args.model), "manifest": str(args.manifest), "split": args.split, "faces": int(len(y)),
        "unsure_below": args.unsure, "unsure_share": float(np.mean(unsure)), "two_class_masked": args.two_class_masked,
        "plain": scores(y, plain, args.two_class_masked),
        "flip": scores(y, flip, args.two_class_masked),
        "flip_if_unsure": scores(y, gated, args.two_class_masked),
        "ms_per_face_batch1": {"plain": ms_plain, "plain_and_mirror": ms_flip,
                               "flip_if_unsure": ms_plain + (ms_flip - ms_plain) * float(np.mean(unsure))},
        "changed_labels": {"flip": int(np.sum(flip.argmax(1) != plain.argmax(1))),
                           "flip_if_unsure": int(np.sum(gated.argmax(1) != plain.argmax(1)))},
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    text = format_md(report)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.md:
        args.md.write_text(text + "\n")
    return 0


def format_md(r: dict) -> str:
    def f(v):
        return "–" if v is None else f"{v:.3f}"

    rows = []
    for name in ("plain", "flip", "flip_if_unsure"):
        s = r[name]
        rec = " / ".join(f(s["recall"].get(k)) for k in LABELS)
        ms = r["ms_per_face_batch1"]["plain" if name == "plain" else "plain_and_mirror" if name == "flip" else name]
        rows.append(f"| {name.replace('_', ' ')} | {f(s['accuracy'])} | {f(s['macro_f1_3class'])} | {rec} | "
                    f"{f(s['two_class_accuracy'])} | {f(s['unmasked_called_with_mask'])} | "
                    f"{f(s['unmasked_called_incorrect'])} | {f(s['masked_called_without'])} | {ms:.3f} |")
    return "\n".join([
        f"Flip test-time averaging: `{r['model']}` on `{r['manifest']}` [{r['split']}], {r['faces']} faces"
        f"{' (masked faces scored mask / no mask: the source cannot tell an incorrectly worn mask)' if r['two_class_masked'] else ''}; "
        f"'flip if unsure': top probability < {r['unsure_below']} ({r['unsure_share']:.1%} of the faces); "
        f"labels changed: flip {r['changed_labels']['flip']}, flip if unsure {r['changed_labels']['flip_if_unsure']}; "
        f"{r['machine']}",
        "",
        "| scoring | accuracy | macro F1 (3-class) | recall with / without / incorrect | 2-class accuracy | "
        "unmasked → with_mask | unmasked → incorrect | masked → without | ms / face (batch 1) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


if __name__ == "__main__":
    sys.exit(main())

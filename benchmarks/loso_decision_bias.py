"""Does a per-class decision bias (a log-prior shift) buy incorrect-mask recall on unseen sources?

For each fold of a ``maskwatch-train loso`` run (a model trained without one source), the raw
probabilities of the held-out source's faces and of the training sources' val split are computed
once; the decision is ``argmax(log p + b)`` with ``b = (0, b_without, b_incorrect)``. Three ways to
choose ``b``, none of which looks at the faces it is scored on:

- ``none``: b = 0 (what the model does today);
- ``val``: the b that maximises macro F1 on the training sources' val split;
- ``cross``: the b that maximises macro F1 on the OTHER held-out source (tune on one unseen
  source, confirm on the other, as the issue asks).

    python benchmarks/loso_decision_bias.py --loso runs/loso_s96 --out benchmarks/results/loso_decision_bias
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from maskwatch import LABELS  # noqa: E402

GRID_WITHOUT = np.round(np.arange(-1.0, 2.01, 0.1), 2)
GRID_INCORRECT = np.round(np.arange(-1.0, 3.01, 0.1), 2)


def fold_probs(fold: Path) -> dict:
    from train.evaluate import load_predictor, read_manifest_split

    data_dir = fold / "data"
    predictor = load_predictor(fold / "fit" / "best.keras")
    out = {}
    for split in ("test", "val"):
        ds = read_manifest_split(data_dir, split, predictor.input_size, predictor.margin, cache_dir=data_dir / "cache")
        out[split] = (predictor.predict(ds.at_size(predictor.input_size), calibrated=False), ds.y)
    return out


def decide(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return (np.log(np.clip(probs, 1e-7, 1.0)) + bias).argmax(axis=1)


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=list(range(len(LABELS))), average="macro", zero_division=0))


def best_bias(probs: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    best, best_f1 = np.zeros(3), -1.0
    for bw, bi in itertools.product(GRID_WITHOUT, GRID_INCORRECT):
        b = np.array([0.0, bw, bi])
        f1 = macro_f1(y, decide(probs, b))
        if f1 > best_f1 + 1e-9:
            best, best_f1 = b, f1
    return best, best_f1


def scores(probs: np.ndarray, y: np.ndarray, bias: np.ndarray) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    pred = decide(probs, bias)
    p, r, _, _ = precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    return {"bias": [round(float(v), 2) for v in bias], "macro_f1": round(macro_f1(y, pred), 4),
            "accuracy": round(float(np.mean(pred == y)), 4),
            "recall": dict(zip(LABELS, (round(float(v), 3) for v in r))),
            "precision": dict(zip(LABELS, (round(float(v), 3) for v in p)))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loso", type=Path, required=True, help="a maskwatch-train loso output folder")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    folds = sorted(p for p in args.loso.iterdir() if (p / "fit" / "best.keras").is_file())
    if len(folds) < 2:
        print(f"need two held-out folds with fit/best.keras under {args.loso}", file=sys.stderr)
        return 2
    t0 = time.time()
    probs = {f.name: fold_probs(f) for f in folds}
    val_bias = {name: best_bias(*p["val"])[0] for name, p in probs.items()}
    test_bias = {name: best_bias(*p["test"]) for name, p in probs.items()}
    rows = []
    for name, p in probs.items():
        other = [o for o in probs if o != name][0]
        rows.append({"held_out": name,
                     "none": scores(*p["test"], np.zeros(3)),
                     "val": scores(*p["test"], val_bias[name]),
                     "cross": scores(*p["test"], test_bias[other][0]) | {"tuned_on": other},
                     "oracle": scores(*p["test"], test_bias[name][0])})
    result = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]), "loso": str(args.loso),
              "seconds": round(time.time() - t0, 1), "folds": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Decision bias on unseen sources (leave-one-source-out models)", "",
             f"- command: `{result['command']}`",
             "- decision: argmax(log p + b), b = (0, b_without, b_incorrect); `val`: b chosen on the training "
             "sources' val split; `cross`: b chosen on the other held-out source; `oracle`: chosen on the scored "
             "faces themselves (an upper bound, not a result)", "",
             "| held-out source | b chosen by | b (with, without, incorrect) | macro F1 | recall with / without / incorrect "
             "| precision incorrect |", "|---|---|---|---|---|---|"]
    for r in rows:
        for how in ("none", "val", "cross", "oracle"):
            s = r[how]
            rec = s["recall"]
            lines.append(f"| {r['held_out']} | {how}{' (' + s['tuned_on'] + ')' if how == 'cross' else ''} | "
                         f"{', '.join(f'{v:g}' for v in s['bias'])} | {s['macro_f1']:.3f} | "
                         f"{rec['with_mask']:.3f} / {rec['without_mask']:.3f} / {rec['mask_worn_incorrectly']:.3f} | "
                         f"{s['precision']['mask_worn_incorrectly']:.3f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

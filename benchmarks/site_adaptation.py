"""Site adaptation: does ``maskwatch-train finetune`` fix a model on a camera it has never seen?

The protocol (issue 12):

1. **Base model.** The leave-one-source-out model trained without ``ilc2021-scenes``
   (``runs/loso_s96/ilc2021-scenes/fit/best.keras``), saved without optimizer state and exported to
   int8 with ``train.export`` (``--temperature none``, as the shipped 0.4.0) into ``OUT/base/``.
2. **The site** is ``ilc2021-scenes``. Its images are split by the pool manifest's ``split`` column
   (the pool splits whole images): the images of its ``train`` faces are the site's camera footage
   the pipeline runs over; its ``val`` + ``test`` faces (other images) are the site's test faces, cut at
   the manifest boxes exactly as the leave-one-source-out result was measured (that result used all
   of the source's faces; its val + test subset is what is left once the train images are used).
3. **Collect.** The pipeline runs over the site-train images and saves face crops with context and a
   ``collected.csv`` (``collect()``: ``maskwatch --headless --collect`` when the collect sink is
   installed, else an in-process stand-in with the same detector, classifier and file layout).
4. **Review, by script.** Each collected box is matched to the annotated boxes of its image
   (IoU >= 0.4; VOC annotations, ``with_incorrect_mask`` -> ``mask_worn_incorrectly``); no match is
   "not a face" and dropped (counted: a human would have pressed X on it).
5. **Fine-tune** with 50, 100, 200 labelled crops chosen by uncertainty (lowest calibrated top
   probability first) and at random (seeded), with replay from the leave-one-source-out training
   manifest (no ilc2021-scenes face in it), ``--holdout 0`` (the site's test faces are separate).
6. **Report** macro F1 and ``mask_worn_incorrectly`` recall of the int8 models on the site's test
   faces and on the pool's test split of the other sources, before and after, and the fine-tune +
   export time. ``benchmarks/results/site_adaptation.{json,md}``.

Run (niced; the machine is shared)::

    nice -n 5 python benchmarks/site_adaptation.py --out runs/site_adaptation
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maskwatch import LABELS  # noqa: E402
from maskwatch.errors import MaskwatchError  # noqa: E402

CONTEXT_MARGIN = 0.6   # context saved around a collected face (the served crop uses the metadata's 0.2)
IOU_MATCH = 0.4


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- 1. base model


def make_base(loso_model: Path, loso_data: Path, out: Path) -> Path:
    """The LOSO float model without optimizer state + its int8 export (train.export) in ``out``."""
    import keras

    from train.export import export

    keras_path, tfl = out / "mask_classifier.keras", out / "mask_classifier.tflite"
    if tfl.is_file() and tfl.with_suffix(".json").is_file() and keras_path.is_file():
        say(f"base: reusing {tfl}")
        return keras_path
    out.mkdir(parents=True, exist_ok=True)
    keras.models.load_model(loso_model, compile=False, safe_mode=False).save(keras_path)
    cfg = loso_model.parent / "config.json"
    if cfg.is_file():
        shutil.copy(cfg, out / "config.json")  # margin + backbone for the export's metadata
    say(f"base: exporting {loso_model} to int8 -> {tfl}")
    export(keras_path, tfl, loso_data, calib_size=300, seed=0, version="0.4.0-loso-no-ilc2021",
           command=f"benchmarks/site_adaptation.py (train.export of {loso_model}, --temperature none)",
           progress=False, apply_temperature=False)
    return keras_path


# --------------------------------------------------------------------------- 2. the site


def site_rows(pool: Path, source: str) -> tuple[list[dict], list[dict], list[dict]]:
    """(site-train face rows, site-test face rows (val + test), other sources' test rows) of the pool."""
    from train.data import load_manifest

    rows = load_manifest(pool)
    site = [r for r in rows if r["source"] == source]
    train_imgs = {r["path"] for r in site if r["split"] == "train"}
    test = [r for r in site if r["split"] in ("val", "test")]
    assert not train_imgs & {r["path"] for r in test}, "the pool's split is by image"
    other = [r for r in rows if r["source"] != source and r["split"] == "test"]
    return [r for r in site if r["split"] == "train"], test, other


def link_images(paths: list[str], folder: Path) -> Path:
    """A folder of symlinks to the site-train images (the camera footage the pipeline reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    for p in paths:
        dst = folder / Path(p).name
        if not dst.exists():
            dst.symlink_to(Path(p).resolve())
    return folder


# --------------------------------------------------------------------------- 3. collect


def collect_standin(images: Path, out: Path, model: Path) -> list[dict]:
    """In-process stand-in for ``maskwatch --headless --source IMAGES --collect OUT``: the app's default
    detector and the base int8 classifier on every image; every face is kept (the selection below ranks
    them), saved as PNG with ``CONTEXT_MARGIN`` of context and the served box in file pixels."""
    from maskwatch.classification import MaskClassifier
    from maskwatch.crop import crop_face, square_box
    from maskwatch.detection import FaceDetector

    from train.data import IMAGE_SUFFIXES

    clf = MaskClassifier(model)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    records = []
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    with FaceDetector("retina") as det:
        for k, f in enumerate(files):
            img = cv2.imread(str(f))
            if img is None:
                continue
            faces = det.detect(img)
            if not len(faces):
                continue
            probs = clf.classify_faces(img, faces.xyxy)
            for j, (box, p) in enumerate(zip(faces.xyxy, probs)):
                sx1, sy1, sx2, sy2 = square_box(box, CONTEXT_MARGIN)
                ctx = crop_face(img, box, sx2 - sx1, CONTEXT_MARGIN, bgr=False)  # native pixels, BGR kept
                name = f"{f.stem}_{j}.png"
                cv2.imwrite(str(out / "crops" / name), ctx)
                x1, y1, x2, y2 = (float(v) for v in box)
                records.append({"file": f"crops/{name}", "image": str(f), "frame": k, "x1": x1, "y1": y1, "x2": x2,
                                "y2": y2, "face_x1": x1 - sx1, "face_y1": y1 - sy1, "face_x2": x2 - sx1,
                                "face_y2": y2 - sy1, "face_w": x2 - x1,
                                **{f"p_{lab}": float(v) for lab, v in zip(clf.labels, p)}})
            if k % 200 == 0:
                say(f"collect: {k}/{len(files)} images, {len(records)} faces")
    write_csv(records, out / "collected.csv")
    return records


def collect_cli(images: Path, out: Path, model: Path) -> list[dict]:
    """``maskwatch --headless --source IMAGES --collect OUT --model MODEL`` (the collect sink, issue 12)."""
    exe = shutil.which("maskwatch") or str(Path(sys.executable).with_name("maskwatch"))
    # every face is kept (top probability under 1.0, no cap) so that the random baseline draws from all
    # faces; the uncertainty order is the app's (lowest calibrated top probability first), and its first
    # few hundred are all under the app's default threshold (0.75), i.e. what a default --collect saves
    toml = out.parent / "collect_all.toml"
    toml.write_text("[collect]\nmax_top_prob = 1.0\nmax_files = 1000000\nmax_mb = 100000\n")
    cmd = [exe, "--headless", "--source", str(images), "--collect", str(out), "--config", str(toml),
           "--model", str(model)]
    say("collect: " + " ".join(shlex.quote(c) for c in cmd))
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(out / "collected.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def collect(images: Path, out: Path, model: Path, how: str) -> tuple[list[dict], str]:
    """The collection step: (records, which collector ran). ``how``: auto | cli | standin."""
    if (out / "collected.csv").is_file() and (out / "DONE").is_file():
        with open(out / "collected.csv", newline="") as fh:
            return list(csv.DictReader(fh)), (out / "DONE").read_text().strip()
    if out.exists():
        shutil.rmtree(out)
    use_cli = how == "cli" or (how == "auto" and (ROOT / "maskwatch" / "sinks" / "collect.py").is_file())
    used = "standin"
    if use_cli:
        try:
            records, used = collect_cli(images, out, model), "maskwatch --collect"
        except (subprocess.CalledProcessError, OSError, KeyError) as e:
            if how == "cli":
                raise
            say(f"collect: the CLI collect failed ({e}); using the in-process stand-in")
            shutil.rmtree(out, ignore_errors=True)
            records = collect_standin(images, out, model)
    else:
        records = collect_standin(images, out, model)
    (out / "DONE").write_text(used + "\n")
    return records, used


def write_csv(rows: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


# --------------------------------------------------------------------------- 4. review by script


def annotations(source_dir: Path) -> dict[str, list[tuple[str, tuple]]]:
    """image file name -> [(label, box)] from the VOC annotations (labels mapped to LABELS)."""
    from train.data import read_voc, resolve_label

    lm = {"with_incorrect_mask": "mask_worn_incorrectly"}
    out: dict[str, list] = {}
    for a in read_voc(source_dir, source_dir.name):
        objs = []
        for name, box in a.objects:
            lab = resolve_label(name, lm)
            if lab in LABELS:
                objs.append((lab, tuple(box)))
        out[Path(a.image).name] = objs
    return out


def label_records(records: list[dict], ann: dict) -> None:
    """Add ``label`` to each collected record: the annotated box with IoU >= 0.4, else ``not_a_face``."""
    from maskwatch.boxes import box_iou

    for r in records:
        objs = ann.get(Path(r["image"]).name, [])
        box = np.array([[float(r[k]) for k in ("x1", "y1", "x2", "y2")]], np.float32)
        r["label"] = "not_a_face"
        if objs:
            iou = box_iou(box, np.array([b for _, b in objs], np.float32))[0]
            if iou.max() >= IOU_MATCH:
                r["label"] = objs[int(iou.argmax())][0]


def top_prob(r: dict) -> float:
    return max(float(r[f"p_{lab}"]) for lab in LABELS)


def select(records: list[dict], n: int, strategy: str, seed: int) -> tuple[list[dict], int]:
    """``n`` labelled crops in review order, and how many not-a-face crops the reviewer skipped on the way."""
    if strategy == "uncertainty":
        order = sorted(range(len(records)), key=lambda i: (top_prob(records[i]), i))
    else:
        order = list(np.random.default_rng(seed).permutation(len(records)))
    picked, skipped = [], 0
    for i in order:
        if len(picked) == n:
            break
        if records[i]["label"] == "not_a_face":
            skipped += 1
        else:
            picked.append(records[i])
    return picked, skipped


def write_labelled(picked: list[dict], collect_dir: Path, out: Path) -> Path:
    """The review tab's output shape: ``out/labelled/<label>/`` + ``out/collected.csv`` (served boxes)."""
    if out.exists():
        shutil.rmtree(out)
    for r in picked:
        d = out / "labelled" / r["label"]
        d.mkdir(parents=True, exist_ok=True)
        (d / Path(r["file"]).name).symlink_to((collect_dir / r["file"]).resolve())
    write_csv(picked, out / "collected.csv")
    return out


# --------------------------------------------------------------------------- 6. evaluation


def evaluate(tflite: Path, x: np.ndarray, y: np.ndarray) -> dict:
    from train.export import basic_metrics, tflite_predict

    m = basic_metrics(y, tflite_predict(tflite, x))
    return {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "incorrect_recall": m["per_class"]["mask_worn_incorrectly"]["recall"],
            "recall": {lab: m["per_class"][lab]["recall"] for lab in LABELS}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="runs/pool")
    ap.add_argument("--loso", default="runs/loso_s96/ilc2021-scenes")
    ap.add_argument("--source", default="ilc2021-scenes")
    ap.add_argument("--source-dir", default="../shared/data/ilc2021-scenes")
    ap.add_argument("--out", default="runs/site_adaptation")
    ap.add_argument("--sizes", default="50,100,200")
    ap.add_argument("--strategies", default="uncertainty,random")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--replay-size", type=int, default=None, help="default: finetune's")
    ap.add_argument("--site-share", type=float, default=None, help="default: finetune's")
    ap.add_argument("--lr-top", type=float, default=None, help="default: finetune's")
    ap.add_argument("--no-replay-too", action="store_true", help="also fine-tune the largest uncertainty set without replay")
    ap.add_argument("--collector", choices=("auto", "cli", "standin"), default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default="benchmarks/results/site_adaptation")
    args = ap.parse_args(argv)
    from train.data import load_split
    from train.finetune import FinetuneConfig, finetune

    t_start = time.time()
    out, loso = Path(args.out), Path(args.loso)
    base_keras = make_base(loso / "fit" / "best.keras", loso / "data", out / "base")
    base_tfl = base_keras.with_suffix(".tflite")
    tr_rows, test_rows, other_rows = site_rows(Path(args.pool), args.source)
    images = link_images(sorted({r["path"] for r in tr_rows}), out / "site_train_images")
    say(f"site: {len({r['path'] for r in tr_rows})} site-train images ({len(tr_rows)} annotated faces), "
        f"{len(test_rows)} site-test faces, {len(other_rows)} pool test faces of other sources")
    cache = out / "cache"
    x_site, y_site = load_split(test_rows, "all", 96, 0.2, cache_dir=cache)
    is_test = np.array([r["split"] == "test" for r in test_rows])
    x_other, y_other = load_split(other_rows, "all", 96, 0.2, cache_dir=cache)

    t0 = time.time()
    records, collector = collect(images, out / "collect", base_tfl, args.collector)
    t_collect = time.time() - t0
    label_records(records, annotations(Path(args.source_dir)))
    n_lab = {lab: sum(r["label"] == lab for r in records) for lab in (*LABELS, "not_a_face")}
    say(f"collected {len(records)} crops with {collector} in {t_collect:.0f} s: {n_lab}")

    def measure(tfl: Path) -> dict:
        return {"site_test": evaluate(tfl, x_site, y_site), "site_test_only_test_split":
                evaluate(tfl, x_site[is_test], y_site[is_test]), "pool_test_other_sources": evaluate(tfl, x_other, y_other)}

    before = measure(base_tfl)
    reference = measure(ROOT / "models" / "mask_classifier.tflite")
    say(f"before: site macro F1 {before['site_test']['macro_f1']}, incorrect recall "
        f"{before['site_test']['incorrect_recall']}; pool (other sources) {before['pool_test_other_sources']['macro_f1']}")
    runs = []
    plan = [(s, int(n), True) for s in args.strategies.split(",") for n in args.sizes.split(",")]
    if args.no_replay_too:
        plan.append(("uncertainty", max(int(n) for n in args.sizes.split(",")), False))
    for strategy, n, replay in plan:
        name = f"{strategy}_{n}" + ("" if replay else "_noreplay")
        picked, skipped = select(records, n, strategy, args.seed)
        lab_dir = write_labelled(picked, out / "collect", out / "labelled" / name)
        run_dir = out / "ft" / name
        recipe = {k: getattr(args, k) for k in ("replay_size", "site_share", "lr_top")
                  if getattr(args, k) is not None}
        cfg = FinetuneConfig(data=str(lab_dir), out=str(run_dir), model=str(base_keras),
                             replay=str(loso / "data") if replay else None, epochs=args.epochs, holdout=0.0,
                             seed=args.seed, extra={"command": f"benchmarks/site_adaptation.py ({name})"}, **recipe)
        say(f"{name}: fine-tuning on {len(picked)} crops ({skipped} not-a-face skipped while reviewing)")
        rep = finetune(cfg, progress=False, say=lambda m: say("  " + m))
        after = measure(run_dir / "mask_classifier.tflite")
        row = {"name": name, "strategy": strategy, "n": n, "replay": replay, "labels": rep["site_crops"],
               "recipe": {k: rep["config"][k] for k in ("epochs", "replay_size", "site_share", "lr_head",
                                                        "lr_top", "top_fraction", "augment")},
               "not_a_face_skipped": skipped, "replay_faces": rep["replay_faces"],
               "seconds_train": rep["seconds_train"], "seconds_export": rep["seconds_export"],
               "seconds_finetune_total": rep["seconds_total"], "after": after}
        runs.append(row)
        say(f"{name}: site macro F1 {after['site_test']['macro_f1']} incorrect recall "
            f"{after['site_test']['incorrect_recall']}; pool other {after['pool_test_other_sources']['macro_f1']}; "
            f"{rep['seconds_total']:.0f} s")
        write_results(args, before, runs, collector, n_lab, t_collect, len(records), time.time() - t_start, argv,
                      reference)
    return 0


def write_results(args, before, runs, collector, n_lab, t_collect, n_collected, seconds, argv, reference=None) -> None:
    res = Path(args.results)
    res.parent.mkdir(parents=True, exist_ok=True)
    cmd = "nice -n 5 python benchmarks/site_adaptation.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    load = os.getloadavg()
    data = {"command": cmd.strip(), "collector": collector, "collected": n_collected, "collected_labels": n_lab,
            "collect_seconds": round(t_collect, 1), "before": before, "reference": reference, "runs": runs,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with 5 other agents "
                       f"(load average at the end {load[0]:.1f})", "seconds_total": round(seconds, 1),
            "config": vars(args)}
    Path(str(res) + ".json").write_text(json.dumps(data, indent=2) + "\n")
    Path(str(res) + ".md").write_text(render_md(data))


def _row(name: str, m: dict, crops: str = "–", skipped: str = "–", secs: str = "–") -> str:
    return (f"| {name} | {crops} | {skipped} | {m['site_test']['macro_f1']:.3f} | {m['site_test']['incorrect_recall']:.3f} | "
            f"{m['site_test_only_test_split']['macro_f1']:.3f} | {m['pool_test_other_sources']['macro_f1']:.3f} | {secs} |")


def render_md(data: dict) -> str:
    """The results table of a results JSON."""
    b = data["before"]
    lines = ["# Site adaptation: fine-tuning on a site's own labelled crops", "",
             f"Command: `{data['command']}`", "",
             "Base: the leave-one-source-out model trained without `ilc2021-scenes` (int8). Site: `ilc2021-scenes`; "
             f"{data['collected']} crops collected ({data['collector']}) from its train-split images, labelled by "
             "matching the annotations (IoU >= 0.4; no match = not a face, dropped); "
             f"site test = its val + test faces of `runs/pool` ({b['site_test']['n']}; the test split alone: "
             f"{b['site_test_only_test_split']['n']}), pool = the test split of the other sources "
             f"({b['pool_test_other_sources']['n']}). All int8. Fine-tunes with replay from the leave-one-source-out "
             "training manifest, `--holdout 0`.", "",
             "| run | crops (with / without / incorrect) | not-a-face skipped | site macro F1 | site incorrect recall "
             "| site test split only macro F1 | pool macro F1 (other sources) | fine-tune + export s |",
             "|---|---|---|---|---|---|---|---|", _row("before (base)", b)]
    for r in data["runs"]:
        lab = r["labels"]
        lines.append(_row(r["name"], r["after"], f"{lab['with_mask']} / {lab['without_mask']} / {lab['mask_worn_incorrectly']}",
                          str(r["not_a_face_skipped"]), f"{r['seconds_train']:.0f} + {r['seconds_export']:.0f}"))
    if data.get("reference"):
        lines.append(_row("reference: shipped 0.4.0 (trained on the pool incl. all ilc2021-scenes train faces)",
                          data["reference"]))
    lines += ["", f"Timings: {data['machine']}; niced (`nice -n 5`). Collection took {data['collect_seconds']:.0f} s. "
              f"Total {data['seconds_total']:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MaskwatchError as e:
        print(f"site_adaptation: error: {e}", file=sys.stderr)
        sys.exit(2)

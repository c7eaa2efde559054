"""People over time: the app's tracks, counts and labels scored against ground truth, per clip.

    python benchmarks/counting.py                                   # every clip, default settings
    python benchmarks/counting.py --variant "centroid:tracker.kind=centroid" --variant "byte:tracker.kind=byte"
    python benchmarks/counting.py --clips studio,synth_pan_148 --out benchmarks/results/counting

Real clips (``benchmarks/truth/*.csv``, made as ``benchmarks/truth/README.md`` says) come from
``../shared/data/videos`` (or ``$MASKWATCH_DATA``); synthetic camera-motion sequences are made from
annotated crowd photos (:mod:`counting_synth`) with exact truth, and reported apart. Each clip runs
through the real pipeline (``maskwatch.pipeline.Pipeline``) with the default configuration plus a
variant's ``key=value`` overrides (dotted config keys, comma separated, values read as TOML:
``tracker.kind=byte,tracker.max_age=60``), and is scored by :mod:`counting_score` (motmetrics IDF1,
ID switches, fragmentations, MOTA; people counted vs true, tracks per person, counted paintings,
per-person label accuracy, mask-off delay, spurious label changes, interval compliance error).
Writes ``<out>.md`` and ``<out>.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import counting_score as cs  # noqa: E402
import counting_synth as synth  # noqa: E402

TRUTH = HERE / "truth"
INTERVAL_S = 2.0
TARGETS = {
    "idf1": ">= 0.80 overall",
    "count_error": "within ±15% on every clip",
    "max_tracks_whole_clip": "<= 2",
    "label_accuracy": ">= 0.90 (faces >= 24 px)",
    "mask_off": "reported within 5 s",
    "spurious_changes_masked": "0",
}


def data_root() -> Path:
    return Path(os.environ.get("MASKWATCH_DATA", ROOT.parent / "shared" / "data"))


def real_clips() -> list[dict]:
    decisions = tomllib.loads((TRUTH / "real.toml").read_text())
    out = []
    for clip, spec in decisions["clips"].items():
        name = Path(clip).stem
        out.append({"name": name, "kind": "real", "path": data_root() / clip, "licence": spec["licence"],
                    "truth": _read(TRUTH / f"{name}.csv"), "people": _people(TRUTH / f"{name}.people.csv")})
    return out


def synthetic_clips(cache: Path) -> list[dict]:
    out = []
    for recipe in synth.RECIPES:
        path, rows, people = synth.render(recipe, data_root(), cache)
        out.append({"name": recipe.name, "kind": "synthetic", "path": path, "licence": "CC0 1.0 (facemask-scenes)",
                    "truth": rows, "people": {p["person"]: p["kind"] for p in people}})
    return out


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _people(path: Path) -> dict[int, str]:
    return {int(r["person"]): r["kind"] for r in _read(path)}


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, spec = text.partition(":")
    overrides = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"counting: bad override {item!r} in --variant {text!r} (want key=value)")
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = value.strip()
    return name or "default", overrides


def run_clip(clip: dict, overrides: dict) -> tuple[cs.Prediction, float]:
    """The app on one clip: per-frame faces, events and intervals (media time), and the processing fps."""
    from maskwatch import LABELS
    from maskwatch.config import Config
    from maskwatch.errors import MaskwatchError
    from maskwatch.pipeline import Pipeline

    try:
        config = Config(source=str(clip["path"]), interval_s=INTERVAL_S).with_overrides(overrides).validate()
    except MaskwatchError as e:
        raise SystemExit(f"counting: {e}") from None
    frames, events, intervals = {}, [], []
    t0 = time.perf_counter()
    n = 0
    with Pipeline(config) as pipeline:
        fps = pipeline.source.fps or 25.0
        base = pipeline.run_start_epoch
        for r in pipeline:
            if r.frame is not None:
                n += 1
                f = r.frame.index
                frames[f] = [(int(r.faces.track_id[k]), tuple(float(v) for v in r.faces.xyxy[k]),
                              LABELS[int(r.faces.track_label[k])] if r.faces.track_label[k] >= 0 else None)
                             for k in range(len(r.faces)) if r.faces.track_id[k] >= 0]
                events += [(e.kind, e.track_id, f, e.label, getattr(e, "previous", None)) for e in r.events]
            if r.summary is not None:
                intervals.append((r.summary.start - base, r.summary.end - base, r.summary.masked_time_share))
        last = pipeline.close()
        if last is not None:
            intervals.append((last.start - base, last.end - base, last.masked_time_share))
    return cs.Prediction(fps=fps, frames=frames, events=events, intervals=intervals), n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", default=[], help='"name:key=value,key=value" (repeatable; default: the defaults)')
    ap.add_argument("--clips", help="comma-separated clip names (or 'real', 'synthetic'); default: all")
    ap.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "counting" / "synth", help="where generated clips are kept")
    args = ap.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    clips = real_clips() + synthetic_clips(args.cache)
    if args.clips:
        wanted = set(args.clips.split(","))
        clips = [c for c in clips if c["name"] in wanted or c["kind"] in wanted]
        if not clips:
            raise SystemExit(f"counting: no clip named {args.clips!r}")
    for c in clips:
        if not Path(c["path"]).is_file():
            raise SystemExit(f"counting: clip not found: {c['path']} (set MASKWATCH_DATA to the data folder)")
    results = {}
    for vname, overrides in variants:
        accs, per_clip = {}, {}
        for clip in clips:
            pred, fps = run_clip(clip, overrides)
            score = cs.score_clip(clip["truth"], clip["people"], pred)
            score["processing_fps"] = round(fps, 1)
            score["kind"] = clip["kind"]
            per_clip[clip["name"]] = score
            accs[clip["name"]] = cs.accumulate(clip["truth"], clip["people"], pred)[0]
            print(f"{vname:>12} {clip['name']:<28} idf1 {score['idf1']}  people {score['people_counted']}/{score['people_true']}"
                  f"  switches {score['num_switches']}  labels {score['label_accuracy']}  mask-off {score['mask_off']}"
                  f"  spurious {score['spurious_changes']}", flush=True)
        summary = {}
        for kind in ("real", "synthetic"):
            names = [n for n, s in per_clip.items() if s["kind"] == kind]
            if names:
                summary[kind] = cs.mot_summary({n: accs[n] for n in names})["OVERALL"]
                summary[kind].update(_counting_totals([per_clip[n] for n in names]))
        summary["all"] = cs.mot_summary(accs)["OVERALL"]
        summary["all"].update(_counting_totals(list(per_clip.values())))
        results[vname] = {"overrides": overrides, "clips": per_clip, "summary": summary}
    report = {"command": "python benchmarks/counting.py " + " ".join(_quote(a) for a in (argv or sys.argv[1:])),
              "commit": _commit(), "machine": platform.platform(), "interval_s": INTERVAL_S,
              "targets": TARGETS, "results": results,
              "clips": {c["name"]: {"kind": c["kind"], "licence": c["licence"]} for c in clips}}
    text = render_md(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
        args.out.with_suffix(".md").write_text(text)
    return 0


def _counting_totals(scores: list[dict]) -> dict:
    people = sum(s["people_true"] for s in scores)
    delays = [d["delay_s"] for s in scores for d in s["mask_off"]]
    accs = [s["label_accuracy"] for s in scores if s["label_accuracy"] is not None]
    return {
        "people_true": people,
        "people_counted": sum(s["people_counted"] for s in scores),
        "worst_count_error": max((abs(s["count_error"]) for s in scores if s["count_error"] is not None), default=None),
        "counted_not_people": sum(s["counted_not_people"] for s in scores),
        "max_tracks_whole_clip": max((s["max_tracks_whole_clip"] or 0 for s in scores), default=None),
        "label_accuracy_mean": round(sum(accs) / len(accs), 4) if accs else None,
        "mask_off_delays_s": delays,
        "spurious_changes": sum(s["spurious_changes"] for s in scores),
        "spurious_changes_masked": sum(s["spurious_changes_masked"] for s in scores),
    }


def _quote(a: str) -> str:
    return f'"{a}"' if any(ch in a for ch in " :,") else a


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return head + ("+changes" if dirty else "")
    except OSError:
        return "unknown"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def render_md(report: dict) -> str:
    lines = ["# People over time: tracks, counts and labels against ground truth", "",
             f"Command: `{report['command']}`  ", f"Commit {report['commit']}, {report['machine']}; intervals of "
             f"{report['interval_s']:g} s. Targets (issue 17): " + "; ".join(f"{k} {v}" for k, v in report["targets"].items()) + ".", ""]
    for vname, res in report["results"].items():
        lines += [f"## {vname} {json.dumps(res['overrides']) if res['overrides'] else '(defaults)'}", "",
                  "| set | IDF1 | ID switches | frag. | MOTA | people counted / true | worst count error | paintings counted | max tracks, whole-clip person | label acc. | spurious changes (masked) | mask-off delays s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for kind, s in res["summary"].items():
            lines.append(f"| {kind} | {_fmt(s['idf1'])} | {_fmt(s['num_switches'])} | {_fmt(s['num_fragmentations'])} | {_fmt(s['mota'])} | "
                         f"{s['people_counted']} / {s['people_true']} | {_fmt(s['worst_count_error'])} | {s['counted_not_people']} | "
                         f"{_fmt(s['max_tracks_whole_clip'])} | {_fmt(s['label_accuracy_mean'])} | {s['spurious_changes']} ({s['spurious_changes_masked']}) | "
                         f"{', '.join(_fmt(d) for d in s['mask_off_delays_s']) or '–'} |")
        lines += ["", "| clip | kind | IDF1 | switches | frag. | MOTA | recall | precision | counted / true | tracks per person | paintings | label acc. (min) | first label | changes (spurious) | mask-off delay s | interval masked-share MAE | fps |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, s in res["clips"].items():
            tpp = " ".join(str(v) for v in s["tracks_per_person"].values())
            delays = ", ".join(_fmt(d["delay_s"]) if d["delay_s"] is not None else "missed" for d in s["mask_off"]) or "–"
            lines.append(f"| {name} | {s['kind']} | {_fmt(s['idf1'])} | {_fmt(s['num_switches'])} | {_fmt(s['num_fragmentations'])} | "
                         f"{_fmt(s['mota'])} | {_fmt(s['recall'])} | {_fmt(s['precision'])} | {s['people_counted']} / {s['people_true']} | {tpp} | "
                         f"{s['counted_not_people']} | {_fmt(s['label_accuracy'])} ({_fmt(s['label_accuracy_min'])}) | {_fmt(s['first_label_accuracy'])} | "
                         f"{s['label_changes']} ({s['spurious_changes']}) | {delays} | {_fmt(s['interval_compliance_mae'])} | {s['processing_fps']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

"""End to end, A/B: the pipeline's fps on a clip for this tree against another (a ``git worktree`` of an older commit).

    python benchmarks/detector_e2e.py --baseline /work/baseline --clip ../shared/data/videos/corridor_cctv_1080p.mp4 \\
        --rounds 3 --variant "default" --variant "motion=off:motion=False" --json benchmarks/results/detector_e2e.json \\
        --md benchmarks/results/detector_e2e.md
    python benchmarks/detector_e2e.py --counts     # people counted on the demo clip and the tests' known-faces clip
    python benchmarks/detector_e2e.py --streams 1,2,4 --clip ../shared/data/videos/corridor_cctv_1080p.mp4

Each measurement is one fresh process (``python -c`` with the tree first on ``sys.path``) that
runs :func:`maskwatch.bench.run` on every frame of the clip with the default configuration
(plus a variant's ``[detector.options]``). Runs alternate baseline / this tree / baseline / ...
(``--rounds`` of each), so both see the same load on a shared machine; the medians are compared.
``--streams`` runs :func:`maskwatch.bench.run_streams` (N pipelines at once, one process each).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

_SETUP = """
import json, sys
sys.path.insert(0, {tree!r})
from maskwatch.config import Config, DetectorConfig
config = Config(source={clip!r}, interval_s=60)
opts = {opts!r}
if opts:
    config.detector = DetectorConfig(options=opts)
"""
"""The config every run builds, in the tree under test (``tree``'s maskwatch, not this one)."""

_ONE = _SETUP + """
from maskwatch import bench
r = bench.run(config, frames=None, warmup=5)
print("RESULT " + json.dumps({{k: r[k] for k in ("fps", "stage_ms", "faces_per_frame", "detector_frames", "frames", "latency_ms")}}))
"""

_COUNTS = _SETUP + """
from maskwatch.monitor import Monitor
t = Monitor(config).run()
print("RESULT " + json.dumps({{"people_seen": t.people_seen, "by_label": t.by_label}}))
"""


def run_code(code: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"run failed: {out.stderr.strip()[-800:]}")


def parse_variant(text: str) -> tuple[str, dict]:
    """``"label:key=value,key=value"`` -> (label, options); ``"default"`` -> ("default", {})."""
    label, _, rest = text.partition(":")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        opts[k.strip()] = ast.literal_eval(v.strip())
    return label, opts


def ab(baseline: Path, clip: Path, variants: list[tuple[str, dict]], rounds: int) -> dict:
    runs: dict[str, list[dict]] = {"baseline": []}
    runs.update({label: [] for label, _ in variants})
    for k in range(rounds):
        runs["baseline"].append(run_code(_ONE.format(tree=str(baseline), clip=str(clip), opts={})))
        print(f"round {k + 1}: baseline {runs['baseline'][-1]['fps']} fps", file=sys.stderr, flush=True)
        for label, opts in variants:
            runs[label].append(run_code(_ONE.format(tree=str(HERE), clip=str(clip), opts=opts)))
            print(f"round {k + 1}: {label} {runs[label][-1]['fps']} fps", file=sys.stderr, flush=True)
    base = statistics.median(r["fps"] for r in runs["baseline"])
    summary = {}
    for label, rs in runs.items():
        fps = statistics.median(r["fps"] for r in rs)
        summary[label] = {
            "fps_median": fps, "fps_runs": [r["fps"] for r in rs], "ratio_to_baseline": round(fps / base, 2),
            "detect_ms_mean_median": statistics.median(r["stage_ms"]["detect"]["mean"] for r in rs),
            "total_ms_mean_median": statistics.median(r["stage_ms"]["total"]["mean"] for r in rs),
            "faces_per_frame": rs[0]["faces_per_frame"], "frames": rs[0]["frames"],
        }
    return summary


def counts(variants: list[tuple[str, dict]], baseline: Path | None) -> dict:
    sys.path.insert(0, str(HERE / "tests"))
    sys.path.insert(0, str(HERE / "tests" / "support"))
    from conftest import write_known_faces_clip  # noqa: E402

    from maskwatch.paths import demo_clip

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        known = write_known_faces_clip(Path(tmp) / "two_people.mp4")
        clips = {"demo": (str(demo_clip()), {"people_seen": 1, "by_label": {"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 0}}),
                 "known_faces": (str(known["path"]), {"people_seen": known["people"], "by_label": known["by_label"]})}
        corridor = HERE.parent / "shared/data/videos/corridor_cctv_1080p.mp4"
        if corridor.exists():  # the classifier's model card: 1 person, with a mask
            clips["corridor"] = (str(corridor), {"people_seen": 1, "by_label": {"with_mask": 1, "without_mask": 0, "mask_worn_incorrectly": 0}})
        trees = [("this tree " + label, HERE, opts) for label, opts in variants]
        if baseline:
            trees.insert(0, ("baseline", baseline, {}))
        for name, (clip, want) in clips.items():
            for label, tree, opts in trees:
                got = run_code(_COUNTS.format(tree=str(tree), clip=clip, opts=opts))
                out[f"{name} / {label}"] = {**got, "expected": want, "right": got == want}
                print(f"{name} / {label}: {got} {'right' if got == want else 'WRONG'}", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="the other tree (a git worktree of the commit to compare with)")
    ap.add_argument("--clip", type=Path, default=HERE.parent / "shared/data/videos/corridor_cctv_1080p.mp4")
    ap.add_argument("--variant", action="append", default=[], help="LABEL[:key=value,...] detector options of this tree")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--counts", action="store_true", help="people counted on the demo and known-faces clips")
    ap.add_argument("--streams", default="", help="also N streams at once, e.g. 1,2,4")
    ap.add_argument("--stream-frames", type=int, default=None, help="frames per stream (default: the whole clip)")
    ap.add_argument("--realtime", action="store_true", help="streams paced at the clip's fps, as cameras")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args(argv)
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    load_before = os.getloadavg()[0]
    result: dict = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
                    "machine": platform.platform(), "cpus": os.cpu_count()}
    if args.baseline:
        result["ab"] = ab(args.baseline, args.clip, variants, args.rounds)
    if args.counts:
        result["counts"] = counts(variants, args.baseline)
    if args.streams:
        from maskwatch import bench
        from maskwatch.config import Config

        result["streams"] = []
        for n in (int(x) for x in args.streams.split(",")):
            config = Config(source=str(args.clip), interval_s=60)
            config.sources.realtime = args.realtime
            result["streams"].append(bench.run_streams(config, n, frames=args.stream_frames))
            print(bench.format_streams(result["streams"][-1]), file=sys.stderr, flush=True)
    result["loadavg_1m_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    text = format_md(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.md:
        args.md.write_text(text + "\n")
    return 0


def format_md(result: dict) -> str:
    parts = [f"Command: `{result['command']}`",
             f"{result['machine']}, {result['cpus']} CPUs shared with other jobs; load average (1 min) before/after "
             f"{result['loadavg_1m_before_after']}; medians of alternating runs."]
    if "ab" in result:
        lines = ["| tree / variant | fps (median) | runs | x baseline | detect ms | total ms | faces/frame |", "|---|---|---|---|---|---|---|"]
        for label, s in result["ab"].items():
            lines.append(f"| {label} | {s['fps_median']:.1f} | {', '.join(f'{x:.1f}' for x in s['fps_runs'])} | {s['ratio_to_baseline']:.2f} "
                         f"| {s['detect_ms_mean_median']:.1f} | {s['total_ms_mean_median']:.1f} | {s['faces_per_frame']:.2f} |")
        parts.append("\n".join(lines))
    if "counts" in result:
        lines = ["| clip / tree | people | by label | right |", "|---|---|---|---|"]
        for label, c in result["counts"].items():
            lines.append(f"| {label} | {c['people_seen']} | {c['by_label']} | {'yes' if c['right'] else 'NO'} |")
        parts.append("\n".join(lines))
    if "streams" in result:
        from maskwatch.bench import format_streams

        parts.append("```\n" + "\n\n".join(format_streams(s) for s in result["streams"]) + "\n```")
    return "\n\n".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())

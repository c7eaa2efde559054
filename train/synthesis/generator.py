"""The generator over a ``prepare`` manifest: targets and donors of the train split, the positions
of each target's faces, the crops and manifests written (:func:`synthesize`), and its sub-command."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from maskwatch.crop import DEFAULT_MARGIN, crop_face
from maskwatch.errors import MaskwatchError
from train.synthesis.composite import box_in_crop, compose, crop_side
from train.synthesis.donors import Donor, extract_donor
from train.synthesis.geometry import plausible_keypoints, yaw_of
from train.synthesis.keypoints import KeypointCache, match_keypoints

log = logging.getLogger("maskwatch.train.synthesis")

SYNTH_SOURCE = "synthetic-position"
EXTRA_COLUMNS = ["generated", "synth_position", "donor", "target", "donor_source", "target_source"]
SYNTHETIC_DONOR_MARKERS = ("prajnasb_",)
"""Path parts of pool images whose masks are themselves synthetic (web-2class ``prajnasb_*``): never donors."""
SYNTHETIC_SOURCES = ("maskedface-net", SYNTH_SOURCE)
"""Sources whose masks are synthetic: never donors."""


@dataclass(frozen=True)
class Position:
    """Where the mask's top edge sits: a range of canonical y (units), and the label that gives."""

    label: str
    top: tuple[float, float] | None  # None: no mask (the control, same code path with alpha 0)
    doc: str = ""


POSITIONS = {
    "over_nose": Position("with_mask", (55.0, 62.0), "top edge over the nose bridge (worn correctly)"),
    "under_nose": Position("mask_worn_incorrectly", (76.0, 81.0),
                           "top edge between the nose tip and the upper lip: nose fully visible"),
    "mouth_only": Position("mask_worn_incorrectly", (84.0, 88.0),
                           "top edge on the upper lip: nose and philtrum bare, mouth still covered"),
    "chin": Position("mask_worn_incorrectly", (100.0, 107.0), "top edge under the lower lip: mouth bare, mask on the chin"),
    "none": Position("without_mask", None, "no mask: the target through the same path (control)"),
}
"""Canonical heights: eyes 51.6, nose tip 71.7, mouth corners 92.3, lower lip ~98, chin ~118."""
INCORRECT_WEIGHTS = {"under_nose": 0.5, "mouth_only": 0.25, "chin": 0.25}
"""How a pair's incorrectly-worn face is placed (under the nose is the most common real violation)."""


# ---------------------------------------------------------------- the generator over a prepare manifest

@dataclass
class SynthReport:
    """What ``synthesize`` used, rejected and wrote."""

    targets_considered: int = 0
    targets_used: int = 0
    target_rejects: Counter = field(default_factory=Counter)
    donors_considered: int = 0
    donors_used: int = 0
    donor_rejects: Counter = field(default_factory=Counter)
    not_train: int = 0
    detected_images: int = 0
    faces: int = 0
    per_position: Counter = field(default_factory=Counter)
    per_label: Counter = field(default_factory=Counter)
    per_target_source: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def _manifest_rows(data: str | Path) -> tuple[list[dict], Path]:
    from train.data import load_manifest

    path = Path(data)
    csv_path = path / "manifest.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise MaskwatchError(f"--data {data}: no manifest.csv there; run 'maskwatch-train prepare <sources> --out DIR' "
                             "first and pass DIR (synthesize takes faces, splits and groups from its manifest, so a "
                             "generated face stays on its target's side of the split)")
    rows = load_manifest(csv_path)
    if any(r.get("generated") == "1" for r in rows):
        raise MaskwatchError(f"--data {data} already holds generated faces; pass the manifest written by prepare")
    return rows, csv_path


def _is_real_mask(row: dict) -> bool:
    return row["source"] not in SYNTHETIC_SOURCES and not any(m in row["path"] for m in SYNTHETIC_DONOR_MARKERS)


def _face_ref(row: dict) -> str:
    return f"{row['path']}@{row['x1']:.0f},{row['y1']:.0f},{row['x2']:.0f},{row['y2']:.0f}"


def plan_positions(n: int, rng: np.random.Generator, control: float) -> list[list[str]]:
    """Positions for one target's ``n`` faces, grouped by the donor they share: pairs of a correctly
    worn face and an incorrectly worn one (the same mask, the same face, only the height differs); an
    odd last face draws over_nose or an incorrect position; with probability ``control`` one more
    group holds the unmasked control.

    >>> rng = np.random.default_rng(0)
    >>> [len(g) for g in plan_positions(5, rng, 0.0)], plan_positions(2, rng, 0.0)[0][0]
    ([2, 2, 1], 'over_nose')
    """
    names, weights = list(INCORRECT_WEIGHTS), np.array(list(INCORRECT_WEIGHTS.values()))
    groups = []
    for _ in range(n // 2):
        groups.append(["over_nose", str(rng.choice(names, p=weights / weights.sum()))])
    if n % 2:
        groups.append(["over_nose" if rng.random() < 0.5 else str(rng.choice(names, p=weights / weights.sum()))])
    if control > 0 and rng.random() < control:
        groups.append(["none"])
    return groups


def pick_donor(donors: list[Donor], target_yaw: float, target_w: float, rng: np.random.Generator,
               source: str | None = None, pool: int = 12) -> Donor | None:
    """A random donor among the ``pool`` that fit the target best (mirrored when that fits better).

    Fit = difference in yaw + 0.25 per halving of resolution below 3/4 of the target's width: a mask
    enlarged from a much smaller face looks soft next to a sharp face.
    """
    cands = [d for d in donors if source is None or d.source == source]
    if not cands:
        return None
    yaw = np.array([d.yaw for d in cands])
    width = np.array([max(d.face_w, 1.0) for d in cands])
    mirror = np.abs(-yaw - target_yaw) < np.abs(yaw - target_yaw)
    cost = np.minimum(np.abs(yaw - target_yaw), np.abs(-yaw - target_yaw))
    cost += 0.25 * np.maximum(0.0, np.log2(0.75 * target_w / width))
    order = np.argsort(cost + rng.random(len(cands)) * 1e-6)[:pool]
    i = int(rng.choice(order))
    return cands[i].mirrored() if mirror[i] else cands[i]


def _read(path: str, manifest_path: Path) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise MaskwatchError(f"cannot read {path} listed in {manifest_path}")
    return img


def _keypoints_of(row: dict, detections: list, rejects: Counter) -> np.ndarray | None:
    """The keypoints of a manifest face if they describe a usable face; else count why not."""
    box = (row["x1"], row["y1"], row["x2"], row["y2"])
    kps = match_keypoints(box, detections)
    why = "no keypoints" if kps is None else plausible_keypoints(kps, box)
    if why:
        rejects[why] += 1
        return None
    return kps


def load_donors(rows: list[dict], kcache: KeypointCache, report: SynthReport, manifest_path: Path,
                progress=lambda it, **kw: it) -> list[Donor]:
    """The masks of the masked faces ``rows`` that pass :func:`plausible_keypoints` and :func:`segment_mask`."""
    donors: list[Donor] = []
    for path, group in progress(_by_path(rows), desc="donors", unit="img"):
        img = _read(path, manifest_path)
        dets = kcache.get(path, img)
        for r in group:
            kps = _keypoints_of(r, dets, report.donor_rejects)
            if kps is None:
                continue
            d, why = extract_donor(img, kps, r["face_w"])
            if d is None:
                report.donor_rejects[why] += 1
                continue
            d.path, d.box, d.source = _face_ref(r), (r["x1"], r["y1"], r["x2"], r["y2"]), r["source"]
            donors.append(d)
    return donors


def _clear_previous(out: Path) -> None:
    """Remove a previous ``synthesize`` run's files from ``out`` (only those its manifest lists); refuse
    any other non-empty folder, so nothing else is ever deleted."""
    if not out.exists():
        return
    if not out.is_dir():
        raise MaskwatchError(f"--out {out} is a file")
    if not (out / "synthesis.json").is_file():
        if any(out.iterdir()):
            raise MaskwatchError(f"--out {out} is not empty and holds no earlier synthesize run; choose a new folder")
        return
    from train.data import load_manifest

    old = out / "manifest.csv"
    if old.is_file():
        for r in load_manifest(old):
            p = Path(r["path"])
            if r.get("generated") == "1" and p.parent.parent.resolve() == out.resolve() and p.is_file():
                p.unlink()
    for p in (old, out / "combined" / "manifest.csv", out / "synthesis.json"):
        if p.is_file():
            p.unlink()


def synthesize(data: str | Path, out: str | Path, per_target: int = 2, seed: int = 0, margin: float = DEFAULT_MARGIN,
               min_donor: float = 40.0, min_target: float = 24.0, max_side: int = 224, control: float = 0.25,
               donor_source: str = "same", sources: list[str] | None = None, max_targets: int | None = None,
               cache: str | Path | None = "runs/keypoints/retina.json", progress: bool = True) -> SynthReport:
    """Generate ``per_target`` faces for every usable ``without_mask`` train face of the ``prepare``
    manifest ``data``; write crops, ``OUT/manifest.csv``, ``OUT/combined/manifest.csv`` and
    ``OUT/synthesis.json``. See the module docstring."""
    from train.data import write_manifest

    t0 = time.time()
    if per_target < 1:
        raise MaskwatchError(f"--per-target must be at least 1, not {per_target}")
    if donor_source not in ("same", "any"):
        raise MaskwatchError(f"--donor-source must be same or any, not {donor_source!r}")
    if not 0.0 <= control <= 1.0:
        raise MaskwatchError(f"--control must be in [0, 1], not {control}")
    rows, manifest_path = _manifest_rows(data)
    known = sorted({r["source"] for r in rows})
    missing = sorted(set(sources or ()) - set(known))
    if missing:
        raise MaskwatchError(f"--sources {', '.join(missing)}: not in the manifest (it has {', '.join(known)})")
    rows_sel = [r for r in rows if not sources or r["source"] in sources]
    out = Path(out)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"data": str(manifest_path), "per_target": per_target, "seed": seed, "margin": margin,
                "min_donor": min_donor, "min_target": min_target, "control": control, "donor_source": donor_source,
                "sources": sources, "max_targets": max_targets,
                "positions": {k: [v.label, v.top, v.doc] for k, v in POSITIONS.items()}}
    # the marker first: even a half-written folder is recognised as generated (prepare refuses it)
    (out / "synthesis.json").write_text(json.dumps({**settings, "status": "running"}, indent=2))
    report = SynthReport()
    rng = np.random.default_rng(seed)
    bar = _bar(progress)

    def usable(r: dict, label: str, min_w: float) -> bool:
        return r["label"] == label and r["x1"] is not None and (r["face_w"] or 0.0) >= min_w

    donor_rows = [r for r in rows_sel if usable(r, "with_mask", min_donor) and _is_real_mask(r)]
    target_rows = [r for r in rows_sel if usable(r, "without_mask", min_target)]
    report.not_train = sum(r["split"] != "train" for r in donor_rows + target_rows)
    donor_rows = [r for r in donor_rows if r["split"] == "train"]
    target_rows = [r for r in target_rows if r["split"] == "train"]
    if max_targets is not None and len(target_rows) > max_targets:
        target_rows = [target_rows[i] for i in sorted(rng.choice(len(target_rows), max_targets, replace=False))]
    report.donors_considered, report.targets_considered = len(donor_rows), len(target_rows)

    written: list[dict] = []
    kcache = KeypointCache(cache)
    try:
        donors = load_donors(donor_rows, kcache, report, manifest_path, bar)
        report.donors_used = len(donors)
        if not donors:
            raise MaskwatchError(f"no usable mask donors in {manifest_path} (train-split with_mask faces at least "
                                 f"{min_donor:g} px wide, with keypoints and a plausible mask cut-out): "
                                 f"{dict(report.donor_rejects) or 'none found'}")
        for path, group in bar(_by_path(target_rows), desc="targets", unit="img"):
            img = _read(path, manifest_path)
            dets = kcache.get(path, img)
            for r in group:
                kps = _keypoints_of(r, dets, report.target_rejects)
                if kps is None:
                    continue
                box = (r["x1"], r["y1"], r["x2"], r["y2"])
                side = crop_side(box, margin, max_side)
                n_before = len(written)
                for positions in plan_positions(per_target, rng, control):
                    donor = pick_donor(donors, yaw_of(kps), r["face_w"], rng,
                                       source=r["source"] if donor_source == "same" else None)
                    if donor is None:
                        report.target_rejects["no donor of its source"] += 1
                        break
                    for pos in positions:
                        spec = POSITIONS[pos]
                        top = None if spec.top is None else float(rng.uniform(*spec.top))
                        composite, _ = compose(img, kps, donor, top)
                        crop = crop_face(composite, box, side, margin, bgr=True)
                        dest = out / spec.label / f"{r['source']}_{Path(r['path']).stem}_{len(written) + 1:06d}_{pos}.jpg"
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        if not cv2.imwrite(str(dest), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]):
                            raise MaskwatchError(f"cannot write {dest}")
                        bx = box_in_crop(box, margin, side)
                        written.append({
                            "path": str(dest.resolve()), "source": SYNTH_SOURCE, "label": spec.label,
                            "face_w": round(bx[2] - bx[0], 1), "face_h": round(bx[3] - bx[1], 1), "split": "train",
                            "group": r["group"], "x1": round(bx[0], 2), "y1": round(bx[1], 2), "x2": round(bx[2], 2),
                            "y2": round(bx[3], 2), "box_from": "synthetic", "source_label": pos,
                            "generated": 1, "synth_position": pos,
                            "donor": donor.path + (" (mirrored)" if donor.flipped else ""), "target": _face_ref(r),
                            "donor_source": donor.source, "target_source": r["source"]})
                        report.per_position[pos] += 1
                        report.per_label[spec.label] += 1
                        report.per_target_source[r["source"]] += 1
                report.targets_used += len(written) > n_before
        report.detected_images = kcache.detected
    finally:
        kcache.close()
    report.faces = len(written)
    if not written:
        raise MaskwatchError(f"no faces generated: none of the {report.targets_considered} train-split without_mask "
                             f"faces at least {min_target:g} px wide in {manifest_path} was usable "
                             f"({dict(report.target_rejects) or 'no such faces'})")
    write_manifest(written, out / "manifest.csv")
    # the input manifest plus the generated faces: what 'fit --data OUT/combined' trains on
    real = [{**r, **{c: "" for c in EXTRA_COLUMNS}, "generated": 0} for r in rows]
    write_manifest(real + written, out / "combined" / "manifest.csv")
    report.seconds = round(time.time() - t0, 1)
    (out / "synthesis.json").write_text(json.dumps({**settings, "status": "done", "report": report.as_dict()}, indent=2))
    return report


def _by_path(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["path"], []).append(r)
    return list(groups.items())


def _bar(enabled: bool):
    if not enabled:
        return lambda it, **kw: it
    from tqdm import tqdm

    return lambda it, **kw: tqdm(it, **kw)


# ---------------------------------------------------------------- CLI

def register(subparsers) -> None:
    """Add ``synthesize`` to ``maskwatch-train``'s sub-commands."""
    p = subparsers.add_parser(
        "synthesize", help="real masks on real unmasked train faces, at four heights (position-only classes)",
        description="Cut real masks from masked faces of a prepare manifest and paste them on its unmasked "
                    "train faces, aligned by RetinaFace keypoints: over the nose (with_mask), under the nose, "
                    "on the upper lip, on the chin (mask_worn_incorrectly). Writes OUT/<label>/*.jpg crops, "
                    "OUT/manifest.csv (generated=1, split train, the target's group) and OUT/combined/manifest.csv.")
    p.add_argument("--data", required=True, help="prepare output folder (or its manifest.csv)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--per-target", type=int, default=2, help="generated faces per unmasked face (default 2: a "
                   "correctly and an incorrectly worn mask from one donor)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="crop margin, as training (default %(default)s)")
    p.add_argument("--min-donor", type=float, default=40.0, help="narrowest masked face to take a mask from, px (default 40)")
    p.add_argument("--min-target", type=float, default=24.0, help="narrowest unmasked face to put a mask on, px (default 24)")
    p.add_argument("--control", type=float, default=0.25,
                   help="share of targets that also get an unmasked copy through the same path (without_mask; default 0.25)")
    p.add_argument("--donor-source", choices=("same", "any"), default="same",
                   help="take masks from the target's own source (default; keeps leave-one-source-out clean) or any")
    p.add_argument("--sources", help="comma-separated sources of the manifest to use (default: all)")
    p.add_argument("--max-targets", type=int, default=None, help="use at most this many unmasked faces (random)")
    p.add_argument("--cache", default="runs/keypoints/retina.json", help="RetinaFace keypoint cache (JSON)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    sources = [s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None
    rep = synthesize(args.data, args.out, per_target=args.per_target, seed=args.seed, margin=args.margin,
                     min_donor=args.min_donor, min_target=args.min_target, control=args.control,
                     donor_source=args.donor_source, sources=sources, max_targets=args.max_targets,
                     cache=args.cache, progress=not args.no_progress)
    print(f"generated {rep.faces} faces from {rep.targets_used} of {rep.targets_considered} unmasked train faces "
          f"and {rep.donors_used} of {rep.donors_considered} mask donors in {rep.seconds:.0f} s")
    print("  by label: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.per_label.items())))
    print("  by position: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.per_position.items())))
    if rep.donor_rejects:
        print("  donors rejected: " + ", ".join(f"{k} {v}" for k, v in rep.donor_rejects.most_common()))
    if rep.target_rejects:
        print("  targets skipped: " + ", ".join(f"{k} {v}" for k, v in rep.target_rejects.most_common()))
    print(f"manifest: {args.out}/manifest.csv; train on {args.out}/combined (the input manifest plus these)")
    return 0

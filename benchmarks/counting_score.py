"""Scoring people over time: MOT metrics (motmetrics) and the counting figures a facility officer reads.

Inputs, per clip:

- ``truth``: rows ``{frame, person, x1, y1, x2, y2, label, visible}`` (``label`` one of the three
  labels or ``"transition"``: a mask going on or off, not scored; ``visible`` 0: in the scene but not
  visible — turned away, occluded, out of the frame — and not scored), and ``people``:
  ``{person: kind}`` with kind ``person`` or ``not_a_person`` (a painting, a poster, a screen);
- ``Prediction``: what the app said: per frame the faces (track id, box, the track's current label or
  ``None``) and the events (``person_seen``, ``label_decided``, ``label_changed``), and the app's
  interval rows (media-time start/end, masked share of person-time).

Matching is by box IoU >= ``MIN_IOU``. Boxes of the app that match an invisible or a not-a-person
truth box are left out of the MOT scores (neither right nor wrong there); a counted track that
matches a not-a-person is a counting error of its own (``counted_not_people``).

>>> truth = [dict(frame=f, person=1, x1=0, y1=0, x2=40, y2=40, label="with_mask", visible=1) for f in range(6)]
>>> pred = Prediction(fps=1.0, frames={f: [(7, (1, 1, 41, 41), "with_mask")] for f in range(6)},
...                   events=[("person_seen", 7, 0, None, None)])
>>> s = score_clip(truth, {1: "person"}, pred)
>>> s["idf1"], s["people_true"], s["people_counted"], s["label_accuracy"]
(1.0, 1, 1, 1.0)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from maskwatch.boxes import box_iou

LABELS = ("with_mask", "without_mask", "mask_worn_incorrectly")
MIN_IOU = 0.4  # faces are small and truth boxes come from another detector or from annotators
MIN_VISIBLE_FRAMES = 5  # a person seen on fewer frames is not expected to be counted
LABEL_MIN_WIDTH = 24.0  # per-person label accuracy: people whose face is at least this wide at some point
CHANGE_TOLERANCE_S = 5.0  # a label change is right if the truth had the new label within this before


@dataclass
class Prediction:
    fps: float
    frames: dict[int, list[tuple[int, tuple, str | None]]]  # frame -> [(track id, box xyxy, label or None)]
    events: list[tuple[str, int, int, str | None, str | None]]  # (kind, track id, frame, label, previous)
    intervals: list[tuple[float, float, float | None]] = field(default_factory=list)  # (start s, end s, masked share)


def _box(r) -> tuple:
    return (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))


def accumulate(truth: list[dict], people: dict[int, str], pred: Prediction):
    """A ``motmetrics.MOTAccumulator`` over the clip, and per counted track the truth entity it follows."""
    import motmetrics as mm

    counted = {tid for kind, tid, *_ in pred.events if kind == "person_seen"}
    by_frame: dict[int, list[dict]] = defaultdict(list)
    for r in truth:
        by_frame[int(r["frame"])].append(r)
    acc = mm.MOTAccumulator(auto_id=False)
    follows: dict[int, Counter] = defaultdict(Counter)  # track -> truth person -> frames matched
    frames = sorted(set(by_frame) | set(pred.frames))
    for f in frames:
        rows = by_frame.get(f, [])
        hyps = [(tid, box) for tid, box, _ in pred.frames.get(f, []) if tid in counted]
        # one IoU matrix per frame (truth rows x counted boxes), with the project's box_iou
        ious = box_iou([_box(r) for r in rows], [box for _, box in hyps], np.float64)
        is_scored = [bool(int(r["visible"])) and people.get(int(r["person"])) == "person" for r in rows]
        scored_rows = [i for i, yes in enumerate(is_scored) if yes]
        other_rows = [i for i, yes in enumerate(is_scored) if not yes]
        keep = []  # columns of ``ious`` that are scored
        for j, (tid, _) in enumerate(hyps):
            if rows:  # who each counted track follows (any truth row, visible or not)
                best = int(np.argmax(ious[:, j]))
                if ious[best, j] >= MIN_IOU:
                    follows[tid][int(rows[best]["person"])] += 1
            best_scored = max((ious[i, j] for i in scored_rows), default=0.0)
            best_other = max((ious[i, j] for i in other_rows), default=0.0)
            if best_other >= MIN_IOU and best_other > best_scored:
                continue  # on an invisible person or a painting: not scored here
            keep.append(j)
        sub = ious[np.ix_(scored_rows, keep)]
        dist = np.where(sub >= MIN_IOU, 1.0 - sub, np.nan)
        acc.update([int(rows[i]["person"]) for i in scored_rows], [hyps[j][0] for j in keep], dist, frameid=f)
    return acc, {tid: c.most_common(1)[0][0] if c else None for tid, c in ((t, follows.get(t, Counter())) for t in counted)}


def mot_summary(accs: dict, overall: bool = True) -> dict[str, dict]:
    import motmetrics as mm

    mh = mm.metrics.create()
    metrics = ["idf1", "num_switches", "num_fragmentations", "mota", "precision", "recall"]
    df = mh.compute_many(list(accs.values()), metrics=metrics, names=list(accs), generate_overall=overall)
    return {name: {m: _num(m, df.loc[name, m]) for m in metrics} for name in df.index}


def _num(metric: str, v):
    v = float(v)
    if np.isnan(v):
        return None
    return int(v) if metric.startswith("num_") else round(v, 4)


def score_clip(truth: list[dict], people: dict[int, str], pred: Prediction) -> dict:
    """Every figure of one clip (see the module docstring); ``mot`` from :func:`mot_summary`."""
    acc, follows = accumulate(truth, people, pred)
    mot = mot_summary({"clip": acc}, overall=False)["clip"]
    fps = pred.fps
    visible = Counter(int(r["person"]) for r in truth if int(r["visible"]))
    all_frames = {int(r["frame"]) for r in truth} | set(pred.frames)
    n_frames = (max(all_frames) + 1) if all_frames else 0
    true_people = [p for p, kind in people.items() if kind == "person" and visible[p] >= MIN_VISIBLE_FRAMES]
    counted = [tid for kind, tid, *_ in pred.events if kind == "person_seen"]
    tracks_of = defaultdict(list)
    for tid in counted:
        tracks_of[follows.get(tid)].append(tid)
    not_people = [tid for tid in counted if follows.get(tid) is not None and people.get(follows[tid]) != "person"]
    ghosts = tracks_of.get(None, [])
    whole = [p for p in true_people if visible[p] >= 0.9 * n_frames]

    # labels: per frame, the app's label of the track that follows each truth person
    truth_label = {(int(r["frame"]), int(r["person"])): r["label"] for r in truth}
    widths = defaultdict(float)
    for r in truth:
        widths[int(r["person"])] = max(widths[int(r["person"])], float(r["x2"]) - float(r["x1"]))
    right, scored_frames = Counter(), Counter()
    for f, faces in pred.frames.items():
        for tid, _box_, label in faces:
            p = follows.get(tid)
            if p is None or label is None or people.get(p) != "person":
                continue
            t = truth_label.get((f, p))
            if t not in LABELS:
                continue
            scored_frames[p] += 1
            right[p] += int(label == t)
    label_people = [p for p in true_people if widths[p] >= LABEL_MIN_WIDTH and scored_frames[p]]
    per_person = {p: right[p] / scored_frames[p] for p in label_people}

    first_right = []
    for kind, tid, f, label, _prev in pred.events:
        if kind == "label_decided" and follows.get(tid) in per_person:
            t = _nearest_label(truth_label, follows[tid], f)
            first_right.append(label == t)

    changes = [e for e in pred.events if e[0] == "label_changed"]
    spurious, spurious_masked = 0, 0
    masked_people = {p for p in true_people if _masked_throughout(truth, p)}
    for _kind, tid, f, label, _prev in changes:
        p = follows.get(tid)
        if p is None or people.get(p) != "person":
            continue
        window = range(int(f - CHANGE_TOLERANCE_S * fps), f + 1)
        if not any(truth_label.get((g, p)) == label for g in window):
            spurious += 1
            spurious_masked += int(p in masked_people)
    delays = _mask_off_delays(truth, people, pred, follows)

    return {
        "frames": n_frames,
        "people_true": len(true_people),
        "people_counted": len(counted),
        "count_error": (len(counted) - len(true_people)) / len(true_people) if true_people else None,
        "counted_not_people": len(not_people),
        "counted_ghosts": len(ghosts),
        "tracks_per_person": {p: len(tracks_of.get(p, [])) for p in true_people},
        "whole_clip_people": whole,
        "max_tracks_whole_clip": max((len(tracks_of.get(p, [])) for p in whole), default=None),
        "label_accuracy": round(float(np.mean(list(per_person.values()))), 4) if per_person else None,
        "label_accuracy_min": round(min(per_person.values()), 4) if per_person else None,
        "label_people": len(per_person),
        "first_label_accuracy": round(float(np.mean(first_right)), 4) if first_right else None,
        "label_changes": len(changes),
        "spurious_changes": spurious,
        "spurious_changes_masked": spurious_masked,
        "mask_off": delays,
        "interval_compliance_mae": _interval_mae(truth, people, pred),
        **{k: mot[k] for k in mot},
    }


def _nearest_label(truth_label: dict, person: int, frame: int) -> str | None:
    for d in range(0, 1000):
        for g in (frame - d, frame + d):
            t = truth_label.get((g, person))
            if t in LABELS:
                return t
    return None


def _masked_throughout(truth: list[dict], person: int) -> bool:
    """A person whose truth label, once it is with_mask, never changes (the masked people of the target)."""
    labels = [r["label"] for r in sorted(truth, key=lambda r: int(r["frame"])) if int(r["person"]) == person and r["label"] in LABELS]
    if "with_mask" not in labels:
        return False
    return all(label == "with_mask" for label in labels[labels.index("with_mask"):])


def _mask_off_delays(truth, people, pred: Prediction, follows: dict) -> list[dict]:
    """For each truth with_mask -> off change: seconds until the app changed that person's label off with_mask."""
    out = []
    by_person = defaultdict(list)
    for r in truth:
        by_person[int(r["person"])].append((int(r["frame"]), r["label"]))
    for p, rows in by_person.items():
        if people.get(p) != "person":
            continue
        rows.sort()
        prev_label, start = None, None
        for f, label in rows:
            if label == "transition":
                if prev_label == "with_mask" and start is None:
                    start = f
                continue
            if prev_label == "with_mask" and label in ("without_mask", "mask_worn_incorrectly"):
                t0 = start if start is not None else f
                tracks = {t for t, q in follows.items() if q == p}
                hits = [e[2] for e in pred.events if e[0] == "label_changed" and e[1] in tracks
                        and e[4] == "with_mask" and e[2] >= t0]
                out.append({"person": p, "frame": t0,
                            "delay_s": round((min(hits) - t0) / pred.fps, 2) if hits else None})
            start = None if label != "transition" else start
            prev_label = label
    return out


def _interval_mae(truth, people, pred: Prediction) -> float | None:
    """Mean |masked share of person-time, app - truth| over the app's intervals where both are defined."""
    errors = []
    for start, end, share in pred.intervals:
        if share is None:
            continue
        f0, f1 = int(round(start * pred.fps)), int(round(end * pred.fps))
        labels = [r["label"] for r in truth if f0 <= int(r["frame"]) < f1 and int(r["visible"])
                  and people.get(int(r["person"])) == "person" and r["label"] in LABELS]
        if labels:
            errors.append(abs(share - labels.count("with_mask") / len(labels)))
    return round(float(np.mean(errors)), 4) if errors else None

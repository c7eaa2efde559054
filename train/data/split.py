"""De-duplication (exact and perceptual-hash near duplicates) and the grouped, stratified split."""

from __future__ import annotations

import hashlib

import numpy as np

from maskwatch import LABELS
from train.data.records import Face, PrepareReport

class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return int(i)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _phashes(crops: np.ndarray) -> np.ndarray:
    import imagehash
    from PIL import Image

    out = np.empty(len(crops), np.uint64)
    for i, c in enumerate(crops):
        bits = imagehash.phash(Image.fromarray(c)).hash.flatten()
        out[i] = np.uint64(int("".join("1" if b else "0" for b in bits), 2))
    return out


def _near_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 512):
    """Yield (i, j, distance) with i < j and Hamming distance <= max_distance."""
    for s in range(0, len(hashes), chunk):
        block = hashes[s:s + chunk]
        d = np.bitwise_count(block[:, None] ^ hashes[None, :])
        ii, jj = np.nonzero(d <= max_distance)
        for i, j in zip(ii + s, jj):
            if i < j:
                yield int(i), int(j), int(d[i - s, j])


def deduplicate_and_group(faces: list[Face], crops: np.ndarray, report: PrepareReport,
                          drop_distance: int = 3, group_distance: int = 8) -> np.ndarray:
    """Drop exact and near duplicates (same label, phash distance <= drop_distance) and give every
    face a group id: faces of one scene and faces within ``group_distance`` share a group.
    Returns the indices of the kept faces (their ``group`` is set)."""
    n = len(faces)
    keep = np.ones(n, bool)
    seen: dict[str, int] = {}
    for i, c in enumerate(crops):
        digest = hashlib.md5(c.tobytes()).hexdigest()
        if digest in seen:
            keep[i] = False
            report.exact_duplicates += 1
        else:
            seen[digest] = i
    hashes = _phashes(crops)
    uf = _UnionFind(n)
    by_scene: dict[str, int] = {}
    for i, f in enumerate(faces):
        if f.scene in by_scene:
            uf.union(by_scene[f.scene], i)
        else:
            by_scene[f.scene] = i
    for i, j, d in _near_pairs(hashes, group_distance):
        uf.union(i, j)
        if d <= drop_distance and keep[i] and keep[j] and faces[i].label == faces[j].label \
                and faces[i].scene != faces[j].scene:
            keep[j] = False
            report.near_duplicates += 1
    for i in range(n):
        faces[i].group = uf.find(i)
    return np.flatnonzero(keep)


def assign_splits(faces: list[Face], val: float, test: float, seed: int) -> None:
    """Stratified by label, grouped by ``Face.group`` (a group never straddles two splits)."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.array([LABELS.index(f.label) for f in faces])
    g = np.array([f.group for f in faces])
    idx = np.arange(len(faces))
    split = np.array(["train"] * len(faces), dtype=object)

    def carve(sub: np.ndarray, frac: float, name: str, rs: int) -> None:
        if frac <= 0 or len(sub) < 2:
            return
        k = max(2, int(round(1.0 / frac)))
        n_groups = len(set(g[sub]))
        if n_groups < k:
            k = n_groups
        if k < 2:
            return
        sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=rs)
        try:
            _, held = next(sgkf.split(sub, y[sub], g[sub]))
        except ValueError:  # fewer members than folds in some class
            from sklearn.model_selection import GroupShuffleSplit

            _, held = next(GroupShuffleSplit(n_splits=1, test_size=frac, random_state=rs).split(sub, y[sub], g[sub]))
        split[sub[held]] = name

    carve(idx, test, "test", seed)
    rest = idx[split == "train"]
    carve(rest, val / max(1e-9, 1.0 - test), "val", seed + 1)
    for f, s in zip(faces, split):
        f.split = s

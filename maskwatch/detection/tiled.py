"""The ``tiled`` mode: BlazeFace on overlapping tiles plus a whole-frame pass, merged by weighted NMS.

``dense`` on the whole frame plus the full-range model (through ai-edge-litert) on a grid of
overlapping ``tile`` px tiles (default 128, grown until there are at most ``max_tiles``), each
resized to 192x192, all tiles in one batched call; faces cut by a tile edge or too big for a tile
are left to the whole-frame pass; everything merged with weighted NMS. Finds much smaller faces,
at many times the cost: for CCTV with ``every_n`` > 1, or offline.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from maskwatch.detection.blazeface import FULL, BlazeFaceNet, DenseDetector, merged_faces
from maskwatch.detection.options import DenseOptions, TiledOptions
from maskwatch.faces import Faces


def tile_grid(width: int, height: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles ``(x0, y0, x1, y1)`` covering the image (tiles shrink to fit small images).

    >>> tile_grid(400, 300, 192, 0.25)[:2]
    [(0, 0, 192, 192), (104, 0, 296, 192)]
    """
    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        n = math.ceil((length - tile) / (tile * (1 - overlap))) + 1
        return [round(i * (length - tile) / (n - 1)) for i in range(n)]

    t_w, t_h = min(tile, width), min(tile, height)
    return [(x, y, x + t_w, y + t_h) for y in starts(height) for x in starts(width)]


class TiledDetector:
    """Full-range BlazeFace on overlapping tiles plus a whole-frame pass (``whole``), merged by weighted NMS."""

    MAX_TILE_FACE = 0.5  # tile faces wider than this fraction of the model input are left to the whole-frame pass

    def __init__(self, options: TiledOptions, min_score: float, model_dir: Path | None = None):
        self.options = options
        self._net = BlazeFaceNet(FULL, model_dir, options.num_threads)
        # whole-frame pass: "dense" (short-range, fully convolutional) or "full" (full-range, letterboxed);
        # the face-shape test runs once, on the merged faces
        self._dense = None
        if options.whole == "dense":
            whole = DenseOptions(nms_iou=options.nms_iou, num_threads=options.num_threads, min_eye_mouth=0.0)
            self._dense = DenseDetector(whole, min_score, model_dir)
        self._min_score, self._nms = min_score, options.nms_iou
        self._tile, self._overlap, self._max_tiles = int(options.tile), float(options.overlap), int(options.max_tiles)

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The tiles for a frame: ``tile`` px, grown until there are at most ``max_tiles``."""
        tile = self._tile
        while True:
            grid = tile_grid(width, height, tile, self._overlap)
            if len(grid) <= self._max_tiles:
                return grid
            tile = int(tile * 1.25) + 1

    def detect(self, bgr: np.ndarray) -> Faces:
        h, w = bgr.shape[:2]
        size = self._net.spec.input_size
        regions, crops = [], []
        if self._dense is None:  # whole frame letterboxed to a square, in the same batch as the tiles
            side = max(w, h)
            regions.append((0, 0, side, side))
            crops.append(cv2.copyMakeBorder(bgr, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0)))
        grid = self.tiles(w, h)
        if not (self._dense is None and len(grid) == 1 and w == h):  # else the tile is the whole frame again
            for x0, y0, x1, y1 in grid:
                regions.append((x0, y0, x1, y1))
                crops.append(bgr[y0:y1, x0:x1])
        results = []
        if crops:
            batch = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops])[..., ::-1]  # BGR -> RGB
            results = self._net.run(batch, self._min_score)
        all_b, all_s, all_k = [], [], []
        if self._dense is not None:
            whole = self._dense.detect(bgr)
            all_b.append(whole.xyxy)
            all_s.append(whole.score)
            all_k.append(whole.keypoints)
        for (x0, y0, x1, y1), (xyxy, score, kps) in zip(regions, results):
            if self._dense is not None and len(score):
                # Tiles are for small faces: drop faces cut by an inner tile edge (another tile or the
                # whole-frame pass sees them whole) and faces too big to be small.
                m = 2.0
                cut = ((xyxy[:, 0] < m) & (x0 > 0)) | ((xyxy[:, 1] < m) & (y0 > 0))
                cut |= ((xyxy[:, 2] > size - m) & (x1 < w)) | ((xyxy[:, 3] > size - m) & (y1 < h))
                keep = ~cut & (xyxy[:, 2] - xyxy[:, 0] <= size * self.MAX_TILE_FACE)
                xyxy, score, kps = xyxy[keep], score[keep], kps[keep]
            if not len(score):
                continue
            sx, sy = (x1 - x0) / size, (y1 - y0) / size
            all_b.append(xyxy * [sx, sy, sx, sy] + [x0, y0, x0, y0])
            all_k.append(kps * [sx, sy] + [x0, y0])
            all_s.append(score)
        return merged_faces(all_b, all_s, all_k, self._nms, w, h, self.options.min_eye_mouth)

    def close(self) -> None:
        self._net.close()
        if self._dense is not None:
            self._dense.close()

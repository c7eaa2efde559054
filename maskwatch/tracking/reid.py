"""``ReidTracker`` (kind ``reid``): the centroid tracker, plus camera-motion compensation and
re-linking of lost people by appearance.

- **Camera motion** (``[tracker] camera_motion``, on by default): before matching, every track is
  moved by the frame-to-frame affine of :class:`~maskwatch.tracking.motion.CameraMotion`, so a pan,
  a zoom or a handheld shake keeps the size-normalised centre gate meaningful. Nothing is estimated
  while there are no tracks; once 50 estimates in a row found no motion (a fixed camera) it is
  estimated only every 10th frame until the picture moves again.
- **Re-link**: a confirmed track unseen for more than ``max_age`` frames is not ended at once but kept
  for ``relink_s`` seconds of frame time. A new track that reaches ``min_hits`` (the moment it would
  be counted) is first compared with those lost people and with confirmed tracks missing for a few
  frames: the one with the closest head-and-shoulders colours
  (:mod:`~maskwatch.tracking.appearance`, Bhattacharyya distance under ``max_colour_distance``), of a
  similar size and within ``relink_distance`` face sizes of where it was last seen, takes the new
  track over: the new track goes on under the old id, ``TrackUpdate.relinked`` says ``(old, new)``,
  and the person is not counted again. A lost person is ``ended`` only when ``relink_s`` has passed.
- :meth:`reset` (a reconnect, a new frame size): the motion reference and every velocity are dropped
  and every track is treated as lost, so people seen before the outage may be re-linked, never
  counted twice.

>>> import numpy as np
>>> from maskwatch.config import TrackerConfig
>>> from maskwatch.faces import Faces
>>> from maskwatch.frames import Frame
>>> image = np.zeros((240, 320, 3), np.uint8); image[60:200, 100:180] = (30, 160, 220)   # a person in orange
>>> tracker = ReidTracker(TrackerConfig(kind="reid", min_hits=3, max_age=2, relink_s=5.0))
>>> frame = lambda i: Frame(image, i, i / 25, 0.0)
>>> [tracker.update(Faces([[120, 70, 160, 110]], [0.9]), frame(i)).confirmed for i in range(3)]
[(), (), (1,)]
>>> for i in range(3, 13): _ = tracker.update(Faces.empty(), frame(i))     # hidden for 10 frames
>>> ups = [tracker.update(Faces([[124, 72, 164, 112]], [0.9]), frame(i)) for i in range(13, 16)]
>>> [u.confirmed for u in ups], ups[-1].relinked, ups[-1].faces.track_id.tolist()
([(), (), ()], ((1, 2),), [1])
"""

from __future__ import annotations

import numpy as np

from maskwatch.tracking.config import TrackerConfig
from maskwatch.faces import Faces
from maskwatch.tracking.appearance import Appearance, distance
from maskwatch.tracking.base import TrackUpdate
from maskwatch.tracking.centroid import CentroidTracker, Track
from maskwatch.tracking.motion import CameraMotion, warp_boxes

SMALL_WIDTH = 320
"""The frame is read at this width for the camera motion and the colours (one resize per frame)."""

STILL_FRAMES = 50
STILL_CHECK_EVERY = 10
"""After STILL_FRAMES estimates without motion (a fixed camera) the motion is estimated only every
STILL_CHECK_EVERY frames, until it moves again: a fixed camera pays for it about once a second."""


class ReidTracker(CentroidTracker):
    kind = "reid"

    def __init__(self, config: TrackerConfig = TrackerConfig(), *, max_colour_distance: float = 0.35,
                 relink_distance: float = 4.0, relink_size_ratio: float = 1.7, colour_every: int = 3, **kw):
        super().__init__(config, **kw)
        self.cmc = CameraMotion(width=SMALL_WIDTH) if config.camera_motion else None
        self.appearance = Appearance(max_width=SMALL_WIDTH)
        self.relink_s = float(config.relink_s)
        self.max_colour_distance = float(max_colour_distance)
        self.relink_distance = float(relink_distance)
        self.relink_size_ratio = float(relink_size_ratio)
        self.colour_every = max(int(colour_every), 1)
        self._lost: dict[int, tuple[Track, float]] = {}  # confirmed tracks past max_age: (track, lost at)
        self._colour: dict[int, np.ndarray] = {}  # track id -> running head-and-shoulders histogram
        self._relinked: list[tuple[int, int]] = []
        self._absorbed: list[Track] = []
        self._now = 0.0
        self._calls = 0
        self._still = 0  # camera-motion estimates in a row that found no motion

    def update(self, faces: Faces, frame=None) -> TrackUpdate:
        self._calls += 1
        self._now = float(frame.timestamp) if frame is not None else (self._frame + 1) / 25.0
        self._relinked = []
        small, scale = self._small(frame)
        if self.cmc is not None:
            self._compensate(small, scale)
        up = super().update(faces, frame)
        if self._relinked:
            remap = {new: old for old, new in self._relinked}
            up.faces.track_id = np.array([remap.get(int(t), int(t)) for t in up.faces.track_id], np.int64)
            up.relinked = tuple(self._relinked)
            up.live = self._live()
        if small is not None and len(up.faces) and (self._calls % self.colour_every == 0 or self._tentative(up.faces)):
            self._learn_colours(small, up.faces, scale)
        return up

    def reset(self) -> None:
        super().reset()
        if self.cmc is not None:
            self.cmc.reset()
        for t in self._tracks:
            if t.confirmed:
                self._lost[t.id] = (t, self._now)
        self._tracks = [t for t in self._tracks if not t.confirmed]

    # -- hooks of the centroid tracker --------------------------------------------------------------

    def _live(self) -> tuple[int, ...]:
        return super()._live() + tuple(sorted(self._lost))

    def _confirm(self, t: Track) -> bool:
        if t.confirmed or t.hits < self.config.min_hits or t.max_score < self.min_track_score:
            return False
        old = self._relink_candidate(t)
        if old is None:
            t.confirmed = True
            return True
        self._relinked.append((old.id, t.id))
        self._colour[old.id] = self._blend(self._colour.get(old.id), self._colour.pop(t.id, None))
        t.id, t.first_frame, t.confirmed = old.id, old.first_frame, True
        self._lost.pop(old.id, None)
        self._absorbed.append(old)  # a live track taken over: dropped after this frame's matching (indexes)
        return False

    def _expire(self, frame_index: int) -> tuple[int, ...]:
        keep = []
        absorbed, self._absorbed = self._absorbed, []
        for t in self._tracks:
            if any(t is a for a in absorbed):
                continue
            if frame_index - t.last_frame <= self.config.max_age:
                keep.append(t)
            elif t.confirmed:
                self._lost[t.id] = (t, self._now)
            else:
                self._colour.pop(t.id, None)
        self._tracks = keep
        ended = tuple(sorted(i for i, (_, since) in self._lost.items() if self._now - since > self.relink_s))
        for i in ended:
            self._lost.pop(i)
            self._colour.pop(i, None)
        return ended

    # -- internals -------------------------------------------------------------------------------

    def _relink_candidate(self, t: Track) -> Track | None:
        colour = self._colour.get(t.id)
        if colour is None:
            return None
        size = float(np.max(t.xyxy[2:] - t.xyxy[:2]))
        centre = (t.xyxy[:2] + t.xyxy[2:]) / 2
        candidates = [old for old, _ in self._lost.values()]
        candidates += [x for x in self._tracks if x.confirmed and x is not t and self._frame - x.last_frame >= 3
                       and not any(x is a for a in self._absorbed)]
        best, best_d = None, self.max_colour_distance
        for old in candidates:
            old_size = float(np.max(old.xyxy[2:] - old.xyxy[:2]))
            if max(size, old_size) / max(min(size, old_size), 1.0) > self.relink_size_ratio:
                continue
            gap = np.linalg.norm(centre - (old.xyxy[:2] + old.xyxy[2:]) / 2) / max(size, old_size, 1.0)
            if gap > self.relink_distance:
                continue
            d = distance(colour, self._colour.get(old.id, np.zeros_like(colour)))
            if d < best_d:
                best, best_d = old, d
        return best

    def _tentative(self, faces: Faces) -> bool:
        ids = set(int(i) for i in faces.track_id)
        return any(not t.confirmed for t in self._tracks if t.id in ids)

    def _small(self, frame):
        if frame is None:
            return None, 1.0
        import cv2

        image = frame.image
        h, w = image.shape[:2]
        scale = min(SMALL_WIDTH / w, 1.0)
        if scale >= 1.0:
            return image, 1.0
        # nearest-neighbour: ~10x cheaper than INTER_AREA at 1080p, and enough for corners and colours
        return cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_NEAREST), scale

    def _compensate(self, small, scale: float) -> None:
        if small is None:
            return
        if not self._tracks and not self._lost:
            self.cmc.reset()
            self.cmc.estimate(small)  # keep this frame as the reference
            return
        if self._still > STILL_FRAMES and self._calls % STILL_CHECK_EVERY:
            return  # a fixed camera: looked at only every STILL_CHECK_EVERY frames
        checking = self._still > STILL_FRAMES
        m = self.cmc.estimate(small)
        if m is None:
            return
        moved = abs(m[0, 2]) + abs(m[1, 2]) > 0.5 or abs(np.sqrt(abs(np.linalg.det(m[:, :2]))) - 1) > 0.003
        self._still = 0 if moved else self._still + 1
        if checking:
            return  # spans several frames: it only says whether to look at every frame again
        m[:, 2] /= scale
        tracks = self._tracks + [t for t, _ in self._lost.values()]
        boxes = warp_boxes(m, np.stack([t.xyxy for t in tracks]))
        s = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        for t, box in zip(tracks, boxes):
            t.xyxy = box
            t.velocity = (t.velocity * s).astype(np.float32)

    def _learn_colours(self, small, faces: Faces, scale: float) -> None:
        hists = self.appearance.describe(small, faces.xyxy * scale)
        for tid, hist in zip(faces.track_id, hists):
            if tid >= 0 and hist.any():
                self._colour[int(tid)] = self._blend(self._colour.get(int(tid)), hist)

    @staticmethod
    def _blend(old, new):
        if old is None:
            return new
        if new is None:
            return old
        mixed = 0.8 * old + 0.2 * new
        return (mixed / mixed.sum()).astype(np.float32)

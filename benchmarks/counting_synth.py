"""Camera-motion sequences with exact truth, made from the annotated crowd photos of facemask-scenes.

A photo is filmed by a virtual camera: a 16:9 window over the photo, moved and scaled frame by frame
(``pan``, ``zoom``, handheld ``shake``) and resized to ``SIZE``, optionally with ``occluders``
(dark shapes, like people passing close to the camera, crossing the view). Every annotated face is a
person; its box goes through the same transform, so the truth is exact. A face whose box is less than
60% inside the frame, or at least half covered by an occluder, is "not visible" on that frame (not
scored). The labels are the photo's (``mask_weared_incorrect`` = ``mask_worn_incorrectly``) and do
not change. Frames are written once to an mp4 (cached by a hash of the recipe) that the app reads
like any clip, so motion gating, the tracker and the classifier see compressed video.

The sequences are reported apart from the real clips: the people do not move, the camera does.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

SIZE = (960, 540)
FPS = 25.0
LABEL_MAP = {"with_mask": "with_mask", "without_mask": "without_mask", "mask_weared_incorrect": "mask_worn_incorrectly"}


@dataclass(frozen=True)
class Recipe:
    name: str
    image: str  # facemask-scenes/images/<image>
    motion: str  # "pan", "zoom", "shake", "pan+shake", "zoom+shake", "still"
    seconds: float = 8.0
    occluders: int = 0  # dark shapes crossing the view, one after another
    seed: int = 0
    view: float = 0.75  # the window's width as a share of the photo's (before zoom)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


RECIPES = [
    Recipe("synth_pan_148", "maksssksksss148.jpg", "pan"),
    Recipe("synth_zoom_257", "maksssksksss257.jpg", "zoom"),
    Recipe("synth_shake_330", "maksssksksss330.jpg", "shake", seed=1),
    Recipe("synth_occluded_672", "maksssksksss672.jpg", "still", occluders=3, seed=2, view=0.9),
    Recipe("synth_pan_shake_698", "maksssksksss698.jpg", "pan+shake", occluders=1, seed=3),
    Recipe("synth_zoom_shake_594", "maksssksksss594.jpg", "zoom+shake", occluders=2, seed=4),
    Recipe("synth_pan_occluded_21", "maksssksksss21.jpg", "pan", occluders=2, seed=5),
    Recipe("synth_shake_occluded_487", "maksssksksss487.jpg", "shake", occluders=2, seed=6),
]


@dataclass
class Scene:
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) photo pixels
    labels: list[str] = field(default_factory=list)


def read_scene(root: Path, image: str) -> Scene:
    xml = root / "facemask-scenes" / "annotations" / (Path(image).stem + ".xml")
    r = ET.parse(xml).getroot()
    boxes, labels = [], []
    for o in r.findall("object"):
        boxes.append([float(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(LABEL_MAP[o.find("name").text])
    return Scene(int(r.find("size/width").text), int(r.find("size/height").text), np.array(boxes, np.float64), labels)


def windows(recipe: Recipe, scene: Scene) -> np.ndarray:
    """(frames, 3): the window's left, top and width in photo pixels for every frame."""
    n = int(round(recipe.seconds * FPS))
    t = np.linspace(0.0, 1.0, n)
    rng = np.random.default_rng(recipe.seed)
    aspect = SIZE[1] / SIZE[0]
    base_w = min(recipe.view * scene.width, scene.height / aspect)
    w = np.full(n, base_w)
    if "zoom" in recipe.motion:  # in to 60% of the view and out again
        w = base_w * (1.0 - 0.4 * np.sin(np.pi * t))
    h = w * aspect
    cx = np.full(n, scene.width / 2.0)
    cy = np.full(n, scene.height / 2.0)
    if "pan" in recipe.motion:  # from one side of the photo to the other and half way back
        span = scene.width - w
        cx = w / 2 + span * (0.5 - 0.5 * np.cos(1.5 * np.pi * t))
    if "shake" in recipe.motion:  # handheld: a smoothed random walk, a few percent of the view
        walk = np.cumsum(rng.normal(0, 1, (n, 2)), axis=0)
        kernel = np.ones(9) / 9
        walk = np.stack([np.convolve(walk[:, k], kernel, mode="same") for k in range(2)], axis=1)
        walk -= walk.mean(axis=0)
        walk /= max(np.abs(walk).max(), 1e-6)
        cx = cx + walk[:, 0] * 0.06 * w
        cy = cy + walk[:, 1] * 0.06 * h
    left = np.clip(cx - w / 2, 0, scene.width - w)
    top = np.clip(cy - h / 2, 0, scene.height - h)
    return np.stack([left, top, w], axis=1)


def occluder_boxes(recipe: Recipe, frames: int) -> list[list[tuple[float, float, float, float]]]:
    """Per frame, the occluders' boxes in output pixels (one crossing at a time, alternating direction)."""
    out: list[list] = [[] for _ in range(frames)]
    if not recipe.occluders:
        return out
    rng = np.random.default_rng(1000 + recipe.seed)
    W, H = SIZE
    span = frames / recipe.occluders
    for k in range(recipe.occluders):
        width = W * rng.uniform(0.12, 0.2)
        start, stop = int(k * span), int((k + 1) * span)
        for f in range(start, min(stop, frames)):
            a = (f - start) / max(stop - start - 1, 1)
            x = -width + a * (W + width)
            if k % 2:
                x = W - a * (W + width)
            out[f].append((x, H * rng.uniform(0.0, 0.02), x + width, H))
    return out


def render(recipe: Recipe, root: Path, cache: Path) -> tuple[Path, list[dict], list[dict]]:
    """The clip's path (written if not cached), its truth rows and its people."""
    import cv2

    scene = read_scene(root, recipe.image)
    win = windows(recipe, scene)
    occ = occluder_boxes(recipe, len(win))
    W, H = SIZE
    rows = []
    for f, (left, top, w) in enumerate(win):
        k = W / w
        boxes = (scene.boxes - [left, top, left, top]) * k
        for pid, (b, label) in enumerate(zip(boxes, scene.labels), start=1):
            rows.append({"frame": f, "person": pid, "x1": round(b[0], 1), "y1": round(b[1], 1), "x2": round(b[2], 1),
                         "y2": round(b[3], 1), "label": label, "visible": int(_visible(b, occ[f], W, H))})
    people = [{"person": pid, "kind": "person", "note": f"{recipe.image} face {pid}"} for pid in range(1, len(scene.labels) + 1)]
    path = cache / f"{recipe.name}_{recipe.key()}.mp4"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        img = cv2.imread(str(root / "facemask-scenes" / "images" / recipe.image))
        if img is None:
            raise SystemExit(f"counting: cannot read {root / 'facemask-scenes' / 'images' / recipe.image}")
        tmp = path.with_suffix(".part.mp4")
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
        rng = np.random.default_rng(2000 + recipe.seed)
        for f, (left, top, w) in enumerate(win):
            k = W / w
            m = np.array([[k, 0, -left * k], [0, k, -top * k]], np.float64)
            frame = cv2.warpAffine(img, m, SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            for x1, y1, x2, y2 in occ[f]:
                _draw_occluder(frame, x1, y1, x2, y2, rng)
            writer.write(frame)
        writer.release()
        tmp.rename(path)
    return path, rows, people


def _visible(b, occluders, W: int, H: int) -> bool:
    area = max(b[2] - b[0], 1e-6) * max(b[3] - b[1], 1e-6)
    ix = max(0.0, min(b[2], W) - max(b[0], 0.0))
    iy = max(0.0, min(b[3], H) - max(b[1], 0.0))
    if ix * iy / area < 0.6:
        return False
    for x1, y1, x2, y2 in occluders:
        ox = max(0.0, min(b[2], x2) - max(b[0], x1))
        oy = max(0.0, min(b[3], y2) - max(b[1], y1))
        if ox * oy / area >= 0.5:
            return False
    return True


def _draw_occluder(frame: np.ndarray, x1: float, y1: float, x2: float, y2: float, rng) -> None:
    """A dark, slightly textured shape with soft edges (a coat passing close to the lens)."""
    import cv2

    H, W = frame.shape[:2]
    a, b = int(max(x1, 0)), int(min(x2, W))
    if b <= a:
        return
    top = int(max(y1, 0))
    shade = np.full((H - top, b - a, 3), (40, 38, 45), np.float32)
    shade += rng.normal(0, 6, shade.shape).astype(np.float32)
    alpha = np.ones((H - top, b - a), np.float32)
    edge = max(int((x2 - x1) * 0.08), 2)
    ramp = np.clip(np.minimum(np.arange(a, b) - x1, x2 - np.arange(a, b)) / edge, 0, 1)
    alpha *= ramp[None, :]
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2)[..., None]
    region = frame[top:, a:b].astype(np.float32)
    frame[top:, a:b] = (region * (1 - alpha) + shade * alpha).clip(0, 255).astype(np.uint8)

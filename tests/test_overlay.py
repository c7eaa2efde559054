"""Overlay: boxes in the class colour, undecided grey, text, copy semantics, HUD."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch import LABELS
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.overlay import COLORS, COLORS_RGB, color_rgb, draw, draw_status, label_names
from maskwatch.results import Stats, Totals


def one_face(track_label, track_id=3, box=(100, 80, 180, 180), probs=(0.1, 0.8, 0.1)):
    return Faces(xyxy=np.array([box], np.float32), score=np.array([0.9], np.float32),
                 probs=np.array([probs], np.float32), track_id=np.array([track_id]), track_label=np.array([track_label]))


def edge_pixels(img, box):
    x1, y1, x2, y2 = box
    return img[(y1 + y2) // 2, x1], img[y2, (x1 + x2) // 2]  # left edge, bottom edge


@pytest.mark.parametrize("label_index", [0, 1, 2, -1])
def test_box_drawn_in_class_colour(label_index):
    img = np.zeros((360, 480, 3), np.uint8)
    box = (100, 80, 180, 180)
    out = draw(img, one_face(label_index, box=box))
    name = LABELS[label_index] if label_index >= 0 else "undecided"
    for px in edge_pixels(out, box):
        assert tuple(int(v) for v in px) == COLORS[name]
    # inside the box away from the text: untouched
    assert out[150, 140].tolist() == [0, 0, 0]
    assert img.sum() == 0  # copy=True leaves the input alone
    assert out.shape == img.shape and out.dtype == np.uint8


def test_distinct_colours_and_rgb_helper():
    assert len(set(COLORS.values())) == 4
    assert COLORS["with_mask"][1] > COLORS["with_mask"][2]  # green in BGR
    assert COLORS["without_mask"][2] > COLORS["without_mask"][1]  # red in BGR
    for k, v in COLORS.items():
        assert color_rgb(k) == COLORS_RGB[k] == v[::-1]


def test_text_label_drawn_above_box_and_ids_toggle():
    img = np.zeros((360, 480, 3), np.uint8)
    box = (100, 80, 180, 180)
    with_id = draw(img, one_face(1, box=box))
    without_id = draw(img, one_face(1, box=box), show_track_ids=False)
    above = slice(40, 80)
    assert (with_id[above, 100:260] != 0).any()  # the label background above the box
    assert not np.array_equal(with_id[above], without_id[above])  # "#3" changes the text


def test_face_at_top_edge_puts_text_inside():
    img = np.zeros((200, 300, 3), np.uint8)
    out = draw(img, one_face(0, box=(50, 0, 120, 90)))
    assert (out[5:25, 55:110] != 0).any()


def test_in_place_and_out_of_frame_boxes():
    img = np.zeros((120, 160, 3), np.uint8)
    faces = Faces(xyxy=np.array([[-20, -20, 40, 40], [150, 100, 400, 300], [500, 500, 600, 600]], np.float32),
                  score=np.ones(3, np.float32))
    out = draw(img, faces, copy=False)
    assert out is img and img.any()


def test_empty_faces_returns_copy():
    img = np.zeros((50, 50, 3), np.uint8)
    out = draw(img, Faces.empty())
    assert out is not img and np.array_equal(out, img)


def test_label_names_untracked_use_per_frame_label():
    faces = Faces(xyxy=np.zeros((3, 4), np.float32), score=np.ones(3, np.float32),
                  probs=np.array([[0.1, 0.1, 0.8], [np.nan] * 3, [0.9, 0.05, 0.05]], np.float32),
                  track_id=np.array([-1, -1, 4]), track_label=np.array([-1, -1, -1]))
    assert label_names(faces) == ["mask_worn_incorrectly", "undecided", "undecided"]


def test_small_image_small_face_still_drawn():
    img = np.zeros((90, 120, 3), np.uint8)
    out = draw(img, one_face(1, box=(50, 40, 62, 54)))
    assert tuple(int(v) for v in out[47, 50]) == COLORS["without_mask"]


def test_draw_status_hud():
    img = np.full((240, 320, 3), 200, np.uint8)
    totals = Totals(people_seen=4, by_label={"with_mask": 3, "without_mask": 1, "mask_worn_incorrectly": 0})
    out = draw_status(img.copy(), Stats(fps=24.5, source_state=SourceState.LIVE), totals)
    assert out[1, 1].tolist() == [80, 80, 80]  # darkened background behind the text
    assert (out[2:20, 2:200] == 255).any()  # white text
    assert np.array_equal(out[200:], img[200:])  # rest of frame untouched
    empty = draw_status(img.copy(), Stats(), Totals())
    assert not np.array_equal(empty, img)

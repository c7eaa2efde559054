"""Overlay: boxes in the class colour, undecided grey, text, copy semantics, HUD."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch import LABELS
from maskwatch.faces import Faces
from maskwatch.frames import SourceState
from maskwatch.overlay import COLORS, COLORS_RGB, annotate, color_rgb, draw, draw_status, label_names
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


# -- annotate: the one drawing of a saved frame (snapshot sink, video sink, the app's Ctrl+S) ---------


def _crowd():
    """Three faces: track 3 decided, track 7 undecided, one untracked (a single image's face)."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    faces = Faces(xyxy=np.array([[20, 30, 90, 110], [150, 40, 220, 120], [240, 100, 300, 200]], np.float32),
                  score=np.array([0.9, 0.8, 0.7], np.float32),
                  probs=np.array([[0.1, 0.85, 0.05], [0.7, 0.2, 0.1], [0.2, 0.2, 0.6]], np.float32),
                  track_id=np.array([3, 7, -1]), track_label=np.array([1, -1, -1]))
    return image, faces


def _old_snapshot(image, faces, blur, trigger):
    """``SnapshotSaver._encode``'s drawing before annotate (blur as faces_to_blur says, then draw)."""
    from maskwatch.blur import blur_faces, faces_to_blur

    keep = faces_to_blur(blur, faces.track_id, trigger)
    if keep is not None and len(faces):
        image = blur_faces(image, faces.xyxy, keep)
    return draw(image, faces)


def _old_video(image, faces, blur, show_track_ids):
    """``VideoSink.on_result``'s drawing before annotate (every face blurred unless "off")."""
    from maskwatch.blur import blur_faces

    if blur != "off" and len(faces):
        image = blur_faces(image, faces.xyxy)
    return draw(image, faces, show_track_ids=show_track_ids)


@pytest.mark.parametrize("blur", ["off", "others", "all"])
def test_annotate_gives_the_snapshot_sinks_pixels(tmp_path, blur):
    import cv2

    from maskwatch.sinks.snapshots import SnapshotSaver

    image, faces = _crowd()
    saver = SnapshotSaver(tmp_path, blur=blur)
    for trigger in (3, 7, 99):
        expected = _old_snapshot(image, faces, blur, trigger)
        assert np.array_equal(annotate(image, faces, blur=blur, trigger=trigger), expected)
        jpeg = cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, saver.jpeg_quality])[1]
        assert saver._encode(image, faces, trigger).tobytes() == jpeg.tobytes()
    if blur == "others":  # the trigger's own face stays, the bystanders go
        kept = annotate(image, faces, blur=blur, trigger=7)
        assert np.array_equal(kept[70:100, 170:200], draw(image, faces)[70:100, 170:200])
        assert not np.array_equal(kept[60:90, 40:70], draw(image, faces)[60:90, 40:70])


@pytest.mark.parametrize("blur", ["off", "others", "all"])
@pytest.mark.parametrize("show_track_ids", [True, False])
def test_annotate_gives_the_video_sinks_pixels(tmp_path, blur, show_track_ids):
    from maskwatch.frames import Frame
    from maskwatch.results import FrameResult
    from maskwatch.sinks.video import VideoSink

    image, faces = _crowd()
    expected = _old_video(image, faces, blur, show_track_ids)
    assert np.array_equal(annotate(image, faces, blur=blur, show_track_ids=show_track_ids), expected)
    sink = VideoSink(tmp_path / "out.mp4", blur=blur, show_track_ids=show_track_ids)
    frame = Frame(image.copy(), 0, 0.0, 0.0)
    try:
        sink.on_result(FrameResult(frame, faces, Stats(), Totals()))
        assert np.array_equal(sink._pending[0][0], expected)  # held back until the frame rate is known
        assert np.array_equal(frame.image, image)  # the frame itself is never drawn on
    finally:
        sink.close()


@pytest.mark.parametrize("blur", ["off", "others", "all"])
def test_annotate_gives_the_apps_snapshot_pixels(blur):
    """Ctrl+S has no triggering person: "others" blurs every face, as a video does."""
    image, faces = _crowd()
    before = image.copy()
    out = annotate(image, faces, blur=blur)
    assert np.array_equal(out, _old_snapshot(image, faces, blur, None))
    assert np.array_equal(image, before) and out is not image
    if blur != "off":
        assert np.array_equal(out, annotate(image, faces, blur="all"))


def test_annotate_without_faces_is_a_copy_of_the_frame():
    image, _ = _crowd()
    for blur in ("off", "others", "all"):
        out = annotate(image, Faces.empty(), blur=blur, trigger=3)
        assert out is not image and np.array_equal(out, image)


def test_the_blur_helpers_are_core_and_still_importable_from_the_sinks():
    import maskwatch.blur as core
    import maskwatch.sinks.blur as sinks

    assert sinks.blur_faces is core.blur_faces and sinks.faces_to_blur is core.faces_to_blur
    assert (sinks.GROW, sinks.BLOCKS) == (core.GROW, core.BLOCKS)

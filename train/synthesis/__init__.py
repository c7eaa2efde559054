"""Position-only synthetic faces: a real mask, cut from a real masked face, placed on a real unmasked one.

Why: the pool has few real incorrectly-worn faces and many synthetic ones on studio portraits, so a
model learns what a *synthetic* mask looks like instead of *where* the mask sits (issue 9). Here every
generated face goes through one function, :func:`compose`, whose only class-dependent argument is the
height of the mask's top edge on the face; the donor, the colour matching, the feathering, the crop
and the JPEG encoding are the same, so any artefact they leave carries no label.

How (all in a canonical face frame, the 5-point ArcFace template ``TEMPLATE``, in "units"):

1. Keypoints: the app's RetinaFace (``FaceDetector("retina")``) on every image of a ``prepare``
   manifest, cached as JSON (:class:`KeypointCache`); a manifest face takes the keypoints of the
   detection that overlaps its box (IoU >= 0.35, keypoints inside the box).
2. Donors (:func:`extract_donor`): real ``with_mask`` faces >= 40 px wide, warped into the canonical
   frame by a similarity transform (``cv2.estimateAffinePartial2D`` on the 5 keypoints); the mask is
   GrabCut, initialised from a mask-shaped polygon (nose bridge, cheeks, under the chin) with the
   mouth area as sure foreground and the eyes as sure background. Implausible cut-outs (area ratio to
   the polygon, spill outside it, top edge, width at the mouth, ragged outline) are rejected. Colours
   outside the cut-out are filled with the nearest mask colour, so warping and feathering never pull
   in skin (no halo).
3. Targets: real ``without_mask`` faces >= 24 px wide, roughly frontal (|yaw| <= 0.35).
4. :func:`compose`: the donor's canonical mask is shifted down the face axis so that its top edge
   lands at ``top`` units (``POSITIONS``), mapped onto the target with the target's similarity
   transform (area-downscaled first when the target is smaller), blurred until it is no sharper
   than the target's upper face, its LAB lightness matched to the target (ratio of upper-face
   lightness, target/donor, ** 0.75, highlights kept below white) and its a/b nudged toward the
   target's, the alpha feathered by a Gaussian (sigma ~ 2% of the eye distance, >= 0.6 px) and
   alpha-blended. Position ``none`` (the control, ``without_mask``) runs the same steps with alpha 0.
5. The face is cut with :func:`maskwatch.crop.crop_face` (the app's crop, the training margin) at its
   native resolution and written as ``OUT/<label>/<name>.jpg`` (quality 95), with a row in
   ``OUT/manifest.csv`` in ``prepare``'s format plus ``generated=1``, ``synth_position``, ``donor``,
   ``target``, ``donor_source``, ``target_source``; ``source`` is ``synthetic-position``, ``split``
   is ``train`` and ``group`` is the target's ``prepare`` group.

Split safety: only targets *and* donors of the manifest's ``train`` split are used, so a generated
face never shows a person or a mask of a validation or test image. By default a donor comes from
the target's own source (``donor_source="same"``): leave-one-source-out then drops a generated face
together with its target (same group) and no mask of the held-out source reaches training.
``OUT/combined/manifest.csv`` is the input manifest plus the generated rows, ready for ``fit``.

Example::

    maskwatch-train prepare ../shared/data/facemask-scenes ../shared/data/ilc2021-scenes \\
        --label-map with_incorrect_mask=mask_worn_incorrectly --out runs/pool
    maskwatch-train synthesize --data runs/pool --out runs/synth --per-target 3 --seed 0
    maskwatch-train fit --data runs/synth/combined --out runs/lite0_synth

The package, one module an idea (every name is importable from ``train.synthesis`` itself):
:mod:`~train.synthesis.geometry` (the canonical frame), :mod:`~train.synthesis.keypoints` (RetinaFace
keypoints, cached), :mod:`~train.synthesis.donors` (cutting a real mask out), :mod:`~train.synthesis.composite`
(:func:`compose`, the one code path), :mod:`~train.synthesis.generator` (:func:`synthesize` over a manifest,
the ``synthesize`` sub-command).

>>> POSITIONS["under_nose"].label, POSITIONS["over_nose"].label, POSITIONS["none"].label
('mask_worn_incorrectly', 'with_mask', 'without_mask')
>>> [round(float(v), 1) for v in TEMPLATE[2]]   # nose tip, in canonical units
[56.0, 71.7]
"""

from train.synthesis.geometry import (  # noqa: F401 - re-exported: the old train.synthesis names stay importable
    CANVAS_H, CANVAS_SCALE, CANVAS_W, CANVAS_X0, CANVAS_Y0, EYE_LINE, MASK_CORE, MASK_POLYGON, REF_REGION,
    SEG_SCALE, TEMPLATE, _h, _region_px, _units_to_px, canvas_size, canvas_to_units, plausible_keypoints,
    similarity_to, yaw_of,
)
from train.synthesis.keypoints import KeypointCache, match_keypoints  # noqa: F401
from train.synthesis.donors import (  # noqa: F401
    Donor, _extend_colours, _lab, _mask_top, extract_donor, ref_stats, segment_mask, warp_to_canvas,
)
from train.synthesis.composite import (  # noqa: F401
    BLUR_STEPS, box_in_crop, compose, crop_side, matching_blur, sharpness,
)
from train.synthesis.generator import (  # noqa: F401
    EXTRA_COLUMNS, INCORRECT_WEIGHTS, POSITIONS, Position, SYNTHETIC_DONOR_MARKERS, SYNTHETIC_SOURCES,
    SYNTH_SOURCE, SynthReport, _bar, _by_path, _clear_previous, _face_ref, _is_real_mask, _keypoints_of,
    _manifest_rows, _read, load_donors, pick_donor, plan_positions, register, run, synthesize,
)

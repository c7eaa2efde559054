"""Class names -> project labels: aliases, the ``--label-map`` (``NAME=LABEL`` or ``NAME=ignore``),
guesses for unknown names and the one-line error that lists them with their fix."""

from __future__ import annotations

import re
import shlex
from collections import Counter

from maskwatch import LABELS
from maskwatch.errors import MaskwatchError

IGNORE = "ignore"
"""Label-map target that drops a class (``--label-map person=ignore``)."""

_ALIASES = {
    "with_mask": "with_mask", "mask": "with_mask", "masked": "with_mask", "withmask": "with_mask",
    "with mask": "with_mask", "with-mask": "with_mask", "correct_mask": "with_mask", "mask_correct": "with_mask",
    "without_mask": "without_mask", "no_mask": "without_mask", "nomask": "without_mask", "unmasked": "without_mask",
    "without mask": "without_mask", "without-mask": "without_mask", "withoutmask": "without_mask",
    "mask_worn_incorrectly": "mask_worn_incorrectly", "mask_weared_incorrect": "mask_worn_incorrectly",
    "mask_weared_incorrectly": "mask_worn_incorrectly", "mask_worn_incorrect": "mask_worn_incorrectly",
    "incorrect_mask": "mask_worn_incorrectly", "incorrect mask": "mask_worn_incorrectly",
    "mask_incorrect": "mask_worn_incorrectly", "improper_mask": "mask_worn_incorrectly",
    "incorrectly_worn": "mask_worn_incorrectly", "mask worn incorrectly": "mask_worn_incorrectly",
}


def canonical_label(name: str) -> str | None:
    """Map a folder/VOC class name to one of ``maskwatch.LABELS`` (None if unknown).

    >>> canonical_label("mask_weared_incorrect"), canonical_label("With Mask"), canonical_label("cat")
    ('mask_worn_incorrectly', 'with_mask', None)
    """
    key = name.strip().lower().replace("-", "_")
    return _ALIASES.get(key) or _ALIASES.get(key.replace("_", " "))


def _map_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_label_map(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    """``["NAME=LABEL", ...]`` (the repeatable ``--label-map``) -> ``{name key: label or "ignore"}``.

    LABEL is a project label (or one of its aliases) or ``ignore``; names match case-insensitively,
    with ``-``, ``_`` and spaces alike.

    >>> parse_label_map(["with_incorrect_mask=mask_worn_incorrectly", "Person=ignore"])
    {'with_incorrect_mask': 'mask_worn_incorrectly', 'person': 'ignore'}
    """
    if not items:
        return {}
    pairs = list(items.items()) if isinstance(items, dict) else []
    if not isinstance(items, dict):
        for item in items:
            name, eq, label = str(item).rpartition("=")
            if not eq or not name.strip() or not label.strip():
                raise MaskwatchError(f"--label-map {item!r}: expected NAME=LABEL, LABEL one of "
                                     f"{', '.join(LABELS)} or {IGNORE}")
            pairs.append((name, label))
    out: dict[str, str] = {}
    for name, label in pairs:
        target = IGNORE if label.strip().lower() == IGNORE else canonical_label(label)
        if target is None:
            raise MaskwatchError(f"--label-map {name}={label}: LABEL must be one of {', '.join(LABELS)} or {IGNORE}")
        key = _map_key(name)
        if out.get(key, target) != target:
            raise MaskwatchError(f"--label-map maps {name!r} twice ({out[key]} and {target})")
        out[key] = target
    return out


def resolve_label(name: str, label_map: dict[str, str] | None = None) -> str | None:
    """A dataset's class name -> project label, ``"ignore"``, or None (unknown). The map wins over aliases.

    >>> resolve_label("with_incorrect_mask", {"with_incorrect_mask": "mask_worn_incorrectly"})
    'mask_worn_incorrectly'
    >>> resolve_label("mask_weared_incorrect"), resolve_label("with_incorrect_mask")
    ('mask_worn_incorrectly', None)
    """
    if label_map:
        hit = label_map.get(_map_key(name))
        if hit is not None:
            return hit
    return canonical_label(name)


def suggest_label(name: str) -> str | None:
    """A guess at what an unknown class name means, for the error's ``--label-map`` hint (None: no guess).

    >>> suggest_label("with_incorrect_mask"), suggest_label("No-Mask"), suggest_label("face_mask"), suggest_label("cat")
    ('mask_worn_incorrectly', 'without_mask', 'with_mask', None)
    """
    key = _map_key(name)
    if re.search(r"incorrect|improper|wrong|weared|nose|chin|partial|bad|under", key):
        return "mask_worn_incorrectly"
    if re.search(r"without|(^|_)(no|non|not)_?mask|unmask|bare|nomask", key):
        return "without_mask"
    if "mask" in key:
        return "with_mask"
    return None


def unknown_names_error(unknown: dict[str, Counter]) -> MaskwatchError:
    """The one-line error for class names no alias or label map covers, with the fix.

    >>> str(unknown_names_error({"ilc2021-scenes": Counter({"with_incorrect_mask": 452})}))
    'unknown class names in ilc2021-scenes: with_incorrect_mask (use --label-map with_incorrect_mask=mask_worn_incorrectly)'
    """
    parts, fixes, unguessed = [], {}, False
    for source, names in unknown.items():
        parts.append(f"{source}: {', '.join(sorted(names))}")
        for name in sorted(names):
            guess = suggest_label(name)
            unguessed |= guess is None
            mapping = f"{name}={guess or 'LABEL'}"
            fixes.setdefault(name, f"--label-map {shlex.quote(mapping)}")
    hint = " ".join(fixes.values())
    if unguessed:
        hint += f"; LABEL is one of {', '.join(LABELS)} or {IGNORE}"
    return MaskwatchError(f"unknown class names in {'; in '.join(parts)} (use {hint})")


"""Component boxes of IA-FaceS.

The four components are always ordered ``l_eye, r_eye, nose, mouth`` (``l_eye`` is the eye on the
image's left). Boxes are ``[x0, y0, x1, y1]`` with exclusive ends.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence, Union

import torch

from utils.errors import ComponentError

COMPONENTS: tuple[str, ...] = ("l_eye", "r_eye", "nose", "mouth")

# Canonical boxes in 1024-px image coordinates (official release).
CANONICAL_BOXES: tuple[tuple[int, int, int, int], ...] = (
    (274, 360, 486, 550),
    (538, 360, 750, 550),
    (370, 530, 654, 700),
    (350, 690, 674, 870),
)
REFERENCE_SIZE = 1024
ComponentSpec = Union[str, Sequence[Union[str, int]]]

# Named selections of components used by editing (index lists into COMPONENTS).
COMPONENT_GROUPS: dict[str, tuple[int, ...]] = {
    "eyes": (0, 1),
    "l_eye": (0,),
    "r_eye": (1,),
    "nose": (2,),
    "mouth": (3,),
    "all": (0, 1, 2, 3),
}


@lru_cache(maxsize=None)
def boxes_at(fs: int, reference_size: int = REFERENCE_SIZE) -> tuple[tuple[int, int, int, int], ...]:
    """Integer boxes on a feature map of size ``fs`` (official rounding).

    ``scale = R / fs; b' = clamp(ceil((b - scale / 2) / scale), 0, fs - 1)``.
    """
    if fs < 1:
        raise ValueError(f"feature size must be positive, got {fs}")
    scale = reference_size / fs
    out = []
    for box in CANONICAL_BOXES:
        out.append(tuple(min(max(math.ceil((b - scale / 2) / scale), 0), fs - 1) for b in box))
    return tuple(out)


def check_boxes_nonempty(fs: int) -> None:
    """Raise ValueError when some component box is empty at feature size ``fs``."""
    for name, (x0, y0, x1, y1) in zip(COMPONENTS, boxes_at(fs)):
        if x1 <= x0 or y1 <= y0:
            raise ValueError(
                f"the {name} box is empty on a {fs}x{fs} feature map; component features need a "
                f"feature map of at least 8x8"
            )


def image_boxes(size: int) -> tuple[tuple[float, float, float, float], ...]:
    """Canonical boxes scaled to an image of ``size`` pixels (floats, image coordinates)."""
    s = size / REFERENCE_SIZE
    return tuple(tuple(b * s for b in box) for box in CANONICAL_BOXES)


def component_indices(spec: ComponentSpec) -> tuple[int, ...]:
    """The one parser of component selections: ``"eyes,nose"``, ``["eyes", "nose"]`` or
    ``(0, 1, 2)`` -> sorted unique indices into COMPONENTS; ComponentError names valid choices."""
    items = [spec] if isinstance(spec, str) else list(spec)
    idx: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(COMPONENTS):
                raise ComponentError(f"component index {item} out of range 0..{len(COMPONENTS) - 1}")
            idx.add(item)
            continue
        for part in (p.strip() for p in str(item).split(",")):
            if not part:
                continue
            if part not in COMPONENT_GROUPS:
                raise ComponentError(f"unknown component '{part}'; choose from {', '.join(COMPONENT_GROUPS)} "
                                     "(comma-separated for several)")
            idx.update(COMPONENT_GROUPS[part])
    if not idx:
        raise ComponentError(f"no component given; choose from {', '.join(COMPONENT_GROUPS)}")
    return tuple(sorted(idx))


def component_label(spec: ComponentSpec) -> str:
    """File-name friendly label of a component selection (``eyes,nose`` -> ``eyes+nose``)."""
    if isinstance(spec, str):
        return "+".join(p.strip() for p in spec.split(",") if p.strip())
    return "+".join(COMPONENTS[i] for i in component_indices(spec))


def component_box_mask(size: int) -> torch.Tensor:
    """float [1, 1, S, S]: 1 inside any of the four component boxes at ``size`` px, else 0."""
    m = torch.zeros(1, 1, size, size)
    for x0, y0, x1, y1 in boxes_at(size):
        m[..., y0:y1, x0:x1] = 1
    return m

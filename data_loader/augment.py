"""Training-time augmentation: horizontal flip, then a random irregular hole mask.

The official loaders flip the decoded image *before* resizing it; a data set that can do so
(``flip_before_resize``, e.g. the real-image data sets) is asked for the flipped image with
:func:`augment_decisions` first, then :func:`train_augment` with ``image_flipped=True`` adds the
mask without flipping again. Tensors that are already at the model size (SynthFaces) are flipped
here.

All randomness comes from the ``numpy.random.Generator`` passed in, so a trainer that derives it
from ``(seed, epoch, index)`` gets the same augmentation for a sample whatever the worker count,
and after a resume.

Flipping and attributes: a horizontal flip mirrors the face, so the eye on the left of the image
becomes the eye on the right. Global attribute labels (``"attrs"``: smiling, beard, ...) do not
change, but side-specific ones (e.g. ``Left_Eye_Closed`` / ``Right_Eye_Closed``) swap. Pass their
index pairs as ``mirror_pairs`` (``side_mirror_pairs(attr_names)`` finds ``Left_*``/``Right_*``
pairs); the CelebA attributes have no side-specific ones, so for them nothing is swapped.
Only ``"image"``, ``"mask"`` and ``"attrs"`` are touched; any other keys pass through unchanged.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .masks import random_irregular_mask


def side_mirror_pairs(attr_names: Sequence[str]) -> list[tuple[int, int]]:
    """Index pairs of attributes that trade places under a horizontal flip: ``Left_X`` and
    ``Right_X`` (case-insensitive prefixes ``left_``/``right_``)."""
    index = {name.lower(): i for i, name in enumerate(attr_names)}
    pairs = []
    for name, i in index.items():
        if name.startswith("left_"):
            j = index.get("right_" + name[len("left_"):])
            if j is not None:
                pairs.append((i, j))
    return sorted(pairs)


def _check_p(p: float, name: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def augment_decisions(rng: np.random.Generator, flip_p: float = 0.5, mask_p: float = 0.5) -> tuple[bool, bool]:
    """(flip, hole mask) for one sample. Two uniforms are always drawn (flip, then mask), so the
    flip decision does not shift the random stream of the mask."""
    flip_p, mask_p = _check_p(flip_p, "flip_p"), _check_p(mask_p, "mask_p")
    u_flip, u_mask = rng.random(2)
    return bool(u_flip < flip_p), bool(u_mask < mask_p)


def train_augment(sample: dict, rng: np.random.Generator, flip_p: float = 0.5, mask_p: float = 0.5,
                  mirror_pairs: Optional[Sequence[tuple[int, int]]] = None, mask_width: int = 16,
                  mask_canvas: Optional[int] = None, decisions: Optional[tuple[bool, bool]] = None,
                  image_flipped: bool = False) -> dict:
    """Augment one sample ``{"image": float32 [3, S, S], "mask": [1, S, S], ...}``.

    With probability ``flip_p`` the image is mirrored horizontally (and the attribute indices in
    ``mirror_pairs`` are exchanged); then with probability ``mask_p`` the mask becomes a random
    irregular hole mask (0 on holes; :func:`data_loader.masks.random_irregular_mask` with
    ``mask_width`` and ``mask_canvas``), otherwise all ones. Returns a new dict (also has
    ``"flipped"``); the input dict and its tensors are not modified, so cached samples are safe.

    ``decisions``: (flip, mask) already drawn with :func:`augment_decisions` from this ``rng``;
    ``image_flipped``: the data set already mirrored the image (before resizing), so only the
    attributes are swapped here."""
    image = sample["image"]
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[-1] != image.shape[-2]:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"sample['image'] must be a square [C, S, S] tensor, got {shape}")
    size = int(image.shape[-1])
    flipped, masked = decisions if decisions is not None else augment_decisions(rng, flip_p, mask_p)
    out = dict(sample)
    out["flipped"] = flipped
    if flipped:
        if not image_flipped:
            out["image"] = torch.flip(image, dims=[-1])
        if mirror_pairs and "attrs" in sample:
            attrs = sample["attrs"]
            attrs = attrs.clone() if isinstance(attrs, torch.Tensor) else np.array(attrs, copy=True)
            for i, j in mirror_pairs:
                attrs[i], attrs[j] = sample["attrs"][j], sample["attrs"][i]
            out["attrs"] = attrs
    if masked:
        mask = torch.from_numpy(random_irregular_mask(size, rng, mask_width, mask_canvas))[None]
    else:
        mask = torch.ones(1, size, size, dtype=torch.float32)
    out["mask"] = mask.to(image.dtype) if image.is_floating_point() else mask
    return out

"""Ring colours of the component boxes (the box encoder's ``ring_fit`` and ``ring_exclusive``).

The *ring* of a component box is the one-pixel frame around it (clipped to the image). Its colour
(a mean, or a least-squares colour plane) stands in for the skin behind the component: the box
encoder fills boxes with it (``content_input: fill_components``) and takes crops relative to it
(``component_input: crops``). Boxes are ``[x0, y0, x1, y1]`` in image pixels.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor


def clear_boxes(mask: Tensor, origin: tuple[int, int], boxes) -> Tensor:
    """Zero, in place, the pixels of ``boxes`` ``[x0, y0, x1, y1]`` (image coordinates) in ``mask``
    [h, w], a patch of the image whose top-left pixel is ``origin`` (x, y); returns ``mask``."""
    ox, oy = origin
    for c0, d0, c1, d1 in boxes:
        mask[max(d0 - oy, 0):max(d1 - oy, 0), max(c0 - ox, 0):max(c1 - ox, 0)] = 0
    return mask


def _ring(box: tuple, S: int, others: tuple = ()) -> tuple[Tensor, tuple[int, int]]:
    """(bool [h+2, w+2] ring mask clipped to the image, its patch origin (a0, b0)) for the
    one-pixel ring around ``box``, without the pixels inside any of the ``others`` boxes;
    ValueError when none is left."""
    x0, y0, x1, y1 = box
    a0, b0, a1, b1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, S), min(y1 + 1, S)
    ring = torch.ones(b1 - b0, a1 - a0, dtype=torch.bool, device="cpu")
    ring[y0 - b0:y1 - b0, x0 - a0:x1 - a0] = False
    if not clear_boxes(ring, (a0, b0), others).any():
        raise ValueError(f"the ring around box {box} lies entirely inside other boxes")
    return ring, (a0, b0)


def ring_others(boxes, exclusive: bool) -> list[tuple]:
    """Per box, the boxes whose pixels its ring leaves out: every other box when ``exclusive``
    (a ring pixel inside another component's box shows that component, a glasses frame over an
    eye for example, not the surroundings), none otherwise."""
    boxes = [tuple(int(v) for v in b) for b in boxes]
    return [tuple(o for j, o in enumerate(boxes) if j != i) if exclusive else () for i in range(len(boxes))]


@functools.lru_cache(maxsize=None)
def _ring_plane_fit(box: tuple, S: int, others: tuple = ()) -> tuple[Tensor, Tensor, Tensor]:
    """(ring mask bool [h+2, w+2] clipped, least-squares fit [3, n_ring], basis [3, h, w]) in float64
    for the plane ``c + a u + b v`` through the ring around ``box`` (u, v: offsets from its centre)."""
    x0, y0, x1, y1 = box
    ring, (a0, b0) = _ring(box, S, others)
    b1, a1 = b0 + ring.shape[0], a0 + ring.shape[1]
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    vv, uu = torch.meshgrid(torch.arange(b0, b1, dtype=torch.float64, device="cpu") - cy,
                            torch.arange(a0, a1, dtype=torch.float64, device="cpu") - cx, indexing="ij")
    design = torch.stack([torch.ones_like(uu[ring]), uu[ring], vv[ring]], 1)
    if torch.linalg.matrix_rank(design) < 3:
        raise ValueError(f"the ring around box {box} keeps too few pixels for a colour plane "
                         f"({int(ring.sum())} left outside the other boxes); use ring_fit 'mean'")
    fit = torch.linalg.pinv(design)  # [3, n]
    basis = torch.stack([torch.ones_like(uu), uu, vv])[:, y0 - b0:y1 - b0, x0 - a0:x1 - a0]
    return ring, fit, basis


def check_rings(boxes, S: int, fit: str, exclusive: bool) -> None:
    """Raise ValueError when a ring (``exclusive``: without the other boxes' pixels) is too small
    for its fit (``mean``: one pixel; ``plane``: three not on one line)."""
    check = _ring_plane_fit if fit == "plane" else _ring
    for box, others in zip(boxes, ring_others(boxes, exclusive)):
        check(tuple(int(v) for v in box), S, others)


def ring_planes(x: Tensor, boxes, exclusive: bool = False) -> list[Tensor]:
    """Per box ``[x0, y0, x1, y1]``, the least-squares plane ``c + a u + b v`` (per channel, u, v
    the pixel offsets from the box centre) through the one-pixel ring around it (clipped to the
    image; ``exclusive``: without ring pixels inside the other boxes, see :func:`ring_others`),
    evaluated over the box: x [B, C, S, S] -> [[B, C, h, w], ...]. It follows a shading gradient
    across the box where the ring mean is flat."""
    S = x.shape[-1]
    out = []
    for box, others in zip(boxes, ring_others(boxes, exclusive)):
        ring, fit, basis = _ring_plane_fit(tuple(int(v) for v in box), S, others)
        a0, b0 = max(int(box[0]) - 1, 0), max(int(box[1]) - 1, 0)
        patch = x[:, :, b0:b0 + ring.shape[0], a0:a0 + ring.shape[1]]
        coef = patch[:, :, ring.to(x.device)] @ fit.T.to(x)  # [B, C, 3]
        out.append(torch.einsum("bck,khw->bchw", coef, basis.to(x)))
    return out


def ring_means(x: Tensor, boxes, exclusive: bool = False) -> Tensor:
    """Mean colour of the one-pixel ring around each box ``[x0, y0, x1, y1]`` (clipped to the
    image; ``exclusive``: without ring pixels inside the other boxes). x: [B, C, S, S] ->
    [B, len(boxes), C]."""
    S = x.shape[-1]
    out = []
    for box, others in zip(boxes, ring_others(boxes, exclusive)):
        ring, (a0, b0) = _ring(tuple(int(v) for v in box), S, others)
        ring = ring.to(device=x.device, dtype=x.dtype)
        patch = x[:, :, b0:b0 + ring.shape[0], a0:a0 + ring.shape[1]]
        out.append((patch * ring).sum((2, 3)) / ring.sum())
    return torch.stack(out, dim=1)

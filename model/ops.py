"""Pure functional ops of the StyleGAN2 family, in plain PyTorch (CPU and CUDA, no extensions).

Dimension names: B batch, C channels, H/W height/width, O/I output/input channels, K kernel size.
"""
from __future__ import annotations

import functools

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

SQRT2 = math.sqrt(2.0)


def fir_kernel(taps: Sequence[float] = (1, 3, 3, 1), gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel ``outer(taps, taps) / sum * gain``, shape [K, K] (float64)."""
    k = torch.tensor(taps, dtype=torch.float64)
    k = torch.outer(k, k)
    return k / k.sum() * gain


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, convolve with ``kernel`` (true convolution), downsample.

    x: [B, C, H, W]; kernel: [K, K]; ``pad = (p0, p1)`` on both axes (negative values crop).
    Output: [B, C, (H*up + p0 + p1 - K) // down + 1, ...].
    """
    B, C, H, W = x.shape
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(B, C, H * up, W * up)
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        h, w = x.shape[-2:]
        x = x[:, :, max(-p0, 0): h - max(-p1, 0), max(-p0, 0): w - max(-p1, 0)]
    k = torch.flip(kernel, (0, 1)).to(dtype=x.dtype, device=x.device)
    weight = k[None, None].expand(C, 1, *k.shape)
    return F.conv2d(x, weight, stride=down, groups=C)


def fused_leaky_relu(x: Tensor, bias: Optional[Tensor] = None, negative_slope: float = 0.2,
                     scale: float = SQRT2) -> Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``; ``bias`` [C] is added along dim 1."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Optional[Tensor], demodulate: bool = True,
                     upsample: bool = False, blur_kernel: Optional[Tensor] = None) -> Tensor:
    """StyleGAN2 modulated convolution, batched without per-sample weights.

    x: [B, I, H, W]; weight: [O, I, K, K], already scaled by the equalized-lr constant;
    styles: [B, I] per-sample input scales, or None for an unmodulated (shared) weight.
    Modulating the weight per sample equals scaling the input channels before one shared
    convolution; demodulation is a per-(sample, output channel) factor applied afterwards.
    ``upsample``: transposed conv with stride 2, then ``blur_kernel`` (already x4) with pad (1,1)
    for K=3 (general: ``p = 4 - 2 - (K - 1)``, pads ``((p + 1) // 2 + 1, p // 2 + 1)``).
    Output: [B, O, H', W'] with H' = H (plain) or 2H (upsample).
    """
    if styles is not None:
        x = x * styles[:, :, None, None].to(x.dtype)
    if upsample:
        out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=0)
        k = blur_kernel.shape[0]
        p = (k - 2) - (weight.shape[-1] - 1)
        out = upfirdn2d(out, blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1))
    else:
        out = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    if demodulate:
        wsq = weight.square().sum(dim=(2, 3))  # [O, I]
        if styles is None:
            demod = torch.rsqrt(wsq.sum(dim=1) + 1e-8).view(1, -1, 1, 1)
        else:
            demod = torch.rsqrt(styles.square().to(wsq.dtype) @ wsq.t() + 1e-8)[:, :, None, None]
        out = out * demod.to(out.dtype)
    return out


def component_modulation_map(h: Tensor, owner: Tensor) -> Tensor:
    """Per-pixel multipliers of component adaptive modulation (CAM).

    h: [B, N, C] one vector per component; owner: [H, W] long, the index of the component whose
    box covers each pixel (later components win), or N where no box covers it (multiplier 1).
    Output: [B, C, H, W].
    """
    B, N, C = h.shape
    table = torch.cat([h, h.new_ones(B, 1, C)], dim=1)  # [B, N+1, C]
    onehot = torch.nn.functional.one_hot(owner.flatten(), N + 1).to(table.dtype)  # [H*W, N+1]
    return (onehot @ table).transpose(1, 2).reshape(B, C, *owner.shape)


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

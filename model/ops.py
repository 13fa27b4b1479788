"""Pure functional ops of the StyleGAN2 family, in plain PyTorch (CPU and CUDA, no extensions).

Dimension names: B batch, C channels, H/W height/width, O/I output/input channels, K kernel size.
"""
from __future__ import annotations

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
    k = torch.flip(kernel, (0, 1)).to(dtype=x.dtype, device=x.device)
    weight = k[None, None].expand(C, 1, *k.shape)
    if p0 == p1 >= 0:  # the convolution pads: the same values as padding first, without the copy
        return F.conv2d(x, weight, stride=down, padding=p0, groups=C)
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        h, w = x.shape[-2:]
        x = x[:, :, max(-p0, 0): h - max(-p1, 0), max(-p0, 0): w - max(-p1, 0)]
    return F.conv2d(x, weight, stride=down, groups=C)


def fused_leaky_relu(x: Tensor, bias: Optional[Tensor] = None, negative_slope: float = 0.2,
                     scale: float = SQRT2) -> Tensor:
    """``leaky_relu(x + bias, 0.2) * sqrt(2)``; ``bias`` [C] is added along dim 1."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2))).to(x.dtype)
    return F.leaky_relu(x, negative_slope) * scale


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type autocast does not know: it cannot be on there
        return False


def conv_transpose2d_stride2(x: Tensor, weight: Tensor) -> Tensor:
    """``conv_transpose2d(x, weight.transpose(0, 1), stride=2)`` as four convolutions, one per
    output phase (row and column parity), each with the taps of the kernel that reach it. The same
    multiply-adds; oneDNN's bf16 transposed convolution is 2-2.5x slower than these (in float32 they
    are within 5 % either way, and float32 keeps conv_transpose2d).
    x: [B, I, H, W]; weight: [O, I, K, K] -> [B, O, 2H + K - 2, 2W + K - 2]."""
    O, _, K, _ = weight.shape
    if K < 2:
        return F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
    B, _, H, W = x.shape
    phases = {(p, q): F.conv2d(x, k, padding=(k.shape[2] - 1, k.shape[3] - 1))
              for p in range(2) for q in range(2)
              for k in [weight[:, :, p::2, q::2].flip(2, 3)]}  # taps p, p + 2, ... reversed: a correlation
    first = phases[0, 0]
    fmt = torch.channels_last if not first.is_contiguous() and \
        first.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty(B, O, 2 * H + K - 2, 2 * W + K - 2, dtype=first.dtype, device=x.device, memory_format=fmt)
    for (p, q), phase in phases.items():
        out[:, :, p::2, q::2] = phase
    return out


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Optional[Tensor], demodulate: bool = True,
                     upsample: bool = False, blur_kernel: Optional[Tensor] = None) -> Tensor:
    """StyleGAN2 modulated convolution, batched without per-sample weights.

    x: [B, I, H, W]; weight: [O, I, K, K], already scaled by the equalized-lr constant;
    styles: [B, I] per-sample input scales, or None for an unmodulated (shared) weight.
    Modulating the weight per sample equals scaling the input channels before one shared
    convolution; demodulation is a per-(sample, output channel) factor applied afterwards (of the
    weight itself when it is shared). A batch of one sample modulates and demodulates the weight
    instead (the same values; two passes over the activations fewer).
    ``upsample``: transposed conv with stride 2, then ``blur_kernel`` (already x4) with pad (1,1)
    for K=3 (general: ``p = 4 - 2 - (K - 1)``, pads ``((p + 1) // 2 + 1, p // 2 + 1)``).
    Output: [B, O, H', W'] with H' = H (plain) or 2H (upsample).
    """
    if styles is not None and x.shape[0] == 1:  # one sample: scale the weight, not the activations
        weight = weight * styles.to(weight.dtype).view(1, -1, 1, 1)
        styles = None
    if styles is not None:
        x = x * styles[:, :, None, None].to(x.dtype)
    elif demodulate:  # one weight for the batch: its demodulation is a per-output-channel factor of it
        weight = weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3)) + 1e-8).view(-1, 1, 1, 1)
        demodulate = False
    if upsample:
        if x.dtype in (torch.bfloat16, torch.float16) or _autocast_on(x.device.type):
            out = conv_transpose2d_stride2(x, weight)  # oneDNN's reduced-precision one is slow
        else:
            out = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=0)
        k = blur_kernel.shape[0]
        p = (k - 2) - (weight.shape[-1] - 1)
        out = upfirdn2d(out, blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1))
    else:
        out = F.conv2d(x, weight, padding=weight.shape[-1] // 2)
    if demodulate:
        wsq = weight.square().sum(dim=(2, 3))  # [O, I]
        demod = torch.rsqrt(styles.square().to(wsq.dtype) @ wsq.t() + 1e-8)[:, :, None, None]
        out = out * demod.to(out.dtype)
    return out


def component_modulation(x: Tensor, h: Tensor, owner: Tensor, boxes) -> Tensor:
    """``x * component_modulation_map(h, owner)`` (the same values), computed inside the boxes only:
    outside them the multiplier is 1, and the boxes cover a small part of the image.
    x: [B, C, H, W]; h: [B, N, C]; ``boxes``: per component, ``(x0, y0, x1, y1)`` holding every
    pixel that ``owner`` gives it (the boxes the owner map was drawn from)."""
    out = x.to(torch.promote_types(x.dtype, h.dtype), copy=True)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if y1 > y0 and x1 > x0:
            m = torch.where(owner[y0:y1, x0:x1] == i, h[:, i, :, None, None], 1.0)  # [B, C, h, w]
            out[:, :, y0:y1, x0:x1].mul_(m)  # pixels another component owns are multiplied by 1
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

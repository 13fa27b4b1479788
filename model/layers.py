"""Thin modules that own parameters and call the pure ops of ``model.ops``.

Every layer can list its parameters under the official release's names (``official_entries``):
tuples ``(official_suffix, own_suffix, official_shape)``, where ``own_suffix`` is None for an FIR
kernel constant that the official state_dict stores and we do not. This drives the converter.
"""
from __future__ import annotations

import math
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .ops import component_modulation, fir_kernel, fused_leaky_relu, modulated_conv2d, upfirdn2d

Entry = tuple  # (official_suffix, own_suffix or None, official_shape or constant tensor)


def _blur_buffer(module: nn.Module, name: str, gain: float) -> None:
    module.register_buffer(name, fir_kernel(gain=gain).float(), persistent=False)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: ``y = x W^T / sqrt(in) + b``, optionally
    followed by the biased leaky ReLU (then the bias is added before the activation)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_dim)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias)
        return F.linear(x, self.weight * self.scale, self.bias)

    def official_entries(self) -> Iterator[Entry]:
        yield "weight", "weight", tuple(self.weight.shape)
        yield "bias", "bias", tuple(self.bias.shape)


class ConvLayer(nn.Module):
    """Equalized conv with optional blur-downsampling, padding mode and activation.

    downsample: blur (pad ``((K+2)//2, (K+1)//2)``), then stride-2 conv without padding.
    Otherwise ``padding='zero'`` pads inside the conv, ``'reflect'`` reflection-pads first.
    activate + bias: biased leaky ReLU; activate without bias: scaled leaky ReLU;
    neither: plain conv (with its own bias if ``bias``).
    [B, I, H, W] -> [B, O, H or H/2, W or W/2].
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, downsample: bool = False,
                 padding: str = "zero", activate: bool = True, bias: bool = True):
        super().__init__()
        if padding not in ("zero", "reflect"):
            raise ValueError(f"padding must be 'zero' or 'reflect', got {padding!r}")
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
        self.k, self.downsample, self.padding, self.activate = kernel_size, downsample, padding, activate
        if downsample:
            _blur_buffer(self, "blur", 1.0)

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.scale
        conv_bias = None if self.activate else self.bias
        if self.downsample:
            x = upfirdn2d(x, self.blur, pad=((self.k + 2) // 2, (self.k + 1) // 2))
            x = F.conv2d(x, w, conv_bias, stride=2)
        elif self.padding == "reflect" and self.k > 1:
            p = (self.k - 1) // 2
            x = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), w, conv_bias)
        else:
            x = F.conv2d(x, w, conv_bias, padding=(self.k - 1) // 2)
        if self.activate:
            x = fused_leaky_relu(x, self.bias)
        return x

    def official_entries(self) -> Iterator[Entry]:
        # Official: nn.Sequential([blur | reflection pad]?, conv, activation?)
        i = 1 if (self.downsample or (self.padding == "reflect" and self.k > 1)) else 0
        if self.downsample:
            yield "0.kernel", None, fir_kernel()
        yield f"{i}.weight", "weight", tuple(self.weight.shape)
        if self.bias is not None:
            yield (f"{i + 1}.bias" if self.activate else f"{i}.bias"), "bias", tuple(self.bias.shape)


class ResBlock(nn.Module):
    """``(conv2(conv1(x)) + skip(x)) / sqrt(2)``; conv1: in->out 3x3, conv2: out->out 3x3
    (optionally downsampling); skip: 1x1 without bias/activation when shapes change."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool = True, padding: str = "zero"):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, out_ch, 3, padding=padding)
        self.conv2 = ConvLayer(out_ch, out_ch, 3, downsample=downsample, padding=padding)
        self.skip = (ConvLayer(in_ch, out_ch, 1, downsample=downsample, activate=False, bias=False)
                     if downsample or in_ch != out_ch else None)

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.skip is None else self.skip(x)
        return (self.conv2(self.conv1(x)) + skip) / math.sqrt(2)

    def official_entries(self) -> Iterator[Entry]:
        for name in ("conv1", "conv2", "skip"):
            layer = getattr(self, name)
            if layer is not None:
                for off, own, shape in layer.official_entries():
                    yield f"{name}.{off}", (None if own is None else f"{name}.{own}"), shape


class ModulatedConv2d(nn.Module):
    """Modulated convolution: weight [O, I, K, K]; ``modulation`` maps the style to input
    scales (absent for the unmodulated CAM-256 synthesis convs). [B, I, H, W] -> [B, O, H', W']."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: Optional[int],
                 demodulate: bool = True, upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0) if style_dim else None
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            _blur_buffer(self, "blur", 4.0)

    def forward(self, x: Tensor, style: Optional[Tensor]) -> Tensor:
        styles = self.modulation(style) if self.modulation is not None else None
        return modulated_conv2d(x, self.weight * self.scale, styles, self.demodulate,
                                self.upsample, self.blur if self.upsample else None)


class NoiseInjection(nn.Module):
    """``x + strength * noise`` with noise [B or 1, 1, H, W]."""

    def __init__(self):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + (self.strength * noise).to(x.dtype)


class ComponentModulation(nn.Module):
    """CAM: per-component multipliers inside the component boxes.

    ``fc[j]`` maps a component embedding to C channels (biased leaky ReLU); component i uses
    ``fc[max(0, i - 1)]`` (the eyes share one). x: [B, C, H, W], components: [B, 4, D]."""

    def __init__(self, comp_dim: int, channels: int, n_components: int = 4):
        super().__init__()
        self.fc = nn.ModuleList(EqualLinear(comp_dim, channels, activate=True)
                                for _ in range(n_components - 1))

    def forward(self, x: Tensor, components: Tensor, owner: tuple) -> Tensor:
        """``owner``: (owner map [H, W], its boxes), see :func:`model.ops.component_modulation`."""
        h = torch.stack([self.fc[max(0, i - 1)](components[:, i]) for i in range(components.shape[1])], 1)
        return component_modulation(x, h, *owner)


class StyledConv(nn.Module):
    """[CAM ->] modulated conv -> noise injection -> biased leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: Optional[int],
                 upsample: bool = False, cam_dim: Optional[int] = None):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel_size, style_dim, upsample=upsample)
        self.cam = ComponentModulation(cam_dim, in_ch) if cam_dim else None
        self.noise = NoiseInjection()
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor, style: Tensor, components: Tensor, noise: Tensor,
                owner: Optional[tuple] = None) -> Tensor:
        if self.cam is not None:
            x = self.cam(x, components, owner)
        x = self.conv(x, style)
        x = self.noise(x, noise)
        return fused_leaky_relu(x, self.bias)

    def official_entries(self, cam_wrapped_modulation: bool) -> Iterator[Entry]:
        c = self.conv
        yield "conv.weight", "conv.weight", (1, *c.weight.shape)
        if c.upsample:
            yield "conv.blur.kernel", None, fir_kernel(gain=4.0)
        if self.cam is not None:
            for j, fc in enumerate(self.cam.fc):
                for off, own, shape in fc.official_entries():
                    yield f"conv.layers2.{j}.{off}", f"cam.fc.{j}.{own}", shape
        if c.modulation is not None:
            pre = "conv.modulation_new.modulation" if cam_wrapped_modulation else "conv.modulation_new"
            for off, own, shape in c.modulation.official_entries():
                yield f"{pre}.{off}", f"conv.modulation.{own}", shape
        yield "noise.weight", "noise.strength", (1,)
        yield "activate.bias", "bias", tuple(self.bias.shape)


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB without demodulation, plus bias; adds the 2x-upsampled skip."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))
        self.upsample = upsample
        if upsample:
            _blur_buffer(self, "blur", 4.0)

    def forward(self, x: Tensor, style: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        out = self.conv(x, style) + self.bias.view(1, 3, 1, 1)
        if skip is not None:
            out = out + upfirdn2d(skip, self.blur, up=2, pad=(2, 1))
        return out

    def official_entries(self) -> Iterator[Entry]:
        yield "bias", "bias", (1, 3, 1, 1)
        if self.upsample:
            yield "upsample.kernel", None, fir_kernel(gain=4.0)
        yield "conv.weight", "conv.weight", (1, *self.conv.weight.shape)
        for off, own, shape in self.conv.modulation.official_entries():
            yield f"conv.modulation_new.{off}", f"conv.modulation.{own}", shape

"""The release's IA-FaceS networks: Encoder, Generator (with or without CAM) and Discriminator.
The project's own variants subclass these in ``model.variants``.

Shapes: images [B, 3, S, S] in [-1, 1]; content [B, Cc, s0, s0]; components [B, 4, D].
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
import torch.nn as nn
from torch import Tensor

from .boxes import boxes_at
from .config import DiscriminatorConfig, EncoderConfig, EncoderTrunkConfig, GeneratorConfig
from .layers import ConvLayer, EqualLinear, ResBlock, StyledConv, ToRGB

Entry = tuple


def _prefixed(prefix_off: str, prefix_own: str, entries) -> Iterator[Entry]:
    for off, own, shape in entries:
        yield f"{prefix_off}{off}", (None if own is None else f"{prefix_own}{own}"), shape


def check_image(x: Tensor, size: int, name: str = "image") -> None:
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(f"{name} must have shape [B, 3, {size}, {size}], got {list(x.shape)}")


def build_trunk(cfg: EncoderTrunkConfig) -> nn.Sequential:
    """The encoder trunk: image [B, 3, S, S] -> features [B, C, fs, fs] (a 1x1 stem, then one
    downsampling residual block per halving)."""
    ch = cfg.trunk_channels()
    trunk = [ConvLayer(3, ch[0], 1)]
    trunk += [ResBlock(a, b, downsample=True, padding="reflect") for a, b in zip(ch[:-1], ch[1:])]
    return nn.Sequential(*trunk)


class Encoder(nn.Module):
    """The release's encoder: image [B, 3, S, S] -> (content [B, Cc, fs/2, fs/2], components
    [B, 4, D]). The content is one more downsampling block over the trunk's features; each
    component embedding is a linear projection of the features inside its box (the two eyes share
    one projection)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.trunk_channels()
        self.trunk = build_trunk(cfg)
        self.content_head = ResBlock(ch[-1], cfg.content_channels, downsample=True, padding="reflect")
        self.component_head = None
        if cfg.component_channels:
            self.component_head = ResBlock(ch[-1], cfg.component_channels, downsample=False, padding="reflect")
        self.boxes = boxes_at(cfg.feat_size)
        self.build_component_branch()

    def build_component_branch(self) -> None:
        """Extension point: the layers that turn features into component embeddings."""
        comp_ch = self.cfg.component_channels or self.cfg.trunk_channels()[-1]
        dims = [comp_ch * (y1 - y0) * (x1 - x0) for x0, y0, x1, y1 in self.boxes]
        if dims[0] != dims[1]:
            raise ValueError("eye boxes differ in size; they must share one projection")
        # component i uses component_fc[max(0, i - 1)]
        self.component_fc = nn.ModuleList(EqualLinear(d, self.cfg.comp_dim, activate=True) for d in dims[1:])

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        check_image(x, self.cfg.size)
        feat = self.trunk(x if mask is None else x * mask)
        content = self.content_head(feat)
        if self.component_head is not None:  # 1024 px: components from the unmasked image
            feat = self.component_head(feat if mask is None else self.trunk(x))
        return content, self.components_from_features(feat)

    def components_from_features(self, feat: Tensor) -> Tensor:
        """Features [B, C, fs, fs] -> components [B, 4, D]: each box flattened and projected."""
        components = [self.component_fc[max(0, i - 1)](feat[:, :, y0:y1, x0:x1].flatten(1))
                      for i, (x0, y0, x1, y1) in enumerate(self.boxes)]
        return torch.stack(components, dim=1)

    def official_entries(self) -> Iterator[Entry]:
        for i, layer in enumerate(self.trunk):
            yield from _prefixed(f"stem.{i}.", f"trunk.{i}.", layer.official_entries())
        # The 256-px release wraps the content block in an nn.Sequential, the 1024-px one does not.
        content_off = "stem2." if self.component_head is not None else "stem2.0."
        yield from _prefixed(content_off, "content_head.", self.content_head.official_entries())
        if self.component_head is not None:
            yield from _prefixed("stem3.", "component_head.", self.component_head.official_entries())
        for j, fc in enumerate(self.component_fc):
            yield from _prefixed(f"layers.{j}.", f"component_fc.{j}.", fc.official_entries())


class Generator(nn.Module):
    """(content [B, Cc, s0, s0], components [B, 4, D]) -> image [B, 3, S, S] (no tanh)."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        style_dim = cfg.style_dim
        conv_style = style_dim if (not cfg.cam or cfg.cam_modulated) else None
        cam_dim = cfg.comp_dim if cfg.cam else None
        s0 = cfg.content_size
        c0 = cfg.channels(s0)
        self.conv1 = StyledConv(cfg.content_channels, c0, 3, conv_style, cam_dim=cam_dim)
        self.to_rgb1 = ToRGB(c0, style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = c0
        for res in cfg.resolutions:
            out_ch = cfg.channels(res)
            self.convs.append(StyledConv(in_ch, out_ch, 3, conv_style, upsample=True, cam_dim=cam_dim))
            self.convs.append(StyledConv(out_ch, out_ch, 3, conv_style, cam_dim=cam_dim))
            self.to_rgbs.append(ToRGB(out_ch, style_dim))
            in_ch = out_ch
        self.noises = nn.Module()
        for j in range(cfg.num_noises):
            res = 2 ** ((j + 2 * (s0.bit_length() - 1) + 1) // 2)
            self.noises.register_buffer(f"noise_{j}", torch.randn(1, 1, res, res))
        # CAM: for each synthesis conv, a map of which component owns each input pixel.
        self.cam_boxes = []  # per conv: the boxes its owner map was drawn from
        if cfg.cam:
            for j, (in_res, box_fs) in enumerate(self.cam_geometry()):
                self.register_buffer(f"cam_owner_{j}", self._owner_map(in_res, box_fs), persistent=False)
                self.cam_boxes.append(tuple(boxes_at(box_fs)))

    def cam_geometry(self) -> list[tuple[int, int]]:
        """(input resolution, box grid size) of conv1 and every entry of ``convs``."""
        s0 = self.cfg.content_size
        out = [(s0, s0)]
        for k in range(len(self.cfg.resolutions) * 2):
            in_res = s0 * 2 ** ((k + 1) // 2)
            box_fs = in_res
            if self.cfg.cam_placement == "official" and k >= 1:
                box_fs = in_res // 2  # released CAM-256 weights: boxes of half the input size
            out.append((in_res, box_fs))
        return out

    @staticmethod
    def _owner_map(res: int, box_fs: int) -> Tensor:
        owner = torch.full((res, res), 4, dtype=torch.long)
        for i, (x0, y0, x1, y1) in enumerate(boxes_at(box_fs)):
            owner[y0:y1, x0:x1] = i
        return owner

    def noise_list(self, batch: int, mode: str, like: Tensor) -> list[Tensor]:
        bufs = [getattr(self.noises, f"noise_{j}") for j in range(self.cfg.num_noises)]
        if mode == "const":
            return [b.to(like.dtype) for b in bufs]
        if mode == "random":
            return [torch.randn(batch, 1, b.shape[-2], b.shape[-1], device=like.device, dtype=like.dtype)
                    for b in bufs]
        raise ValueError(f"noise mode must be 'const' or 'random', got {mode!r}")

    def forward(self, content: Tensor, components: Tensor, noise_mode: str = "const",
                noise: Optional[list] = None) -> Tensor:
        """``noise_mode``: ``const`` (the noise buffers) or ``random`` (fresh noise); ``noise``: an
        explicit list of ``num_noises`` tensors ``[B or 1, 1, r, r]`` instead (overrides the mode)."""
        cfg = self.cfg
        B = content.shape[0]
        if tuple(content.shape[1:]) != (cfg.content_channels, cfg.content_size, cfg.content_size):
            raise ValueError(f"content must have shape [B, {cfg.content_channels}, {cfg.content_size}, "
                             f"{cfg.content_size}], got {list(content.shape)}")
        if tuple(components.shape) != (B, cfg.n_components, cfg.comp_dim):
            raise ValueError(f"components must have shape [{B}, {cfg.n_components}, {cfg.comp_dim}], "
                             f"got {list(components.shape)}")
        style = components.reshape(B, -1)
        if noise is None:
            noise = self.noise_list(B, noise_mode, content)
        elif len(noise) != cfg.num_noises:
            raise ValueError(f"noise must be a list of {cfg.num_noises} tensors, got {len(noise)}")
        owner = (lambda j: (getattr(self, f"cam_owner_{j}"), self.cam_boxes[j])) if cfg.cam else (lambda j: None)
        x = self.conv1(content, style, components, noise[0], owner(0))
        x = self.edit_features(x, components)
        skip = self.to_rgb1(x, style)
        for b, to_rgb in enumerate(self.to_rgbs):
            k = 2 * b
            x = self.convs[k](x, style, components, noise[k + 1], owner(k + 1))
            x = self.edit_features(x, components)
            x = self.convs[k + 1](x, style, components, noise[k + 2], owner(k + 2))
            skip = to_rgb(x, style, skip)
        return skip

    def edit_features(self, x: Tensor, components: Tensor) -> Tensor:
        """Extension point: the features [B, C, r, r] after the first conv at each resolution r
        (the release leaves them as they are)."""
        return x

    def official_entries(self) -> Iterator[Entry]:
        wrapped = self.cfg.cam and self.cfg.cam_modulated
        yield from _prefixed("conv1.", "conv1.", self.conv1.official_entries(wrapped))
        yield from _prefixed("to_rgb1.", "to_rgb1.", self.to_rgb1.official_entries())
        for k, conv in enumerate(self.convs):
            yield from _prefixed(f"convs.{k}.", f"convs.{k}.", conv.official_entries(wrapped))
        for k, rgb in enumerate(self.to_rgbs):
            yield from _prefixed(f"to_rgbs.{k}.", f"to_rgbs.{k}.", rgb.official_entries())
        for j in range(self.cfg.num_noises):
            buf = getattr(self.noises, f"noise_{j}")
            yield f"noises.noise_{j}", f"noises.noise_{j}", tuple(buf.shape)


class Discriminator(nn.Module):
    """Image [B, 3, S, S] -> score [B, 1]."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        S = cfg.size
        convs = [ConvLayer(3, cfg.channels(S), 1)]
        res = S
        while res > 4:
            convs.append(ResBlock(cfg.channels(res), cfg.channels(res // 2), downsample=True))
            res //= 2
        self.convs = nn.Sequential(*convs)
        c4 = cfg.channels(4)
        self.final_conv = ConvLayer(c4, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activate=True), EqualLinear(c4, 1))

    def forward(self, x: Tensor) -> Tensor:
        check_image(x, self.cfg.size)
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))

    def official_entries(self) -> Iterator[Entry]:
        for i, layer in enumerate(self.convs):
            yield from _prefixed(f"convs.{i}.", f"convs.{i}.", layer.official_entries())
        yield from _prefixed("final_conv.", "final_conv.", self.final_conv.official_entries())
        for i, lin in enumerate(self.final_linear):
            yield from _prefixed(f"final_linear.{i}.", f"final_linear.{i}.", lin.official_entries())

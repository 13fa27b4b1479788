"""The box encoder: the release's encoder with what the component boxes show kept out of the
content branch and/or component embeddings taken from the boxes' own pixels (docs/study.md).

``content_input`` (what the content branch sees of the boxes): ``image`` (everything, as the
release), ``outside_components`` (boxes blanked) or ``fill_components`` (boxes filled with their
ring colour), so that a component's look reaches the decoder only through its embedding.

``component_input``: ``features`` (the release's: cropped from the trunk's feature map, whose cells
see far beyond their box) or ``crops`` (a small network per kind of component sees only its own
image box, taken relative to the ring colour and resized to ``crop_size``; ``crop_channels`` is its
first width; ``crop_exclusive``: without the pixels another box covers).

``ring_fit`` (``mean`` | ``plane``) and ``ring_exclusive`` define the ring colour
(``model.variants.rings``); they matter only where a ring colour is used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.config import shown
from utils.errors import ConfigError

from ..boxes import boxes_at
from ..config import EncoderConfig, _is_pow2, check_widths
from ..layers import ConvLayer, EqualLinear, ResBlock
from ..networks import Encoder, check_image
from .rings import check_rings, clear_boxes, ring_means, ring_others, ring_planes

CONTENT_INPUTS = ("image", "outside_components", "fill_components")
COMPONENT_INPUTS = ("features", "crops")
RING_FITS = ("mean", "plane")
_CROP_KEYS = ("crop_size", "crop_channels", "crop_exclusive")


@dataclass
class BoxEncoderConfig(EncoderConfig):
    content_input: str = "fill_components"
    component_input: str = "crops"
    crop_size: int = 16
    crop_channels: int = 32
    ring_fit: str = "mean"
    crop_exclusive: bool = False
    ring_exclusive: bool = False

    def __post_init__(self):
        super().__post_init__()
        for name, valid in (("content_input", CONTENT_INPUTS), ("component_input", COMPONENT_INPUTS),
                            ("ring_fit", RING_FITS)):
            if getattr(self, name) not in valid:
                raise ConfigError(f"encoder.{name} must be one of {valid}, got {shown(getattr(self, name))}")
        if self.content_input == "image" and self.component_input == "features":
            raise ConfigError("encoder: content_input 'image' with component_input 'features' is the release's "
                              "encoder; use \"type\": \"Encoder\"")
        if self.component_input == "crops" and self.component_channels:
            raise ConfigError("encoder.component_channels has no effect with component_input 'crops' (the "
                              "component head would never run); remove it")
        if not _is_pow2(self.crop_size) or not 8 <= self.crop_size <= 64:
            raise ConfigError(f"encoder.crop_size must be a power of two in [8, 64], got {self.crop_size}")
        if self.crop_channels <= 0:
            raise ConfigError("encoder.crop_channels must be positive")
        check_widths("encoder", self, ("crop_channels",))

    @property
    def uses_rings(self) -> bool:
        return self.content_input == "fill_components" or self.component_input == "crops"

    def inert_keys(self) -> dict[str, str]:
        inert = {}
        if self.component_input != "crops":
            inert.update({k: "it shapes the crops, and component_input is not 'crops'" for k in _CROP_KEYS})
        if not self.uses_rings:
            inert.update({k: "no ring colour is used (content_input is not 'fill_components' and component_input "
                             "is not 'crops')" for k in ("ring_fit", "ring_exclusive")})
        return inert


def build_crop_net(cfg: BoxEncoderConfig) -> nn.Sequential:
    """Crop [B, 3, c, c] -> embedding [B, comp_dim]: a 1x1 stem, downsampling residual blocks to
    4x4, an equalized linear layer, then a layer norm without parameters, so that embeddings of
    different faces differ by O(1) from the first step (a crop is mostly skin: without it they
    start within a few hundredths of each other and the decoder learns to read them slowly)."""
    ch, res = cfg.crop_channels, cfg.crop_size
    layers = [ConvLayer(3, ch, 1)]
    while res > 4:
        nxt = min(ch * 2, cfg.channel_max)
        layers.append(ResBlock(ch, nxt, downsample=True, padding="reflect"))
        ch, res = nxt, res // 2
    layers += [nn.Flatten(1), EqualLinear(ch * 16, cfg.comp_dim), nn.LayerNorm(cfg.comp_dim, elementwise_affine=False)]
    return nn.Sequential(*layers)


class BoxEncoder(Encoder):
    """Image -> (content [B, Cc, fs/2, fs/2], components [B, 4, D]), see the module docstring."""

    cfg: BoxEncoderConfig

    def build_component_branch(self) -> None:
        cfg = self.cfg
        self.image_boxes = boxes_at(cfg.size)
        if cfg.component_input == "crops":
            # One crop network per kind of component (the eyes share one): component i uses
            # crop_nets[max(0, i - 1)].
            self.crop_nets = nn.ModuleList(build_crop_net(cfg) for _ in range(3))
        else:
            self.crop_nets = None
            super().build_component_branch()
        # crop_exclusive: per component, [h, w] 1 where no other component box covers the pixel.
        self._own_pixels = None
        if self.crop_nets is not None and cfg.crop_exclusive:
            self._own_pixels = [clear_boxes(torch.ones(y1 - y0, x1 - x0, device="cpu"), (x0, y0), others)
                                for (x0, y0, x1, y1), others in zip(self.image_boxes, ring_others(self.image_boxes, True))]
        if cfg.uses_rings:
            check_rings(self.image_boxes, cfg.size, cfg.ring_fit, cfg.ring_exclusive)

    #: ``forward`` takes ``content_rows`` and ``needed`` (the counterfactual loss skips what it discards).
    selective = True

    def forward(self, x: Tensor, mask: Optional[Tensor] = None, content_rows: Optional[int] = None,
                needed: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """x [B, 3, S, S] -> (content [B or content_rows, ...], components [B, 4, D]).
        ``content_rows``: the content of the first ``content_rows`` images only. ``needed`` [B, 4]
        bool (crops only): the component embeddings to compute; the others are zeros without a
        gradient. What is computed equals the full forward's values."""
        check_image(x, self.cfg.size)
        k = x.shape[0] if content_rows is None else content_rows
        xm = x if mask is None else x * mask
        rings = self.ring_colours(xm) if self.cfg.uses_rings else None
        content_in = xm[:k]
        if self.cfg.content_input != "image":
            content_in = self.content_view(content_in, None if rings is None else [r[:k] for r in rings])
        if self.crop_nets is not None:
            return self.content_head(self.trunk(content_in)), self.crop_components(xm, rings, needed)
        feat = self.trunk(xm)
        content = self.content_head(self.trunk(content_in))
        if self.component_head is not None:
            feat = self.component_head(feat if mask is None else self.trunk(x))
        return content, self.components_from_features(feat)

    def ring_colours(self, x: Tensor) -> list[Tensor]:
        """Per component box, its ring colour as [B, 3, h, w] over the box (``ring_fit``)."""
        if self.cfg.ring_fit == "plane":
            return ring_planes(x, self.image_boxes, self.cfg.ring_exclusive)
        means = ring_means(x, self.image_boxes, self.cfg.ring_exclusive)
        return [means[:, i, :, None, None].expand(-1, -1, y1 - y0, x1 - x0)
                for i, (x0, y0, x1, y1) in enumerate(self.image_boxes)]

    def content_view(self, x: Tensor, rings: Optional[list[Tensor]] = None) -> Tensor:
        """The content branch's input [B, 3, S, S]: every component box blanked
        (``outside_components``) or filled with its ring colour (``fill_components``)."""
        if rings is None:
            rings = self.ring_colours(x)
        x = x.clone()
        for i, (x0, y0, x1, y1) in enumerate(self.image_boxes):
            x[:, :, y0:y1, x0:x1] = 0 if self.cfg.content_input == "outside_components" else rings[i]
        return x

    def crop_components(self, x: Tensor, rings: list[Tensor], needed: Optional[Tensor] = None) -> Tensor:
        """Components [B, 4, D] from each component's own image box, relative to its ring colour
        and resized to ``crop_size`` (bilinear); ``needed`` [B, 4] bool: only those (zeros elsewhere).
        Crops that share a network (the two eyes) go through it as one batch."""
        cs, B = self.cfg.crop_size, x.shape[0]
        crops, rows = [], []
        for i, (x0, y0, x1, y1) in enumerate(self.image_boxes):
            crop = x[:, :, y0:y1, x0:x1] - rings[i]
            r = None if needed is None or bool(needed[:, i].all()) else needed[:, i].nonzero().squeeze(1)
            if r is not None:
                crop = crop.index_select(0, r)
            if self._own_pixels is not None:
                crop = crop * self._own_pixels[i].to(crop)
            crops.append(F.interpolate(crop, size=(cs, cs), mode="bilinear", align_corners=False))
            rows.append(r)
        embeddings: list[Optional[Tensor]] = [None] * len(crops)
        for j, net in enumerate(self.crop_nets):
            mine = [i for i in range(len(crops)) if max(0, i - 1) == j]
            out = net(torch.cat([crops[i] for i in mine]) if len(mine) > 1 else crops[mine[0]])
            for i, emb in zip(mine, out.split([crops[i].shape[0] for i in mine])):
                embeddings[i] = emb if rows[i] is None else emb.new_zeros(B, emb.shape[1]).index_copy(0, rows[i], emb)
        return torch.stack(embeddings, dim=1)

    def official_entries(self) -> Iterator:
        raise ValueError("the box encoder has no counterpart in the official release")

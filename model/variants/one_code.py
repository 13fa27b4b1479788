"""One-code ablation: the IA-FaceS decoder driven by a single global code.

``OneCodeEncoder`` keeps the release encoder's trunk but replaces both heads:

* the whole final trunk feature map ``[B, C, fs, fs]`` is flattened and projected by one
  equalized linear layer (with activation) to ``4 * comp_dim`` values, returned as
  ``components [B, 4, D]``: a single global code, cut into four slots only so that the
  unchanged generator can consume it (nothing ties a slot to a face region);
* the content tensor is a learned constant ``[1, Cc, fs/2, fs/2]`` broadcast to the batch: it does
  not depend on the image, so all image information has to pass through the code.

Component transfer then swaps slots of the global code, which is exactly what the ablation
measures. The ``one_code`` architecture uses it by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn as nn
from torch import Tensor

from ..config import EncoderTrunkConfig
from ..layers import EqualLinear
from ..networks import build_trunk, check_image

N_SLOTS = 4


@dataclass
class OneCodeEncoderConfig(EncoderTrunkConfig):
    """The trunk's fields only: the one-code encoder has no component boxes or heads."""


class OneCodeEncoder(nn.Module):
    """Image -> (learned constant content [B, Cc, fs/2, fs/2], global code [B, 4, D])."""

    def __init__(self, cfg: OneCodeEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.trunk = build_trunk(cfg)
        self.code_fc = EqualLinear(cfg.trunk_channels()[-1] * cfg.feat_size * cfg.feat_size, N_SLOTS * cfg.comp_dim,
                                   activate=True)
        self.content = nn.Parameter(torch.randn(1, cfg.content_channels, cfg.content_size, cfg.content_size))

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        check_image(x, self.cfg.size)
        feat = self.trunk(x if mask is None else x * mask)
        components = self.code_fc(feat.flatten(1)).view(x.shape[0], N_SLOTS, self.cfg.comp_dim)
        return self.content.to(components.dtype).expand(x.shape[0], -1, -1, -1), components

    def official_entries(self) -> Iterator:
        raise ValueError("the one-code encoder has no counterpart in the official release")

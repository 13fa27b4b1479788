"""One-code ablation: the IA-FaceS decoder driven by a single global code.

``OneCodeEncoder`` keeps the encoder trunk of :class:`model.networks.Encoder` (same
``EncoderConfig``) but replaces both heads:

* the whole final trunk feature map ``[B, C, fs, fs]`` is flattened and projected by one
  equalized linear layer (with activation) to ``4 * comp_dim`` values, returned as
  ``components [B, 4, D]``: a single global code, cut into four slots only so that the
  unchanged :class:`model.networks.Generator` can consume it (nothing ties a slot to a face
  region);
* the content tensor is a learned constant ``[1, Cc, fs/2, fs/2]`` broadcast to the batch: it does
  not depend on the image, so all image information has to pass through the code.

The architecture is registered as ``one_code`` (``model.config.ARCHITECTURES``); training, the
editing tools and the benchmark use it unchanged. Component transfer then swaps slots of the
global code, which is exactly what the ablation measures.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from utils.errors import ConfigError

from .config import EncoderConfig
from .layers import EqualLinear
from .networks import _check_image, build_trunk

N_SLOTS = 4


class OneCodeEncoder(nn.Module):
    """Image -> (learned constant content [B, Cc, fs/2, fs/2], global code [B, 4, D])."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.component_channels:
            raise ConfigError("encoder.component_channels does not apply to the one_code architecture "
                              "(it has no component head); remove it")
        self.cfg = cfg
        self.trunk = build_trunk(cfg)
        self.code_fc = EqualLinear(cfg.trunk_channels()[-1] * cfg.feat_size * cfg.feat_size, N_SLOTS * cfg.comp_dim, activate=True)
        self.content = nn.Parameter(torch.randn(1, cfg.content_channels, cfg.content_size, cfg.content_size))

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        _check_image(x, self.cfg.size)
        xm = x if mask is None else x * mask
        feat = self.trunk(xm)
        code = self.code_fc(feat.reshape(x.shape[0], -1)).reshape(x.shape[0], N_SLOTS, self.cfg.comp_dim)
        content = self.content.to(code.dtype).expand(x.shape[0], -1, -1, -1)
        return content, code

"""The painting generator: the release's generator plus a direct spatial path from each component
embedding to its box (docs/study.md).

At one synthesis resolution (``component_paint``, after that resolution's first conv) each
component embedding is decoded by a linear layer into a feature patch that is added inside the
component's box; the two eyes share one painter, as they share their projection in the encoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch.nn as nn
from torch import Tensor

from utils.errors import ConfigError

from ..boxes import boxes_at
from ..config import GeneratorConfig
from ..layers import EqualLinear
from ..networks import Generator


@dataclass
class PaintingGeneratorConfig(GeneratorConfig):
    component_paint: int = 32

    def __post_init__(self):
        super().__post_init__()
        valid = [self.content_size, *self.resolutions]
        if self.component_paint not in valid:
            raise ConfigError(f"generator.component_paint must be one of the synthesis resolutions {valid}, got "
                              f"{self.component_paint}")


class PaintingGenerator(Generator):
    """(content [B, Cc, s0, s0], components [B, 4, D]) -> image [B, 3, S, S]."""

    cfg: PaintingGeneratorConfig

    def __init__(self, cfg: PaintingGeneratorConfig):
        super().__init__(cfg)
        res = cfg.component_paint
        ch = cfg.channels(cfg.content_size) if res == cfg.content_size else cfg.channels(res)
        self.paint_boxes = boxes_at(res)
        # painter k serves component i = k + 1 and, for k = 0, the left eye too
        self.paint = nn.ModuleList(EqualLinear(cfg.comp_dim, ch * (y1 - y0) * (x1 - x0))
                                   for x0, y0, x1, y1 in self.paint_boxes[1:])

    def edit_features(self, x: Tensor, components: Tensor) -> Tensor:
        """x [B, C, r, r] plus each component's decoded patch inside its box, at r = component_paint."""
        if x.shape[-1] != self.cfg.component_paint:
            return x
        x = x.clone()
        for i, (x0, y0, x1, y1) in enumerate(self.paint_boxes):
            patch = self.paint[max(0, i - 1)](components[:, i]).view(x.shape[0], -1, y1 - y0, x1 - x0)
            x[:, :, y0:y1, x0:x1] = x[:, :, y0:y1, x0:x1] + patch.to(x.dtype)
        return x

    def official_entries(self) -> Iterator:
        raise ValueError("the painting generator (component_paint) has no counterpart in the official release")

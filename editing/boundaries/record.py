"""The boundary record: one attribute's hyperplanes in component-embedding space, one per component
(``l_eye, r_eye, nose, mouth``), and its file format.

Storage: ``<checkpoint folder>/boundaries/<checkpoint stem>/<Attribute>.pt``, a plain dict readable
with ``torch.load(path, weights_only=True)`` (see :meth:`Boundary.to_dict`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
from torch import Tensor

from model.boxes import COMPONENTS
from model.checkpoint import atomic_save
from utils.errors import EditingError

FORMAT = "iafaces-boundary/1"
SELECT_RATIO = 0.47  # at most this share of the labelled faces on each side
TRAIN_RATIO = 0.7  # train / validation split of the selected faces
PathLike = Union[str, os.PathLike]


class BoundaryError(EditingError):
    """A boundary cannot be fitted or loaded (too few labelled faces, unknown attribute, ...)."""


@dataclass
class Boundary:
    """Unit normals ``normals [4, D]`` (one per component, order ``l_eye, r_eye, nose, mouth``) and
    offsets ``[4]`` such that ``z_i . n_i + offset_i > 0`` predicts the attribute from component i."""
    attribute: str
    normals: Tensor
    offsets: Tensor
    val_accuracy: list[float]
    train_accuracy: list[float]
    counts: dict[str, int]
    source: dict
    fingerprint: str = ""
    path: Optional[str] = field(default=None, compare=False)
    protocol: dict = field(default_factory=dict)

    @property
    def recipe(self) -> str:
        """The fitting recipe (``release``, ``standardized``, ``mean`` or ``conditional``;
        boundaries stored before recipes were recorded were fitted with the standardized LinearSVC)."""
        return self.protocol.get("recipe", "standardized")

    def decision(self, components: Tensor) -> Tensor:
        """components [B, 4, D] -> signed distances [B, 4] (positive: attribute predicted)."""
        device = components.device
        return (components.float() * self.normals[None].to(device)).sum(-1) + self.offsets.to(device)

    def to_dict(self) -> dict:
        """Plain dict (tensors, str, numbers, lists): loadable with ``weights_only=True``."""
        return {
            "format": FORMAT, "attribute": self.attribute, "components": list(COMPONENTS),
            "normals": self.normals.float().cpu().contiguous(), "offsets": self.offsets.float().cpu().contiguous(),
            "val_accuracy": [float(a) for a in self.val_accuracy],
            "train_accuracy": [float(a) for a in self.train_accuracy],
            "counts": {k: int(v) for k, v in self.counts.items()},
            "source": dict(self.source), "encoder_sha1": self.fingerprint,
            "protocol": dict(self.protocol) or {"recipe": "standardized", "select_ratio": SELECT_RATIO,
                                                "train_ratio": TRAIN_RATIO, "classifier": "LinearSVC"},
        }

    @classmethod
    def from_dict(cls, d: dict, path: Optional[str] = None) -> "Boundary":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise BoundaryError(f"{path or 'boundary'}: not a boundary file of format {FORMAT}")
        protocol = dict(d.get("protocol") or {})
        protocol.setdefault("recipe", "standardized")
        return cls(d["attribute"], d["normals"].float(), d["offsets"].float(), list(d["val_accuracy"]),
                   list(d["train_accuracy"]), dict(d["counts"]), dict(d["source"]), d.get("encoder_sha1", ""),
                   path, protocol)

    def save(self, path: PathLike) -> None:
        atomic_save(self.to_dict(), path)
        self.path = str(path)

    @classmethod
    def load(cls, path: PathLike) -> "Boundary":
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # corrupt or foreign file
            raise BoundaryError(f"cannot read boundary file {path}: {e.__class__.__name__}; delete it or use "
                                "--refit") from None
        return cls.from_dict(d, str(path))

    def summary(self) -> str:
        acc = ", ".join(f"{c} {a:.2f}" for c, a in zip(COMPONENTS, self.val_accuracy))
        return (f"{self.attribute}: {self.counts['positive']} with / {self.counts['negative']} without, "
                f"{self.counts['train']} train + {self.counts['val']} val ({self.recipe} recipe); val accuracy {acc}")

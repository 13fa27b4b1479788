"""Torch dataset rendering SynthFaces on the fly."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .factors import ATTRIBUTES, Factors, attribute_vector, sample_factors
from .render import check_size, render

SPLITS = ("train", "val", "test")
DEFAULT_SPLITS = {"num_train": 28000, "num_val": 1000, "num_test": 1000}


def to_tensor(images) -> Tensor:
    """uint8 images [..., S, S, 3] (NumPy or torch) -> float32 [..., 3, S, S] in [-1, 1]."""
    x = torch.as_tensor(images)
    return x.movedim(-1, -3).float().div_(127.5).sub_(1.0).contiguous()


def render_batch(factors: Sequence[Factors], size: int) -> Tensor:
    """Faces of ``factors`` rendered at ``size`` px: float32 [N, 3, S, S] in [-1, 1]."""
    return to_tensor(np.stack([render(f, size) for f in factors]))


def transfer_pairs(seed: int, ids: Sequence[int], ref_ids: Sequence[int], components: Sequence[str],
                   size: int, faces: Optional["SynthFacesDataset"] = None) -> tuple[Tensor, Tensor, Tensor]:
    """Counterfactual transfer pairs: (targets, references, truths), each float32 [N, 3, S, S];
    truth k is face ``ids[k]`` with the factors of component ``components[k]`` taken from face
    ``ref_ids[k]`` (data set ``seed``). ``faces``, a data set of the same seed and size, supplies
    the targets and references from its render cache (the same pixels)."""
    from .factors import transfer
    tgt = [sample_factors(seed, int(i)) for i in ids]
    ref = [sample_factors(seed, int(i)) for i in ref_ids]
    truth = [transfer(t, r, c) for t, r, c in zip(tgt, ref, components)]
    if faces is not None and (faces.seed, faces.size) == (int(seed), int(size)):
        originals = [to_tensor(np.stack([faces.image(int(i)) for i in group])) for group in (ids, ref_ids)]
    else:
        originals = [render_batch(tgt, size), render_batch(ref, size)]
    return originals[0], originals[1], render_batch(truth, size)


def label_matrix(factors: Sequence[Factors]) -> np.ndarray:
    """Attribute labels of ``factors``: bool [N, len(ATTRIBUTES)]."""
    return np.stack([attribute_vector(f) > 0.5 for f in factors])


def split_ranges(num_train: int, num_val: int, num_test: int) -> dict[str, range]:
    """Disjoint, contiguous face-index ranges: train, then val, then test."""
    for name, n in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if int(n) < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")
    a, b = int(num_train), int(num_train) + int(num_val)
    return {"train": range(0, a), "val": range(a, b), "test": range(b, b + int(num_test))}


class SynthFacesDataset(Dataset):
    """Procedural faces rendered on the fly.

    Item ``i`` of a split is face index ``ranges[split][i]`` (train ids first, then val, then test,
    the same layout as the export command). Items are dicts::

        {"image": float32 [3, S, S] in [-1, 1], "mask": float32 [1, S, S] of ones,
         "attrs": float32 [len(ATTRIBUTES)] of 0/1, "index": int (global face id), "name": str(id)}

    ``transform(sample) -> sample`` is applied last when given. ``cache=True`` keeps rendered
    images (uint8) and attributes in memory (per process).
    """

    attribute_names = ATTRIBUTES

    def __init__(self, size: int = 64, split: str = "train", seed: int = 0,
                 num_train: int = DEFAULT_SPLITS["num_train"], num_val: int = DEFAULT_SPLITS["num_val"],
                 num_test: int = DEFAULT_SPLITS["num_test"], cache: bool = False,
                 transform: Optional[Callable[[dict], dict]] = None):
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}'; choose from {', '.join(SPLITS)}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.size = check_size(size)
        self.split = split
        self.seed = int(seed)
        self.ids = split_ranges(num_train, num_val, num_test)[split]
        self.cache = bool(cache)
        self.transform = transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def face_id(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {self.split} split of length {len(self)}")
        return self.ids[i]

    def factors(self, i: int) -> Factors:
        """Ground-truth factors of item ``i``."""
        return sample_factors(self.seed, self.face_id(i))

    def image(self, fid: int) -> np.ndarray:
        """Face ``fid`` (a global id, of any split) as rendered for this data set: uint8 [S, S, 3]."""
        return self._render(int(fid))[0]

    def _render(self, fid: int) -> tuple[np.ndarray, np.ndarray]:
        if fid in self._cache:
            return self._cache[fid]
        f = sample_factors(self.seed, fid)
        out = (render(f, self.size), attribute_vector(f))
        if self.cache:
            self._cache[fid] = out
        return out

    def __getitem__(self, i: int) -> dict:
        fid = self.face_id(int(i))
        img, attrs = self._render(fid)
        sample = {
            "image": to_tensor(img),
            "mask": torch.ones(1, self.size, self.size),
            "attrs": torch.from_numpy(attrs.copy()),
            "index": fid,
            "name": str(fid),
        }
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

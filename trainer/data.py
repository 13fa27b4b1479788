"""Training data plumbing with stateless randomness, so that resuming is exact.

The shuffling order of epoch e is a function of (seed, e); the flip and hole mask of sample i in
epoch e are functions of (seed, e, i). Nothing depends on worker count or on the global RNG.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from data_loader.augment import augment_decisions, train_augment


class AugmentedDataset(Dataset):
    """Wraps a dataset; ``ds[(index, epoch)]`` applies the training flip and hole mask.

    A base data set with ``flip_before_resize`` (the real-image data sets) mirrors the decoded
    image before resizing it, as the official loaders; others (SynthFaces tensors) are mirrored at
    the model size. ``mask_width``/``mask_canvas``: see :mod:`data_loader.masks`."""

    def __init__(self, base: Dataset, seed: int, flip_p: float, mask_p: float,
                 mask_width: int = 16, mask_canvas: Optional[int] = None):
        self.base, self.seed, self.flip_p, self.mask_p = base, seed, flip_p, mask_p
        self.mask_width, self.mask_canvas = mask_width, mask_canvas
        root = base.dataset if isinstance(base, Subset) else base
        self._load = root.load if getattr(root, "flip_before_resize", False) else None
        self._indices = base.indices if isinstance(base, Subset) else None

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key):
        index, epoch = key
        rng = np.random.default_rng([self.seed, epoch, index])
        decisions = augment_decisions(rng, self.flip_p, self.mask_p)
        if self._load is not None:
            root_index = self._indices[index] if self._indices is not None else index
            sample = self._load(root_index, flip=decisions[0])
        else:
            sample = self.base[index]
        return _strip(train_augment(sample, rng, self.flip_p, self.mask_p, mask_width=self.mask_width,
                                    mask_canvas=self.mask_canvas, decisions=decisions,
                                    image_flipped=self._load is not None))


class PlainDataset(Dataset):
    """Validation view: no augmentation, mask of ones."""

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index):
        return _strip(self.base[index])


def _strip(sample: dict) -> dict:
    return {"image": sample["image"], "mask": sample["mask"], "index": int(sample["index"])}


class EpochBatchSampler(Sampler):
    """Batches of ``(index, epoch)`` for one epoch and one rank, starting at batch ``start``.

    The permutation of epoch e comes from ``seed`` and e; rank r takes every world-th element;
    incomplete batches are dropped so every rank runs the same number of steps."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1, start: int = 0):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.shuffle, self.rank, self.world_size, self.start = shuffle, rank, world_size, start

    @staticmethod
    def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
        return (n // world_size) // batch_size

    def __len__(self) -> int:
        return self.steps_per_epoch(self.n, self.batch_size, self.world_size) - self.start

    def __iter__(self) -> Iterator[list]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        mine = order[self.rank::self.world_size]
        steps = self.steps_per_epoch(self.n, self.batch_size, self.world_size)
        for b in range(self.start, steps):
            yield [(i, self.epoch) for i in mine[b * self.batch_size:(b + 1) * self.batch_size]]


class IterationBatches(Sampler):
    """Keys of whole batches, ``(sample keys, iteration)``, for one epoch from batch ``start`` on;
    ``set_epoch`` moves it to another epoch, so that one loader (and its workers) serves a whole run."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.steps = EpochBatchSampler.steps_per_epoch(n, batch_size, world_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[tuple[list, int]]:
        batches = EpochBatchSampler(self.n, self.batch_size, self.seed, self.epoch, self.shuffle, self.rank,
                                    self.world_size, self.start)
        for b, keys in enumerate(batches, start=self.start):
            yield keys, self.epoch * self.steps + b


class TrainingBatches(Dataset):
    """``ds[(sample keys, iteration)]``: the collated batch of those samples, its ``iteration`` and,
    with ``extras``, ``extras(iteration)`` (data of the iteration that the loss would otherwise make
    inside the step, such as SynthFaces' swap pairs). A loader worker thus makes all of an
    iteration's data while the step before it runs; every item is a function of its key alone."""

    def __init__(self, items: Dataset, extras: Optional[Callable[[int], object]] = None):
        self.items, self.extras = items, extras

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key) -> dict:
        keys, iteration = key
        batch = default_collate([self.items[k] for k in keys])
        batch["iteration"] = int(iteration)
        if self.extras is not None:
            batch["extras"] = self.extras(int(iteration))
        return batch


def _worker_init(_):
    torch.set_num_threads(1)


def training_loader(dataset: AugmentedDataset, batch_size: int, seed: int, shuffle: bool, rank: int,
                    world_size: int, num_workers: int, pin_memory: bool,
                    extras: Optional[Callable[[int], object]] = None) -> DataLoader:
    """One loader for a whole run (its ``sampler`` is an :class:`IterationBatches`; call
    ``loader.sampler.set_epoch(epoch, start)`` before each epoch). Workers persist across epochs, so
    a data set's render cache fills once, and they prefetch the next iterations' data."""
    sampler = IterationBatches(len(dataset), batch_size, seed, shuffle, rank, world_size)
    return DataLoader(TrainingBatches(dataset, extras), batch_size=None, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, worker_init_fn=_worker_init if num_workers else None,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(seed))


def limit(dataset: Dataset, n: int) -> Dataset:
    """The first ``n`` items (all when n <= 0 or n >= len)."""
    if n is None or n <= 0 or n >= len(dataset):
        return dataset
    return Subset(dataset, range(n))

"""Typed dataset configuration and an explicit registry of dataset types.

A config block ``{"type": "CelebAHQDataset", "args": {...}}`` is checked against the dataclass of
its type (unknown, missing or mistyped args fail with a ConfigError that lists the valid ones) and
built for a split with :func:`build_dataset`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional, Union

from model.config import ConfigError

from .image_datasets import OVERLAP_MODES, SPLITS, parse_image_size

ImageSize = Union[int, list]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", _is_int),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "Optional[str]": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "Optional[int]": ("an integer or null", lambda v: v is None or _is_int(v)),
    "Optional[bool]": ("true, false or null", lambda v: v is None or isinstance(v, bool)),
    "ImageSize": ("an integer or [S, S]", lambda v: _is_int(v) or (
        isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(x) for x in v))),
}


def _check_fields(obj, where: str) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        what, ok = _CHECKS[f.type if isinstance(f.type, str) else f.type.__name__]
        if not ok(value):
            raise ConfigError(f"{where}.{f.name} must be {what}, got {value!r}")


@dataclass
class CelebAHQArgs:
    """Args of ``CelebAHQDataset`` (official: data_dir, image_dir, image_size)."""
    data_dir: str
    image_dir: str
    image_size: ImageSize
    train_overlap: str = "exclude"
    num_samples: int = -1
    attr_file: Optional[str] = None

    def __post_init__(self):
        _check_fields(self, "data_set.args")
        parse_image_size(self.image_size)
        if self.train_overlap not in OVERLAP_MODES:
            raise ConfigError(f"data_set.args.train_overlap must be one of {', '.join(OVERLAP_MODES)}, "
                              f"got {self.train_overlap!r}")


@dataclass
class FFHQArgs(CelebAHQArgs):
    """Args of ``FFHQDataset`` (same as CelebAHQDataset)."""


@dataclass
class ImageFolderArgs:
    """Args of ``ImageFolderDataset``."""
    image_dir: str
    image_size: ImageSize
    val_fraction: float = 0.1
    num_samples: int = -1

    def __post_init__(self):
        _check_fields(self, "data_set.args")
        parse_image_size(self.image_size)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data_set.args.val_fraction must be in [0, 1), got {self.val_fraction!r}")


@dataclass
class SynthFacesArgs:
    """Args of the embedded ``SynthFaces`` data; unset (null) values take the dataset's defaults."""
    size: Optional[int] = None
    seed: Optional[int] = None
    num_train: Optional[int] = None
    num_val: Optional[int] = None
    num_test: Optional[int] = None
    cache: Optional[bool] = None

    def __post_init__(self):
        _check_fields(self, "data_set.args")


def _build_celebahq(args: CelebAHQArgs, split: str):
    from .image_datasets import CelebAHQDataset
    return CelebAHQDataset(split=split, **dataclasses.asdict(args))


def _build_ffhq(args: FFHQArgs, split: str):
    from .image_datasets import FFHQDataset
    return FFHQDataset(split=split, **dataclasses.asdict(args))


def _build_folder(args: ImageFolderArgs, split: str):
    from .image_datasets import ImageFolderDataset
    return ImageFolderDataset(split=split, **dataclasses.asdict(args))


def _build_synthfaces(args: SynthFacesArgs, split: str):
    from data_loader.synthfaces import SynthFacesDataset
    kwargs = {k: v for k, v in dataclasses.asdict(args).items() if v is not None}
    return SynthFacesDataset(split=split, **kwargs)


# type name -> (dataclass of args, builder(args, split) -> Dataset)
DATASETS: dict[str, tuple[type, Callable[[Any, str], Any]]] = {
    "CelebAHQDataset": (CelebAHQArgs, _build_celebahq),
    "FFHQDataset": (FFHQArgs, _build_ffhq),
    "ImageFolderDataset": (ImageFolderArgs, _build_folder),
    "SynthFaces": (SynthFacesArgs, _build_synthfaces),
}


def parse_dataset_spec(spec: Mapping[str, Any]) -> tuple[str, Any]:
    """Check a ``{"type": ..., "args": {...}}`` block; returns ``(type, typed args)``."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"data_set must be an object with 'type' and 'args', got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"type", "args"})
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in data_set; valid keys: type, args")
    if "type" not in spec:
        raise ConfigError(f"data_set.type is missing; valid types: {', '.join(DATASETS)}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in DATASETS:
        raise ConfigError(f"unknown data_set.type {kind!r}; valid types: {', '.join(DATASETS)}")
    cls, _ = DATASETS[kind]
    args = spec.get("args") or {}
    if not isinstance(args, Mapping):
        raise ConfigError(f"data_set.args must be an object, got {type(args).__name__}")
    valid = [f.name for f in fields(cls)]
    for key in args:
        if key not in valid:
            raise ConfigError(f"unknown arg '{key}' for data_set type {kind}; valid args: {', '.join(valid)}")
    required = [f.name for f in fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in args]
    if missing:
        raise ConfigError(f"missing arg(s) {', '.join(missing)} for data_set type {kind}; "
                          f"required: {', '.join(required)}; valid args: {', '.join(valid)}")
    return kind, cls(**dict(args))


def build_dataset(spec: Mapping[str, Any], split: str):
    """Build the dataset of a config block for ``split`` (train, val or test)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    kind, args = parse_dataset_spec(spec)
    return DATASETS[kind][1](args, split)

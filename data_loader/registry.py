"""Typed dataset configuration and an explicit registry of dataset types.

A config block ``{"type": "CelebAHQDataset", "args": {...}}`` is checked against the dataclass of
its type (unknown, missing or mistyped args fail with a ConfigError that lists the valid ones) and
built for a split with :func:`build_dataset`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from utils.config import build, check_range, check_types, reject_unknown, shown
from utils.errors import ConfigError

from .image_datasets import OVERLAP_MODES, SPLITS, CelebAHQDataset, FFHQDataset, ImageFolderDataset, parse_image_size


#: Bounds checked before anything is allocated: the image size a data set yields (the models
#: reach 1024 px) and the number of SynthFaces faces per split (an epoch's order is a permutation
#: of the training faces).
MAX_IMAGE_SIZE = 4096
MAX_SYNTHFACES = 1_000_000


def _check_image_size(value) -> None:
    check_range("data_set.args.image_size", parse_image_size(value), 1, MAX_IMAGE_SIZE)


def _check_resize(value: str) -> None:
    from utils.image_io import RESIZE_METHODS
    if value not in RESIZE_METHODS:
        raise ConfigError(f"data_set.args.resize must be one of {', '.join(RESIZE_METHODS)} (opencv: OpenCV "
                          f"INTER_LINEAR as the release; antialias: PIL bicubic with antialiasing), got {shown(value)}")


@dataclass
class CelebAHQArgs:
    """Args of ``CelebAHQDataset`` (official: data_dir, image_dir, image_size). ``resize``:
    ``opencv`` (the release's INTER_LINEAR, default) or ``antialias``."""
    data_dir: str
    image_dir: str
    image_size: Union[int, list]
    train_overlap: str = "exclude"
    num_samples: int = -1
    attr_file: Optional[str] = None
    resize: str = "opencv"

    def __post_init__(self):
        check_types(self, "data_set.args")
        _check_image_size(self.image_size)
        _check_resize(self.resize)
        if self.num_samples < -1:
            raise ConfigError(f"data_set.args.num_samples must be an integer >= -1 (-1: all), got {self.num_samples}")
        if self.train_overlap not in OVERLAP_MODES:
            raise ConfigError(f"data_set.args.train_overlap must be one of {', '.join(OVERLAP_MODES)}, "
                              f"got {shown(self.train_overlap)}")


@dataclass
class FFHQArgs(CelebAHQArgs):
    """Args of ``FFHQDataset`` (same as CelebAHQDataset)."""


@dataclass
class ImageFolderArgs:
    """Args of ``ImageFolderDataset``."""
    image_dir: str
    image_size: Union[int, list]
    val_fraction: float = 0.1
    num_samples: int = -1
    resize: str = "opencv"

    def __post_init__(self):
        check_types(self, "data_set.args")
        _check_image_size(self.image_size)
        _check_resize(self.resize)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data_set.args.val_fraction must be in [0, 1), got {shown(self.val_fraction)}")


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
        check_types(self, "data_set.args")
        from data_loader.synthfaces.render import MAX_SIZE, MIN_SIZE
        if self.size is not None and not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ConfigError(f"data_set.args.size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], got {self.size}")
        if self.seed is not None and self.seed < 0:
            raise ConfigError(f"data_set.args.seed must be an integer >= 0, got {self.seed}")
        for name in ("num_train", "num_val", "num_test"):
            check_range(f"data_set.args.{name}", getattr(self, name), 0, MAX_SYNTHFACES, optional=True)


def _build_celebahq(args: CelebAHQArgs, split: str):
    return CelebAHQDataset(split=split, **dataclasses.asdict(args))


def _build_ffhq(args: FFHQArgs, split: str):
    return FFHQDataset(split=split, **dataclasses.asdict(args))


def _build_folder(args: ImageFolderArgs, split: str):
    return ImageFolderDataset(split=split, **dataclasses.asdict(args))


def _build_synthfaces(args: SynthFacesArgs, split: str):
    # Looked up at call time (not at import): the SynthFaces package can be swapped in sys.modules.
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


@dataclass(frozen=True)
class DatasetSpec:
    """A checked ``data_set`` block: the type name, its typed args, and the args as written (what
    :meth:`to_dict` gives back). Unpacks as ``(type, args)``."""
    type: str
    args: Any
    given: dict = field(default_factory=dict, compare=False, repr=False)

    def __iter__(self) -> Iterator:
        return iter((self.type, self.args))

    def __getitem__(self, i: int):
        return tuple(self)[i]

    def to_dict(self) -> dict:
        """The block as written (JSON)."""
        return {"type": self.type, "args": dict(self.given)}


def parse_dataset_spec(spec: Mapping[str, Any]) -> DatasetSpec:
    """Check a ``{"type": ..., "args": {...}}`` block; returns ``(type, typed args)``."""
    if isinstance(spec, DatasetSpec):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"data_set must be an object with 'type' and 'args', got {type(spec).__name__}")
    reject_unknown(spec, ("type", "args"), "data_set")
    if "type" not in spec:
        raise ConfigError(f"data_set.type is missing; valid types: {', '.join(DATASETS)}")
    kind = spec["type"]
    if not isinstance(kind, str) or kind not in DATASETS:
        raise ConfigError(f"unknown data_set.type {shown(kind)}; valid types: {', '.join(DATASETS)}")
    args = spec.get("args") or {}
    return DatasetSpec(kind, build(DATASETS[kind][0], args, f"data_set.args (type {kind})"), dict(args))


def build_dataset(spec: Union[DatasetSpec, Mapping[str, Any]], split: str):
    """Build the dataset of a config block (raw or checked) for ``split`` (train, val or test)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    kind, args = parse_dataset_spec(spec)
    return DATASETS[kind][1](args, split)


def synthfaces_setting(args: SynthFacesArgs, name: str):
    """One SynthFaces argument as the data set uses it: the config's value, or the data set's
    default when the config leaves it unset."""
    value = getattr(args, name)
    if value is not None:
        return value
    import inspect
    from data_loader.synthfaces import SynthFacesDataset
    return inspect.signature(SynthFacesDataset).parameters[name].default


def dataset_image_size(spec: DatasetSpec) -> Optional[int]:
    """The image size a data set block yields (SynthFaces: its size or the data set's default)."""
    args = spec.args
    if spec.type == "SynthFaces":
        return synthfaces_setting(args, "size")
    size = getattr(args, "image_size", None)
    return None if size is None else parse_image_size(size)

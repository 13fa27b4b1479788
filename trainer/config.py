"""Typed training configuration, read from the official-style JSON (one dataclass per block).

Unknown keys and wrong types fail on load with a message that lists the valid keys.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from data_loader.registry import DatasetSpec, parse_dataset_spec
from model.boxes import ComponentError, component_indices
from model.config import BOUNDARY_RECIPES, ModelConfig, build_model_config
from utils.config import build
from utils.errors import ConfigError


# ------------------------------------------------------------------------------ value ranges
#: What :meth:`trainer.iafaces_trainer.IAFacesTrainer.validate` reports: the metrics ``monitor`` may name.
VALIDATION_METRICS = ("avg_mse", "psnr")
MAX_CONFIG_DEPTH = 32


def check_range(where: str, value, lo=None, hi=None, lo_open: bool = False, optional: bool = False) -> None:
    """ConfigError naming ``where`` and the allowed range unless ``value`` is a finite number in
    it (``lo_open``: ``> lo`` instead of ``>= lo``; ``optional``: null allowed)."""
    if value is None and optional:
        return
    parts = [f"{'>' if lo_open else '>='} {lo:g}" if lo is not None else "", f"<= {hi:g}" if hi is not None else ""]
    rng = " and ".join(p for p in parts if p) or "finite"
    kind = "an integer" if isinstance(value, int) and not isinstance(value, float) else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo is None or (value > lo if lo_open else value >= lo)) and (hi is None or value <= hi)
    if not ok:
        raise ConfigError(f"{where} must be {kind} {rng}{' or null' if optional else ''}, got {value!r}")


def check_plain_name(value, where: str) -> str:
    """ConfigError unless ``value`` is a plain folder name: no path separators, not ``.``/``..``,
    no control characters, at most 128 characters."""
    if (not isinstance(value, str) or value in ("", ".", "..") or len(value) > 128
            or any(c in value for c in "/\\:") or any(ord(c) < 32 for c in value)):
        raise ConfigError(f"{where} must be a plain folder name (no '/', '\\', ':', not '.' or '..', at most 128 "
                          f"characters), got {value!r}")
    return value


def check_depth(data, where: str, limit: int = MAX_CONFIG_DEPTH) -> None:
    """ConfigError when JSON data nests deeper than ``limit`` levels (iterative: no recursion)."""
    stack = [(data, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise ConfigError(f"{where} nests deeper than {limit} levels; a training config is flat")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)


@dataclass
class Spec:
    """A ``{"type": ..., "args": {...}}`` block."""
    type: str
    args: dict = field(default_factory=dict)


@dataclass
class DataLoaderConfig:
    batch_size: int = 4
    shuffle: bool = True
    num_workers: int = 2
    num_samples: int = -1
    num_val_samples: int = 2000
    flip_p: float = 0.5
    # Hole masks (data_loader.masks): probability, maximum stroke width / radius in px and the
    # canvas they are drawn on; null takes the data set's official default (CelebA-HQ 0.5 / 16,
    # FFHQ 0.7 / 70, drawn at the model size; SynthFaces and sizes below 64 px: 0.5 / 16 on a
    # 256-px canvas reduced to the model size).
    mask_p: Optional[float] = None
    mask_width: Optional[int] = None
    mask_size: Optional[int] = None

    def __post_init__(self):
        check_range("data_loader.batch_size", self.batch_size, 1)
        check_range("data_loader.num_workers", self.num_workers, 0, 256)
        check_range("data_loader.num_samples", self.num_samples, -1)
        check_range("data_loader.num_val_samples", self.num_val_samples, -1)
        check_range("data_loader.flip_p", self.flip_p, 0, 1)
        check_range("data_loader.mask_p", self.mask_p, 0, 1, optional=True)
        check_range("data_loader.mask_width", self.mask_width, 1, optional=True)
        check_range("data_loader.mask_size", self.mask_size, 1, optional=True)


@dataclass
class LossConfig:
    g_loss_weight: float = 1.0
    p_loss_weight: float = 1.0
    d_loss_weight: float = 1.0
    l1_loss_weight: float = 1.0
    d_reg_every: int = 16
    r1: float = 10.0
    # The adversarial terms (and the D step) start after this many iterations (0: from the start).
    gan_start: int = 0
    # Extra L1 inside the component boxes (mean over the boxes' pixels), so that the few pixels a
    # component covers weigh enough to make the decoder read its embedding (0: off, as the release).
    box_l1_weight: float = 0.0
    # SynthFaces only: L1 between the decoded face of a target whose component embedding was
    # swapped with a reference's and the rendered counterfactual (0: off, as the release; the
    # release's data sets have no counterfactuals). ``swap_pairs`` pairs per iteration.
    swap_weight: float = 0.0
    swap_pairs: int = 8
    # What one pair swaps, drawn uniformly per pair: component selections (``eyes`` swaps both eyes
    # at once, as the eyes transfer does).
    swap_components: list = field(default_factory=lambda: ["l_eye", "r_eye", "nose", "mouth"])
    # The same L1 taken inside the swapped component's box only (mean over the box's pixels): the
    # whole-image mean gives the box, where the swap shows, a few per cent of the swap loss.
    swap_box_weight: float = 0.0
    # LPIPS backbone: "pretrained" (torchvision VGG16 weights, local file required) or "random"
    # (tests only). ``lpips_vgg_weights`` points to a local vgg16 state_dict file.
    lpips_backbone: str = "pretrained"
    lpips_vgg_weights: Optional[str] = None

    def __post_init__(self):
        if self.lpips_backbone not in ("pretrained", "random"):
            raise ConfigError("loss.lpips_backbone must be 'pretrained' or 'random'")
        if self.d_reg_every < 1:
            raise ConfigError("loss.d_reg_every must be >= 1")
        for name in ("g_loss_weight", "p_loss_weight", "d_loss_weight", "l1_loss_weight", "r1", "box_l1_weight",
                     "swap_weight", "swap_box_weight"):
            check_range(f"loss.{name}", getattr(self, name), 0)
        if self.swap_box_weight > 0 and self.swap_weight == 0:
            raise ConfigError("loss.swap_box_weight needs the swap pairs: set loss.swap_weight > 0 too (or "
                              "swap_box_weight 0)")
        check_range("loss.swap_pairs", self.swap_pairs, 1, 1024)
        if not self.swap_components:
            raise ConfigError("loss.swap_components must name at least one component selection")
        for spec in self.swap_components:
            if not isinstance(spec, str):
                raise ConfigError(f"loss.swap_components entries must be strings, got {spec!r}")
            try:
                component_indices(spec)
            except ComponentError as e:
                raise ConfigError(f"loss.swap_components: {e}") from None


@dataclass
class OptimizerConfig:
    """Adam with the release's betas ``(beta1, 0.99)``; ``beta1`` 0 is the release's (no momentum)."""
    lr: float = 0.002
    beta1: float = 0.0

    def __post_init__(self):
        check_range("lr", self.lr, 0, lo_open=True)  # parse_config prefixes the block name
        check_range("beta1", self.beta1, 0, 0.999)


@dataclass
class TrainerConfig:
    epochs: int = 200
    iters: Optional[int] = None
    update_ckpt: int = 2000
    save_dir: str = "saved"
    save_period: int = 20
    val_period: int = 1
    log_period: int = 100
    vis_period: int = 2000
    vis_img_num: int = 8
    verbosity: int = 2
    tensorboard: bool = True
    monitor: str = "min avg_mse"
    ema_half_life_kimg: float = 10.0
    # "ignore": the official trainer never creates the schedulers its configs list (constant lr);
    # "apply": step each listed scheduler once per epoch.
    lr_schedulers: str = "apply"
    amp: str = "none"
    # channels-last memory for the networks and batches (faster convolutions with bf16 on CPU and GPU).
    channels_last: bool = False
    # Noise of the EMA generator in validation: "default" (the model's training default, as the
    # release: the noise buffers for IA-FaceS-256, random noise for CAM-256, the 1024-px models and
    # the scalable architectures; random noise is drawn per validation image from the seed, so it
    # is the same at every epoch and for any number of processes), "const" or "random".
    val_noise: str = "default"

    def __post_init__(self):
        if self.lr_schedulers not in ("ignore", "apply"):
            raise ConfigError("trainer.lr_schedulers must be 'ignore' or 'apply'")
        if self.val_noise not in ("default", "const", "random"):
            raise ConfigError("trainer.val_noise must be 'default', 'const' or 'random'")
        if self.amp not in ("none", "bf16"):
            raise ConfigError("trainer.amp must be 'none' or 'bf16'")
        if self.monitor not in ("off",) and (len(self.monitor.split()) != 2 or
                                             self.monitor.split()[0] not in ("min", "max")):
            raise ConfigError("trainer.monitor must look like 'min avg_mse' or be 'off'")
        if self.monitor != "off" and self.monitor.split()[1] not in VALIDATION_METRICS:
            raise ConfigError(f"trainer.monitor names the unknown metric '{self.monitor.split()[1]}'; validation "
                              f"reports {', '.join(VALIDATION_METRICS)}")
        check_range("trainer.epochs", self.epochs, 1)
        check_range("trainer.iters", self.iters, 0, optional=True)
        for name in ("update_ckpt", "save_period", "val_period", "vis_period", "vis_img_num"):
            check_range(f"trainer.{name}", getattr(self, name), 0)
        check_range("trainer.log_period", self.log_period, 1)
        check_range("trainer.verbosity", self.verbosity, 0, 2)
        check_range("trainer.ema_half_life_kimg", self.ema_half_life_kimg, 0, lo_open=True)
        if not self.save_dir:
            raise ConfigError("trainer.save_dir must be a folder path, got an empty string")


SCHEDULERS = ("ExponentialLR",)


@dataclass
class EditingConfig:
    """How the editing tools treat this run's checkpoints by default: ``boundary_recipe`` (one of
    ``model.config.BOUNDARY_RECIPES``; ``release`` as the official code)."""
    boundary_recipe: str = "release"

    def __post_init__(self):
        if self.boundary_recipe not in BOUNDARY_RECIPES:
            raise ConfigError(f"editing.boundary_recipe '{self.boundary_recipe}' unknown; valid: "
                              f"{', '.join(BOUNDARY_RECIPES)}")


@dataclass
class TrainConfig:
    seed: int
    exp_id: str
    model_arch: str
    encoder: Spec
    generator: Spec
    discriminator: Spec
    data_set: DatasetSpec
    data_name: str = "custom"
    data_loader: DataLoaderConfig = field(default_factory=DataLoaderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer_G: OptimizerConfig = field(default_factory=OptimizerConfig)
    optimizer_D: OptimizerConfig = field(default_factory=OptimizerConfig)
    lr_scheduler_G: Optional[Spec] = None
    lr_scheduler_D: Optional[Spec] = None
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    editing: EditingConfig = field(default_factory=EditingConfig)
    description: str = ""

    def __post_init__(self):
        check_plain_name(self.exp_id, "exp_id")
        check_range("seed", self.seed, 0, 2 ** 32 - 1)

    def model_config(self) -> ModelConfig:
        for spec, name in ((self.encoder, "Encoder"), (self.generator, "Generator"),
                           (self.discriminator, "Discriminator")):
            if spec.type != name:
                raise ConfigError(f"{name.lower()}.type must be '{name}', got '{spec.type}'")
        return build_model_config(self.model_arch, self.encoder.args, self.generator.args,
                                  self.discriminator.args)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data_set"] = self.data_set.to_dict()
        return d


_BLOCKS = {
    "encoder": Spec, "generator": Spec, "discriminator": Spec,
    "data_loader": DataLoaderConfig, "loss": LossConfig, "optimizer_G": OptimizerConfig,
    "optimizer_D": OptimizerConfig, "lr_scheduler_G": Spec, "lr_scheduler_D": Spec,
    "trainer": TrainerConfig, "editing": EditingConfig,
}


def parse_config(data: dict, where: str = "config") -> TrainConfig:
    """Validate a JSON config dict into a TrainConfig: every block, the data set included, and the
    model it builds."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a JSON object")
    check_depth(data, where)
    kwargs = dict(data)
    for key, value in data.items():
        if key in _BLOCKS and value is not None:
            try:
                kwargs[key] = build(_BLOCKS[key], value, key)
            except ConfigError as e:
                if key.startswith("optimizer_") and str(e).startswith("lr "):
                    raise ConfigError(f"{key}.{e}") from None
                raise
    if "data_set" in data:
        kwargs["data_set"] = parse_dataset_spec(data["data_set"])
    cfg = build(TrainConfig, kwargs, where)
    for key in ("lr_scheduler_G", "lr_scheduler_D"):
        spec = getattr(cfg, key)
        if spec is not None and spec.type not in SCHEDULERS:
            raise ConfigError(f"{where}: {key}.type '{spec.type}' unknown; valid: {', '.join(SCHEDULERS)}")
    if cfg.loss.swap_weight > 0 and cfg.data_set.type != "SynthFaces":
        raise ConfigError(f"{where}: loss.swap_weight needs the SynthFaces data set (it renders the counterfactual "
                          f"faces), not {cfg.data_set.type}; set it to 0")
    size = cfg.model_config().encoder.size  # fails early on bad model arguments
    data_size = dataset_image_size(cfg.data_set)
    if data_size is not None and data_size != size:
        key = "size" if cfg.data_set.type == "SynthFaces" else "image_size"
        raise ConfigError(f"{where}: data_set.args.{key} is {data_size} but the model is {size} px; they must be "
                          "equal")
    return cfg


def dataset_image_size(spec: DatasetSpec) -> Optional[int]:
    """The image size a data set block yields (SynthFaces: its size or the data set's default)."""
    args = spec.args
    if spec.type == "SynthFaces":
        if args.size is not None:
            return args.size
        import inspect
        from data_loader.synthfaces import SynthFacesDataset
        return inspect.signature(SynthFacesDataset).parameters["size"].default
    size = getattr(args, "image_size", None)
    if size is None:
        return None
    from data_loader.image_datasets import parse_image_size
    return parse_image_size(size)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a JSON training config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests deeper than {MAX_CONFIG_DEPTH} levels; a training config is flat") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as e:
        raise ConfigError(f"cannot read config {path}: {e.__class__.__name__}") from None
    return parse_config(data, str(path))

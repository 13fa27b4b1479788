"""Typed training configuration, read from the official-style JSON (one dataclass per block).

Unknown keys and wrong types fail on load with a message that lists the valid keys.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from data_loader.registry import DatasetSpec, parse_dataset_spec
from model.config import ModelConfig, build_model_config
from utils.config import build
from utils.errors import ConfigError


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
    # LPIPS backbone: "pretrained" (torchvision VGG16 weights, local file required) or "random"
    # (tests only). ``lpips_vgg_weights`` points to a local vgg16 state_dict file.
    lpips_backbone: str = "pretrained"
    lpips_vgg_weights: Optional[str] = None

    def __post_init__(self):
        if self.lpips_backbone not in ("pretrained", "random"):
            raise ConfigError("loss.lpips_backbone must be 'pretrained' or 'random'")
        if self.d_reg_every < 1:
            raise ConfigError("loss.d_reg_every must be >= 1")


@dataclass
class OptimizerConfig:
    lr: float = 0.002


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


SCHEDULERS = ("ExponentialLR",)


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
    description: str = ""

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
    "trainer": TrainerConfig,
}


def parse_config(data: dict, where: str = "config") -> TrainConfig:
    """Validate a JSON config dict into a TrainConfig: every block, the data set included, and the
    model it builds."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a JSON object")
    kwargs = dict(data)
    for key, value in data.items():
        if key in _BLOCKS and value is not None:
            kwargs[key] = build(_BLOCKS[key], value, key)
    if "data_set" in data:
        kwargs["data_set"] = parse_dataset_spec(data["data_set"])
    cfg = build(TrainConfig, kwargs, where)
    for key in ("lr_scheduler_G", "lr_scheduler_D"):
        spec = getattr(cfg, key)
        if spec is not None and spec.type not in SCHEDULERS:
            raise ConfigError(f"{where}: {key}.type '{spec.type}' unknown; valid: {', '.join(SCHEDULERS)}")
    cfg.model_config()  # fail early on bad model arguments
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a JSON training config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    return parse_config(data, str(path))

"""Typed training configuration, read from the official-style JSON (one dataclass per block).

Unknown keys and wrong types fail on load with a message that lists the valid keys.

A config in the release's own form (its JSON files, the config inside a released checkpoint;
recognised by :func:`model.variants.legacy.is_release_config`) trains as the release does:
:func:`release_to_project` maps it, the same for ``-c`` and ``-r``, and each mapping is one of the
config's ``notes`` (``train.py`` prints them as ``notice:`` lines). A config in the project's form
keeps the defaults for new work.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from data_loader.image_datasets import OUTPUT_NAMES
from data_loader.masks import DATASET_MASKS, MIN_WIDTH, OFFICIAL_MIN_SIZE, mask_settings
from data_loader.registry import DatasetSpec, dataset_image_size, parse_dataset_spec
from model.config import BOUNDARY_RECIPES, ModelConfig, build_model_config
from model.variants.legacy import RELEASE_LAUNCHER_KEYS, is_release_config, upgrade_network_args
from utils.config import build, check_range, reject_unknown, resolve_base, shown
from utils.errors import ConfigError

from .losses import LossConfig
from .registry import loss_class, loss_type


# ------------------------------------------------------------------------------ value ranges
#: What :meth:`trainer.iafaces_trainer.IAFacesTrainer.validate` reports: the metrics ``monitor`` may name.
VALIDATION_METRICS = ("avg_mse", "psnr")
MAX_CONFIG_DEPTH = 32
#: Upper bounds checked before anything is allocated: the batch size per process, the hole-mask
#: canvas (px), the learning rate (Adam steps of more than 1 per update only diverge) and the
#: length of the free-text ``description`` (copied into every checkpoint).
MAX_BATCH_SIZE = 4096
MAX_MASK_SIZE = 4096
MAX_LR = 1.0
MAX_DESCRIPTION = 2000


def check_plain_name(value, where: str) -> str:
    """ConfigError unless ``value`` is a plain folder name: no path separators, not ``.``/``..``,
    no control characters, at most 128 characters."""
    if (not isinstance(value, str) or value in ("", ".", "..") or len(value) > 128
            or any(c in value for c in "/\\:") or any(ord(c) < 32 for c in value)):
        raise ConfigError(f"{where} must be a plain folder name (no '/', '\\', ':', not '.' or '..', at most 128 "
                          f"characters), got {shown(value)}")
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
        check_range("data_loader.batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_range("data_loader.num_workers", self.num_workers, 0, 256)
        check_range("data_loader.num_samples", self.num_samples, -1)
        check_range("data_loader.num_val_samples", self.num_val_samples, -1)
        check_range("data_loader.flip_p", self.flip_p, 0, 1)
        check_range("data_loader.mask_p", self.mask_p, 0, 1, optional=True)
        # mask_width is bounded by the canvas in parse_config (the canvas depends on the data set).
        check_range("data_loader.mask_width", self.mask_width, MIN_WIDTH, MAX_MASK_SIZE, optional=True)
        check_range("data_loader.mask_size", self.mask_size, OFFICIAL_MIN_SIZE, MAX_MASK_SIZE, optional=True)


@dataclass
class OptimizerConfig:
    """Adam with the release's betas ``(beta1, 0.99)``; ``beta1`` 0 is the release's (no momentum)."""
    lr: float = 0.002
    beta1: float = 0.0

    def __post_init__(self):
        check_range("lr", self.lr, 0, MAX_LR, lo_open=True)  # parse_config prefixes the block name
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
            raise ConfigError(f"trainer.monitor names the unknown metric {shown(self.monitor.split()[1])}; validation "
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


#: Learning-rate schedulers a config may list -> their arguments (all required).
SCHEDULER_ARGS = {"ExponentialLR": ("gamma",), "LinearDecay": ("start",)}
SCHEDULERS = tuple(SCHEDULER_ARGS)


def check_scheduler(key: str, spec: "Spec") -> None:
    """ConfigError unless ``spec`` is a known scheduler with exactly its arguments, each in range:
    ExponentialLR's ``gamma`` (the factor on the learning rate after every epoch) in (0, 1];
    LinearDecay's ``start`` (the fraction of the run's iterations after which the rate falls
    linearly, to 0 after the last iteration; the project's, not the release's) in [0, 1]."""
    if spec.type not in SCHEDULER_ARGS:
        raise ConfigError(f"{key}.type {shown(spec.type)} unknown; valid: {', '.join(SCHEDULERS)}")
    valid = SCHEDULER_ARGS[spec.type]
    reject_unknown(spec.args, valid, f"{key}.args ({spec.type})")
    missing = [k for k in valid if k not in spec.args]
    if missing:
        example = {"ExponentialLR": '"gamma": 0.99', "LinearDecay": '"start": 0.5'}[spec.type]
        raise ConfigError(f"{key}.args lacks {', '.join(missing)}; {spec.type} takes {', '.join(valid)} "
                          f"(e.g. {example})")
    if spec.type == "ExponentialLR":
        check_range(f"{key}.args.gamma", spec.args["gamma"], 0.0, 1.0, lo_open=True)
    else:
        check_range(f"{key}.args.start", spec.args["start"], 0.0, 1.0)


@dataclass
class EditingConfig:
    """How the editing tools treat this run's checkpoints by default: ``boundary_recipe`` (one of
    ``model.config.BOUNDARY_RECIPES``; ``release`` as the official code) and ``output_names``
    (``data_loader.image_datasets.OUTPUT_NAMES``: ``stem``, the input's stem; ``release``, an
    all-digit stem without leading zeros as the release's scripts write it)."""
    boundary_recipe: str = "release"
    output_names: str = "stem"

    def __post_init__(self):
        if self.boundary_recipe not in BOUNDARY_RECIPES:
            raise ConfigError(f"editing.boundary_recipe {shown(self.boundary_recipe)} unknown; valid: "
                              f"{', '.join(BOUNDARY_RECIPES)}")
        if self.output_names not in OUTPUT_NAMES:
            raise ConfigError(f"editing.output_names {shown(self.output_names)} unknown; valid: "
                              f"{', '.join(OUTPUT_NAMES)}")


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
        if len(self.description) > MAX_DESCRIPTION:
            raise ConfigError(f"description is {len(self.description)} characters long; at most {MAX_DESCRIPTION} "
                              "are allowed (it is copied into every checkpoint): shorten it")

    def model_config(self) -> ModelConfig:
        return build_model_config(self.model_arch, self.encoder.args, self.generator.args, self.discriminator.args,
                                  types={"encoder": self.encoder.type, "generator": self.generator.type,
                                         "discriminator": self.discriminator.type})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["data_set"] = self.data_set.to_dict()
        inert = self.loss.inert_keys()
        d["loss"] = {"type": loss_type(self.loss),
                     "args": {k: v for k, v in dataclasses.asdict(self.loss).items() if k not in inert}}
        if not self.loss.adversarial:  # no discriminator: its optimizer settings mean nothing
            d.pop("optimizer_D")
            d.pop("lr_scheduler_D")
        return d


NETWORK_BLOCKS = ("encoder", "generator", "discriminator")
_BLOCKS = {
    "encoder": Spec, "generator": Spec, "discriminator": Spec,
    "data_loader": DataLoaderConfig, "optimizer_G": OptimizerConfig,
    "optimizer_D": OptimizerConfig, "lr_scheduler_G": Spec, "lr_scheduler_D": Spec,
    "trainer": TrainerConfig, "editing": EditingConfig,
}


#: Loss keys of the counterfactual loss that the release's loss does not have.
COUNTERFACTUAL_KEYS = ("gan_start", "box_l1_weight", "swap_weight", "swap_pairs", "swap_components", "swap_box_weight")


def parse_loss(raw, notes: list) -> LossConfig:
    """The loss block: ``{"type", "args"}`` (a registered loss; an argument the loss ignores is an
    error) or the flat form of the release's configs, which is also the form the project's own
    configs had before losses had types: flat keys of the counterfactual loss select it (said in
    ``notes``); keys without effect are accepted there, as they always were."""
    if not isinstance(raw, dict):
        raise ConfigError(f"loss must be a JSON object, got {type(raw).__name__}")
    if "type" in raw:
        reject_unknown(raw, ("type", "args"), "loss")
        given = raw.get("args", {})
        cfg = build(loss_class(raw["type"]).config_class, given, "loss")
        inert = cfg.inert_keys()
        for key in given:
            if key in inert:
                raise ConfigError(f"loss.{key} has no effect for {raw['type']}: {inert[key]}; remove it")
        return cfg
    flat = dict(raw)
    name = "CounterfactualLoss" if any(k in flat for k in COUNTERFACTUAL_KEYS) else "IAFacesLoss"
    cfg = build(loss_class(name).config_class, flat, "loss")
    if name != "IAFacesLoss":
        notes.append(f"the flat loss block with {', '.join(k for k in COUNTERFACTUAL_KEYS if k in flat)} is "
                     f"read as \"type\": \"{name}\"")
    return cfg


#: ``data_name`` of a release config -> the project's data set type (the release has one class,
#: ``CelebAHQDataset``, in a loader module per data set: the module, picked by ``data_name``,
#: decides the hole masks).
RELEASE_DATA_SETS = {"celebahq": "CelebAHQDataset", "ffhq": "FFHQDataset"}


def release_to_project(data: dict) -> tuple[dict, list[str]]:
    """A training config in the release's form (JSON dict) mapped to the project's, as the release
    trains, and one note per mapping: launcher entries dropped; the listed LR schedulers not
    applied (``trainer.lr_schedulers`` ``ignore``: the release never creates them); the training
    list kept whole (``data_set.args.train_overlap`` ``official``); the data set of ``data_name``
    (``ffhq``: ``FFHQDataset``), whose hole masks the data set decides (CelebA-HQ p 0.5 / width
    16, FFHQ p 0.7 / width 70); the editing tools' output names as the release's
    (``editing.output_names`` ``release``). What the config sets already is kept."""
    out = {k: copy.deepcopy(v) for k, v in data.items() if k not in RELEASE_LAUNCHER_KEYS}
    notes = []
    launcher = [k for k in data if k in RELEASE_LAUNCHER_KEYS]
    if launcher:
        notes.append(f"dropped the release's launcher entries {', '.join(launcher)}")
    trainer = out.setdefault("trainer", {})
    listed = [k for k in ("lr_scheduler_G", "lr_scheduler_D") if out.get(k) is not None]
    if isinstance(trainer, dict) and "lr_schedulers" not in trainer:
        trainer["lr_schedulers"] = "ignore"
        if listed:
            notes.append(f"{' and '.join(listed)} are listed but the release never creates them: "
                         "trainer.lr_schedulers \"ignore\" (constant learning rate)")
    ds = out.get("data_set")
    if isinstance(ds, dict) and ds.get("type") == "CelebAHQDataset" and out.get("data_name") in RELEASE_DATA_SETS:
        kind = RELEASE_DATA_SETS[out["data_name"]]
        if kind != ds["type"]:
            ds["type"] = kind
            notes.append(f"data_name {out['data_name']}: data_set.type CelebAHQDataset is read as {kind} (the release "
                         "picks its loader by data_name)")
        dl = out.get("data_loader")
        if not (isinstance(dl, dict) and ("mask_p" in dl or "mask_width" in dl)):
            p, width = DATASET_MASKS[kind]
            notes.append(f"hole masks of {kind}: p {p:g}, width {width}, as the release's {out['data_name']} loader")
    if isinstance(ds, dict) and ds.get("type") in RELEASE_DATA_SETS.values():
        args = ds.setdefault("args", {})
        if isinstance(args, dict) and "train_overlap" not in args:
            args["train_overlap"] = "official"
            notes.append("the release trains on its whole train.txt: data_set.args.train_overlap \"official\" keeps "
                         "the ids that val.txt or test.txt also list (for CelebA-HQ, 700 validation ids)")
    editing = out.setdefault("editing", {})
    if isinstance(editing, dict) and "output_names" not in editing:
        editing["output_names"] = "release"
        notes.append("the editing scripts name this run's outputs as the release: editing.output_names \"release\" "
                     "(00123.png -> 123.png)")
    return out, notes


def parse_config(data: dict, where: str = "config") -> TrainConfig:
    """Validate a JSON config dict into a TrainConfig: every block, the data set included, and the
    model it builds. A config in the release's form is mapped first (:func:`release_to_project`).
    What was mapped or read in an older form is listed in the config's ``notes``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a JSON object")
    check_depth(data, where)
    notes: list[str] = []
    if is_release_config(data):
        data, notes = release_to_project(data)
        notes.insert(0, "the config is in the release's own form (none of the project's keys), so it trains as the "
                        "release does; a project key (e.g. \"description\") makes it a project config with the "
                        "defaults for new work")
    kwargs = dict(data)
    for key, value in data.items():
        if key in _BLOCKS and value is not None:
            try:
                kwargs[key] = build(_BLOCKS[key], value, key)
            except ConfigError as e:
                if key.startswith("optimizer_") and str(e).startswith(("lr ", "beta1 ")):
                    raise ConfigError(f"{key}.{e}") from None
                raise
    if data.get("loss") is not None:
        kwargs["loss"] = parse_loss(data["loss"], notes)
    if "data_set" in data:
        kwargs["data_set"] = parse_dataset_spec(data["data_set"])
    cfg = build(TrainConfig, kwargs, where)
    for key in ("lr_scheduler_G", "lr_scheduler_D"):
        spec = getattr(cfg, key)
        if spec is not None:
            try:
                check_scheduler(key, spec)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
    try:
        cfg.loss.check_with(cfg)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    typed_loss = isinstance(data.get("loss"), dict) and "type" in data["loss"]
    if typed_loss and not cfg.loss.adversarial:
        for key in ("optimizer_D", "lr_scheduler_D"):
            if data.get(key) is not None:
                raise ConfigError(f"{where}: {key} has no effect: the loss has no adversarial term (g_loss_weight 0), "
                                  "so no discriminator is built; remove it")
    types, args, upgraded = upgrade_network_args(cfg.model_arch, {p: getattr(cfg, p).type for p in NETWORK_BLOCKS},
                                                 {p: dict(getattr(cfg, p).args) for p in NETWORK_BLOCKS})
    for p in NETWORK_BLOCKS:
        setattr(cfg, p, Spec(types[p], args[p]))
    notes += upgraded
    cfg.notes = notes
    size = cfg.model_config().encoder.size  # fails early on bad model arguments
    data_size = dataset_image_size(cfg.data_set)
    if data_size is not None and data_size != size:
        key = "size" if cfg.data_set.type == "SynthFaces" else "image_size"
        raise ConfigError(f"{where}: data_set.args.{key} is {data_size} but the model is {size} px; they must be "
                          "equal")
    check_masks(cfg, size, where)
    return cfg


def check_masks(cfg: TrainConfig, size: int, where: str = "config") -> None:
    """The hole-mask settings resolved for the data set and the model size (``data_loader.masks``),
    checked before anything is drawn: the stroke width at most the canvas it is drawn on."""
    dl = cfg.data_loader
    try:
        masks = mask_settings(cfg.data_set.type, size, dl.mask_p, dl.mask_width, dl.mask_size)
    except ValueError as e:
        raise ConfigError(f"{where}: data_loader: {e}") from None
    canvas = masks.canvas_for(size)
    if masks.width > canvas:
        raise ConfigError(f"{where}: data_loader.mask_width must be an integer >= {MIN_WIDTH} and <= {canvas} (the "
                          f"{canvas}-px canvas the masks are drawn on), got {masks.width}")


class _DuplicateKey(Exception):
    pass


def _unique_object(pairs: list) -> dict:
    """``object_pairs_hook`` of :func:`read_json`: a JSON object, refusing a key given twice
    (plain ``json`` keeps the last one silently)."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def read_json(path: Path) -> dict:
    """One JSON config file, with a one-line ConfigError for what cannot be read (a key given
    twice in one object included)."""
    try:
        return json.loads(Path(path).read_text(), object_pairs_hook=_unique_object)
    except _DuplicateKey as e:
        raise ConfigError(f"{path}: the key {shown(e.args[0])} is given twice in one object; keep one") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(f"{path} nests deeper than {MAX_CONFIG_DEPTH} levels; a training config is flat") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as e:
        raise ConfigError(f"cannot read config {path}: {e.__class__.__name__}") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise ConfigError(f"{path} is not valid JSON: {str(e).splitlines()[0][:200]}") from None


def read_config_data(path: str | Path) -> dict:
    """A JSON training config file as one dict, its ``"base"`` chain resolved (see
    :func:`utils.config.resolve_base`), not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return resolve_base(read_json(path), path.parent, read_json, (path.resolve(),))


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a JSON training config file (its ``"base"`` chain resolved)."""
    return parse_config(read_config_data(path), str(path))

"""Typed configuration of the release's networks, one dataclass per network, checked on
construction, and the model configuration that names which class builds each network.

Architectures are named presets (``ARCHITECTURES``): the four official ones and three scalable
families (``iafaces``, ``iafaces_cam`` and ``one_code``) whose every field can be set from a JSON
config. A network block's ``"type"`` picks its class from the registry (``model.registry``): the
release's ``Encoder`` / ``Generator`` / ``Discriminator`` or one of the project's variants
(``model.variants``), each with its own config dataclass.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from utils.config import build, check_range, check_types, reject_unknown, shown
from utils.errors import ConfigError

from .boxes import COMPONENTS, check_boxes_nonempty

CAM_PLACEMENTS = ("official", "aligned")
NOISE_MODES = ("const", "random")
# Attribute-boundary recipes (fitted by editing/boundaries/); a training config names the one its
# checkpoints edit with by default (``editing.boundary_recipe``; the release's SVM unless set).
BOUNDARY_RECIPES = ("release", "standardized", "mean", "conditional")


def _is_pow2(n: int) -> bool:
    return isinstance(n, int) and n > 0 and (n & (n - 1)) == 0


#: The widest layer a config may ask for (channels, content channels, component dimensions):
#: checked before any weight is allocated. The official models use at most 512.
MAX_CHANNELS = 4096


def check_widths(where: str, obj, names) -> None:
    """ConfigError naming the key and the range unless every field ``names`` of ``obj`` is an
    integer in [1, MAX_CHANNELS] (null passes for optional fields)."""
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            check_range(f"{where}.{name}", value, 1, MAX_CHANNELS)


def check_channel_base(where: str, base: int, top: int) -> None:
    """``channel_base`` at least ``top``: at least one channel at the finest resolution ``top``
    (channels are ``min(channel_max, channel_base // r)``, so ``channel_max`` bounds them above)."""
    check_range(f"{where}.channel_base", base, top)


@dataclass
class EncoderTrunkConfig:
    """What every encoder shares: a downsampling residual trunk from the image (``size``) to
    ``feat_size`` (first width ``channel``, doubling per block up to ``channel_max``), and the
    shapes it hands to the generator: content ``[content_channels, feat_size/2, feat_size/2]`` and
    component embeddings ``[4, comp_dim]``."""
    size: int = 256
    channel: int = 32
    channel_max: int = 512
    feat_size: int = 16
    content_channels: int = 512
    comp_dim: int = 256

    def __post_init__(self):
        check_types(self, "encoder")
        if not _is_pow2(self.size) or not 32 <= self.size <= 1024:
            raise ConfigError(f"encoder.size must be a power of two in [32, 1024], got {self.size}")
        if not _is_pow2(self.feat_size) or self.feat_size > self.size // 2:
            raise ConfigError(
                f"encoder.feat_size must be a power of two at most size/2, got {self.feat_size}")
        try:
            check_boxes_nonempty(self.feat_size)
        except ValueError as e:
            raise ConfigError(f"encoder.feat_size={self.feat_size}: {e}") from None
        check_widths("encoder", self, ("channel", "channel_max", "content_channels", "comp_dim"))

    @property
    def content_size(self) -> int:
        return self.feat_size // 2

    def trunk_channels(self) -> list[int]:
        """Channel widths of the trunk: stem output, then one entry per downsampling block."""
        n_down = (self.size // self.feat_size).bit_length() - 1
        return [min(self.channel * 2 ** i, self.channel_max) for i in range(n_down + 1)]

    def inert_keys(self) -> dict[str, str]:
        """Fields that have no effect given the others -> why (a config that sets one is refused)."""
        return {}


@dataclass
class EncoderConfig(EncoderTrunkConfig):
    """The release's encoder: the trunk, a content head (one more downsampling block), and the
    component embeddings cropped at the ``feat_size`` boxes of the trunk's feature map, optionally
    after a component head block (``component_channels``) that sees the unmasked image (the
    official 1024-px design)."""
    component_channels: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        if self.component_channels is not None and self.component_channels <= 0:
            raise ConfigError("encoder.component_channels must be positive or null")
        check_widths("encoder", self, ("component_channels",))


@dataclass
class GeneratorConfig:
    """Generator: synthesis from the content tensor, modulated by the flattened components.

    Channels at resolution r are ``min(channel_max, channel_base // r)``; a block producing
    resolution r uses the channels of ``r >> channel_shift`` (the official 256-px model has
    shift 1, the 1024-px model 0). ``cam`` adds component adaptive modulation inside every
    synthesis conv; ``cam_modulated`` keeps the style modulation of those convs (official
    CAM-1024) or drops it (official CAM-256). ``cam_placement``: ``aligned`` boxes at each conv's
    input resolution, or ``official`` (CAM-256 release: after the first upsampling conv, boxes of
    half the input resolution). On grids below 8x8 a box can be empty (the mouth at 4x4); such
    a layer carries no CAM for that component."""
    size: int = 256
    content_size: int = 8
    content_channels: int = 512
    comp_dim: int = 256
    n_components: int = 4
    channel_base: int = 32768
    channel_max: int = 512
    channel_shift: int = 0
    cam: bool = False
    cam_modulated: bool = True
    cam_placement: str = "aligned"
    train_noise: str = "random"

    def __post_init__(self):
        check_types(self, "generator")
        if not _is_pow2(self.size) or not 32 <= self.size <= 1024:
            raise ConfigError(f"generator.size must be a power of two in [32, 1024], got {self.size}")
        if not _is_pow2(self.content_size) or self.content_size >= self.size:
            raise ConfigError("generator.content_size must be a power of two below size")
        if self.n_components != len(COMPONENTS):
            raise ConfigError(f"generator.n_components must be {len(COMPONENTS)}")
        if self.cam_placement not in CAM_PLACEMENTS:
            raise ConfigError(f"generator.cam_placement must be one of {CAM_PLACEMENTS}, got "
                              f"{shown(self.cam_placement)}")
        if self.train_noise not in NOISE_MODES:
            raise ConfigError(f"generator.train_noise must be one of {NOISE_MODES}")
        if self.channel_shift not in (0, 1):
            raise ConfigError("generator.channel_shift must be 0 or 1")
        check_widths("generator", self, ("content_channels", "comp_dim", "channel_max"))
        check_channel_base("generator", self.channel_base, self.size >> self.channel_shift)

    def inert_keys(self) -> dict[str, str]:
        if self.cam:
            return {}
        why = "it sets the component adaptive modulation, which is off (cam false)"
        return {"cam_modulated": why, "cam_placement": why}

    @property
    def style_dim(self) -> int:
        return self.comp_dim * self.n_components

    def channels(self, res: int) -> int:
        return min(self.channel_max, self.channel_base // max(res >> self.channel_shift, 1))

    @property
    def resolutions(self) -> list[int]:
        """Output resolution of each upsampling block."""
        out, r = [], self.content_size * 2
        while r <= self.size:
            out.append(r)
            r *= 2
        return out

    @property
    def num_noises(self) -> int:
        return 2 * len(self.resolutions) + 1


@dataclass
class DiscriminatorConfig:
    """Residual StyleGAN2 discriminator without minibatch-stddev; channels at resolution r are
    ``min(channel_max, channel_base // r)``."""
    size: int = 256
    channel_base: int = 16384
    channel_max: int = 512

    def __post_init__(self):
        check_types(self, "discriminator")
        if not _is_pow2(self.size) or not 8 <= self.size <= 1024:
            raise ConfigError(f"discriminator.size must be a power of two in [8, 1024], got {self.size}")
        check_widths("discriminator", self, ("channel_max",))
        check_channel_base("discriminator", self.channel_base, self.size)

    def channels(self, res: int) -> int:
        return min(self.channel_max, self.channel_base // res)

    def inert_keys(self) -> dict[str, str]:
        return {}


NETWORKS = ("encoder", "generator", "discriminator")
#: The release's class of each network (the default ``"type"``).
RELEASE_TYPES = {"encoder": "Encoder", "generator": "Generator", "discriminator": "Discriminator"}


@dataclass
class ModelConfig:
    """A complete IA-FaceS model: the architecture name, and per network its class name
    (``types``, a key of ``model.registry``) and that class's config."""
    arch: str
    encoder: EncoderTrunkConfig
    generator: GeneratorConfig
    discriminator: DiscriminatorConfig
    types: dict = dataclasses.field(default_factory=lambda: dict(RELEASE_TYPES))

    def __post_init__(self):
        from .registry import config_class
        self.types = {**RELEASE_TYPES, **self.types}
        for part in NETWORKS:
            want = config_class(part, self.types.get(part, RELEASE_TYPES[part]))
            if type(getattr(self, part)) is not want:
                raise ConfigError(f"{part} type '{self.types[part]}' takes {want.__name__}, got "
                                  f"{type(getattr(self, part)).__name__}")
        e, g = self.encoder, self.generator
        if e.size != g.size or g.size != self.discriminator.size:
            raise ConfigError(f"encoder, generator and discriminator sizes differ "
                              f"({e.size}, {g.size}, {self.discriminator.size})")
        if e.content_size != g.content_size:
            raise ConfigError(f"encoder content size {e.content_size} (feat_size/2) != generator "
                              f"content_size {g.content_size}")
        if e.content_channels != g.content_channels or e.comp_dim != g.comp_dim:
            raise ConfigError("encoder and generator disagree on content_channels or comp_dim")

    @property
    def is_release(self) -> bool:
        """True when every network is the release's class."""
        return all(self.types[p] == RELEASE_TYPES[p] for p in NETWORKS)

    def to_dict(self) -> dict:
        """``{"arch", "encoder": {"type", "args"}, "generator": ..., "discriminator": ...}``."""
        return {"arch": self.arch, **{p: {"type": self.types[p], "args": dataclasses.asdict(getattr(self, p))}
                                      for p in NETWORKS}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of ``to_dict`` (full field dicts; unknown keys rejected). The flat form that
        checkpoints written before the variants had their own classes hold is upgraded first
        (``model.variants.legacy``)."""
        from .registry import config_class
        from .variants.legacy import upgrade_model_dict

        reject_unknown(data, ("arch",) + NETWORKS, "model config")
        data = upgrade_model_dict(data)
        types, parts = {}, {}
        for part in NETWORKS:
            block = data.get(part) or {"type": RELEASE_TYPES[part], "args": {}}
            reject_unknown(block, ("type", "args"), f"model config {part}")
            types[part] = block.get("type", RELEASE_TYPES[part])
            parts[part] = build(config_class(part, types[part]), block.get("args", {}), part)
        return cls(arch=data["arch"], types=types, **parts)


# ---------------------------------------------------------------------------------------------
# Architectures

def _official(size: int, cam: bool) -> ModelConfig:
    if size == 256:
        enc = EncoderConfig(size=256, channel=32, channel_max=512, feat_size=16)
        gen = GeneratorConfig(size=256, content_size=8, channel_shift=1, cam=cam,
                              cam_modulated=False, cam_placement="official",
                              train_noise="random" if cam else "const")
    else:
        enc = EncoderConfig(size=1024, channel=16, channel_max=256, feat_size=32,
                            component_channels=128)
        gen = GeneratorConfig(size=1024, content_size=16, channel_shift=0, cam=cam,
                              cam_modulated=True, cam_placement="aligned", train_noise="random")
    arch = f"iafaces{'_cam' if cam else ''}_{size}"
    return ModelConfig(arch=arch, encoder=enc, generator=gen, discriminator=DiscriminatorConfig(size=size))


def _scaled(cam: bool, size: int = 64) -> ModelConfig:
    """Defaults of the scalable families: a small model with the official geometry."""
    return ModelConfig(
        arch="iafaces_cam" if cam else "iafaces",
        encoder=EncoderConfig(size=size, channel=32, channel_max=256, feat_size=8,
                              content_channels=256, comp_dim=128),
        generator=GeneratorConfig(size=size, content_size=4, content_channels=256, comp_dim=128,
                                  channel_base=4096, channel_max=256, cam=cam,
                                  cam_placement="aligned"),
        discriminator=DiscriminatorConfig(size=size, channel_base=4096, channel_max=256),
    )


#: name -> (factory of the defaults, is_official, default encoder type). Official architectures
#: are fixed and use the release's classes; scalable ones take overrides and any registered type.
ARCHITECTURES = {
    "iafaces_256": (lambda: _official(256, cam=False), True, "Encoder"),
    "iafaces_cam_256": (lambda: _official(256, cam=True), True, "Encoder"),
    "iafaces_1024": (lambda: _official(1024, cam=False), True, "Encoder"),
    "iafaces_cam_1024": (lambda: _official(1024, cam=True), True, "Encoder"),
    "iafaces": (lambda: _scaled(cam=False), False, "Encoder"),
    "iafaces_cam": (lambda: _scaled(cam=True), False, "Encoder"),
    # Ablation: one global code and a learned constant content (model.variants.one_code).
    "one_code": (lambda: _scaled(cam=False), False, "OneCodeEncoder"),
}


def is_official_arch(arch: str) -> bool:
    return arch in ARCHITECTURES and ARCHITECTURES[arch][1]


# Official JSON argument names -> our field names.
ENCODER_ALIASES = {"img_size": "size", "feats_dim": "comp_dim"}
GENERATOR_ALIASES = {"img_size": "size"}
_ALIASES = {"encoder": ENCODER_ALIASES, "generator": GENERATOR_ALIASES, "discriminator": {}}


def build_model_config(arch: str, encoder: Optional[Mapping] = None, generator: Optional[Mapping] = None,
                       discriminator: Optional[Mapping] = None, types: Optional[Mapping[str, str]] = None,
                       ) -> ModelConfig:
    """Resolve an architecture name, the network types (``types``: network -> registry name; the
    architecture's defaults where absent) and argument overrides into a checked ModelConfig.

    Official architectures take the release's classes and accept their official arguments
    (``img_size``, ``channel``, ``feats_dim``, ``style_dim``, ``size``, ``channel_multiplier``) only
    with the official values, plus ``cam_placement`` for the CAM ones. Scalable architectures
    accept every field of the chosen classes' configs; ``size`` given once for the encoder
    propagates to generator and discriminator unless they set it. An argument the chosen class
    ignores (``inert_keys``) is refused. Arguments in the form used before the variants had
    classes of their own (study options under ``Encoder`` / ``Generator``) are upgraded first
    (``model.variants.legacy``).
    """
    from .registry import config_class
    from .variants.legacy import upgrade_network_args

    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown model_arch '{arch}'; valid: {', '.join(ARCHITECTURES)}")
    factory, official, default_encoder = ARCHITECTURES[arch]
    base = factory()
    given = {"encoder": dict(encoder or {}), "generator": dict(generator or {}),
             "discriminator": dict(discriminator or {})}
    types = {**RELEASE_TYPES, "encoder": default_encoder, **{k: v for k, v in (types or {}).items() if v}}
    reject_unknown(types, NETWORKS, "network types")
    types, given, _ = upgrade_network_args(arch, types, given)
    if official:
        return _official_config(arch, base, types, given)
    # Scalable: start from the defaults; a size given anywhere applies to all three networks.
    e, g, d = given["encoder"], given["generator"], given["discriminator"]
    size = e.get("size", e.get("img_size", g.get("size", g.get("img_size", d.get("size")))))
    parts = {}
    for part in NETWORKS:
        cls = config_class(part, types[part])
        valid = [f.name for f in dataclasses.fields(cls)]
        start = {k: v for k, v in dataclasses.asdict(getattr(base, part)).items() if k in valid}
        if size is not None:
            start["size"] = size
        aliases = _ALIASES[part]
        reject_unknown([k for k in given[part] if aliases.get(k, k) not in valid], valid + sorted(aliases), part)
        args = {**start, **{aliases.get(k, k): v for k, v in given[part].items()}}
        if part == "generator":  # keep the shared geometry consistent unless set explicitly
            if "content_size" not in given["generator"]:
                args["content_size"] = parts["encoder"].content_size
            for key in ("content_channels", "comp_dim"):
                if key not in given["generator"]:
                    args[key] = getattr(parts["encoder"], key)
        parts[part] = build(cls, args, part)
        inert = parts[part].inert_keys()
        for key in given[part]:
            if aliases.get(key, key) in inert:
                raise ConfigError(f"{part}.{key} has no effect for {types[part]}: {inert[aliases.get(key, key)]}; "
                                  "remove it")
    return ModelConfig(arch=arch, types=types, **parts)


def _official_config(arch: str, base: ModelConfig, types: dict, given: dict) -> ModelConfig:
    """An official architecture: the release's classes, only the release's argument values."""
    for part in NETWORKS:
        if types[part] != RELEASE_TYPES[part]:
            raise ConfigError(f"{part}.type must be '{RELEASE_TYPES[part]}' for the official architecture {arch} "
                              f"(the project's variants use the scalable architectures), got '{types[part]}'")
    encoder, generator, discriminator = given["encoder"], given["generator"], given["discriminator"]
    # The official JSON carries redundant arguments; accept them when they agree.
    gen_style = generator.pop("style_dim", base.generator.style_dim)
    if gen_style != base.generator.style_dim:
        raise ConfigError(f"generator.style_dim must be {base.generator.style_dim} for {arch}")
    cm = discriminator.pop("channel_multiplier", 1)
    if cm != 1:
        raise ConfigError(f"discriminator.channel_multiplier must be 1 for {arch}")
    allowed = {"encoder": {"size", "channel", "comp_dim"}, "generator": {"size", "cam_placement", "train_noise"},
               "discriminator": {"size"}}
    merged = {}
    for part in NETWORKS:
        cur = dataclasses.asdict(getattr(base, part))
        for key, value in given[part].items():
            name = _ALIASES[part].get(key, key)
            if name not in allowed[part]:
                raise ConfigError(
                    f"unknown or fixed key '{key}' in {part} of official arch {arch}; "
                    f"settable: {', '.join(sorted(allowed[part]))}")
            if name not in ("cam_placement", "train_noise") and value != cur[name]:
                raise ConfigError(f"{part}.{key} must be {cur[name]} for {arch}, got {value}")
            cur[name] = value
        merged[part] = cur
    if not base.generator.cam and merged["generator"]["cam_placement"] != base.generator.cam_placement:
        raise ConfigError(f"cam_placement applies only to CAM architectures, not {arch}")
    return ModelConfig(arch=arch, encoder=EncoderConfig(**merged["encoder"]),
                       generator=GeneratorConfig(**merged["generator"]),
                       discriminator=DiscriminatorConfig(**merged["discriminator"]))

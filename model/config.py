"""Typed configuration of the networks, one dataclass per network, checked on construction.

Architectures are named presets (``ARCHITECTURES``): the four official ones and three scalable
families (``iafaces``, ``iafaces_cam`` and the ``one_code`` ablation of ``model/one_code.py``) whose
every field can be set from a JSON config.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from utils.config import build, check_types, reject_unknown
from utils.errors import ConfigError

from .boxes import COMPONENTS, check_boxes_nonempty

CAM_PLACEMENTS = ("official", "aligned")
NOISE_MODES = ("const", "random")
CONTENT_INPUTS = ("image", "outside_components", "fill_components")
COMPONENT_INPUTS = ("features", "crops")
RING_FITS = ("mean", "plane")
# Attribute-boundary recipes (fitted by editing/boundaries.py); a training config names the one its
# checkpoints edit with by default (``editing.boundary_recipe``; the release's SVM unless set).
BOUNDARY_RECIPES = ("release", "standardized", "mean", "conditional")


def _is_pow2(n: int) -> bool:
    return isinstance(n, int) and n > 0 and (n & (n - 1)) == 0


@dataclass
class EncoderConfig:
    """Encoder: a downsampling residual trunk to ``feat_size``; a content head (one more
    downsampling block -> ``content_channels`` x feat_size/2); component embeddings cropped at
    the ``feat_size`` boxes, optionally after a component head block (``component_channels``)
    that sees the unmasked image (the official 1024-px design).

    ``component_input``: ``features`` (official: the embeddings are cropped from the trunk's
    feature map, whose cells see far beyond their box) or ``crops`` (each embedding comes from a
    small network that sees only its own image box, resized to ``crop_size`` and taken relative to
    the mean colour of the one-pixel ring around the box, so it carries the component's shape and
    not the skin colour; ``crop_channels`` is its first width).

    ``ring_fit``: what "the ring colour" is for ``fill_components`` and ``crops``: ``mean`` (one
    colour per box) or ``plane`` (a least-squares colour plane through the ring, so a lighting
    gradient across the box goes with the content branch and not into the embedding).
    ``crop_exclusive``: a crop keeps only the pixels no other component box covers (the rest is set
    to the ring colour): where boxes overlap (the nose box's top row lies in the eye boxes, where
    glasses frames pass) the shared pixels describe neither component alone.
    ``ring_exclusive``: the ring colour (either fit) leaves out ring pixels inside another
    component's box: the nose box's ring runs through the eye boxes just where glasses frames
    pass, so with it a nose embedding, taken relative to its ring, reads the glasses."""
    size: int = 256
    channel: int = 32
    channel_max: int = 512
    feat_size: int = 16
    content_channels: int = 512
    comp_dim: int = 256
    component_channels: Optional[int] = None
    content_input: str = "image"
    component_input: str = "features"
    crop_size: int = 16
    crop_channels: int = 32
    ring_fit: str = "mean"
    crop_exclusive: bool = False
    ring_exclusive: bool = False

    def __post_init__(self):
        check_types(self, "encoder")
        if self.ring_fit not in RING_FITS:
            raise ConfigError(f"encoder.ring_fit must be one of {RING_FITS}, got {self.ring_fit!r}")
        if self.content_input not in CONTENT_INPUTS:
            raise ConfigError(f"encoder.content_input must be one of {CONTENT_INPUTS}, got {self.content_input!r}")
        if self.component_input not in COMPONENT_INPUTS:
            raise ConfigError(
                f"encoder.component_input must be one of {COMPONENT_INPUTS}, got {self.component_input!r}")
        if not _is_pow2(self.crop_size) or not 8 <= self.crop_size <= 64:
            raise ConfigError(f"encoder.crop_size must be a power of two in [8, 64], got {self.crop_size}")
        if not _is_pow2(self.size) or not 32 <= self.size <= 1024:
            raise ConfigError(f"encoder.size must be a power of two in [32, 1024], got {self.size}")
        if not _is_pow2(self.feat_size) or self.feat_size > self.size // 2:
            raise ConfigError(
                f"encoder.feat_size must be a power of two at most size/2, got {self.feat_size}")
        try:
            check_boxes_nonempty(self.feat_size)
        except ValueError as e:
            raise ConfigError(f"encoder.feat_size={self.feat_size}: {e}") from None
        for name in ("channel", "channel_max", "content_channels", "comp_dim", "crop_channels"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"encoder.{name} must be positive")

    @property
    def content_size(self) -> int:
        return self.feat_size // 2

    def trunk_channels(self) -> list[int]:
        """Channel widths of the trunk: stem output, then one entry per downsampling block."""
        n_down = (self.size // self.feat_size).bit_length() - 1
        return [min(self.channel * 2 ** i, self.channel_max) for i in range(n_down + 1)]


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
    a layer carries no CAM for that component. ``component_paint`` (0: off, the release) is a
    resolution at which each component embedding is also decoded by a linear layer into a feature
    patch added inside its box, a direct spatial path from an embedding to its component."""
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
    component_paint: int = 0

    def __post_init__(self):
        check_types(self, "generator")
        if self.component_paint and self.component_paint not in [self.content_size, *self.resolutions]:
            raise ConfigError(f"generator.component_paint must be 0 (off) or one of the synthesis resolutions "
                              f"{[self.content_size, *self.resolutions]}, got {self.component_paint}")
        if not _is_pow2(self.size) or not 32 <= self.size <= 1024:
            raise ConfigError(f"generator.size must be a power of two in [32, 1024], got {self.size}")
        if not _is_pow2(self.content_size) or self.content_size >= self.size:
            raise ConfigError("generator.content_size must be a power of two below size")
        if self.n_components != len(COMPONENTS):
            raise ConfigError(f"generator.n_components must be {len(COMPONENTS)}")
        if self.cam_placement not in CAM_PLACEMENTS:
            raise ConfigError(f"generator.cam_placement must be one of {CAM_PLACEMENTS}, got "
                              f"{self.cam_placement!r}")
        if self.train_noise not in NOISE_MODES:
            raise ConfigError(f"generator.train_noise must be one of {NOISE_MODES}")
        if self.channel_shift not in (0, 1):
            raise ConfigError("generator.channel_shift must be 0 or 1")

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

    def channels(self, res: int) -> int:
        return min(self.channel_max, self.channel_base // res)


@dataclass
class ModelConfig:
    """A complete IA-FaceS model: architecture name plus the three network configs."""
    arch: str
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self):
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
    def is_cam(self) -> bool:
        return self.generator.cam

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "encoder": dataclasses.asdict(self.encoder),
            "generator": dataclasses.asdict(self.generator),
            "discriminator": dataclasses.asdict(self.discriminator),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of ``to_dict`` (full field dicts; unknown keys rejected)."""
        reject_unknown(data, ("arch", "encoder", "generator", "discriminator"), "model config")
        return cls(
            arch=data["arch"],
            encoder=build(EncoderConfig, data.get("encoder", {}), "encoder"),
            generator=build(GeneratorConfig, data.get("generator", {}), "generator"),
            discriminator=build(DiscriminatorConfig, data.get("discriminator", {}), "discriminator"),
        )


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


def _scaled(cam: bool, size: int = 64, arch: Optional[str] = None) -> ModelConfig:
    """Defaults of the scalable families: a small model with the official geometry."""
    return ModelConfig(
        arch=arch or ("iafaces_cam" if cam else "iafaces"),
        encoder=EncoderConfig(size=size, channel=32, channel_max=256, feat_size=8,
                              content_channels=256, comp_dim=128),
        generator=GeneratorConfig(size=size, content_size=4, content_channels=256, comp_dim=128,
                                  channel_base=4096, channel_max=256, cam=cam,
                                  cam_placement="aligned"),
        discriminator=DiscriminatorConfig(size=size, channel_base=4096, channel_max=256),
    )


# name -> (factory, is_official). Official architectures are fixed; scalable ones take overrides.
ARCHITECTURES = {
    "iafaces_256": (lambda: _official(256, cam=False), True),
    "iafaces_cam_256": (lambda: _official(256, cam=True), True),
    "iafaces_1024": (lambda: _official(1024, cam=False), True),
    "iafaces_cam_1024": (lambda: _official(1024, cam=True), True),
    "iafaces": (lambda: _scaled(cam=False), False),
    "iafaces_cam": (lambda: _scaled(cam=True), False),
    # Ablation: one global code and a learned constant content tensor (model/one_code.py); the
    # encoder config keeps its meaning for the trunk, the generator is unchanged.
    "one_code": (lambda: _scaled(cam=False, arch="one_code"), False),
}

#: Architectures whose encoder is ``model.one_code.OneCodeEncoder`` instead of ``Encoder``.
ONE_CODE_ARCHITECTURES = frozenset({"one_code"})

# Official JSON argument names -> our field names.
ENCODER_ALIASES = {"img_size": "size", "feats_dim": "comp_dim"}
GENERATOR_ALIASES = {"img_size": "size"}


def build_model_config(arch: str, encoder: Optional[Mapping] = None, generator: Optional[Mapping] = None,
                       discriminator: Optional[Mapping] = None) -> ModelConfig:
    """Resolve an architecture name plus argument overrides into a checked ModelConfig.

    Official architectures accept their official arguments (``img_size``, ``channel``,
    ``feats_dim``, ``style_dim``, ``size``, ``channel_multiplier``) only with the official values,
    plus ``cam_placement`` for the CAM ones. Scalable architectures accept any field; ``size``
    given once for the encoder propagates to generator and discriminator unless they set it.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown model_arch '{arch}'; valid: {', '.join(ARCHITECTURES)}")
    factory, official = ARCHITECTURES[arch]
    base = factory()
    encoder, generator, discriminator = dict(encoder or {}), dict(generator or {}), dict(discriminator or {})
    if official:
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
        for part, overrides, aliases in (("encoder", encoder, ENCODER_ALIASES),
                                         ("generator", generator, GENERATOR_ALIASES),
                                         ("discriminator", discriminator, {})):
            cur = dataclasses.asdict(getattr(base, part))
            for key, value in overrides.items():
                name = aliases.get(key, key)
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
    # Scalable: start from the defaults; a size given anywhere applies to all three networks.
    size = encoder.get("size", encoder.get("img_size", generator.get("size", generator.get(
        "img_size", discriminator.get("size")))))
    e = dataclasses.asdict(base.encoder)
    g = dataclasses.asdict(base.generator)
    d = dataclasses.asdict(base.discriminator)
    if size is not None:
        e["size"] = g["size"] = d["size"] = size
    for target, overrides, aliases, cls, where in (
            (e, encoder, ENCODER_ALIASES, EncoderConfig, "encoder"),
            (g, generator, GENERATOR_ALIASES, GeneratorConfig, "generator"),
            (d, discriminator, {}, DiscriminatorConfig, "discriminator")):
        valid = [f.name for f in dataclasses.fields(cls)]
        reject_unknown([k for k in overrides if aliases.get(k, k) not in valid], valid + sorted(aliases), where)
        for key, value in overrides.items():
            target[aliases.get(key, key)] = value
    # Keep the shared geometry consistent unless set explicitly.
    if "content_size" not in generator:
        g["content_size"] = e["feat_size"] // 2
    for key in ("content_channels", "comp_dim"):
        if key not in generator:
            g[key] = e[key]
    return ModelConfig(arch=arch, encoder=EncoderConfig(**e), generator=GeneratorConfig(**g),
                       discriminator=DiscriminatorConfig(**d))

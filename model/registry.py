"""The registry of network classes: a config block's ``"type"`` names one (pytorch-template's
``{"type", "args"}``), and with it the config dataclass its ``args`` fill."""
from __future__ import annotations

from typing import NamedTuple

from utils.errors import ConfigError

from .config import DiscriminatorConfig, EncoderConfig, GeneratorConfig
from .networks import Discriminator, Encoder, Generator
from .variants import (BoxEncoder, BoxEncoderConfig, OneCodeEncoder, OneCodeEncoderConfig, PaintingGenerator,
                       PaintingGeneratorConfig)


class Entry(NamedTuple):
    network: type
    config: type


REGISTRY = {
    "encoder": {
        "Encoder": Entry(Encoder, EncoderConfig),
        "BoxEncoder": Entry(BoxEncoder, BoxEncoderConfig),
        "OneCodeEncoder": Entry(OneCodeEncoder, OneCodeEncoderConfig),
    },
    "generator": {
        "Generator": Entry(Generator, GeneratorConfig),
        "PaintingGenerator": Entry(PaintingGenerator, PaintingGeneratorConfig),
    },
    "discriminator": {
        "Discriminator": Entry(Discriminator, DiscriminatorConfig),
    },
}


def lookup(network: str, name: str) -> Entry:
    """The registered class of ``network`` (encoder, generator, discriminator) named ``name``."""
    table = REGISTRY[network]
    if name not in table:
        raise ConfigError(f"{network}.type '{name}' unknown; valid: {', '.join(table)}")
    return table[name]


def config_class(network: str, name: str) -> type:
    return lookup(network, name).config


def build_network(network: str, name: str, cfg):
    return lookup(network, name).network(cfg)

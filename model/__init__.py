"""IA-FaceS networks, configurations and checkpoint conversion."""
from .boxes import COMPONENTS, COMPONENT_GROUPS, boxes_at
from .config import (ARCHITECTURES, ONE_CODE_ARCHITECTURES, ConfigError, DiscriminatorConfig, EncoderConfig,
                     GeneratorConfig, ModelConfig, build_model_config)
from .networks import Discriminator, Encoder, Generator
from .one_code import OneCodeEncoder


def build_networks(cfg: ModelConfig, discriminator: bool = True):
    """Instantiate (encoder, generator, discriminator or None) from a ModelConfig (the ``one_code``
    ablation gets :class:`model.one_code.OneCodeEncoder`)."""
    if cfg.arch in ONE_CODE_ARCHITECTURES:
        encoder = OneCodeEncoder(cfg.encoder)
    else:
        encoder = Encoder(cfg.encoder)
    return (encoder, Generator(cfg.generator),
            Discriminator(cfg.discriminator) if discriminator else None)


__all__ = ["ARCHITECTURES", "COMPONENTS", "COMPONENT_GROUPS", "ConfigError", "Discriminator",
           "DiscriminatorConfig", "Encoder", "EncoderConfig", "Generator", "GeneratorConfig",
           "ModelConfig", "boxes_at", "build_model_config", "build_networks"]

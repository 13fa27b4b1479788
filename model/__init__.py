"""IA-FaceS networks, configurations and checkpoint conversion."""
from .boxes import COMPONENTS, COMPONENT_GROUPS, boxes_at
from .config import (ARCHITECTURES, ConfigError, DiscriminatorConfig, EncoderConfig, GeneratorConfig, ModelConfig,
                     build_model_config)
from .networks import Discriminator, Encoder, Generator
from .registry import build_network


def build_networks(cfg: ModelConfig, discriminator: bool = True):
    """Instantiate (encoder, generator, discriminator or None) from a ModelConfig, each network
    the class its type names (``model.registry``)."""
    return (build_network("encoder", cfg.types["encoder"], cfg.encoder),
            build_network("generator", cfg.types["generator"], cfg.generator),
            build_network("discriminator", cfg.types["discriminator"], cfg.discriminator) if discriminator else None)


__all__ = ["ARCHITECTURES", "COMPONENTS", "COMPONENT_GROUPS", "ConfigError", "Discriminator",
           "DiscriminatorConfig", "Encoder", "EncoderConfig", "Generator", "GeneratorConfig",
           "ModelConfig", "boxes_at", "build_model_config", "build_networks"]

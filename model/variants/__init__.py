"""The project's own network variants (docs/study.md), beside the release's classes in
``model.networks``: each a class of its own with its own config dataclass, chosen by a network
block's ``"type"`` (``model.registry``).

- ``BoxEncoder`` (``box_encoder``): boxes kept out of the content branch, embeddings from crops.
- ``PaintingGenerator`` (``painting_generator``): embeddings also painted into their boxes.
- ``OneCodeEncoder`` (``one_code``): the one-code ablation.
"""
from .box_encoder import BoxEncoder, BoxEncoderConfig
from .one_code import OneCodeEncoder, OneCodeEncoderConfig
from .painting_generator import PaintingGenerator, PaintingGeneratorConfig

__all__ = ["BoxEncoder", "BoxEncoderConfig", "OneCodeEncoder", "OneCodeEncoderConfig", "PaintingGenerator",
           "PaintingGeneratorConfig"]

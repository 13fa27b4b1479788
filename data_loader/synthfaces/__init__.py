"""SynthFaces: an embedded, procedural data set of aligned cartoon faces with ground truth.

Public API::

    sample_factors(seed, index) -> Factors
    render(factors, size, omit=()) -> uint8 [size, size, 3]
    attributes(factors) -> dict[str, bool];  attribute_vector(factors) -> float32 [n_attr]
    flip_attribute(factors, name, target) -> Factors
    transfer(target, reference, components) -> Factors
    SynthFacesDataset(size=64, split="train", seed=0, ...)   (torch Dataset, imported lazily)
    render_batch(factors, size) -> float [N, 3, S, S] in [-1, 1];  label_matrix(factors) -> bool [N, n_attr]

See docs/synthfaces.md.
"""
from .factors import (ATTRIBUTE_COMPONENTS, ATTRIBUTES, GENERATOR_VERSION, GLOBAL_ATTRIBUTES, THRESHOLDS,
                      EyeFactors, Factors, GlobalFactors, MouthFactors, NoseFactors, attribute_vector,
                      attributes, flip_attribute, sample_factors, transfer)
from .render import component_rect, render, render_float

__all__ = [
    "ATTRIBUTES", "ATTRIBUTE_COMPONENTS", "GLOBAL_ATTRIBUTES", "THRESHOLDS", "GENERATOR_VERSION",
    "Factors", "GlobalFactors", "EyeFactors", "NoseFactors", "MouthFactors",
    "sample_factors", "render", "render_float", "component_rect", "attributes", "attribute_vector",
    "flip_attribute", "transfer", "SynthFacesDataset", "split_ranges", "DEFAULT_SPLITS", "render_batch",
    "label_matrix", "to_tensor",
]


def __getattr__(name):  # torch is imported only when the dataset is used
    if name in ("SynthFacesDataset", "split_ranges", "DEFAULT_SPLITS", "render_batch", "label_matrix", "to_tensor"):
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

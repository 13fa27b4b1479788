"""The registry of training losses: a config's ``"loss": {"type", "args"}`` names one. Entries are
imported on use, so that a run of the release's loss never imports the counterfactual loss (and
with it the SynthFaces data set)."""
from __future__ import annotations

import importlib

from utils.errors import ConfigError

#: type name -> (module, class); the class's ``config_class`` is the dataclass its args fill.
LOSSES = {
    "IAFacesLoss": ("trainer.losses", "IAFacesLoss"),
    "CounterfactualLoss": ("trainer.counterfactual", "CounterfactualLoss"),
}


def loss_class(name: str) -> type:
    if name not in LOSSES:
        raise ConfigError(f"loss.type '{name}' unknown; valid: {', '.join(LOSSES)}")
    module, cls = LOSSES[name]
    return getattr(importlib.import_module(module), cls)


def loss_type(config) -> str:
    """The type name whose config class ``config`` is an instance of."""
    for name, (module, cls) in LOSSES.items():
        if type(config) is loss_class(name).config_class:
            return name
    raise ConfigError(f"no registered loss takes {type(config).__name__}")

"""Conversion between the official release's state_dict layout and this project's modules.

Both directions are driven by the networks' ``official_entries()``: the official key, our key
(None for the FIR kernel constants the official files store) and the official shape.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
import torch.nn as nn
from torch import Tensor


class ConversionError(ValueError):
    """An official state_dict does not match the network it is loaded into."""


def official_keys(net: nn.Module) -> list[tuple[str, tuple]]:
    """The official state_dict keys and shapes of ``net``, in the official order."""
    out = []
    for off, own, shape in net.official_entries():
        out.append((off, tuple(shape.shape) if isinstance(shape, Tensor) else tuple(shape)))
    return out


def official_to_own(net: nn.Module, official: Mapping[str, Tensor], where: str = "network") -> dict[str, Tensor]:
    """Map an official state_dict onto ``net``'s own state_dict keys (tensors reshaped, dtype kept).

    Raises ConversionError listing missing and unexpected keys, or the first shape mismatch.
    """
    entries = list(net.official_entries())
    expected = {off for off, _, _ in entries}
    missing = [off for off, _, _ in entries if off not in official]
    unexpected = [k for k in official if k not in expected]
    if missing or unexpected:
        raise ConversionError(
            f"{where}: the checkpoint does not match this architecture "
            f"({len(missing)} missing keys, e.g. {missing[:3]}; {len(unexpected)} unexpected, "
            f"e.g. {unexpected[:3]})")
    own_sd = net.state_dict()
    out: dict[str, Tensor] = {}
    for off, own, shape in entries:
        value = official[off]
        if own is None:  # FIR kernel constant: verify, do not store
            if tuple(value.shape) != tuple(shape.shape) or not torch.allclose(
                    value.double().cpu(), shape.double(), atol=1e-6):
                raise ConversionError(f"{where}: unexpected FIR kernel in '{off}'")
            continue
        if tuple(value.shape) != tuple(shape):
            raise ConversionError(f"{where}: '{off}' has shape {list(value.shape)}, expected {list(shape)}")
        out[own] = value.reshape(own_sd[own].shape)
    return out


def own_to_official(net: nn.Module, dtype: torch.dtype | None = None) -> "OrderedDict[str, Tensor]":
    """Export ``net`` in the official layout (official key order, FIR constants included)."""
    own_sd = net.state_dict()
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    ref_dtype = dtype or next(iter(own_sd.values())).dtype
    for off, own, shape in net.official_entries():
        if own is None:
            out[off] = shape.to(ref_dtype).clone()
        else:
            out[off] = own_sd[own].detach().reshape(shape).clone().to(dtype or own_sd[own].dtype)
    return out


def load_official_state_dict(net: nn.Module, official: Mapping[str, Tensor], where: str = "network") -> None:
    """Load an official state_dict into ``net`` in place (strict)."""
    own = official_to_own(net, official, where)
    missing, unexpected = net.load_state_dict(own, strict=False)
    if missing or unexpected:
        raise ConversionError(f"{where}: internal mapping incomplete: missing {missing}, unexpected {unexpected}")

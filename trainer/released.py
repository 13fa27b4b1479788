"""Training from a released checkpoint (``train.py -r released.pth``): its config mapped to the
project's, its networks, EMA copies and (when they fit) optimizer states loaded.

The release stores ``state_dict_E/G/D``, ``e_ema``, ``g_ema``, ``optimizer_G`` (one Adam over the
encoder's then the generator's parameters, in the official module order) and ``optimizer_D``, plus
``epoch``, ``iteration`` and the epoch's ``avg_mse``; its ``config`` is the official JSON config with
a few launcher entries (``world_size``, ``distributed``, ``local_rank``, ``global_rank``).
"""
from __future__ import annotations

import copy
from dataclasses import fields
from typing import Optional

import torch
import torch.nn as nn

from model.variants.legacy import is_release_config

from .config import DataLoaderConfig, LossConfig, OptimizerConfig, TrainConfig, TrainerConfig, release_to_project

_BLOCK_FIELDS = {
    "data_loader": DataLoaderConfig, "loss": LossConfig, "optimizer_G": OptimizerConfig,
    "optimizer_D": OptimizerConfig, "trainer": TrainerConfig,
}


def config_from_release(config: dict) -> tuple[dict, list[str]]:
    """The training config (JSON dict) of a released checkpoint's config, and the entries that were
    dropped (launcher state and keys the project does not know).

    It trains as the release does (:func:`trainer.config.release_to_project`: LR schedulers listed
    but not created, the training list kept whole, hole masks by ``data_name``, the release's
    output names). A config in the release's form comes back as it is: :func:`parse_config` maps
    it and lists each mapping in its notes, exactly as for ``train.py -c`` with the release's JSON.
    Any other config (a project config stored in a released-format file) is mapped here."""
    top = {f.name for f in fields(TrainConfig)}
    out, dropped = {}, []
    for key, value in config.items():
        if key not in top:
            dropped.append(key)
            continue
        out[key] = copy.deepcopy(value)
    for block, cls in _BLOCK_FIELDS.items():
        if isinstance(out.get(block), dict):
            valid = {f.name for f in fields(cls)}
            for k in list(out[block]):
                if k not in valid:
                    dropped.append(f"{block}.{k}")
                    del out[block][k]
    if not is_release_config(out):
        out = release_to_project(out)[0]
    return out, dropped


def _param_keys_in_official_order(net: nn.Module) -> Optional[list[str]]:
    """Our parameter names in the order of the official module's ``parameters()`` (its state_dict
    order without buffers); None when the two do not correspond one to one."""
    params = dict(net.named_parameters())
    order = [own for _, own, _ in net.official_entries() if own is not None and own in params]
    return order if sorted(order) == sorted(params) else None


def _official_order(nets: list[nn.Module]) -> Optional[list[tuple[nn.Module, str]]]:
    out = []
    for net in nets:
        keys = _param_keys_in_official_order(net)
        if keys is None:
            return None
        out += [(net, k) for k in keys]
    return out


def optimizer_state_from_release(state: dict, nets: list[nn.Module]) -> Optional[dict]:
    """A released Adam state over ``nets`` (official parameter order) as a state_dict for an Adam
    over ``[p for n in nets for p in n.parameters()]`` (our order), moments reshaped to our
    parameter shapes; None when it does not fit these networks."""
    try:
        official = _official_order(nets)
        groups = state["param_groups"]
        if official is None or len(groups) != 1 or len(groups[0]["params"]) != len(official):
            return None
        ours = [(net, name) for net in nets for name, _ in net.named_parameters()]
        index = {(id(n), k): i for i, (n, k) in enumerate(official)}
        params_by_name = {(id(n), k): p for n in nets for k, p in n.named_parameters()}
        old_ids = groups[0]["params"]
        new_state = {}
        for j, (net, name) in enumerate(ours):
            entry = state["state"].get(old_ids[index[(id(net), name)]])
            if entry is None:
                continue
            p = params_by_name[(id(net), name)]
            moved = {}
            for k, v in entry.items():
                if isinstance(v, torch.Tensor) and v.numel() == p.numel() and v.dim() > 0:
                    moved[k] = v.detach().clone().reshape(p.shape)
                elif isinstance(v, torch.Tensor) and v.dim() > 0:
                    return None
                else:
                    moved[k] = v.clone() if isinstance(v, torch.Tensor) else v
            new_state[j] = moved
        group = {k: v for k, v in groups[0].items() if k != "params"}
        group["params"] = list(range(len(ours)))
        return {"state": new_state, "param_groups": [group]}
    except (KeyError, IndexError, TypeError, RuntimeError):
        return None


def optimizer_state_to_release(state: dict, nets: list[nn.Module]) -> dict:
    """The inverse of :func:`optimizer_state_from_release`: an Adam state over our parameters as
    the release stores it (official parameter order and shapes); used to write released-format
    files."""
    official = _official_order(nets)
    if official is None:
        raise ValueError("these networks have no one-to-one official parameter layout")
    shapes = {(id(net), own): tuple(shape) for net in nets for _, own, shape in net.official_entries()
              if own is not None}
    ours = {(id(net), name): j for j, (net, name) in
            enumerate((net, name) for net in nets for name, _ in net.named_parameters())}
    group = state["param_groups"][0]
    new_state = {}
    for i, (net, name) in enumerate(official):
        entry = state["state"].get(group["params"][ours[(id(net), name)]])
        if entry is None:
            continue
        new_state[i] = {k: (v.detach().clone().reshape(shapes[(id(net), name)])
                            if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in entry.items()}
    out_group = {k: v for k, v in group.items() if k != "params"}
    out_group["params"] = list(range(len(official)))
    return {"state": new_state, "param_groups": [out_group]}

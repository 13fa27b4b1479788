"""Checkpoints: the project's own format (plain dicts, ``torch.load(weights_only=True)``) and the
official release's format, behind one loader that rebuilds ready-to-use networks.

Own format (``FORMAT``, built by :func:`pack_checkpoint` only): ``{"format", "model_config":
ModelConfig.to_dict(), "config": <training config, JSON-able>, "e_ema", "g_ema" and optionally
"encoder", "generator", "discriminator": state dicts, ...}`` plus whatever the trainer stores for
exact resume (optimizers, counters, RNG states).

A file is read from disk once per load (:func:`read_checkpoint`); :func:`build_models` rebuilds
networks from what was read.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
import torch.nn as nn

from utils.errors import CheckpointError, ConfigError

from . import build_networks
from .config import ARCHITECTURES, ModelConfig, build_model_config, is_official_arch
from .convert import ConversionError, load_official_state_dict, own_to_official
from .networks import Discriminator, Encoder, Generator
from .official_checkpoint import is_official_checkpoint, load_checkpoint_file, parse_official_checkpoint

FORMAT = "iafaces-pytorch/1"
PathLike = Union[str, os.PathLike]


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``: an
    interrupted write never destroys the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


#: ``atomic_save``'s temporary files: ``.<name>.<random>.tmp``.
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temporaries(folder: PathLike) -> list[Path]:
    """Remove the temporary files that interrupted :func:`atomic_save` calls left in ``folder``
    (``.<name>.<random>.tmp``); returns them. Call it only while no other process writes there
    (the training run folder is locked)."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if _TEMP_RE.match(p.name) and p.is_file() and not p.is_symlink():
                try:
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    pass
    return removed


def model_config_from_official(config: dict) -> ModelConfig:
    """ModelConfig of a released checkpoint's JSON config (``model_arch`` + network args)."""
    try:
        return build_model_config(
            config["model_arch"],
            config.get("encoder", {}).get("args", {}),
            {k: v for k, v in config.get("generator", {}).get("args", {}).items()},
            config.get("discriminator", {}).get("args", {}),
        )
    except KeyError as e:
        raise CheckpointError(f"the checkpoint's config lacks {e}; it is not an IA-FaceS config") from None
    except (AttributeError, TypeError):
        raise CheckpointError("the checkpoint's config has blocks of the wrong type (expected objects); it is not "
                              "an IA-FaceS config") from None


@dataclass
class LoadedModels:
    """Networks rebuilt from a checkpoint (EMA weights for encoder and generator)."""
    encoder: Encoder
    generator: Generator
    discriminator: Optional[Discriminator]
    model_config: ModelConfig
    config: dict
    source: str  # "project" or "official"
    path: str
    device: torch.device
    iteration: Optional[int] = None  # training iterations behind the weights, when the file records them


def is_iafaces_checkpoint(raw: Any) -> bool:
    """True if ``raw`` (a file's top-level object) is an own-format or released IA-FaceS checkpoint."""
    return (isinstance(raw, dict) and raw.get("format") == FORMAT) or is_official_checkpoint(raw)


def parse_checkpoint(raw: Any, path: PathLike) -> tuple[dict, str]:
    """(payload, "project" | "official") of ``raw``, the object read from ``path``."""
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return raw, "project"
    if isinstance(raw, dict) and isinstance(raw.get("format"), str):
        raise CheckpointError(f"{path}: checkpoint format '{raw['format']}' is not supported by this "
                              f"version (expected '{FORMAT}'); update the project")
    return parse_official_checkpoint(raw, path), "official"


def read_checkpoint(path: PathLike) -> tuple[dict, str]:
    """Read a checkpoint from disk once, safely; returns (payload, "project" | "official")."""
    return parse_checkpoint(load_checkpoint_file(path), path)


def stored_model_config(payload: dict, path: PathLike) -> ModelConfig:
    """The ModelConfig an own-format checkpoint records (older flat records upgraded)."""
    try:
        return ModelConfig.from_dict(payload["model_config"])
    except (ConfigError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: invalid model configuration in checkpoint: {e}") from None


def has_discriminator(payload: dict, source: str) -> bool:
    return ("discriminator" if source == "project" else "state_dict_D") in payload


def load_models(path: PathLike, device: torch.device = torch.device("cpu"), discriminator: bool = False,
                cam_placement: Optional[str] = None) -> LoadedModels:
    """Rebuild encoder and generator (EMA weights, eval mode, on ``device``) from any checkpoint:
    the project's own or a released one (read once). See :func:`build_models`."""
    return build_models(*read_checkpoint(path), str(path), device, discriminator, cam_placement)


def build_models(payload: dict, source: str, path: PathLike, device: torch.device = torch.device("cpu"),
                 discriminator: bool = False, cam_placement: Optional[str] = None) -> LoadedModels:
    """Networks of a checkpoint already read by :func:`read_checkpoint` (``path`` names it in
    messages). The architecture comes from the checkpoint itself. ``cam_placement`` overrides the
    CAM box placement (expert use; released CAM-256 weights need ``official``, which they get by
    default). ``discriminator``: also load D (CheckpointError when the file holds none)."""
    path = str(path)
    if source == "project":
        check_project_payload(payload, path, discriminator)
    try:
        if source == "project":
            mcfg = stored_model_config(payload, path)
        else:
            mcfg = model_config_from_official(payload["config"])
        if cam_placement is not None and mcfg.generator.cam:
            d = mcfg.to_dict()
            d["generator"]["args"]["cam_placement"] = cam_placement
            mcfg = ModelConfig.from_dict(d)
    except (ConfigError, KeyError) as e:
        raise CheckpointError(f"{path}: invalid model configuration in checkpoint: {e}") from None
    dev = torch.device(device)
    if discriminator and not has_discriminator(payload, source):
        raise CheckpointError(f"{path}: the checkpoint holds no discriminator")
    keys = ("e_ema", "g_ema") + ((("discriminator",) if source == "project" else ("state_dict_D",))
                                 if discriminator else ())
    check_model_sizes(mcfg, {k: payload[k] for k in keys}, path)
    enc, gen, disc = build_networks(mcfg, discriminator=discriminator)
    try:
        if source == "project":
            _load_strict(enc, payload["e_ema"], path, "encoder (EMA)")
            _load_strict(gen, payload["g_ema"], path, "generator (EMA)")
            if disc is not None:
                if "discriminator" not in payload:
                    raise CheckpointError(f"{path}: the checkpoint holds no discriminator")
                _load_strict(disc, payload["discriminator"], path, "discriminator")
        else:
            load_official_state_dict(enc, payload["e_ema"], f"{path}: encoder (e_ema)")
            load_official_state_dict(gen, payload["g_ema"], f"{path}: generator (g_ema)")
            if disc is not None:
                if "state_dict_D" not in payload:
                    raise CheckpointError(f"{path}: the checkpoint holds no discriminator")
                load_official_state_dict(disc, payload["state_dict_D"], f"{path}: discriminator")
    except ConversionError as e:
        raise CheckpointError(str(e)) from None
    nets = [n for n in (enc, gen, disc) if n is not None]
    for n in nets:
        n.to(dev).eval().requires_grad_(False)
    it = payload.get("iteration")
    return LoadedModels(enc, gen, disc, mcfg, dict(payload.get("config") or {}), source, path, dev,
                        int(it) if isinstance(it, (int, float)) and not isinstance(it, bool) else None)


#: Largest value of any integer field of a checkpoint's model configuration (channels, sizes):
#: far above every real model, far below what would overflow an allocation size.
MAX_CONFIG_INT = 1 << 20


def _check_state(path: str, key: str, value: Any) -> None:
    """CheckpointError unless ``value`` is a state dict of finite tensors."""
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{path}: '{key}' must be a state dict of tensors, got {type(value).__name__}; "
                              "the file is damaged or not an IA-FaceS checkpoint")
    for name, t in value.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise CheckpointError(f"{path}: '{key}' entry {name!r} is {type(t).__name__}, expected a tensor; the "
                                  "file is damaged or not an IA-FaceS checkpoint")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: '{key}.{name}' holds NaN or infinite values; these weights would give "
                                  "NaN images (a diverged or damaged checkpoint)")


def check_project_payload(payload: dict, path: PathLike, discriminator: bool = False) -> None:
    """CheckpointError unless an own-format payload has a model configuration (an object) and
    the EMA state dicts (and the discriminator's when asked) as finite tensors."""
    path = str(path)
    if not isinstance(payload.get("model_config"), Mapping):
        got = type(payload.get("model_config")).__name__ if "model_config" in payload else "nothing"
        raise CheckpointError(f"{path}: 'model_config' must be an object, got {got}; the file is damaged or not "
                              "an IA-FaceS checkpoint")
    for key in ("e_ema", "g_ema") + (("discriminator",) if discriminator and "discriminator" in payload else ()):
        if key not in payload:
            raise CheckpointError(f"{path}: the checkpoint has no '{key}' weights; it is damaged or not an "
                                  "IA-FaceS checkpoint")
        _check_state(path, key, payload[key])


def _config_ints(mcfg: ModelConfig):
    for part in (mcfg.encoder, mcfg.generator, mcfg.discriminator):
        for k, v in vars(part).items():
            if isinstance(v, int) and not isinstance(v, bool):
                yield f"{type(part).__name__}.{k}", v


def check_model_sizes(mcfg: ModelConfig, states: Mapping[str, Any], path: PathLike) -> None:
    """Bound what a checkpoint's configuration allocates before any network is built: every integer
    field at most :data:`MAX_CONFIG_INT`, and the networks it describes (built on the ``meta``
    device, no memory) no larger than the stored weights (``states``: ``e_ema``, ``g_ema`` and
    optionally a discriminator, own or official layout)."""
    path = str(path)
    for name, v in _config_ints(mcfg):
        if v > MAX_CONFIG_INT:
            raise CheckpointError(f"{path}: the stored model configuration sets {name} = {v}, above the limit "
                                  f"{MAX_CONFIG_INT}; the file is damaged or crafted")
    for key, value in states.items():
        _check_state(path, key, value)
    with torch.device("meta"):
        enc, gen, disc = build_networks(mcfg, discriminator=len(states) > 2)
    for key, net in zip(states, (enc, gen, disc)):
        need = sum(t.numel() for t in net.state_dict().values())
        have = sum(t.numel() for t in states[key].values())
        if need > 2 * have + (1 << 20):
            raise CheckpointError(f"{path}: the stored model configuration describes a '{key}' network of {need} "
                                  f"values but the file holds {have}; the configuration does not match the weights")


def _load_strict(net: nn.Module, state: dict, path: str, what: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CheckpointError(f"{path}: {what} weights do not match the stored configuration "
                              f"({first[0] if first else e})") from None


def _cpu_state(net: nn.Module) -> dict:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


def pack_checkpoint(model_config: ModelConfig, config: Optional[dict], e_ema: nn.Module, g_ema: nn.Module,
                    discriminator: Optional[nn.Module] = None, encoder: Optional[nn.Module] = None,
                    generator: Optional[nn.Module] = None, **extra: Any) -> dict:
    """The own-format checkpoint dict (CPU tensors): EMA networks, optionally the discriminator and
    the trained (non-EMA) encoder and generator, plus ``extra`` entries (optimizer states, ...)."""
    payload = {"format": FORMAT, "model_config": model_config.to_dict(), "config": dict(config or {})}
    for key, net in (("encoder", encoder), ("generator", generator), ("discriminator", discriminator),
                     ("e_ema", e_ema), ("g_ema", g_ema)):
        if net is not None:
            payload[key] = _cpu_state(net)
    payload.update(extra)
    return payload


def save_model_checkpoint(path: PathLike, encoder: Encoder, generator: Generator, model_config: ModelConfig,
                          config: Optional[dict] = None, discriminator: Optional[Discriminator] = None,
                          **extra: Any) -> None:
    """Write a minimal own-format checkpoint holding these weights as the EMA networks (used for
    exports and tests; the trainer writes the full training state through the same
    :func:`pack_checkpoint`)."""
    atomic_save(pack_checkpoint(model_config, config, encoder, generator, discriminator, **extra), path)


def save_official_layout(path: PathLike, models: LoadedModels) -> None:
    """Export networks in the official release's layout (``e_ema``, ``g_ema``, ``state_dict_D`` in
    the official key order and shapes, ``config`` as a plain dict). Only the official
    architectures have an official ``model_arch``."""

    arch = models.model_config.arch
    if not is_official_arch(arch) or not models.model_config.is_release:
        raise ValueError(f"architecture '{arch}' has no official counterpart; only "
                         f"{', '.join(a for a in ARCHITECTURES if is_official_arch(a))} can be exported")
    cfg = models.model_config
    if cfg.generator.cam and cfg.generator.cam_placement != ARCHITECTURES[arch][0]().generator.cam_placement:
        raise ValueError(f"{arch} with cam_placement='{cfg.generator.cam_placement}' cannot be exported: the "
                         "official code always uses its own box placement, so these weights would decode differently")
    config = {
        "model_arch": arch,
        "encoder": {"type": "Encoder", "args": {"channel": cfg.encoder.channel, "img_size": cfg.encoder.size,
                                                "feats_dim": cfg.encoder.comp_dim}},
        "generator": {"type": "Generator", "args": {"img_size": cfg.generator.size,
                                                    "style_dim": cfg.generator.style_dim}},
        "discriminator": {"type": "Discriminator", "args": {"size": cfg.discriminator.size}},
    }
    payload = {"config": config, "e_ema": own_to_official(models.encoder),
               "g_ema": own_to_official(models.generator)}
    if models.discriminator is not None:
        payload["state_dict_D"] = own_to_official(models.discriminator)
    atomic_save(payload, path)

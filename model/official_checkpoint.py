"""The released IA-FaceS checkpoints: their layout, read into plain Python objects.

The authors' checkpoints are ``torch.save`` pickles.  Besides tensors and
``collections.OrderedDict`` state dicts they contain a pickled
``parse_config.ConfigParser`` object (created with NEWOBJ, filled with BUILD)
whose members include ``pathlib.PosixPath`` objects.  They are read with the
generic safe reader :func:`utils.safe_load.load_checkpoint_file` (torch's
weights-only unpickler; nothing from the file is ever imported or called), with
:data:`OFFICIAL_EXTRA_GLOBALS` allow-listed for the duration of one load only:

``parse_config.ConfigParser``
    -> :class:`ConfigParserState`, a plain record.  torch creates it with
    ``cls.__new__(cls)`` (NEWOBJ) and fills it via ``__setstate__`` (BUILD);
    it just stores the state dict.  The real ``parse_config`` module is
    never imported, even if one is importable.
``pathlib.PosixPath`` / ``PurePosixPath`` / ``Path`` / ``WindowsPath`` /
``PureWindowsPath``
    -> :data:`utils.safe_load.PATH_STAND_INS`, which return a plain ``str``.

Any other global is refused before anything is called (a :class:`CheckpointError`).

Public API: :class:`CheckpointError`, :func:`load_checkpoint_file` (the safe reader with the
release's stand-ins), :func:`load_official_checkpoint`, :func:`parse_official_checkpoint`,
:func:`is_official_checkpoint`, :class:`ConfigParserState`, :data:`OFFICIAL_EXTRA_GLOBALS`,
:data:`REQUIRED_KEYS`; :func:`is_torchscript_file` is re-exported from :mod:`utils.safe_load`.
``model.checkpoint`` is the entry point that reads any checkpoint (own or released) once and
rebuilds networks from it.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any

import torch

from utils import safe_load
from utils.errors import CheckpointError
from utils.safe_load import PATH_STAND_INS, is_torchscript_file

__all__ = [
    "CheckpointError",
    "ConfigParserState",
    "OFFICIAL_EXTRA_GLOBALS",
    "REQUIRED_KEYS",
    "is_official_checkpoint",
    "is_torchscript_file",
    "load_checkpoint_file",
    "load_official_checkpoint",
    "parse_official_checkpoint",
]

REQUIRED_KEYS = ("config", "e_ema", "g_ema")
STATE_DICT_KEYS = ("e_ema", "g_ema", "state_dict_E", "state_dict_G", "state_dict_D")


# --------------------------------------------------------------------------- stand-ins


class ConfigParserState:
    """Harmless stand-in for the pickled ``parse_config.ConfigParser``.

    torch's weights-only unpickler creates it with ``cls.__new__(cls)`` (NEWOBJ)
    and passes the pickled instance dict to :meth:`__setstate__` (BUILD).  It
    only records that dict in :attr:`state`; it has no behaviour.
    """

    __slots__ = ("state",)

    def __new__(cls, *args: Any, **kwargs: Any) -> "ConfigParserState":
        if args or kwargs:
            # The real class is always pickled as NEWOBJ with empty args.
            raise pickle.UnpicklingError(
                "Refused: parse_config.ConfigParser was constructed with arguments; expected NEWOBJ with ()"
            )
        inst = object.__new__(cls)
        inst.state = {}
        return inst

    def __setstate__(self, state: Any) -> None:
        # pickle's BUILD may pass (dict_state, slot_state); merge both.
        if isinstance(state, tuple) and len(state) == 2:
            dict_state, slot_state = state
            merged: dict = {}
            for part in (dict_state, slot_state):
                if part is None:
                    continue
                if not isinstance(part, Mapping):
                    raise pickle.UnpicklingError(
                        f"Refused: parse_config.ConfigParser state has type {type(part).__name__}, expected a dict"
                    )
                merged.update(part)
            state = merged
        if not isinstance(state, Mapping):
            raise pickle.UnpicklingError(
                f"Refused: parse_config.ConfigParser state has type {type(state).__name__}, expected a dict"
            )
        self.state.update(state)

    def __repr__(self) -> str:
        return f"ConfigParserState(keys={sorted(map(str, self.state))})"


#: ``(stand_in, "pickled.name")`` pairs registered with ``torch.serialization.safe_globals``
#: for the duration of each load.  Everything else comes from torch's own allow-list.
OFFICIAL_EXTRA_GLOBALS: tuple[tuple[type, str], ...] = (
    (ConfigParserState, "parse_config.ConfigParser"),
    *PATH_STAND_INS,
)


def load_checkpoint_file(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file without ever executing code from it:
    :func:`utils.safe_load.load_checkpoint_file` with :data:`OFFICIAL_EXTRA_GLOBALS`.

    Returns the raw top-level object; a pickled ``parse_config.ConfigParser`` comes back as
    :class:`ConfigParserState` and pickled ``pathlib`` paths as ``str``.  Raises
    :class:`CheckpointError` for a missing/unreadable path, a file that is not a PyTorch
    checkpoint, a truncated or corrupt file, or a file that references anything outside the
    allow-list.
    """
    return safe_load.load_checkpoint_file(path, OFFICIAL_EXTRA_GLOBALS)


# --------------------------------------------------------------------------- IA-FaceS layout


def is_official_checkpoint(obj: Any) -> bool:
    """True if ``obj`` (a loaded top-level object) has the IA-FaceS release layout."""
    if not isinstance(obj, Mapping) or not all(k in obj for k in REQUIRED_KEYS):
        return False
    cfg = obj["config"]
    if isinstance(cfg, ConfigParserState):
        return isinstance(cfg.state.get("_config"), Mapping)
    return isinstance(cfg, Mapping)


class _NotPlain(Exception):
    def __init__(self, where: str, value: Any):
        super().__init__(where)
        self.where = where
        self.value = value


def _to_plain(value: Any, where: str, strict: bool) -> Any:
    """OrderedDict -> dict, tuple -> list, recursively.  ``strict``: only JSON-like leaves."""
    if isinstance(value, ConfigParserState):
        value = value.state
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if strict and not isinstance(k, (str, int, float, bool)) and k is not None:
                raise _NotPlain(f"{where}[{k!r}] (key)", k)
            out[k] = _to_plain(v, f"{where}[{k!r}]", strict)
        return out
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, f"{where}[{i}]", strict) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if strict:
        raise _NotPlain(where, value)
    return value


def _state_dict(path: str, key: str, value: Any) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping):
        raise CheckpointError(
            f"{path} has a malformed '{key}': expected a state dict of tensors, got "
            f"{type(value).__name__}; download the checkpoint again"
        )
    out: dict[str, torch.Tensor] = {}
    for name, tensor in value.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(
                f"{path} has a malformed '{key}': entry {name!r} is {type(tensor).__name__}, "
                f"expected a tensor; download the checkpoint again"
            )
        out[name] = tensor
    return out


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def load_official_checkpoint(path: str | os.PathLike) -> dict:
    """Safely load a released IA-FaceS checkpoint into plain Python objects
    (:func:`parse_official_checkpoint` of the file's contents)."""
    return parse_official_checkpoint(load_checkpoint_file(path), path)


def parse_official_checkpoint(raw: Any, path: str | os.PathLike) -> dict:
    """The released IA-FaceS layout of ``raw`` (what :func:`load_checkpoint_file` returned for
    ``path``) as plain Python objects.

    Returns a dict with

    * ``"config"``: the training JSON config (the ConfigParser's ``_config``)
      as nested plain ``dict``/``list``/scalars (JSON-serialisable);
    * ``"e_ema"``, ``"g_ema"`` and, when present, ``"state_dict_E"``,
      ``"state_dict_G"``, ``"state_dict_D"``: ``dict[str, Tensor]`` on CPU;
    * ``"epoch"``, ``"iteration"``, ``"avg_mse"`` when present (one-element
      tensors converted to Python numbers);
    * ``"optimizer_G"``, ``"optimizer_D"`` when present, as stored;
    * ``"extra"``: the other ConfigParser members (``resume``, ``_save_dir``,
      ``_log_dir``, ``log_levels``, ...), paths as ``str``; ``{}`` when the
      checkpoint's ``config`` is already a plain dict;
    * any other top-level keys, as stored.
    """
    shown = os.fsdecode(os.fspath(path))
    if not isinstance(raw, Mapping):
        raise CheckpointError(
            f"{shown} is not an IA-FaceS checkpoint: its top level is {type(raw).__name__}, expected a dict "
            f"with keys {', '.join(REQUIRED_KEYS)}; pass a released IA-FaceS .pth file"
        )
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        found = ", ".join(sorted(map(str, raw.keys()))[:12]) or "none"
        raise CheckpointError(
            f"{shown} is not an IA-FaceS checkpoint: missing keys {', '.join(missing)} "
            f"(found: {found}); pass a released IA-FaceS .pth file"
        )

    cfg = raw["config"]
    extra: dict = {}
    if isinstance(cfg, ConfigParserState):
        state = cfg.state
        if not isinstance(state.get("_config"), Mapping):
            raise CheckpointError(
                f"{shown} has a malformed 'config': the ConfigParser has no '_config' dict; "
                f"download the checkpoint again"
            )
        config_src = state["_config"]
        extra = {k: v for k, v in state.items() if k != "_config"}
    elif isinstance(cfg, Mapping):
        config_src = cfg
    else:
        raise CheckpointError(
            f"{shown} has a malformed 'config' of type {type(cfg).__name__}, expected a ConfigParser or "
            f"a dict; download the checkpoint again"
        )
    try:
        config = _to_plain(config_src, "config", strict=True)
        extra = {k: _to_plain(v, f"config.{k}", strict=False) for k, v in extra.items()}
    except RecursionError:
        raise CheckpointError(f"{shown} has a 'config' nested too deeply to be a training config; the file is "
                              "damaged or crafted") from None
    except _NotPlain as exc:
        raise CheckpointError(
            f"{shown} has a malformed 'config': {exc.where} is {type(exc.value).__name__}, not a JSON "
            f"value; download the checkpoint again"
        ) from None

    out: dict[str, Any] = {"config": config}
    for key in STATE_DICT_KEYS:
        if key in raw:
            out[key] = _state_dict(shown, key, raw[key])
    for key in ("epoch", "iteration", "avg_mse"):
        if key in raw:
            out[key] = _scalar(raw[key])
    for key, value in raw.items():
        if key not in out and key != "config" and key != "extra":
            out[key] = value
    out["extra"] = extra
    return out

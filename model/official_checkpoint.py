"""Safe loading of the released IA-FaceS checkpoints (and of any ``torch.save`` file).

The authors' checkpoints are ``torch.save`` pickles.  Besides tensors and
``collections.OrderedDict`` state dicts they contain a pickled
``parse_config.ConfigParser`` object (created with NEWOBJ, filled with BUILD)
whose members include ``pathlib.PosixPath`` objects.  Unpickling such a file
with plain ``pickle`` / ``torch.load(weights_only=False)`` imports and calls
whatever the file names, so a file from an untrusted source can run arbitrary
code.  This module never does that:

* every load goes through ``torch.load(..., weights_only=True)``, i.e. torch's
  restricted unpickler, which only resolves globals on torch's own allow-list;
* the few extra names an IA-FaceS checkpoint needs are mapped, for the duration
  of one load only, to harmless stand-ins defined here through
  ``torch.serialization.safe_globals([(stand_in, "module.QualName"), ...])``:

  ``parse_config.ConfigParser``
      -> :class:`ConfigParserState`, a plain record.  torch creates it with
      ``cls.__new__(cls)`` (NEWOBJ) and fills it via ``__setstate__`` (BUILD);
      it just stores the state dict.  The real ``parse_config`` module is
      never imported, even if one is importable.
  ``pathlib.PosixPath`` / ``PurePosixPath`` / ``Path`` / ``WindowsPath`` /
  ``PureWindowsPath``
      -> stand-in classes whose ``__new__`` returns a plain ``str`` built by
      the corresponding *pure* path class (no file-system access).  Paths are
      pickled as ``REDUCE(cls, parts)``, which torch turns into
      ``cls(*parts)``; a BUILD on the resulting ``str`` is rejected by torch.

  Any other global (``posix.system``, ``builtins.eval``, ``subprocess.*``,
  a module-level function, ...) is refused by torch before anything is
  called, and the refusal is turned into a :class:`CheckpointError`.

Public API: :class:`CheckpointError`, :func:`load_checkpoint_file`,
:func:`load_official_checkpoint`, :func:`parse_official_checkpoint`,
:func:`is_official_checkpoint`, :class:`ConfigParserState`. ``model.checkpoint`` is the entry
point that reads any checkpoint (own or released) once and rebuilds networks from it.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
import re
import threading
import zipfile
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import torch

from utils.errors import CheckpointError

__all__ = [
    "CheckpointError",
    "ConfigParserState",
    "OFFICIAL_EXTRA_GLOBALS",
    "REQUIRED_KEYS",
    "is_official_checkpoint",
    "load_checkpoint_file",
    "load_official_checkpoint",
    "parse_official_checkpoint",
]

REQUIRED_KEYS = ("config", "e_ema", "g_ema")
STATE_DICT_KEYS = ("e_ema", "g_ema", "state_dict_E", "state_dict_G", "state_dict_D")

_UNTRUSTED_ADVICE = (
    "Only load checkpoints from sources you trust, and inspect untrusted ones in a sandbox "
    "(e.g. with pickletools) rather than loading them"
)


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


def _path_stand_in(pure_cls: type, name: str) -> type:
    """A class standing in for ``pathlib.<name>``: calling it yields a plain ``str``."""

    def __new__(cls, *parts: Any) -> str:  # noqa: N807 - mimics a constructor
        for p in parts:
            if not isinstance(p, str):
                raise pickle.UnpicklingError(
                    f"Refused: pathlib.{name} part has type {type(p).__name__}, expected str"
                )
        return str(pure_cls(*parts))

    return type(f"_{name}StandIn", (), {"__new__": __new__, "__slots__": (), "__module__": __name__})


_PosixPathStandIn = _path_stand_in(PurePosixPath, "PosixPath")
_PurePosixPathStandIn = _path_stand_in(PurePosixPath, "PurePosixPath")
_PathStandIn = _path_stand_in(PurePosixPath, "Path")
_WindowsPathStandIn = _path_stand_in(PureWindowsPath, "WindowsPath")
_PureWindowsPathStandIn = _path_stand_in(PureWindowsPath, "PureWindowsPath")

#: ``(stand_in, "pickled.name")`` pairs registered with ``torch.serialization.safe_globals``
#: for the duration of each load.  Everything else comes from torch's own allow-list.
OFFICIAL_EXTRA_GLOBALS: tuple[tuple[type, str], ...] = (
    (ConfigParserState, "parse_config.ConfigParser"),
    (_PosixPathStandIn, "pathlib.PosixPath"),
    (_PurePosixPathStandIn, "pathlib.PurePosixPath"),
    (_PathStandIn, "pathlib.Path"),
    (_WindowsPathStandIn, "pathlib.WindowsPath"),
    (_PureWindowsPathStandIn, "pathlib.PureWindowsPath"),
)

# torch keeps the user allow-list in a process-wide set; serialise our loads so a
# concurrent load cannot remove our entries mid-way (and vice versa).
_LOAD_LOCK = threading.Lock()

# --------------------------------------------------------------------------- file sniffing

# Pickled torch.serialization.MAGIC_NUMBER (LONG1, 10 bytes) at the start of a legacy file.
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_ZIP_LOCAL_HEADER = b"PK\x03\x04"
_ZIP_EMPTY = b"PK\x05\x06"


def _describe_foreign(head: bytes) -> str:
    """A short guess at what a non-checkpoint file is, for the error message."""
    stripped = head.lstrip()
    low = stripped[:512].lower()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "it looks like a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "it looks like a JPEG image"
    if low.startswith(b"<!doctype html") or low.startswith(b"<html") or b"<html" in low:
        return "it looks like an HTML page, so the download probably returned a web page instead of the file"
    if low.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the file itself; fetch it with `git lfs pull`"
    if head.startswith(b"\x1f\x8b"):
        return "it looks like a gzip archive; extract it first"
    if head.startswith(b"\x93NUMPY"):
        return "it looks like a NumPy .npy file"
    try:
        head.decode("utf-8")
        if head:
            return "it looks like a text file"
    except UnicodeDecodeError:
        pass
    return "its contents are not a recognised checkpoint format"


def _looks_like_legacy_torch(head: bytes) -> bool:
    # Binary protocols put the magic LONG1 within the first few bytes (after PROTO/FRAME);
    # protocol 0/1 write it as a decimal LONG.
    return _LEGACY_MAGIC in head[:32] or b"119547037146038801333356" in head[:40]


# --------------------------------------------------------------------------- error translation

_GLOBAL_RE = re.compile(r"GLOBAL (\S+) was not an allowed global by default")
_BLOCKED_RE = re.compile(r"GLOBAL (\S+) whose module (\S+) is blocked")
_REDUCE_RE = re.compile(r"call reduce for unrecognized function (.+?)(?: which belongs to .*)?$", re.M)
_WEIGHTS_ONLY_MSG_RE = re.compile(r"WeightsUnpickler error: (.*)", re.S)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _py3_name(full: str) -> str:
    """Show a protocol-2 (Python 2 compatible) global under the name plain pickle would
    resolve it to, e.g. ``commands.call`` -> ``subprocess.call``; display only."""
    module, _, name = full.rpartition(".")
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _refused(path: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path} contains a disallowed object {what}; refusing to load it because loading could run code. "
        f"{_UNTRUSTED_ADVICE}, or ask the author for a weights-only checkpoint"
    )


def _corrupt(path: str, detail: str = "") -> CheckpointError:
    extra = f" ({_one_line(detail)})" if detail else ""
    return CheckpointError(f"{path} is truncated or corrupt{extra}; download it again")


def _translate_unpickling_error(path: str, exc: BaseException) -> CheckpointError:
    msg = str(exc)
    m = _BLOCKED_RE.search(msg)
    if m:
        return _refused(path, f"'{_py3_name(m.group(1))}'")
    m = _GLOBAL_RE.search(msg)
    if m:
        name = m.group(1)
        if "." not in name:  # torch strips the "builtins." prefix in its message
            name = f"builtins.{name}"
        return _refused(path, f"'{_py3_name(name)}'")
    m = _REDUCE_RE.search(msg)
    if m:
        return _refused(path, f"(call to {_one_line(m.group(1), 80)})")
    inner = _WEIGHTS_ONLY_MSG_RE.search(msg)
    detail = inner.group(1) if inner else msg.split("\n\n")[-1] if "\n\n" in msg else msg
    detail = detail.split("Check the documentation of torch.load")[0]
    if any(t in detail for t in ("Unsupported operand", "Can only", "persistent id", "Refused: ")):
        return CheckpointError(
            f"{path} could not be loaded safely ({_one_line(detail, 120)}): it is either corrupt or uses "
            f"pickle features a weights-only load refuses; download it again, and if it still fails, "
            f"{_UNTRUSTED_ADVICE[0].lower()}{_UNTRUSTED_ADVICE[1:]}"
        )
    return _corrupt(path, detail)


# --------------------------------------------------------------------------- generic safe load

#: Largest total uncompressed size of a checkpoint archive, and the largest ratio of that size to
#: the file's size (``torch.save`` stores its entries uncompressed: the ratio is below 1).
MAX_ARCHIVE_BYTES = 64 << 30
MAX_ARCHIVE_RATIO = 4
MAX_ARCHIVE_ENTRIES = 200_000


def check_archive_size(zf: zipfile.ZipFile, file_size: int, shown: str) -> None:
    """CheckpointError when a zip archive declares more uncompressed bytes than the limits allow
    (a zip bomb), read from its central directory before anything is extracted."""
    infos = zf.infolist()
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise CheckpointError(f"{shown} holds {len(infos)} archive entries, more than the limit "
                              f"{MAX_ARCHIVE_ENTRIES}; refusing to load it (a damaged or crafted file)")
    total = sum(i.file_size for i in infos)
    if total > MAX_ARCHIVE_BYTES or total > MAX_ARCHIVE_RATIO * file_size + (1 << 20):
        raise CheckpointError(f"{shown} declares {total} bytes of uncompressed data in a {file_size}-byte file "
                              f"(limits: {MAX_ARCHIVE_RATIO}x the file size, {MAX_ARCHIVE_BYTES} bytes); refusing to "
                              "load it (a zip bomb or a damaged file)")


def is_torchscript_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a TorchScript archive (``torch.jit.save``): a zip with TorchScript's
    ``constants.pkl`` or ``code/`` entries (as torch tells them apart). Reads only the zip
    directory; never loads it."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return any(n == "constants.pkl" or n.endswith("/constants.pkl") or "/code/" in n for n in names)



def load_checkpoint_file(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file without ever executing code from it.

    Uses ``torch.load(path, map_location="cpu", weights_only=True)`` with
    :data:`OFFICIAL_EXTRA_GLOBALS` temporarily allow-listed (mapped to inert
    stand-ins).  Returns the raw top-level object; a pickled
    ``parse_config.ConfigParser`` comes back as :class:`ConfigParserState`
    and pickled ``pathlib`` paths as ``str``.

    Raises :class:`CheckpointError` for a missing/unreadable path, a file that
    is not a PyTorch checkpoint, a truncated or corrupt file, or a file that
    references anything outside the allow-list.
    """
    shown = os.fspath(path)
    if isinstance(shown, bytes):
        shown = os.fsdecode(shown)
    if not os.path.exists(shown):
        raise CheckpointError(f"{shown} does not exist; check the path or download the checkpoint first")
    if os.path.isdir(shown):
        raise CheckpointError(f"{shown} is a directory, not a checkpoint file; pass the path of the .pth file")
    try:
        size = os.path.getsize(shown)
        with open(shown, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise CheckpointError(f"{shown} cannot be read ({_one_line(exc)}); check its permissions") from None
    if size == 0:
        raise CheckpointError(f"{shown} is empty; download it again")

    if head.startswith(_ZIP_LOCAL_HEADER) or head.startswith(_ZIP_EMPTY):
        if not zipfile.is_zipfile(shown):
            raise _corrupt(shown, "incomplete zip archive")
        try:
            with zipfile.ZipFile(shown) as zf:
                check_archive_size(zf, size, shown)  # before anything is extracted
                names = zf.namelist()
                pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
                for name in pickles:
                    zf.read(name)  # small; reading it whole verifies its CRC (torch does not)
        except CheckpointError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise _corrupt(shown, str(exc) or type(exc).__name__) from None
        if not pickles:
            if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                raise CheckpointError(
                    f"{shown} is a TorchScript archive (torch.jit.save), not a checkpoint "
                    f"(expected a file saved by torch.save); use the released .pth checkpoint instead"
                )
            raise CheckpointError(
                f"{shown} is a zip archive but not a PyTorch checkpoint (expected a file saved by "
                f"torch.save); if it is a download bundle, extract it and pass the .pth file inside"
            )
    elif not _looks_like_legacy_torch(head):
        raise CheckpointError(
            f"{shown} is not a PyTorch checkpoint (expected a file saved by torch.save): "
            f"{_describe_foreign(head)}; check that you passed the right file"
        )

    with _LOAD_LOCK:
        try:
            with torch.serialization.safe_globals(list(OFFICIAL_EXTRA_GLOBALS)):
                return torch.load(shown, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise _translate_unpickling_error(shown, exc) from None
        except (EOFError, zipfile.BadZipFile) as exc:
            raise _corrupt(shown, str(exc) or type(exc).__name__) from None
        except RuntimeError as exc:
            text = str(exc)
            if "TorchScript" in text:
                raise CheckpointError(
                    f"{shown} is a TorchScript archive (torch.jit.save), not a checkpoint "
                    f"(expected a file saved by torch.save); use the released .pth checkpoint instead"
                ) from None
            raise _corrupt(shown, text) from None
        except MemoryError:
            raise _corrupt(shown, "implausible sizes in the file") from None
        except Exception as exc:  # struct.error, UnicodeDecodeError, KeyError, ... from a damaged file
            raise _corrupt(shown, f"{type(exc).__name__}: {exc}") from None


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

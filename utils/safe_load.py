"""Reading ``torch.save`` files without ever running code from them.

A ``torch.save`` file is a pickle (inside a zip archive, or a bare legacy pickle).  Unpickling it
with plain ``pickle`` / ``torch.load(weights_only=False)`` imports and calls whatever the file
names, so a file from an untrusted source can run arbitrary code.  :func:`load_checkpoint_file`
never does that:

* the file is sniffed first: a missing, empty or unreadable path, a foreign file (image, HTML
  page, Git LFS pointer, ...), a TorchScript archive, a zip that is not a checkpoint, a damaged
  zip, and a zip that declares implausibly much uncompressed data (:func:`check_archive_size`,
  a zip bomb) are refused with a one-line :class:`~utils.errors.CheckpointError` before torch
  reads anything;
* the load itself is ``torch.load(..., weights_only=True)``, i.e. torch's restricted unpickler,
  which only resolves globals on torch's own allow-list;
* the caller may allow a few more names, for the duration of that one load only, by mapping
  each to a harmless stand-in (``extra_globals``: ``(stand_in, "module.QualName")`` pairs, as
  ``torch.serialization.safe_globals`` takes them).  A stand-in that refuses what it is given
  raises ``pickle.UnpicklingError("Refused: ...")``; the message is kept in the error.
  :data:`PATH_STAND_INS` are such stand-ins for ``pathlib`` paths (they come back as ``str``).

Any other global (``posix.system``, ``builtins.eval``, ``subprocess.*``, a module-level
function, ...) is refused by torch before anything is called, and the refusal is turned into a
:class:`~utils.errors.CheckpointError` naming it.  Other errors (truncated, corrupt or crafted
files) become one-line ``CheckpointError`` messages too.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
import re
import threading
import zipfile
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import torch

from utils.errors import CheckpointError

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_ENTRIES",
    "MAX_ARCHIVE_RATIO",
    "PATH_STAND_INS",
    "check_archive_size",
    "is_torchscript_file",
    "load_checkpoint_file",
]

_UNTRUSTED_ADVICE = (
    "Only load checkpoints from sources you trust, and inspect untrusted ones in a sandbox "
    "(e.g. with pickletools) rather than loading them"
)


# --------------------------------------------------------------------------- path stand-ins


def _path_stand_in(pure_cls: type, name: str) -> type:
    """A class standing in for ``pathlib.<name>``: calling it yields a plain ``str``.

    Paths are pickled as ``REDUCE(cls, parts)``, which torch turns into ``cls(*parts)``; the
    ``str`` is built by the corresponding *pure* path class (no file-system access).  A BUILD
    on the resulting ``str`` is rejected by torch."""

    def __new__(cls, *parts: Any) -> str:  # noqa: N807 - mimics a constructor
        for p in parts:
            if not isinstance(p, str):
                raise pickle.UnpicklingError(
                    f"Refused: pathlib.{name} part has type {type(p).__name__}, expected str"
                )
        return str(pure_cls(*parts))

    return type(f"_{name}StandIn", (), {"__new__": __new__, "__slots__": (), "__module__": __name__})


#: ``(stand_in, "pathlib.<Class>")`` pairs for ``extra_globals``: pickled ``pathlib`` paths
#: (``PosixPath``, ``PurePosixPath``, ``Path``, ``WindowsPath``, ``PureWindowsPath``) load as ``str``.
PATH_STAND_INS: tuple[tuple[type, str], ...] = (
    (_path_stand_in(PurePosixPath, "PosixPath"), "pathlib.PosixPath"),
    (_path_stand_in(PurePosixPath, "PurePosixPath"), "pathlib.PurePosixPath"),
    (_path_stand_in(PurePosixPath, "Path"), "pathlib.Path"),
    (_path_stand_in(PureWindowsPath, "WindowsPath"), "pathlib.WindowsPath"),
    (_path_stand_in(PureWindowsPath, "PureWindowsPath"), "pathlib.PureWindowsPath"),
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


def load_checkpoint_file(path: str | os.PathLike, extra_globals: Iterable[tuple[Any, str]] = ()) -> Any:
    """Load a ``torch.save`` file without ever executing code from it.

    Uses ``torch.load(path, map_location="cpu", weights_only=True)`` with ``extra_globals``
    (``(stand_in, "module.QualName")`` pairs) temporarily allow-listed: for this load only, and
    under a lock, so that concurrent loads do not see or remove each other's entries.  Returns
    the raw top-level object; a pickled name from ``extra_globals`` comes back as whatever its
    stand-in builds.

    Raises :class:`~utils.errors.CheckpointError` for a missing/unreadable path, a file that is
    not a PyTorch checkpoint, a truncated or corrupt file, or a file that references anything
    outside the allow-list.
    """
    extra = list(extra_globals)
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
            with torch.serialization.safe_globals(extra):
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

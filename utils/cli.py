"""Command-line plumbing: user errors become one line on stderr and exit status 2; argument
parsing with one-line errors; progress bars on stderr."""
from __future__ import annotations

import argparse
import errno
import functools
import sys
from typing import Callable

from tqdm import tqdm

from utils.errors import UserError
from utils.malloc import tune_malloc

#: Exception types that describe bad user input rather than bugs.
USER_ERRORS: tuple[type, ...] = (UserError, FileNotFoundError)
#: OSError numbers that describe the user's paths, permissions or disk rather than a bug.
USER_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOENT", "EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT",
                                                     "ENOTDIR", "EISDIR", "EEXIST", "ENAMETOOLONG")
                        if hasattr(errno, n))


#: Help of the ``--trust_code`` flags (TorchScript metric networks).
TRUST_CODE_HELP = ("load TorchScript metric networks (--arcface, --discriminator): this RUNS CODE stored in the file "
                   "(it can read, write or delete your files); use only with files from a source you trust")


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else e.__class__.__name__


def main_guard(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a ``main`` so that user errors print ``error: <message>`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> int:
        tune_malloc()
        try:
            code = fn(*args, **kwargs)
        except USER_ERRORS as e:
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        except OSError as e:
            if e.errno not in USER_ERRNOS:
                raise
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return int(code or 0)

    return wrapper


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2 through :func:`main_guard`)."""

    def error(self, message: str):  # noqa: D401
        raise UserError(f"{message} (see --help)")


def progress(total: int, desc: str, unit: str = "img", enabled: bool = True) -> tqdm:
    """A progress bar on stderr that disappears when done (off when stderr is not a terminal)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, file=sys.stderr,
                leave=False)

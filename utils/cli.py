"""Command-line plumbing: user errors become one line on stderr and exit status 2."""
from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
    """A problem with the user's input; printed as one line, no traceback."""


def user_error_types() -> tuple[type, ...]:
    """Exception types that describe bad user input rather than bugs."""
    from model.config import ConfigError
    from utils.image_io import ImageError
    from utils.official_checkpoint import CheckpointError

    return (UserError, ConfigError, ImageError, CheckpointError, FileNotFoundError)


def main_guard(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a ``main`` so that user errors print ``error: <message>`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> int:
        from utils.malloc import tune_malloc

        tune_malloc()
        try:
            code = fn(*args, **kwargs)
        except user_error_types() as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            print(f"error: {msg}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        return int(code or 0)

    return wrapper

"""Keep glibc from handing freed tensor memory back to the kernel after every step.

With glibc's defaults, every large tensor freed at the end of a training or inference step is
returned to the kernel (``munmap``/trim) and faulted in again on the next step; on a CPU this
costs about as much system time as the arithmetic itself (seen: 50% of CPU time in the kernel,
1.49 -> 1.27 s per step of the default SynthFaces training). Raising the mmap and trim thresholds
keeps that memory in the process. Nothing changes numerically. Environment variables the user
set (``MALLOC_MMAP_THRESHOLD_`` ...) win; on other C libraries this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

_done = False


def tune_malloc() -> bool:
    """Raise glibc's mmap/trim thresholds once per process; True when applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("IAFACES_NO_MALLOC_TUNING"):
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = (mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
          and mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1
          and mallopt(M_TOP_PAD, 256 * 1024 * 1024) == 1)
    _done = ok
    return ok

"""Device selection shared by every command (``--device auto|cpu|cuda[:N]``)."""
from __future__ import annotations

from typing import Union

import torch

from utils.errors import DeviceError


def resolve_device(spec: Union[str, torch.device, None] = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU -> ValueError."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was requested but no CUDA GPU is visible; use --device cpu or auto")
        return torch.device(spec)
    if spec == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N")

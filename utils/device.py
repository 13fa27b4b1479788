"""Device selection shared by every command (``--device auto|cpu|cuda[:N]``) and the choices that
follow from a device: bf16 autocast, pinned batches, DDP's device arguments, the collective
backend."""
from __future__ import annotations

from typing import Union

import torch

from utils.errors import DeviceError


def resolve_device(spec: Union[str, torch.device, None] = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU, or ``cuda:N`` without
    GPU N -> DeviceError."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was requested but no CUDA GPU is visible; use --device cpu or auto")
        try:
            device = torch.device(spec)
        except RuntimeError:
            raise DeviceError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N") from None
        if (device.index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: {torch.cuda.device_count()} CUDA GPU(s) are visible; use cuda:0 to "
                              f"cuda:{torch.cuda.device_count() - 1}")
        return device
    if spec == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU of compute capability 8.0 or newer
    (Ampere on; ``cuda`` without an index: the current GPU), a ROCm GPU, or a CPU whose oneDNN has
    bf16 kernels (AVX512-BF16 or AMX). Elsewhere bf16 runs emulated: older GPUs pass
    ``torch.cuda.is_bf16_supported()`` by emulation, and a CPU without them falls back to scalar
    kernels, tens of times slower than float32 (measured here: a 3x3 conv 24 s in bf16 against
    0.33 s in float32 on an AVX2-only CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        if torch.version.hip:
            return True  # as torch.cuda.is_bf16_supported: every ROCm GPU it runs on
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_capability(index)[0] >= 8
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pin_memory(device: torch.device) -> bool:
    """Whether a data loader feeding ``device`` pins its batches (page-locked memory copies to a
    GPU asynchronously; for a CPU it is only a cost)."""
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def ddp_device_args(device: torch.device) -> dict:
    """DistributedDataParallel's device arguments for a module on ``device``: a GPU's index
    (one GPU per process; ``cuda`` without an index: the current GPU), none for a CPU module
    (DDP refuses ``device_ids`` there)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return {"device_ids": [index], "output_device": index}
    return {"device_ids": None}


def process_group_backend(device_type: str) -> str:
    """The collective backend for processes training on ``device_type``: NCCL between GPUs, Gloo
    between CPU processes (NCCL has no CPU tensors)."""
    return "nccl" if device_type == "cuda" else "gloo"


def set_threads(threads: Union[int, None]) -> None:
    """``--threads N`` of every command: torch's CPU threads per call (``None``: torch's choice, one
    per core). Fewer threads than cores keep a run fast when another busy program shares the CPU."""
    if threads is None:
        return
    if threads < 1:
        raise DeviceError(f"--threads {threads}: give at least 1 (or leave it out for one per core)")
    torch.set_num_threads(threads)

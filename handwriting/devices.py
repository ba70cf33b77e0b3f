"""Which device to run on: one rule for training, writing and evaluating."""

from __future__ import annotations

import os

import torch

from .errors import HandwritingError

__all__ = ["DeviceError", "bf16_matmul_supported", "resolve_device"]


class DeviceError(HandwritingError, ValueError):
    """The device asked for does not exist here (no CUDA, an unknown name)."""


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → a device this PyTorch can use, or a :class:`DeviceError`."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"device {name!r}: not a device this package runs on; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but this PyTorch sees no CUDA GPU; use --device cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered from 0; use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return dev


# oneDNN's ISA names that include native bf16 (ONEDNN_MAX_CPU_ISA caps what oneDNN uses; CI and tests set it to
# stand in for a CPU without bf16)
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
              "AVX10_2_512_AMX_2", "ALL", "DEFAULT")


def bf16_matmul_supported(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 matmuls are native (fast) on ``device``: CUDA GPUs with bf16, CPUs with AVX-512-BF16 or
    AMX.  Elsewhere PyTorch emulates bf16 (slower than fp32) and some oneDNN kernels (the LSTM) are missing."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if cap and cap.strip().upper() not in _BF16_ISAS:
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch
        return False

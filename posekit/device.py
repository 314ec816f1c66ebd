"""Choosing the torch device from a `--device` flag (one place for every command).

`check_device` is the cheap, torch-free check every `--device` option runs at flag-parse time
(`callback=check_device`); `resolve_device` turns the name into a torch.device where one is used.
"""

from __future__ import annotations

import re

from posekit.errors import UsageError

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"


def check_device(device: str) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps', else a usage error naming --device."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise UsageError(f"--device {device!r}: use {DEVICE_NAMES}")
    return device


def resolve_device(device="auto"):
    """'auto' -> the first CUDA GPU when there is one, else the CPU. 'cuda' (or 'mps') without
    that hardware, 'cuda:N' past the GPUs visible, or a name torch does not know, is a usage
    error rather than a crash deep inside torch."""
    import torch

    if isinstance(device, torch.device):
        return device
    if check_device(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= (count := torch.cuda.device_count()):
        visible = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise UsageError(f"--device {device}: only {count} CUDA GPU{'s are' if count > 1 else ' is'} visible "
                         f"({visible}); use --device {'cuda:0' if count == 1 else 'one of those'}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: Apple's MPS is not available here; use --device cpu")
    return dev

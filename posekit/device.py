"""Choosing the torch device from a `--device` flag (one place for every command)."""

from __future__ import annotations

from posekit.errors import UsageError


def resolve_device(device="auto"):
    """'auto' -> the first CUDA GPU when there is one, else the CPU. 'cuda' without a GPU, or a
    name torch does not know, is a usage error rather than a crash deep inside torch."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device {device!r}: use auto, cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is visible here; use --device cpu")
    return dev

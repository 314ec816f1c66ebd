"""Pose transfer with Wan2.2-Animate (being built)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WAN_MODEL = "Wan-AI/Wan2.2-Animate-14B-Diffusers"


@dataclass(frozen=True)
class WanOptions:
    """What `--method wan` takes from the command line."""

    model: str = DEFAULT_WAN_MODEL
    prompt: str = ""
    negative_prompt: str = ""
    steps: int = 20
    guidance: float = 1.0
    seed: int = 0
    device: str = "auto"
    offload: str = "none"  # none | model | group
    character: str = "cutout"  # cutout | photo
    segment_frames: int = 77
    prev_frames: int = 1


class WanMethod:
    Options = WanOptions

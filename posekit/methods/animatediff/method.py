"""Pose transfer with AnimateDiff: a motion module couples the frames of a clip (being built)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from posekit.methods.diffusion.models import DEFAULT_CONTROLNET, DEFAULT_MODEL

DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"


@dataclass(frozen=True)
class AnimateDiffOptions:
    """What `--method animatediff` takes from the command line."""

    model: str = DEFAULT_MODEL
    model_config: str | Path | None = None
    controlnet: str | None = DEFAULT_CONTROLNET
    lora: str | None = None
    motion_adapter: str | None = None  # None: DEFAULT_MOTION_ADAPTER (AnimateLCM with lcm)
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.6  # with init="warp"
    steps: int = 20
    guidance: float = 7.5
    controlnet_scale: float = 1.0
    seed: int = 0
    init: str = "none"  # none (text-to-video under ControlNet) | warp (video-to-video)
    device: str = "auto"
    scheduler: str = "unipc"
    offload: str = "none"
    safety_checker: bool = False
    ip_adapter: str | None = None
    ip_adapter_scale: float = 0.6
    lcm: bool = False
    context: int = 16
    context_overlap: int = 4


class AnimateDiffMethod:
    Options = AnimateDiffOptions

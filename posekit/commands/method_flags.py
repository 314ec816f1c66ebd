"""The method flags `posekit animate` and `posekit transfer` share, defined once (and the options
several other commands share: --device, --mixed-precision).

`@with_method_flags` adds every method's own flags (`--checkpoint`, `--model`, `--background`,
...) to a command's signature, where Typer reads them, and the command gets them in its
`**method_flags`. A flag is named after the field of the method's options it fills
(`--batch-size` -> PatnOptions.batch_size); `options_for` builds the options from them field by
field, and tests/test_flags.py checks that every field has its flag in both commands and every
[method] flag its field. Flags both commands have but word differently (`--seed`, `--columns`)
stay in each command. Bad values fail before any work: what a method needs given at all
(`check_required_flags`: --method gan without --checkpoint) before the command starts, each
value when its options are made (a missing local --model path, a --checkpoint that is not one).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from posekit.checks import check_mixed_precision, finite
from posekit.device import check_device

# options of several commands, each defined here once: --device (animate, transfer, extract-pose,
# prepare-dataset, train-gan, evaluate-gan; dreambooth's takes auto or cpu), --mixed-precision
# (train-gan, dreambooth)
DEVICE = typer.Option("auto", "--device", callback=check_device, metavar="DEVICE", help="Where the models run: auto (the first CUDA GPU if there is one, else the CPU) | cpu | cuda[:N] | mps. A run whose models all work on the CPU says --device has no effect.")


def warn_if_device_unused(detector: str, device: str) -> None:
    """extract-pose and prepare-dataset: BlazePose runs on the CPU, so a --device given with it
    does nothing; say so once."""
    if detector == "blazepose" and device != "auto":
        from posekit.console import warn

        warn("--device has no effect here: --detector blazepose runs on the CPU")


def check_training_device(device: str) -> str:
    """dreambooth's --device: auto or cpu; GPUs are chosen the way accelerate chooses them."""
    from posekit.errors import UsageError

    if device not in ("auto", "cpu"):
        raise UsageError(f"--device {device!r}: use auto or cpu (choose GPUs with CUDA_VISIBLE_DEVICES or "
                         "accelerate launch)")
    return device


# dreambooth trains through accelerate, which picks its GPUs from the environment
TRAINING_DEVICE = typer.Option("auto", "--device", callback=check_training_device, metavar="DEVICE", help="auto (the GPU accelerate finds, else the CPU) | cpu. Choose GPUs with CUDA_VISIBLE_DEVICES, or train on several under `accelerate launch`.")
MIXED_PRECISION = typer.Option("no", "--mixed-precision", callback=check_mixed_precision, metavar="PRECISION", help="no | fp16 (a CUDA GPU) | bf16.")
SOURCE_POSE = typer.Option(None, "--source-pose", metavar="FILE.json", help="OpenPose JSON of the photo's pose (else detected).")
# warp
BACKGROUND = typer.Option("keep", "--background", help="[warp] keep | transparent | #rrggbb.")
# gan
CHECKPOINT = typer.Option(None, "--checkpoint", help="[gan] Run folder of train-gan, our .safetensors, or an official latest_net_netG.pth.")
DATASET = typer.Option(None, "--dataset", help="[gan] Preset for official weights: deepfashion | market1501.")
BATCH_SIZE = typer.Option(8, "--batch-size", min=1, help="[gan] Targets per forward pass.")
# diffusion, animatediff, wan: a flag left unset (None) takes the chosen method's own default
MODEL = typer.Option(None, "--model", help="[diffusion, animatediff, wan] Hub id, diffusers folder, or (SD) a .safetensors/.ckpt file (default: stable-diffusion-v1-5/stable-diffusion-v1-5; wan: Wan-AI/Wan2.2-Animate-14B-Diffusers).")
MODEL_CONFIG = typer.Option(None, "--model-config", help="[diffusion, animatediff] Diffusers config folder for a single-file --model (offline).")
CONTROLNET = typer.Option("lllyasviel/control_v11p_sd15_openpose", "--controlnet", help="[diffusion, animatediff] Hub id, folder, or 'none'.")
LORA = typer.Option(None, "--lora", help="[diffusion, animatediff] LoRA weights file or folder.")
PROMPT = typer.Option("", "--prompt", help="[diffusion, animatediff, wan] Text prompt.")
NEGATIVE_PROMPT = typer.Option("", "--negative-prompt", help="[diffusion, animatediff, wan] Negative prompt.")
STRENGTH = typer.Option(None, "--strength", callback=finite(0.0, 1.0), help="[diffusion, animatediff] img2img strength, 0 to 1 (default 0.75; animatediff: 0.6 with --init warp).")
STEPS = typer.Option(None, "--steps", min=1, help="[diffusion, animatediff, wan] Denoising steps (default 20; with --lcm 6).")
GUIDANCE = typer.Option(None, "--guidance", callback=finite(0.0, 50.0), help="[diffusion, animatediff, wan] Classifier-free guidance scale, 0 to 50 (default 7.5; with --lcm 1.5; wan 1.0).")
CONTROLNET_SCALE = typer.Option(1.0, "--controlnet-scale", callback=finite(0.0, 5.0), help="[diffusion, animatediff] ControlNet conditioning scale (0 to 5).")
INIT = typer.Option(None, "--init", help="[diffusion] img2img start: warp (default) | source. [animatediff] none (default) | warp (video-to-video).")
SHEET = typer.Option(False, "--sheet", help="[diffusion] Generate all frames in one pass on one canvas (consistent character).")
SCHEDULER = typer.Option(None, "--scheduler", help="[diffusion, animatediff] unipc (default) | dpm++ | ddim | euler-a | model (the folder's own); --lcm uses lcm.")
OFFLOAD = typer.Option("none", "--offload", help="[diffusion, animatediff, wan] GPU memory saving: none | model (CPU offload per model) | sequential (diffusion, animatediff: slowest, least memory) | group (wan: blocks streamed from CPU memory).")
SAFETY_CHECKER = typer.Option(False, "--safety-checker", help="[diffusion, animatediff] Run the model's safety checker on every frame (downloads it; flagged frames come out black, with a warning).")
IP_ADAPTER = typer.Option(None, "--ip-adapter", help="[diffusion, animatediff] Keep the person's identity: h94/IP-Adapter (ip-adapter-plus_sd15 + its image encoder), a folder or a .safetensors/.bin file.")
IP_ADAPTER_SCALE = typer.Option(0.6, "--ip-adapter-scale", callback=finite(0.0, 2.0), help="[diffusion, animatediff] How strongly the IP-Adapter image steers the frames (0 to 2).")
LCM = typer.Option(False, "--lcm", help="[diffusion, animatediff] Few steps: LCM-LoRA for SD 1.5 (animatediff: AnimateLCM).")
# animatediff
MOTION_ADAPTER = typer.Option(None, "--motion-adapter", help="[animatediff] Motion module: hub id or folder (default guoyww/animatediff-motion-adapter-v1-5-3; with --lcm wangfuyun/AnimateLCM).")
CONTEXT = typer.Option(16, "--context", min=2, help="[animatediff] Frames the motion module sees at once; longer clips use overlapping windows.")
CONTEXT_OVERLAP = typer.Option(4, "--context-overlap", min=0, help="[animatediff] Frames shared by neighbouring windows (one less than --context at most; more becomes half of --context).")
# wan
CHARACTER = typer.Option("cutout", "--character", help="[wan] The character image: cutout (the person on white) | photo (with its background).")
SEGMENT_FRAMES = typer.Option(77, "--segment-frames", min=5, help="[wan] Frames per generated segment (4k+1); longer clips are generated segment by segment.")
PREV_FRAMES = typer.Option(1, "--prev-frames", min=1, help="[wan] Frames of the previous segment that condition the next (1 or 5).")
RESOLUTION = typer.Option("480p", "--resolution", help="[wan] Largest frame area: 480p (832x480, default) | 720p (1280x720: sharper, about 2.3x the tokens per frame, more time and memory); a smaller photo is not enlarged.")


# (parameter name, type, flag) of every method's own flags, in the order --help lists them
METHOD_FLAGS = [
    ("background", str, BACKGROUND),
    ("checkpoint", Optional[str], CHECKPOINT), ("dataset", Optional[str], DATASET), ("batch_size", int, BATCH_SIZE),
    ("model", Optional[str], MODEL), ("model_config", Optional[Path], MODEL_CONFIG), ("controlnet", str, CONTROLNET),
    ("lora", Optional[str], LORA), ("prompt", str, PROMPT), ("negative_prompt", str, NEGATIVE_PROMPT),
    ("strength", Optional[float], STRENGTH), ("steps", Optional[int], STEPS), ("guidance", Optional[float], GUIDANCE),
    ("controlnet_scale", float, CONTROLNET_SCALE), ("init", Optional[str], INIT), ("sheet", bool, SHEET),
    ("scheduler", Optional[str], SCHEDULER), ("offload", str, OFFLOAD), ("safety_checker", bool, SAFETY_CHECKER),
    ("ip_adapter", Optional[str], IP_ADAPTER), ("ip_adapter_scale", float, IP_ADAPTER_SCALE), ("lcm", bool, LCM),
    ("motion_adapter", Optional[str], MOTION_ADAPTER), ("context", int, CONTEXT),
    ("context_overlap", int, CONTEXT_OVERLAP),
    ("character", str, CHARACTER), ("segment_frames", int, SEGMENT_FRAMES), ("prev_frames", int, PREV_FRAMES),
    ("resolution", str, RESOLUTION),
]


def with_method_flags(command):
    """Append METHOD_FLAGS to `command`'s signature (Typer builds its options from the signature);
    the command receives them as keyword arguments in its **method_flags, after
    `check_required_flags` has looked at them (before the command does anything)."""
    import functools

    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=flag, annotation=kind)
              for name, kind, flag in METHOD_FLAGS]

    @functools.wraps(command)
    def checked(*args, **kwargs):
        check_required_flags(kwargs.get("method"), kwargs)
        return command(*args, **kwargs)

    checked.__signature__ = signature.replace(parameters=own + shared)
    return checked


def check_required_flags(method, flags: dict) -> None:
    """What a command line must give for `--method method`, said before any work (the options
    check the values given: `options_for`): --method gan needs a --checkpoint that exists. On the
    command line a --checkpoint is always a path (there are no hub ids for it), so any name
    that is not there is a typo; in the library PatnOptions() may go without one (weights passed
    in as `models=`)."""
    from posekit.errors import UsageError

    if method != "gan":
        return
    checkpoint = flags.get("checkpoint")
    if checkpoint is None:
        raise UsageError("--method gan needs --checkpoint: a train-gan run folder, a netG .safetensors, "
                         "or the authors' latest_net_netG.pth")
    if not Path(str(checkpoint)).expanduser().exists():
        raise UsageError(f"--checkpoint {checkpoint}: no such file or folder")


def options_for(method: str, flags: dict):
    """The options of `--method method` (its dataclass) from the command's flags (name -> value),
    one field at a time: a field without a flag is a KeyError here. A flag of another method given
    a value is ignored with a warning (`--method wan --lcm` must not silently do nothing; a script
    looping over methods with one set of flags still runs). A flag left unset (None)
    gives the field the method's own default (--steps is 20 for diffusion, 20 for wan...)."""
    from dataclasses import fields

    from posekit.errors import UsageError
    from posekit.methods import method_class

    options = method_class(method).Options  # an unknown --method is a usage error
    names = [f.name for f in fields(options)]
    if flags["sheet"] and "sheet" not in names:
        raise UsageError("--sheet generates all frames in one diffusion pass; use it with --method diffusion")
    given = {name: flag for name, _, flag in METHOD_FLAGS
             if flags.get(name) is not None and flags.get(name, flag.default) != flag.default}
    for name, flag in given.items():  # a flag given to a method that ignores it: say so, once
        if name not in names:
            from posekit.console import warn

            warn(f"{flag.param_decls[0]} is for --method {flag_methods(flag)}; --method {method} ignores it")
    if flags.get("device", "auto") != "auto" and "device" not in names:  # warp: numpy and OpenCV, no torch device
        from posekit.console import warn

        warn(f"--device has no effect here: --method {method} runs on the CPU")
    made = options(**{name: flags[name] for name in names if flags[name] is not None})
    for name, idle, why in IDLE:  # and one the method takes but these options leave idle
        if name in given and name in names and idle(made):
            from posekit.console import warn

            warn(f"{given[name].param_decls[0]} has no effect here: {why}")
    for together, happens, note in NOTES:  # flags that, together, do less than they seem to
        if all(name in given and name in names for name in together) and happens(made):
            from posekit.console import warn

            warn(note)
    return made


# (flag, when the options leave it idle, why): a flag the method takes that does nothing with
# the others given (the frames are the same with or without it), said once like another method's flag
IDLE = [
    ("negative_prompt", lambda o: o.guidance is not None and o.guidance <= 1.0,
     "with --guidance 1 or less there is no classifier-free guidance to steer away from it"),
    ("strength", lambda o: getattr(o, "init", None) == "none", "--init none starts every frame from noise"),
    ("ip_adapter_scale", lambda o: o.ip_adapter is None, "it scales --ip-adapter, which is not given"),
    ("ip_adapter", lambda o: o.ip_adapter_scale == 0,
     "--ip-adapter-scale 0 turns it off, so neither it nor its image encoder is loaded"),
    ("controlnet_scale", lambda o: str(o.controlnet).lower() == "none", "--controlnet none"),
    ("model_config", lambda o: o.model is not None and Path(str(o.model)).expanduser().is_dir(),
     "it gives the configs of a single-file --model, and --model is a folder"),
]


def _not_animatelcm(o) -> bool:
    from posekit.methods.animatediff.method import ANIMATELCM

    return str(o.motion_adapter) != ANIMATELCM


# (flags given together, when, the warning): flags that do part of what they seem to together
NOTES = [
    (("lcm", "motion_adapter"), _not_animatelcm,
     "--lcm with --motion-adapter: AnimateLCM's LoRA is still loaded, though it was distilled with AnimateLCM's "
     "own motion module, which --motion-adapter replaces; leave out --motion-adapter to use AnimateLCM's"),
]


def flag_methods(flag) -> str:
    """The methods a flag's help names in [brackets]: "[diffusion, animatediff]" -> "diffusion|animatediff"."""
    import re

    from posekit.methods import METHODS

    named = [m for group in re.findall(r"\[([^\]]+)\]", flag.help or "") for m in group.split(", ")]
    return "|".join(m for m in METHODS if m in named)

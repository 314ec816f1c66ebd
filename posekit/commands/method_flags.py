"""The method flags `posekit animate` and `posekit transfer` share, defined once.

`@with_method_flags` adds every method's own flags (`--checkpoint`, `--model`, `--background`,
...) to a command's signature, where Typer reads them, and the command gets them in its
`**method_flags`. A flag is named after the field of the method's options it fills
(`--batch-size` -> PatnOptions.batch_size); `options_for` builds the options from them field by
field, and tests/test_flags.py checks that every field has its flag in both commands and every
[method] flag its field. Flags both commands have but word differently (`--seed`, `--columns`)
stay in each command.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from posekit.checks import finite
from posekit.device import check_device

DEVICE = typer.Option("auto", "--device", callback=check_device, help="auto | cpu | cuda[:N] | mps.")
SOURCE_POSE = typer.Option(None, "--source-pose", help="OpenPose JSON of the photo's pose (else detected).")
# warp
BACKGROUND = typer.Option("keep", "--background", help="[warp] keep | transparent | #rrggbb.")
# gan
CHECKPOINT = typer.Option(None, "--checkpoint", help="[gan] Run folder of train-gan, our .safetensors, or an official latest_net_netG.pth.")
DATASET = typer.Option(None, "--dataset", help="[gan] Preset for official weights: deepfashion | market1501.")
BATCH_SIZE = typer.Option(8, "--batch-size", min=1, help="[gan] Targets per forward pass.")
# diffusion
MODEL = typer.Option("stable-diffusion-v1-5/stable-diffusion-v1-5", "--model", help="[diffusion] Hub id, diffusers folder, or .safetensors/.ckpt file.")
MODEL_CONFIG = typer.Option(None, "--model-config", help="[diffusion] Diffusers config folder for a single-file --model (offline).")
CONTROLNET = typer.Option("lllyasviel/control_v11p_sd15_openpose", "--controlnet", help="[diffusion] Hub id, folder, or 'none'.")
LORA = typer.Option(None, "--lora", help="[diffusion] LoRA weights file or folder.")
PROMPT = typer.Option("", "--prompt", help="[diffusion] Text prompt.")
NEGATIVE_PROMPT = typer.Option("", "--negative-prompt", help="[diffusion] Negative prompt.")
STRENGTH = typer.Option(0.75, "--strength", callback=finite(0.0, 1.0), help="[diffusion] img2img strength (0 to 1).")
STEPS = typer.Option(30, "--steps", min=1, help="[diffusion] Denoising steps.")
GUIDANCE = typer.Option(7.5, "--guidance", callback=finite(0.0, 50.0), help="[diffusion] Classifier-free guidance scale (0 to 50).")
CONTROLNET_SCALE = typer.Option(1.0, "--controlnet-scale", callback=finite(0.0, 5.0), help="[diffusion] ControlNet conditioning scale (0 to 5).")
INIT = typer.Option("source", "--init", help="[diffusion] img2img start: source | warp.")
SHEET = typer.Option(False, "--sheet", help="[diffusion] Generate all frames in one pass on one canvas (consistent character).")


# (parameter name, type, flag) of every method's own flags, in the order --help lists them
METHOD_FLAGS = [
    ("background", str, BACKGROUND),
    ("checkpoint", Optional[str], CHECKPOINT), ("dataset", Optional[str], DATASET), ("batch_size", int, BATCH_SIZE),
    ("model", str, MODEL), ("model_config", Optional[Path], MODEL_CONFIG), ("controlnet", str, CONTROLNET),
    ("lora", Optional[str], LORA), ("prompt", str, PROMPT), ("negative_prompt", str, NEGATIVE_PROMPT),
    ("strength", float, STRENGTH), ("steps", int, STEPS), ("guidance", float, GUIDANCE),
    ("controlnet_scale", float, CONTROLNET_SCALE), ("init", str, INIT), ("sheet", bool, SHEET),
]


def with_method_flags(command):
    """Append METHOD_FLAGS to `command`'s signature (Typer builds its options from the signature);
    the command receives them as keyword arguments in its **method_flags."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=flag, annotation=kind)
              for name, kind, flag in METHOD_FLAGS]
    command.__signature__ = signature.replace(parameters=own + shared)
    return command


def options_for(method: str, flags: dict):
    """The options of `--method method` (its dataclass) from the command's flags (name -> value),
    one field at a time: a field without a flag is a KeyError here. The flags of other methods are
    left unused, as before, except --sheet, which only diffusion has."""
    from dataclasses import fields

    from posekit.errors import UsageError
    from posekit.methods import method_class

    options = method_class(method).Options  # an unknown --method is a usage error
    names = [f.name for f in fields(options)]
    if flags["sheet"] and "sheet" not in names:
        raise UsageError("--sheet generates all frames in one diffusion pass; use it with --method diffusion")
    return options(**{name: flags[name] for name in names})

"""The method flags `posekit animate` and `posekit transfer` share, defined once.

Use as defaults: `checkpoint: Optional[str] = CHECKPOINT`. Which method takes which flag is
`posekit.methods.METHOD_FLAGS`.
"""

from __future__ import annotations

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

"""`posekit transfer`: one source photo, one or more target poses -> one image per target."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def transfer(
    source: Path = typer.Argument(..., help="Photo of the person to move."),
    pose: list[str] = typer.Option(..., "--pose", "-p", help="Target pose: OpenPose JSON, skeleton image, photo (its pose is detected), motion name or folder. Repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (one target) or folder (several targets)."),
    method: str = typer.Option("diffusion", "--method", "-m", help="warp | gan | diffusion."),
    source_pose: Optional[Path] = typer.Option(None, "--source-pose", help="OpenPose JSON of the source (else detected)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same image)."),
    # gan
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="[gan] Run folder of train-gan, our .safetensors, or an official latest_net_netG.pth."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="[gan] Preset for official weights: deepfashion | market1501."),
    batch_size: int = typer.Option(8, "--batch-size", help="[gan] Targets per forward pass."),
    # diffusion
    model: str = typer.Option("stable-diffusion-v1-5/stable-diffusion-v1-5", "--model", help="[diffusion] Hub id, diffusers folder, or .safetensors/.ckpt file."),
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="[diffusion] Diffusers config folder for a single-file --model (offline)."),
    controlnet: str = typer.Option("lllyasviel/control_v11p_sd15_openpose", "--controlnet", help="[diffusion] Hub id, folder, or 'none'."),
    lora: Optional[str] = typer.Option(None, "--lora", help="[diffusion] LoRA weights file or folder."),
    prompt: str = typer.Option("", "--prompt", help="[diffusion] Text prompt."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="[diffusion] Negative prompt."),
    strength: float = typer.Option(0.75, "--strength", min=0.0, max=1.0, help="[diffusion] img2img strength."),
    steps: int = typer.Option(30, "--steps", min=1, help="[diffusion] Denoising steps."),
    guidance: float = typer.Option(7.5, "--guidance", help="[diffusion] Classifier-free guidance scale."),
    controlnet_scale: float = typer.Option(1.0, "--controlnet-scale", help="[diffusion] ControlNet conditioning scale."),
    init: str = typer.Option("source", "--init", help="[diffusion] img2img start: source | warp."),
    # warp
    background: str = typer.Option("keep", "--background", help="[warp] keep | transparent | #rrggbb."),
):
    """Move the person in SOURCE into each target pose (one output image per target)."""
    from posekit.console import info, quiet_libraries
    from posekit.errors import UsageError
    from posekit.images import load_image, save_image

    quiet_libraries()
    from posekit.methods import load_method, method_options
    from posekit.pose.sources import load_poses, source_pose_of

    image = load_image(source)
    src_pose = source_pose_of(image, source, source_pose, device=device)
    h, w = image.shape[:2]
    targets = []
    for p in pose:
        targets += [t.fitted(w, h) for t in load_poses(p, device=device)]
    if not targets:
        raise UsageError("--pose: no target poses found")
    if len(targets) > 1 and out.suffix:
        raise UsageError(f"--out {out}: {len(targets)} target poses need an output folder, not a file name")

    flags = dict(locals())
    frames = load_method(method, image, src_pose, **method_options(method, flags))(targets)

    paths = [out] if len(targets) == 1 and out.suffix else [out / f"{i:03d}.png" for i in range(len(frames))]
    for frame, path in zip(frames, paths):
        save_image(frame, path)
    info(f"wrote {paths[0] if len(paths) == 1 else f'{len(paths)} images to {out}'}")

"""`posekit transfer`: one source photo, one or more target poses -> one image per target."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.commands import method_flags as flags
from posekit.checks import check_out


def transfer(
    source: Path = typer.Argument(..., help="Photo of the person to move."),
    pose: list[str] = typer.Option(..., "--pose", "-p", help="Target pose: OpenPose JSON, skeleton image, photo (its pose is detected), motion name or folder. Repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Output image (one target) or folder (several targets)."),
    method: str = typer.Option("warp", "--method", "-m", help="warp (offline, no model) | gan | diffusion."),
    source_pose: Optional[Path] = flags.SOURCE_POSE,
    device: str = flags.DEVICE,
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same image)."),
    # gan
    checkpoint: Optional[str] = flags.CHECKPOINT,
    dataset: Optional[str] = flags.DATASET,
    batch_size: int = flags.BATCH_SIZE,
    # diffusion
    model: str = flags.MODEL,
    model_config: Optional[Path] = flags.MODEL_CONFIG,
    controlnet: str = flags.CONTROLNET,
    lora: Optional[str] = flags.LORA,
    prompt: str = flags.PROMPT,
    negative_prompt: str = flags.NEGATIVE_PROMPT,
    strength: float = flags.STRENGTH,
    steps: int = flags.STEPS,
    guidance: float = flags.GUIDANCE,
    controlnet_scale: float = flags.CONTROLNET_SCALE,
    init: str = flags.INIT,
    # warp
    background: str = flags.BACKGROUND,
):
    """Move the person in SOURCE into each target pose (one output image per target)."""
    from posekit.console import info, quiet_libraries
    from posekit.errors import UsageError
    from posekit.images import load_image, save_image

    one_file = bool(out.suffix) and not out.is_dir()  # else a folder of 000.png, 001.png, ...
    check_out(out, file=one_file)
    quiet_libraries()
    from posekit.methods import load_method, method_options
    from posekit.pose.sources import load_poses, source_pose_of

    image = load_image(source)
    src_pose = source_pose_of(image, source, source_pose, device=device)
    h, w = image.shape[:2]
    targets = []
    for p in pose:
        targets += [t.fitted(w, h) for t in load_poses(p, device=device, canvas=(w, h))]  # no canvas: photo pixels
    if not targets:
        raise UsageError("--pose: no target poses found")
    if len(targets) > 1 and one_file:
        raise UsageError(f"--out {out}: {len(targets)} target poses need an output folder, not a file name")

    given = dict(locals())
    frames = load_method(method, image, src_pose, **method_options(method, given))(targets)

    paths = [out] if len(targets) == 1 and one_file else [out / f"{i:03d}.png" for i in range(len(frames))]
    for frame, path in zip(frames, paths):
        save_image(frame, path)
    info(f"wrote {paths[0] if len(paths) == 1 else f'{len(paths)} images to {out}'}")

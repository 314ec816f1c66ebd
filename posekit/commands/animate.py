"""`posekit animate` (photo + pose sequence -> frames, sheet, GIF, Aseprite JSON) and
`posekit evaluate` (pose fidelity and image similarity of generated frames)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.commands import method_flags as flags
from posekit.checks import FPS, check_out, finite, parse_size


def animate(
    photo: Path = typer.Argument(..., help="Photo of the person to animate."),
    poses: str = typer.Option(..., "--poses", "-p", help="Motion name (walk, run, jump, idle, wave), folder of OpenPose JSON or skeleton images, video, or extract-pose .jsonl."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    method: str = typer.Option("warp", "--method", "-m", help="warp | gan | diffusion."),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", min=1, help="Resample the clip to N frames."),
    fps: float = typer.Option(12.0, "--fps", callback=finite(*FPS), help="Playback speed, 0.1 to 120 (GIF, sheet.json durations; a GIF shows at most 50)."),
    columns: Optional[int] = typer.Option(None, "--columns", "-c", min=1, help="Frames per row of sheet.png (default: one row up to 8 frames)."),
    size: Optional[str] = typer.Option(None, "--size", help="Frame size WxH (frames are scaled to fit and padded)."),
    retarget: bool = typer.Option(True, "--retarget/--no-retarget", help="Fit each target pose to the subject's limb lengths, scale and position."),
    fmt: list[str] = typer.Option([], "--format", "-f", help="Also write animation.webp / animation.mp4 (webp | mp4). Repeatable."),
    source_pose: Optional[Path] = flags.SOURCE_POSE,
    device: str = flags.DEVICE,
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same frames)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Measure pose fidelity of the frames (runs the detector on them)."),
    # warp
    background: str = flags.BACKGROUND,
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
    sheet: bool = typer.Option(False, "--sheet", help="[diffusion] Generate all frames in one pass on one canvas (consistent character)."),
):
    """Animate the person in PHOTO along a pose sequence: frames, sprite sheet, GIF, Aseprite JSON."""
    from posekit.console import emit_json, info, quiet_libraries

    quiet_libraries()
    from posekit.animate import animate as run
    from posekit.methods import method_options
    from posekit.methods import METHODS
    from posekit.errors import UsageError

    check_out(out)
    frame_size = parse_size(size)
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "warp":
        from posekit.methods.warp import parse_background
        parse_background(background)  # a bad colour fails before any work
    given = dict(background=background, seed=seed, checkpoint=checkpoint, dataset=dataset, device=device,
                 batch_size=batch_size, model=model, model_config=model_config, controlnet=controlnet,
                 lora=lora, prompt=prompt, negative_prompt=negative_prompt, strength=strength, steps=steps,
                 guidance=guidance, controlnet_scale=controlnet_scale, init=init)
    if sheet and method != "diffusion":
        raise UsageError("--sheet generates all frames in one diffusion pass; use it with --method diffusion")
    if sheet:  # only passed when asked, so methods without a sheet mode are not handed it
        given.update(sheet=True, columns=columns)
    # stage lines, not a spinner: the gan and diffusion methods draw their own progress bars
    summary = run(photo, poses, out, method=method, frames=frames, fps=fps, columns=columns,
                  size=frame_size, retarget=retarget, source_pose=source_pose, formats=("gif", *fmt),
                  device=device, evaluate=evaluate, options=method_options(method, given),
                  status=lambda stage: info(f"{stage}..."))
    if as_json:
        emit_json(summary)
        return
    fid = summary["pose_fidelity"]
    info(f"wrote {summary['frames']} frames ({summary['size'][0]}x{summary['size'][1]}, {method}) to {out}: "
         f"frames/, poses/, sheet.png, sheet.json, " + ", ".join(f"animation.{f}" for f in ("gif", *fmt) if f in summary["files"]))
    if fid is not None:
        info(f"pose fidelity (PCK@0.5 torso, detector on the frames vs the target poses): {fid:.2f}")
    secs = summary["seconds"]
    info(f"{summary['seconds_total']:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()))


def evaluate(
    frames_dir: Path = typer.Argument(..., help="Folder of generated frames (e.g. OUT/frames)."),
    poses: Path = typer.Option(..., "--poses", "-p", help="Folder of the target poses: <frame stem>_keypoints.json (e.g. OUT/poses)."),
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="Folder of ground-truth images with the frames' names: adds SSIM and mask-SSIM."),
    alpha: float = typer.Option(0.5, "--alpha", callback=finite(0.01, 10.0), help="PCK threshold, 0.01 to 10, as a fraction of the torso size."),
    as_json: bool = typer.Option(False, "--json", help="Print per-frame and overall scores as one JSON object on stdout."),
):
    """Score generated frames: pose fidelity (PCK vs the target poses) and, with --reference, SSIM.

    Pose fidelity: the embedded detector finds the person on each frame and PCK counts the target
    keypoints it finds within --alpha x torso size. With --reference: SSIM and mask-SSIM."""
    from posekit.console import emit_json, info, quiet_libraries

    quiet_libraries()
    from posekit.animate import evaluate_frames, format_table

    report = evaluate_frames(frames_dir, poses, reference, alpha=alpha)
    if as_json:
        emit_json(report)
    else:
        info(format_table(report))
    if report["failed"]:
        raise typer.Exit(1)

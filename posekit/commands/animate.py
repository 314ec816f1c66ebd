"""`posekit animate`: photo + pose sequence -> frames, sprite sheet, GIF, Aseprite JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.commands import method_flags as flags
from posekit.checks import FPS, check_out, finite, parse_size


@flags.with_method_flags
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
    **method_flags,  # --background, --checkpoint, --model, ...: see method_flags.with_method_flags
):
    """Animate the person in PHOTO along a pose sequence: frames, sprite sheet, GIF, Aseprite JSON."""
    from posekit.console import emit_json, info, quiet_libraries

    quiet_libraries()
    from posekit.pipeline import animate as run

    check_out(out)
    frame_size = parse_size(size)
    given = dict(method_flags, seed=seed, device=device, columns=columns)
    options = flags.options_for(method, given)  # bad option values fail here, before any work
    # stage lines, not a spinner: the gan and diffusion methods draw their own progress bars
    summary = run(photo, poses, out, method=method, options=options, frames=frames, fps=fps, columns=columns,
                  size=frame_size, retarget=retarget, source_pose=source_pose, formats=("gif", *fmt),
                  device=device, evaluate=evaluate, status=lambda stage: info(f"{stage}..."))
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


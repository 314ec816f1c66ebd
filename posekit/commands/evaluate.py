"""`posekit evaluate`: pose fidelity and image similarity of generated frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.checks import finite


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
    from posekit.evaluate import evaluate_frames, format_table

    from posekit.errors import PosekitError

    try:
        report = evaluate_frames(frames_dir, poses, reference, alpha=alpha)
    except PosekitError as e:  # --json: the report of the frames that failed, with the error
        if as_json and getattr(e, "report", None):
            emit_json({**e.report, "error": str(e)}, keep_going=True)  # (a full stdout is said, then e)
        raise
    if as_json:
        emit_json(report)
    else:
        for line in format_table(report).splitlines():  # one message a line: info keeps each on its line
            info(line)
    if report["failed"]:
        raise typer.Exit(1)

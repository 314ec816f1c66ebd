"""`posekit animate`: photo + pose sequences -> frames, a sprite sheet (one clip, or a character:
several clips, both directions, pixel art), GIF previews, Aseprite JSON and engine files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.commands import method_flags as flags
from posekit.checks import FPS, check_out, finite, parse_size
from posekit.errors import UsageError


@flags.with_method_flags
def animate(
    photo: list[str] = typer.Argument(..., help="Photo of the person to animate; or several photos, a folder of them, or - (paths on stdin): each into OUT/<photo stem>/."),
    poses: list[str] = typer.Option(..., "--poses", "-p", help="Motion name (walk, run, jump, idle, wave; walk:side for a view), folder of OpenPose JSON or skeleton images, video, or extract-pose .jsonl. Several clips (comma separated or repeated) make a character sheet, a frameTag each."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Output folder (several photos: OUT/<photo stem>/ each). A re-run replaces only what the last run wrote there; never an input or a file posekit did not write."),
    method: str = typer.Option("warp", "--method", "-m", help="warp | gan | diffusion | animatediff | wan."),
    frames: list[int] = typer.Option([], "--frames", "-n", min=1, metavar="N", help="Resample each clip to N frames (default: each motion's own); repeat once per clip for a count each."),
    fps: float = typer.Option(12.0, "--fps", callback=finite(*FPS), help="Playback speed, 0.1 to 120 (GIF, sheet.json durations; a GIF shows at most 50)."),
    columns: Optional[int] = typer.Option(None, "--columns", "-c", min=1, metavar="N", help="Frames per row of sheet.png (default: one clip, one row up to 8 frames, else a near-square grid; several clips, a row each, as long as the longest)."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH", help="Frame size WxH (frames are scaled to fit and padded)."),
    retarget: bool = typer.Option(True, "--retarget/--no-retarget", help="Fit each target pose to the subject's limb lengths, scale and position."),
    fmt: list[str] = typer.Option([], "--format", "-f", help="Also write animation.webp / animation.mp4 (webp | mp4). Repeatable or comma separated."),
    source_pose: Optional[Path] = flags.SOURCE_POSE,
    device: str = flags.DEVICE,
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same frames)."),
    mirror: bool = typer.Option(False, "--mirror", help="Add each clip's left-facing twin (walk_right / walk_left tags)."),
    trim: bool = typer.Option(False, "--trim", help="Pack each frame's non-transparent box only (spriteSourceSize / sourceSize say where it sat)."),
    export: list[str] = typer.Option([], "--export", "-e", help="Also write engine files: array (sheet_array.json, Aseprite json-array), godot (sheet.tres, Godot 4 SpriteFrames), atlas (atlas.json, Phaser/PixiJS). Repeatable or comma separated."),
    pixel_art: Optional[int] = typer.Option(None, "--pixel-art", metavar="N", help="Pixel art: cells scaled down (to --size, else 64 px tall) with one palette of at most N colours (2 to 256) for every frame, hard alpha."),
    outline: bool = typer.Option(False, "--outline", help="With --pixel-art and --background transparent: a 1-pixel outline around the figure."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout (several photos: one line per photo, JSON Lines, with the photo and the process that made it: 0 unless under accelerate launch)."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Measure pose fidelity of the frames (runs the detector on them)."),
    **method_flags,  # --background, --checkpoint, --model, ...: see method_flags.with_method_flags
):
    """Animate the person in PHOTO along pose sequences: frames, sprite sheet, GIF, Aseprite JSON."""
    from posekit.console import emit_json, info, quiet_libraries

    quiet_libraries()
    from posekit import pipeline

    check_out(out)
    frame_size = parse_size(size)
    given = dict(method_flags, seed=seed, device=device, columns=columns)
    options = flags.options_for(method, given)  # bad option values fail here, before any work
    pipeline.check_pixel_art(pixel_art, outline, options)  # --outline's flags: before a batch loads its models
    batch = photo_batch(photo, source_pose, out)
    common = dict(poses=poses, method=method, options=options, frames=frames or None, fps=fps, columns=columns,
                  size=frame_size, retarget=retarget, formats=("gif", *fmt), device=device, evaluate=evaluate,
                  mirror=mirror, trim=trim, exports=export, pixel_art=pixel_art, outline=outline)
    # stage lines, not a spinner: the gan and diffusion methods draw their own progress bars
    status = lambda stage: info(f"{stage}...")  # noqa: E731
    if batch is None:
        from posekit.errors import PosekitError

        try:
            summary = pipeline.animate(photo[0], out=out, source_pose=source_pose, status=status, **common)
        except PosekitError as e:  # --json: a document, with the error, as a batch gives for each photo
            if as_json and not isinstance(e, UsageError):
                emit_json({"photo": photo[0], "out": str(out), "error": str(e)}, keep_going=True)
            raise
        emit_json(summary, keep_going=True) if as_json else report(summary, out, method)
        return
    from posekit.console import error

    state = pipeline.launched_state(device)
    results = pipeline.animate_batch(batch, out, status=status, report=error,
                                     done=lambda r: photo_line(r, as_json), **common)
    if state is not None and state.is_main_process:  # one process tells of every photo, once all are done
        for r in results:
            photo_line(r, as_json)
    if state is None or state.is_main_process:
        batch_totals(results, out, as_json)
    if state is not None:
        state.wait_for_everyone()  # a process that exits early would have the launcher stop the rest
    if any("error" in r for r in results):
        raise typer.Exit(1)


def photo_batch(photos: list[str], source_pose, out: Path) -> list[Path] | None:
    """The photos of a batch (several paths, a folder, or "-"), or None for one photo file. A
    folder's images leave out posekit's outputs (`is_posekit_output`), so a re-run does not
    animate the last run's sheets and frames; paths given one by one are taken as they are."""
    from posekit.images import IMAGE_SUFFIXES, expand_paths

    if len(photos) == 1 and photos[0] != "-" and not Path(photos[0]).is_dir():
        return None
    if source_pose is not None:
        raise UsageError("--source-pose is the pose of one photo; leave it out for a batch (each photo's is detected)")
    batch, outputs = [], []
    for arg in photos:
        for p in expand_paths([arg], suffixes=IMAGE_SUFFIXES):
            is_output = arg != "-" and Path(arg).is_dir() and is_posekit_output(p, Path(arg), out)
            (outputs if is_output else batch).append(p)
    if not batch and outputs:  # e.g. OUT/frames of an earlier run: its frames, not photos
        raise UsageError(f"{' '.join(photos)}: no photos found, only the outputs of an earlier posekit run "
                         f"({len(outputs)} image{'s' if len(outputs) != 1 else ''}, such as {outputs[0]}); pass the "
                         "photo that run animated, or name the images themselves to animate them anyway")
    if not batch:
        raise UsageError(f"{' '.join(photos)}: no photos found ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return batch


def is_posekit_output(path: Path, folder: Path, out: Path) -> bool:
    """Whether `path`, found in the photo folder `folder`, is an output rather than a photo: it
    lies under --out (unless `folder` is --out or inside it: photos and OUT/<stem>/ side by
    side), or the manifest of a folder holding it (an earlier run's --out, the photo folder's
    own or one above or below it) lists it. Files a manifest does not list stay photos, also
    beside or below posekit's outputs."""
    import os

    from posekit.pipeline import MANIFEST, manifest_files

    real, root, into = path.resolve(), folder.resolve(), Path(out).resolve()
    if into in real.parents and not (root == into or into in root.parents):
        return True
    path = Path(os.path.abspath(path))
    for parent in path.parents:
        if (parent / MANIFEST).is_file() and path.relative_to(parent) in {Path(f) for f in manifest_files(parent) or ()}:
            return True
    return False


def report(summary: dict, out: Path, method: str) -> None:
    """One run's lines for people: what was written where, pose fidelity, seconds per stage."""
    from posekit.console import info

    fid, clips = summary["pose_fidelity"], summary["clips"]
    written = [Path(p).name for k, p in summary["files"].items() if k not in ("frames", "poses", "sheet", "sheet_json")]
    info(f"wrote {summary['frames']} frame{'s' if summary['frames'] != 1 else ''} ({summary['size'][0]}x{summary['size'][1]}, {method}"
         + (f", {len(clips)} animations: {', '.join(c['name'] for c in clips)}" if len(clips) > 1 else "")
         + f") to {out}: frames/, poses/, sheet.png, sheet.json, " + ", ".join(
             p + ("/" if p == "animations" else "") for p in written))
    if fid is not None:
        info(f"pose fidelity (PCK@0.5 torso, detector on the frames vs the target poses): {fid:.2f}")
    secs = summary["seconds"]
    info(f"{summary['seconds_total']:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()))


def photo_line(result: dict, as_json: bool) -> None:
    """One photo of a batch, as soon as it is done: --json its object (a JSON line), else a line
    (a failure has had its error line already)."""
    from posekit.console import emit_json, info

    if as_json:
        emit_json(result, keep_going=True)
    elif "error" not in result:
        info(f"{result['photo']}: {result['frames']} frames -> {result['out']} ({result['seconds_total']:.1f} s)")


def batch_totals(results: list[dict], out: Path, as_json: bool) -> None:
    """The line after a batch (not with --json, whose lines are the photos')."""
    from posekit.console import info

    if as_json:
        return
    failed = sum("error" in r for r in results)
    seconds = sum(r.get("seconds_total", 0.0) for r in results)
    info(f"animated {len(results) - failed} of {len(results)} photos into {out}"
         + (f" ({failed} failed)" if failed else "") + f", {seconds:.1f} s")

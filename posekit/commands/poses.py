"""`posekit poses list|show`: the built-in motions, and any pose source as skeleton frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.checks import FPS, check_out, finite, parse_size
from posekit.device import check_device

app = typer.Typer(help="Built-in motions and pose sequences.", no_args_is_help=True)


@app.command("list")
def list_motions(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list on stdout: name, frames, view, description of each motion."),
):
    """List the built-in motions (name, default frames, default view, description)."""
    from posekit.console import emit_json, quiet_libraries

    quiet_libraries()
    from posekit.pose.motions import MOTIONS, default_frames, default_view

    motions = [{"name": name, "frames": default_frames(name), "view": default_view(name), "description": description}
               for name, description in MOTIONS.items()]
    if as_json:
        return emit_json(motions)
    for m in motions:
        typer.echo(f"{m['name']:<6} {m['frames']:>3} frames  {m['view']:<13}  {m['description']}")


@app.command("show")
def show(
    source: str = typer.Argument(..., help="Motion name (walk, walk:side, ...), OpenPose JSON file or folder, skeleton image(s), photo(s), video, or extract-pose .jsonl."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for frame_NNN_pose.png + frame_NNN_keypoints.json."),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", min=1, help="Number of frames (motions are regenerated, other clips resampled cyclically)."),
    size: Optional[str] = typer.Option(None, "--size", help="Canvas WxH: a motion's canvas; other clips are fitted onto it. Default 512x512 for motions."),
    view: Optional[str] = typer.Option(None, "--view", help="Motions: front | three-quarter | side | three-quarter-left | side-left | yaw in degrees."),
    onto: Optional[Path] = typer.Option(None, "--onto", help="Retarget onto the person in this photo (or OpenPose JSON): their limbs, ground line and canvas."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON object per frame on stdout (as extract-pose --jsonl)."),
    gif: bool = typer.Option(False, "--gif", help="Also write DIR/preview.gif, the skeletons looping."),
    fps: float = typer.Option(12.0, "--fps", callback=finite(*FPS), help="Playback speed of --gif (0.1 to 120)."),
    device: str = typer.Option("auto", "--device", callback=check_device, help="auto | cpu | cuda[:N] | mps (pose detection in photos and videos)."),
):
    """Turn a pose source into per-frame skeleton images and OpenPose JSON files."""
    from posekit.console import emit_json, info, quiet_libraries
    from posekit.errors import UsageError

    quiet_libraries()
    if out is None and not jsonl:
        raise UsageError("poses show: pass --out DIR (skeleton PNGs + keypoint JSON) and/or --jsonl")
    if gif and out is None:
        raise UsageError("--gif: needs --out DIR to write preview.gif into")
    check_out(out)
    canvas = parse_size(size)

    from posekit.pose.detect import load_detector
    from posekit.pose.formats import jsonl_record, keypoints_json_name, skeleton_png_name, write_pose_files
    from posekit.pose.motions import MOTIONS
    from posekit.pose.sources import load_poses

    is_motion = source.partition(":")[0] in MOTIONS
    if view is not None:
        if not is_motion:
            raise UsageError(f"--view: only for built-in motions ({', '.join(MOTIONS)}), not {source}")
        source = f"{source.partition(':')[0]}:{view}"
    # one detector for the command, built only if a photo or video needs it
    with load_detector("blazepose", device=device, max_people=2, lazy=True) as detector:
        clip = load_poses(source, frames=frames, size=canvas, detector=detector)
        if canvas and not is_motion:
            clip = [p.fitted(*canvas) for p in clip]
        if onto is not None:
            clip = _retargeted(clip, onto, detector, source)

    skeletons = []
    for i, pose in enumerate(clip):
        stem = f"frame_{i:03d}"
        if out is not None:
            skeletons.append(write_pose_files([pose], out, stem, pose.size))
        if jsonl:
            record = jsonl_record(str(out / skeleton_png_name(stem)) if out is not None else stem, pose.width, pose.height, [pose])
            emit_json({**record, "frame": i})
    if gif:
        from posekit.sheet import write_gif

        write_gif(skeletons, out / "preview.gif", fps=fps)
    w, h = clip[0].size
    where = f" -> {out}/ ({skeleton_png_name('frame_000')}, {keypoints_json_name('frame_000')}, ...)" if out is not None else ""
    info(f"{source}: {len(clip)} frames, {w}x{h}{' retargeted onto ' + str(onto) if onto else ''}{where}")


def _retargeted(clip, onto: Path, detector, source: str):
    """The clip on the body of the person in `onto` (a photo, or an OpenPose JSON of them)."""
    from posekit.images import load_image
    from posekit.pipeline import warn_of_parts_left_out
    from posekit.pose.retarget import retarget
    from posekit.pose.sources import person_in_file, source_pose_of

    if onto.suffix.lower() == ".json":
        subject = person_in_file(onto, "--onto")
    else:
        subject = source_pose_of(load_image(onto), onto, detector=detector)
    retargeted = retarget(clip, subject)
    warn_of_parts_left_out(source, clip, retargeted)
    return retargeted

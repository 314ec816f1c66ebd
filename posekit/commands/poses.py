"""`posekit poses list|show`: the built-in motions, and any pose source as skeleton frames."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from posekit.checks import FPS, check_out, finite, parse_size

app = typer.Typer(help="Built-in motions and pose sequences.", no_args_is_help=True)


@app.command("list")
def list_motions(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON list on stdout: name, frames, view, description of each motion."),
):
    """List the built-in motions (name, default frames, default view, description)."""
    from posekit.console import emit_json, print_data, quiet_libraries

    quiet_libraries()
    from posekit.pose.motions import MOTIONS, default_frames, default_view

    motions = [{"name": name, "frames": default_frames(name), "view": default_view(name), "description": description}
               for name, description in MOTIONS.items()]
    if as_json:
        return emit_json(motions)
    for m in motions:
        print_data(f"{m['name']:<6} {m['frames']:>3} frames  {m['view']:<13}  {m['description']}")


@app.command("show")
def show(
    source: str = typer.Argument(..., help="Motion name (walk, walk:side, ...), OpenPose JSON file or folder, skeleton image(s), photo(s), video, or extract-pose .jsonl."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="Folder for frame_NNN_pose.png + frame_NNN_keypoints.json. A re-run replaces what posekit's last run wrote there (and removes its frames beyond the new count); a file posekit did not write stops it before anything is written."),
    frames: Optional[int] = typer.Option(None, "--frames", "-n", min=1, metavar="N", help="Number of frames (motions are regenerated, other clips resampled cyclically onto their first frame's canvas)."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH", help="Canvas WxH: a motion's canvas; other clips are fitted onto it (each frame otherwise keeps its own image's size). Default 512x512 for motions."),
    view: Optional[str] = typer.Option(None, "--view", help="Motions: front | three-quarter | side | three-quarter-left | side-left | yaw in degrees."),
    onto: Optional[Path] = typer.Option(None, "--onto", metavar="PHOTO", help="Retarget onto the person in this photo (or OpenPose JSON): their limbs, ground line and canvas."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON object per frame on stdout (as extract-pose --jsonl)."),
    gif: bool = typer.Option(False, "--gif", help="Also write DIR/preview.gif, the skeletons looping (a jump plays once; on the first frame's canvas)."),
    fps: float = typer.Option(12.0, "--fps", callback=finite(*FPS), help="Playback speed of --gif (0.1 to 120)."),
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
    if onto is not None and not onto.is_file():
        raise UsageError(f"--onto {onto}: {'is a folder' if onto.is_dir() else 'no such file'}; pass a photo of "
                         "the person (or an OpenPose JSON of them)")

    from posekit.pipeline import check_inputs_apart, check_not_foreign, clip_loop, staged_outputs
    from posekit.pose.detect import load_detector
    from posekit.pose.formats import jsonl_record, keypoints_json_name, skeleton_png_name, write_pose_files
    from posekit.pose.motions import MOTIONS, default_frames
    from posekit.pose.sources import load_poses

    is_motion = source.partition(":")[0] in MOTIONS
    if view is not None:
        if not is_motion:
            raise UsageError(f"--view: only for built-in motions ({', '.join(MOTIONS)}), not {source}")
        name, _, named_view = source.partition(":")
        if named_view and named_view != view:
            raise UsageError(f"--view {view}: {source} names a view already; give one of them")
        source = f"{name}:{view}"
    if out is not None:  # before any work: the input is not where the frames go, no file of the user's is replaced
        check_inputs_apart([out], [None if is_motion else source, onto],  # what it reads is not where it writes
                           lambda rel: len(rel.parts) == 1 and (rel.name == "preview.gif" or _OUTPUT.fullmatch(rel.name)))
        count = frames if frames is not None else default_frames(source.partition(":")[0]) if is_motion else None
        check_not_foreign(out, _output_names(out, count, gif), "poses show")
    # one detector for the command, built only if a photo or video needs it
    with load_detector("blazepose", max_people=2, lazy=True) as detector:
        clip = load_poses(source, frames=frames, size=canvas, detector=detector)
        if canvas and not is_motion:
            clip = [p.fitted(*canvas) for p in clip]
        if onto is not None:
            clip = _retargeted(clip, onto, detector, source)
    if out is not None and count is None:  # the frame files this source makes, now that it is read
        check_not_foreign(out, _output_names(out, len(clip), gif), "poses show")

    stems = [_stem(i) for i in range(len(clip))]
    if out is not None:
        with staged_outputs(out, "poses show") as stage:  # as animate: the last run's files replaced, its extra frames removed
            skeletons = [write_pose_files([pose], stage, stem, pose.size) for pose, stem in zip(clip, stems)]
            if gif:
                from posekit.pose.render import draw_skeleton
                from posekit.sheet import write_gif

                w, h = clip[0].size  # one canvas for the preview: frames of another size fitted onto the first's
                write_gif([s if p.size == (w, h) else draw_skeleton([p.fitted(w, h)], w, h)
                           for s, p in zip(skeletons, clip)], stage / "preview.gif", fps=fps,
                          loop=clip_loop(source) is not False)  # a jump plays once, as animate's
    if jsonl:
        for i, (pose, stem) in enumerate(zip(clip, stems)):
            record = jsonl_record(str(out / skeleton_png_name(stem)) if out is not None else stem, pose.width,
                                  pose.height, [pose])
            emit_json({**record, "frame": i}, keep_going=out is not None)
    where = f" -> {out}/ ({skeleton_png_name(stems[0])}, {keypoints_json_name(stems[0])}, ...)" if out is not None else ""
    sizes = _sizes(clip)
    hint = "; --size WxH fits them onto one canvas" if sizes.startswith("sizes vary") else ""
    info(f"{source}: {len(clip)} frame{'s' if len(clip) != 1 else ''}, {sizes}{' retargeted onto ' + str(onto) if onto else ''}{where}{hint}")


_OUTPUT = re.compile(r"frame_\d{3,}_(pose\.png|keypoints\.json)")  # the frame files `show` writes


def _stem(i: int) -> str:
    return f"frame_{i:03d}"


def _output_names(out: Path, count: int | None, gif: bool) -> list[str]:
    """What `show` writes into `out` (relative names) for `count` frames; when the count is not
    known before the source is read (None), the names certain to be written (the preview): the
    frames' are checked once the source is read, before anything is written."""
    from posekit.pose.formats import keypoints_json_name, skeleton_png_name

    names = [n for i in range(count or 0) for n in (skeleton_png_name(_stem(i)), keypoints_json_name(_stem(i)))]
    return names + (["preview.gif"] if gif else [])


def _sizes(clip) -> str:
    """'384x512', or when the frames' canvases differ 'sizes vary: 384x512 (14 frames), 20x20 (1), ...'."""
    from collections import Counter

    counts = Counter(p.size for p in clip).most_common()
    if len(counts) == 1:
        return f"{counts[0][0][0]}x{counts[0][0][1]}"
    shown = ", ".join(f"{w}x{h} ({n}{(' frames' if n > 1 else ' frame') if i == 0 else ''})"
                      for i, ((w, h), n) in enumerate(counts[:4]))
    return f"sizes vary: {shown}{', ...' if len(counts) > 4 else ''}"


def _retargeted(clip, onto: Path, detector, source: str):
    """The clip on the body of the person in `onto` (a photo, or an OpenPose JSON of them)."""
    from posekit.errors import PosekitError
    from posekit.images import load_image
    from posekit.pipeline import warn_of_parts_left_out
    from posekit.pose.retarget import Flags, retarget
    from posekit.pose.sources import person_in_file, source_pose_of

    if onto.suffix.lower() == ".json":
        subject = person_in_file(onto, "--onto")
    else:
        try:
            image = load_image(onto)
        except PosekitError as e:  # unreadable: say which flag gave it
            raise PosekitError(f"--onto {e}") from None
        subject = source_pose_of(image, onto, detector=detector, flag="--onto")
    retargeted = retarget(clip, subject, flags=Flags(targets=source, subject="--onto", skip="leave out --onto"))
    warn_of_parts_left_out(source, clip, retargeted)
    return retargeted

"""`posekit extract-pose`: images, folders, videos -> OpenPose keypoints, skeletons, heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.checks import check_out
from posekit.device import check_device

BATCH = 8  # images handed to the detector at once (the openpose network batches them on a GPU)


def extract_pose(
    inputs: list[str] = typer.Argument(..., metavar="INPUT", help="Image files, folders (recursive), video files (one pose per frame), or - to read paths from stdin."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for <stem>_keypoints.json (OpenPose) and <stem>_pose.png (ControlNet skeleton). Without it nothing is written: see --jsonl. Never replaces an input or a file posekit did not write; folders are read without the skeletons posekit wrote."),
    detector: str = typer.Option("blazepose", "--detector", "-d", help="blazepose (embedded, offline) | openpose (controlnet_aux body model)."),
    model: Optional[str] = typer.Option(None, "--model", help="openpose: hub id (default lllyasviel/Annotators), folder with body_pose_model.pth, or the .pth file; blazepose: another MediaPipe pose landmarker .task file (default: the embedded one)."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON object per input on stdout: path, width, height, people."),
    max_people: int = typer.Option(1, "--max-people", min=1, help="Most people to keep per image (largest first)."),
    device: str = typer.Option("auto", "--device", callback=check_device, help="auto | cpu | cuda[:N] (openpose; blazepose runs on the CPU)."),
    heatmaps: bool = typer.Option(False, "--heatmaps", help="Also write <stem>.npy: H x W x 18 float32 maps of the largest person (PATN input)."),
    heatmap_kind: str = typer.Option("gaussian", "--heatmap-kind", help="gaussian (sigma 6) | pixel (single pixel, as DeepFashion's maps)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Write a PATN annotation CSV (name:keypoints_y:keypoints_x) of the largest person per image."),
):
    """Find people's poses (COCO-18 keypoints) in images, folders or videos.

    Inputs that cannot be read are reported one line each and skipped; the exit status is 1
    when any failed.
    """
    from posekit.console import quiet_libraries

    quiet_libraries()
    from posekit.errors import UsageError
    from posekit.images import expand_paths, is_video, iter_inputs
    from posekit.pose.detect import DETECTORS, load_detector

    if detector not in DETECTORS:
        raise UsageError(f"--detector {detector!r}: choose one of {', '.join(DETECTORS)}")
    if heatmap_kind not in ("gaussian", "pixel"):
        raise UsageError(f"--heatmap-kind {heatmap_kind!r}: choose gaussian or pixel")
    if heatmaps and out is None:
        raise UsageError("--heatmaps needs --out DIR to write the .npy files into")
    check_out(out)
    check_out(annotations, "--annotations", file=True)

    paths = expand_paths(inputs)  # once: "-" reads stdin
    if not paths:
        raise UsageError(f"no images or videos found in {' '.join(inputs)}")
    total = None if any(is_video(p) for p in paths) else len(paths)  # frames are counted as decoded

    protected = {p.resolve() for p in paths}  # outputs never replace an input
    with load_detector(detector, model=model, device=device, max_people=max_people) as det:  # one for all inputs
        done, failed, rows = _run(iter_inputs(paths), protected, total, det, out, jsonl, max_people, heatmaps, heatmap_kind)
    if annotations is not None:
        from posekit.pose.formats import write_patn_annotations

        write_patn_annotations(rows, annotations)
    _summary(done, failed, out, annotations, jsonl)
    if failed:
        raise typer.Exit(1)


def _run(items, protected, total, det, out, jsonl, max_people, heatmaps, heatmap_kind):
    """Detect batch by batch as inputs stream in; returns (inputs seen, failed, PATN annotation rows)."""
    from itertools import islice

    from posekit.console import error, progress
    from posekit.errors import PosekitError

    seen, failed, rows, stems = 0, 0, [], set()
    with progress() as bar:
        task = bar.add_task("extract-pose", total=total, status="")
        while chunk := list(islice(items, BATCH)):
            seen += len(chunk)
            batch = [(item, *_load(item)) for item in chunk]
            images = [image for _, image, _ in batch if image is not None]
            people = iter(det.detect(images) if images else [])
            for item, image, problem in batch:  # in input order, so --jsonl lines follow the inputs
                bar.advance(task)
                if image is not None:
                    poses = next(people)[:max_people]
                    stem = _unique(item.stem, stems)
                    problem = _clobbers(out, stem, heatmaps, protected) if out is not None else None
                if problem:
                    failed += 1
                    error(problem)
                    _emit(jsonl, item.name, None, [], error=problem)
                    continue
                if out is not None:
                    try:
                        _write_outputs(out, stem, poses, image, heatmaps, heatmap_kind)
                    except OSError as e:  # disk full, permission denied on --out
                        raise PosekitError(f"--out {out}: cannot write ({e.strerror or e})") from None
                _report(item, image, poses, out, jsonl)
                rows.append((_annotation_name(item, stem), poses[0] if poses else _empty(image)))
    return seen, failed, rows


def _load(item):
    """(image, None) or (None, the one-line reason it could not be read)."""
    from posekit.errors import PosekitError

    try:
        return item.load(), None
    except PosekitError as e:
        return None, str(e)


def _report(item, image, poses, out, jsonl):
    from posekit.console import info, warn

    height, width = image.shape[:2]
    if not poses:
        warn(f"{item.name}: nobody found")
    if jsonl:
        _emit(True, item.name, (width, height), poses)
    elif out is None:
        counts = ", ".join(f"{len(p)}/18" for p in poses)
        info(f"{item.name}: {len(poses)} {'person' if len(poses) == 1 else 'people'}"
             + (f" ({counts} keypoints)" if poses else ""))


def _output_paths(out: Path, stem: str, heatmaps: bool) -> list[Path]:
    """keypoints JSON, skeleton image and, with --heatmaps, the .npy maps of one input."""
    from posekit.pose.formats import keypoints_json_name, skeleton_png_name

    return [out / keypoints_json_name(stem), out / skeleton_png_name(stem)] + ([out / f"{stem}.npy"] if heatmaps else [])


def _clobbers(out: Path, stem: str, heatmaps: bool, protected: set) -> str | None:
    """Why this input's outputs must not be written, if one would replace an input, or a file
    posekit did not write (outputs are posekit's when its skeleton and keypoints JSON are there:
    a re-run replaces them, but never a hand-made <stem>_keypoints.json)."""
    from posekit.images import written_by_posekit

    ours = written_by_posekit(_output_paths(out, stem, False)[1])
    for path in _output_paths(out, stem, heatmaps):
        if path.resolve() in protected:
            return f"{path}: is an input; not writing over it (pass another --out folder)"
        if path.exists() and not ours:
            return f"{path}: exists and posekit did not write it; not replacing it (move it or pass another --out folder)"
    return None


def _write_outputs(out: Path, stem: str, poses, image, heatmaps, heatmap_kind):
    import numpy as np

    from posekit.images import atomic_path
    from posekit.pose.formats import write_pose_files
    from posekit.pose.render import heatmaps as make_heatmaps

    height, width = image.shape[:2]
    write_pose_files(poses, out, stem, (width, height))
    maps = _output_paths(out, stem, heatmaps)[2:]
    if maps:
        pose = poses[0] if poses else _empty_of(width, height)
        with atomic_path(maps[0]) as tmp:
            np.save(tmp, make_heatmaps(pose, kind=heatmap_kind))


def _emit(enabled: bool, name: str, size, poses, error: str | None = None):
    if not enabled:
        return
    from posekit.console import emit_json
    from posekit.pose.formats import jsonl_record

    width, height = size if size else (None, None)
    emit_json(jsonl_record(name, width, height, poses, error=error))


def _unique(stem: str, used: set) -> str:
    """Output stems must not collide (two folders may both hold img.jpg): add _2, _3, ..."""
    from posekit.console import warn

    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    if candidate != stem:
        warn(f"{stem}: another input has the same name; writing this one as {candidate}")
    used.add(candidate)
    return candidate


def _annotation_name(item, stem: str) -> str:
    """PATN names rows by image file name; a video frame (or a renamed duplicate) is named as
    if saved as <stem>.png."""
    if "#" in item.name or stem != item.stem:
        return f"{stem}.png"
    return Path(item.name).name


def _empty(image):
    return _empty_of(image.shape[1], image.shape[0])


def _empty_of(width, height):
    from posekit.pose.pose import Pose

    return Pose.empty(width, height)


def _summary(total, failed, out, annotations, jsonl):
    from posekit.console import info

    done = total - failed
    parts = [f"{done} of {total} inputs processed"]
    if out is not None:
        parts.append(f"poses in {out}")
    if annotations is not None:
        parts.append(f"annotations in {annotations}")
    if out is not None or annotations is not None or failed:
        info("; ".join(parts))

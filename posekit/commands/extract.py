"""`posekit extract-pose`: images, folders, videos -> OpenPose keypoints, skeletons, heatmaps."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from posekit.checks import check_out
from posekit.commands.method_flags import DEVICE, warn_if_device_unused

BATCH = 8  # images handed to the detector at once (the openpose network batches them on a GPU)




def extract_pose(
    # hidden from the Arguments list (Typer would print its Python type there): the docstring says what INPUT is
    inputs: list[str] = typer.Argument(..., metavar="INPUT", hidden=True),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR", help="Folder for <stem>_keypoints.json (OpenPose) and <stem>_pose.png (ControlNet skeleton). Without it nothing is written: see --jsonl. Never replaces an input or a file posekit did not write (its own, even half-written by a killed run, it replaces; an unlisted <stem>_pose.png beside <stem>_keypoints.json counts as its own when they are a PNG and an OpenPose file); folders are read without the skeletons posekit wrote."),
    detector: str = typer.Option("blazepose", "--detector", "-d", metavar="NAME", help="blazepose (embedded, offline) | openpose (controlnet_aux body model)."),
    model: Optional[str] = typer.Option(None, "--model", metavar="ID|PATH", help="openpose: hub id (default lllyasviel/Annotators), folder with body_pose_model.pth, or the .pth file; blazepose: another MediaPipe pose landmarker .task file (default: the embedded one)."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Print one JSON object per image, and per frame of a video or animated image, on stdout (path, width, height, people; a frame: also frame, its index; an input that could not be read: error). Nothing else goes to stdout."),
    max_people: int = typer.Option(1, "--max-people", min=1, metavar="N", help="Most people to keep per image (largest first)."),
    device: str = DEVICE,
    heatmaps: bool = typer.Option(False, "--heatmaps", help="Also write <stem>.npy: H x W x 18 float32 maps of the largest person (PATN input)."),
    heatmap_kind: str = typer.Option("gaussian", "--heatmap-kind", metavar="KIND", help="gaussian (sigma 6) | pixel (single pixel, as DeepFashion's maps)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", metavar="FILE.csv", help="Write a PATN annotation file (name:keypoints_y:keypoints_x) of the largest person per image. Never an input, nor an existing file posekit did not write (an earlier run's is replaced)."),
):
    """Find people's poses (COCO-18 keypoints) in images, folders or videos.

    INPUT is any mix of image files, folders (searched recursively), video files and animated
    GIF/WebP/PNG (one pose per frame), and - for paths on stdin: one a line, or NUL-separated
    (find ... -print0 | posekit extract-pose -).

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
    warn_if_device_unused(detector, device)
    if heatmap_kind not in ("gaussian", "pixel"):
        raise UsageError(f"--heatmap-kind {heatmap_kind!r}: choose gaussian or pixel")
    if heatmaps and out is None:
        raise UsageError("--heatmaps needs --out DIR to write the .npy files into")
    check_out(out)
    check_out(annotations, "--annotations", file=True)

    paths = expand_paths(inputs)  # once: "-" reads stdin
    if not paths:
        raise UsageError(f"no images or videos found in {' '.join(inputs)}")
    protected = {p.resolve() for p in paths}  # outputs never replace an input
    _check_annotations(annotations, protected)  # before any detection
    total = None if any(is_video(p) for p in paths) else len(paths)  # frames are counted as decoded

    # --jsonl lines stop when stdout's reader goes; with files to write the run goes on
    printer = _Printer(jsonl, keep_going=out is not None or annotations is not None)
    with _recording(out), load_detector(detector, model=model, device=device, max_people=max_people) as det:
        done, failed, rows = _run(iter_inputs(paths), protected, total, det, out, printer, max_people, heatmaps,
                                  heatmap_kind, names=out is not None or annotations is not None)
    if annotations is not None:
        from posekit.images import recording_outputs
        from posekit.pose.formats import write_patn_annotations

        with recording_outputs(annotations.parent):  # listed, so that a re-run may replace it
            write_patn_annotations(rows, annotations)
    _summary(done, failed, out, annotations, jsonl)
    if failed:
        raise typer.Exit(1)


def _check_annotations(path: Path | None, inputs: set) -> None:
    """--annotations must not be an input, nor replace a file other than an empty one or one
    posekit wrote there (listed in the folder's .posekit-written with what it holds): a PATN
    dataset's own annotation file has the same header and must never be replaced."""
    from posekit.errors import PosekitError, UsageError
    from posekit.images import recorded_by_posekit

    if path is None:
        return
    if path.resolve() in inputs:
        raise UsageError(f"--annotations {path}: is one of the inputs; pass another file name (e.g. annotations.csv)")
    if (path.exists() or path.is_symlink()) and not (path.is_file() and path.stat().st_size == 0) \
            and not recorded_by_posekit(path):
        # exit 1, as animate's and poses show's refusals: the command is right, a file is in the way
        raise PosekitError(f"--annotations {path}: exists and posekit did not write it (or it changed since); "
                           "not replacing it (move it or pass another file name)")


class _Printer:
    """The --jsonl lines. When stdout's reader goes (`--jsonl | head -1`), printing stops; then
    a run with files to write (keep_going: --out, --annotations) writes them all and exits as it
    would have, while a run that only prints ends there (exit 1, nothing said): console.emit_json."""

    def __init__(self, requested: bool, keep_going: bool):
        self.requested, self.keep_going = requested, keep_going

    def emit(self, item, size, poses, error: str | None = None) -> None:
        """The line of `item`: "path" the file read (a video's, with "frame" for one of its frames)."""
        if not self.requested:
            return
        from posekit.console import emit_json
        from posekit.pose.formats import jsonl_record

        width, height = size if size else (None, None)
        path = str(item.source) if item.frame is not None and item.source is not None else item.name
        emit_json(jsonl_record(path, width, height, poses, error=error, frame=item.frame), keep_going=self.keep_going)


@contextmanager
def _recording(out: Path | None):
    """Around the writes into --out: list them in its .posekit-written (posekit.images.
    recording_outputs), and remove the temporary files a killed run left there (those no running
    posekit holds the lock of, whatever their age: posekit.images.remove_stale_temp_files)."""
    if out is None:
        yield
        return
    from contextlib import ExitStack

    from posekit.errors import PosekitError
    from posekit.images import recording_outputs, remove_stale_temp_files

    with ExitStack() as stack:
        try:
            remove_stale_temp_files(out)
            stack.enter_context(recording_outputs(out))  # compacts the list: may fail as any write into --out
        except OSError as e:
            raise PosekitError(f"--out {out}: cannot write ({e.strerror or e})") from None
        yield


def _run(items, protected, total, det, out, printer, max_people, heatmaps, heatmap_kind, names=True):
    """Detect batch by batch as inputs stream in; returns (inputs seen, failed, PATN annotation rows).
    `names`: whether outputs are named (--out, --annotations): only then is a duplicate name said."""
    from itertools import islice

    from posekit.console import error, progress
    from posekit.errors import PosekitError

    seen, failed, rows, stems = 0, 0, [], _Stems(warn=names)
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
                    stem = stems.stem(item)
                    problem = _clobbers(out, stem, heatmaps, protected) if out is not None else None
                if problem:
                    failed += 1
                    error(problem)
                    printer.emit(item, None, [], error=problem)
                    continue
                if out is not None:
                    try:
                        _write_outputs(out, stem, poses, image, heatmaps, heatmap_kind)
                    except OSError as e:  # disk full, permission denied on --out
                        raise PosekitError(f"--out {out}: cannot write ({e.strerror or e})") from None
                _report(item, image, poses, out, printer)
                rows.append((_annotation_name(item, stem), poses[0] if poses else _empty(image)))
    return seen, failed, rows


def _load(item):
    """(image, None) or (None, the one-line reason it could not be read)."""
    from posekit.errors import PosekitError

    try:
        return item.load(), None
    except PosekitError as e:
        return None, str(e)


def _report(item, image, poses, out, printer):
    from posekit.console import info, warn

    height, width = image.shape[:2]
    if not poses:
        warn(f"{item.name}: nobody found")
    if printer.requested:
        printer.emit(item, (width, height), poses)
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
    posekit did not write. A file in --out is posekit's, and a re-run replaces it:
    - when its name is listed in --out/.posekit-written (extract-pose lists each output there,
      SHA-256 and name, before renaming it onto its name): while it holds what was listed. So the
      half pair a killed run leaves (a keypoints JSON without its skeleton) is known as its own,
      and a listed file edited since is not;
    - else, when it is one of a pair <stem>_pose.png + <stem>_keypoints.json (what every posekit
      command writes per image: `animate`, `poses show`, an older extract-pose that kept no list);
      this holds for those two files only: an unlisted <stem>.npy is never posekit's.
    Anything else is someone's, a hand-made <stem>_keypoints.json above all: never replaced (that
    input fails, one line)."""
    from posekit.images import listed_by_posekit, recorded_by_posekit, written_by_posekit

    paths = _output_paths(out, stem, heatmaps)
    pair = written_by_posekit(paths[1])
    for i, path in enumerate(paths):
        if path.resolve() in protected:
            return f"{path}: is an input; not writing over it (pass another --out folder)"
        if not (path.exists() or path.is_symlink()):
            continue
        if listed_by_posekit(path):
            if not recorded_by_posekit(path):
                return f"{path}: changed since posekit wrote it; not replacing it (move it or pass another --out folder)"
        elif not (pair and i < 2):  # the pair vouches for its own two files, never for a <stem>.npy beside them
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


class _Stems:
    """Output stems that never collide: two inputs with the same name (a/x.png, b/x.png, or
    a/x.jpg) give the later one x_2, x_3 ... (a video: x_2_00000 ... for its frames), with one
    warning per renamed input naming both files."""

    def __init__(self, warn: bool = True):
        self.warn = warn
        self.bases: dict = {}  # source file -> its base stem
        self.owners: dict[str, str] = {}  # base stem -> the file that has it
        self.stems: dict[str, str] = {}  # output stem -> the input (or frame) that has it

    def stem(self, item) -> str:
        source = item.source or Path(item.name)
        base = self.bases.get(source)
        if base is None:
            base = self._free(source.stem, self.owners)
            self.bases[source], self.owners[base] = base, str(source)
            if base != source.stem:
                self._say(f"{source}: another input, {self.owners[source.stem]}, has the same name; "
                          f"its outputs are named {base}{item.stem[len(source.stem):]}" + (" ..." if item.name != str(source) else ""))
        stem = base + item.stem[len(source.stem):]  # a frame's _00012 after the base
        candidate = self._free(stem, self.stems)
        if candidate != stem:  # another input's output already has this stem (a photo clip_00000.png and clip.mp4)
            self._say(f"{item.name}: the outputs of {self.stems[stem]} are named {stem} too; "
                      f"its outputs are named {candidate}")
        self.stems[candidate] = item.name
        return candidate

    @staticmethod
    def _free(stem: str, taken) -> str:
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem}_{n}"
        return candidate

    def _say(self, message: str) -> None:
        if self.warn:
            from posekit.console import warn

            warn(message)


def _annotation_name(item, stem: str) -> str:
    """PATN names a row by the file name of its image: an image's own (photo.jpg), under its
    output stem when it was renamed (a second x.jpg: x_2.jpg), and <stem>.png for a video frame,
    the name to save that frame under beside the other images."""
    source = item.source or Path(item.name)
    if item.name != str(source):  # a frame of a video or an animated image
        return f"{stem}.png"
    return f"{stem}{source.suffix}"


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

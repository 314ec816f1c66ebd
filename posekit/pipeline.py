"""The one pipeline: a photo of a person + target poses -> frames, written out.

    summary = animate("me.jpg", "walk", "out/")                 # posekit animate: a clip -> a sheet
    summary = transfer("me.jpg", ["pose.json"], "out/me.png")   # posekit transfer: one image per pose

Both run the same stages (`prepare`, then `generate`):
1. the source: the photo scaled to the method's working size (`Method.working_size`) and the
   person's pose on it, read from --source-pose or detected (nobody found: an error before
   anything is written),
2. the targets: each pose source (a motion name, OpenPose JSON, skeleton images, a video or
   extract-pose JSON lines), resampled to --frames and laid on the photo's canvas,
3. retargeting: every target pose put on the subject's own limb lengths, scale and position
   (animate by default; transfer with --retarget),
4. the method (warp | gan | diffusion), built once from its typed options, gets the whole clip
   at once, so every frame shows the same person.
Then the outputs: `animate` writes frames/, poses/ (the targets in frame pixels: OpenPose JSON +
skeleton PNGs), sheet.png + sheet.json (Aseprite json-hash), animation.gif (+ webp/mp4) and
measures pose fidelity (posekit.evaluate); `transfer` writes one image per target.

One person detector serves a whole run (the source photo, photo and video clips, pose fidelity);
it is built on first use, so a run with a --source-pose JSON and a motion never loads it.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from posekit.checks import FPS, check_finite
from posekit.errors import PosekitError, UsageError

# what animate writes into its --out folder, and all it ever replaces or removes there
OUTPUT_FILES = ("sheet.png", "sheet.json", "animation.gif", "animation.webp", "animation.mp4")
OUTPUT_FOLDERS = ("frames", "poses")  # of these, only the frame_* files


def _silent(stage: str) -> None:
    pass


def animate(photo: str | Path, poses: str, out: str | Path, method: str = "warp", options=None,
            frames: int | None = None, fps: float = 12.0, columns: int | None = None,
            size: tuple[int, int] | None = None, retarget: bool = True, source_pose: str | Path | None = None,
            formats=("gif",), device: str = "auto", evaluate: bool = True, status=_silent) -> dict:
    """Animate the person in `photo` along the clip `poses` into the folder `out` (see the module
    docstring); returns the summary the CLI prints.

    `options`: the method's options (`method_class(method).Options`; None: its defaults).
    `status(stage)` is called as each stage starts (the CLI shows it as a progress line)."""
    from posekit.evaluate import mean, pose_fidelity
    from posekit.pose.detect import load_detector

    formats = animation_formats(formats)
    check_finite(fps, "--fps", *FPS)
    timer = Timer()
    with load_detector("blazepose", device=device, lazy=True) as detector:
        image, pose, clip = prepare(photo, [str(poses)], method, timer, detector, frames=frames, retarget=retarget,
                                    source_pose=source_pose, device=device, status=status)
        images, frame_poses = generate(method, options, image, pose, clip, timer, status)
        if size is not None:
            images = [letterbox(f, *size) for f in images]
            frame_poses = [p.fitted(*size) for p in frame_poses]
        status("writing")
        with timer("writing"):
            files = write_outputs(Path(out), images, frame_poses, fps=fps, columns=columns,
                                  tag=clip_name(str(poses)), formats=formats)
        fidelity = None
        if evaluate:
            status("evaluating pose fidelity")
            with timer("evaluation"):
                fidelity = mean(pose_fidelity(images, frame_poses, detector=detector))
    fh, fw = images[0].shape[:2]
    return {"out": str(out), "method": method, "frames": len(images), "fps": fps, "size": [fw, fh],
            "files": files, "pose_fidelity": fidelity, **timer.summary()}


def transfer(photo: str | Path, poses: list[str], out: str | Path, method: str = "warp", options=None,
             retarget: bool = False, source_pose: str | Path | None = None, device: str = "auto",
             status=_silent) -> dict:
    """Move the person in `photo` into each pose the `poses` sources hold: one image per target,
    `out` itself when it names a file (one target only), else out/000.png, out/001.png, ...
    Returns the summary: the files written, their size and the seconds per stage."""
    from posekit.images import save_image
    from posekit.pose.detect import load_detector

    out = Path(out)
    one_file = names_a_file(out)
    timer = Timer()
    with load_detector("blazepose", device=device, lazy=True) as detector:
        image, pose, targets = prepare(photo, poses, method, timer, detector, retarget=retarget,
                                       source_pose=source_pose, device=device, status=status)
        if len(targets) > 1 and one_file:
            raise UsageError(f"--out {out}: {len(targets)} target poses need an output folder, not a file name")
        images, _ = generate(method, options, image, pose, targets, timer, status)
    paths = [out] if one_file else [out / f"{i:03d}.png" for i in range(len(images))]
    status("writing")
    with timer("writing"):
        for frame, path in zip(images, paths):
            save_image(frame, path)
    fh, fw = images[0].shape[:2]
    return {"out": str(out), "method": method, "files": [str(p) for p in paths], "size": [fw, fh],
            **timer.summary()}


def names_a_file(out: Path) -> bool:
    """Whether transfer's --out is one image (a name with a suffix that is not a folder)."""
    return bool(out.suffix) and not out.is_dir()


# -- the stages ------------------------------------------------------------------------------
def prepare(photo: str | Path, sources: list[str], method: str, timer: "Timer", detector, *,
            frames: int | None = None, retarget: bool = True, source_pose: str | Path | None = None,
            device: str = "auto", status=_silent):
    """Stages 1-3: (the photo at the method's working size, the person's pose on it, the target
    poses on its canvas, retargeted onto the person if asked)."""
    from posekit.images import load_image
    from posekit.methods import method_class
    from posekit.pose.sources import load_poses, source_pose_of

    working_size = method_class(method).working_size  # an unknown --method fails before any work
    status("reading the source pose" if source_pose is not None else "detecting the source pose")
    with timer("source"):  # the photo and the pose of the person in it
        full = load_image(photo)
        pose = source_pose_of(full, Path(photo), source_pose, device=device, detector=detector)
        image = working_image(full, working_size(full.shape[1], full.shape[0]))
        h, w = image.shape[:2]
        pose = pose.resized(w, h) if image is not full else pose
    status("loading the target poses")
    with timer("targets"):
        canvas = (full.shape[1], full.shape[0])  # of pose files that state none: photo pixels
        clip = [t.fitted(w, h) for source in sources
                for t in load_poses(source, frames=frames, device=device, canvas=canvas, detector=detector)]
    if not clip:
        raise PosekitError(f"{', '.join(map(str, sources))}: no poses found")
    status("retargeting")
    with timer("retargeting"):
        if retarget:
            from posekit.pose.retarget import retarget as retarget_clip

            clip = retarget_clip(clip, pose)
    return image, pose, clip


def generate(method: str, options, image: np.ndarray, pose, targets: list, timer: "Timer", status=_silent):
    """Stage 4: the method built once, run on all targets: (frames, each target in its frame's pixels)."""
    from posekit.methods import method_class

    cls = method_class(method)
    if options is not None and not isinstance(options, cls.Options):
        raise TypeError(f"--method {method} takes {cls.Options.__name__}, not {type(options).__name__}")
    status(f"{method}: {len(targets)} frames")
    with timer("method"):
        m = cls(image, pose, options)
        return m(targets), [m.frame_pose(t) for t in targets]


# -- pieces ------------------------------------------------------------------------------------
class Timer:
    """Seconds spent per stage (for the summary and the benchmark)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    def summary(self) -> dict:
        return {"seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "seconds_total": round(sum(self.seconds.values()), 3)}


def animation_formats(formats) -> tuple[str, ...]:
    """--format values, normalised ('.GIF' -> 'gif') and checked, each once."""
    from posekit.sheet import ANIMATION_FORMATS

    formats = tuple(dict.fromkeys(f.lower().lstrip(".") for f in formats))
    for f in formats:
        if f not in ANIMATION_FORMATS:
            raise UsageError(f"--format {f!r}: choose from {', '.join(ANIMATION_FORMATS)}")
    return formats


def clip_name(source: str) -> str:
    """The name a clip gets in sheet.json's frameTags: the motion name or the file's stem."""
    p = Path(source.rstrip("/"))
    return (p.stem or "animation") if (p.exists() or p.suffix) else source


def working_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo resized to the method's working size (width, height); itself if it has that size."""
    import cv2

    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


def letterbox(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale a frame uniformly to fit width x height and pad the rest (transparent for RGBA,
    the frame's edge colours otherwise), the same way Pose.fitted moves a pose."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0, y0 = round((width - w * s) / 2), round((height - h * s) / 2)
    x0, y0 = min(max(x0, 0), width - nw), min(max(y0, 0), height - nh)
    rgba = frame.ndim == 3 and frame.shape[2] == 4
    return cv2.copyMakeBorder(small, y0, height - nh - y0, x0, width - nw - x0,
                              cv2.BORDER_CONSTANT if rgba else cv2.BORDER_REPLICATE, value=(0, 0, 0, 0))


# -- animate's outputs ---------------------------------------------------------------------------
def write_outputs(out: Path, images: list[np.ndarray], poses: list, fps: float, columns: int | None,
                  tag: str, formats=("gif",)) -> dict:
    """frames/, poses/, sheet.png, sheet.json and the animations; returns their paths.

    All of it is written into a hidden folder inside `out` and moved into place at the end
    (`staged_outputs`), so a failure or Ctrl-C leaves the previous result (or nothing)."""
    from posekit.images import save_image
    from posekit.pose.formats import write_pose_files
    from posekit.sheet import write_animation, write_sheet

    out = Path(out)
    digits = max(3, len(str(len(images) - 1)))
    with staged_outputs(out) as stage:
        for i, (frame, pose) in enumerate(zip(images, poses)):
            stem = f"frame_{i:0{digits}d}"
            save_image(frame, stage / "frames" / f"{stem}.png")
            write_pose_files([pose] if len(pose) else [], stage / "poses", stem, pose.size)
        write_sheet(images, stage / "sheet.png", stage / "sheet.json", columns=columns, fps=fps, tag=tag)
        for f in formats:
            write_animation(images, stage / f"animation.{f}", fps=fps)
    return {"frames": str(out / "frames"), "poses": str(out / "poses"), "sheet": str(out / "sheet.png"),
            "sheet_json": str(out / "sheet.json"), **{f: str(out / f"animation.{f}") for f in formats}}


@contextmanager
def staged_outputs(out: Path):
    """Yield an empty hidden folder inside `out` to write a run's outputs into. When the block
    ends well they replace the previous run's: each file is moved onto its name, and the
    previous outputs this run did not write again (a longer run's frames, an animation.webp not
    asked for this time) are removed; other files in `out` are left alone. When it fails, `out`
    is as it was (and not left behind empty if this made it)."""
    import os
    import shutil
    import tempfile

    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".posekit-", dir=out))
    try:
        yield stage
        new = {p.relative_to(stage) for p in stage.rglob("*") if p.is_file()}
        for folder in OUTPUT_FOLDERS:
            (out / folder).mkdir(exist_ok=True)
        for rel in sorted(new):
            os.replace(stage / rel, out / rel)
        previous = [out / f for f in OUTPUT_FILES] + [p for d in OUTPUT_FOLDERS for p in (out / d).glob("frame_*")]
        for p in previous:
            if p.relative_to(out) not in new and (p.is_file() or p.is_symlink()):
                p.unlink()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not any(out.iterdir()):
            out.rmdir()

"""The main job: one photo + a pose sequence -> frames, sprite sheet, GIF, engine data.

    summary = animate("me.jpg", "walk", "out/")

1. the source pose: read from --source-pose or detected on the photo (nobody found: an error
   before anything is written),
2. the clip: a motion name, OpenPose JSON, skeleton images, a video or extract-pose JSON lines,
   resampled to --frames and laid on the photo's canvas,
3. retargeting: every target pose is put on the subject's own limb lengths, scale and position,
4. the method (warp | gan | diffusion) gets the source once and the whole clip at once, so every
   frame shows the same person,
5. outputs: frames/, poses/ (the targets in frame pixels: OpenPose JSON + skeleton PNGs),
   sheet.png + sheet.json (Aseprite json-hash), animation.gif (+ webp/mp4),
6. pose fidelity: the embedded detector is run on the frames and compared with the targets (PCK).

`pose_fidelity` is also what `posekit evaluate` measures.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from posekit.checks import FPS, check_finite
from posekit.errors import PosekitError, UsageError

MAX_SIDE = 1024  # photos are scaled down to this long side before the method runs
# what animate writes into its --out folder, and all it ever replaces or removes there
OUTPUT_FILES = ("sheet.png", "sheet.json", "animation.gif", "animation.webp", "animation.mp4")
OUTPUT_FOLDERS = ("frames", "poses")  # of these, only the frame_* files


def clip_name(source: str) -> str:
    """The name a clip gets in sheet.json's frameTags: the motion name or the file's stem."""
    p = Path(source.rstrip("/"))
    return (p.stem or "animation") if (p.exists() or p.suffix) else source


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


def working_image(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo scaled so its long side is at most MAX_SIDE, and the scale used."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, MAX_SIDE / max(h, w))
    if s == 1.0:
        return image, 1.0
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA), s


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


def in_frame(pose):
    """The pose without the keypoints that fall outside its canvas (no detector can find them)."""
    from posekit.pose.pose import Pose

    kp = pose.keypoints.copy()
    outside = (kp[:, 0] < 0) | (kp[:, 1] < 0) | (kp[:, 0] > pose.width - 1) | (kp[:, 1] > pose.height - 1)
    kp[outside] = 0
    return Pose(kp, pose.width, pose.height)


def pose_fidelity(frames: list[np.ndarray], targets: list, alpha: float = 0.5, detector=None) -> list[float | None]:
    """Per frame: PCK (fraction of the target's keypoints within alpha x torso size) of the pose
    the embedded detector finds on the frame against the target pose (in frame pixels). Target
    keypoints outside the frame are not counted (unless the torso that sets the tolerance is out
    of the frame too); a frame where nobody is found scores 0; None where the target has no
    keypoint in the frame or no torso to measure by."""
    from posekit.images import to_rgb
    from posekit.metrics import pck
    from posekit.pose.detect import load_detector
    from posekit.pose.pose import Pose

    own = detector is None
    detector = load_detector("blazepose") if own else detector
    try:
        found = detector.detect([to_rgb(f) for f in frames])
    finally:
        if own:
            detector.close()
    scores: list[float | None] = []
    for people, target in zip(found, targets):
        visible = in_frame(target)
        if not len(visible):
            scores.append(None)
            continue
        pred = people[0] if people else Pose.empty(target.width, target.height)
        score = float(pck(pred, visible, alpha=alpha, reference="torso"))
        if not np.isfinite(score):  # the torso is out of the frame: measure by the whole target
            score = float(pck(pred, target, alpha=alpha, reference="torso"))
        scores.append(score if np.isfinite(score) else None)
    return scores


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def animate(photo: str | Path, poses: str, out: str | Path, method: str = "warp", frames: int | None = None,
            fps: float = 12.0, columns: int | None = None, size: tuple[int, int] | None = None,
            retarget: bool = True, source_pose: str | Path | None = None, formats=("gif",),
            device: str = "auto", evaluate: bool = True, options: dict | None = None,
            status=lambda stage: None) -> dict:
    """Run the whole job (see the module docstring); returns the summary written by the CLI.

    `options` go to the method's constructor (see `posekit.methods.method_options`); `status(stage)` is called as
    each stage starts (the CLI shows it in its progress line)."""
    from posekit.images import load_image
    from posekit.methods import load_method
    from posekit.pose.sources import load_poses, source_pose_of

    formats = tuple(dict.fromkeys(f.lower().lstrip(".") for f in formats))
    from posekit.sheet import ANIMATION_FORMATS
    for f in formats:
        if f not in ANIMATION_FORMATS:
            raise UsageError(f"--format {f!r}: choose from {', '.join(ANIMATION_FORMATS)}")
    check_finite(fps, "--fps", *FPS)
    timer = Timer()

    status("detecting the source pose")
    with timer("detection"):
        full = load_image(photo)
        src_pose = source_pose_of(full, Path(photo), source_pose, device=device)
        image, s = working_image(full)
        src_pose = src_pose.resized(image.shape[1], image.shape[0]) if s != 1.0 else src_pose
        h, w = image.shape[:2]
        clip = [t.fitted(w, h) for t in load_poses(str(poses), frames=frames, device=device,
                                                   canvas=(full.shape[1], full.shape[0]))]  # no canvas: photo pixels
    if not clip:
        raise PosekitError(f"--poses {poses}: no poses found")

    status("retargeting")
    with timer("retargeting"):
        if retarget:
            from posekit.pose.retarget import retarget as retarget_clip
            clip = retarget_clip(clip, src_pose)

    status(f"{method}: {len(clip)} frames")
    with timer("method"):
        m = load_method(method, image, src_pose, **(options or {}))
        images = m(clip)
        frame_poses = [m.frame_pose(t) for t in clip]
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
            fidelity = mean(pose_fidelity(images, frame_poses))
    fh, fw = images[0].shape[:2]
    return {"out": str(out), "method": method, "frames": len(images), "fps": fps, "size": [fw, fh],
            "files": files, "pose_fidelity": fidelity,
            "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
            "seconds_total": round(sum(timer.seconds.values()), 3)}


def write_outputs(out: Path, images: list[np.ndarray], poses: list, fps: float, columns: int | None,
                  tag: str, formats=("gif",)) -> dict:
    """frames/, poses/, sheet.png, sheet.json and the animations; returns their paths.

    All of it is written into a hidden folder inside `out` and moved into place at the end
    (`staged_outputs`), so a failure or Ctrl-C leaves the previous result (or nothing)."""
    from posekit.images import save_image
    from posekit.pose.formats import keypoints_json_name, write_openpose_json
    from posekit.pose.render import draw_skeleton
    from posekit.sheet import write_animation, write_sheet

    out = Path(out)
    digits = max(3, len(str(len(images) - 1)))
    with staged_outputs(out) as stage:
        for i, (frame, pose) in enumerate(zip(images, poses)):
            stem = f"frame_{i:0{digits}d}"
            save_image(frame, stage / "frames" / f"{stem}.png")
            write_openpose_json([pose] if len(pose) else [], stage / "poses" / keypoints_json_name(stem), size=pose.size)
            save_image(draw_skeleton(pose), stage / "poses" / f"{stem}.png")
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


# -- evaluate ------------------------------------------------------------------------------
def evaluate_frames(frames_dir: str | Path, poses_dir: str | Path, reference: str | Path | None = None,
                    alpha: float = 0.5, detector=None) -> dict:
    """Score each image of frames_dir against its target pose (poses_dir/<stem>_keypoints.json)
    and, with `reference`, against the image of the same stem there.

    Returns {"frames": [{"frame", "pck", "ssim", "mask_ssim"}...], "overall": {...}, "alpha",
    "count", "failed": [{"frame", "error"}...]}: `frames` has every frame that was scored (pck None
    where its target has no keypoint inside the frame or no torso), `count` how many have a PCK (what
    the overall PCK averages), `failed` the frames that could not be scored (no or empty pose file,
    unreadable image, a size that is not its pose's canvas), which the others do not stop."""
    from posekit.console import warn
    from posekit.images import IMAGE_SUFFIXES, load_image
    from posekit.pose.formats import keypoints_json_name, read_openpose_json

    frames_dir, poses_dir = Path(frames_dir), Path(poses_dir)
    if not frames_dir.is_dir():
        raise UsageError(f"{frames_dir}: not a folder; pass the folder of frames (e.g. OUT/frames)")
    if not poses_dir.is_dir():
        raise UsageError(f"--poses {poses_dir}: not a folder; pass the folder of target poses (e.g. OUT/poses)")
    if reference is not None and not Path(reference).is_dir():
        raise UsageError(f"--reference {reference}: not a folder of images")
    paths = sorted(p for p in frames_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise PosekitError(f"{frames_dir}: no images found")
    refs = {} if reference is None else {p.stem: p for p in sorted(Path(reference).iterdir())
                                          if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}

    names, images, targets, references, failed = [], [], [], [], []
    for path in paths:
        try:
            image = load_image(path)
            h, w = image.shape[:2]
            pose_file = poses_dir / keypoints_json_name(path.stem)
            if not pose_file.exists():
                raise PosekitError(f"{path.name}: no target pose {pose_file}")
            people = read_openpose_json(pose_file, size=(w, h))
            if not people:
                raise PosekitError(f"{pose_file}: no person in the file")
            target = people[0]
            if target.size != (w, h):
                raise PosekitError(f"{path.name}: the frame is {w}x{h}, but its target pose {pose_file.name} is "
                                   f"on a {target.width}x{target.height} canvas; score frames at the size they were made")
            ref = None
            if reference is not None:
                if path.stem not in refs:
                    raise PosekitError(f"{path.name}: no reference image named {path.stem}.* in {reference}")
                ref = load_image(refs[path.stem])
                if ref.shape != image.shape:
                    raise PosekitError(f"{refs[path.stem]}: {ref.shape[1]}x{ref.shape[0]}, but the frame is {w}x{h}")
        except PosekitError as e:
            warn(str(e))
            failed.append({"frame": path.name, "error": str(e)})
            continue
        names.append(path.name)
        images.append(image)
        targets.append(target)
        references.append(ref)

    if not images:
        raise PosekitError(f"{frames_dir}: none of its {len(paths)} images could be scored "
                           f"(the first: {failed[0]['error']})")
    scores = pose_fidelity(images, targets, alpha=alpha, detector=detector)
    rows = []
    for name, image, target, ref, score in zip(names, images, targets, references, scores):
        row = {"frame": name, "pck": score}
        if ref is not None:
            from posekit.metrics import mask_ssim, ssim
            row["ssim"] = float(ssim(image, ref))
            row["mask_ssim"] = float(mask_ssim(image, ref, target))
        rows.append(row)
    overall = {"pck": mean(r["pck"] for r in rows)}
    if reference is not None:
        overall.update(ssim=mean(r.get("ssim") for r in rows), mask_ssim=mean(r.get("mask_ssim") for r in rows))
    count = sum(r["pck"] is not None for r in rows)
    return {"frames": rows, "overall": overall, "alpha": alpha, "count": count, "failed": failed}


def format_table(report: dict) -> str:
    """The evaluate report as an aligned text table (per frame, then overall)."""
    cols = [c for c in ("pck", "ssim", "mask_ssim") if c in report["overall"]]
    width = max([len(r["frame"]) for r in report["frames"]] + [len("overall")])

    def cell(v):
        return f"{'-':>9}" if v is None else f"{v:9.3f}"

    lines = [f"{'frame':<{width}}" + "".join(f"{c:>10}" for c in cols)]
    for r in report["frames"]:
        lines.append(f"{r['frame']:<{width}}" + "".join(" " + cell(r.get(c)) for c in cols))
    lines.append(f"{'overall':<{width}}" + "".join(" " + cell(report["overall"][c]) for c in cols))
    unmeasured = len(report["frames"]) - report["count"]
    lines.append(f"PCK@{report['alpha']:g} of the torso size over {report['count']} frames"
                 + (f" ({unmeasured} more without a measurable target pose: -)" if unmeasured else "")
                 + (f"; {len(report['failed'])} could not be scored" if report["failed"] else ""))
    return "\n".join(lines)

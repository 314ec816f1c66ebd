"""What `posekit evaluate` measures, and `posekit animate` after writing its frames.

    report = evaluate_frames("out/frames", "out/poses", reference="truth/")
    print(format_table(report))

- pose fidelity (`pose_fidelity`): the embedded detector is run on each frame and the pose it
  finds is compared with the frame's target pose: PCK, the fraction of the target's keypoints
  within alpha x torso size;
- with reference images (ground truth of the same names): SSIM and mask-SSIM (posekit.metrics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from posekit.errors import PosekitError, UsageError


def evaluate_frames(frames_dir: str | Path, poses_dir: str | Path, reference: str | Path | None = None,
                    alpha: float = 0.5, detector=None) -> dict:
    """Score each image of frames_dir against its target pose (poses_dir/<stem>_keypoints.json)
    and, with `reference`, against the image of the same stem there.

    Returns {"frames": [{"frame", "pck", "ssim", "mask_ssim"}...], "overall": {...}, "alpha",
    "count", "failed": [{"frame", "error"}...]}: `frames` has every frame that was scored (pck None
    where its target has no keypoint inside the frame or no torso), `count` how many have a PCK (what
    the overall PCK averages), `failed` the frames that could not be scored (no or empty pose file,
    unreadable image, a size that is not its pose's canvas), which the others do not stop."""
    from posekit.console import error

    paths, refs = _inputs(Path(frames_dir), Path(poses_dir), reference)
    read, failed = [], []
    for path in paths:
        try:
            read.append((path.name, *_frame(path, Path(poses_dir), refs, reference)))
        except PosekitError as e:  # counts toward exit status 1: an error, and the others go on
            error(str(e))
            failed.append({"frame": path.name, "error": str(e)})
    if not read:  # the report (for --json) travels with the error
        e = PosekitError(f"{frames_dir}: none of its {len(paths)} images could be scored "
                         f"(the first: {failed[0]['error']})")
        e.report = {"frames": [], "overall": {"pck": None}, "alpha": alpha, "count": 0, "failed": failed}
        raise e

    names, images, targets, references = zip(*read)
    scores = pose_fidelity(list(images), list(targets), alpha=alpha, detector=detector)
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


def _inputs(frames_dir: Path, poses_dir: Path, reference) -> tuple[list[Path], dict[str, Path]]:
    """The frames to score, and the reference images by stem; a folder that is not one, or that
    holds a target pose (a reference image) for none of the frames, is a usage error."""
    from posekit.images import IMAGE_SUFFIXES, natural_key
    from posekit.pose.formats import keypoints_json_name

    if not frames_dir.is_dir():
        raise UsageError(f"{frames_dir}: not a folder; pass the folder of frames (e.g. OUT/frames)")
    if not poses_dir.is_dir():
        raise UsageError(f"--poses {poses_dir}: not a folder; pass the folder of target poses (e.g. OUT/poses)")
    if reference is not None and not Path(reference).is_dir():
        raise UsageError(f"--reference {reference}: not a folder of images")
    paths = sorted((p for p in frames_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=natural_key)
    if not paths:
        raise UsageError(f"{frames_dir}: no images in this folder; pass the folder of frames (e.g. OUT/frames)")
    refs = {} if reference is None else {p.stem: p for p in sorted(Path(reference).iterdir())
                                          if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    # a folder that matches none of the frames is the wrong folder: said once, before any work
    if not any((poses_dir / keypoints_json_name(p.stem)).is_file() for p in paths):
        raise UsageError(f"--poses {poses_dir}: no target pose for any frame ({keypoints_json_name(paths[0].stem)} "
                         f"for {paths[0].name}, ...); pass the folder of target poses (e.g. OUT/poses)")
    if reference is not None and not any(p.stem in refs for p in paths):
        raise UsageError(f"--reference {reference}: no image named as any frame ({paths[0].stem}.* for "
                         f"{paths[0].name}, ...); pass the folder of ground-truth images")
    return paths, refs


def _frame(path: Path, poses_dir: Path, refs: dict[str, Path], reference):
    """(image, target pose, reference image or None) of one frame; a PosekitError naming what is wrong."""
    from posekit.images import load_image
    from posekit.pose.formats import keypoints_json_name, read_openpose_json

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
    if reference is None:
        return image, target, None
    if path.stem not in refs:
        raise PosekitError(f"{path.name}: no reference image named {path.stem}.* in {reference}")
    ref = load_image(refs[path.stem])
    if ref.shape != image.shape:
        raise PosekitError(f"{refs[path.stem]}: {ref.shape[1]}x{ref.shape[0]}, but the frame is {w}x{h}")
    return image, target, ref


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


def pose_fidelity(frames: list[np.ndarray], targets: list, alpha: float = 0.5, detector=None) -> list[float | None]:
    """Per frame: PCK (fraction of the target's keypoints within alpha x torso size) of the pose
    the embedded detector finds on the frame against the target pose (in frame pixels); of the
    people it finds, the one nearest the target pose (`nearest`) is scored. Target
    keypoints outside the frame are not counted (unless the torso that sets the tolerance is out
    of the frame too); a frame where nobody is found scores 0; None where the target has no
    keypoint in the frame or no torso to measure by."""
    from posekit.images import to_rgb
    from posekit.metrics import pck
    from posekit.pose.detect import load_detector
    from posekit.pose.pose import Pose

    own = detector is None
    detector = load_detector("blazepose", max_people=PEOPLE) if own else detector
    try:
        found = detector.detect([to_rgb(f) for f in frames])
    finally:
        if own:
            detector.close()
    scores: list[float | None] = []
    for people, target in zip(found, targets):
        visible = target.in_frame()  # no detector can find points off the frame
        if not len(visible):
            scores.append(None)
            continue
        pred = nearest(people, target) if people else Pose.empty(target.width, target.height)
        score = float(pck(pred, visible, alpha=alpha, reference="torso"))
        if not np.isfinite(score):  # the torso is out of the frame: measure by the whole target
            score = float(pck(pred, target, alpha=alpha, reference="torso"))
        scores.append(score if np.isfinite(score) else None)
    return scores


PEOPLE = 4  # people the evaluation's own detector looks for in a frame (the one scored: `nearest`)


def nearest(people: list, target):
    """The detected person nearest the target pose: the smallest median distance over the
    keypoints both show (a photo of two people animates one of them, the one the target poses
    place; the other, standing still, is not the one to score), people sharing no keypoint last."""
    def distance(person) -> float:
        pred = person if person.size == target.size else person.resized(target.width, target.height)
        both = pred.visible & target.visible
        if not both.any():
            return float("inf")
        return float(np.median(np.linalg.norm(pred.keypoints[both, :2] - target.keypoints[both, :2], axis=1)))

    return min(people, key=distance)


def mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None

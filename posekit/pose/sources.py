"""Where target poses come from: one string on the command line -> a clip of Poses.

`load_poses(source)` accepts, tried in this order:
- a built-in motion name (`walk`, `run`, `jump`, `idle`, `wave`), optionally with a view:
  `walk:side`, `run:front`, `walk:-45` (see posekit.pose.motions);
- a `.jsonl` file written by `posekit extract-pose --jsonl` (one frame per line);
- an OpenPose keypoint `.json` file (one frame; COCO-18 or BODY_25);
- a ControlNet skeleton image (parsed back by its colours) or a photo (its pose detected);
- a video: the pose detected in every frame, or parsed back when the video shows rendered
  skeletons (as DWPose / Animate Anyone style pipelines write them); an animated GIF, WebP or
  PNG (more than one frame, as `animate` writes them) is a video, one pose per frame;
- a folder of any of those files, read in natural order (frame_2 before frame_10): keypoint
  JSON files if it has any (only the `*_keypoints.json` ones when it has those), else its
  images (each one a skeleton or a photo).
One frame holds one person: the largest one in that file or image (a photo with a second person
of a similar size is warned of, naming the photo). Frames where nobody is found are skipped with
a warning; frames whose keypoints mostly lie off their canvas are used, with a warning naming the
file. Every pose keeps its own canvas (the file's or the image's size).
Skeleton images go to the "skeleton" detector, photos and video frames to the run's detector
(`detector=`; without one, BlazePose is built when first needed and closed at the end).

`resample(clip, frames)` changes the length of a clip that is not a built-in motion (motions are
regenerated instead) by interpolating cyclically, so the resampled clip still loops.
`source_pose_of(image, path)` is the pose of the person to animate: from --source-pose or detected.
A --source-pose file whose canvas differs from the photo's is rescaled when the aspect is the same
(a resized copy of the photo), and refused as a usage error when it is not.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from posekit.errors import NoPersonError, PosekitError, UsageError
from posekit.images import IMAGE_SUFFIXES, is_video, load_image, natural_key, read_video
from posekit.pose.detect import Detector, largest, largest_first, load_detector
from posekit.pose.pose import Pose

_DETECT_BATCH = 16


def load_poses(source: str, frames: int | None = None, device: str = "auto",
               size: tuple[int, int] | None = None, canvas: tuple[int, int] | None = None,
               detector: Detector | None = None) -> list[Pose]:
    """The clip that `source` names (see the module docstring), resampled to `frames` if given.
    `size=(w, h)` is the canvas for built-in motions (default 512 x 512). `canvas=(w, h)` is the
    canvas of OpenPose files that state none (and have no image beside them): standard OpenPose
    JSON is in the pixels of the photo it goes with, so `transfer`/`animate` pass the photo's size
    and its coordinates are kept exactly; without it the canvas is inferred from the keypoints.
    `detector` finds people in photos and video frames (the run's one detector; left open);
    without it a BlazePose one is built if a photo needs it, and closed."""
    from posekit.pose.motions import MOTIONS, motion

    if frames is not None and frames < 1:
        raise UsageError(f"--frames {frames}: need at least 1 frame")
    name, colon, view = str(source).partition(":")
    if name in MOTIONS:
        width, height = size or (512, 512)
        return motion(name, frames, width, height, view=view if colon else None)

    path = Path(source)
    if not path.exists():
        raise PosekitError(f"{source}: not a built-in motion ({', '.join(MOTIONS)}), nor an existing file or folder")
    problem = not_a_pose_file(path)
    if problem:
        raise UsageError(problem)
    with _given_or_own(detector, device, people=2) as detector:  # two: to warn of a second person
        clip = _from_folder(path, detector, canvas) if path.is_dir() else _from_file(path, detector, canvas)
    if not clip:
        raise PosekitError(f"{source}: no person found in any frame")
    return resample(clip, frames) if frames is not None else clip


def not_a_pose_file(path: str | Path) -> str | None:
    """Why an existing `path` cannot be a pose source, before anything is read (None when it may
    be one): a folder with no OpenPose .json file nor image in it; a pipe, a terminal or another
    device (/dev/stdin, <(...)), which a clip is not read from (poses are read more than once, and
    by their file's kind)."""
    path = Path(path)
    if path.is_dir():
        from posekit.images import IMAGE_SUFFIXES

        if any(p.suffix.lower() in (".json", *IMAGE_SUFFIXES) and not p.name.startswith(".") and p.is_file()
               for p in path.iterdir()):
            return None
        return f"{path}: no OpenPose .json files or images in this folder"
    if path.is_file() or not path.exists():
        return None
    return (f"{path}: not a regular file (a pipe or device such as /dev/stdin); save the poses to a file "
            "(an extract-pose .jsonl, an OpenPose .json, a video or images) and pass that")


def _given_or_own(detector: Detector | None, device: str, people: int = 1):
    """The caller's detector (left open), or BlazePose built on first use (keeping the `people`
    largest) and closed on exit."""
    return (nullcontext(detector) if detector is not None
            else load_detector("blazepose", device=device, max_people=people, lazy=True))


def _from_file(path: Path, detector: Detector, canvas=None) -> list[Pose]:
    from posekit.pose.formats import read_jsonl, read_openpose_json

    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = read_jsonl(path)
        kept = [r for r in records if not r.get("error")]
        failed = [r for r in records if r.get("error")]
        if failed and kept:  # inputs extract-pose could not read: no frame, said as frames with nobody are
            from posekit.console import warn

            warn(f"{path}: {len(failed)} of {len(records)} lines record an input that could not be read "
                 f"({_first_few([_line_name(r) for r in failed])}); skipped them")
        elif failed:
            raise PosekitError(f"{path}: every line records an input that could not be read "
                               f"({_first_few([_line_name(r) for r in failed])}); no poses in it")
        return _present([largest(r["poses"]) for r in kept], [_line_name(r) for r in kept], path)
    if suffix == ".json":
        return _present([largest(read_openpose_json(path, size=canvas))], [path.name], path)
    if is_video(path):  # a video file, or an animated GIF/WebP/PNG
        return _from_video(path, detector)
    if suffix in IMAGE_SUFFIXES:
        return _present(_from_images([path], detector, [str(path)]), [path.name], path)
    raise PosekitError(f"{path}: not a pose source (expected a motion name, an OpenPose .json, a .jsonl "
                       "from extract-pose, a skeleton image, a photo, a video or a folder of them)")


def _line_name(record: dict) -> str:
    """How a warning names an extract-pose JSON line: its line number and input (a video's frame
    as "clip.mp4 frame 12")."""
    name = record.get("path")
    if isinstance(name, str) and isinstance(record.get("frame"), int):
        name = f"{name} frame {record['frame']}"
    line = f"line {record['line']}" if record.get("line") else ""
    return f"{line}: {name}" if line and isinstance(name, str) else line or str(name)


def _from_folder(folder: Path, detector: Detector, canvas=None) -> list[Pose]:
    from posekit.pose.formats import read_openpose_json

    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=natural_key)
    jsons = [p for p in files if p.suffix.lower() == ".json"]
    jsons = [p for p in jsons if p.name.endswith("_keypoints.json")] or jsons  # not a sheet.json beside them
    if jsons:
        return _present([largest(read_openpose_json(p, size=canvas)) for p in jsons], [p.name for p in jsons], folder)
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        return _present(_from_images(images, detector, [str(p) for p in images]), [p.name for p in images], folder)
    raise PosekitError(f"{folder}: no OpenPose .json files or images in this folder")


def _reader(image: np.ndarray, detector: Detector) -> Detector:
    """What reads the people in this image: the skeleton detector for a rendered ControlNet
    skeleton, `detector` for a photo."""
    from posekit.pose.detect.skeleton import is_skeleton_image

    return load_detector("skeleton") if is_skeleton_image(image) else detector


def _from_images(paths: list[Path], detector: Detector, names: list[str]) -> list[Pose | None]:
    """The largest person in each image (a skeleton parsed, a photo detected), None for nobody;
    one warning naming the images (`names`: their paths as given) that hold more than one person
    (a folder of 200 such frames gave 200 lines)."""
    poses, crowded = [], []
    for path, name in zip(paths, names):
        image = load_image(path)
        people = largest_first(_reader(image, detector).detect([image])[0])
        if len(paths) == 1:
            warn_of_other_people(people, name, "using the largest one's pose (crop the photo to use another's)")
        elif other_people(people):
            crowded.append(name)
        poses.append(people[0] if people else None)
    if crowded:
        from posekit.console import warn

        warn(f"{len(crowded)} of {len(paths)} images show more than one person ({_first_few(crowded)}); using the "
             "largest one's pose in each (crop the photos to use another's)")
    return poses


def _from_video(path: Path, detector: Detector) -> list[Pose]:
    """The largest person in every frame of a video, in batches; a video of rendered skeletons
    (as pose-guided animation tools write them) is read by the skeleton detector."""
    from itertools import chain, islice

    from posekit.console import progress

    frames = read_video(path)
    first = next(frames, None)
    if first is None:
        raise PosekitError(f"{path}: the video has no frames")
    reader = _reader(first, detector)
    frames = chain([first], frames)
    poses: list[Pose | None] = []
    with progress() as bar:
        task = bar.add_task(f"detecting poses in {path.name}", total=None, status="")
        while batch := list(islice(frames, _DETECT_BATCH)):
            poses += [largest(people) for people in reader.detect(batch)]
            bar.advance(task, len(batch))
    return _present(poses, [f"frame {i}" for i in range(len(poses))], path)


def _present(poses: list[Pose | None], names: list[str], source: Path) -> list[Pose]:
    """Drop the frames where nobody was found, saying which."""
    from posekit.console import warn

    missing = [name for pose, name in zip(poses, names) if pose is None]
    if missing and len(missing) < len(poses):
        warn(f"{source}: no person in {len(missing)} of {len(poses)} frames ({_first_few(missing)}); skipped them")
    found = [(p, name) for p, name in zip(poses, names) if p is not None]
    outside = [(p, name) for p, name in found if _mostly_outside(p)]
    if outside:
        p = outside[0][0]
        warn(f"{source}: most keypoints lie outside the {p.width}x{p.height} canvas in {len(outside)} of {len(found)} "
             f"frames ({_first_few([name for _, name in outside])}): check the file's canvas (canvas_width, "
             "canvas_height) and coordinates; the poses are used as they are")
    return [p for p, _ in found]


def _first_few(names: list) -> str:
    return ", ".join(map(str, names[:3])) + (", ..." if len(names) > 3 else "")


def _mostly_outside(pose: Pose) -> bool:
    """Whether more than half of the pose's keypoints lie off its canvas (a wrong canvas, or
    coordinates scaled or negated: the figure will not be where the file means it)."""
    return len(pose) > 0 and int(pose.inside().sum()) * 2 < len(pose)


def resample(clip: list[Pose], frames: int) -> list[Pose]:
    """The clip with `frames` poses, interpolated cyclically (the last frame leads back to the
    first, so a loop stays a loop). A point is present when it is present in the nearest source
    frame; it is interpolated where both neighbours have it. Poses are put on the first pose's
    canvas."""
    if frames < 1:
        raise UsageError(f"--frames {frames}: need at least 1 frame")
    if not clip:
        return []
    width, height = clip[0].size
    if frames == len(clip):
        return [p.fitted(width, height) for p in clip]
    kps = np.stack([p.fitted(width, height).keypoints for p in clip])
    n = len(clip)
    out = []
    for j in range(frames):
        t = j * n / frames
        i = int(math.floor(t))
        a = t - i
        i, k = i % n, (i + 1) % n
        kp = kps[i if a < 0.5 else k].copy()
        both = (kps[i, :, 2] > 0) & (kps[k, :, 2] > 0)
        kp[both] = (1.0 - a) * kps[i, both] + a * kps[k, both]
        out.append(Pose(kp, width, height))
    return out


def person_in_file(path, flag: str, size: tuple[int, int] | None = None) -> Pose:
    """The largest person of an OpenPose JSON file given with `flag`; `size` is the canvas when
    the file states none. A file that is missing, unreadable or has nobody in it is a UsageError
    naming the flag and the file (exit 2, as for every other flag's missing file)."""
    from posekit.pose.formats import read_openpose_json

    try:
        pose = largest(read_openpose_json(path, size=size))
    except PosekitError as e:  # its message starts with the path
        raise UsageError(f"{flag} {e}; pass an OpenPose JSON of the person (posekit extract-pose writes one)") from None
    if pose is None:
        raise UsageError(f"{flag} {path}: no person in this keypoint file; pass an OpenPose JSON of the person "
                         "(posekit extract-pose writes one)")
    return pose


def same_aspect(a: tuple[int, int], b: tuple[int, int], tolerance: float = 0.01, rounded: float = 0.07) -> bool:
    """Whether canvases a and b (w, h) have the same shape, one a resized copy of the other:
    aspect ratios within `tolerance`; within `rounded` (7%) when the copy `a` has both sides in
    multiples of 64 (a preprocessor's 512 px copy rounded so: up to about 6% off); or one scale
    that takes the larger to the smaller with both sides within a pixel (a small copy's sides
    are rounded to whole pixels). A 4:5 crop of a 3:4 photo (6.5% off) is another shape."""
    (aw, ah), (bw, bh) = a, b
    if min(aw, ah, bw, bh) <= 0:
        return False
    off = abs(math.log((aw / ah) / (bw / bh)))
    if off <= tolerance or off <= rounded and aw % 64 == 0 and ah % 64 == 0:
        return True
    (sw, sh), (lw, lh) = sorted((a, b), key=lambda size: size[0] * size[1])
    return max((sw - 1) / lw, (sh - 1) / lh) <= min((sw + 1) / lw, (sh + 1) / lh)


def source_pose_of(image: np.ndarray, image_path, source_pose_json=None, device: str = "auto",
                   detector: Detector | None = None, flag: str = "--source-pose") -> Pose:
    """The pose of the person in `image`: read from `source_pose_json` (OpenPose JSON; the
    largest person) or found by `detector` (the run's one detector, left open, asked for two
    people; without it a BlazePose one is built and closed): a warning when the photo holds
    another person of a similar size. Put on the image's canvas: a JSON whose canvas has the
    photo's aspect (written for a resized copy of it) is scaled to it; another aspect is a
    UsageError (the pose belongs to another picture), as is a missing or empty `source_pose_json`.
    Nobody found -> a NoPersonError suggesting `flag` (the command's flag that takes a keypoint file
    of the person: --source-pose, --onto); its `in_batch` is the message for a batch of photos,
    which takes no such flag (leave the photo out, or animate it alone with the flag)."""
    height, width = image.shape[:2]
    if source_pose_json is not None:
        pose = person_in_file(source_pose_json, "--source-pose", size=(width, height))
        if pose.size == (width, height):
            return pose
        if not same_aspect(pose.size, (width, height)):
            raise UsageError(f"--source-pose {source_pose_json}: its canvas is {pose.width}x{pose.height} but "
                             f"{Path(image_path).name} is {width}x{height} (another aspect ratio): the pose is "
                             "of another picture; pass the keypoints of this photo (posekit extract-pose "
                             "writes them) or leave --source-pose out to detect the pose")
        return pose.resized(width, height)
    with _given_or_own(detector, device, people=2) as detector:
        people = largest_first(detector.detect([image])[0])
    pose = people[0] if people else None
    if pose is None or pose["neck"] is None and (pose["r_shoulder"] is None or pose["l_shoulder"] is None):
        error = NoPersonError(f"{image_path}: no person found in the photo; pass {flag} with an "
                              "OpenPose JSON of the person (posekit extract-pose writes one)")
        # a batch takes no --source-pose (each photo's pose is detected): what to say there
        error.in_batch = (f"{image_path}: no person found in the photo; leave it out of the batch, or animate "
                          f"it alone with {flag} (an OpenPose JSON of the person; posekit extract-pose writes one)")
        raise error
    warn_of_other_people(people, image_path, "animating the largest (crop the photo to animate another)")
    return pose


def warn_of_other_people(people: list[Pose], image_path, doing: str) -> None:
    """A warning naming the photo (its path as given) when `people` (largest first) holds another
    person at least ANOTHER_PERSON times as tall as the largest: `doing` says which one is used
    and how to choose another."""
    others = other_people(people)
    if others:
        from posekit.console import warn

        warn(f"{image_path}: {len(others) + 1} people in the photo; {doing}")


def other_people(people: list[Pose]) -> list[Pose]:
    """The people besides the largest (`people` largest first) at least ANOTHER_PERSON times as
    tall as it: other people in the photo, not a small figure in the background."""
    return [p for p in people[1:] if _height(p) >= ANOTHER_PERSON * _height(people[0])] if people else []


ANOTHER_PERSON = 0.5  # a second figure at least this tall (share of the largest) is another person to warn of


def _height(pose: Pose) -> float:
    """The figure's size: its keypoints' box, the longer side (a person lying down counts too)."""
    x0, y0, x1, y1 = pose.bbox()
    return max(x1 - x0, y1 - y0)

"""Person detectors behind one calling convention (as controlnet_aux keeps many detectors).

    with load_detector("blazepose") as detector:     # or "openpose", model=hub id | folder | file
        people = detector.detect([rgb_image, ...])   # per image: list[Pose], largest person first

Every Pose is in pixel coordinates of its input image (canvas = the image's size), COCO-18
keypoints, confidence 0 for points the detector did not find or trust. Build one detector per
run and pass it to whatever detects (`load_poses(..., detector=)`, `source_pose_of(...,
detector=)`); they build and close their own only when given none.

- blazepose (default): MediaPipe's BlazePose GHUM "full" landmarker, embedded in the package
  (posekit/assets/blazepose_full.task), offline, CPU; several people with --max-people.
- openpose: the CMU body model as ControlNet's annotator runs it (controlnet_aux), weights
  `body_pose_model.pth` from the hub (lllyasviel/Annotators) or a local folder/file; the
  network runs in batches on the GPU when there is one.
- skeleton: reads rendered ControlNet OpenPose skeleton images back (no model); pose sources
  use it for the skeleton images and videos they are given.
"""

from __future__ import annotations

import atexit
import threading
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from posekit.pose.pose import Pose

DETECTORS = ("blazepose", "openpose")  # the person detectors `--detector` chooses from


@runtime_checkable
class Detector(Protocol):
    """What every detector is: `detect(images)` gives, per image, its people largest first;
    `close()` frees the model; `with detector:` closes it at the end. Detector classes inherit
    the context manager (and a `close` with nothing to free) from here."""

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Pose]]: ...

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_detector(name: str = "blazepose", model: str | None = None, device: str = "auto",
                  max_people: int = 1, lazy: bool = False, **options) -> Detector:
    """Build a detector by name. `model`: for openpose a hub id, folder or .pth file; for
    blazepose another .task bundle. `options` go to the detector (openpose: resolution).
    `lazy`: build it on the first `detect` call, for runs that may not need one at all (a
    motion or keypoint files as the pose source); model errors then come at that call."""
    if lazy:
        return _OnFirstUse(lambda: load_detector(name, model, device, max_people, **options))
    if name == "blazepose":
        from posekit.pose.detect.blazepose import BlazePoseDetector

        return BlazePoseDetector(model=model, max_people=max_people, **options)
    if name == "openpose":
        from posekit.pose.detect.openpose import OpenPoseDetector

        return OpenPoseDetector(model=model, device=device, max_people=max_people, **options)
    if name == "skeleton":
        from posekit.pose.detect.skeleton import SkeletonDetector

        return SkeletonDetector(max_people=max_people)
    from posekit.errors import UsageError

    raise UsageError(f"--detector {name!r}: choose one of {', '.join(DETECTORS)}")


def largest_first(poses: list[Pose]) -> list[Pose]:
    """People sorted by the area of their keypoints' box (then by how many points they have);
    poses without keypoints are dropped."""

    def size(p: Pose):
        x0, y0, x1, y1 = p.bbox()
        return (x1 - x0) * (y1 - y0), len(p)

    return sorted((p for p in poses if len(p)), key=size, reverse=True)


def largest(poses: list[Pose]) -> Pose | None:
    """The largest person, or None when there is nobody."""
    people = largest_first(poses)
    return people[0] if people else None


class _OnFirstUse(Detector):
    """A detector built by `make()` when first asked to detect (see load_detector's `lazy`)."""

    def __init__(self, make):
        self._make, self._detector = make, None

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Pose]]:
        if self._detector is None:
            self._detector = self._make()
        return self._detector.detect(images)

    def close(self) -> None:
        if self._detector is not None:
            detector, self._detector = self._detector, None
            detector.close()


_default = None


def detect_person(image: np.ndarray, detector: Detector | None = None) -> Pose | None:
    """The largest person in an RGB image, or None when nobody is found. Without a detector,
    a shared default BlazePose detector is created once and reused."""
    global _default
    if detector is None:
        if _default is None:
            _default = load_detector("blazepose")
            _close_at_exit(_default)
        detector = _default
    return largest(detector.detect([image])[0])


def _close_at_exit(detector: Detector) -> None:
    """Close before the interpreter shuts thread pools down: MediaPipe runs its C calls on a
    ThreadPoolExecutor, which is gone by the time plain atexit callbacks run."""
    register = getattr(threading, "_register_atexit", None)
    try:
        register(detector.close) if register else atexit.register(detector.close)
    except RuntimeError:  # already shutting down
        atexit.register(detector.close)

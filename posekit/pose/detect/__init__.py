"""Person detectors behind one calling convention (as controlnet_aux keeps many detectors).

    detector = load_detector("blazepose")            # or "openpose", model=hub id | folder | file
    people = detector.detect([rgb_image, ...])       # per image: list[Pose], largest person first
    detector.close()

Every Pose is in pixel coordinates of its input image (canvas = the image's size), COCO-18
keypoints, confidence 0 for points the detector did not find or trust.

- blazepose (default): MediaPipe's BlazePose GHUM "full" landmarker, embedded in the package
  (posekit/assets/blazepose_full.task), offline, CPU; several people with --max-people.
- openpose: the CMU body model as ControlNet's annotator runs it (controlnet_aux), weights
  `body_pose_model.pth` from the hub (lllyasviel/Annotators) or a local folder/file; the
  network runs in batches on the GPU when there is one.
"""

from __future__ import annotations

import atexit
import threading

import numpy as np

from posekit.pose.pose import Pose

DETECTORS = ("blazepose", "openpose")


def load_detector(name: str = "blazepose", model: str | None = None, device: str = "auto",
                  max_people: int = 1, **options):
    """Build a detector by name. `model`: for openpose a hub id, folder or .pth file; for
    blazepose another .task bundle. `options` go to the detector (openpose: resolution)."""
    if name == "blazepose":
        from posekit.pose.detect.blazepose import BlazePoseDetector

        return BlazePoseDetector(model=model, max_people=max_people, **options)
    if name == "openpose":
        from posekit.pose.detect.openpose import OpenPoseDetector

        return OpenPoseDetector(model=model, device=device, max_people=max_people, **options)
    from posekit.errors import UsageError

    raise UsageError(f"--detector {name!r}: choose one of {', '.join(DETECTORS)}")


def largest_first(poses: list[Pose]) -> list[Pose]:
    """People sorted by the area of their keypoints' box (then by how many points they have)."""

    def size(p: Pose):
        box = p.bbox()
        return (0.0, 0) if box is None else ((box[2] - box[0]) * (box[3] - box[1]), len(p))

    return sorted((p for p in poses if len(p)), key=size, reverse=True)


_default = None


def detect_person(image: np.ndarray, detector=None) -> Pose | None:
    """The largest person in an RGB image, or None when nobody is found. Without a detector,
    a shared default BlazePose detector is created once and reused."""
    global _default
    if detector is None:
        if _default is None:
            _default = load_detector("blazepose")
            _close_at_exit(_default)
        detector = _default
    people = detector.detect([image])[0]
    return people[0] if people else None


def _close_at_exit(detector) -> None:
    """Close before the interpreter shuts thread pools down: MediaPipe runs its C calls on a
    ThreadPoolExecutor, which is gone by the time plain atexit callbacks run."""
    register = getattr(threading, "_register_atexit", None)
    try:
        register(detector.close) if register else atexit.register(detector.close)
    except RuntimeError:  # already shutting down
        atexit.register(detector.close)

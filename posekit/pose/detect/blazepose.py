"""BlazePose (MediaPipe Tasks PoseLandmarker) -> COCO-18 Poses, fully offline.

The model bundle ships inside the package (see posekit/assets/blazepose_full.PROVENANCE.md).
BlazePose finds 33 landmarks; COCO-18 takes 17 of them plus a neck at the shoulders' midpoint.
Its left/right are the person's own sides, as in OpenPose. The same model also segments each
person it finds: `detect_with_masks` gives each Pose with its (H, W) soft mask.
"""

from __future__ import annotations

from importlib import resources
from typing import Sequence

import numpy as np

from posekit.console import silence_fd
from posekit.errors import ModelNotFoundError
from posekit.pose.detect import Detector, largest_first
from posekit.pose.pose import NUM_KEYPOINTS, Pose

# COCO-18 index -> BlazePose landmark index; the neck (1) is made from the shoulders 11 and 12.
BLAZEPOSE_TO_COCO18 = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
MIN_VISIBILITY = 0.5  # below this BlazePose is guessing (occluded or outside the image)
LOOK_FOR = 4  # people the landmarker looks for: it ranks by confidence, we keep the largest


def bundle_path() -> str:
    return str(resources.files("posekit") / "assets" / "blazepose_full.task")


class BlazePoseDetector(Detector):
    def __init__(self, model: str | None = None, max_people: int = 1):
        import mediapipe as mp

        self._mp = mp
        # asked for one person, the landmarker gives its most confident one, which may be a small
        # figure in the background: it looks for a few and the largest `max_people` are kept
        self._path, self._people = model or bundle_path(), max(1, int(max_people))
        self._landmarker = self._create(masks=False)
        self._masker = None  # the landmarker that also segments, built on first use

    def _create(self, masks: bool):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=self._path), running_mode=vision.RunningMode.IMAGE,
            num_poses=max(self._people, LOOK_FOR), output_segmentation_masks=masks)
        try:
            with silence_fd():  # TFLite/absl write their start-up chatter straight to fd 2
                return vision.PoseLandmarker.create_from_options(options)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelNotFoundError(f"--model {self._path}: cannot load it as a MediaPipe pose landmarker bundle "
                                     f"({e}); pass a .task file, or leave --model out for the embedded one") from None

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Pose]]:
        from posekit.images import to_rgb

        # gray/RGBA/float -> RGB uint8
        return [[pose for pose, _ in self._detect_one(to_rgb(img), masks=False)] for img in images]

    def detect_with_masks(self, images: Sequence[np.ndarray]) -> list[list[tuple[Pose, np.ndarray]]]:
        """Per image, its people largest first, each as (Pose, its (H, W) float32 mask in 0..1: the
        model's person segmentation)."""
        from posekit.images import to_rgb

        if self._masker is None:
            self._masker = self._create(masks=True)
        return [self._detect_one(to_rgb(img), masks=True) for img in images]

    def _detect_one(self, image: np.ndarray, masks: bool) -> list[tuple[Pose, np.ndarray | None]]:
        height, width = image.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image)
        with silence_fd():  # the graph logs calculator warnings on its first run
            result = (self._masker if masks else self._landmarker).detect(mp_image)
        poses = [coco18(landmarks, width, height) for landmarks in result.pose_landmarks]
        found = [np.squeeze(m.numpy_view()).astype(np.float32) for m in result.segmentation_masks or []]
        pairs = list(zip(poses, found)) if masks else [(p, None) for p in poses]
        order = {id(p): i for i, p in enumerate(largest_first(poses)[:self._people])}
        return sorted((pair for pair in pairs if id(pair[0]) in order), key=lambda pair: order[id(pair[0])])

    def close(self) -> None:
        for name in ("_landmarker", "_masker"):
            landmarker = getattr(self, name, None)
            if landmarker is None:
                continue
            setattr(self, name, None)
            try:
                with silence_fd():  # MediaPipe >= 1.2.3 logs "DestroyAccelerator" as it closes
                    landmarker.close()  # explicitly: left to __del__ it prints a TypeError at exit
            except RuntimeError:
                pass  # the interpreter is shutting down and took MediaPipe's thread pool


def coco18(landmarks, width: int, height: int) -> Pose:
    """33 normalised BlazePose landmarks -> a COCO-18 Pose in pixels. Points BlazePose is not
    sure of, or that fall outside the image, are missing."""
    lm = np.array([(p.x * width, p.y * height, p.visibility if p.visibility is not None else 1.0)
                   for p in landmarks], np.float32)
    kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
    for i, j in enumerate(BLAZEPOSE_TO_COCO18):
        if j is not None:
            kp[i] = lm[j]
    kp[1, :2] = (lm[11, :2] + lm[12, :2]) / 2
    kp[1, 2] = min(lm[11, 2], lm[12, 2])
    kp[kp[:, 2] < MIN_VISIBILITY] = 0.0
    return Pose(kp, width, height).in_frame()

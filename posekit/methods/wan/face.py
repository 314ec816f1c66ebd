"""The face video Wan2.2-Animate reads: one square crop of the face per frame.

Wan's preprocessing (process_pipepline.py + utils.get_face_bboxes) takes the box around the 68
face landmarks of each driving frame, grows its area by 1.3 keeping its aspect (the extra width
split evenly left and right; the extra height 3/4 above, for the forehead, and 1/4 below),
clips it to the frame, crops and resizes the crop to 512 x 512 (cv2's bilinear default). The
transformer's motion encoder reads these crops (its `motion_encoder_size`) for the expression.

posekit's poses have no face landmarks, only nose, eyes and ears, so the landmark box is
estimated from those with the proportions of an average face: the 68-point box is about as tall
as it is wide, its width about 2.4 times the distance between the eyes (or the distance between
the ears, whichever says larger: a turned head shortens one of them), the eyes at 0.36 of its
height from the top and the nose tip at 0.58. Then Wan's growth rule applies. A frame whose head
points are all missing gets a black crop (the pipeline's own "no face" input).
"""

from __future__ import annotations

import numpy as np

from posekit.pose.pose import NUM_KEYPOINTS, Pose

FACE_SIZE = 512  # Wan-Animate's face crops (the transformer's motion_encoder_size)
AREA_SCALE = 1.3  # get_face_bboxes(scale=1.3)
EYES_TO_BOX = 2.4  # landmark box width / distance between the eyes
EYE_LINE = 0.36  # the eyes' height in the landmark box, from its top
NOSE_LINE = 0.58  # the nose tip's


def landmark_box(pose: Pose) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1): where the 68 face landmarks would lie, estimated from the head points."""
    nose, neck = pose["nose"], pose["neck"]
    eyes = [p for p in (pose["r_eye"], pose["l_eye"]) if p is not None]
    ears = [p for p in (pose["r_ear"], pose["l_ear"]) if p is not None]
    sizes = []
    if len(eyes) == 2:
        sizes.append(EYES_TO_BOX * float(np.linalg.norm(eyes[0] - eyes[1])))
    if len(ears) == 2:
        sizes.append(float(np.linalg.norm(ears[0] - ears[1])))
    if nose is not None:  # a profile: one eye or ear beside the nose
        sizes += [3.0 * float(np.linalg.norm(nose - e)) for e in eyes[:1] if len(eyes) == 1]
        sizes += [2.0 * float(np.linalg.norm(nose - e)) for e in ears[:1] if len(ears) == 1]
        if not sizes and neck is not None:
            sizes.append(float(np.linalg.norm(nose - neck)))
    size = max(sizes, default=0.0)
    if size < 1.0:
        return None
    if eyes:
        cx = float(np.mean([e[0] for e in eyes])) if len(eyes) == 2 or nose is None else float(nose[0])
        eye_y = float(np.mean([e[1] for e in eyes]))
    elif nose is not None:
        cx, eye_y = float(nose[0]), float(nose[1]) - (NOSE_LINE - EYE_LINE) * size
    else:  # ears only (the back of the head)
        cx, eye_y = float(np.mean([e[0] for e in ears])), float(np.mean([e[1] for e in ears]))
    top = eye_y - EYE_LINE * size
    return cx - size / 2, top, cx + size / 2, top + size


def face_box(pose: Pose, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) integer crop box in a width x height frame, grown as Wan grows it."""
    box = landmark_box(pose)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    grown = np.sqrt(AREA_SCALE)  # area x 1.3, same aspect
    dw, dh = (w * grown - w) / 2, (h * grown - h) / 4
    x0, x1 = max(x0 - dw, 0), min(x1 + dw, width)
    y0, y1 = max(y0 - 3 * dh, 0), min(y1 + dh, height)
    if int(x1) - int(x0) < 1 or int(y1) - int(y0) < 1:
        return None
    return int(x0), int(y0), int(x1), int(y1)


def face_crop(image: np.ndarray, pose: Pose, size: int = FACE_SIZE) -> np.ndarray:
    """(size, size, 3) uint8: the face of the person whose pose is `pose` (on `image`'s canvas),
    black when the pose has no head points."""
    return square(face_region(image, pose), size)


def face_region(image: np.ndarray, pose: Pose) -> np.ndarray | None:
    """The face's box (`face_box`) cut out of `image` at its own resolution, a copy (the frame
    can go); None when the pose has no head points."""
    h, w = image.shape[:2]
    box = face_box(pose.resized(w, h) if pose.size != (w, h) else pose, w, h)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return np.array(image[y0:y1, x0:x1, :3], copy=True)


def square(region: np.ndarray | None, size: int = FACE_SIZE) -> np.ndarray:
    """A face region resized to Wan's (size, size, 3) crop (cv2's bilinear, as Wan's
    preprocessing); black for None (no face)."""
    import cv2

    if region is None:
        return np.zeros((size, size, 3), np.uint8)
    return cv2.resize(region, (size, size))


def face_video(frames: list[np.ndarray], poses: list[Pose], size: int = FACE_SIZE) -> list[np.ndarray]:
    """The face crops of a driving video: frame i cropped around poses[i]."""
    if len(frames) != len(poses):
        raise ValueError(f"face_video: {len(frames)} frames but {len(poses)} poses")
    return [face_crop(f, p, size) for f, p in zip(frames, poses)]


def driving_faces(video, frames: int, detector, size: int = FACE_SIZE) -> list[np.ndarray] | None:
    """The face video of a driving video resampled to `frames` frames as posekit resamples its
    poses (`nearest_frames`: posekit.pose.sources.resample's own choice of frame): each frame
    cropped around the largest person that `detector` finds in it. Frames without anybody are
    skipped, as load_poses skips them; None when nobody is found at all (a skeleton video: the
    method keeps the photo's own face). The video is read a frame at a time and only each face
    region is kept (a long video is never held in memory)."""
    from posekit.images import read_video
    from posekit.pose.detect import largest

    regions: list[np.ndarray | None] = []
    for image in read_video(video):
        pose = largest(detector.detect([image])[0])
        if pose is not None:
            regions.append(face_region(image, pose))
    if not regions:  # a skeleton video, or nobody in it: the photo's own face will do
        return None
    return [square(regions[i], size) for i in nearest_frames(len(regions), frames)]


def nearest_frames(n: int, frames: int) -> list[int]:
    """For a clip of `n` frames resampled to `frames` (posekit.pose.sources.resample), the source
    frame each one copies where nothing is interpolated: resample itself decides, so the faces
    and the poses cannot drift apart. Frame i is marked by a pose with one point, at x = i, and
    no two neighbouring frames (the last and the first too: resample is cyclic) mark the same
    point, so resample interpolates no point and each of its poses is its nearer frame's marker."""
    from posekit.pose.sources import resample

    def marker(i: int) -> Pose:
        kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        slot = 2 if n > 1 and i == n - 1 and i % 2 == 0 else i % 2  # an odd n: the last is not the first's
        kp[slot] = (i, 0, 1)
        return Pose(kp, n, 1)

    return [int(round(float(p.keypoints[p.visible][0, 0]))) for p in resample([marker(i) for i in range(n)], frames)]

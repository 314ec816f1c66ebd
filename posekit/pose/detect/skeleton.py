"""The "skeleton" detector: rendered ControlNet OpenPose skeleton images read back into Poses.

The skeleton (see posekit.pose.render) gives every joint and limb its own flat colour on black,
so the people in it can be recovered without a model: joints are found by colour, their circles
fitted, and joints grouped into people along the limbs drawn between them. Folders and videos
of ControlNet pose images (as DWPose / Animate Anyone style tools write them) then work as pose
sources; `is_skeleton_image` tells such an image from a photo.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from posekit.pose.detect import Detector, largest_first
from posekit.pose.pose import LIMBS, NUM_KEYPOINTS, Pose
from posekit.pose.render import COLORS, LIMB_COLORS


class SkeletonDetector(Detector):
    """Per image, the people drawn in a skeleton image (largest first, at most `max_people`),
    on the image's canvas with confidence 1. Nothing to load or free."""

    def __init__(self, max_people: int = 1):
        self.max_people = max(1, int(max_people))

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Pose]]:
        return [parse_skeleton(image)[: self.max_people] for image in images]


# Palette classes for reading back: 0..17 joints, 18..34 limbs, 35 black.
_PALETTE = np.concatenate([COLORS, LIMB_COLORS, np.zeros((1, 3), np.int32)])
_BLACK = len(_PALETTE) - 1
_LIMB0 = NUM_KEYPOINTS
_TOLERANCE = 40  # colour distance (max over channels) still counted as a palette colour


def _in_colour(image: np.ndarray) -> bool:
    return image.ndim == 3 and image.shape[2] >= 3


def _classes(image: np.ndarray) -> np.ndarray:
    """(H, W) int8 palette class of each pixel: joint 0..17, limb 18..34, black 35, -1 other."""
    img = np.asarray(image)[:, :, :3]
    classes = np.full(img.shape[:2], _BLACK, np.int8)
    lit = img.max(axis=2) > _TOLERANCE
    pixels = img[lit].astype(np.int16)
    found = np.empty(len(pixels), np.int8)
    for start in range(0, len(pixels), 1 << 16):  # in chunks: (n, 36, 3) distances add up
        chunk = pixels[start:start + (1 << 16)]
        dist = np.abs(chunk[:, None, :] - _PALETTE[None, :, :]).max(axis=2)
        best = dist.argmin(axis=1)
        found[start:start + len(chunk)] = np.where(dist[np.arange(len(best)), best] <= _TOLERANCE, best, -1)
    classes[lit] = found
    return classes


def is_skeleton_image(image: np.ndarray) -> bool:
    """True for a ControlNet OpenPose skeleton: mostly black, the rest in the skeleton's
    palette, with at least two joints and one limb."""
    image = np.asarray(image)
    if not _in_colour(image):
        return False
    if (image[::4, ::4, :3].max(axis=2) > _TOLERANCE).mean() > 0.5:
        return False  # a photo: most of it is not black (decided cheaply, before classifying)
    classes = _classes(image)
    black = classes == _BLACK
    if black.mean() < 0.5:
        return False
    drawn = ~black
    if drawn.sum() == 0 or (classes[drawn] == -1).mean() > 0.3:  # 0.3: JPEG blurs the edges
        return False
    counts = np.bincount(classes[drawn & (classes >= 0)].astype(np.int64), minlength=len(_PALETTE))
    return int((counts[:NUM_KEYPOINTS] >= 3).sum()) >= 2 and int(counts[_LIMB0:_BLACK].max(initial=0)) >= 3


def parse_skeleton(image: np.ndarray) -> list[Pose]:
    """Read a ControlNet OpenPose skeleton image back into Poses (largest person first).

    Joints are found by colour (one connected blob per person and joint; the circle's centre is
    fitted so that joints partly covered by later joints still land right) and grouped into
    people along the limbs that join them. Canvas = the image's size; confidence 1.
    """
    import cv2

    if not _in_colour(np.asarray(image)):
        return []
    classes = _classes(image)
    height, width = classes.shape
    radius = _joint_radius(classes)
    disk = _disk(radius)
    joints: list[tuple[int, float, float]] = []  # (keypoint index, x, y)
    # a joint cut in pieces by something drawn over it (a face dot, a hand line) is one joint:
    # pieces closer than a joint's radius are labelled together
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    for k in range(NUM_KEYPOINTS):
        mask = (classes == k).astype(np.uint8)
        if not mask.any():
            continue
        n, labels = cv2.connectedComponents(cv2.dilate(mask, near), connectivity=8)
        for c in range(1, n):
            blob = (labels == c) & (mask > 0)
            if blob.sum() < max(2, len(disk) // 8):
                continue  # stray pixels (JPEG noise, a limb's edge), not a joint
            x, y = _circle_centre(classes, blob, k, radius, disk)
            joints.append((k, x, y))
    people = _group(joints, classes, radius)
    # one or two joints beside a real person are noise (JPEG blocks, openpose_full hands)
    if any(len(m) >= 3 for m in people):
        people = [m for m in people if len(m) >= 3]
    elif any(len(m) > 1 for m in people):
        people = [m for m in people if len(m) > 1]
    poses = []
    for members in people:
        kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
        for j in members:
            k, x, y = joints[j]
            if kp[k, 2] == 0:
                kp[k] = (x, y, 1.0)
        poses.append(Pose(kp, width, height))
    return largest_first(poses)


def _joint_radius(classes: np.ndarray) -> int:
    """The joints' circle radius, from the blobs that look like whole circles (square box,
    filled like a disk); pieces of covered joints and hand lines do not."""
    import cv2

    whole, any_size = [], []
    for k in range(NUM_KEYPOINTS):
        mask = (classes == k).astype(np.uint8)
        if not mask.any():
            continue
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for x, y, w, h, area in stats[1:]:
            if area < 2:
                continue
            any_size.append((max(w, h) - 1) / 2)
            if abs(w - h) <= 1 and area >= 0.6 * np.pi * (max(w, h) / 2) ** 2:
                whole.append((max(w, h) - 1) / 2)
    halves = whole or any_size
    return max(1, int(round(float(np.median(halves))))) if halves else 1


def _disk(radius: int) -> np.ndarray:
    """The pixel footprint cv2.circle fills for this radius, as (dy, dx) offsets."""
    import cv2

    canvas = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
    cv2.circle(canvas, (radius, radius), radius, 1, thickness=-1)
    return np.argwhere(canvas > 0) - radius


def _circle_centre(classes, blob, k, radius, disk) -> tuple[float, float]:
    """Fit the circle of joint k to its blob: the centre whose disk best matches the blob.

    Disk pixels of the joint's colour score +1, pixels that something drawn later may have
    covered 0 (later joints; colours outside the palette, such as the white face dots of
    ControlNet's openpose_full images), anything else (black, limbs, earlier joints) -1. A whole blob has one best
    centre; a half-covered one is pushed toward the covered side, where it really is.
    """
    ys, xs = np.nonzero(blob)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    height, width = classes.shape
    # centres whose disk can hold the whole blob (one pixel of slack for stray edge pixels);
    # a blob wider than the disk (noise around it) searches its whole box
    cxs = range(x1 - radius - 1, x0 + radius + 2) if x1 - x0 <= 2 * radius + 2 else range(x0, x1 + 1)
    cys = range(y1 - radius - 1, y0 + radius + 2) if y1 - y0 <= 2 * radius + 2 else range(y0, y1 + 1)
    best, centres = -np.inf, []
    for cy in cys:
        for cx in cxs:
            ys, xs = disk[:, 0] + cy, disk[:, 1] + cx
            inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            c = classes[ys[inside], xs[inside]]
            covered = ((c > k) & (c < NUM_KEYPOINTS)) | (c == -1)  # later joints, face/hand dots
            score = int((c == k).sum()) - int(((c != k) & ~covered).sum())
            if score > best:
                best, centres = score, [(cx, cy)]
            elif score == best:
                centres.append((cx, cy))
    cx, cy = np.mean(centres, axis=0)
    return float(cx), float(cy)


def _group(joints, classes, radius) -> list[list[int]]:
    """Join joints into people: two joints belong together when the limb between their types
    is drawn, in its colour, along the segment between them."""
    parent = list(range(len(joints)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_type: dict[int, list[int]] = {}
    for j, (k, _, _) in enumerate(joints):
        by_type.setdefault(k, []).append(j)
    for limb, (a, b) in enumerate(LIMBS):
        scored = []
        for ja in by_type.get(a, []):
            for jb in by_type.get(b, []):
                score = _limb_score(classes, joints[ja][1:], joints[jb][1:], _LIMB0 + limb, radius,
                                    may_touch=0 in (a, b) or a >= 14)
                if score is not None:
                    scored.append((score, ja, jb))
        used_a, used_b = set(), set()
        for _, ja, jb in sorted(scored, reverse=True):
            if ja in used_a or jb in used_b:
                continue
            used_a.add(ja)
            used_b.add(jb)
            parent[root(ja)] = root(jb)
    groups: dict[int, list[int]] = {}
    for j in range(len(joints)):
        groups.setdefault(root(j), []).append(j)
    return list(groups.values())


def _limb_score(classes, pa, pb, limb_class, radius, may_touch=False) -> float | None:
    """Fraction of the segment a-b (outside the joint circles) drawn in the limb's colour, or
    None when the limb is clearly not there (black gaps, or little of its colour). Each sample
    looks at its 3x3 neighbourhood: thin limbs on small canvases wobble by a pixel.

    Joints that touch leave nothing to check: accepted only on the head (`may_touch`), where
    small faces put eyes, ears and nose side by side; elsewhere touching joints of the right
    colours are clutter (the hand drawings of openpose_full images use the same colours)."""
    (xa, ya), (xb, yb) = pa, pb
    length = math.hypot(xb - xa, yb - ya)
    t = np.linspace(0.0, 1.0, max(8, int(length)))
    t = t[(t * length > radius + 1) & ((1 - t) * length > radius + 1)]
    if len(t) == 0:
        return 0.5 if may_touch else None
    height, width = classes.shape
    near = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    ys = np.clip(np.round(ya + t * (yb - ya)).astype(int)[:, None] + near[:, 0], 0, height - 1)
    xs = np.clip(np.round(xa + t * (xb - xa)).astype(int)[:, None] + near[:, 1], 0, width - 1)
    c = classes[ys, xs]  # (samples, 9)
    seen = ~(c == -1).all(axis=1)  # samples not hidden under off-palette drawing (face dots)
    if not seen.any():
        return 0.5 if may_touch else None
    own = float((c[seen] == limb_class).any(axis=1).mean())
    if own < 0.2 or (c[seen] == _BLACK).all(axis=1).mean() > 0.1:
        return None
    return own

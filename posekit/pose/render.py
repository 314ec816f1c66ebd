"""What models read: ControlNet OpenPose skeleton images (drawing and reading back) and PATN heatmaps.

The skeleton is drawn exactly as ControlNet 1.1's annotator draws the body (the images the
`control_v11p_sd15_openpose` model was trained on): a black canvas; per person the 17 limbs as
filled ellipses in limb order at 0.6 of their colour, then the 18 joints as filled circles at full
colour; integer pixel positions, no anti-aliasing; missing points and their limbs not drawn.
ControlNet draws at 512 px with stick width 4 and joint radius 4; on other canvases both scale
with the short side (so a 1024 px skeleton looks like a 512 px one resized).

Because every limb and joint has its own flat colour, a skeleton image can be read back into
Poses: see posekit.pose.detect.skeleton (the "skeleton" detector).
"""

from __future__ import annotations

import math

import numpy as np

from posekit.pose.pose import LIMBS, NUM_KEYPOINTS, Pose

# RGB; joint i and limb i share colour i (limbs use the first 17).
COLORS = np.array([
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
    [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
    [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
], dtype=np.int32)
LIMB_COLORS = (COLORS[: len(LIMBS)] * 0.6).astype(np.int32)  # int(c * 0.6), as ControlNet
STICK_WIDTH = 4  # at 512 px
JOINT_RADIUS = 4  # at 512 px



def line_size(width: int, height: int) -> int:
    """Stick width and joint radius for a canvas: 4 at a 512 px short side, at least 1."""
    return max(1, int(round(STICK_WIDTH * min(width, height) / 512)))


# -- drawing -------------------------------------------------------------------------------
def draw_skeleton(poses: Pose | list[Pose], width: int | None = None, height: int | None = None,
                  size: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 ControlNet OpenPose skeleton of one or more people.

    The canvas is the first pose's unless width/height are given; positions are drawn as they
    are, in pixels (use `pose.resized(w, h)` to scale a pose to another canvas). `size`: stick
    width and joint radius (default ControlNet's, `line_size`; Wan-Animate draws the same
    skeleton thinner, see posekit.methods.wan.pose_video).
    """
    import cv2

    poses = [poses] if isinstance(poses, Pose) else list(poses)
    if width is None or height is None:
        if not poses:
            raise ValueError("draw_skeleton: no poses and no canvas size")
        width = poses[0].width if width is None else width
        height = poses[0].height if height is None else height
    canvas = np.zeros((int(height), int(width), 3), np.uint8)
    size = line_size(width, height) if size is None else int(size)
    for pose in poses:
        kp, visible = pose.keypoints, pose.visible
        for (a, b), color in zip(LIMBS, LIMB_COLORS):
            if not (visible[a] and visible[b]):
                continue
            (xa, ya), (xb, yb) = kp[a, :2], kp[b, :2]
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            centre = (int((xa + xb) / 2), int((ya + yb) / 2))
            polygon = cv2.ellipse2Poly(centre, (int(length / 2), size), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, color.tolist())
        for i in np.flatnonzero(visible):
            cv2.circle(canvas, (int(kp[i, 0]), int(kp[i, 1])), size, COLORS[i].tolist(), thickness=-1)
    return canvas


# -- PATN heatmaps -------------------------------------------------------------------------
def heatmaps(pose: Pose, sigma: float = 6.0, kind: str = "gaussian") -> np.ndarray:
    """(H, W, 18) float32 keypoint maps at the pose's canvas size, as PATN reads them.

    kind="gaussian": exp(-d^2 / (2 sigma^2)) around each point (the Market-1501 maps);
    kind="pixel": a single 1 at each point (what DeepFashion's uint8-truncated maps hold, and
    so what the published DeepFashion weights were trained on). Missing points give zeros.
    """
    if kind not in ("gaussian", "pixel"):
        raise ValueError(f"heatmaps: kind must be 'gaussian' or 'pixel', not {kind!r}")
    maps = np.zeros((pose.height, pose.width, NUM_KEYPOINTS), np.float32)
    xs = np.arange(pose.width, dtype=np.float32)
    ys = np.arange(pose.height, dtype=np.float32)
    for i in np.flatnonzero(pose.visible):
        x, y = pose.keypoints[i, :2]
        if kind == "pixel":
            col, row = int(round(float(x))), int(round(float(y)))
            if 0 <= row < pose.height and 0 <= col < pose.width:
                maps[row, col, i] = 1.0
        else:  # the 2-D gaussian is separable: outer product of two 1-D ones
            gx = np.exp(-((xs - x) ** 2) / (2 * sigma ** 2))
            gy = np.exp(-((ys - y) ** 2) / (2 * sigma ** 2))
            maps[:, :, i] = gy[:, None] * gx[None, :]
    return maps

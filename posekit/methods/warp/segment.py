"""Cut the person out of the photo: GrabCut seeded from the skeleton.

The skeleton says where the body surely is (thin lines along the bones: definite foreground),
where it probably is (the part shapes at their usual thickness: probable foreground) and where it
surely is not (far outside the pose's box: definite background). GrabCut's colour models settle
the rest. It runs on a copy scaled to about 320 px, once per clip (a fraction of a second on a
CPU), and the mask is scaled back up and softened by a pixel for clean edges.
"""

from __future__ import annotations

import numpy as np

from posekit.methods.warp.rig import Shapes
from posekit.pose.pose import Pose

WORK_SIZE = 320  # long side GrabCut runs at


def person_mask(image: np.ndarray, pose: Pose, seed: int = 0, iterations: int = 5) -> np.ndarray:
    """(H, W) float32 alpha in 0..1: the person in `image` whose skeleton is `pose`."""
    import cv2

    h, w = image.shape[:2]
    s = min(1.0, WORK_SIZE / max(h, w))
    small = cv2.resize(image[:, :, :3], (max(round(w * s), 1), max(round(h * s), 1)), interpolation=cv2.INTER_AREA)
    seeds = seed_mask(pose.resized(small.shape[1], small.shape[0]))
    cv2.setRNGSeed(seed)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    if (seeds == cv2.GC_FGD).any() and np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        cv2.grabCut(np.ascontiguousarray(small), seeds, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))  # drop 1-px threads
    fg = connected_to(fg, seeds == cv2.GC_FGD)
    alpha = cv2.resize(fg.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.6 / s))
    return np.clip((alpha - 0.5) * 2.0 + 0.5, 0.0, 1.0)


def seed_mask(pose: Pose) -> np.ndarray:
    """GrabCut's starting labels for the canvas of `pose`."""
    import cv2

    shapes = Shapes.of(pose)
    yy, xx = np.mgrid[0:pose.height, 0:pose.width].astype(np.float32)
    d = shapes.distances(xx, yy).min(axis=0)  # in part thicknesses
    seeds = np.full((pose.height, pose.width), cv2.GC_PR_BGD, np.uint8)
    seeds[d < 1.2] = cv2.GC_PR_FGD
    seeds[d < 0.35] = cv2.GC_FGD
    seeds[d > 2.0] = cv2.GC_BGD
    return seeds


def connected_to(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Keep the blobs of `mask` that touch `core` (drops stray background bits GrabCut kept)."""
    import cv2

    n, labels = cv2.connectedComponents(mask, connectivity=8)
    keep = np.unique(labels[core & (mask > 0)])
    keep = keep[keep > 0]
    return np.isin(labels, keep).astype(np.uint8)

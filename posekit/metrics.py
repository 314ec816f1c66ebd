"""Image and pose metrics as the pose-transfer papers compute them.

- `ssim(generated, reference)`: PATN's protocol: scikit-image SSIM with gaussian weights
  (sigma 1.5), no sample covariance, over the colour channels, data_range taken from the
  *generated* image (max - min). The official DeepFashion numbers pad both images with 40 px of
  white on each side first: `ssim(a, b, pad=40)`.
- `mask_ssim(generated, reference, pose)`: SSIM of both images multiplied by a limb mask drawn
  from the target pose (Market-1501's mask-SSIM).
- `pck(pred, target, alpha, reference)`: fraction of the target's present keypoints that the
  prediction has within a tolerance. reference="torso": distance < alpha * torso size;
  reference="head" (PCKh, the PATN evaluation): |dx| < alpha * head-box width and
  |dy| < alpha * head-box height, the box spanning the target's nose, neck, eyes and ears.
  NaN when the target gives no reference size (no torso, fewer than two head points).
"""

from __future__ import annotations

import numpy as np

from posekit.pose.pose import Pose

# limbs plus the torso's and head's outline, for the body mask (0-based COCO-18 pairs)
MASK_EDGES = ((1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
              (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (1, 16), (1, 17), (8, 11), (11, 5),
              (8, 2), (16, 17))
HEAD_POINTS = (0, 1, 14, 15, 16, 17)


def _pad(image: np.ndarray, pad: int) -> np.ndarray:
    if pad <= 0:
        return image
    return np.pad(image, ((0, 0), (pad, pad), (0, 0)), constant_values=255)


def ssim(generated: np.ndarray, reference: np.ndarray, pad: int = 0) -> float:
    """PATN's SSIM of two (H, W, 3) uint8 images (generated first: its range is data_range)."""
    from skimage.metrics import structural_similarity

    a, b = _pad(np.asarray(generated), pad), _pad(np.asarray(reference), pad)
    if a.shape != b.shape:
        raise ValueError(f"ssim: images differ in size ({a.shape} vs {b.shape})")
    data_range = float(a.max()) - float(a.min())
    return float(structural_similarity(b, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       channel_axis=-1, data_range=data_range or 255.0))


def body_mask(pose: Pose, radius: int = 4) -> np.ndarray:
    """(H, W) bool: Market-1501's mask-SSIM mask exactly as the PATN authors draw it
    (produce_ma_mask): for each limb of MASK_EDGES a quadrilateral of half-width `radius` filled
    by skimage's polygon on float (row, col) corners, a disk of `radius` at each joint (its edge
    left out: distance < radius), then a closing with a 5x5 square."""
    from skimage.draw import disk, polygon
    from skimage.morphology import dilation, erosion

    shape = (pose.height, pose.width)
    mask = np.zeros(shape, bool)
    rc, vis = pose.keypoints[:, 1::-1].astype(np.float64), pose.visible  # (row, col) = (y, x)
    for a, b in MASK_EDGES:
        if not (vis[a] and vis[b]):
            continue
        d = rc[a] - rc[b]
        n = np.linalg.norm(d)
        if n == 0:
            continue
        normal = np.array([-d[1], d[0]]) / n * radius
        corners = np.array([rc[a] + normal, rc[a] - normal, rc[b] - normal, rc[b] + normal])
        mask[polygon(corners[:, 0], corners[:, 1], shape=shape)] = True
    for i in np.flatnonzero(vis):
        mask[disk(tuple(rc[i]), radius, shape=shape)] = True
    square = np.ones((5, 5), bool)
    return erosion(dilation(mask, square), square)


def mask_ssim(generated: np.ndarray, reference: np.ndarray, pose: Pose) -> float:
    """SSIM of both images with everything outside the target pose's body mask set to 0."""
    mask = body_mask(pose.resized(generated.shape[1], generated.shape[0])
                     if pose.size != (generated.shape[1], generated.shape[0]) else pose)[..., None]
    return ssim(np.asarray(generated) * mask, np.asarray(reference) * mask)


def _head_box(target: Pose) -> tuple[float, float] | None:
    pts = [target.keypoints[i, :2] for i in HEAD_POINTS if target.visible[i]]
    if len(pts) < 2:
        return None
    pts = np.array(pts)
    return float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1]))


def pck(pred: Pose, target: Pose, alpha: float = 0.5, reference: str = "torso") -> float:
    """Fraction of the target's present keypoints that `pred` places within tolerance."""
    if pred.size != target.size:
        pred = pred.resized(target.width, target.height)
    present = target.visible
    if not present.any():
        return float("nan")
    d = np.abs(pred.keypoints[:, :2] - target.keypoints[:, :2])
    if reference == "head":
        box = _head_box(target)
        if box is None:
            return float("nan")
        hit = (d[:, 0] < alpha * box[0]) & (d[:, 1] < alpha * box[1])
    elif reference == "torso":
        size = target.torso_size()
        if not np.isfinite(size) or size <= 0:
            return float("nan")
        hit = np.hypot(d[:, 0], d[:, 1]) < alpha * size
    else:
        raise ValueError(f"pck: reference must be 'torso' or 'head', not {reference!r}")
    hit &= pred.visible  # a keypoint the prediction misses is wrong
    return float(hit[present].sum() / present.sum())


def pckh(pred: Pose, target: Pose, alpha: float = 0.5) -> float:
    """PCKh as the PATN evaluation computes it (see `pck`)."""
    return pck(pred, target, alpha, reference="head")

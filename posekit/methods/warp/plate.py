"""The background plate of a clip: the photo with the person removed and the place filled, once.

The fill has two layers. The smooth layer comes from inpainting a small copy (OpenCV-contrib's
frequency-selective reconstruction continues stripes and edges into the hole; plain OpenCV's
Telea smears the border colours inwards), which alone would leave a soft, blurred patch. The
detail layer (the photo's fine texture: the photo minus a blur of it) is mirrored into the hole
from just beside it, row by row, so the fill has the grain of its surroundings. The two meet the
photo through a feathered edge, so there is no seam.

    plate = background_plate(photo, alpha)   # (H, W, 3) uint8
"""

from __future__ import annotations

import numpy as np

INPAINT_SIZE = 192  # long side the smooth layer is inpainted at: it is smooth anyway, and fast
DETAIL_SIGMA = 1.5  # the detail layer: what a blur of this many pixels takes out of the photo
HUE_LIMIT = 4.0  # how far (Cr, Cb levels) the fill's colour may stray from the surroundings' average
DETAIL_LIMIT = 12.0  # grain, not edges: a mirrored edge would draw a line through the fill


def inpaint(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill `hole` (uint8, 1 = fill) from the surroundings (see the module docstring)."""
    import cv2

    if hasattr(cv2, "xphoto") and hasattr(cv2.xphoto, "INPAINT_FSR_FAST"):
        out = np.zeros_like(image)
        cv2.xphoto.inpaint(image, (1 - hole).astype(np.uint8), out, cv2.xphoto.INPAINT_FSR_FAST)
    else:
        out = cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA)
    # the hue kept near a plain weighted average of the surroundings: frequency-selective
    # reconstruction can invent colours near a bright object (a green glow beside a white rocket)
    ycc = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    mean = average_fill(cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb), hole).astype(np.float32)
    ycc[:, :, 1:] = np.clip(ycc[:, :, 1:], mean[:, :, 1:] - HUE_LIMIT, mean[:, :, 1:] + HUE_LIMIT)
    return cv2.cvtColor(ycc.round().astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def average_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`hole` filled with a smooth weighted average of the pixels around it (push-pull: the
    photo and its weights halved down a pyramid, then each level fills its gaps from the coarser)."""
    import cv2

    w = (1 - hole).astype(np.float32)
    levels = [(image.astype(np.float32) * w[:, :, None], w)]
    while min(levels[-1][1].shape) > 4:
        p, w = levels[-1]
        levels.append((cv2.pyrDown(p), cv2.pyrDown(w)))
    p, w = levels[-1]
    colour = p.sum(axis=(0, 1)) / max(float(w.sum()), 1e-6) * np.ones_like(p)
    for p, w in reversed(levels):
        up = cv2.resize(colour, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        a = np.clip(w, 0, 1)[:, :, None]
        colour = p / np.maximum(a, 1e-6) * (a > 1e-3) * a + up * (1 - a)
    return np.clip(colour, 0, 255).astype(np.uint8)


def background_plate(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo with the person (alpha in 0..1) removed: smooth fill + mirrored detail, feathered."""
    import cv2

    h, w = alpha.shape
    grow = max(3, round(0.01 * max(h, w)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
    hole = cv2.dilate((alpha > 0.02).astype(np.uint8), disc)
    s = min(1.0, INPAINT_SIZE / max(h, w))
    size = (max(round(w * s), 1), max(round(h * s), 1))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_hole = cv2.dilate(cv2.resize(hole, size, interpolation=cv2.INTER_NEAREST), np.ones((3, 3), np.uint8))
    smooth = cv2.resize(inpaint(small, small_hole), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    photo = image.astype(np.float32)
    detail = photo - cv2.GaussianBlur(photo, (0, 0), DETAIL_SIGMA)
    filled = smooth + mirrored_into(np.clip(detail, -DETAIL_LIMIT, DETAIL_LIMIT), hole > 0)
    edge = cv2.GaussianBlur(hole.astype(np.float32), (0, 0), grow / 2)[:, :, None]
    edge = np.maximum(edge, hole[:, :, None].astype(np.float32) * (alpha[:, :, None] > 0.02))  # the person never shows
    return np.clip(filled * edge + photo * (1 - edge), 0, 255).round().astype(np.uint8)


def mirrored_into(layer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """`layer` inside `hole` replaced by its mirror image across the nearer side of the hole on the
    same row (0 where the mirror lands in the hole too, or off the photo); 0 outside the hole."""
    h, w = hole.shape
    x = np.broadcast_to(np.arange(w), (h, w))
    left = np.maximum.accumulate(np.where(hole, -1, x), axis=1)  # last photo pixel at or left of x
    right = np.minimum.accumulate(np.where(hole, w, x)[:, ::-1], axis=1)[:, ::-1]  # first at or right of x
    from_left = (x - left <= right - x) & (left >= 0) | (right >= w)
    source = np.where(from_left, 2 * left - x + 1, 2 * right - x - 1)
    ok = hole & (source >= 0) & (source < w)
    source = np.clip(source, 0, w - 1)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    ok &= ~hole[rows, source]
    return np.where(ok[:, :, None], layer[rows, source], 0)

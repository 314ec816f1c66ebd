"""One camera per clip: where the warp method's frames look, so the whole clip's figure fits.

The figure's outline is each part's convex hull (of its source pixels) plus the points where the
photo's edge cuts the body (a portrait's chest at the bottom edge; a hand that merely touches the
edge, under CUT of the figure's extent along it, is no cut: kept at the frame's edge it would
pull the view off a figure that moves away from it). Carried by each frame's part
transforms, the hulls give the clip's extent; the camera is one scale and offset for the whole
clip (the character neither changes size nor jumps between frames) that puts that extent inside
the frame with a margin, and keeps each cut at the frame's edge on its side (the cut line's
innermost position over the clip, so the cut never shows); a cut carried in further than the
figure's far side moves out, plus a margin, is held there (a part that shrank: following it, the
view would run off the photo's other side). It zooms out only
when the figure does not fit, and moves as little as it can: a clip that fits the photo keeps
the photo's view.

    outline = Outline.of(alpha, labels)
    camera = clip_camera(outline, [part_transforms(...) for each frame], width, height)
    frame_matrix = camera.matrix()   # canvas pixels -> frame pixels
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.methods.warp.rig import apply
from posekit.pose.pose import Pose

MARGIN = 0.04  # free room around the figure on the sides the photo did not cut, of the frame's short side
CUT = 0.15  # the photo's edge cuts the body where the figure meets it over this share of its own extent
# along that edge (a portrait's chest: 0.78 of its width); less is a hand or a shoe touching the edge
SIDES = ("left", "top", "right", "bottom")


@dataclass(frozen=True)
class Camera:
    """Frame pixel = (canvas pixel - (x0, y0)) * scale."""

    scale: float = 1.0
    x0: float = 0.0
    y0: float = 0.0

    def matrix(self) -> np.ndarray:
        s = self.scale
        return np.float64([[s, 0, -self.x0 * s], [0, s, -self.y0 * s]])

    def is_identity(self) -> bool:
        return abs(self.scale - 1) < 1e-6 and abs(self.x0) < 1e-3 and abs(self.y0) < 1e-3

    def pose(self, pose: Pose) -> Pose:
        return pose.translate(-self.x0, -self.y0).scale(self.scale)


@dataclass
class Outline:
    """Per part, its hull points (N, 2) in source pixels; per cut side, (points (M, 2), their parts)."""

    hulls: list[np.ndarray]
    cuts: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, alpha: np.ndarray, labels: np.ndarray, parts: int) -> "Outline":
        import cv2

        fg = alpha > 0.5
        ys, xs = np.nonzero(fg)
        extent = {"left": np.ptp(ys) + 1, "right": np.ptp(ys) + 1, "top": np.ptp(xs) + 1,
                  "bottom": np.ptp(xs) + 1} if len(xs) else {}
        hulls = []
        for k in range(parts):
            ys, xs = np.nonzero(fg & (labels == k))
            pts = np.column_stack([xs, ys]).astype(np.float32)
            hull = cv2.convexHull(pts).reshape(-1, 2) if len(pts) >= 3 else pts
            hulls.append(hull.astype(np.float64))
        h, w = fg.shape
        edges = {"left": (slice(None), 0), "top": (0, slice(None)),
                 "right": (slice(None), w - 1), "bottom": (h - 1, slice(None))}
        cuts = {}
        for side, index in edges.items():
            on = np.nonzero(fg[index])[0]
            if len(on) < max(3, CUT * extent.get(side, 0)):  # touching the edge is not being cut by it
                continue
            on = on[::max(1, len(on) // 32)]
            xy = np.column_stack([on, np.full(len(on), index[0])]) if side in ("top", "bottom") else \
                np.column_stack([np.full(len(on), index[1]), on])
            xy = xy.astype(np.float64)
            cuts[side] = (xy, labels[xy[:, 1].astype(int), xy[:, 0].astype(int)].astype(int))
        return cls(hulls, cuts)

    def extent(self, transforms: list) -> np.ndarray | None:
        """(x0, y0, x1, y1) of the figure moved by the part transforms (None: no figure)."""
        pts = [apply(m, h) for h, m in zip(self.hulls, transforms) if len(h)]
        if not pts:
            return None
        pts = np.vstack(pts)
        return np.concatenate([pts.min(axis=0), pts.max(axis=0)])

    def cut_lines(self, transforms: list[np.ndarray]) -> dict[str, float]:
        """Per cut side, where the cut line lies under these transforms (the median of its points
        along the axis across that side: a bit of the body may move past it, the cut does not show)."""
        out = {}
        for side, (xy, parts) in self.cuts.items():
            moved = np.empty_like(xy)
            for k in np.unique(parts):
                moved[parts == k] = apply(transforms[k], xy[parts == k])
            axis = 0 if side in ("left", "right") else 1
            out[side] = float(np.median(moved[:, axis]))
        return out


def clip_camera(outline: Outline, frames: list[list[np.ndarray]], width: int, height: int) -> Camera:
    """The one camera of a clip (each frame given by its part transforms) for a width x height frame."""
    boxes = [b for b in (outline.extent(tf) for tf in frames) if b is not None]
    if not boxes:
        return Camera()
    box = np.concatenate([np.min(boxes, axis=0)[:2], np.max(boxes, axis=0)[2:]])
    cuts: dict[str, float] = {}
    for tf in frames:
        for side, v in outline.cut_lines(tf).items():
            cuts[side] = max(cuts.get(side, -np.inf), v) if side in ("left", "top") else min(cuts.get(side, np.inf), v)
    margin = MARGIN * min(width, height)
    # A cut moves in from the photo's edge with the figure (a lift: the whole body up, its top
    # with it) or, a little, with a bob; a cut carried further in than the figure's far side moved
    # out, plus a margin, is a part that shrank or turned (a side view's torso without hips), and
    # following it pulled the view past the photo's opposite edge: the plate filled the frame,
    # the head at its bottom
    rest = outline.extent([np.float64([[1, 0, 0], [0, 1, 0]])] * len(outline.hulls))
    edge = {"left": 0.0, "top": 0.0, "right": width - 1.0, "bottom": height - 1.0}
    for side, v in cuts.items():
        axis = 0 if side in ("left", "right") else 1
        if side in ("left", "top"):
            cuts[side] = min(v, edge[side] + margin + max(0.0, box[axis + 2] - rest[axis + 2]))
        else:
            cuts[side] = max(v, edge[side] - margin - max(0.0, rest[axis] - box[axis]))
    need_x = _needed(box[0], box[2], cuts.get("left"), cuts.get("right"), margin)
    need_y = _needed(box[1], box[3], cuts.get("top"), cuts.get("bottom"), margin)
    scale = min(1.0, width / max(need_x, 1.0), height / max(need_y, 1.0))
    x0 = _start(box[0], box[2], cuts.get("left"), cuts.get("right"), margin, width / scale, width)
    y0 = _start(box[1], box[3], cuts.get("top"), cuts.get("bottom"), margin, height / scale, height)
    return Camera(scale, x0, y0)


def _needed(lo: float, hi: float, lo_cut: float | None, hi_cut: float | None, margin: float) -> float:
    """The view's length along one axis that holds the figure: cut sides at the edge, free sides
    with the margin."""
    a = lo - margin if lo_cut is None else lo_cut
    b = hi + margin if hi_cut is None else hi_cut
    return b - a + 1  # the pixel centres a..b take b - a + 1 pixels


def _start(lo, hi, lo_cut, hi_cut, margin, length: float, canvas: float) -> float:
    """Where the view of `length` starts along one axis: at a cut when there is one, else the
    position nearest the photo's own centred view that keeps the figure inside with its margin."""
    pixel = length / canvas  # one frame pixel in canvas pixels: the last pixel's centre is length - pixel
    if lo_cut is not None and hi_cut is not None:
        return (lo_cut + hi_cut + pixel - length) / 2
    if lo_cut is not None:
        return lo_cut
    if hi_cut is not None:
        return hi_cut + pixel - length
    first, last = hi + margin + pixel - length, lo - margin  # the starts that keep the figure in
    centred = (canvas - length) / 2
    return float(np.clip(centred, first, last)) if first <= last else (first + last) / 2

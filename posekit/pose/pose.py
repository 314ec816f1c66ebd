"""The Pose value: 18 COCO-18 keypoints (OpenPose order) in pixels, plus the canvas size.

Everything in posekit passes poses around as this one small immutable value. A keypoint is
(x, y, confidence); confidence 0 means the point is missing (its x, y are then 0 and mean
nothing); a point with a NaN or infinite x, y or confidence is made missing too. x grows to
the right, y grows down, both in pixels of a canvas `width` x `height`.
"Right" and "left" are the person's own sides, as in OpenPose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEYPOINT_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# The 17 limbs in the order ControlNet's OpenPose skeleton draws them (0-based keypoint pairs).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# Index of each keypoint's mirror image (right <-> left); used by Pose.flip.
FLIP_INDEX = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)


@dataclass(frozen=True, eq=False)
class Pose:
    """One person's COCO-18 keypoints on a canvas. Immutable: every helper returns a new Pose."""

    keypoints: np.ndarray  # (18, 3) float32: x, y, confidence (0 = missing)
    width: int
    height: int

    def __post_init__(self):
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 -> inf, dropped just below
            kp = np.array(self.keypoints, dtype=np.float32).reshape(NUM_KEYPOINTS, 3)
            # a missing point is exactly (0, 0, 0); so is one with a NaN or infinite x, y or confidence
            kp[~(np.isfinite(kp).all(axis=1) & (kp[:, 2] > 0))] = 0.0
        kp.setflags(write=False)
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_xy(cls, xy, width: int, height: int, confidence=None) -> "Pose":
        """Build from an (18, 2) array; rows with NaN, or with confidence 0, are missing."""
        xy = np.asarray(xy, dtype=np.float32).reshape(NUM_KEYPOINTS, 2)
        conf = np.ones(NUM_KEYPOINTS, np.float32) if confidence is None else np.asarray(confidence, np.float32)
        conf = np.where(np.isnan(xy).any(axis=1), 0.0, conf)
        return cls(np.column_stack([np.nan_to_num(xy), conf]), width, height)

    @classmethod
    def empty(cls, width: int, height: int) -> "Pose":
        return cls(np.zeros((NUM_KEYPOINTS, 3), np.float32), width, height)

    # -- views --------------------------------------------------------------------------
    @property
    def xy(self) -> np.ndarray:
        """(18, 2) positions; NaN where the point is missing."""
        xy = self.keypoints[:, :2].copy()
        xy[~self.visible] = np.nan
        return xy

    @property
    def confidence(self) -> np.ndarray:
        return self.keypoints[:, 2].copy()

    @property
    def visible(self) -> np.ndarray:
        """(18,) bool: which keypoints are present."""
        return self.keypoints[:, 2] > 0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def __getitem__(self, name: str) -> np.ndarray | None:
        """pose["r_wrist"] -> array([x, y]) or None when missing."""
        i = INDEX[name]
        return self.keypoints[i, :2].copy() if self.visible[i] else None

    def __len__(self) -> int:
        return int(self.visible.sum())

    def __repr__(self) -> str:
        return f"Pose({len(self)}/18 keypoints, canvas {self.width}x{self.height})"

    def inside(self) -> np.ndarray:
        """(18,) bool: which keypoints are present and on the canvas (x from 0 to width - 1, y from
        0 to height - 1, in pixel centres)."""
        x, y = self.keypoints[:, 0], self.keypoints[:, 1]
        return self.visible & (x >= 0) & (y >= 0) & (x <= self.width - 1) & (y <= self.height - 1)

    def bbox(self) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) around the present keypoints, or None when there are none."""
        if not self.visible.any():
            return None
        pts = self.keypoints[self.visible, :2]
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    def limb_lengths(self) -> np.ndarray:
        """(17,) length of each limb in LIMBS order, NaN where an end is missing."""
        xy = self.xy
        a = xy[[i for i, _ in LIMBS]]
        b = xy[[j for _, j in LIMBS]]
        return np.linalg.norm(b - a, axis=1)

    def torso_size(self) -> float:
        """A body scale for normalising distances: neck to hip-centre, or shoulder width * 2.

        NaN when neither can be measured.
        """
        xy = self.xy
        hips = [xy[i] for i in (INDEX["r_hip"], INDEX["l_hip"]) if not np.isnan(xy[i]).any()]
        neck = xy[INDEX["neck"]]
        if hips and not np.isnan(neck).any():
            return float(np.linalg.norm(np.mean(hips, axis=0) - neck))
        rs, ls = xy[INDEX["r_shoulder"]], xy[INDEX["l_shoulder"]]
        if not (np.isnan(rs).any() or np.isnan(ls).any()):
            return float(2.0 * np.linalg.norm(rs - ls))
        return float("nan")

    # -- transforms (all return new Poses) -------------------------------------------------
    def _moved(self, xy: np.ndarray, width=None, height=None) -> "Pose":
        kp = self.keypoints.copy()
        kp[:, :2] = xy
        return Pose(kp, self.width if width is None else width, self.height if height is None else height)

    def translate(self, dx: float, dy: float) -> "Pose":
        return self._moved(self.keypoints[:, :2] + np.float32([dx, dy]))

    def scale(self, sx: float, sy: float | None = None, about=(0.0, 0.0)) -> "Pose":
        """Scale positions about a point; the canvas is unchanged (see `resized` for that)."""
        sy = sx if sy is None else sy
        c = np.float32(about)
        return self._moved((self.keypoints[:, :2] - c) * np.float32([sx, sy]) + c)

    def resized(self, width: int, height: int) -> "Pose":
        """The same pose on a canvas resized to width x height (positions scale with it)."""
        s = np.float32([width / self.width, height / self.height])
        return self._moved(self.keypoints[:, :2] * s, width, height)

    def cropped(self, x0: float, y0: float, width: int, height: int) -> "Pose":
        """The pose in the coordinates of a crop whose top-left corner is (x0, y0)."""
        return self._moved(self.keypoints[:, :2] - np.float32([x0, y0]), width, height)

    def fitted(self, width: int, height: int) -> "Pose":
        """The pose on a width x height canvas, scaled uniformly so its canvas fits, centred
        (letterboxed). Returns self when the canvas already has that size."""
        if (width, height) == self.size:
            return self
        s = min(width / self.width, height / self.height)
        dx, dy = (width - self.width * s) / 2, (height - self.height * s) / 2
        return self._moved(self.keypoints[:, :2] * s + np.float32([dx, dy]), width, height)

    def in_frame(self) -> "Pose":
        """The pose without the keypoints that fall outside its canvas (no detector can find them)."""
        kp = self.keypoints.copy()
        kp[~self.inside()] = 0.0
        return Pose(kp, self.width, self.height)

    def with_canvas(self, width: int, height: int) -> "Pose":
        """Same positions on another canvas size (no scaling)."""
        return Pose(self.keypoints, width, height)

    def flip(self) -> "Pose":
        """Mirror left-right, as np.fliplr mirrors the image: x -> width - 1 - x, and the
        person's right and left keypoints swap names."""
        kp = self.keypoints.copy()
        kp[:, 0] = self.width - 1 - kp[:, 0]
        return Pose(kp[list(FLIP_INDEX)], self.width, self.height)

    # -- conversion ---------------------------------------------------------------------
    def to_openpose(self) -> list[float]:
        """Flat [x0, y0, c0, x1, ...] as OpenPose writes pose_keypoints_2d (missing = 0, 0, 0)."""
        return [round(float(v), 3) for v in self.keypoints.reshape(-1)]

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "pose_keypoints_2d": self.to_openpose()}

    @classmethod
    def from_dict(cls, d: dict) -> "Pose":
        return cls(np.asarray(d["pose_keypoints_2d"], np.float32).reshape(NUM_KEYPOINTS, 3), d["width"], d["height"])

    def allclose(self, other: "Pose", atol: float = 1e-3) -> bool:
        return (self.size == other.size and np.array_equal(self.visible, other.visible)
                and np.allclose(self.keypoints, other.keypoints, atol=atol))

"""Render examples/figure.png: a full-body, standing person of our own making (no photo needed).

scikit-image ships no full-body photo, so this draws a shaded "mannequin" figure: skin, hair, a
red shirt, blue trousers and brown shoes on a wall-and-floor backdrop, in a relaxed A pose seen
from the front. Each body part is a cylinder-shaded capsule, so it reads as a 3-D body to the pose
detector. The figure's COCO-18 keypoints are written beside it (figure_keypoints.json, the
OpenPose format) so examples also run with --source-pose.

    python examples/make_figure.py          # rewrites examples/figure.png + figure_keypoints.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 384, 512
SS = 2  # supersampling factor for smooth edges

# COCO-18 keypoints (x, y) of the figure, in output pixels; the person's right is image left.
KEYPOINTS = {
    "nose": (192, 74), "neck": (192, 118),
    "r_shoulder": (154, 124), "r_elbow": (136, 192), "r_wrist": (124, 256),
    "l_shoulder": (230, 124), "l_elbow": (248, 192), "l_wrist": (260, 256),
    "r_hip": (172, 262), "r_knee": (168, 364), "r_ankle": (166, 458),
    "l_hip": (212, 262), "l_knee": (216, 364), "l_ankle": (218, 458),
    "r_eye": (184, 64), "l_eye": (200, 64), "r_ear": (172, 70), "l_ear": (212, 70),
}
SKIN, HAIR = (224, 172, 140), (70, 44, 30)
SHIRT, TROUSERS, SHOES = (200, 40, 45), (40, 70, 150), (90, 55, 30)


def backdrop() -> np.ndarray:
    """A warm wall over a wooden-looking floor, with a little texture so inpainting has work."""
    rng = np.random.default_rng(3)
    y = np.linspace(0, 1, H * SS)[:, None, None]
    wall = np.array([196, 204, 212]) * (0.9 + 0.1 * y) + rng.normal(0, 3, (H * SS, W * SS, 3))
    floor_y = int(430 * SS)
    planks = (np.arange(W * SS) // (48 * SS)) % 2
    floor = np.array([150, 112, 78]) * (0.92 + 0.08 * planks[None, :, None]) + rng.normal(0, 4, (H * SS, W * SS, 3))
    img = np.where(np.arange(H * SS)[:, None, None] < floor_y, wall, floor)
    return img


def capsule(img, a, b, radius, colour, shade=0.45):
    """Draw a cylinder-shaded capsule from a to b (supersampled pixel coordinates)."""
    a, b, r = np.float64(a) * SS, np.float64(b) * SS, radius * SS
    x0, y0 = np.floor(np.minimum(a, b) - r).astype(int)
    x1, y1 = np.ceil(np.maximum(a, b) + r).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, img.shape[1]), min(y1, img.shape[0])
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    ab = b - a
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0, 1)
    d = np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1])) / r
    inside = d <= 1
    # light from the upper left: brighter on the side facing it, darker at the silhouette
    side = ((xx - (a[0] + t * ab[0])) * -0.6 + (yy - (a[1] + t * ab[1])) * -0.3) / r
    light = np.clip(np.sqrt(np.clip(1 - d ** 2, 0, 1)) * (1 - shade) + shade + 0.15 * side, 0, 1.2)
    region = img[y0:y1, x0:x1]
    region[inside] = (np.array(colour, np.float64) * light[inside, None])


def ellipse(img, centre, rx, ry, colour, shade=0.35):
    cx, cy = centre[0] * SS, centre[1] * SS
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float64)
    d = np.hypot((xx - cx) / (rx * SS), (yy - cy) / (ry * SS))
    inside = d <= 1
    light = np.sqrt(np.clip(1 - d ** 2, 0, 1)) * (1 - shade) + shade
    img[inside] = np.array(colour, np.float64) * light[inside, None]


def figure() -> np.ndarray:
    k = {n: np.float64(v) for n, v in KEYPOINTS.items()}
    img = backdrop()
    # legs (trousers), shoes
    for s in ("r", "l"):
        capsule(img, k[f"{s}_hip"], k[f"{s}_knee"], 19, TROUSERS)
        capsule(img, k[f"{s}_knee"], k[f"{s}_ankle"], 15, TROUSERS)
        toe = k[f"{s}_ankle"] + (-14 if s == "r" else 14, 14)
        capsule(img, k[f"{s}_ankle"] + (0, 6), toe, 11, SHOES)
    # torso: a shirt whose half-width narrows from the shoulders to the waist, shaded as a cylinder
    top, bottom = (k["neck"][1] + 2) * SS, (k["r_hip"][1] + 8) * SS
    yy, xx = np.mgrid[0:H * SS, 0:W * SS].astype(np.float64)
    f = np.clip((yy - top) / (bottom - top), 0, 1)
    half = (46 - 18 * f + 6 * f ** 2) * SS
    d = np.abs(xx - 192 * SS) / half
    shirt = (yy >= top) & (yy <= bottom) & (d <= 1)
    light = np.sqrt(np.clip(1 - d ** 2, 0, 1)) * 0.5 + 0.5 - 0.08 * (xx - 192 * SS) / half
    img[shirt] = np.array(SHIRT, np.float64) * light[shirt, None]
    capsule(img, k["r_hip"] + (-6, -4), k["l_hip"] + (6, -4), 13, (60, 40, 30))  # belt
    capsule(img, k["neck"] + (0, -14), k["neck"], 11, SKIN)
    # arms: short sleeves, bare forearms, hands
    for s in ("r", "l"):
        capsule(img, k[f"{s}_shoulder"], k[f"{s}_elbow"], 14, SHIRT)
        capsule(img, k[f"{s}_elbow"], k[f"{s}_wrist"], 10, SKIN)
        hand = k[f"{s}_wrist"] + (k[f"{s}_wrist"] - k[f"{s}_elbow"]) * 0.25
        capsule(img, k[f"{s}_wrist"], hand, 11, SKIN)
    # head: face, hair, eyes, nose, mouth
    ellipse(img, (192, 70), 25, 31, SKIN)
    ellipse(img, (192, 50), 26, 17, HAIR)
    for e in ("r_eye", "l_eye"):
        ellipse(img, k[e], 4, 3, (250, 250, 250), shade=0.9)
        ellipse(img, k[e], 2.2, 2.2, (40, 30, 25), shade=1.0)
    capsule(img, (192, 68), k["nose"], 3, (196, 140, 110))
    capsule(img, (185, 86), (199, 86), 2.2, (150, 70, 70))
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((W, H), Image.LANCZOS)
    return np.asarray(small)


def openpose_json() -> dict:
    kp = []
    for name in ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
                 "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
                 "r_eye", "l_eye", "r_ear", "l_ear"):
        kp += [float(KEYPOINTS[name][0]), float(KEYPOINTS[name][1]), 1.0]
    return {"version": 1.3, "canvas_width": W, "canvas_height": H,
            "people": [{"person_id": [-1], "pose_keypoints_2d": kp}]}


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    Image.fromarray(figure()).save(here / "figure.png", optimize=True)
    (here / "figure_keypoints.json").write_text(json.dumps(openpose_json(), indent=1) + "\n")
    print(f"wrote {here / 'figure.png'} and {here / 'figure_keypoints.json'}")

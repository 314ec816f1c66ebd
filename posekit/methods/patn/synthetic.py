"""A built-in stand-in for DeepFashion: a clothed mannequin drawn from its skeleton.

Each pair shows one figure (one of 12 looks: body proportions, skin, hair, shirt, trousers,
shoes, plain or striped clothes) on one random background (plain or softly textured) in two
random poses (it may step sideways between them), so a
pose-transfer model has something real to learn (move the clothes with the limbs) and its
output can be scored against the true target image. Everything is a function of (seed, index):
the same seed gives the same data on every machine, with no download.

    image, pose = synthetic_person(seed=0, width=176, height=256)
    a_img, a_pose, b_img, b_pose = synthetic_pair(seed=0, index=5, width=32, height=64)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posekit.pose.pose import INDEX, Pose

SUPERSAMPLE = 4  # draw 4x larger and downsample: smooth edges even at 64x32


@dataclass(frozen=True)
class Look:
    """What stays the same between the two images of a pair."""

    skin: tuple
    hair: tuple
    shirt: tuple
    shirt2: tuple       # stripe colour
    striped: bool
    trousers: tuple
    shoes: tuple
    short_sleeves: bool
    scale: float        # figure height / canvas height
    build: float        # limb thickness factor
    shoulder: float     # half shoulder width, in figure heights
    background: dict


def _colour(rng, lo=0, hi=255) -> tuple:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))


SKINS = ((241, 194, 160), (224, 172, 105), (198, 134, 66), (141, 85, 36), (92, 56, 30))
LOOKS = 12  # outfits (colours, stripes, sleeves, build) are drawn from a fixed wardrobe of this many


def random_look(rng: np.random.Generator) -> Look:
    """A look: one of the LOOKS outfits on a random background."""
    outfit = np.random.default_rng([7, int(rng.integers(LOOKS))])
    skin = SKINS[outfit.integers(len(SKINS))]
    # mostly plain (like DeepFashion's studio shots), else soft textures a 4x-downsampling net
    # can carry over: wide sine stripes, a gradient, low-frequency noise
    kind = ["plain", "plain", "plain", "plain", "stripes", "gradient", "noise"][rng.integers(7)]
    background = {"kind": kind, "a": _colour(rng, 120, 255), "b": _colour(rng, 0, 255),
                  "angle": float(rng.uniform(0, np.pi)), "period": float(rng.uniform(0.25, 0.5)),
                  "noise_seed": int(rng.integers(1 << 31))}
    return Look(skin=skin, hair=_colour(outfit, 0, 120), shirt=_colour(outfit), shirt2=_colour(outfit),
                striped=bool(outfit.random() < 0.4), trousers=_colour(outfit, 0, 200), shoes=_colour(outfit, 0, 90),
                short_sleeves=bool(outfit.random() < 0.5), scale=float(outfit.uniform(0.78, 0.9)),
                build=float(outfit.uniform(0.85, 1.2)), shoulder=float(outfit.uniform(0.11, 0.14)),
                background=background)


def random_pose(rng: np.random.Generator, look: Look, width: int, height: int, centre_x: float) -> Pose:
    """A plausible standing/moving pose from joint angles (a tiny forward-kinematics body)."""
    f = look.scale * height                 # figure height in pixels
    lean = np.deg2rad(rng.uniform(-8, 8))
    neck = np.array([centre_x * width, height * (1 - look.scale) / 2 + 0.17 * f])
    down = np.array([np.sin(lean), np.cos(lean)])
    side = np.array([np.cos(lean), -np.sin(lean)])   # towards image right = the person's left
    hip_c = neck + down * 0.33 * f
    pts = {"neck": neck}
    pts["nose"] = neck - down * 0.08 * f
    for s, name in ((-1, "r"), (1, "l")):
        pts[f"{name}_eye"] = neck - down * 0.105 * f + side * s * 0.025 * f
        pts[f"{name}_ear"] = neck - down * 0.09 * f + side * s * 0.05 * f
        pts[f"{name}_shoulder"] = neck + down * 0.02 * f + side * s * look.shoulder * f
        pts[f"{name}_hip"] = hip_c + side * s * 0.075 * f

        def limb(start, a0, a1, l0, l1):
            d0 = np.cos(a0) * down + np.sin(a0) * side * s   # angle from straight down, + = outwards
            mid = start + d0 * l0 * f
            d1 = np.cos(a0 + a1) * down + np.sin(a0 + a1) * side * s
            return mid, mid + d1 * l1 * f

        arm = np.deg2rad(rng.uniform(-15, 110))
        elbow = np.deg2rad(rng.uniform(-20, 120)) * (1 if rng.random() < 0.7 else -1)
        pts[f"{name}_elbow"], pts[f"{name}_wrist"] = limb(pts[f"{name}_shoulder"], arm, elbow, 0.16, 0.15)
        leg = np.deg2rad(rng.uniform(-8, 30))
        knee = np.deg2rad(rng.uniform(-45, 10))
        pts[f"{name}_knee"], pts[f"{name}_ankle"] = limb(pts[f"{name}_hip"], leg, knee, 0.23, 0.22)
    xy = np.array([pts[n] for n in _NAMES], np.float32)
    return Pose(np.column_stack([xy, np.ones(len(xy), np.float32)]), width, height).in_frame()


_NAMES = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
          "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear")
assert all(INDEX[n] == i for i, n in enumerate(_NAMES))


def background_image(bg: dict, width: int, height: int) -> np.ndarray:
    import cv2

    a, b = np.float32(bg["a"]), np.float32(bg["b"])
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(width, height)
    if bg["kind"] == "plain":
        t = np.zeros((height, width), np.float32)
    elif bg["kind"] == "stripes":
        u = xx * np.cos(bg["angle"]) + yy * np.sin(bg["angle"])
        t = (np.sin(2 * np.pi * u / bg["period"]) * 0.5 + 0.5) * 0.6
    elif bg["kind"] == "gradient":
        u = xx * np.cos(bg["angle"]) + yy * np.sin(bg["angle"])
        t = (u - u.min()) / max(1e-6, float(np.ptp(u)))
    else:
        coarse = np.random.default_rng(bg["noise_seed"]).random((4, 3)).astype(np.float32)
        t = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return (a * (1 - t[..., None]) + b * t[..., None]).clip(0, 255).astype(np.uint8)


def draw_person(pose: Pose, look: Look) -> np.ndarray:
    """Render the mannequin of `look` in `pose` (all 18 points are used, present or not)."""
    import cv2

    s = SUPERSAMPLE
    w, h = pose.width * s, pose.height * s
    img = background_image(look.background, w, h)
    p = {n: tuple(int(round(c)) for c in pose.keypoints[i, :2] * s) for i, n in enumerate(_NAMES)}
    f = look.scale * h
    t = max(1, int(0.08 * f * look.build))  # limb thickness: loose clothes, visible at 32 px wide

    def seg(a, b, colour, thick):
        cv2.line(img, p[a], p[b], colour, thick, cv2.LINE_AA)

    for side in ("r", "l"):   # legs first: the shirt covers the hips
        seg(f"{side}_hip", f"{side}_knee", look.trousers, int(t * 1.3))
        seg(f"{side}_knee", f"{side}_ankle", look.trousers, int(t * 1.1))
        cv2.ellipse(img, p[f"{side}_ankle"], (int(t * 0.9), int(t * 0.5)), 0, 0, 360, look.shoes, -1, cv2.LINE_AA)
    torso = np.array([p["r_shoulder"], p["l_shoulder"], p["l_hip"], p["r_hip"]], np.int32)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, torso, 255, cv2.LINE_AA)
    cv2.polylines(mask, [torso], True, 255, int(t * 0.8), cv2.LINE_AA)
    fill = np.empty_like(img)
    fill[:] = look.shirt
    if look.striped:
        band = (np.arange(h) // max(2, int(0.03 * f))) % 2 == 1
        fill[band] = look.shirt2
    alpha = mask[..., None].astype(np.float32) / 255.0
    img[:] = (img * (1 - alpha) + fill * alpha).astype(np.uint8)
    seg("neck", "nose", look.skin, int(t * 0.8))
    for side in ("r", "l"):
        seg(f"{side}_shoulder", f"{side}_elbow", look.shirt, t)
        seg(f"{side}_elbow", f"{side}_wrist", look.skin if look.short_sleeves else look.shirt, int(t * 0.9))
        cv2.circle(img, p[f"{side}_wrist"], int(t * 0.6), look.skin, -1, cv2.LINE_AA)
    r = int(0.065 * f)
    centre = tuple((np.array(p["nose"]) + np.array([0, -r // 3])).astype(int).tolist())
    cv2.circle(img, centre, r, look.skin, -1, cv2.LINE_AA)
    cv2.ellipse(img, centre, (r, r), 0, 180, 360, look.hair, -1, cv2.LINE_AA)
    return cv2.resize(img, (pose.width, pose.height), interpolation=cv2.INTER_AREA)


def synthetic_pair(seed: int, index: int, width: int, height: int):
    """(source image, source pose, target image, target pose) of one figure in two poses."""
    rng = np.random.default_rng([seed, index])
    look = random_look(rng)
    # the figure also steps sideways between the two shots, as people do between poses
    a = random_pose(rng, look, width, height, 0.5 + rng.uniform(-0.1, 0.1))
    b = random_pose(rng, look, width, height, 0.5 + rng.uniform(-0.1, 0.1))
    return draw_person(a, look), a, draw_person(b, look), b


def synthetic_person(seed: int = 0, width: int = 176, height: int = 256):
    """One image and its pose: a stand-in photo for demos and tests."""
    image, pose, _, _ = synthetic_pair(seed, 0, width, height)
    return image, pose

"""Cases with a known true mask for measuring the warp method, and the measurements themselves.

A case is the drawn figure (examples/make_figure.py) composited over a real scikit-image photo.
The figure is rendered twice, over black and over white, so its true alpha and colour are exact
(triangulation matting: alpha = 1 - (white - black) / 255). A "portrait" case crops the
composite above the knees, so the body is cut by the photo's bottom edge.

    case = make_case("coffee")
    report = measure(case, "wave")     # dict of per-clip worst values (see `measure`)

Used by tests/test_warp_quality.py and benchmarks/bench_warp_quality.py.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from conftest import REPO
from posekit.pose.pose import INDEX, Pose

PHOTOS = ("coffee", "chelsea", "rocket", "immunohistochemistry", "astronaut")
PORTRAIT_ROWS = 330  # the portrait cases keep the rows above this (cut through the thighs)


@dataclass
class Case:
    name: str
    image: np.ndarray  # (H, W, 3) uint8
    truth: np.ndarray  # (H, W) float32 alpha in 0..1
    pose: Pose
    backdrop: np.ndarray | None = None  # (H, W, 3) uint8: the photo behind the figure


ARM_ACROSS = {"l_elbow": (236, 196), "l_wrist": (170, 204)}  # the left forearm across the chest


@lru_cache(maxsize=4)
def figure_layers(arm_across: bool = False, dress: tuple[int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(colour (H, W, 3) float32, alpha (H, W) float32) of the drawn figure alone (with
    `arm_across`, its left forearm lies across its chest; with `dress`, an RGB colour, its shirt,
    sleeves and trousers are of that colour instead of red and blue)."""
    spec = importlib.util.spec_from_file_location("make_figure", REPO / "examples" / "make_figure.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if arm_across:
        mod.KEYPOINTS.update(ARM_ACROSS)
    if dress is not None:
        mod.SHIRT = mod.TROUSERS = tuple(int(c) for c in dress)
    shots = []
    for level in (0.0, 255.0):
        mod.backdrop = lambda level=level: np.full((mod.H * mod.SS, mod.W * mod.SS, 3), level)
        shots.append(mod.figure().astype(np.float32))
    black, white = shots
    alpha = np.clip(1 - (white - black).mean(axis=2) / 255, 0, 1)
    colour = np.where(alpha[:, :, None] > 1e-3, black / np.maximum(alpha[:, :, None], 1e-3), 0)
    return np.clip(colour, 0, 255), alpha


def figure_pose(arm_across: bool = False) -> Pose:
    data = json.loads((REPO / "examples" / "figure_keypoints.json").read_text())
    kp = np.float32(data["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    for name, xy in (ARM_ACROSS.items() if arm_across else ()):
        kp[INDEX[name], :2] = xy
    return Pose(kp, 384, 512)


def backdrop(photo: str, width: int, height: int) -> np.ndarray:
    """The scikit-image photo scaled to cover width x height and centre-cropped."""
    import cv2
    from skimage import data

    img = getattr(data, photo)()
    h, w = img.shape[:2]
    s = max(width / w, height / h)
    img = cv2.resize(img, (max(width, round(w * s)), max(height, round(h * s))), interpolation=cv2.INTER_AREA)
    y0, x0 = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
    return img[y0:y0 + height, x0:x0 + width, :3]


def dominant_colour(photo: str) -> tuple[int, int, int]:
    """The commonest colour (RGB) of the photo's backdrop about the figure (within 40 px of its
    true mask): the centre of the largest of four k-means clusters there."""
    import cv2

    _, alpha = figure_layers()
    h, w = alpha.shape
    near = cv2.dilate((alpha > 0.05).astype(np.uint8), np.ones((81, 81), np.uint8)) > 0
    pixels = backdrop(photo, w, h)[near & (alpha <= 0.05)].astype(np.float32)
    cv2.setRNGSeed(0)
    _, labels, centres = cv2.kmeans(pixels, 4, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5),
                                    3, cv2.KMEANS_PP_CENTERS)
    return tuple(int(round(c)) for c in centres[np.bincount(labels.ravel(), minlength=4).argmax()])


def make_case(photo: str, portrait: bool = False, arm_across: bool = False, matching: bool = False) -> Case:
    """The figure over `photo` (see the module's docstring). `matching`: the figure dressed (shirt,
    sleeves, trousers) in the backdrop's commonest colour about it (`dominant_colour`): a white
    shirt on a white wall, a dark coat on a dark backdrop."""
    colour, alpha = figure_layers(arm_across, dominant_colour(photo) if matching else None)
    h, w = alpha.shape
    back = backdrop(photo, w, h).astype(np.float32)
    image = np.clip(colour * alpha[:, :, None] + back * (1 - alpha[:, :, None]), 0, 255).round().astype(np.uint8)
    pose, back = figure_pose(arm_across), back.astype(np.uint8)
    if portrait:
        image, alpha, back = image[:PORTRAIT_ROWS], alpha[:PORTRAIT_ROWS], back[:PORTRAIT_ROWS]
        kp = pose.keypoints.copy()
        kp[kp[:, 1] >= PORTRAIT_ROWS - 1] = 0
        pose = Pose(kp, w, PORTRAIT_ROWS)
    name = f"{photo}{' portrait' if portrait else ''}{' arm across' if arm_across else ''}{' matching' if matching else ''}"
    return Case(name, np.ascontiguousarray(image), alpha.astype(np.float32), pose,
                np.ascontiguousarray(back))


def clip(case: Case, name: str, frames: int = 8) -> list[Pose]:
    """The motion `name` ("walk", or with a view as on the command line: "walk:side") retargeted
    onto the case's figure."""
    from posekit.pose.motions import motion
    from posekit.pose.retarget import retarget

    w, h = case.pose.size
    name, _, view = name.partition(":")
    return retarget([p.fitted(w, h) for p in motion(name, frames=frames, view=view or None)], case.pose)


# -- measurements --------------------------------------------------------------------------------
def pieces(alpha: np.ndarray) -> float:
    """Share of the figure (alpha > 0.5) outside its largest connected piece."""
    import cv2

    fg = (alpha > 0.5).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 2:
        return 0.0
    areas = stats[1:, cv2.CC_STAT_AREA]
    return float(1 - areas.max() / areas.sum())


def stray(alpha: np.ndarray) -> int:
    """Pixels that show at all (alpha > 0 in 8 bits) apart from the figure: outside the largest
    connected piece of them (a speck of the photo's background floating beside the body)."""
    import cv2

    seen = (np.round(alpha * 255) > 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(seen, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return int(areas.sum() - areas.max()) if n > 2 else 0


def holes(alpha: np.ndarray, pose: Pose | None = None) -> float:
    """Background pixels enclosed by the figure (not connected to the frame's border), as a share
    of the figure's area. With `pose` (in the frame's pixels), only those in the body's core
    (within 0.65 part thicknesses of a bone, or in the torso quad): a hanging arm touching the hip
    encloses a gap of background beside the body, which is no hole through it."""
    import cv2

    bg = np.pad((alpha <= 0.5).astype(np.uint8), 1, constant_values=1)
    n, labels = cv2.connectedComponents(bg, connectivity=4)
    enclosed = ((labels > 0) & (labels != labels[0, 0]))[1:-1, 1:-1]
    if pose is not None:
        from posekit.methods.warp.rig import Shapes

        yy, xx = np.mgrid[0:alpha.shape[0], 0:alpha.shape[1]].astype(np.float32)
        enclosed &= Shapes.of(pose).distances(xx, yy).min(axis=0) < 0.65
    return float(enclosed.sum() / max((alpha > 0.5).sum(), 1))


def cut_sides(truth: np.ndarray) -> set[str]:
    """The photo's sides the true figure touches (where the body is cut by the photo's edge)."""
    fg = truth > 0.5
    sides = {"top": fg[0], "bottom": fg[-1], "left": fg[:, 0], "right": fg[:, -1]}
    return {k for k, v in sides.items() if v.sum() >= 3}


def border(alpha: np.ndarray, cut: set[str]) -> int:
    """Figure pixels on the frame's border, on the sides where the photo did not cut the body."""
    fg = alpha > 0.5
    sides = {"top": fg[0], "bottom": fg[-1], "left": fg[:, 0], "right": fg[:, -1]}
    return int(sum(v.sum() for k, v in sides.items() if k not in cut))


def torso_colour(image: np.ndarray, pose: Pose) -> np.ndarray | None:
    """Median RGB (per channel) inside the torso quad shrunk to half about its centre. The median,
    not the mean: a forearm that swings in front of the chest (a walk's, 9-16% of that quad) is
    the right picture, not a drift of the shirt's colour, and moved the mean by up to 13/255."""
    import cv2

    quad = pose.xy[[INDEX["r_shoulder"], INDEX["l_shoulder"], INDEX["l_hip"], INDEX["r_hip"]]]
    if np.isnan(quad).any():
        return None
    c = quad.mean(axis=0)
    inner = np.round(c + 0.5 * (quad - c)).astype(np.int32)
    m = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(m, [inner], 1)
    return np.median(image[m > 0, :3].astype(np.float64), axis=0) if m.any() else None


def measure(case: Case, motion_name: str, method=None, detector=None) -> dict:
    """Build the warp method on the case (transparent background), run the clip and measure
    every frame (`motion_name` may name a view: "walk:side"); returns the worst frame's value of
    each measurement (and the clip's mean PCK),
    and the mask's errors:
    `background_kept` (figure where the truth is background) and `missed` (the other way round),
    each as a share of the true figure's area."""
    from posekit.evaluate import pose_fidelity
    from posekit.methods.warp.method import WarpMethod, WarpOptions

    method = method or WarpMethod(case.image, case.pose, WarpOptions(background="transparent"))
    targets = clip(case, motion_name)
    frames = method(targets)
    frame_poses = [method.frame_pose(t) for t in targets]
    alphas = [f[:, :, 3].astype(np.float32) / 255 for f in frames]
    cut = cut_sides(case.truth)
    pck = [p for p in pose_fidelity(frames, frame_poses, alpha=0.35, detector=detector) if p is not None]
    src_torso = torso_colour(case.image, case.pose)
    drift = [np.abs(c - src_torso).max() / 255 for f, p in zip(frames, frame_poses)
             if (c := torso_colour(f, p)) is not None]
    area = case.truth.sum()
    return {
        "pieces": max(map(pieces, alphas)),
        "holes": max(holes(a, p) for a, p in zip(alphas, frame_poses)),
        "gaps": max(map(holes, alphas)),  # every enclosed piece of background, gaps beside the body too
        "stray_px": max(map(stray, alphas)),
        "border_px": max(border(a, cut) for a in alphas),
        "cut_kept": min(all(a[-1 if s == "bottom" else 0] .max() > 0.5 if s in ("top", "bottom")
                            else a[:, -1 if s == "right" else 0].max() > 0.5 for s in cut) for a in alphas),
        "pck": min(pck) if pck else None,
        "pck_mean": float(np.mean(pck)) if pck else None,
        "drift": max(drift) if drift else None,
        "background_kept": float((method.alpha * (1 - case.truth)).sum() / area),
        "missed": float(((1 - method.alpha) * case.truth).sum() / area),
    }


def plate_quality(case: Case, plate: np.ndarray) -> dict:
    """How the background plate (`background="keep"`: the photo with the person removed) fills
    the place the figure covered (true alpha > 0.05), against the true backdrop there:
    `fill_error` mean absolute error /255; `texture` the fill's fine detail (Laplacian spread) as
    a share of the backdrop's there (well under 1: a blur patch); `specks` the share of the
    place's pixels that stand out from their 5x5 neighbourhood's median by over 48/255 in some
    channel and not in the backdrop (colour specks)."""
    import cv2

    place = case.truth > 0.05
    plate, back = plate[:, :, :3], case.backdrop

    def detail(img):
        return cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F)[place].std()

    def outliers(img):
        return (np.abs(img.astype(int) - cv2.medianBlur(img, 5).astype(int)).max(axis=2) > 48) & place

    return {"fill_error": float(np.abs(plate.astype(int) - back.astype(int))[place].mean() / 255),
            "texture": float(detail(plate) / max(detail(back), 1e-6)),
            "specks": float((outliers(plate) & ~outliers(back)).sum() / place.sum())}

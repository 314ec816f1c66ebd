"""A small 3-D stick body that the built-in motions pose, and its projection to COCO-18.

Why 3-D: a walk cycle is a swing of the legs and arms *forwards and backwards*. Drawn straight
from the front that swing is invisible (only the knee lift shows); from the side it is obvious
but the shoulders collapse onto one another, which looks wrong on a photo taken from the front.
Posing a 3-D body with joint angles and projecting it under a chosen view angle (`yaw`) gives
every view from the same few lines of motion code: front (0 degrees), three-quarter, side (90).

Units and axes: lengths are fractions of the standing body height (top of the head = 1.0, the
ankles 0.04 above the ground). Y points up, the person faces +Z, and their right side is at -X
(so seen from the front their right hand is on the image's left, as in OpenPose).

A `Stance` holds the joint angles of one instant in degrees; `skeleton(stance)` turns it into
18 COCO-18 points (plus the top of the head, for layout) with the lower foot on the ground;
`project(points, yaw)` looks at them from a camera turned `yaw` degrees around the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posekit.pose.pose import INDEX, NUM_KEYPOINTS

# Body proportions (fractions of standing height), close to adult averages (~7.5 heads).
ANKLE_HEIGHT = 0.04
THIGH = 0.245
SHIN = 0.245
TORSO = 0.29          # pelvis centre to neck (the point between the shoulders)
HIP_HALF_WIDTH = 0.06
SHOULDER_HALF_WIDTH = 0.115
UPPER_ARM = 0.175
FOREARM = 0.155
HEAD_CENTRE = 0.11    # neck to the middle of the head
PELVIS_HEIGHT = ANKLE_HEIGHT + THIGH + SHIN  # standing straight

# Face points relative to the head centre (x, y, z), head upright and facing +Z.
FACE = {
    "nose": (0.0, -0.02, 0.06),
    "r_eye": (-0.03, 0.005, 0.05), "l_eye": (0.03, 0.005, 0.05),
    "r_ear": (-0.065, -0.005, 0.0), "l_ear": (0.065, -0.005, 0.0),
}
HEAD_TOP = (0.0, 0.065, 0.0)

SIDES = {"r": -1.0, "l": 1.0}  # the person's right is -X


@dataclass
class Limb:
    """Angles of one arm or leg, in degrees.

    flex: swing forwards (+) or backwards (-) in the body's front-back plane.
    abduct: lift outwards, away from the body (90 = horizontal, sideways).
    bend: elbow or knee flexion (0 = straight).
    bend_towards: the direction (body axes) the forearm / shin folds towards; knees fold
        backwards, elbows forwards, a waving forearm folds upwards.
    """

    flex: float = 0.0
    abduct: float = 0.0
    bend: float = 0.0
    bend_towards: tuple[float, float, float] = (0.0, 0.0, 1.0)


def _arm(**kw) -> Limb:
    return Limb(**{"bend_towards": (0.0, 0.0, 1.0), **kw})


def _leg(**kw) -> Limb:
    return Limb(**{"bend_towards": (0.0, 0.0, -1.0), **kw})


@dataclass
class Stance:
    """Everything that places the body at one instant. Angles in degrees, offsets in body heights.

    lift: height of the pelvis above where the lower foot would touch the ground (jumps, the
        flight phase of a run); 0 keeps a foot on the ground.
    sway: sideways (x) and forward (z) shift of the pelvis.
    pelvis_yaw / chest_yaw: twist of the hips and of the shoulders around the vertical axis
        (a walk turns them in opposite directions).
    lean / side_bend: trunk tilted forwards / towards the person's left.
    shrug: shoulders raised (breathing).
    head_pitch / head_roll: nod down (+) and tilt towards the person's left (+).
    head_yaw: turn of the head on top of the trunk's (motion_at turns it to face the camera in
        front and three-quarter views, as a photographed subject looks at the camera).
    """

    r_arm: Limb = field(default_factory=_arm)
    l_arm: Limb = field(default_factory=_arm)
    r_leg: Limb = field(default_factory=_leg)
    l_leg: Limb = field(default_factory=_leg)
    lift: float = 0.0
    sway: tuple[float, float] = (0.0, 0.0)
    pelvis_yaw: float = 0.0
    chest_yaw: float = 0.0
    lean: float = 0.0
    side_bend: float = 0.0
    shrug: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    head_yaw: float = 0.0


def smoothstep(x: float, start: float, end: float) -> float:
    """0 up to `start`, 1 from `end`, a smooth S between (3t^2 - 2t^3, no kink at either end):
    how a turn that used to switch at one threshold is spread over a band, so neighbouring
    inputs give neighbouring poses (the motions' head between facing the camera and profile,
    the warp's head between fitting the face points and upright on the body)."""
    t = min(max((x - start) / (end - start), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


# -- rotations (degrees) ----------------------------------------------------------------------
def _rot_y(deg: float) -> np.ndarray:  # yaw: turn around the vertical axis
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(deg: float) -> np.ndarray:  # pitch: +deg tips +Y towards +Z (leaning forwards)
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(deg: float) -> np.ndarray:  # roll: +deg tips +Y towards +X (the person's left)
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def _limb_points(root: np.ndarray, limb: Limb, side: float, upper: float, lower: float,
                 frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist (or knee and ankle) of a limb hanging from `root`, in the frame's axes."""
    f, a = np.radians(limb.flex), np.radians(limb.abduct)
    # Straight down, swung forwards by flex and outwards by abduct (a unit vector by construction).
    d = np.array([side * np.sin(a), -np.cos(a) * np.cos(f), np.cos(a) * np.sin(f)])
    # The lower segment folds by `bend` in the plane of d and the fold direction.
    h = np.asarray(limb.bend_towards, float)
    n = h - h.dot(d) * d
    n = n / np.linalg.norm(n) if np.linalg.norm(n) > 1e-6 else np.array([0.0, 0.0, 1.0])
    b = np.radians(limb.bend)
    d2 = np.cos(b) * d + np.sin(b) * n
    joint = root + frame @ d * upper
    return joint, joint + frame @ d2 * lower


def skeleton(stance: Stance) -> np.ndarray:
    """(19, 3) body-space points: the 18 COCO-18 keypoints, then the top of the head.

    The body stands with its lower ankle on the ground (y = ANKLE_HEIGHT), raised by `lift`.
    """
    pts = np.zeros((NUM_KEYPOINTS + 1, 3))
    pelvis = np.array([stance.sway[0], 0.0, stance.sway[1]])
    hips = _rot_y(stance.pelvis_yaw)
    trunk = _rot_y(stance.chest_yaw) @ _rot_x(stance.lean) @ _rot_z(stance.side_bend)
    neck = pelvis + trunk @ np.array([0.0, TORSO, 0.0])
    pts[INDEX["neck"]] = neck
    for name, side in SIDES.items():
        hip = pelvis + hips @ np.array([side * HIP_HALF_WIDTH, 0.0, 0.0])
        knee, ankle = _limb_points(hip, getattr(stance, f"{name}_leg"), side, THIGH, SHIN, hips)
        shoulder = neck + trunk @ np.array([side * SHOULDER_HALF_WIDTH, stance.shrug, 0.0])
        elbow, wrist = _limb_points(shoulder, getattr(stance, f"{name}_arm"), side, UPPER_ARM, FOREARM, trunk)
        for joint, p in (("hip", hip), ("knee", knee), ("ankle", ankle),
                         ("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist)):
            pts[INDEX[f"{name}_{joint}"]] = p
    # The head follows the trunk's yaw and lean only partly: people keep their eyes level.
    head = _rot_y(0.5 * stance.chest_yaw + stance.head_yaw) @ _rot_x(0.5 * stance.lean + stance.head_pitch) @ _rot_z(stance.head_roll)
    centre = neck + head @ np.array([0.0, HEAD_CENTRE, 0.0])
    for name, offset in FACE.items():
        pts[INDEX[name]] = centre + head @ np.asarray(offset)
    pts[NUM_KEYPOINTS] = centre + head @ np.asarray(HEAD_TOP)
    # Stand on the ground: the lower ankle rests at ANKLE_HEIGHT, then the jump/flight lift.
    ankles = pts[[INDEX["r_ankle"], INDEX["l_ankle"]], 1]
    pts[:, 1] += ANKLE_HEIGHT - ankles.min() + stance.lift
    return pts


def project(points: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Look at body-space points from a camera turned `yaw` degrees around the body.

    Returns (N, 2) image-plane points (x right, y down, still in body heights) and (N,) depth
    towards the camera. yaw 0 sees the person from the front; +90 sees them walking to the
    right of the image, -90 to the left. Orthographic: sprites have no perspective.
    """
    p = points @ _rot_y(yaw).T
    return np.column_stack([p[:, 0], -p[:, 1]]), p[:, 2]

"""Built-in motions: looping pose clips made by code, not stored data.

    from posekit.pose.motions import MOTIONS, motion
    clip = motion("walk", frames=12, width=512, height=512)             # list of 12 Poses
    side = motion("walk", frames=12, view="side")                       # seen from the side

Each motion is a function of the cycle phase (see clips.py) that poses a small 3-D body
(body.py), which is then projected under a view angle and laid out on the canvas. Because the
clip is generated, `frames` resamples it exactly, and frame `frames` would be frame 0 again:
the loop has no seam.

Views. A walk seen exactly from the front hides the swing of the arms and legs; seen from the
side it hides the shoulders. Walk and run therefore default to a three-quarter view (the body
turned 30 degrees towards the image's right): the swing is plainly visible and the shoulders
keep nearly their full width, so the clip still fits a photo taken from the front. Jump, idle and
wave default to the front view. `view` takes "front", "three-quarter", "side" (facing right),
"three-quarter-left", "side-left", or a yaw in degrees. Up to 45 degrees the head turns to face
the camera, as the face in a photo does; from 75 it turns with the body (a profile in side
views), gradually between (`head_turn`); a head turned 60 degrees or more from the camera leaves
out its far eye and ear, as a detector would not see them.

Layout: every clip is scaled uniformly so that the whole cycle (including the top of the head
and a jump's highest point) fits the canvas with a margin, and centred; a clip keeps one scale
and one ground line for all of its frames, whatever `frames` is.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from posekit.errors import UsageError
from posekit.pose.motions import clips
from posekit.pose.motions.body import project, skeleton, smoothstep
from posekit.pose.pose import INDEX, NUM_KEYPOINTS, Pose

# name -> (generator, default frame count, default view, one-line description)
_REGISTRY = {
    "walk": (clips.walk, 12, "three-quarter", "walk cycle on the spot, feet alternating, arms swinging"),
    "run": (clips.run, 10, "three-quarter", "jog on the spot: forward lean, bent elbows, a flight phase"),
    "jump": (clips.jump, 16, "front", "jump on the spot: crouch, take off, arms up, land softly"),
    "idle": (clips.idle, 16, "front", "standing at ease: breathing and a slow weight shift"),
    "wave": (clips.wave, 12, "front", "waving with the right hand (fine for head-and-shoulders photos)"),
}
MOTIONS: dict[str, str] = {name: entry[3] for name, entry in _REGISTRY.items()}

VIEWS = {"front": 0.0, "three-quarter": 30.0, "side": 90.0, "three-quarter-left": -30.0,
         "side-left": -90.0}

MARGIN = 0.06        # of the canvas, on every side
_LAYOUT_SAMPLES = 96  # phases used to find a clip's extent, independent of `frames`
_SIDE_VIEW = 60.0     # a head turned this far from the camera hides its far eye and ear
_FACING = (45.0, 75.0)  # yaws over which the head goes from facing the camera to turning with the body


def default_frames(name: str) -> int:
    return _entry(name)[1]


def default_view(name: str) -> str:
    return _entry(name)[2]


def yaw_of(view: str | float | None, name: str = "walk") -> float:
    """The camera yaw in degrees for a view name or number (None = the motion's default)."""
    if view is None:
        view = default_view(name)
    if isinstance(view, str) and view in VIEWS:
        return VIEWS[view]
    try:
        yaw = float(view)
    except ValueError:
        raise UsageError(f"--view {view!r}: choose one of {', '.join(VIEWS)} or a yaw in degrees") from None
    if not -90.0 <= yaw <= 90.0:  # from behind, a COCO-18 skeleton would show a face it cannot see
        raise UsageError(f"--view {view!r}: the yaw must be between -90 (side-left) and 90 (side)")
    return yaw


def motion(name: str, frames: int | None = None, width: int = 512, height: int = 512,
           view: str | float | None = None, **params) -> list[Pose]:
    """A looping clip of `frames` poses (default: the motion's own) on a width x height canvas.

    Frame i is the cycle at phase i / frames. Extra keyword arguments go to the motion's
    generator (walk/run: stride, arm_swing; run: bounce; jump: height).
    """
    frames = default_frames(name) if frames is None else int(frames)
    if frames < 1:
        raise UsageError(f"--frames {frames}: need at least 1 frame")
    return motion_at(name, [i / frames for i in range(frames)], width, height, view, **params)


def motion_at(name: str, phases, width: int = 512, height: int = 512,
              view: str | float | None = None, **params) -> list[Pose]:
    """The motion's poses at the given cycle phases (any floats; the cycle repeats every 1.0)."""
    generate = _entry(name)[0]
    yaw = yaw_of(view, name)
    layout = _layout(name, yaw, width, height, tuple(sorted(params.items())))
    poses = []
    for p in phases:
        xy, depth = project(skeleton(_posed(generate, float(p) % 1.0, yaw, params)), yaw)
        xy = xy[:NUM_KEYPOINTS] * layout[0] + layout[1]
        poses.append(Pose.from_xy(xy, width, height, confidence=_visibility(depth, yaw)))
    return poses


def _entry(name: str):
    if name not in _REGISTRY:
        raise UsageError(f"unknown motion {name!r}: choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


@lru_cache(maxsize=64)
def _layout(name: str, yaw: float, width: int, height: int, params: tuple) -> tuple[float, np.ndarray]:
    """(scale, offset) mapping projected body units to canvas pixels for the whole cycle."""
    generate = _entry(name)[0]
    pts = np.concatenate([project(skeleton(_posed(generate, i / _LAYOUT_SAMPLES, yaw, dict(params))), yaw)[0]
                          for i in range(_LAYOUT_SAMPLES)])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.maximum(hi - lo, 1e-6)
    scale = float(min(width * (1 - 2 * MARGIN) / span[0], height * (1 - 2 * MARGIN) / span[1]))
    offset = np.array([width, height]) / 2.0 - scale * (lo + hi) / 2.0
    return scale, offset


def _posed(generate, phase: float, yaw: float, params: dict):
    """The motion's stance at `phase`; outside side views the head turns to face the camera,
    so the face stays frontal like the face in a photo (a 2-D warp would otherwise have to
    tilt the subject's face to follow a nose that the view angle moved sideways)."""
    stance = generate(phase, **params)
    stance.head_yaw -= yaw - head_turn(yaw)
    return stance


def head_turn(yaw: float) -> float:
    """Degrees the head is turned from the camera at a view `yaw`: 0 (facing it) up to 45, the
    body's own turn (profile in a side view) from 75, a smoothstep between. It switched at 60,
    where the head jumped 23-30 px of a 512 px canvas between 59 and 60 degrees."""
    return yaw * smoothstep(abs(yaw), *_FACING)


def _visibility(depth: np.ndarray, yaw: float) -> np.ndarray:
    """Confidence 1 for every point, 0 for the far eye and ear of a head turned _SIDE_VIEW or
    more from the camera (side views)."""
    conf = np.ones(NUM_KEYPOINTS, np.float32)
    if abs(head_turn(yaw)) >= _SIDE_VIEW:
        for right, left in (("r_eye", "l_eye"), ("r_ear", "l_ear")):
            i, j = INDEX[right], INDEX[left]
            conf[i if depth[i] < depth[j] else j] = 0.0
    return conf

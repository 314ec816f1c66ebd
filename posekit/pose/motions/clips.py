"""The built-in motions, each a function of the cycle phase p in [0, 1) that returns a Stance.

Every angle is a sum of whole-cycle harmonics (cos 2*pi*k*p) and periodic bumps, so phase 1.0
equals phase 0.0 exactly: a clip of any length loops without a seam, and `--frames` simply
samples the same cycle more or less densely.

Gait parameters shared by walk and run:
- phase: p = 0 is the right heel strike; the left leg runs half a cycle behind (p + 0.5), so the
  feet alternate.
- stride: scales the hip swing (how far the legs reach forwards and back).
- arm_swing: scales the shoulder swing; each arm swings against the leg on its own side.
- bounce: not a free parameter for walking: the pelvis height follows from keeping the stance
  foot on the ground (the body rises over a straight leg, drops at double support). A run adds
  a flight lift while both feet are off the ground, scaled by `bounce`.
Joint-angle shapes follow the textbook gait curves (hip about +30/-10 degrees, knee flexing
about 60 degrees in walking swing and 100+ in running swing).
"""

from __future__ import annotations

import numpy as np

from posekit.pose.motions.body import Limb, Stance

TAU = 2.0 * np.pi


def _cos(p: float, k: int = 1) -> float:
    return float(np.cos(TAU * k * p))


def _sin(p: float, k: int = 1) -> float:
    return float(np.sin(TAU * k * p))


def bump(p: float, centre: float, sharpness: float) -> float:
    """A smooth periodic bump that is 1 at `centre` and falls towards 0 away from it (a von Mises
    curve: exactly periodic in p, unlike a wrapped Gaussian). Higher sharpness = narrower."""
    return float(np.exp(sharpness * (np.cos(TAU * (p - centre)) - 1.0)))


def _knee_down() -> tuple[float, float, float]:
    return (0.0, 0.0, -1.0)


def walk(p: float, stride: float = 1.0, arm_swing: float = 1.0) -> Stance:
    """A relaxed walk on the spot (a treadmill walk, as sprite walk cycles are drawn)."""

    def leg(q: float) -> Limb:
        hip = 8.0 + 22.0 * stride * _cos(q)  # forward at heel strike, back at push-off
        knee = 5.0 + 12.0 * bump(q, 0.12, 20.0) + 58.0 * bump(q, 0.72, 5.0)  # loading, swing
        return Limb(flex=hip, abduct=2.0, bend=knee, bend_towards=_knee_down())

    def arm(q: float) -> Limb:
        swing = -20.0 * arm_swing * _cos(q)  # against the leg of the same side
        return Limb(flex=swing, abduct=6.0, bend=15.0 + 10.0 * (1.0 - _cos(q)) / 2.0)

    return Stance(
        r_leg=leg(p), l_leg=leg(p + 0.5), r_arm=arm(p), l_arm=arm(p + 0.5),
        sway=(-0.012 * _sin(p), 0.0),  # weight over the stance foot: right in the first half
        pelvis_yaw=6.0 * _cos(p), chest_yaw=-4.0 * _cos(p), lean=3.0, head_pitch=-2.0,
    )


def run(p: float, stride: float = 1.0, arm_swing: float = 1.0, bounce: float = 1.0) -> Stance:
    """A jog on the spot: bent elbows, forward lean, knees driving high, a flight phase."""

    def leg(q: float) -> Limb:
        hip = 18.0 + 28.0 * stride * _cos(q - 0.9)  # most extended at toe-off (0.4)
        knee = 18.0 + 22.0 * bump(q, 0.15, 15.0) + 95.0 * bump(q, 0.68, 5.0)
        return Limb(flex=hip, abduct=2.0, bend=knee, bend_towards=_knee_down())

    def arm(q: float) -> Limb:
        return Limb(flex=10.0 - 38.0 * arm_swing * _cos(q), abduct=10.0, bend=85.0 + 10.0 * _cos(q))

    # Both feet are off the ground between one foot's toe-off (p = 0.4) and the other's strike.
    flight = 0.035 * bounce * (bump(p, 0.45, 10.0) + bump(p, 0.95, 10.0))
    return Stance(
        r_leg=leg(p), l_leg=leg(p + 0.5), r_arm=arm(p), l_arm=arm(p + 0.5), lift=flight,
        sway=(-0.008 * _sin(p), 0.0), pelvis_yaw=8.0 * _cos(p), chest_yaw=-6.0 * _cos(p),
        lean=11.0, head_pitch=-8.0,
    )


JUMP_START = 0.16  # the phase of the jump's first frame: the take-off crouch has begun


def jump(p: float, height: float = 0.16) -> Stance:
    """A jump on the spot: crouch with the arms back, push off, arms up in the air, land softly
    and stand up again. `height` is the jump height in body heights. The crouch starts at once
    (a game plays the jump when the button is pressed: standing frames first would feel like
    lag); the clip ends standing, ready for idle."""
    p = (p + JUMP_START) % 1.0
    crouch = bump(p, 0.25, 9.0) + 0.7 * bump(p, 0.8, 12.0)  # take-off and landing squats
    takeoff, landing = 0.40, 0.72
    air = 0.0
    if takeoff < p < landing:  # ballistic: a parabola between take-off and landing
        t = (p - takeoff) / (landing - takeoff)
        air = 4.0 * t * (1.0 - t)
    tuck = bump(p, 0.56, 18.0)

    def leg() -> Limb:
        return Limb(flex=4.0 + 55.0 * crouch + 25.0 * tuck, abduct=4.0,
                    bend=5.0 + 85.0 * crouch + 35.0 * tuck, bend_towards=_knee_down())

    def arm() -> Limb:
        swing = -45.0 * bump(p, 0.25, 9.0) + 165.0 * bump(p, 0.53, 9.0)  # back, then overhead
        return Limb(flex=swing, abduct=10.0 + 10.0 * bump(p, 0.53, 9.0), bend=12.0 + 15.0 * crouch)

    return Stance(r_leg=leg(), l_leg=leg(), r_arm=arm(), l_arm=arm(), lift=height * air,
                  lean=28.0 * crouch + 4.0 * tuck, head_pitch=-20.0 * crouch)


def idle(p: float) -> Stance:
    """Standing at ease: a breath per cycle, a slow weight shift, a little head movement."""
    breath = _sin(p)
    shift = _sin(p + 0.1)

    def arm(side: float) -> Limb:
        return Limb(flex=3.0 + 2.0 * breath, abduct=8.0 + 1.5 * breath, bend=12.0 + 4.0 * side * shift)

    def leg(side: float) -> Limb:
        # the leg the weight moves onto straightens, the other relaxes at the knee; the feet
        # stay planted (the hips do not slide, the trunk leans over the standing leg instead)
        return Limb(flex=2.0 + 2.0 * side * shift, abduct=4.0, bend=4.0 + 3.0 * side * shift,
                    bend_towards=_knee_down())

    return Stance(r_arm=arm(-1.0), l_arm=arm(1.0), r_leg=leg(-1.0), l_leg=leg(1.0),
                  side_bend=-1.5 * shift, shrug=0.006 * breath,
                  head_pitch=2.0 * _sin(p, 2), head_roll=2.0 * shift)


def wave(p: float) -> Stance:
    """Waving hello with the right hand, twice per cycle; the rest of the body stands at ease, so
    it suits head-and-shoulders photos as well as full-body ones."""
    rest = idle(p)
    # The upper arm out to the side and a little forwards, the forearm standing up beside the
    # head: a compact wave that stays inside a head-and-shoulders photo. The hand sways from side
    # to side, which for a raised forearm is the elbow opening and closing.
    rest.r_arm = Limb(flex=20.0, abduct=62.0 + 5.0 * _sin(p, 2), bend=118.0 + 25.0 * _sin(p, 2),
                      bend_towards=(0.0, 1.0, 0.25))
    rest.head_roll = -4.0 + 1.5 * _sin(p, 2)  # a friendly tilt towards the waving hand
    return rest

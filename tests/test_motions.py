"""Built-in motions: loops without a seam, feet alternate, frames resample the same cycle."""

import numpy as np
import pytest

from posekit.errors import UsageError
from posekit.pose import INDEX
from posekit.pose.motions import MOTIONS, motion, motion_at

R_ANKLE, L_ANKLE = INDEX["r_ankle"], INDEX["l_ankle"]


def keypoints(clip):
    return np.stack([p.keypoints for p in clip])


def test_the_issue_motions_exist_with_descriptions():
    assert {"walk", "run", "jump", "idle", "wave"} <= set(MOTIONS)
    assert all(isinstance(d, str) and d for d in MOTIONS.values())


@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_loops_without_a_seam(name):
    n = 12
    clip = keypoints(motion(name, n + 1, width=256, height=256))
    # regenerated with one frame more, frame N is exactly frame 0 ...
    longer = keypoints(motion_at(name, [i / n for i in range(n + 1)], width=256, height=256))
    assert np.allclose(longer[n], longer[0], atol=1e-3)
    # ... and the step from the last frame back to the first is an ordinary step
    clip = keypoints(motion(name, n, width=256, height=256))
    steps = np.linalg.norm(np.diff(np.concatenate([clip, clip[:1]]), axis=0)[:, :, :2], axis=2).mean(axis=1)
    assert steps[-1] <= 1.5 * steps[:-1].max() + 1e-6
    assert clip[:, :, 2].all(), "front/three-quarter views have all 18 keypoints, face included"
    assert not np.allclose(clip[0], clip[n // 2]), "the motion moves"


@pytest.mark.parametrize("name", ["walk", "run"])
@pytest.mark.parametrize("view", ["three-quarter", "side", "front"])
def test_feet_alternate(name, view):
    clip = keypoints(motion(name, 24, view=view))
    ground = clip[:, [R_ANKLE, L_ANKLE], 1].max()
    lift_r, lift_l = ground - clip[:, R_ANKLE, 1], ground - clip[:, L_ANKLE, 1]
    # each foot is lifted in turn, half a cycle apart
    assert abs(abs(int(lift_r.argmax()) - int(lift_l.argmax())) - 12) <= 2
    assert lift_r.max() > 10 and lift_l.max() > 10
    if view != "front":  # seen at an angle the feet also swing forwards and back in turn
        x_r, x_l = clip[:, R_ANKLE, 0], clip[:, L_ANKLE, 0]
        assert np.corrcoef(x_r, x_l)[0, 1] < -0.5


def test_walk_keeps_a_foot_on_the_ground_and_run_flies():
    walk = keypoints(motion("walk", 24))
    lowest = walk[:, [R_ANKLE, L_ANKLE], 1].max(axis=1)
    assert np.ptp(lowest) < 0.5  # a walk never leaves the ground
    run = keypoints(motion("run", 24))
    lowest = run[:, [R_ANKLE, L_ANKLE], 1].max(axis=1)
    assert np.ptp(lowest) > 5  # a run has a flight phase
    jump = keypoints(motion("jump", 24))
    assert np.ptp(jump[:, [R_ANKLE, L_ANKLE], 1].max(axis=1)) > 30


@pytest.mark.parametrize("frames", [8, 12, 16])
def test_the_jump_moves_from_its_first_frame(frames):
    """A game plays the jump when the button is pressed: its second frame already crouches
    (the old jump stood still for its first frames: under 0.1% of its height)."""
    jump = keypoints(motion("jump", frames))
    height = np.ptp(jump[0, :, 1])
    assert np.abs(jump[1, :, :2] - jump[0, :, :2]).mean() > 0.004 * height


def test_frames_resample_the_same_cycle_and_canvas_fits():
    a = keypoints(motion("walk", 8, width=300, height=400))
    b = keypoints(motion("walk", 16, width=300, height=400))
    assert np.allclose(a, b[::2], atol=1e-3)
    assert a.shape == (8, 18, 3)
    xy = a[:, :, :2]
    assert xy[..., 0].min() >= 0 and xy[..., 0].max() < 300 and xy[..., 1].min() >= 0 and xy[..., 1].max() < 400
    assert motion("walk", 8, width=300, height=400)[0].size == (300, 400)


def test_views_and_side_view_hides_the_far_eye_and_ear():
    front, side = motion("walk", 4, view="front")[0], motion("walk", 4, view="side")[0]
    width = lambda p: abs(p["r_shoulder"][0] - p["l_shoulder"][0])
    assert width(side) < 0.3 * width(front)
    assert len(front) == 18 and len(side) == 16
    # facing right: the nose is right of the neck; side-left mirrors that
    assert side["nose"][0] > side["neck"][0]
    left = motion("walk", 4, view="side-left")[0]
    assert left["nose"][0] < left["neck"][0]
    assert motion("walk", 4, view=30.0)[0].allclose(motion("walk", 4)[0])


def test_wave_moves_one_arm_and_not_the_legs():
    clip = keypoints(motion("wave", 12))
    spread = np.ptp(clip[:, :, :2], axis=0).max(axis=1)
    assert spread[INDEX["r_wrist"]] > 20
    assert spread[INDEX["r_wrist"]] > 3 * spread[INDEX["l_wrist"]]
    assert spread[INDEX["r_ankle"]] < 5
    assert (clip[:, INDEX["r_wrist"], 1] < clip[:, INDEX["neck"], 1]).all(), "the waving hand is up"


def test_bad_names_are_usage_errors():
    with pytest.raises(UsageError, match="walk"):
        motion("moonwalk")
    with pytest.raises(UsageError, match="view"):
        motion("walk", view="sideways")
    with pytest.raises(UsageError, match="yaw"):
        motion("walk", view=180)
    with pytest.raises(UsageError):
        motion("walk", frames=0)


@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_a_gradual_turn_turns_the_head_gradually(name):
    """A yaw swept degree by degree (a turn, a video) moves no point far between neighbouring
    degrees: the head goes from facing the camera to profile over a band (it switched at 60
    degrees, 23-30 px of a 512 px canvas in one degree); points shown in both count."""
    phases = [i / 4 for i in range(4)]
    clips = [keypoints(motion_at(name, phases, view=float(yaw))) for yaw in range(-90, 91)]
    steps = []
    for a, b in zip(clips, clips[1:]):
        both = (a[:, :, 2] > 0) & (b[:, :, 2] > 0)
        steps.append(np.linalg.norm(a[:, :, :2] - b[:, :, :2], axis=2)[both].max())
    assert max(steps) < 5.0  # 2-3 px: the body turning one degree

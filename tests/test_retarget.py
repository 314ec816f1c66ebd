"""Retargeting a clip onto a subject: the subject's limb lengths, ground line and place."""

import json
from pathlib import Path

import numpy as np
import pytest

from posekit.errors import PosekitError
from posekit.pose import INDEX, LIMBS, Pose
from posekit.pose.formats import read_openpose_json
from posekit.pose.motions import motion
from posekit.pose.retarget import moving_parts_left_out, retarget

FIGURE = Path(__file__).resolve().parents[1] / "examples" / "figure_keypoints.json"
ANKLES = [INDEX["r_ankle"], INDEX["l_ankle"]]
BODY_LIMBS = [k for k, (a, b) in enumerate(LIMBS) if a not in (0, 14, 15)]  # face bones aside


@pytest.fixture(scope="module")
def figure() -> Pose:
    """A full-body standing person (examples/figure.png), 384x512, feet at y = 458."""
    return read_openpose_json(FIGURE)[0]


def stack(clip):
    return np.stack([p.keypoints for p in clip])


def test_full_body_keeps_the_subjects_limbs_and_ground(figure):
    # a clip drawn at another size and place (small, top-left corner of a wide canvas)
    clip = [p.resized(200, 200).with_canvas(640, 360) for p in motion("walk", 12)]
    out = retarget(clip, figure)
    assert len(out) == 12 and all(p.size == figure.size for p in out)
    lengths = np.stack([p.limb_lengths() for p in out])
    # at full extension (90th percentile over the cycle) each limb has the subject's length
    assert np.allclose(np.percentile(lengths, 90, axis=0)[BODY_LIMBS], figure.limb_lengths()[BODY_LIMBS], rtol=0.02)
    # a walk always has a foot down: on the subject's ground line, every frame
    k = stack(out)
    assert np.allclose(k[:, ANKLES, 1].max(axis=1), 458.0, atol=0.5)
    # centred on the subject: the neck swings around the subject's neck
    assert abs(k[:, INDEX["neck"], 0].mean() - figure["neck"][0]) < 1.0
    assert k[:, :, 2].all()


def test_jump_height_and_travel_scale_with_the_subject(figure):
    clip = motion("jump", 16, width=512, height=512)
    # travel: the clip moves 5 px to the right per frame
    clip = [p.translate(5.0 * i, 0.0) for i, p in enumerate(clip)]
    out = stack(retarget(clip, figure))
    src = stack(clip)
    s = (458 - figure["neck"][1]) / (src[0, ANKLES, 1].max() - src[0, INDEX["neck"], 1])  # roughly
    feet_out, feet_src = out[:, ANKLES, 1].max(axis=1), src[:, ANKLES, 1].max(axis=1)
    grounded = feet_src >= feet_src.max() - 0.5
    assert grounded.sum() >= 4 and (~grounded).sum() >= 2
    assert np.allclose(feet_out[grounded], 458.0, atol=0.5)
    air_src, air_out = feet_src.max() - feet_src, 458.0 - feet_out
    ratio = air_out[~grounded] / air_src[~grounded]
    assert np.allclose(ratio, ratio[0], rtol=1e-3) and 0.7 * s < ratio[0] < 1.3 * s
    travel = np.diff(out[:, INDEX["neck"], 0])
    assert np.allclose(travel, 5.0 * ratio[0], rtol=1e-3)


def widths(clip, a: str, b: str) -> np.ndarray:
    k = stack(clip)
    return np.linalg.norm(k[:, INDEX[a], :2] - k[:, INDEX[b], :2], axis=1)


def test_torso_keeps_the_subjects_proportions_and_the_clips_turn(figure):
    """The neck-to-hip bones used to keep the clip's hip width relative to its torso length: on
    the long-waisted figure the hips came out 58 px wide instead of the photo's 40."""
    hips, shoulders = figure.xy[INDEX["l_hip"], 0] - figure.xy[INDEX["r_hip"], 0], 76.0
    for name in ("walk", "jump", "wave"):
        clip = motion(name, 12)
        out = retarget(clip, figure)
        out_hips, clip_hips = widths(out, "r_hip", "l_hip"), widths(clip, "r_hip", "l_hip")
        widest = int(np.argmax(clip_hips))
        # at the clip's widest the hip line has the photo's width, and its proportion to the shoulders
        assert out_hips[widest] == pytest.approx(hips, rel=0.03), name
        assert out_hips[widest] / widths(out, "r_shoulder", "l_shoulder")[widest] == pytest.approx(
            hips / shoulders, rel=0.03 if name != "walk" else 0.08), name  # the walk turns its chest against its hips
        # the hips' turn (a three-quarter walk foreshortens them) follows the clip's own rest width
        assert np.allclose(out_hips / out_hips[widest], clip_hips / clip_hips[widest], rtol=1e-3), name
        # the lean: the neck-to-mid-hip vector keeps the clip's direction
        k, c = stack(out), stack(clip)
        mid_out = (k[:, INDEX["r_hip"], :2] + k[:, INDEX["l_hip"], :2]) / 2 - k[:, INDEX["neck"], :2]
        mid_clip = (c[:, INDEX["r_hip"], :2] + c[:, INDEX["l_hip"], :2]) / 2 - c[:, INDEX["neck"], :2]
        angle = np.arctan2(mid_out[:, 0], mid_out[:, 1]) - np.arctan2(mid_clip[:, 0], mid_clip[:, 1])
        assert np.abs(angle).max() < 1e-3, name
        assert np.percentile(np.linalg.norm(mid_out, axis=1), 90) == pytest.approx(144.0, rel=0.02), name  # the photo's torso


def test_partial_subject_bobs_instead_of_jumping(figure):
    """A photo without ankles cannot show a leap: the lift above the ground is damped to at most
    3% of the figure's visible height (its top keypoint to the photo's edge), with the jump's
    timing; a full-body subject keeps the whole jump."""
    clip = motion("jump", 16)
    feet = stack(clip)[:, ANKLES, 1].max(axis=1)
    lift_clip = feet.max() - feet  # the lower foot's height above the ground
    assert lift_clip.max() > 0.1 * clip[0].height  # a real leap
    grounded = [p.translate(0.0, float(d)) for p, d in zip(clip, lift_clip)]  # the same, feet down
    flight = lift_clip > 0

    def lift(subject):  # how much higher each frame's neck is than with the feet kept down
        up = stack(retarget(grounded, subject))[:, INDEX["neck"], 1] - stack(retarget(clip, subject))[:, INDEX["neck"], 1]
        return up - up[~flight].mean()

    subject = upper_body(figure)
    visible = 250 - subject.xy[subject.visible, 1].min()
    bob, leap = lift(subject), lift(figure)
    assert bob.max() == pytest.approx(0.03 * visible, rel=0.01)  # 5.6 px; 64 px before
    assert leap.max() > 8 * bob.max()  # the full-body subject: the whole jump
    # the same rhythm: both are the clip's lift times one factor
    for out in (bob, leap):
        assert np.allclose(out[flight] / out.max(), lift_clip[flight] / lift_clip.max(), rtol=1e-3)
        assert np.abs(out[~flight]).max() < 1e-3


def without(clip, frames, names):
    """The clip with the keypoints `names` lost (as a detector loses them) in `frames`."""
    out = []
    for i, p in enumerate(clip):
        kp = p.keypoints.copy()
        if i in frames:
            kp[[INDEX[n] for n in names]] = 0.0
        out.append(Pose(kp, p.width, p.height))
    return out


def test_a_partial_subject_still_bobs_when_the_clip_loses_its_ankles_in_flight(figure):
    """A detector loses the ankles in a jump's blurred flight. Those frames used to keep the
    whole lift (the neck leapt 53 px in the middle of a 6-px bob); now their neck's rise above
    the standing neck is damped by the same factor."""
    clip = motion("jump", 16)
    feet = stack(clip)[:, ANKLES, 1].max(axis=1)
    flight = [int(i) for i in np.argsort(feet.max() - feet)[-3:]]  # the three highest frames
    blurred = without(clip, flight, ("r_ankle", "l_ankle"))
    subject = upper_body(figure)
    bob = 0.03 * (250 - subject.xy[subject.visible, 1].min())
    kept = stack(retarget(clip, subject))[:, INDEX["neck"], 1]
    lost = stack(retarget(blurred, subject))[:, INDEX["neck"], 1]
    neck = figure["neck"][1]
    assert neck - kept.min() <= bob + 0.01
    assert neck - lost.min() <= bob + 0.01  # 53 px before
    assert neck - lost[flight].min() > 0.8 * bob  # still up in the flight: a bob, not a stop
    others = [i for i in range(16) if i not in flight]
    assert np.abs(lost[others] - kept[others]).max() < 1.0  # the frames with feet barely change
    # a full-body subject keeps the whole jump, ankles or not
    full = stack(retarget(blurred, figure))[:, INDEX["neck"], 1]
    assert neck - full[flight].min() > 4 * bob  # 26 px


def test_a_hip_lost_in_one_frame_does_not_move_the_legs(figure):
    """With one hip missing, the other was rebuilt with the neck-to-hip bone ratio instead of the
    torso model (r_hip and the right leg jumped 6.7 px for that frame), and the lost hip's leg
    hung from the neck (a stance foot there moved the whole frame 4.6 px). The frame now
    borrows the lost hip from the clip's hip line in the frames around it."""
    clip = motion("walk", 24)
    full = stack(retarget(clip, figure))
    for frame, lost, kept in ((5, "l_hip", "r"), (8, "r_hip", "l")):
        out = stack(retarget(without(clip, [frame], (lost,)), figure))
        assert out[frame, INDEX[lost], 2] == 0  # the lost hip stays lost
        other = "l" if kept == "r" else "r"
        for name in (f"{kept}_hip", f"{kept}_knee", f"{kept}_ankle", f"{other}_knee", f"{other}_ankle", "neck"):
            moved = np.linalg.norm(out[frame, INDEX[name], :2] - full[frame, INDEX[name], :2])
            assert moved < 1.0, (lost, name, moved)
        others = [i for i in range(24) if i != frame]
        assert np.abs(out[others] - full[others]).max() < 0.2  # the scale measures one hip less


def upper_body(figure: Pose) -> Pose:
    """The figure cut off at the waist, like a head-and-shoulders photo (canvas 384 x 250)."""
    kp = figure.keypoints.copy()
    kp[kp[:, 1] >= 250] = 0.0
    return Pose(kp, 384, 250)


def test_upper_body_subject_keeps_what_the_photo_shows(figure):
    subject = upper_body(figure)
    assert subject["r_hip"] is None and subject["r_wrist"] is None and subject["r_elbow"] is not None
    clip = motion("walk", 12)
    out = retarget(clip, subject)
    k = stack(out)
    # legs are below the picture in every frame: dropped everywhere; shoulders and face kept
    for name in ("r_knee", "l_knee", "r_ankle", "l_ankle"):
        assert not k[:, INDEX[name], 2].any(), name
    for name in ("neck", "nose", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_eye", "l_ear"):
        assert k[:, INDEX[name], 2].all(), name
    # anchored at the neck: the tallest standing frame puts the neck exactly on the photo's
    assert np.abs(k[:, INDEX["neck"], :2] - figure["neck"]).min(axis=0).max() < 0.5
    assert np.abs(k[:, INDEX["neck"], 1] - figure["neck"][1]).max() < 15  # the bounce of a walk
    # the subject's shoulder width and upper arms at full extension
    lengths = np.stack([p.limb_lengths() for p in out])
    for limb in ((1, 2), (1, 5), (2, 3), (5, 6), (1, 0)):
        j = LIMBS.index(limb)
        assert np.percentile(lengths[:, j], 90) == pytest.approx(figure.limb_lengths()[j], rel=0.02), limb


def test_astronaut_photo_takes_any_motion(astronaut):
    from posekit.pose.detect import detect_person

    subject = detect_person(astronaut)
    assert subject is not None and subject["neck"] is not None
    for name in ("wave", "walk", "jump"):
        out = retarget(motion(name, 8), subject)
        k = stack(out)
        assert not k[:, INDEX["r_ankle"], 2].any()  # no legs in this photo
        nose = k[:, INDEX["nose"], :2][k[:, INDEX["nose"], 2] > 0]
        assert len(nose) == 8
        # walking and waving, the face stays on the face (within a fifth of the shoulder width)
        shoulders = np.linalg.norm(subject["r_shoulder"] - subject["l_shoulder"])
        if name != "jump":
            assert np.linalg.norm(nose - subject["nose"], axis=1).max() < 0.2 * shoulders, name
        else:  # a jump moves the head up and down, not sideways
            assert np.abs(nose[:, 0] - subject["nose"][0]).max() < 0.2 * shoulders


def test_missing_clip_points_stay_missing_and_children_still_hang(figure):
    clip = motion("walk", 6)
    kp = clip[0].keypoints.copy()
    kp[INDEX["r_elbow"]] = 0.0  # the elbow is lost, the wrist is still seen
    clip[0] = Pose(kp, clip[0].width, clip[0].height)
    out = retarget(clip, figure)
    assert out[0]["r_elbow"] is None and out[0]["r_wrist"] is not None
    assert out[1]["r_elbow"] is not None
    # the wrist is still near where the full frame would put it
    full = retarget(motion("walk", 6), figure)[0]
    assert np.linalg.norm(out[0]["r_wrist"] - full["r_wrist"]) < 25


def test_clips_without_legs_or_necks(figure):
    """An upper-body driving clip (a webcam video) and a frame that lost its neck and shoulders."""
    legs = [INDEX[n] for n in ("r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")]
    clip = []
    for p in motion("wave", 6):
        kp = p.keypoints.copy()
        kp[legs] = 0.0
        clip.append(Pose(kp, p.width, p.height))
    kp = clip[2].keypoints.copy()
    kp[[INDEX["neck"], INDEX["r_shoulder"], INDEX["l_shoulder"]]] = 0.0
    clip[2] = Pose(kp, clip[2].width, clip[2].height)
    out = retarget(clip, figure)
    k = stack(out)
    assert not k[:, legs, 2].any()
    # no feet to stand on: the neck stays on the subject's neck, give or take the clip's sway
    necks = k[[0, 1, 3, 4, 5], INDEX["neck"], :2]
    assert np.abs(necks - figure["neck"]).max() < 8
    assert out[2]["neck"] is None and out[2]["nose"] is not None
    assert np.linalg.norm(out[2]["nose"] - out[1]["nose"]) < 15  # scaled as a whole, still in place


def test_side_on_clips_turn_to_face_the_way_the_subject_faces():
    from posekit.pose.retarget import facing

    walk = motion("walk", 8, view="side")  # facing right
    assert all(facing(p) == 1 for p in walk)
    assert facing(motion("walk", 1)[0]) == 0 and facing(motion("idle", 1)[0]) == 0  # 3/4, front
    left = motion("idle", 1, 384, 512, view="side-left")[0]
    assert facing(left) == -1
    out = retarget(walk, left)
    assert all(facing(p) == -1 for p in out)
    assert all(p["nose"][0] < p["neck"][0] for p in out)
    right = motion("idle", 1, 384, 512, view="side")[0]
    assert all(facing(p) == 1 for p in retarget(walk, right))
    assert all(facing(p) == 1 for p in retarget(walk, left, mirror=False))
    # a frontal subject never flips the clip
    front = motion("idle", 1, 384, 512)[0]
    assert [p["r_wrist"][0] for p in retarget(walk, front)] == [p["r_wrist"][0] for p in retarget(walk, front, mirror=False)]


def test_a_subject_without_neck_or_shoulders_is_a_clear_error(figure):
    kp = figure.keypoints.copy()
    kp[[INDEX["neck"], INDEX["r_shoulder"], INDEX["l_shoulder"]]] = 0.0
    with pytest.raises(PosekitError, match="neck"):
        retarget(motion("walk", 4), Pose(kp, *figure.size))
    assert retarget([], figure) == []


def test_parts_a_clip_moves_but_a_partial_photo_lacks_are_named(figure):
    """Retargeting leaves out what the photo does not show; the clips that move it are named."""
    def cropped(bottom: float) -> Pose:  # the figure's photo cut off at y = bottom
        kp = figure.keypoints.copy()
        kp[kp[:, 1] > bottom] = 0.0
        return Pose(kp, figure.width, int(bottom))

    waist_up, head_and_shoulders = cropped(figure["r_hip"][1] + 20), cropped(figure["neck"][1] + 25)
    assert head_and_shoulders["r_elbow"] is None and waist_up["r_elbow"] is not None
    found = {}
    for name in ("walk", "run", "jump", "idle", "wave"):
        clip = motion(name, 12)
        found[name] = [moving_parts_left_out(clip, retarget(clip, subject))
                       for subject in (figure, waist_up, head_and_shoulders)]
    assert found["walk"] == found["run"] == found["jump"] == [[], ["legs"], ["legs", "arms"]]
    assert found["idle"] == [[], [], []]  # its legs and arms barely move
    assert found["wave"] == [[], [], []]  # the waving hand rises into the photo, so it is kept


def test_target_poses_without_a_limb_are_blamed_not_the_subject(figure):
    """A target with only a nose cannot be scaled: the error names the target poses (--poses), not
    --source-pose (the subject's pose is whole)."""
    nose = np.zeros((18, 3), np.float32)
    nose[INDEX["nose"]] = (100, 50, 1)
    with pytest.raises(PosekitError) as e:
        retarget([Pose(nose, 384, 512)], figure)
    assert "--poses" in str(e.value) and "--source-pose" not in str(e.value) and "--no-retarget" in str(e.value)
    # both show limbs, but no limb in common: both are named
    legs = figure.keypoints.copy()
    legs[[i for i in range(18) if i not in (INDEX["r_knee"], INDEX["r_ankle"])]] = 0
    arm = figure.keypoints.copy()
    arm[[i for i in range(18) if i not in (INDEX["neck"], INDEX["r_shoulder"])]] = 0
    with pytest.raises(PosekitError, match="no limb in common.*--source-pose.*--no-retarget"):
        retarget([Pose(legs, 384, 512)], Pose(arm, 384, 512))
    # transfer and poses show have neither --poses nor --no-retarget: the advice names their own
    from posekit.pose.retarget import Flags

    with pytest.raises(PosekitError) as e:
        retarget([Pose(nose, 384, 512)], figure, flags=Flags(targets="--pose", skip="leave out --retarget"))
    assert "(--pose)" in str(e.value) and "--poses" not in str(e.value) and "--no-retarget" not in str(e.value)
    with pytest.raises(PosekitError) as e:
        retarget([Pose(legs, 384, 512)], Pose(arm, 384, 512), flags=Flags(targets="a.json", subject="--onto", skip=None))
    assert "--onto" in str(e.value) and "--source-pose" not in str(e.value) and "retarget" not in str(e.value)


def test_poses_show_names_its_own_flags_when_the_clip_cannot_be_retargeted(run_posekit, tmp_path):
    """`poses show CLIP --onto SUBJECT` with a clip of noses: the error named animate's --poses and
    --no-retarget, flags poses show does not have."""
    kp = [0.0] * 54
    kp[0:3] = [190, 100, 1]
    (tmp_path / "nose.json").write_text(json.dumps({"canvas_width": 384, "canvas_height": 512,
                                                    "people": [{"pose_keypoints_2d": kp}]}))
    r = run_posekit("poses", "show", tmp_path / "nose.json", "--onto", FIGURE,
                    "--out", tmp_path / "p")
    assert r.returncode == 1 and "nose.json" in r.stderr and "leave out --onto" in r.stderr, r.stderr
    assert "--poses" not in r.stderr and "--no-retarget" not in r.stderr, r.stderr

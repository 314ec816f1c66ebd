import numpy as np

from posekit.pose import INDEX, LIMBS, Pose


def make_pose():
    xy = np.full((18, 2), np.nan, np.float32)
    xy[INDEX["neck"]] = (50, 40)
    xy[INDEX["r_shoulder"]] = (40, 40)
    xy[INDEX["l_shoulder"]] = (60, 40)
    xy[INDEX["r_hip"]] = (44, 80)
    xy[INDEX["l_hip"]] = (56, 80)
    return Pose.from_xy(xy, 100, 120)


def test_missing_points_are_zero_and_invisible():
    p = make_pose()
    assert len(p) == 5
    assert p["nose"] is None
    assert p.keypoints[INDEX["nose"]].tolist() == [0, 0, 0]
    assert p.bbox() == (40.0, 40.0, 60.0, 80.0)


def test_flip_mirrors_and_swaps_sides():
    p = make_pose().flip()
    # the person's right shoulder was at x=40; mirrored it is at 99-60 = 39 under the right name
    assert p["r_shoulder"].tolist() == [39.0, 40.0]
    assert p["l_shoulder"].tolist() == [59.0, 40.0]
    assert p.flip().allclose(make_pose())


def test_limb_lengths_and_torso():
    p = make_pose()
    lengths = p.limb_lengths()
    assert lengths.shape == (len(LIMBS),)
    assert lengths[LIMBS.index((1, 2))] == 10.0
    assert np.isnan(lengths[LIMBS.index((1, 0))])
    assert p.torso_size() == 40.0


def test_transforms_keep_missing_points_missing():
    p = make_pose().translate(5, -5).scale(2.0, about=(50, 40)).resized(200, 240)
    assert len(p) == 5 and p.size == (200, 240)
    assert p["neck"].tolist() == [120.0, 60.0]
    f = make_pose().fitted(200, 120)  # scale 1, centred: +50 in x
    assert f["neck"].tolist() == [100.0, 40.0]


def test_inside_means_on_the_canvas_in_pixel_centres():
    from posekit.pose import KEYPOINT_NAMES

    edge = make_pose().translate(-40, 39)  # r_shoulder at x = 0, the hips at y = 119 = height - 1
    assert edge.inside().tolist() == edge.visible.tolist()
    assert edge.in_frame().allclose(edge)
    off = make_pose().translate(-40.5, 39.5)
    assert [KEYPOINT_NAMES[i] for i in np.flatnonzero(off.visible & ~off.inside())] == ["r_shoulder", "r_hip", "l_hip"]
    framed = off.in_frame()
    assert len(framed) == 2 and framed.size == off.size
    assert framed["neck"].tolist() == off["neck"].tolist() and framed["r_hip"] is None
    assert not Pose.empty(10, 10).inside().any()  # missing points are not inside, though at (0, 0)


def test_non_finite_points_are_missing():
    """A NaN or infinite x, y or confidence says nothing about where the joint is: missing, not (0, 0)
    with its confidence kept (a body torn to the corner), nor a point millions of pixels away."""
    kp = make_pose().keypoints.copy()
    kp[INDEX["neck"]] = (np.nan, np.nan, 1.0)
    kp[INDEX["r_shoulder"]] = (np.inf, 40, 1.0)
    kp[INDEX["l_shoulder"]] = (60, 40, np.nan)
    p = Pose(kp, 100, 120)
    assert len(p) == 2 and p["neck"] is None and p["r_shoulder"] is None and p["l_shoulder"] is None
    assert np.isfinite(p.keypoints).all() and p.keypoints[INDEX["neck"]].tolist() == [0, 0, 0]

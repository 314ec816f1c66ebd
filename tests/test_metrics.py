"""posekit.metrics: PATN's SSIM protocol, mask-SSIM, PCK / PCKh."""

from __future__ import annotations

import math

import numpy as np
import pytest

from posekit.metrics import body_mask, mask_ssim, pck, pckh, ssim
from posekit.pose.pose import INDEX, Pose


@pytest.fixture(scope="module")
def photo(astronaut):
    return astronaut[100:356:2, 150:406:2].copy()   # 128x128 real photo


def test_ssim_is_one_for_identical_images_and_falls_with_noise(photo):
    rng = np.random.default_rng(0)
    noisy = np.clip(photo.astype(int) + rng.integers(-40, 40, photo.shape), 0, 255).astype(np.uint8)
    very = np.clip(photo.astype(int) + rng.integers(-120, 120, photo.shape), 0, 255).astype(np.uint8)
    assert ssim(photo, photo) == pytest.approx(1.0)
    assert 1.0 > ssim(noisy, photo) > ssim(very, photo) > 0


def test_ssim_follows_the_patn_protocol(photo):
    from skimage.metrics import structural_similarity

    dark = (photo // 2).astype(np.uint8)    # a different range: data_range comes from the generated image
    expected = structural_similarity(photo, dark, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     channel_axis=-1, data_range=float(dark.max()) - float(dark.min()))
    assert ssim(dark, photo) == pytest.approx(expected)
    assert ssim(dark, photo) != pytest.approx(ssim(photo, dark))
    # the DeepFashion protocol pads both with white: more identical area, higher score
    assert ssim(dark, photo, pad=40) > ssim(dark, photo)
    with pytest.raises(ValueError):
        ssim(photo, photo[:64])


def standing(width=64, height=128) -> Pose:
    xy = {"nose": (32, 14), "neck": (32, 26), "r_shoulder": (22, 28), "r_elbow": (18, 46), "r_wrist": (16, 62),
          "l_shoulder": (42, 28), "l_elbow": (46, 46), "l_wrist": (48, 62), "r_hip": (26, 66), "r_knee": (26, 92),
          "r_ankle": (26, 118), "l_hip": (38, 66), "l_knee": (38, 92), "l_ankle": (38, 118), "r_eye": (29, 11),
          "l_eye": (35, 11), "r_ear": (26, 13), "l_ear": (38, 13)}
    return Pose.from_xy([xy[n] for n in INDEX], width, height)


def test_body_mask_covers_limbs_not_the_background():
    mask = body_mask(standing())
    assert mask.shape == (128, 64)
    assert mask[92, 26] and mask[54, 17] and mask[46, 32]   # knee, forearm, torso
    assert not mask[5, 5] and not mask[100, 60]
    assert 0.1 < mask.mean() < 0.5


def test_body_mask_is_the_authors_produce_ma_mask():
    """PATN's Market-1501 mask (reference/patn.md): a joint alone is a disk of radius 4 without its
    edge (the 45 lattice points at distance < 4; an OpenCV circle also takes the 4 at distance 4
    and more), and a limb the quadrilateral skimage's polygon fills between float corners."""
    from skimage.draw import polygon

    lone = np.full((18, 3), -1.0)
    lone[0] = (30.0, 40.0, 1.0)
    assert body_mask(Pose(lone, 64, 128)).sum() == 45
    limb = np.full((18, 3), -1.0)
    limb[1], limb[2] = (20.0, 30.0, 1.0), (40.0, 70.0, 1.0)  # neck to right shoulder, slanted
    mask = body_mask(Pose(limb, 64, 128))
    d = np.array([30.0 - 70.0, 20.0 - 40.0])  # (row, col) of neck minus shoulder
    normal = np.array([-d[1], d[0]]) / np.linalg.norm(d) * 4
    quad = np.zeros((128, 64), bool)
    corners = np.array([(30, 20) + normal, (30, 20) - normal, (70, 40) - normal, (70, 40) + normal])
    quad[polygon(corners[:, 0], corners[:, 1], shape=quad.shape)] = True
    assert mask[quad].all()  # every pixel of the polygon is in
    outside = mask & ~quad
    rows, cols = np.nonzero(outside)
    near_joint = np.minimum(np.hypot(rows - 30, cols - 20), np.hypot(rows - 70, cols - 40))
    assert (near_joint < 4).all()  # and only the disks' pixels beyond it


def authors_mask(kp: np.ndarray, shape: tuple[int, int], radius: int = 4) -> np.ndarray:
    """produce_ma_mask written out from its definition: `kp` (18, 2) integer (row, col) as the
    annotation CSV holds them, -1 missing; for each limb (1-based pairs, as the authors list them)
    a quadrilateral of half-width `radius` filled by skimage's polygon on float corners, each
    joint the pixels at distance < radius, then a 5x5 closing (grey morphology, border reflected)."""
    from scipy import ndimage
    from skimage.draw import polygon

    limbs = np.array([[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
                      [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [2, 17], [2, 18], [9, 12], [12, 6],
                      [9, 3], [17, 18]]) - 1
    mask = np.zeros(shape, bool)
    for f, t in limbs:
        if -1 in kp[f] or -1 in kp[t]:
            continue
        v = (kp[f] - kp[t]).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):  # a zero-length limb draws nothing
            v = radius * np.array([-v[1], v[0]]) / np.linalg.norm(v)
        corners = np.array([kp[f] + v, kp[f] - v, kp[t] - v, kp[t] + v])
        rows, cols = polygon(corners[:, 0], corners[:, 1], shape=shape)
        mask[rows, cols] = True
    grid_r, grid_c = np.mgrid[:shape[0], :shape[1]]
    for r, c in kp:
        if r != -1 and c != -1:
            mask |= (grid_r - r) ** 2 + (grid_c - c) ** 2 < radius ** 2
    closed = ndimage.grey_erosion(ndimage.grey_dilation(mask.astype(np.uint8), size=(5, 5), mode="reflect"),
                                  size=(5, 5), mode="reflect")
    return closed.astype(bool)


def test_body_mask_equals_produce_ma_mask_pixel_for_pixel(tmp_path):
    """Several annotation rows (a standing person, random ones with missing points, points on the
    image's edges, two joints at one place), read as evaluate-gan reads them: the same mask."""
    from posekit.pose.formats import read_patn_annotations, write_patn_annotations

    rng = np.random.default_rng(7)
    poses = {"standing.jpg": standing()}
    for i in range(6):
        xy = np.column_stack([rng.integers(0, 64, 18), rng.integers(0, 128, 18)]).astype(np.float32)
        conf = (rng.random(18) > 0.25).astype(np.float32)
        poses[f"random{i}.jpg"] = Pose.from_xy(xy, 64, 128, confidence=conf)
    edges = standing().keypoints.copy()
    edges[[0, 14, 15, 16, 17], 1] = 0          # the head on the top row
    edges[[4, 10], 0], edges[7, 0] = 0, 63     # wrists and ankle on the left and right columns
    edges[13, :2] = edges[12, :2]              # the left ankle on its knee: a limb of length 0
    edges[10, 1] = 127
    poses["edges.jpg"] = Pose(edges, 64, 128)
    path = write_patn_annotations(list(poses.items()), tmp_path / "market-annotation-test.csv")
    read = read_patn_annotations(path, 64, 128)
    for name, pose in read.items():
        kp = np.column_stack([np.where(pose.visible, pose.keypoints[:, 1], -1),
                              np.where(pose.visible, pose.keypoints[:, 0], -1)]).astype(int)
        expected = authors_mask(kp, (128, 64))
        assert expected.any()
        assert np.array_equal(body_mask(pose), expected), (name, int((body_mask(pose) != expected).sum()))


def test_mask_ssim_ignores_the_background(photo):
    pose = standing(128, 128).scale(2.0, 1.0)
    ref = photo
    gen = ref.copy()
    gen[:, 110:] = 255 - gen[:, 110:]     # change only far from the body
    assert not body_mask(pose)[:, 110:].any()
    assert mask_ssim(gen, ref, pose) == pytest.approx(1.0)
    assert ssim(gen, ref) < 0.95


def test_pck_counts_target_points_within_the_torso_tolerance():
    target = standing()
    torso = target.torso_size()
    assert pck(target, target) == 1.0
    assert pck(target.translate(0.4 * torso, 0), target) == 1.0
    assert pck(target.translate(0.6 * torso, 0), target) == 0.0
    # a point the prediction misses is wrong; a point the target lacks is not counted
    kp = target.keypoints.copy()
    kp[INDEX["r_wrist"]] = 0
    assert pck(Pose(kp, 64, 128), target) == pytest.approx(17 / 18)
    assert pck(target, Pose(kp, 64, 128)) == 1.0
    # poses on another canvas are compared in the target's pixels
    assert pck(target.resized(128, 256), target) == 1.0
    assert math.isnan(pck(target, Pose.empty(64, 128)))


def test_pckh_uses_the_head_box_per_axis():
    target = standing()
    xs = target.keypoints[[0, 1, 14, 15, 16, 17], 0]
    ys = target.keypoints[[0, 1, 14, 15, 16, 17], 1]
    w, h = np.ptp(xs), np.ptp(ys)           # 12 x 15 px
    assert pckh(target.translate(0.45 * w, 0.45 * h), target) == 1.0
    assert pckh(target.translate(0.55 * w, 0), target) == 0.0
    assert pckh(target.translate(0, 0.55 * h), target) == 0.0
    assert pckh(target.translate(0.55 * w, 0), target, alpha=0.6) == 1.0
    with pytest.raises(ValueError):
        pck(target, target, reference="knee")

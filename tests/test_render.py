import io

import numpy as np
import pytest

from posekit.pose import INDEX, LIMBS, Pose
from posekit.pose.detect.skeleton import is_skeleton_image, parse_skeleton
from posekit.pose.render import COLORS, LIMB_COLORS, draw_skeleton, heatmaps, line_size

# A standing figure in units of 1/512 of the canvas, around its hip centre.
FIGURE = np.array([[0, -60], [0, -40], [-15, -40], [-20, -15], [-22, 10], [15, -40], [20, -15],
                   [22, 10], [-10, 10], [-11, 40], [-12, 70], [10, 10], [11, 40], [12, 70],
                   [-4, -64], [4, -64], [-8, -62], [8, -62]], np.float32)

# The astronaut as BlazePose finds it (rounded), with its missing wrists, hips and legs.
ASTRONAUT = {"nose": (223, 128), "neck": (209, 248), "r_shoulder": (112, 240), "r_elbow": (63, 410),
             "l_shoulder": (306, 256), "r_eye": (205, 103), "l_eye": (249, 112), "r_ear": (190, 107),
             "l_ear": (268, 123)}


def figure(rng, cx, cy, scale, width, height, missing=()):
    xy = FIGURE * scale * min(width, height) / 512 + np.float32([cx * width, cy * height])
    xy = xy + rng.normal(0, 0.3, xy.shape)
    xy[[INDEX[n] for n in missing]] = np.nan
    return Pose.from_xy(xy, width, height)


def astronaut_pose():
    xy = np.full((18, 2), np.nan, np.float32)
    for name, p in ASTRONAUT.items():
        xy[INDEX[name]] = p
    return Pose.from_xy(xy, 512, 512)


def assert_same_people(found, wanted, atol=2.0):
    assert len(found) == len(wanted)
    for got, want in zip(found, wanted):
        assert got.size == want.size
        assert np.array_equal(got.visible, want.visible)
        assert np.abs(got.keypoints[:, :2] - want.keypoints[:, :2]).max() <= atol


def test_drawing_matches_controlnet_aux_pixel_for_pixel():
    """The ControlNet 1.1 annotator's own drawing (controlnet_aux.open_pose.util.draw_bodypose)
    must give the same image, two people and missing points included."""
    from posekit.pose.detect.openpose import import_controlnet_aux_openpose

    _, _, util = import_controlnet_aux_openpose()
    from controlnet_aux.open_pose.body import Keypoint

    rng = np.random.default_rng(0)
    # integer pixels: x / 512 * 512 is then exact in floating point for their normalised input
    people = [Pose(np.round(p.keypoints), 512, 512) for p in
              (figure(rng, 0.3, 0.5, 3.0, 512, 512), figure(rng, 0.7, 0.55, 2.2, 512, 512, missing=("r_wrist", "l_knee")))]
    theirs = np.zeros((512, 512, 3), np.uint8)
    for p in people:
        theirs = util.draw_bodypose(theirs, [Keypoint(x / 512, y / 512) if c > 0 else None for x, y, c in p.keypoints])
    ours = draw_skeleton(people)
    assert ours.shape == (512, 512, 3) and ours.dtype == np.uint8
    assert np.array_equal(ours, theirs)


def test_drawing_colours_background_and_canvas():
    pose = astronaut_pose()
    img = draw_skeleton(pose)
    assert img.shape == (512, 512, 3)
    assert (img == 0).all(axis=2).mean() > 0.9  # black background
    x, y = ASTRONAUT["nose"]
    assert img[y, x].tolist() == COLORS[INDEX["nose"]].tolist()  # joints at full colour
    neck, rs = np.array(ASTRONAUT["neck"]), np.array(ASTRONAUT["r_shoulder"])
    mx, my = ((neck + rs) / 2).astype(int)
    assert img[my, mx].tolist() == LIMB_COLORS[LIMBS.index((1, 2))].tolist()  # limbs at 0.6
    # nothing is drawn for the missing left elbow (its colour does not appear)
    assert not (img == COLORS[INDEX["l_elbow"]]).all(axis=2).any()
    assert draw_skeleton([], 64, 32).shape == (32, 64, 3)
    assert line_size(512, 768) == 4 and line_size(1024, 1024) == 8 and line_size(64, 64) == 1


def test_parse_back_the_astronaut():
    pose = astronaut_pose()
    (back,) = parse_skeleton(draw_skeleton(pose))
    assert_same_people([back], [pose])


@pytest.mark.parametrize("width, height", [(512, 512), (176, 256), (128, 128), (1024, 768)])
def test_parse_back_two_people_with_missing_points(width, height):
    rng = np.random.default_rng(width + height)
    big = figure(rng, 0.3, 0.5, 3.0, width, height)
    small = figure(rng, 0.72, 0.55, 2.2, width, height, missing=("r_wrist", "r_ankle", "r_ear"))
    found = parse_skeleton(draw_skeleton([small, big]))  # drawn small first; read back largest first
    assert_same_people(found, [big, small])


def test_parse_back_an_openpose_full_image_with_hands_and_face():
    """ControlNet's openpose_full images draw hands (blue dots: a joint colour; lines in rainbow
    colours) and white face dots over the body skeleton; the body must still come back alone."""
    from posekit.pose.detect.openpose import import_controlnet_aux_openpose

    _, _, util = import_controlnet_aux_openpose()
    from controlnet_aux.open_pose.body import Keypoint

    rng = np.random.default_rng(3)
    pose = figure(rng, 0.5, 0.5, 3.4, 512, 512)
    canvas = draw_skeleton(pose)
    for wrist in ("r_wrist", "l_wrist"):
        hand = rng.normal(0, 10, (21, 2)) + pose[wrist] + (0, 18)
        canvas = util.draw_handpose(canvas, [Keypoint(x / 512, y / 512) for x, y in hand])
    nose, eyes = pose["nose"], abs(pose["l_eye"][0] - pose["r_eye"][0])
    t = np.linspace(-1.2, 1.2, 17)  # a jaw line and a mouth around the nose, below the eyes
    face = np.concatenate([np.stack([np.sin(t), np.cos(t)], 1) * 1.1 * eyes,
                           np.stack([np.linspace(-0.4, 0.4, 8), np.full(8, 0.45)], 1) * eyes]) + nose
    canvas = util.draw_facepose(canvas, [Keypoint(x / 512, y / 512) for x, y in face])
    assert is_skeleton_image(canvas)
    (found,) = parse_skeleton(canvas)
    assert np.abs(found.keypoints[:, :2] - pose.keypoints[:, :2]).max() <= 2.0


def test_parse_back_a_resized_skeleton():
    import cv2

    rng = np.random.default_rng(4)
    people = [figure(rng, 0.3, 0.5, 3.0, 512, 512), figure(rng, 0.72, 0.55, 2.2, 512, 512)]
    resized = cv2.resize(draw_skeleton(people), (768, 768), interpolation=cv2.INTER_LINEAR)
    assert_same_people(parse_skeleton(resized), [p.resized(768, 768) for p in people])


def test_parse_back_a_jpeg_saved_skeleton():
    from PIL import Image

    rng = np.random.default_rng(5)
    pose = figure(rng, 0.5, 0.5, 3.5, 512, 512, missing=("l_ear",))
    buf = io.BytesIO()
    Image.fromarray(draw_skeleton(pose)).save(buf, format="JPEG", quality=90)
    jpeg = np.asarray(Image.open(buf))
    assert is_skeleton_image(jpeg)
    assert_same_people(parse_skeleton(jpeg), [pose])


def test_is_skeleton_image_tells_skeletons_from_photos(astronaut):
    assert is_skeleton_image(draw_skeleton(astronaut_pose()))
    assert not is_skeleton_image(astronaut)
    assert not is_skeleton_image(np.zeros((64, 64, 3), np.uint8))
    assert not is_skeleton_image(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert parse_skeleton(np.zeros((64, 64, 3), np.uint8)) == []
    assert not is_skeleton_image(np.zeros((64, 64), np.uint8))


def test_is_skeleton_image_memory_is_bounded_on_big_images():
    """Pose sources ask this of every photo: a big dark one must not need gigabytes."""
    import tracemalloc

    rng = np.random.default_rng(1)
    dark = rng.integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    dark[rng.random((1500, 1500)) < 0.6] = 0  # dark enough to be classified pixel by pixel
    tracemalloc.start()
    assert not is_skeleton_image(dark)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6, peak


def test_gaussian_heatmaps():
    pose = astronaut_pose()
    maps = heatmaps(pose)
    assert maps.shape == (512, 512, 18) and maps.dtype == np.float32
    x, y = ASTRONAUT["nose"]
    nose = maps[:, :, INDEX["nose"]]
    assert nose[y, x] == pytest.approx(1.0)
    assert np.unravel_index(nose.argmax(), nose.shape) == (y, x)
    assert nose[y, x + 6] == pytest.approx(np.exp(-0.5), rel=1e-5)  # one sigma away
    assert not maps[:, :, INDEX["l_wrist"]].any()  # missing -> zeros
    assert heatmaps(pose, sigma=2.0)[y, x + 6, INDEX["nose"]] == pytest.approx(np.exp(-4.5), rel=1e-4)


def test_single_pixel_heatmaps():
    pose = astronaut_pose().resized(176, 256)
    maps = heatmaps(pose, kind="pixel")
    assert maps.shape == (256, 176, 18)
    assert maps.sum(axis=(0, 1)).tolist() == [1.0 if v else 0.0 for v in pose.visible]
    x, y = pose["neck"]
    assert maps[int(round(float(y))), int(round(float(x))), INDEX["neck"]] == 1.0
    with pytest.raises(ValueError):
        heatmaps(pose, kind="blobs")

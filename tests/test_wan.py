"""--method wan: Wan2.2-Animate's pose video, face crops, segments, loops and the CLI, on a tiny
random Wan-Animate pipeline (tests/tiny_wan.py) saved in the real folder layout."""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posekit.errors import UsageError
from posekit.methods.wan.face import face_box, face_crop, landmark_box
from posekit.methods.wan.method import WanMethod, WanOptions, close_loop, loop_extra, wan_length
from posekit.methods.wan.pose_video import WAN_COLORS, draw_wan_pose, stick_width
from posekit.pose.pose import Pose

REPO = Path(__file__).resolve().parents[1]
FIGURE = REPO / "examples" / "figure.png"
FIGURE_POSE = REPO / "examples" / "figure_keypoints.json"
SMALL = (48, 64)  # the tests' photo size: frames of 48x64, multiples of 16


def pose_of(points: dict[int, tuple[float, float]], width: int, height: int) -> Pose:
    xy = np.full((18, 2), np.nan)
    for i, p in points.items():
        xy[i] = p
    return Pose.from_xy(xy, width, height)


# -- the pose video, against Wan's drawing rules ------------------------------------------------
def test_a_three_point_pose_is_drawn_as_wan_draws_it():
    """Neck (20, 32) - right shoulder (44, 32) - right elbow (44, 52) on 64x64: Wan's 'v2' stick
    width there is max(int(64 / 200) - 1, 1) = 1, so limbs are 3 px wide (half width 1) in their
    colour at 0.6, joints are radius-1 discs (a plus of 5 pixels) in full colour, drawn last."""
    image = draw_wan_pose(pose_of({1: (20, 32), 2: (44, 32), 3: (44, 52)}, 64, 64))
    neck_c, shoulder_c, elbow_c = (255, 85, 0), (255, 170, 0), (255, 255, 0)  # Wan's colours 1, 2, 3
    limb0, limb2 = (153, 0, 0), (153, 102, 0)  # int(0.6 * colour 0), int(0.6 * colour 2)
    colours = {tuple(int(v) for v in c) for c in image.reshape(-1, 3)}
    assert colours == {(0, 0, 0), neck_c, shoulder_c, elbow_c, limb0, limb2}
    px = lambda x, y: tuple(int(v) for v in image[y, x])  # noqa: E731
    # the horizontal limb: rows 31..33 at its middle, black above and below
    assert [px(32, y) for y in range(30, 35)] == [(0, 0, 0), limb0, limb0, limb0, (0, 0, 0)]
    # the vertical limb: columns 43..45
    assert [px(x, 42) for x in range(42, 47)] == [(0, 0, 0), limb2, limb2, limb2, (0, 0, 0)]
    # joints: a plus of radius 1, over the limbs
    for (x, y), c in (((20, 32), neck_c), ((44, 32), shoulder_c), ((44, 52), elbow_c)):
        assert [px(x + dx, y + dy) for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))] == [c] * 5
    assert px(21, 33) != neck_c and px(45, 53) != elbow_c  # the diagonals are not the disc's
    assert px(44, 33) == shoulder_c  # the joint is drawn over the limb leaving it
    assert image[:29].max() == 0 and image[56:].max() == 0 and image[:, :18].max() == 0 and image[:, 47:].max() == 0


def test_stick_width_follows_wan_v2_rule():
    assert stick_width(64, 64) == 1
    assert stick_width(832, 480) == 1  # 480p: int(2.4) - 1
    assert stick_width(1280, 720) == 2  # 720p: int(3.6) - 1
    assert stick_width(1920, 1080) == 4


# Wan2.2's own colour table (human_visualization.py, draw_aapose_new), written out here rather
# than taken from posekit, so a wrong colour in posekit shows.
WAN_REFERENCE_COLORS = [[255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
                        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
                        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
                        [200, 200, 0], [100, 100, 0]]


def _wan_reference(kp20: np.ndarray, height: int, width: int) -> np.ndarray:
    """Wan's draw_aapose_new (stickwidth 'v2', threshold 0.5, no hands), re-stated from its rules
    with its own variable naming: Y holds the x coordinates and X the y coordinates."""
    import cv2

    assert [list(c) for c in WAN_COLORS] == WAN_REFERENCE_COLORS

    limb_seq = [[2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13],
                [13, 14], [2, 1], [1, 15], [15, 17], [1, 16], [16, 18], [14, 19], [11, 20]]  # 1-based
    img = np.zeros((height, width, 3), np.uint8)
    stick = max(int(min(height, width) / 200) - 1, 1)
    for (k1, k2), color in zip(limb_seq, WAN_REFERENCE_COLORS):
        p1, p2 = kp20[k1 - 1], kp20[k2 - 1]
        if p1[-1] < 0.5 or p2[-1] < 0.5:
            continue
        Y, X = np.array([p1[0], p2[0]]), np.array([p1[1], p2[1]])
        length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
        poly = cv2.ellipse2Poly((int(np.mean(Y)), int(np.mean(X))), (int(length / 2), stick), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(img, poly, [int(float(c) * 0.6) for c in color])
    for p, color in zip(kp20, WAN_REFERENCE_COLORS):
        if p[-1] >= 0.5:
            cv2.circle(img, (int(p[0]), int(p[1])), stick, color, thickness=-1)
    return img


@pytest.mark.parametrize("size", [(832, 480), (720, 1280)])
def test_full_pose_matches_wan_reference_pixel_for_pixel(size):
    """A whole figure (the example's pose, one ear dropped) at 480p and 720p: posekit's 18 points
    are Wan's first 18, its toes are absent (confidence 0), so both drawings are identical."""
    from posekit.pose.formats import read_openpose_json

    w, h = size
    pose = read_openpose_json(FIGURE_POSE)[0].resized(w, h)
    kp = pose.keypoints.copy()
    kp[17] = 0  # a missing point: neither it nor its limb is drawn
    pose = Pose(kp, w, h)
    kp20 = np.vstack([kp, np.zeros((2, 3), np.float32)])
    ours, theirs = draw_wan_pose(pose), _wan_reference(kp20, h, w)
    assert ours.shape == (h, w, 3) and ours.any()
    assert np.array_equal(ours, theirs)


def test_points_wan_would_not_trust_are_left_out_as_wan_leaves_them():
    """Detector scores between 0 and 1 (a driving video's, OpenPose's): Wan draws a point, and a
    limb between two, only at 0.5 or above. Over 200 random poses with scores across 0..1, at
    480p and 720p, posekit's drawing equals the reference's pixel for pixel."""
    rng = np.random.default_rng(7)
    for i in range(200):
        w, h = ((832, 480), (720, 1280))[i % 2]
        kp = np.column_stack([rng.uniform(0, w, 18), rng.uniform(0, h, 18), rng.uniform(0.01, 1.0, 18)])
        kp[:4, 2] = (0.49, 0.5, 0.51, 1.0)  # at and around the threshold
        kp = kp.astype(np.float32)
        ours = draw_wan_pose(Pose(kp, w, h))
        assert np.array_equal(ours, _wan_reference(np.vstack([kp, np.zeros((2, 3), np.float32)]), h, w)), i


# -- face crops -------------------------------------------------------------------------------
def test_face_box_covers_the_head_and_grows_as_wan_grows_it():
    pose = pose_of({0: (100, 110), 1: (100, 160), 14: (90, 100), 15: (110, 100), 16: (80, 104), 17: (120, 104)},
                   200, 200)
    x0, y0, x1, y1 = landmark_box(pose)
    assert x1 - x0 == pytest.approx(48.0) and y1 - y0 == pytest.approx(48.0)  # 2.4 x the 20 px eye distance
    assert y0 == pytest.approx(100 - 0.36 * 48)  # eyes at 0.36 of the box
    bx0, by0, bx1, by1 = face_box(pose, 200, 200)
    grow = 48 * (math.sqrt(1.3) - 1)
    assert (bx0, bx1) == (int(76 - grow / 2), int(124 + grow / 2))  # the extra width split evenly
    assert (by0, by1) == (int(y0 - 3 * grow / 4), int(y1 + grow / 4))  # 3/4 of the extra height above
    assert face_box(pose_of({1: (100, 160), 8: (90, 250)}, 200, 300), 200, 300) is None  # no head points


def test_face_crop_is_the_face_at_the_encoder_size():
    image = np.zeros((200, 200, 3), np.uint8)
    image[80:140, 70:130] = (255, 0, 0)  # the face: red
    pose = pose_of({0: (100, 110), 14: (90, 100), 15: (110, 100)}, 200, 200)
    crop = face_crop(image, pose, 64)
    assert crop.shape == (64, 64, 3)
    assert (crop[:, :, 0] > 200).mean() > 0.6  # mostly the red face
    headless = face_crop(image, pose_of({1: (100, 160)}, 200, 200), 64)
    assert headless.shape == (64, 64, 3) and headless.max() == 0  # black: the pipeline's "no face"


# -- options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, words", [
    (dict(offload="sequential"), "--offload group"),
    (dict(offload="disk"), "none, model, group"),
    (dict(character="sketch"), "cutout, photo"),
    (dict(segment_frames=16), "13 or 17"),
    (dict(prev_frames=3), "1 or 5"),
    (dict(segment_frames=9, prev_frames=5), "--segment-frames 13"),
    (dict(resolution="1080p"), "480p, 720p"),
])
def test_bad_options_are_one_line_usage_errors(kwargs, words):
    with pytest.raises(UsageError) as e:
        WanOptions(**kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_resolution_bounds_the_frame_area_and_never_enlarges():
    full_hd = (1920, 1080)
    assert WanMethod.working_size(*full_hd) == (843, 474)  # 480p's area, 832 x 480, the aspect kept
    assert WanMethod.working_size(*full_hd, WanOptions(resolution="720p")) == (1280, 720)
    assert WanMethod.working_size(400, 600, WanOptions(resolution="720p")) == (400, 600)


def test_a_caller_passing_a_big_photo_gets_frames_of_the_working_size(method, figure):
    """The pipeline scales the photo down first; a library caller who does not still gets frames
    within the resolution's area (multiples of 16), the poses following the photo's canvas."""
    image, pose = figure
    big = np.asarray(Image.fromarray(image).resize((1200, 1600)))
    big_pose = pose.resized(1200, 1600)
    options = {**method.options.__dict__}
    for resolution, area in (("480p", 832 * 480), ("720p", 1280 * 720)):
        m = WanMethod(big, big_pose, WanOptions(**{**options, "resolution": resolution}), models=method.pipe)
        w, h = m.size
        assert w % 16 == 0 and h % 16 == 0 and area * 0.9 < w * h <= area
        assert m.character.shape == (h, w, 3) and m.frame_pose(big_pose).size == (w, h)


def test_the_pipeline_scales_the_photo_to_the_resolution_asked(tmp_path):
    from posekit.pipeline import Timer, prepare_source
    from posekit.pose.formats import read_openpose_json, write_openpose_json

    photo, pose_file = tmp_path / "big.png", tmp_path / "big.json"
    Image.open(FIGURE).convert("RGB").resize((1536, 2048)).save(photo)
    write_openpose_json([read_openpose_json(FIGURE_POSE)[0].resized(1536, 2048)], pose_file)
    for resolution, size in (("480p", (547, 730)), ("720p", (831, 1109))):
        image, pose, canvas = prepare_source(photo, "wan", Timer(), None, source_pose=pose_file,
                                             options=WanOptions(resolution=resolution))
        assert image.shape[1::-1] == size and pose.size == size and canvas == (1536, 2048)


def test_segment_lengths_and_loop_share():
    assert [wan_length(n) for n in (1, 5, 6, 8, 9, 16, 17)] == [1, 5, 9, 9, 9, 17, 17]
    assert [loop_extra(n) for n in (2, 4, 8, 16)] == [0, 1, 2, 4]
    a, b = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 200, np.uint8)
    out = close_loop([a, a, a, a, b, b], 4)  # frames 4, 5 repeat the poses of 0, 1
    assert np.array_equal(out[0], b) and out[1][0, 0, 0] == 100 and np.array_equal(out[2], a)


# -- the method on a tiny random Wan-Animate --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_wan(tmp_path_factory):
    from tiny_wan import make_tiny_wan

    return make_tiny_wan(tmp_path_factory.mktemp("tiny_wan") / "wan")


@pytest.fixture(scope="module")
def figure():
    from posekit.pose.formats import read_openpose_json

    image = np.asarray(Image.open(FIGURE).convert("RGB").resize(SMALL, Image.LANCZOS))
    return image, read_openpose_json(FIGURE_POSE)[0].resized(*SMALL)


@pytest.fixture(scope="module")
def walk(figure):
    from posekit.pose.retarget import retarget
    from posekit.pose.sources import load_poses

    image, pose = figure
    return retarget([p.fitted(*SMALL) for p in load_poses("walk", frames=8)], pose)


@pytest.fixture(scope="module")
def method(tiny_wan, figure, one_torch_thread):
    image, pose = figure
    return WanMethod(image, pose, WanOptions(model=str(tiny_wan), steps=2, device="cpu", character="photo"))


@pytest.fixture
def calls(method, monkeypatch):
    """What the method passes to WanAnimatePipeline.__call__, call by call."""
    seen = []
    cls = type(method.pipe)
    original = cls.__call__

    def spy(self, **kwargs):
        seen.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(cls, "__call__", spy)
    return seen


def test_frames_pose_video_and_face_video(method, walk, calls):
    frames = method(walk, loop=False)
    assert len(frames) == 8 and all(f.shape == (64, 48, 3) and f.dtype == np.uint8 for f in frames)
    (kw,) = calls
    assert kw["mode"] == "animate" and (kw["width"], kw["height"]) == SMALL
    assert kw["segment_frame_length"] == 9  # 8 frames: one segment of the shortest 4k+1 length
    poses = [np.asarray(p) for p in kw["pose_video"]]
    assert len(poses) == 9
    for i, target in enumerate(walk):  # the targets in frame pixels, drawn Wan's way
        assert np.array_equal(poses[i], draw_wan_pose(method.frame_pose(target)))
    assert np.array_equal(poses[8], poses[7])  # the last pose held to fill the segment
    faces = [np.asarray(f) for f in kw["face_video"]]
    size = method.pipe.transformer.config.motion_encoder_size
    assert all(f.shape == (size, size, 3) for f in faces)
    assert all(np.array_equal(f, method.reference_face) for f in faces)  # the photo's own face
    assert method.reference_face.any()
    assert np.array_equal(np.asarray(kw["image"]), method.character)  # the photo at the frame size


def test_driving_faces_replace_the_photos_face(method, walk, calls):
    faces = [np.full((20, 20, 3), 10 * i, np.uint8) for i in range(len(walk))]
    method(walk, faces=faces)
    sent = [np.asarray(f) for f in calls[0]["face_video"]]
    assert [int(f.mean()) for f in sent[:8]] == [10 * i for i in range(8)]


def test_same_seed_same_frames_other_seed_other_frames(tiny_wan, figure, walk, method, one_torch_thread):
    again = method(walk[:4])
    assert all(np.array_equal(a, b) for a, b in zip(method(walk[:4]), again))
    image, pose = figure
    other = WanMethod(image, pose, WanOptions(model=str(tiny_wan), steps=2, device="cpu", character="photo", seed=1),
                      models=method.pipe)
    assert not np.array_equal(other(walk[:4])[0], again[0])


def test_cyclic_clip_is_closed_into_a_loop(method, walk):
    """A loop is the clip generated a quarter cycle further (its first poses again) with the
    first frames cross-faded into those extra ones: frame 0 is the frame that followed frame 7."""
    from posekit.pipeline import clip_keywords

    assert clip_keywords(method, walk, True, "walk", None) == {"loop": True}  # animate tells it which clips loop
    n, k = len(walk), loop_extra(len(walk))
    longer = method(walk + walk[:k], loop=False)  # what the loop generates, frames 8 and 9 repeating poses 0 and 1
    looped = method(walk, loop=True)
    assert len(looped) == n and k == 2
    assert np.array_equal(looped[0], longer[n])  # the last frame leads into the first as into frame n
    assert all(np.array_equal(looped[i], longer[i]) for i in range(k, n))
    half = (0.5 * longer[n + 1].astype(np.float32) + 0.5 * longer[1].astype(np.float32)).round()
    assert np.array_equal(looped[1], half.astype(np.uint8))
    # the seam: last -> first differs from the plain clip's seam, and equals a generated step
    plain = method(walk, loop=False)
    seam = np.abs(looped[-1].astype(int) - looped[0].astype(int)).mean()
    assert seam == np.abs(longer[n - 1].astype(int) - longer[n].astype(int)).mean()
    assert seam != np.abs(plain[-1].astype(int) - plain[0].astype(int)).mean()


def test_long_clips_are_generated_segment_by_segment(tiny_wan, figure, walk, method, calls):
    image, pose = figure
    seg = WanMethod(image, pose, WanOptions(model=str(tiny_wan), steps=1, device="cpu", character="photo",
                                            segment_frames=5, prev_frames=1), models=method.pipe)
    steps = []
    original = seg._progress

    def counting(total):
        steps.append(total)
        return original(total)

    seg._progress = counting
    frames = seg(walk + walk[:3], loop=False)  # 11 frames in segments of 5, each after the last frame of the one before
    assert len(frames) == 11 and frames[0].shape == (64, 48, 3)
    assert calls[0]["segment_frame_length"] == 5 and calls[0]["prev_segment_conditioning_frames"] == 1
    assert len(calls[0]["pose_video"]) == 11  # the pipeline pads the last segment itself
    assert steps == [3]  # ceil((11 - 1) / 4) segments x 1 step


def test_offload_places_the_pipeline_as_asked():
    """--offload group streams the transformer's blocks from the CPU (the VAE and image encoder stay
    on the GPU), model moves whole models; on a CPU any offload is a usage error (it would do nothing)."""
    import torch

    from posekit.errors import UsageError
    from posekit.methods.wan.method import place

    calls = []

    class Part:
        def to(self, device):
            calls.append(("part", str(device)))

    class Pipe:
        vae, image_encoder = Part(), Part()

        def to(self, device):
            calls.append(("to", str(device)))

        def enable_model_cpu_offload(self, device):
            calls.append(("model", str(device)))

        def enable_group_offload(self, **kw):
            calls.append(("group", str(kw["onload_device"]), str(kw["offload_device"]), kw["offload_type"],
                          tuple(kw["exclude_modules"])))

    cuda = torch.device("cuda", 0)
    place(Pipe(), cuda, "group")
    assert calls == [("group", "cuda:0", "cpu", "block_level", ("vae", "image_encoder")),
                     ("part", "cuda:0"), ("part", "cuda:0")]
    calls.clear()
    place(Pipe(), cuda, "model"), place(Pipe(), cuda, "none")
    assert calls == [("model", "cuda:0"), ("to", "cuda:0")]
    for offload in ("model", "group"):
        with pytest.raises(UsageError, match=f"--offload {offload} .*use --offload none"):
            place(Pipe(), torch.device("cpu"), offload)


def test_a_video_without_a_person_leaves_the_photos_face(tmp_path, one_torch_thread):
    """A skeleton video (or one with nobody in it) has no faces: None, so the method keeps the photo's."""
    import imageio.v3 as iio

    from posekit.methods.wan.face import driving_faces
    from posekit.pose.detect import load_detector

    video = tmp_path / "skeleton.mp4"
    frames = np.zeros((3, 64, 64, 3), np.uint8)
    frames[:, 20:40, 30:34] = 255  # a stick, not a person
    iio.imwrite(video, frames, fps=12)
    with load_detector("blazepose", device="cpu") as detector:
        assert driving_faces(video, 3, detector, 32) is None


def test_a_clip_that_does_not_come_back_is_not_looped(method, walk):
    """loop=True or None closes only a clip whose poses return to the first (a file's clip: None)."""
    half = walk[: len(walk) // 2 + 1]  # half a cycle: its last pose is far from its first
    assert all(np.array_equal(a, b) for a, b in zip(method(half, loop=None), method(half, loop=False)))
    assert not all(np.array_equal(a, b) for a, b in zip(method(walk, loop=None), method(walk, loop=False)))


def test_cutout_character_is_the_person_on_white(tiny_wan, figure, method):
    image, pose = figure
    cut = WanMethod(image, pose, WanOptions(model=str(tiny_wan), steps=1, device="cpu"), models=method.pipe)
    assert cut.character.shape == (64, 48, 3)
    corners = cut.character[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == 255).all()  # the background is white
    neck = method.frame_pose(pose)["neck"].astype(int)
    assert np.array_equal(cut.character[neck[1], neck[0]], method.character[neck[1], neck[0]])  # the person kept


# -- the CLI ----------------------------------------------------------------------------------
def test_animate_method_wan_through_the_cli(run_posekit, tmp_path, tiny_wan):
    """A character sheet with --method wan: a looping walk and a one-shot jump, both directions,
    through the installed command; stderr holds only posekit's own lines."""
    from test_quiet_terminal import foreign_lines

    small = tmp_path / "figure_small.png"
    Image.open(FIGURE).resize(SMALL).save(small)
    out = tmp_path / "wan_out"
    proc = run_posekit("animate", small, "--source-pose", FIGURE_POSE, "--poses", "walk,jump", "--frames", "8",
                       "--frames", "5", "--mirror", "--out", out, "--method", "wan", "--model", tiny_wan,
                       "--steps", "1", "--device", "cpu", "--no-evaluate", "--json", "--export", "array",
                       env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    # the wan stage lines are posekit's own ("wan: walk, 8 frames..."; test_quiet_terminal's list predates wan)
    own = re.compile(r"wan: [\w ,:]*\d+ frames\.\.\.")
    assert [line for line in foreign_lines(proc.stderr) if not own.fullmatch(line)] == []
    assert "wan: walk, 8 frames..." in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["method"] == "wan" and summary["frames"] == 2 * (8 + 5)
    assert summary["clips"] == [{"name": "walk_right", "frames": 8, "loop": True},
                                {"name": "walk_left", "frames": 8, "loop": True},
                                {"name": "jump_right", "frames": 5, "loop": False},
                                {"name": "jump_left", "frames": 5, "loop": False}]
    assert len(list((out / "frames").glob("*.png"))) == 26
    tags = json.loads((out / "sheet.json").read_text())["meta"]["frameTags"]
    assert [t["name"] for t in tags] == ["walk_right", "walk_left", "jump_right", "jump_left"]
    assert sorted(p.name for p in (out / "animations").iterdir()) == [
        "jump_left.gif", "jump_right.gif", "walk_left.gif", "walk_right.gif"]
    assert (out / "sheet_array.json").exists()


def test_cli_errors_are_one_line(run_posekit, tmp_path):
    small = tmp_path / "figure_small.png"
    Image.open(FIGURE).resize(SMALL).save(small)
    common = ("animate", small, "--source-pose", FIGURE_POSE, "--poses", "walk", "--method", "wan",
              "--device", "cpu")
    proc = run_posekit(*common, "--out", tmp_path / "a", "--offload", "sequential")
    assert proc.returncode == 2 and "--offload group" in proc.stderr.strip().splitlines()[-1]
    proc = run_posekit(*common, "--out", tmp_path / "b", "--model", "Wan-AI/no-such-model")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "hf download Wan-AI/no-such-model" in last and "Traceback" not in proc.stderr


def test_driving_video_faces_follow_the_driving_person(tmp_path, astronaut, one_torch_thread):
    """A driving video's face video: each frame cropped around the person found in it (the
    astronaut moving right 40 px a frame), resampled as posekit resamples the poses."""
    import imageio.v3 as iio

    from posekit.images import read_video
    from posekit.methods.wan.face import driving_faces
    from posekit.pose.detect import largest, load_detector

    frames = [np.roll(astronaut, 40 * i, axis=1) for i in range(3)]
    video = tmp_path / "driving.mp4"
    iio.imwrite(video, np.stack(frames), fps=12)
    with load_detector("blazepose", device="cpu") as detector:
        crops = driving_faces(video, 6, detector, 32)
        decoded = list(read_video(video))  # the frames as decoded (the codec changes pixels)
        poses = [largest(detector.detect([f])[0]) for f in decoded]
    assert len(crops) == 6 and all(c.shape == (32, 32, 3) for c in crops)
    expected = [face_crop(decoded[i], poses[i], 32) for i in (0, 1, 1, 2, 2, 0)]  # j * 3 / 6, nearer frame
    assert all(np.array_equal(c, e) for c, e in zip(crops, expected))
    boxes = [face_box(p, 512, 512) for p in poses]
    for i, (x0, y0, x1, y1) in enumerate(boxes):  # around the astronaut's face (x 170-270, y 60-180 at first)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert 180 + 40 * i < cx < 260 + 40 * i and 70 < cy < 170, boxes


def test_a_single_pose_is_one_short_segment(method, walk, calls):
    """transfer's case: one target pose, generated as Wan's shortest segment (5 frames, the pose held)."""
    (frame,) = method(walk[3:4])
    assert frame.shape == (64, 48, 3)
    assert calls[0]["segment_frame_length"] == 5 and len(calls[0]["pose_video"]) == 5


def test_out_of_gpu_memory_names_the_offload_flag(method, walk, monkeypatch):
    import torch

    from posekit.errors import PosekitError

    def too_big(self, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(method.pipe), "__call__", too_big)
    with pytest.raises(PosekitError) as e:
        method(walk[:2])
    assert "--offload group" in str(e.value) and "48x64" in str(e.value) and "\n" not in str(e.value)


def test_a_folder_of_another_model_is_refused_before_loading(tmp_path):
    from posekit.errors import ModelNotFoundError
    from posekit.methods.wan.method import check_folder

    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(ModelNotFoundError, match="StableDiffusionPipeline.*hf download Wan-AI/Wan2.2-Animate-14B"):
        check_folder(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no model_index.json"):
        check_folder(str(tmp_path / "empty"))


def test_animate_gives_wan_the_driving_videos_faces(method, walk, monkeypatch):
    """When --poses is a video, the pipeline hands the method that video's face crops (by the
    `faces` keyword its __call__ declares), one per target; a motion name gives none."""
    from posekit.pipeline import clip_keywords, clip_loop

    seen = []

    def faces(video, frames, detector):
        seen.append((str(video), frames, detector))
        return ["face"] * frames

    monkeypatch.setattr(method, "driving_faces", faces)
    detector = object()
    assert clip_loop("dance.MP4") is None  # a file's clip: the poses decide
    assert clip_keywords(method, walk, None, "dance.MP4", detector) == {"loop": None, "faces": ["face"] * len(walk)}
    assert seen == [("dance.MP4", len(walk), detector)]
    assert clip_keywords(method, walk, clip_loop("walk"), "walk", detector) == {"loop": True}
    assert clip_keywords(method, walk, False, "dance.MP4", detector)["loop"] is False  # transfer's stills


def test_transfer_runs_wan_as_animate_does(tiny_wan, tmp_path, monkeypatch, one_torch_thread):
    """transfer gives the method the keywords animate gives it (pipeline.generate_strips): a
    driving video's faces, and loop=False said explicitly (its targets are stills, never a
    cycle), where it used to call method(targets) alone."""
    import imageio.v3 as iio

    from posekit.pipeline import transfer

    seen = []
    original = WanMethod.__call__

    @functools.wraps(original)  # its signature kept: clip_keywords reads the keywords it takes
    def spy(self, targets, **keywords):
        seen.append((len(targets), keywords))
        return original(self, targets, **keywords)

    monkeypatch.setattr(WanMethod, "__call__", spy)
    monkeypatch.setattr(WanMethod, "driving_faces", lambda self, video, frames, detector:
                        [np.full((8, 8, 3), 50 * i, np.uint8) for i in range(frames)])
    video = tmp_path / "dance.mp4"
    figure = np.asarray(Image.open(FIGURE).convert("RGB").resize((192, 256)))
    iio.imwrite(video, np.stack([figure, np.roll(figure, 8, axis=1)]), fps=12)
    small = tmp_path / "figure_small.png"
    Image.open(FIGURE).convert("RGB").resize(SMALL).save(small)
    options = WanOptions(model=str(tiny_wan), steps=1, device="cpu", character="photo")
    summary = transfer(small, [str(video)], tmp_path / "out", method="wan", options=options,
                       source_pose=FIGURE_POSE, device="cpu")
    assert len(summary["files"]) == 2
    ((n, keywords),) = seen
    assert n == 2 and keywords["loop"] is False
    assert [int(f.mean()) for f in keywords["faces"]] == [0, 50]  # the video's faces, one per target
    seen.clear()
    transfer(small, ["walk"], tmp_path / "walk", method="wan", options=options, source_pose=FIGURE_POSE,
             device="cpu")
    assert seen[0][1] == {"loop": False}  # a motion's targets too: stills, no faces


def test_wan_and_animatediff_default_loop_alike():
    """A library call without `loop` decides from the poses in both methods (None)."""
    import inspect

    from posekit.methods.animatediff.method import AnimateDiffMethod

    defaults = [inspect.signature(m.__call__).parameters["loop"].default for m in (WanMethod, AnimateDiffMethod)]
    assert defaults == [None, None]


def test_driving_faces_keep_only_face_regions_and_resample_as_poses(tmp_path, monkeypatch):
    """A driving video is read a frame at a time and only each frame's face region is kept (40
    frames of 600x600: 43 MB whole; the faces are 60x60), and the frame each crop comes from is
    the one posekit.pose.sources.resample takes for the poses (5 frames -> 7: 0,1,1,2,3,4,4)."""
    import tracemalloc

    from posekit.methods.wan import face
    from posekit.pose.sources import resample

    frames, side = 40, 600

    def read_video(path):
        for i in range(frames):
            yield np.full((side, side, 3), i, np.uint8)  # the frame's number in every pixel

    class Detector:
        def detect(self, images):
            return [[pose_of({0: (300, 300), 14: (290, 290), 15: (310, 290)}, side, side)] for _ in images]

    monkeypatch.setattr("posekit.images.read_video", read_video)
    tracemalloc.start()
    crops = face.driving_faces("drive.mp4", 7, Detector(), 16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(crops) == 7 and peak < 5 * side * side * 3, f"{peak / 2**20:.1f} MiB"  # not the 40 frames
    assert [int(c[0, 0, 0]) for c in crops] == [0, 6, 11, 17, 23, 29, 34]  # j * 40 / 7, the nearer frame
    assert face.nearest_frames(5, 7) == [0, 1, 1, 2, 3, 4, 4]
    assert face.nearest_frames(3, 6) == [0, 1, 1, 2, 2, 0]  # cyclic, as resample: the last leads to the first
    # a pose resampled from a clip whose frames each have other points is its nearer frame's
    clip = [pose_of({i % 3: (10 * i + 1, 5)}, 64, 64) for i in range(3)]
    assert [int(p.keypoints[p.visible][0, 0]) // 10 for p in resample(clip, 6)] == face.nearest_frames(3, 6)


def test_prev_frames_with_a_clip_of_one_segment_is_a_warning_and_changes_nothing(tiny_wan, figure, walk, method,
                                                                                  calls, capsys):
    """--prev-frames conditions a segment on the one before; a clip that fits one segment has none
    before it: the same frames (the same call) as with 1, and a warning, once."""
    image, pose = figure
    five = WanMethod(image, pose, WanOptions(model=str(tiny_wan), steps=2, device="cpu", character="photo",
                                             prev_frames=5), models=method.pipe)
    capsys.readouterr()
    assert all(np.array_equal(a, b) for a, b in zip(five(walk[:4], loop=False), method(walk[:4], loop=False)))
    assert calls[0]["segment_frame_length"] == calls[1]["segment_frame_length"] == 5
    assert calls[0]["prev_segment_conditioning_frames"] == 1
    five(walk[:2], loop=False)
    assert capsys.readouterr().err.splitlines() == [
        "posekit: warning: --prev-frames has no effect here: the 4-frame clip fits one segment (--segment-frames 77)"]


def test_an_sd_folder_given_to_wan_points_to_the_sd_methods(tmp_path):
    from posekit.errors import UsageError

    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(UsageError, match="an SD 1.x model is for --method diffusion or animatediff"):
        WanOptions(model=str(tmp_path))


def test_the_benchmarks_full_size_transformer_takes_the_sprite_step_on_meta():
    """The GPU benchmark's Wan-Animate-14B, built from its published config on the meta device
    (shapes, no memory), runs one denoising step of the 16-frame sprite at 480p through
    diffusers' own forward pass: the segment posekit makes of a 16-frame cycle (16 + its loop
    frames, rounded to 4k + 1) at the 480p area. A config or input-shape mistake shows here,
    not in a lent GPU's few minutes. FlopCounterMode counts the step's work for the RESULTS."""
    import sys

    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_wan import FULL_CONFIG, on_meta, step_flops

    frames = wan_length(16 + loop_extra(16))
    width, height = WanMethod.working_size(1664, 960)  # a landscape photo: the 480p area exactly
    assert (frames, width, height) == (21, 832, 480)
    model = on_meta(FULL_CONFIG, torch.bfloat16)
    assert round(sum(p.numel() for p in model.parameters()) / 1e9, 2) == 17.27
    flops, shape = step_flops(model, FULL_CONFIG, frames, width, height, torch.bfloat16)
    assert shape == (1, 16, 1 + (frames - 1) // 4 + 1, height // 8, width // 8)  # reference + segment latents
    # 10,920 tokens (7 latent frames of 30 x 52 patches): the blocks' matmuls (12.0B weights a token)
    # 2 x 12.0e9 x 10,920 = 2.6e14, self-attention 4 x 10,920^2 x 5,120 x 40 layers = 1.0e14
    assert 3.4e14 < flops < 4.2e14


def test_the_benchmarks_whole_pipeline_builds_and_runs_shrunken(one_torch_thread):
    """bench_wan's `full_pipeline` (what `--sprite` times on a GPU) with every config shrunken:
    the same constructors and random-weight fill give a pipeline posekit's WanMethod runs, UMT5's
    token embedding stays tied to its encoder's (as loading the real weights gives: an untied
    copy would add 2 GiB to the full-size figures), and the VAE stays in float32."""
    import sys

    import torch
    from transformers import UMT5Config, UMT5EncoderModel

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_wan import CLIP_VIT_H, FULL_CONFIG, UMT5_XXL, full_pipeline

    text = dict(UMT5_XXL, vocab_size=512, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    image = dict(CLIP_VIT_H, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 projection_dim=16)
    transformer = dict(FULL_CONFIG, num_attention_heads=2, attention_head_dim=8, text_dim=32, image_dim=32, ffn_dim=16,
                       num_layers=2, added_kv_proj_dim=16, freq_dim=32, motion_encoder_size=8, motion_style_dim=8,
                       motion_dim=4, motion_encoder_dim=8, face_encoder_hidden_dim=8, face_encoder_num_heads=2,
                       inject_face_latents_blocks=1, motion_encoder_channel_sizes={"4": 8, "8": 8}, rope_max_seq_len=32)
    vae = dict(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    pipe = full_pipeline(torch.device("cpu"), torch.bfloat16, transformer, text, image, vae)
    encoder = pipe.text_encoder
    assert encoder.shared.weight is encoder.encoder.embed_tokens.weight
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in UMT5EncoderModel(UMT5Config(**text)).parameters())
    assert (pipe.vae.dtype, pipe.transformer.dtype, encoder.dtype) == (torch.float32, torch.bfloat16, torch.bfloat16)
    clip = [pose_of({0: (32, 12), 1: (32, 20), 2: (26, 20), 5: (38, 20), 8: (28, 40), 11: (36, 40)}, 64, 64)] * 5
    photo = np.asarray(Image.open(FIGURE).convert("RGB").resize((64, 64)))
    options = WanOptions(model="(random weights)", device="cpu", character="photo", steps=1)
    frames = WanMethod(photo, clip[0], options, models=pipe)(clip)
    assert len(frames) == 5 and frames[0].shape == (64, 64, 3)

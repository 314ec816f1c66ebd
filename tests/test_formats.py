import json
import re
from pathlib import Path

import numpy as np
import pytest

from posekit.errors import PosekitError
from posekit.pose import INDEX, Pose
from posekit.pose.formats import (BODY25_TO_COCO18, jsonl_record, keypoints_json_name, openpose_dict, read_jsonl,
                                  read_openpose_json, read_patn_annotations, write_openpose_json,
                                  write_patn_annotations)


def person(width=300, height=400, missing=("l_wrist", "r_ear"), seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform([10, 10], [width - 10, height - 10], size=(18, 2)).astype(np.float32)
    for name in missing:
        xy[INDEX[name]] = np.nan
    conf = rng.uniform(0.3, 1.0, 18)
    return Pose.from_xy(xy, width, height, confidence=conf)


def test_openpose_json_round_trip_keeps_people_missing_points_and_canvas(tmp_path):
    poses = [person(seed=1), person(missing=(), seed=2)]
    path = write_openpose_json(poses, tmp_path / keypoints_json_name("photo"))
    assert path.name == "photo_keypoints.json"
    doc = json.loads(path.read_text())
    assert doc["version"] == 1.3 and len(doc["people"]) == 2
    flat = doc["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 54
    assert flat[3 * INDEX["l_wrist"]: 3 * INDEX["l_wrist"] + 3] == [0, 0, 0]
    assert doc["people"][0]["hand_left_keypoints_2d"] == [] and doc["people"][0]["person_id"] == [-1]
    assert (doc["canvas_width"], doc["canvas_height"]) == (300, 400)
    back = read_openpose_json(path)
    assert all(a.allclose(b, atol=1e-3) for a, b in zip(poses, back))
    assert [p.name for p in tmp_path.iterdir()] == ["photo_keypoints.json"]  # no temp files left


def test_empty_people_still_records_the_canvas(tmp_path):
    path = write_openpose_json([], tmp_path / "x_keypoints.json", size=(64, 48))
    doc = json.loads(path.read_text())
    assert doc["people"] == [] and (doc["canvas_width"], doc["canvas_height"]) == (64, 48)
    assert read_openpose_json(path) == []


def test_body25_file_is_read_as_coco18(tmp_path):
    body25 = np.zeros((25, 3), np.float32)
    body25[:, 0] = np.arange(25) * 10 + 5  # x encodes the BODY_25 index
    body25[:, 1] = 50
    body25[:, 2] = 0.9
    body25[10] = 0  # r_knee missing
    path = tmp_path / "frame_keypoints.json"
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}))
    (pose,) = read_openpose_json(path, size=(400, 100))
    assert pose.size == (400, 100)
    assert pose["nose"].tolist() == [5, 50]
    assert pose["r_hip"].tolist() == [95, 50]  # BODY_25 9; 8 (mid-hip) is dropped
    assert pose["l_ear"].tolist() == [185, 50]  # BODY_25 18; the feet 19..24 are dropped
    assert pose["r_knee"] is None
    assert list(BODY25_TO_COCO18) == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]


def test_canvas_from_file_keys_then_image_beside_then_size_then_keypoints(tmp_path):
    from PIL import Image

    pose = person(200, 100, missing=())
    doc = {"people": [{"pose_keypoints_2d": pose.to_openpose()}]}
    path = tmp_path / "shot_keypoints.json"
    path.write_text(json.dumps(doc))
    inferred = read_openpose_json(path)[0]
    xy = inferred.keypoints[:, :2]
    assert inferred.width > xy[:, 0].max() and inferred.height > xy[:, 1].max()
    given = read_openpose_json(path, size=(640, 480))[0]
    assert given.size == (640, 480) and np.array_equal(given.keypoints.ravel(), np.float32(pose.to_openpose()))
    Image.new("RGB", (222, 111)).save(tmp_path / "shot.jpg")  # the image the keypoints were made from
    assert read_openpose_json(path)[0].size == (222, 111)
    assert read_openpose_json(path, size=(640, 480))[0].size == (222, 111)
    path.write_text(json.dumps({**doc, "canvas_width": 512, "canvas_height": 768}))
    assert read_openpose_json(path, size=(640, 480))[0].size == (512, 768)


def test_normalised_coordinates_are_scaled_to_the_canvas(tmp_path):
    pose = person(100, 50, missing=("nose",))
    kp = pose.keypoints.copy()
    kp[:, :2] /= np.float32([100, 50])
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": kp.ravel().tolist()}],
                                "canvas_width": 100, "canvas_height": 50}))
    assert read_openpose_json(path)[0].allclose(pose, atol=1e-3)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}', r"expected 54 \(COCO-18\) or 75 \(BODY_25\)"),
    ('{"animations": []}', "not an OpenPose keypoint file"),
])
def test_bad_openpose_files_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(PosekitError, match=message) as e:
        read_openpose_json(path)
    assert str(path) in str(e.value)
    with pytest.raises(PosekitError, match="no such file"):
        read_openpose_json(tmp_path / "missing.json")


def test_patn_annotation_csv_matches_the_official_layout(tmp_path):
    a, b = person(176, 256, seed=3), person(176, 256, missing=(), seed=4)
    path = write_patn_annotations([("img_a.jpg", a), ("img_b.jpg", b)], tmp_path / "ann.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "name:keypoints_y:keypoints_x"
    # read it the way PATN's data/keypoint.py does: split on ':', each array as JSON
    name, ys, xs = lines[1].split(":")
    ys, xs = json.loads(ys), json.loads(xs)
    assert name == "img_a.jpg" and len(ys) == len(xs) == 18
    assert all(isinstance(v, int) for v in ys + xs)
    i = INDEX["l_wrist"]
    assert ys[i] == xs[i] == -1
    j = INDEX["neck"]
    assert (xs[j], ys[j]) == (round(float(a.keypoints[j, 0])), round(float(a.keypoints[j, 1])))
    back = read_patn_annotations(path, 176, 256)
    assert set(back) == {"img_a.jpg", "img_b.jpg"}
    assert np.array_equal(back["img_a.jpg"].visible, a.visible)
    assert np.abs(back["img_b.jpg"].keypoints[:, :2] - b.keypoints[:, :2]).max() <= 0.5


def test_read_jsonl_gives_poses_and_keeps_failures(tmp_path):
    pose = person(64, 64)
    path = tmp_path / "poses.jsonl"
    path.write_text(
        json.dumps({"path": "a.png", "width": 64, "height": 64, "people": [{"pose_keypoints_2d": pose.to_openpose()}]}) + "\n"
        + json.dumps({"path": "b.png", "width": None, "height": None, "people": [], "error": "b.png: empty file"}) + "\n")
    a, b = read_jsonl(path)
    assert a["path"] == "a.png" and a["poses"][0].allclose(pose, atol=1e-3)
    assert b["poses"] == [] and "error" in b


def test_jsonl_record_of_a_frame_names_the_file_and_the_frame():
    pose = person(64, 64)
    assert list(jsonl_record("clip.mp4", 64, 64, [pose], frame=12)) == ["path", "frame", "width", "height", "people"]
    assert "frame" not in jsonl_record("a.png", 64, 64, [pose])


def test_is_openpose_json_only_for_a_people_list_of_keypoints(tmp_path):
    from posekit.pose.formats import is_openpose_json

    good = tmp_path / "good.json"
    write_openpose_json([person()], good, size=(300, 400))
    assert is_openpose_json(good)
    (tmp_path / "empty_people.json").write_text('{"people": []}')
    assert is_openpose_json(tmp_path / "empty_people.json")  # nobody found: still posekit's kind of file
    for name, text in [("hi.json", "hi"), ("list.json", "[1, 2]"), ("people.json", '{"people": {}}'),
                       ("short.json", '{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}'), ("bin.json", None)]:
        if text is None:
            (tmp_path / name).write_bytes(b"\xff\xfe\x00")
        else:
            (tmp_path / name).write_text(text)
        assert not is_openpose_json(tmp_path / name), name
    assert not is_openpose_json(tmp_path / "missing.json") and not is_openpose_json(tmp_path)


def test_openpose_dict_has_every_person_field():
    doc = openpose_dict([person()])
    assert set(doc["people"][0]) == {"person_id", "pose_keypoints_2d", "face_keypoints_2d",
                                     "hand_left_keypoints_2d", "hand_right_keypoints_2d", "pose_keypoints_3d",
                                     "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d"}


def test_source_pose_on_another_canvas_is_rescaled_or_refused(tmp_path):
    """posekit's keypoint files state their canvas: one for a resized copy of the photo (the same
    aspect, give or take rounding) is scaled to the photo; one of another shape is a usage error
    naming --source-pose and both sizes. A ControlNet preprocessor's copy (sides rounded to
    multiples of 64: 512x704 for 3:4) counts as a resized copy."""
    from posekit.errors import UsageError
    from posekit.pose.sources import source_pose_of

    photo = np.zeros((512, 384, 3), np.uint8)
    full = person(384, 512, missing=())
    for size in [(96, 128), (100, 133), (768, 1024), (512, 704)]:
        path = write_openpose_json([full.resized(*size)], tmp_path / f"p{size[0]}.json")
        pose = source_pose_of(photo, "figure.png", path)
        assert pose.size == (384, 512) and pose.allclose(full, atol=2.0), size
    for size in [(128, 128), (512, 384), (448, 512), (410, 512)]:  # 410x512: 4:5 against 3:4, not rounded to 64
        path = write_openpose_json([person(*size)], tmp_path / f"q{size[0]}x{size[1]}.json")
        with pytest.raises(UsageError) as e:
            source_pose_of(photo, "figure.png", path)
        message = str(e.value)
        assert message.startswith(f"--source-pose {path}: ") and "\n" not in message
        assert f"{size[0]}x{size[1]}" in message and "384x512" in message and "figure.png" in message
    path = write_openpose_json([person(384, 512)], tmp_path / "same.json")
    assert source_pose_of(photo, "figure.png", path).allclose(read_openpose_json(path)[0])


def test_animate_refuses_a_source_pose_of_another_shape(run_posekit, tmp_path):
    from posekit.pose.motions import motion

    path = write_openpose_json([motion("wave", 1, 128, 128)[0]], tmp_path / "wave_keypoints.json")
    figure = Path(__file__).resolve().parents[1] / "examples" / "figure.png"
    proc = run_posekit("animate", figure, "--poses", "walk", "--frames", "2", "--source-pose", path,
                       "--out", tmp_path / "out", "--no-evaluate")
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("posekit: error: --source-pose ") and "128x128" in last and "384x512" in last
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def _file_with(tmp_path, name, flat, canvas=(48, 64)):
    doc = {"people": [{"pose_keypoints_2d": flat}]}
    if canvas:
        doc["canvas_width"], doc["canvas_height"] = canvas
    path = tmp_path / name
    path.write_text(json.dumps(doc))  # NaN and Infinity as json.dumps writes them (and OpenPose editors)
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e300, 1e8])
def test_non_finite_or_absurdly_far_keypoints_are_missing(tmp_path, bad):
    """A point at NaN, Infinity, 1e300 (past float32) or millions of canvases away is missing: not
    (0, 0) with its confidence kept, not float32's max, not a canvas inferred around it."""
    good = person(48, 64, missing=(), seed=3)
    for canvas in ((48, 64), None):
        flat = good.to_openpose()
        flat[3 * INDEX["neck"]] = bad  # x
        flat[3 * INDEX["r_hip"] + 1] = bad  # y
        far = bad == 1e8  # a finite confidence, however large, is a present point
        flat[3 * INDEX["l_hip"] + (0 if far else 2)] = bad  # confidence
        pose = read_openpose_json(_file_with(tmp_path, "p.json", flat, canvas))[0]
        assert pose["neck"] is None and pose["r_hip"] is None and pose["l_hip"] is None, (bad, canvas)
        assert len(pose) == 15 and np.isfinite(pose.keypoints).all()
        if canvas is None:  # inferred from the other points: about the figure's size
            assert pose.width < 100 and pose.height < 130, pose.size
        assert np.allclose(pose.keypoints[pose.visible], good.keypoints[pose.visible], atol=1e-2)


@pytest.mark.parametrize("width,height", [(0, 0), (-48, 64), ("48", "64"), (None, None), (48.5, 64), (True, 64),
                                          (float("inf"), 64), (10 ** 12, 10 ** 12)])
def test_a_jsonl_line_with_a_bad_canvas_names_the_file_and_line(tmp_path, width, height):
    good = jsonl_record("a.png", 48, 64, [person(48, 64, seed=4)])
    bad = {**good, "width": width, "height": height}
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(PosekitError, match=rf"^{re.escape(str(path))}:2: width .*: the canvas must be whole pixels"):
        read_jsonl(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps({**bad, "people": []}) + "\n")  # nobody: no canvas needed
    assert len(read_jsonl(path)) == 2


@pytest.mark.parametrize("width,height", [(float("inf"), 512), (1e12, 1e12)])
def test_an_openpose_json_with_an_impossible_canvas_is_one_line(tmp_path, width, height):
    """canvas_width Infinity gave an OverflowError traceback, 1e12 "array is too big" (poses show)."""
    path = tmp_path / "p_keypoints.json"
    path.write_text(json.dumps({**openpose_dict([person(48, 64, seed=6)]), "canvas_width": width,
                                "canvas_height": height}))
    with pytest.raises(PosekitError, match=rf"^{re.escape(str(path))}: canvas_width .*: not an image's size"):
        read_openpose_json(path)


def test_cli_a_jsonl_line_with_width_0_is_one_line_exit_1(run_posekit, tmp_path):
    path = tmp_path / "zero.jsonl"
    path.write_text(json.dumps(jsonl_record("a.png", 0, 0, [person(48, 64, seed=5)])) + "\n")
    for args in (("poses", "show", path, "--out", tmp_path / "o"),
                 ("animate", Path(__file__).resolve().parents[1] / "examples" / "figure.png", "--poses", path,
                  "--frames", "2", "--out", tmp_path / "a", "--no-evaluate")):
        r = run_posekit(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and lines[-1].startswith(f"posekit: error: {path}:1: width 0, height 0"), r.stderr
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize("orientation,size", [(1, (512, 384)), (6, (384, 512)), (8, (384, 512)), (3, (512, 384))])
def test_canvas_of_an_exif_rotated_photo_beside_the_file_is_its_upright_size(tmp_path, orientation, size):
    """A phone photo stored 512x384 with EXIF orientation 6 is 384x512 upright (as load_image and
    OpenPose's imread read it): the keypoints beside it are on that canvas."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (512, 384), (90, 90, 90)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    flat = person(384, 384, seed=6).to_openpose()
    (tmp_path / "phone_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    assert read_openpose_json(tmp_path / "phone_keypoints.json")[0].size == size

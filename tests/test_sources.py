"""Pose sources (motions, OpenPose JSON, skeleton images, photos, videos, JSON lines),
cyclic resampling, the subject's pose, and the `posekit poses` command."""

import json
from pathlib import Path

import numpy as np
import pytest

from posekit.errors import PosekitError, UsageError
from posekit.images import save_image
from posekit.pose import INDEX, Pose
from posekit.pose.detect import Detector
from posekit.pose.formats import jsonl_record, read_openpose_json, write_openpose_json
from posekit.pose.motions import motion
from posekit.pose.render import draw_skeleton
from posekit.pose.sources import load_poses, resample, source_pose_of


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def stack(clip):
    return np.stack([p.keypoints for p in clip])


def test_motion_names_views_and_sizes():
    clip = load_poses("walk", frames=6, size=(320, 240))
    assert len(clip) == 6 and clip[0].size == (320, 240)
    assert stack(clip).tolist() == stack(motion("walk", 6, 320, 240)).tolist()
    side = load_poses("walk:side", frames=6)
    assert stack(side).tolist() == stack(motion("walk", 6, view="side")).tolist()
    assert len(load_poses("idle")) == 16
    with pytest.raises(UsageError, match="view"):
        load_poses("walk:upside-down")
    with pytest.raises(PosekitError, match="walk, run"):
        load_poses("moonwalk")


def test_openpose_json_folder_round_trip_in_natural_order(tmp_path):
    clip = motion("run", 10, 256, 256)
    for i, pose in enumerate(clip):  # f_2 must come before f_10
        write_openpose_json([pose], tmp_path / f"f_{i}_keypoints.json")
    (tmp_path / "notes.txt").write_text("not a pose")
    (tmp_path / "sheet.json").write_text('{"frames": {}, "meta": {}}')  # an animate folder's sprite sheet data
    back = load_poses(str(tmp_path))
    assert len(back) == 10 and back[0].size == (256, 256)
    assert np.allclose(stack(back), stack(clip), atol=1e-2)
    single = load_poses(str(tmp_path / "f_3_keypoints.json"))
    assert len(single) == 1 and single[0].allclose(clip[3], atol=1e-2)


def test_skeleton_image_folder_round_trip(tmp_path):
    clip = motion("walk", 4, 384, 384, view="front")
    for i, pose in enumerate(clip):
        save_image(draw_skeleton(pose), tmp_path / f"frame_{i:03d}_pose.png")
    back = load_poses(str(tmp_path))
    assert len(back) == 4
    for got, want in zip(back, clip):
        assert got.visible.sum() >= 16
        both = got.visible & want.visible
        assert np.abs(got.keypoints[both, :2] - want.keypoints[both, :2]).max() < 3.0


def test_skeleton_video_and_body25_file(tmp_path):
    import imageio.v3 as iio

    clip = motion("wave", 4, 256, 256)
    iio.imwrite(tmp_path / "skeletons.mp4", np.stack([draw_skeleton(p) for p in clip]), fps=8, codec="libx264")
    back = load_poses(str(tmp_path / "skeletons.mp4"))
    assert len(back) == 4
    for got, want in zip(back, clip):
        both = got.visible & want.visible
        assert both.sum() >= 14 and np.abs(got.keypoints[both, :2] - want.keypoints[both, :2]).max() < 4.0
    # BODY_25 (OpenPose's default model): mid-hip and feet dropped, the rest mapped to COCO-18
    body25 = np.zeros((25, 3), np.float32)
    coco = clip[0].keypoints
    body25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]] = coco
    body25[8] = (coco[8] + coco[11]) / 2
    (tmp_path / "b25").mkdir()
    (tmp_path / "b25" / "f_keypoints.json").write_text(json.dumps(
        {"version": 1.3, "canvas_width": 256, "canvas_height": 256,
         "people": [{"pose_keypoints_2d": body25.reshape(-1).tolist()}]}))
    assert load_poses(str(tmp_path / "b25"))[0].allclose(clip[0], atol=1e-3)


def test_jsonl_from_extract_pose_skips_failed_and_empty_lines(tmp_path):
    clip = motion("jump", 5, 200, 300)
    lines = [jsonl_record(f"img{i}.png", 200, 300, [p]) for i, p in enumerate(clip)]
    lines.insert(2, jsonl_record("broken.png", None, None, [], error="not an image"))
    lines.insert(3, jsonl_record("nobody.png", 200, 300, []))
    path = tmp_path / "poses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    back = load_poses(str(path))
    assert len(back) == 5 and np.allclose(stack(back), stack(clip), atol=1e-2)


def test_jsonl_lines_with_an_error_are_skipped_with_a_warning_naming_them(tmp_path, capsys):
    """As lines where nobody was found: a warning naming the skipped lines, never silence."""
    clip = motion("jump", 3, 200, 300)
    lines = [jsonl_record("img0.png", 200, 300, [clip[0]]),
             jsonl_record("broken.png", None, None, [], error="broken.png: not an image file"),
             {**jsonl_record("clip.gif", 200, 300, [clip[1]]), "frame": 0},
             {**jsonl_record("clip.gif", None, None, [], error="clip.gif: corrupt"), "frame": 1},
             jsonl_record("img2.png", 200, 300, [clip[2]])]
    path = tmp_path / "poses.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    capsys.readouterr()
    back = load_poses(str(path))
    assert len(back) == 3 and np.allclose(stack(back), stack(clip), atol=1e-2)
    assert capsys.readouterr().err.splitlines() == [
        f"posekit: warning: {path}: 2 of 5 lines record an input that could not be read (line 2: broken.png, "
        "line 4: clip.gif frame 1); skipped them"]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines if r.get("error")))
    with pytest.raises(PosekitError, match=r": every line records an input that could not be read \(line 1: broken.png"):
        load_poses(str(path))


def test_jsonl_frames_of_a_video_read_back_by_path_and_frame(tmp_path):
    """extract-pose --jsonl names a frame by its video's path and "frame" (an older posekit wrote
    "clip.mp4#12" as the path): both read back, in order."""
    from posekit.pose.formats import read_jsonl

    clip = motion("walk", 3, 200, 300)
    path = tmp_path / "poses.jsonl"
    path.write_text("".join(json.dumps(jsonl_record("clip.gif", 200, 300, [p], frame=i)) + "\n" for i, p in enumerate(clip))
                    + json.dumps(jsonl_record("old.gif#0", 200, 300, [clip[0]])) + "\n")
    records = read_jsonl(path)
    assert [(r["path"], r.get("frame"), r["line"]) for r in records] == [
        ("clip.gif", 0, 1), ("clip.gif", 1, 2), ("clip.gif", 2, 3), ("old.gif#0", None, 4)]
    assert np.allclose(stack(load_poses(str(path))), stack(clip + clip[:1]), atol=1e-2)


def test_a_pipe_or_device_as_pose_source_is_a_usage_error_before_reading(tmp_path):
    import os

    fifo = tmp_path / "poses.fifo"
    os.mkfifo(fifo)  # nothing writes to it: reading it would hang
    for source in (str(fifo), "/dev/null"):
        with pytest.raises(UsageError, match=r": not a regular file \(a pipe or device such as /dev/stdin\); save"):
            load_poses(source)


def test_the_natural_order_of_poses_folders_is_that_of_extract_pose():
    from posekit import images
    from posekit.pose import sources

    assert sources.natural_key is images.natural_key


def test_resample_is_cyclic_and_keeps_missing_points_missing():
    clip = motion("walk", 12)
    assert np.allclose(stack(resample(clip, 24))[::2], stack(clip), atol=1e-4)
    four = [Pose(p.keypoints, 512, 512) for p in clip[::3]]
    kp = four[3].keypoints.copy()
    kp[INDEX["r_wrist"]] = 0.0
    four[3] = Pose(kp, 512, 512)
    eight = resample(four, 8)
    # the last new frame lies halfway between the last old frame and the first (a loop)
    assert np.allclose(eight[7]["neck"], (four[3]["neck"] + four[0]["neck"]) / 2, atol=1e-3)
    assert eight[6]["r_wrist"] is None  # that frame *is* old frame 3, where the wrist is missing
    assert eight[7]["r_wrist"] is not None  # nearer old frame 0 (a tie goes forward), which has it
    assert eight[5]["r_wrist"] is None  # halfway between old frames 2 and 3: the tie goes to 3
    assert eight[4]["r_wrist"] is not None
    assert len(resample(clip, 5)) == 5
    with pytest.raises(UsageError):
        resample(clip, 0)


def test_photo_and_video_sources_detect_the_person(tmp_path, astronaut):
    import imageio.v3 as iio

    # three video frames of the astronaut sliding right by 16 px per frame
    frames = np.stack([np.roll(astronaut, 16 * i, axis=1) for i in range(3)])
    video = tmp_path / "clip.mp4"
    iio.imwrite(video, frames, fps=8, codec="libx264")
    clip = load_poses(str(video))
    assert len(clip) == 3 and clip[0].size == (512, 512)
    necks = np.array([p["neck"] for p in clip])
    assert np.allclose(np.diff(necks[:, 0]), 16, atol=6)
    photo = tmp_path / "astronaut.png"
    save_image(astronaut, photo)
    assert np.allclose(load_poses(str(photo))[0]["neck"], necks[0], atol=6)


def test_pose_files_without_a_canvas_keep_their_pixels_on_the_photo(tmp_path):
    """Standard OpenPose JSON states no canvas: its keypoints are pixels of the photo they go with,
    kept exactly (not re-fitted from a canvas guessed from their extent); a stated canvas is fitted."""
    from conftest import REPO
    from posekit.pipeline import animate

    pose = motion("jump", 1, 300, 400)[0].translate(30, 40)  # an extent no guess reproduces
    (tmp_path / "plain").mkdir()
    for name in ("plain/f_0.json", "plain.json"):
        (tmp_path / name).write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": pose.to_openpose()}]}))
    exact = np.float32(pose.to_openpose()).reshape(18, 3)
    for source in ("plain", "plain.json"):
        (got,) = load_poses(str(tmp_path / source), canvas=(384, 512))
        assert got.size == (384, 512) and np.array_equal(got.keypoints, exact)
        assert load_poses(str(tmp_path / source))[0].size != (384, 512)  # no photo: inferred
    write_openpose_json([pose], tmp_path / "stated.json")  # canvas 300x400: fitted by the caller
    assert load_poses(str(tmp_path / "stated.json"), canvas=(384, 512))[0].size == (300, 400)

    summary = animate(REPO / "examples" / "figure.png", str(tmp_path / "plain"), tmp_path / "out",
                      retarget=False, evaluate=False, formats=())
    written = read_openpose_json(tmp_path / "out" / "poses" / "frame_000_keypoints.json")[0]
    assert summary["size"] == [384, 512] and np.allclose(written.keypoints, exact, atol=1e-3)


def test_source_pose_from_json_or_detection(tmp_path, astronaut):
    half = Pose(motion("idle", 1)[0].keypoints * np.float32([0.5, 0.5, 1.0]), 256, 256)
    write_openpose_json([half], tmp_path / "src.json")
    pose = source_pose_of(astronaut, "astronaut.png", tmp_path / "src.json")
    assert pose.size == (512, 512)  # a JSON for the half-size photo is scaled to the photo
    assert pose.allclose(motion("idle", 1)[0], atol=0.05)
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(PosekitError, match="--source-pose"):
        source_pose_of(blank, "blank.png")
    write_openpose_json([], tmp_path / "empty.json", size=(512, 512))
    with pytest.raises(PosekitError, match="no person"):
        source_pose_of(astronaut, "astronaut.png", tmp_path / "empty.json")


def test_the_largest_of_two_people_is_animated_with_a_warning(capsys):
    """BlazePose asked for one person gives its most confident one; the person to animate is the
    largest, and a second one of similar size is worth a warning."""
    from PIL import Image
    from skimage import data

    figure = Image.open(EXAMPLES / "figure.png").convert("RGB")  # 384x512, the person about 380 px tall
    small = figure.resize((307, 409))
    scene = Image.fromarray(data.rocket()).resize((900, 560))  # a real photo as the room
    scene.paste(small, (40, 141))  # the smaller person on the left (BlazePose's most confident one)
    scene.paste(figure, (480, 40))
    pose = source_pose_of(np.asarray(scene), "two.png")
    x0, y0, x1, y1 = pose.bbox()
    assert x0 > 480 and y1 - y0 > 300  # the larger figure's pose
    assert capsys.readouterr().err.startswith("posekit: warning: two.png: 2 people in the photo; animating the largest")
    # one person (and one much smaller in the background: not a second subject): no warning
    scene.paste(Image.fromarray(data.rocket()).resize((400, 560)), (40, 0))
    scene.paste(figure.resize((96, 128)), (60, 40))
    assert source_pose_of(np.asarray(scene), "one.png").bbox()[0] > 480
    assert "warning" not in capsys.readouterr().err


def test_cli_poses_list(run_posekit):
    r = run_posekit("poses", "list")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert {"walk", "run", "jump", "idle", "wave"} <= set(names)
    r = run_posekit("poses", "list", "--json")
    motions = json.loads(r.stdout)  # one JSON document, not JSON lines
    assert [m["name"] for m in motions] == names and all(m["frames"] > 0 for m in motions)


def test_cli_poses_show_writes_frames_and_reads_them_back(run_posekit, tmp_path):
    out = tmp_path / "walk"
    r = run_posekit("poses", "show", "walk", "--frames", "6", "--size", "320x240", "--out", out, "--gif")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "6 frames" in r.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("."))[:2] == [
        "frame_000_keypoints.json", "frame_000_pose.png"]
    from PIL import Image

    with Image.open(out / "preview.gif") as im:
        assert im.n_frames == 6 and im.size == (320, 240) and im.info["loop"] == 0  # a cycle loops
    jump = tmp_path / "jump"
    assert run_posekit("poses", "show", "jump", "--frames", "4", "--out", jump, "--gif").returncode == 0
    with Image.open(jump / "preview.gif") as im:  # a one-shot plays once
        assert im.n_frames == 4 and "loop" not in im.info
    assert len(list(out.glob("*_pose.png"))) == 6 and len(list(out.glob("*_keypoints.json"))) == 6
    saved = read_openpose_json(out / "frame_004_keypoints.json")[0]
    assert saved.allclose(motion("walk", 6, 320, 240)[4], atol=1e-2)
    # the written folder is itself a source; --jsonl prints one object per frame
    r = run_posekit("poses", "show", out, "--frames", "3", "--jsonl")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["frame"] for rec in records] == [0, 1, 2] and records[0]["width"] == 320
    # retargeted onto a photo: the photo's canvas, no legs for a head-and-shoulders photo
    photo = tmp_path / "astronaut.png"
    from skimage import data

    save_image(data.astronaut(), photo)
    r = run_posekit("poses", "show", "wave", "--onto", photo, "--frames", "4", "--jsonl")
    assert r.returncode == 0, r.stderr
    people = [json.loads(line)["people"][0]["pose_keypoints_2d"] for line in r.stdout.splitlines()]
    assert len(people) == 4 and all(p[3 * INDEX["r_ankle"] + 2] == 0 for p in people)
    assert "warning" not in r.stderr  # a wave moves no legs
    # a walk does: the user is told that the frames will have none
    r = run_posekit("poses", "show", "walk", "--onto", photo, "--frames", "4", "--jsonl")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 4
    assert r.stderr.splitlines()[0] == ("posekit: warning: walk moves the legs, which the photo does not show: "
                                        "they are left out of every frame (a photo of the whole body animates fully)")


@pytest.mark.parametrize("args, code, words", [
    (["show", "moonwalk", "--out", "x"], 1, "moonwalk"),
    (["show", "walk"], 2, "--out"),
    (["show", "walk", "--size", "big", "--out", "x"], 2, "--size"),
    (["show", "walk", "--view", "sideways", "--out", "x"], 2, "--view"),
    (["show", "walk:side", "--view", "front", "--out", "x"], 2, "walk:side names a view already"),
])
def test_cli_poses_show_errors_are_one_line(run_posekit, tmp_path, args, code, words):
    r = run_posekit("poses", *args, cwd=tmp_path)
    assert r.returncode == code
    assert words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


class Recording(Detector):
    """A stand-in photo detector: the idle pose for every image; counts images, records closing."""

    def __init__(self):
        self.images, self.closed = 0, False

    def detect(self, images):
        self.images += len(images)
        return [[motion("idle", 1, image.shape[1], image.shape[0])[0]] for image in images]

    def close(self):
        self.closed = True


def test_the_runs_detector_finds_people_in_photos_only_and_stays_open(tmp_path, astronaut, monkeypatch):
    import imageio.v3 as iio

    import posekit.pose.detect.blazepose as blazepose

    def no_blazepose(*args, **kwargs):
        raise AssertionError("a detector was given: none may be built")

    monkeypatch.setattr(blazepose, "BlazePoseDetector", no_blazepose)
    detector = Recording()
    (tmp_path / "mixed").mkdir()
    save_image(astronaut, tmp_path / "mixed" / "a_photo.png")
    save_image(draw_skeleton(motion("walk", 1, 256, 256)[0]), tmp_path / "mixed" / "b_skeleton.png")
    photo, skeleton = load_poses(str(tmp_path / "mixed"), detector=detector)
    assert detector.images == 1 and photo.size == (512, 512) and skeleton.size == (256, 256)
    small = np.ascontiguousarray(astronaut[::4, ::4])
    iio.imwrite(tmp_path / "clip.mp4", np.stack([small] * 3), fps=8, codec="libx264")
    assert len(load_poses(str(tmp_path / "clip.mp4"), detector=detector)) == 3 and detector.images == 4
    assert source_pose_of(astronaut, "astronaut.png", detector=detector).size == (512, 512)
    assert len(load_poses("walk", frames=4, detector=detector)) == 4
    assert detector.images == 5 and not detector.closed
    # without one, nothing is built for sources that need no detector (skeletons, motions)
    (tmp_path / "skeletons").mkdir()
    save_image(draw_skeleton(motion("walk", 1, 256, 256)[0]), tmp_path / "skeletons" / "f.png")
    assert len(load_poses(str(tmp_path / "skeletons"))) == 1 and len(load_poses("run")) > 0


def test_cli_poses_show_replaces_only_its_own_last_run(run_posekit, tmp_path):
    """As animate's --out: a re-run replaces what the last run wrote and removes its frames
    beyond the new count (and a preview not asked for again); a file posekit did not write stops
    the run before any work, one line naming it, the folder untouched."""
    out = tmp_path / "walk"
    r = run_posekit("poses", "show", "walk", "--frames", "6", "--out", out, "--gif")
    assert r.returncode == 0, r.stderr
    r = run_posekit("poses", "show", "walk", "--frames", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        f"frame_{i:03d}_{kind}" for i in range(3) for kind in ("keypoints.json", "pose.png")]
    r = run_posekit("poses", "show", out, "--jsonl")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "frame_000_keypoints.json").write_text("mine\n")
    for source in (("walk", "--frames", "2"), (out,)):  # a count known before any work, and one known only once read
        r = run_posekit("poses", "show", *source, "--out", mine)
        assert r.returncode == 1 and "frame_000_keypoints.json" in r.stderr and "did not write" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert [p.name for p in mine.iterdir()] == ["frame_000_keypoints.json"]
        assert (mine / "frame_000_keypoints.json").read_text() == "mine\n"
    (mine / "frame_000_keypoints.json").rename(mine / "frame_009_pose.png")  # a name the 3 frames do not write
    r = run_posekit("poses", "show", out, "--out", mine)
    assert r.returncode == 0, r.stderr
    assert (mine / "frame_009_pose.png").read_text() == "mine\n" and (mine / "frame_002_pose.png").is_file()
    # reading a folder and writing into it would replace what it reads
    r = run_posekit("poses", "show", out, "--frames", "2", "--out", out)
    assert r.returncode == 2 and "--out" in r.stderr and "input folder" in r.stderr
    assert len(list(out.glob("*_pose.png"))) == 3


def test_cli_poses_show_says_when_frame_sizes_vary(run_posekit, tmp_path):
    """extract-pose on images of several sizes: each frame keeps its image's canvas and the summary
    says so (not the first frame's size as everyone's); --size fits them onto one canvas."""
    big, small = motion("walk", 2, 3000, 4000), motion("walk", 1, 20, 20)
    lines = [jsonl_record(f"f{i}.png", p.width, p.height, [p]) for i, p in enumerate([*big, *small])]
    jsonl = tmp_path / "ep.jsonl"
    jsonl.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    r = run_posekit("poses", "show", jsonl, "--out", tmp_path / "o", "--gif")
    assert r.returncode == 0, r.stderr
    assert "3 frames, sizes vary: 3000x4000 (2 frames), 20x20 (1)" in r.stderr and "--size" in r.stderr
    assert [read_openpose_json(tmp_path / "o" / f"frame_{i:03d}_keypoints.json")[0].size for i in range(3)] == [
        (3000, 4000), (3000, 4000), (20, 20)]
    from PIL import Image

    with Image.open(tmp_path / "o" / "preview.gif") as im:  # one canvas: the first frame's
        assert im.size == (3000, 4000) and im.n_frames == 3
    r = run_posekit("poses", "show", jsonl, "--size", "256x256", "--jsonl")
    assert r.returncode == 0 and "3 frames, 256x256" in r.stderr and "vary" not in r.stderr
    assert {(json.loads(line)["width"], json.loads(line)["height"]) for line in r.stdout.splitlines()} == {(256, 256)}


def test_cli_poses_show_onto_errors_name_onto(run_posekit, tmp_path):
    """--onto, not animate's --source-pose (poses show has none), in every error about the subject."""
    r = run_posekit("poses", "show", "walk", "--onto", tmp_path / "missing.png", "--jsonl")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"posekit: error: --onto {tmp_path / 'missing.png'}: no such file; pass a photo of the person (or an "
        "OpenPose JSON of them)"]
    empty = tmp_path / "wall.png"
    save_image(np.full((256, 256, 3), 128, np.uint8), empty)  # nobody in it
    r = run_posekit("poses", "show", "walk", "--onto", empty, "--jsonl")
    assert r.returncode == 1 and "no person found" in r.stderr and "pass --onto with an OpenPose JSON" in r.stderr
    assert "--source-pose" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    feet = motion("idle", 1, 256, 256)[0]
    kp = feet.keypoints.copy()
    kp[[i for i in range(18) if i not in (INDEX["r_ankle"], INDEX["l_ankle"], INDEX["r_knee"], INDEX["l_knee"])]] = 0
    write_openpose_json([Pose(kp, 256, 256)], tmp_path / "feet_keypoints.json")  # no neck, no shoulders
    r = run_posekit("poses", "show", "walk", "--onto", tmp_path / "feet_keypoints.json", "--jsonl")
    assert r.returncode == 1 and "--onto" in r.stderr and "--source-pose" not in r.stderr, r.stderr
    # animate and transfer keep their own flag in the hint
    with pytest.raises(PosekitError, match="pass --source-pose with an OpenPose JSON"):
        source_pose_of(np.full((256, 256, 3), 128, np.uint8), "wall.png")


class _People(Detector):
    """A detector that finds the given people (largest first) in every image."""

    def __init__(self, people):
        self.people = people

    def detect(self, images):
        return [list(self.people) for _ in images]


def test_pose_files_whose_keypoints_lie_outside_their_canvas_are_warned_of(tmp_path, capsys):
    """Coordinates negated or scaled a thousandfold (a wrong canvas, a converter's bug) are used as
    they are, but a warning names the file and the frames."""
    clip = motion("walk", 3, 48, 64)
    folder = tmp_path / "neg"
    folder.mkdir()
    for i, p in enumerate(clip):
        kp = p.keypoints.copy()
        if i == 1:
            kp[:, :2] *= -1
        write_openpose_json([Pose(kp, 48, 64)], folder / f"f_{i:03d}_keypoints.json")
    assert len(load_poses(str(folder))) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"posekit: warning: {folder}: most keypoints lie outside the 48x64 canvas in 1 of 3 frames "
                          "(f_001_keypoints.json)"), err
    load_poses(str(tmp_path / "neg" / "f_000_keypoints.json"))  # on its canvas: nothing to say
    assert capsys.readouterr().err == ""


def test_a_photo_of_two_people_as_target_is_warned_of_with_the_path_as_given(tmp_path, capsys):
    """As for the source photo: the path as given (not only its name), in both warnings."""
    from posekit.pose.detect.skeleton import is_skeleton_image

    photo = tmp_path / "sub" / "two.png"
    photo.parent.mkdir()
    image = np.zeros((300, 400, 3), np.uint8)
    image[::7] = 200  # a photo, not a skeleton image
    assert not is_skeleton_image(image)
    save_image(image, photo)
    big, other = motion("idle", 1, 400, 300)[0], motion("idle", 1, 400, 300)[0].scale(0.8, about=(200, 300))
    pose = load_poses(str(photo), detector=_People([big, other]))[0]
    assert pose.allclose(big)
    assert capsys.readouterr().err.startswith(f"posekit: warning: {photo}: 2 people in the photo; using the largest")
    source_pose_of(image, photo, detector=_People([big, other]))
    assert capsys.readouterr().err.startswith(f"posekit: warning: {photo}: 2 people in the photo; animating the largest")
    load_poses(str(photo), detector=_People([big]))
    assert capsys.readouterr().err == ""
    # a folder of such photos: one line for all of them, not one per photo
    for i in range(4):
        save_image(image, photo.parent / f"two_{i}.png")
    photo.unlink()
    assert len(load_poses(str(photo.parent), detector=_People([big, other]))) == 4
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("posekit: warning: 4 of 4 images show more than one person ("), lines


def test_a_missing_or_empty_source_pose_file_is_a_usage_error_naming_the_flag(tmp_path, astronaut):
    (tmp_path / "empty.json").write_text("")
    write_openpose_json([], tmp_path / "nobody.json", size=(512, 512))
    for name, words in (("missing.json", "no such file"), ("empty.json", "not valid JSON"),
                        ("nobody.json", "no person")):
        with pytest.raises(UsageError, match=rf"^--source-pose {tmp_path / name}: {words}"):
            source_pose_of(astronaut, "astronaut.png", tmp_path / name)


def test_nobody_in_a_batch_photo_says_what_a_batch_can_do():
    """A batch takes no --source-pose: its message for the photo says to leave it out of the batch
    or animate it alone with the flag."""
    from posekit.errors import NoPersonError

    with pytest.raises(NoPersonError) as e:
        source_pose_of(np.full((200, 200, 3), 128, np.uint8), "batch/blank.png", detector=_People([]))
    assert "pass --source-pose" in str(e.value)
    assert e.value.in_batch.startswith("batch/blank.png: no person found in the photo; leave it out of the batch, "
                                       "or animate it alone with --source-pose")

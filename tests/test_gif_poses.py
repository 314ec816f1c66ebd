"""Animated GIFs: their timing follows --fps, and one given as a pose source or to extract-pose is
a video (one pose per frame), while a single-frame GIF stays an image."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posekit.images import is_video, iter_inputs, read_video
from posekit.pose.motions import motion
from posekit.pose.render import draw_skeleton
from posekit.pose.sources import load_poses
from posekit.sheet.animation import gif_durations, write_animation, write_gif

REPO = Path(__file__).resolve().parents[1]
FIGURE = REPO / "examples" / "figure.png"


def gif_durations_read_back(path) -> list[int]:
    with Image.open(path) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    return durations


def distinct_frames(n, size=(24, 16), alpha=False):
    rng = np.random.default_rng(n)
    return [rng.integers(0, 255, (*size, 4 if alpha else 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("fps", [12, 30, 7, 24, 40, 0.5, 12.5])
@pytest.mark.parametrize("alpha", [False, True])
def test_gif_frame_times_add_up_to_the_fps(tmp_path, fps, alpha):
    n = 12
    write_gif(distinct_frames(n, alpha=alpha), tmp_path / "a.gif", fps=fps)
    durations = gif_durations_read_back(tmp_path / "a.gif")
    assert len(durations) == n
    assert abs(sum(durations) - round(n * 100 / fps) * 10) <= 10  # the loop lasts n / fps
    assert all(abs(d - 1000 / fps) <= 10 for d in durations)  # no frame visibly off
    assert all(d % 10 == 0 and d >= 20 for d in durations)  # whole centiseconds, never browser-slowed
    starts = np.cumsum([0] + durations[:-1])
    assert np.abs(starts - np.arange(n) * 1000 / fps).max() <= 5  # each frame starts on time


def test_gif_frame_times_at_12_fps_and_above_50():
    assert gif_durations(6, 12) == [80, 90, 80, 80, 90, 80]
    assert gif_durations(4, 100) == [20] * 4  # a GIF plays at most 50 fps: 20 ms, not 10
    assert gif_durations(4, 50) == [20] * 4


def test_identical_frames_stay_frames_of_their_own(tmp_path):
    """Pillow would merge identical consecutive frames (their times added); posekit keeps one GIF
    frame per frame, so the GIF matches the sheet frame for frame, at the same times."""
    a, b = distinct_frames(2)
    write_animation([a, a, b, b, b, a], tmp_path / "m.gif", fps=12)
    durations = gif_durations_read_back(tmp_path / "m.gif")
    assert durations == [80, 90, 80, 80, 90, 80]  # the loop lasts 6/12 s


def skeleton_gif(path, n=6, fps=12):
    """A GIF of rendered walk skeletons (as `poses show --gif` writes), and the poses drawn."""
    poses = motion("walk", n, 256, 256)
    write_gif([draw_skeleton(p) for p in poses], path, fps=fps)
    return poses


def test_an_animated_gif_is_a_video_and_a_single_frame_gif_an_image(tmp_path):
    poses = skeleton_gif(tmp_path / "walk.gif")
    Image.fromarray(draw_skeleton(poses[0])).save(tmp_path / "one.gif")
    assert is_video(tmp_path / "walk.gif") and not is_video(tmp_path / "one.gif")
    frames = list(read_video(tmp_path / "walk.gif"))
    assert len(frames) == 6 and frames[0].shape == (256, 256, 3)
    assert not np.array_equal(frames[0], frames[3])  # whole frames, not the first one repeated
    items = list(iter_inputs([tmp_path / "walk.gif", tmp_path / "one.gif"]))
    assert [i.name for i in items] == [f"{tmp_path / 'walk.gif'}#{k}" for k in range(6)] + [str(tmp_path / "one.gif")]
    assert len({i.stem for i in items}) == 7


def test_a_broken_gif_is_a_one_line_error(tmp_path):
    from posekit.errors import PosekitError

    skeleton_gif(tmp_path / "walk.gif")
    data = (tmp_path / "walk.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(PosekitError) as e:
        load_poses(str(tmp_path / "cut.gif"))
    assert str(e.value).startswith(f"{tmp_path / 'cut.gif'}: ") and "\n" not in str(e.value)


def test_an_animated_gif_as_poses_gives_one_pose_per_frame(tmp_path):
    drawn = skeleton_gif(tmp_path / "walk.gif")
    clip = load_poses(str(tmp_path / "walk.gif"))
    assert len(clip) == len(drawn)
    for got, want in zip(clip, drawn):  # the skeletons parsed back, frame by frame
        assert got.size == (256, 256) and got.allclose(want, atol=3.0)
    assert len(load_poses(str(tmp_path / "walk.gif"), frames=4)) == 4  # resampled as a video is
    Image.fromarray(draw_skeleton(drawn[2])).save(tmp_path / "one.gif")
    one = load_poses(str(tmp_path / "one.gif"))
    assert len(one) == 1 and one[0].allclose(drawn[2], atol=3.0)


def test_animate_with_gif_poses_through_the_cli(run_posekit, tmp_path):
    skeleton_gif(tmp_path / "walk.gif", n=5)
    proc = run_posekit("animate", FIGURE, "--poses", tmp_path / "walk.gif", "--out", tmp_path / "out",
                       "--no-evaluate", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 5
    assert gif_durations_read_back(tmp_path / "out" / "animation.gif") == gif_durations(5, 12)


def test_extract_pose_reads_every_frame_of_an_animated_gif(run_posekit, tmp_path):
    photo = np.asarray(Image.open(FIGURE).convert("RGB"))
    frames = [np.roll(photo, 12 * k, axis=1) for k in range(3)]  # the figure moving right
    write_gif(frames, tmp_path / "clip.gif", fps=10)
    Image.fromarray(photo).save(tmp_path / "still.gif")
    proc = run_posekit("extract-pose", tmp_path / "clip.gif", tmp_path / "still.gif", "--jsonl")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    # a frame: the real file as "path" and its index as "frame" (as poses show --jsonl); a still image: no "frame"
    assert [(r["path"], r.get("frame")) for r in records] == [(str(tmp_path / "clip.gif"), k) for k in range(3)] + [
        (str(tmp_path / "still.gif"), None)]
    assert all("frame" not in r for r in records[3:])
    jsonl = tmp_path / "poses.jsonl"  # read back as a pose source: every frame, in order
    jsonl.write_text(proc.stdout)
    assert len(load_poses(str(jsonl))) == 4
    assert all(r["people"] for r in records)
    necks = [r["people"][0]["pose_keypoints_2d"][3] for r in records[:3]]
    assert necks[0] < necks[1] < necks[2]  # each frame's own pose, not the first frame's

"""The animate pipeline's small pieces (no subprocess)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posekit.checks import parse_size
from posekit.errors import UsageError
from posekit.pipeline import clip_name, letterbox
from posekit.pose.pose import Pose


def test_letterbox_matches_pose_fitted():
    """A frame letterboxed to a size and its pose fitted to that size stay in register."""
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 150:160] = 255  # a white mark at (155, 50)
    pose = Pose.from_xy(np.tile([155.0, 50.0], (18, 1)), 200, 100)
    boxed = letterbox(frame, 64, 64)
    fitted = pose.fitted(64, 64)
    assert boxed.shape == (64, 64, 3)
    x, y = np.round(fitted.keypoints[0, :2]).astype(int)
    assert boxed[y, x].min() > 200
    rgba = letterbox(np.dstack([frame, np.full((100, 200), 255, np.uint8)]), 64, 64)
    assert rgba[0, 0, 3] == 0 and rgba[32, 32, 3] == 255


def test_in_frame_drops_points_off_the_canvas():
    xy = np.tile([10.0, 10.0], (18, 1))
    xy[3] = (-5, 10)
    xy[4] = (10, 120)
    kept = Pose.from_xy(xy, 100, 100).in_frame()
    assert len(kept) == 16 and not kept.visible[3] and not kept.visible[4]


def test_parse_size_and_clip_names(tmp_path):
    assert parse_size("128x96") == (128, 96) and parse_size(None) is None
    for bad in ("128", "0x10", "axb"):
        with pytest.raises(UsageError, match="--size"):
            parse_size(bad)
    assert clip_name("walk") == "walk"
    (tmp_path / "dance").mkdir()
    assert clip_name(str(tmp_path / "dance") + "/") == "dance"
    assert clip_name("moves.jsonl") == "moves"


def test_a_shorter_rerun_leaves_no_frames_of_the_longer_one(tmp_path):
    from posekit.pipeline import write_outputs

    pose = Pose.empty(16, 16)
    for n in (5, 2):
        write_outputs(tmp_path, [np.zeros((16, 16, 3), np.uint8)] * n, [pose] * n, fps=12, columns=None, tag="t")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000.png", "frame_001.png"]
    assert len(list((tmp_path / "poses").glob("frame_*"))) == 4


def snapshot(out):
    return {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def previous_run(out):
    """An out folder holding a longer run with a WebP, and files of the user's."""
    for name in ("frames", "poses"):
        (out / name).mkdir(parents=True)
        for i in range(5):
            (out / name / f"frame_{i:03d}.png").write_bytes(b"old")
    for name in ("sheet.png", "sheet.json", "animation.gif", "animation.webp"):
        (out / name).write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    (out / "frames" / "reference.jpg").write_text("mine too")
    return snapshot(out)


def test_a_rerun_replaces_only_the_outputs_of_the_last(tmp_path):
    from posekit.pipeline import write_outputs

    before = previous_run(tmp_path)
    pose = Pose.empty(16, 16)
    write_outputs(tmp_path, [np.zeros((16, 16, 3), np.uint8)] * 2, [pose] * 2, fps=12, columns=None, tag="t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animation.gif", "frames", "notes.txt", "poses",
                                                          "sheet.json", "sheet.png"]  # no webp, no staging left
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000.png", "frame_001.png", "reference.jpg"]
    assert sorted(p.name for p in (tmp_path / "poses").iterdir()) == [
        "frame_000_keypoints.json", "frame_000_pose.png", "frame_001_keypoints.json", "frame_001_pose.png"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "frames" / "reference.jpg").read_text() == "mine too"
    assert (tmp_path / "sheet.png").read_bytes() != before[Path("sheet.png")]  # this run's


def test_a_failure_while_writing_leaves_the_previous_result(tmp_path, monkeypatch):
    import posekit.sheet
    from posekit.pipeline import write_outputs

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the GIF is being written, after frames and sheet

    monkeypatch.setattr(posekit.sheet, "write_animation", broken)
    pose = Pose.empty(16, 16)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 2
    before = previous_run(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        write_outputs(tmp_path / "out", frames, [pose] * 2, fps=12, columns=None, tag="t")
    assert snapshot(tmp_path / "out") == before and not list((tmp_path / "out").glob(".*"))
    # into a folder that did not exist: nothing is left at all
    with pytest.raises(KeyboardInterrupt):
        write_outputs(tmp_path / "new", frames, [pose] * 2, fps=12, columns=None, tag="t")
    assert not (tmp_path / "new").exists()

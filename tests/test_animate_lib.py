"""The animate pipeline's small pieces (no subprocess)."""

from __future__ import annotations

import numpy as np
import pytest

from posekit.animate import clip_name, in_frame, letterbox, parse_size
from posekit.methods import method_options
from posekit.errors import UsageError
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
    kept = in_frame(Pose.from_xy(xy, 100, 100))
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


def test_method_options_pick_each_methods_flags():
    flags = dict(background="#ffffff", seed=3, device="cpu", steps=4, checkpoint="run", sheet=True, columns=2)
    assert method_options("warp", flags) == {"background": "#ffffff", "seed": 3}
    assert method_options("gan", flags) == {"checkpoint": "run", "device": "cpu"}
    assert method_options("diffusion", flags) == {"seed": 3, "device": "cpu", "steps": 4, "sheet": True, "columns": 2}


def test_a_shorter_rerun_leaves_no_frames_of_the_longer_one(tmp_path):
    from posekit.animate import write_outputs

    pose = Pose.empty(16, 16)
    for n in (5, 2):
        write_outputs(tmp_path, [np.zeros((16, 16, 3), np.uint8)] * n, [pose] * n, fps=12, columns=None, tag="t")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000.png", "frame_001.png"]
    assert len(list((tmp_path / "poses").glob("frame_*"))) == 4

"""The animate pipeline's small pieces (no subprocess)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from posekit.checks import parse_size
from conftest import REPO
from posekit.errors import PosekitError, UsageError
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
    """An out folder holding a longer run with a WebP (and the manifest of what it wrote), and
    files of the user's, one of them named like a frame."""
    from posekit.pipeline import MANIFEST

    written = [f"{name}/frame_{i:03d}.png" for name in ("frames", "poses") for i in range(5)]
    written += ["sheet.png", "sheet.json", "animation.gif", "animation.webp"]
    for name in written:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(b"old")
    (out / MANIFEST).write_text(json.dumps({"files": written}))
    (out / "notes.txt").write_text("mine")
    (out / "frames" / "reference.jpg").write_text("mine too")
    (out / "frames" / "frame_0001.png").write_text("mine, from ffmpeg")
    return snapshot(out)


def test_a_rerun_replaces_only_the_outputs_of_the_last(tmp_path):
    from posekit.pipeline import write_outputs

    before = previous_run(tmp_path)
    pose = Pose.empty(16, 16)
    write_outputs(tmp_path, [np.zeros((16, 16, 3), np.uint8)] * 2, [pose] * 2, fps=12, columns=None, tag="t")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".posekit-outputs.json", "animation.gif", "frames", "notes.txt",
                                                          "poses", "sheet.json", "sheet.png"]  # no webp, no staging left
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_000.png", "frame_0001.png", "frame_001.png",
                                                                       "reference.jpg"]
    assert sorted(p.name for p in (tmp_path / "poses").iterdir()) == [
        "frame_000_keypoints.json", "frame_000_pose.png", "frame_001_keypoints.json", "frame_001_pose.png"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "frames" / "reference.jpg").read_text() == "mine too"
    assert (tmp_path / "frames" / "frame_0001.png").read_text() == "mine, from ffmpeg"  # not in the manifest
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
    assert snapshot(tmp_path / "out") == before and not list((tmp_path / "out").glob(".posekit-*/"))
    # into a folder that did not exist: nothing is left at all
    with pytest.raises(KeyboardInterrupt):
        write_outputs(tmp_path / "new", frames, [pose] * 2, fps=12, columns=None, tag="t")
    assert not (tmp_path / "new").exists()


def test_runs_writing_into_one_out_take_turns(tmp_path):
    """A second run that reaches its writing while the first is still moving its files in waits
    for it, instead of deleting the first one's staging folder as if it were stale."""
    import threading

    from posekit.pipeline import MANIFEST, staged_outputs, write_outputs

    out = tmp_path / "out"
    entered, release, second_done = threading.Event(), threading.Event(), threading.Event()
    staged = []

    def first():
        with staged_outputs(out) as stage:
            (stage / "first.txt").write_text("first")
            staged.append(stage)
            entered.set()
            release.wait(30)

    def second():
        write_outputs(out, [np.zeros((16, 16, 3), np.uint8)] * 2, [Pose.empty(16, 16)] * 2, fps=12, columns=None,
                      tag="t")
        second_done.set()

    a = threading.Thread(target=first)
    a.start()
    assert entered.wait(30)
    b = threading.Thread(target=second)
    b.start()
    assert not second_done.wait(1.0)  # it waits for the first run
    assert (staged[0] / "first.txt").exists()  # whose staging folder is untouched
    release.set()
    a.join(30)
    b.join(30)
    assert second_done.is_set()
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert "first.txt" not in files and "sheet.png" in files  # the last run's manifest, whole
    assert not (out / "first.txt").exists()  # the first run's output, replaced by the second's
    assert (out / "sheet.png").exists() and not list(out.glob(".posekit-*/"))


def test_clip_sources_frame_counts_and_tag_names():
    from posekit.pipeline import clip_sources, export_formats, frame_counts, is_looping, tag_names

    assert clip_sources(["idle,walk", " run ", "jump"]) == ["idle", "walk", "run", "jump"]
    assert clip_sources("walk") == ["walk"]
    with pytest.raises(UsageError, match="--poses"):
        clip_sources([","])
    assert frame_counts(None, 3) == [None] * 3 and frame_counts(8, 2) == [8, 8] and frame_counts([8], 2) == [8, 8]
    assert frame_counts([4, 6], 2) == [4, 6]
    for bad in ([4, 6], [0]):
        with pytest.raises(UsageError, match="--frames"):
            frame_counts(bad, 3)
    assert tag_names(["walk", "walk:side", "walk", "moves.jsonl"]) == ["walk", "walk_side", "walk_2", "moves"]
    assert export_formats(["godot,ATLAS", "godot"]) == ("godot", "atlas")
    with pytest.raises(UsageError, match="--export 'unity'"):
        export_formats(["unity"])
    assert not is_looping("jump") and not is_looping("jump:side") and is_looping("walk")


def test_an_output_is_never_written_over_an_input_or_a_folder(tmp_path, run_posekit):
    from posekit.pipeline import write_outputs

    photo = tmp_path / "me.png"
    shutil.copy(REPO / "examples" / "figure.png", photo)
    before = photo.read_bytes()
    proc = run_posekit("transfer", photo, "--pose", "walk", "--out", photo)
    assert proc.returncode == 2 and "--out" in proc.stderr and "input" in proc.stderr and photo.read_bytes() == before
    (tmp_path / "set").mkdir()
    shutil.copy(photo, tmp_path / "set" / "000.png")
    proc = run_posekit("transfer", tmp_path / "set" / "000.png", "--pose", "walk", "--out", tmp_path / "set")
    assert proc.returncode == 2 and "would write over the input" in proc.stderr
    # a folder where an output file goes: one line, and nothing of the new run is moved in
    out = tmp_path / "run"
    (out / "sheet.png").mkdir(parents=True)
    with pytest.raises(PosekitError, match=r"sheet.png is in the way"):
        write_outputs(out, [np.zeros((16, 16, 3), np.uint8)], [Pose.empty(16, 16)], fps=12, columns=None, tag="t")
    assert sorted(p.name for p in out.iterdir()) == ["sheet.png"]


def test_a_rerun_into_a_relative_out_removes_the_last_runs_extra_frames(tmp_path, monkeypatch):
    from posekit.pipeline import write_outputs

    monkeypatch.chdir(tmp_path)
    pose, frame = Pose.empty(16, 16), np.zeros((16, 16, 3), np.uint8)
    write_outputs(Path("rel"), [frame] * 4, [pose] * 4, fps=12, columns=None, tag="t", formats=("gif", "webp"))
    write_outputs(Path("rel"), [frame] * 2, [pose] * 2, fps=12, columns=None, tag="t")
    assert sorted(p.name for p in (tmp_path / "rel" / "frames").iterdir()) == ["frame_000.png", "frame_001.png"]
    assert not (tmp_path / "rel" / "animation.webp").exists()

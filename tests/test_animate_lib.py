"""The animate pipeline's small pieces (no subprocess)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posekit.checks import parse_size
from conftest import REPO
from posekit.errors import PosekitError, UsageError
from posekit.pipeline import clip_name, letterbox
from posekit.pose.pose import Pose
from posekit.sheet import Strip


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
    from posekit.pipeline import write_strips

    pose = Pose.empty(16, 16)
    for n in (5, 2):
        write_strips(tmp_path, [Strip("t", [np.zeros((16, 16, 3), np.uint8)] * n, [pose] * n)], fps=12, columns=None)
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
    from posekit.pipeline import write_strips

    before = previous_run(tmp_path)
    pose = Pose.empty(16, 16)
    write_strips(tmp_path, [Strip("t", [np.zeros((16, 16, 3), np.uint8)] * 2, [pose] * 2)], fps=12, columns=None)
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
    from posekit.pipeline import write_strips

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the GIF is being written, after frames and sheet

    monkeypatch.setattr(posekit.sheet, "write_animation", broken)
    pose = Pose.empty(16, 16)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 2
    before = previous_run(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        write_strips(tmp_path / "out", [Strip("t", frames, [pose] * 2)], fps=12, columns=None)
    assert snapshot(tmp_path / "out") == before and not list((tmp_path / "out").glob(".posekit-*/"))
    # into a folder that did not exist: nothing is left at all
    with pytest.raises(KeyboardInterrupt):
        write_strips(tmp_path / "new", [Strip("t", frames, [pose] * 2)], fps=12, columns=None)
    assert not (tmp_path / "new").exists()


def test_runs_writing_into_one_out_take_turns(tmp_path):
    """A second run that reaches its writing while the first is still moving its files in waits
    for it, instead of deleting the first one's staging folder as if it were stale."""
    import threading

    from posekit.pipeline import MANIFEST, staged_outputs, write_strips

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
        write_strips(out, [Strip("t", [np.zeros((16, 16, 3), np.uint8)] * 2, [Pose.empty(16, 16)] * 2)], fps=12,
                     columns=None)
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
    from posekit.pipeline import write_strips

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
        write_strips(out, [Strip("t", [np.zeros((16, 16, 3), np.uint8)], [Pose.empty(16, 16)])], fps=12, columns=None)
    assert sorted(p.name for p in out.iterdir()) == ["sheet.png"]


def test_a_rerun_into_a_relative_out_removes_the_last_runs_extra_frames(tmp_path, monkeypatch):
    from posekit.pipeline import write_strips

    monkeypatch.chdir(tmp_path)
    pose, frame = Pose.empty(16, 16), np.zeros((16, 16, 3), np.uint8)
    write_strips(Path("rel"), [Strip("t", [frame] * 4, [pose] * 4)], fps=12, columns=None, formats=("gif", "webp"))
    write_strips(Path("rel"), [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)
    assert sorted(p.name for p in (tmp_path / "rel" / "frames").iterdir()) == ["frame_000.png", "frame_001.png"]
    assert not (tmp_path / "rel" / "animation.webp").exists()


def no_detection(monkeypatch):
    """Make building a person detector fail the test: what runs before it must not need one."""
    import posekit.pose.detect

    def refuse(*args, **kwargs):
        raise AssertionError("a detector was built: the check came after the work")

    monkeypatch.setattr(posekit.pose.detect, "load_detector", refuse)


def test_an_input_where_an_output_goes_is_a_usage_error_before_any_work(tmp_path, monkeypatch):
    from posekit.pipeline import animate, check_inputs_apart

    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "poses").mkdir()
    for name in ("sheet.png", "frames/frame_000.png", "animation.webp", "sheet.tres", "poses/frame_000_pose.png"):
        shutil.copy(REPO / "examples" / "figure.png", out / name)
    outside = tmp_path / "me.png"
    shutil.copy(REPO / "examples" / "figure.png", outside)
    check_inputs_apart([out], [outside, None, tmp_path / "missing.png", tmp_path])  # nothing where outputs go
    for given in ("sheet.png", "frames/frame_000.png", "animation.webp", "sheet.tres", "poses", "frames", "."):
        with pytest.raises(UsageError, match=rf"--out {out}: would write (over the input|into the input folder) "):
            check_inputs_apart([tmp_path / "other", out], [outside, out / given])
    # through a link to the folder, and for a batch (OUT/<stem>/)
    (tmp_path / "link").symlink_to(out)
    with pytest.raises(UsageError, match="would write over the input"):
        check_inputs_apart([tmp_path / "link"], [out / "sheet.png"])
    (tmp_path / "sheet" / "frames").mkdir(parents=True)
    shutil.copy(outside, tmp_path / "sheet" / "frames" / "x.png")
    with pytest.raises(UsageError, match="would write over the input"):
        check_inputs_apart([tmp_path / "me", tmp_path / "sheet"], [tmp_path / "sheet" / "frames" / "x.png"])

    no_detection(monkeypatch)
    before = snapshot(out)
    for photo, keywords in ((out / "sheet.png", {}), (outside, {"source_pose": out / "frames" / "frame_000.png"}),
                            (outside, {"poses": ["walk", str(out / "poses")]})):
        with pytest.raises(UsageError, match="--out"):
            animate(photo, keywords.pop("poses", "walk"), out, frames=2, evaluate=False, **keywords)
    assert snapshot(out) == before


def test_a_file_posekit_did_not_write_is_never_replaced(tmp_path, monkeypatch):
    from posekit.pipeline import MANIFEST, animate, write_strips

    frame, pose = np.zeros((16, 16, 3), np.uint8), Pose.empty(16, 16)
    for mine in ("sheet.png", "animation.gif", "frames/frame_001.png", "poses/frame_000_keypoints.json"):
        out = tmp_path / mine.replace("/", "_")
        (out / mine).parent.mkdir(parents=True, exist_ok=True)
        (out / mine).write_text("mine")
        before = snapshot(out)
        refused = rf"{out / mine} exists and posekit did not write it.*choose another --out"
        with pytest.raises(PosekitError, match=refused):
            write_strips(out, [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)
        assert snapshot(out) == before  # nothing moved in, not even the files that were free
        # the same before any work, for the names known then
        no_detection(monkeypatch)
        with pytest.raises(PosekitError, match="posekit did not write it"):
            animate(REPO / "examples" / "figure.png", "walk", out, frames=2, evaluate=False)
        monkeypatch.undo()
        assert snapshot(out) == before

    # posekit's own outputs (listed in the manifest) are replaced; the same files unlisted (the
    # manifest lost, or an older posekit's folder) are not, and the error says whose they look like
    out = tmp_path / "ours"
    write_strips(out, [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)
    write_strips(out, [Strip("t", [frame + 1] * 2, [pose] * 2)], fps=12, columns=None)
    assert np.asarray(Image.open(out / "frames" / "frame_000.png")).max() == 1
    (out / MANIFEST).unlink()
    with pytest.raises(PosekitError, match="written by an older posekit"):
        write_strips(out, [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)
    assert np.asarray(Image.open(out / "frames" / "frame_000.png")).max() == 1


def test_output_names_are_the_files_written(tmp_path):
    """The names checked before any work are the ones write_strips writes (a character: several
    tags, digits by the count; one clip: frame_NNN, animation.<fmt>)."""
    from posekit.pipeline import manifest_files, output_names, write_strips
    from posekit.sheet import Strip

    frame, pose = np.zeros((16, 16, 3), np.uint8), Pose.empty(16, 16)
    character = [Strip("walk", [frame] * 3, [pose] * 3), Strip("idle", [frame] * 11, [pose] * 11)]
    for strips, formats, exports in ((character, ("gif", "webp"), ("godot", "atlas")),
                                     ([Strip("walk", [frame] * 2, [pose] * 2)], ("gif",), ())):
        out = tmp_path / str(len(strips))
        write_strips(out, strips, fps=12, columns=None, formats=formats, exports=exports)
        assert sorted(manifest_files(out)) == sorted(output_names([(s.name, len(s.frames)) for s in strips],
                                                                  formats, exports))
    assert output_names([("a", None)], ("gif",)) == ["sheet.png", "sheet.json", "animation.gif"]


def test_comma_separated_formats_and_motions_checked_before_any_work(tmp_path, monkeypatch):
    from posekit.pipeline import animate, animation_formats, check_poses

    assert animation_formats(["webp,MP4", "gif", ".webp"]) == ("webp", "mp4", "gif")
    assert animation_formats("gif, webp") == ("gif", "webp")
    with pytest.raises(UsageError, match="--format 'avi'"):
        animation_formats(["webp,avi"])
    (tmp_path / "moves.jsonl").write_text("")
    shutil.copy(REPO / "examples" / "figure.png", tmp_path / "frame_000.png")  # a folder with a pose source
    assert check_poses(["walk", "walk:side", "run:-45", str(tmp_path / "moves.jsonl"), str(tmp_path)])
    with pytest.raises(UsageError, match=r"--poses \S+empty: no OpenPose .json files or images in this folder"):
        (tmp_path / "empty").mkdir()
        check_poses([str(tmp_path / "empty")])
    with pytest.raises(UsageError, match=r"--poses 'walkk': .*did you mean 'walk'\? motions: walk, run, jump"):
        check_poses(["idle", "walkk"])
    with pytest.raises(UsageError, match=r"--poses 'walk:sidee': view 'sidee'"):
        check_poses(["walk:sidee"])
    with pytest.raises(UsageError, match=r"--poses '\S+nothing.json': not a built-in motion nor an existing file"):
        check_poses([str(tmp_path / "nothing.json")])
    no_detection(monkeypatch)
    with pytest.raises(UsageError, match="--poses 'walkk'"):
        animate(REPO / "examples" / "figure.png", "idle,walkk", tmp_path / "out", evaluate=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs, missing", [
    ({"pixel_art": 16}, "add --background transparent"),  # the library's default warp options: a background
    ({}, "add --pixel-art N and --background transparent"),
])
def test_the_library_refuses_an_outline_it_cannot_draw(tmp_path, kwargs, missing):
    """animate(..., outline=True) with a background has no edge to draw an outline around: the
    library refuses it as the CLI does (pipeline.check_pixel_art, the one check), before any
    work (here the photo does not even exist)."""
    from posekit.pipeline import animate

    with pytest.raises(UsageError, match=f"^--outline .*{missing} "):
        animate(tmp_path / "none.png", "idle", tmp_path / "out", outline=True, **kwargs)
    assert not (tmp_path / "out").exists()

"""Inputs a new user stumbles on: broken videos, a closed stdout, --out among the inputs."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, posekit_exe

EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory):
    """An empty .mp4, one of random bytes, and a real video cut in half."""
    import imageio.v3 as iio

    folder = tmp_path_factory.mktemp("videos")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    iio.imwrite(folder / "real.mp4", np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), np.uint8), fps=4)
    data = (folder / "real.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    return folder


def test_broken_videos_are_one_line_in_extract_pose(run_posekit, bad_videos):
    names = ["empty.mp4", "noise.mp4", "cut.mp4"]
    r = run_posekit("extract-pose", *names, "--jsonl", cwd=bad_videos)
    assert r.returncode == 1
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["error"] for rec in records] == [
        "empty.mp4: empty file",
        "noise.mp4: not a readable video (corrupt, truncated or an unknown codec)",
        "cut.mp4: not a readable video (corrupt, truncated or an unknown codec)"]
    assert r.stderr.splitlines() == [f"posekit: error: {rec['error']}" for rec in records] + ["0 of 3 inputs processed"]


@pytest.mark.parametrize("name, says", [("empty.mp4", "empty file"), ("cut.mp4", "not a readable video")])
def test_broken_video_as_a_pose_source_is_one_line(run_posekit, bad_videos, tmp_path, name, says):
    for args in (["poses", "show", name, "--out", tmp_path / "show"],
                 ["animate", EXAMPLES / "figure.png", "--source-pose", EXAMPLES / "figure_keypoints.json",
                  "--poses", name, "--out", tmp_path / "anim"]):
        r = run_posekit(*args, cwd=bad_videos)
        assert r.returncode == 1
        assert r.stderr.splitlines()[-1].startswith(f"posekit: error: {name}: {says}")
        assert "ffmpeg" not in r.stderr and "Traceback" not in r.stderr
        assert len([line for line in r.stderr.splitlines() if not line.endswith("...")]) == 1  # stage lines, one error


def test_closed_stdout_ends_quietly(tmp_path):
    for i in range(24):  # three detector batches: the reader is gone long before the last
        shutil.copy(EXAMPLES / "figure.png", tmp_path / f"figure{i:02d}.png")
    proc = subprocess.Popen([posekit_exe(), "extract-pose", tmp_path, "--jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(20) == b'{"path":"' + str(tmp_path).encode()[:11]
    proc.stdout.close()  # as `| head -c 20` does
    assert proc.wait(timeout=600) == 1
    assert proc.stderr.read() == b""


def test_out_among_the_inputs_never_clobbers_and_reruns_skip_own_outputs(run_posekit, tmp_path):
    ex = tmp_path / "examples"
    shutil.copytree(EXAMPLES, ex)
    hand_made = (ex / "figure_keypoints.json").read_bytes()
    shutil.copy(ex / "figure.png", ex / "copy.png")
    shutil.copy(ex / "figure.png", ex / "copy_pose.png")  # a photo whose name is copy.png's skeleton
    (ex / "._figure.png").write_bytes(b"macOS resource fork")  # hidden: never an input

    for run in range(2):
        r = run_posekit("extract-pose", ex, "--out", ex, "--jsonl")
        assert r.returncode == 1, r.stderr
        records = {rec["path"]: rec for rec in map(json.loads, r.stdout.splitlines())}
        # the second run does not read astronaut_pose.png or copy_pose_pose.png (written by the first)
        assert sorted(records) == [str(ex / n) for n in ("astronaut.png", "copy.png", "copy_pose.png", "figure.png")]
        assert records[str(ex / "figure.png")]["error"] == (
            f"{ex}/figure_keypoints.json: exists and posekit did not write it; "
            "not replacing it (move it or pass another --out folder)")
        assert records[str(ex / "copy.png")]["error"] == (
            f"{ex}/copy_pose.png: is an input; not writing over it (pass another --out folder)")
        assert "error" not in records[str(ex / "astronaut.png")] and "error" not in records[str(ex / "copy_pose.png")]
        assert (ex / "figure_keypoints.json").read_bytes() == hand_made
        assert (ex / "copy_pose.png").read_bytes() == (ex / "figure.png").read_bytes()
        assert (ex / "astronaut_pose.png").exists() and (ex / "copy_pose_pose.png").exists()
        assert not (ex / "figure_pose.png").exists() and not (ex / "astronaut_pose_pose.png").exists()


def test_closed_stdout_with_out_still_writes_every_input(tmp_path):
    """`--jsonl --out DIR | head -1`: printing stops with the reader, the files do not."""
    photos, out = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    for i in range(20):  # three detector batches: the reader is gone long before the last
        shutil.copy(EXAMPLES / "figure.png", photos / f"figure{i:02d}.png")
    proc = subprocess.Popen([posekit_exe(), "extract-pose", photos, "--jsonl", "--out", out],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b'{"path":"' + str(photos).encode())
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=600) == 0  # as if stdout had stayed: every input done
    assert proc.stderr.read().decode().splitlines() == [f"20 of 20 inputs processed; poses in {out}"]
    assert sorted(p.name for p in out.glob("*_keypoints.json")) == [f"figure{i:02d}_keypoints.json" for i in range(20)]
    assert len(list(out.glob("*_pose.png"))) == 20


def test_nul_separated_paths_on_stdin(run_posekit, tmp_path):
    """find -print0 | posekit extract-pose -: split on NUL (names may hold a newline)."""
    odd = tmp_path / "two\nlines.png"
    shutil.copy(EXAMPLES / "figure.png", odd)
    names = [str(EXAMPLES / "astronaut.png"), str(odd)]
    r = run_posekit("extract-pose", "-", "--jsonl", input="\0".join(names) + "\0")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["path"] for line in r.stdout.splitlines()] == names
    r = run_posekit("extract-pose", "-", "--jsonl", input=f"{EXAMPLES / 'figure.png'}\n\n")  # one a line, as before
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1


def test_an_image_over_pillows_limit_fails_alone(run_posekit, tmp_path):
    """A 15000 x 15000 PNG (225 megapixels): one line naming it, its size and what to do; the
    other inputs are still read."""
    from test_images import _header_only_png

    bomb = _header_only_png(tmp_path / "bomb.png", 15000, 15000)
    r = run_posekit("extract-pose", bomb, EXAMPLES / "figure.png", "--jsonl")
    assert r.returncode == 1
    first, second = map(json.loads, r.stdout.splitlines())
    assert first["error"].startswith(f"{bomb}: 225 megapixels") and "downscale" in first["error"]
    assert len(second["people"]) == 1
    assert r.stderr.splitlines() == [f"posekit: error: {first['error']}", "1 of 2 inputs processed"]


def test_a_tiny_photo_is_one_error_and_a_small_person_one_warning(run_posekit, tmp_path):
    """A 20x27 photo: one line naming it and saying it is too small (was: "no person found");
    the person only ~47 px tall (a 48x64 photo): one warning naming the photo, the run goes on
    (was: silent blurry frames)."""
    from PIL import Image

    figure = Image.open(REPO / "examples" / "figure.png")
    figure.resize((20, 27)).save(tmp_path / "tiny.png")
    figure.resize((48, 64)).save(tmp_path / "small.png")
    proc = run_posekit("animate", tmp_path / "tiny.png", "--poses", "walk", "--frames", "2", "--no-evaluate",
                       "--out", tmp_path / "a")
    lines = [l for l in proc.stderr.splitlines() if not l.endswith("...")]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "tiny.png" in lines[0] and "too small" in lines[0] and "20x27" in lines[0]
    proc = run_posekit("animate", tmp_path / "small.png", "--poses", "walk", "--frames", "2", "--no-evaluate",
                       "--out", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    warnings = [l for l in proc.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1 and "small.png" in warnings[0] and "px tall" in warnings[0], proc.stderr


def test_only_nobody_found_in_a_tiny_photo_is_called_too_small(tmp_path):
    """The "too small" line replaces the detector's "no person found" only: any other error on a
    tiny photo (a broken detector model) is said as it is."""
    from PIL import Image

    from posekit.errors import PosekitError
    from posekit.pipeline import Timer, prepare_source

    Image.open(REPO / "examples" / "figure.png").resize((40, 54)).save(tmp_path / "tiny.png")

    class Detector:
        def __init__(self, error=None):
            self.error = error

        def detect(self, images):
            if self.error:
                raise self.error
            return [[] for _ in images]

    with pytest.raises(PosekitError, match="too small"):
        prepare_source(tmp_path / "tiny.png", "warp", Timer(), Detector())
    with pytest.raises(PosekitError, match="^bad.task: cannot load it"):
        prepare_source(tmp_path / "tiny.png", "warp", Timer(), Detector(PosekitError("bad.task: cannot load it")))


@pytest.mark.parametrize("command", ["animate", "transfer"])
def test_a_missing_or_empty_source_pose_is_a_usage_error_naming_it(run_posekit, tmp_path, command):
    """As for --onto, --checkpoint or --poses: exit 2, the flag named, nothing written."""
    (tmp_path / "empty.json").write_text("")
    for name in ("missing.json", "empty.json"):
        out = tmp_path / f"out_{Path(name).stem}"
        r = run_posekit(command, EXAMPLES / "figure.png", "-p", "walk", "-o", out, "--source-pose", tmp_path / name)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and lines[-1].startswith(f"posekit: error: --source-pose {tmp_path / name}: "), r.stderr
        assert not out.exists()


def test_pose_files_with_infinite_or_huge_coordinates_do_not_hang(run_posekit, tmp_path):
    """Infinity or 1e300 (past float32) for a nose: the point is missing; the run goes on (it hung
    in the warp, and poses show gave a traceback)."""
    flat = json.loads((EXAMPLES / "figure_keypoints.json").read_text())["people"][0]["pose_keypoints_2d"]
    for name, bad in (("inf", "Infinity"), ("huge", "1e300")):
        folder = tmp_path / name
        folder.mkdir()
        text = json.dumps({"people": [{"pose_keypoints_2d": [0.5] + flat[1:]}], "canvas_width": 384,
                           "canvas_height": 512})
        (folder / "a_keypoints.json").write_text(text.replace("[0.5,", f"[{bad},", 1))
        r = run_posekit("poses", "show", folder, "--out", tmp_path / f"show_{name}", timeout=120)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        nose = json.loads((tmp_path / f"show_{name}" / "frame_000_keypoints.json").read_text())["people"][0]
        assert nose["pose_keypoints_2d"][:3] == [0, 0, 0]
        r = run_posekit("animate", EXAMPLES / "figure.png", "-p", folder, "-n", "2", "-o", tmp_path / f"a_{name}",
                        "--no-evaluate", timeout=120)
        assert r.returncode == 0, r.stderr

"""`posekit animate`: the installed command on the shipped examples, read back file by file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from conftest import REPO

FIGURE = REPO / "examples" / "figure.png"
ASTRONAUT = REPO / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory):
    """One full run on the full-body example, shared by the checks below."""
    from conftest import posekit_exe
    import subprocess

    out = tmp_path_factory.mktemp("walk")
    proc = subprocess.run([posekit_exe(), "animate", str(FIGURE), "--poses", "walk", "--frames", "6",
                           "--out", str(out), "--columns", "3", "--fps", "8", "--format", "webp", "--json"],
                          capture_output=True, text=True, timeout=1800)
    return out, proc


def test_animate_writes_every_output(walk_run):
    out, proc = walk_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)  # stdout carries exactly one JSON object
    assert summary["frames"] == 6 and summary["size"] == [384, 512] and summary["method"] == "warp"
    assert set(summary["seconds"]) == {"source", "targets", "retargeting", "method", "writing", "evaluation"}
    frames = sorted((out / "frames").glob("*.png"))
    assert [f.name for f in frames] == [f"frame_{i:03d}.png" for i in range(6)]
    for i in range(6):
        assert (out / "poses" / f"frame_{i:03d}_keypoints.json").is_file()
        assert Image.open(out / "poses" / f"frame_{i:03d}_pose.png").size == (384, 512)
    # sheet.png: 3 columns x 2 rows of 384x512 frames, the frames themselves
    sheet = np.asarray(Image.open(out / "sheet.png"))
    assert sheet.shape == (1024, 1152, 4)
    f4 = np.asarray(Image.open(frames[4]).convert("RGBA"))
    assert np.array_equal(sheet[512:, 384:768], f4)
    # sheet.json: Aseprite json-hash, tag named after the clip, durations from --fps
    data = json.loads((out / "sheet.json").read_text())
    assert list(data["frames"]) == [str(i) for i in range(6)]
    assert data["frames"]["4"]["frame"] == {"x": 384, "y": 512, "w": 384, "h": 512}
    assert all(f["duration"] == 125 for f in data["frames"].values())
    assert data["meta"]["size"] == {"w": 1152, "h": 1024}
    assert data["meta"]["frameTags"] == [{"name": "walk", "from": 0, "to": 5, "direction": "forward"}]
    gif = Image.open(out / "animation.gif")
    assert gif.n_frames == 6 and gif.info["loop"] == 0
    assert all(abs(f.info["duration"] - 125) <= 10 for f in ImageSequence.Iterator(gif))  # GIF counts in 1/100 s
    assert Image.open(out / "animation.webp").n_frames == 6
    assert not (out / "animation.mp4").exists()


def test_animate_frames_follow_the_written_poses(walk_run):
    """The poses/ JSON are the retargeted targets in frame pixels: feet on the photo's ground
    line, the subject's size; and the detector finds the person there (pose fidelity)."""
    from posekit.pose.formats import read_openpose_json
    from posekit.pose.pose import INDEX

    out, proc = walk_run
    summary = json.loads(proc.stdout)
    assert summary["pose_fidelity"] >= 0.85
    src = json.loads((REPO / "examples" / "figure_keypoints.json").read_text())["people"][0]["pose_keypoints_2d"]
    src_ankle_y = max(src[3 * INDEX["r_ankle"] + 1], src[3 * INDEX["l_ankle"] + 1])
    for i in range(6):
        pose = read_openpose_json(out / "poses" / f"frame_{i:03d}_keypoints.json")[0]
        assert pose.size == (384, 512) and len(pose) >= 14
        lowest = max(pose["r_ankle"][1], pose["l_ankle"][1])
        assert abs(lowest - src_ankle_y) < 15  # on the figure's floor, not the clip's


def test_animate_reads_its_own_poses_back(walk_run, run_posekit, tmp_path):
    """A folder of OpenPose JSON drives the animation too; --no-retarget keeps them as given."""
    out, _ = walk_run
    again = tmp_path / "again"
    proc = run_posekit("animate", FIGURE, "--poses", out / "poses", "--out", again, "--no-retarget",
                       "--no-evaluate", "--columns", "6")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 6 frames" in proc.stderr and proc.stdout == ""
    for i in (0, 3):
        a = np.asarray(Image.open(out / "frames" / f"frame_{i:03d}.png")).astype(int)
        b = np.asarray(Image.open(again / "frames" / f"frame_{i:03d}.png")).astype(int)
        assert np.abs(a - b).mean() < 1.0
    assert json.loads((again / "sheet.json").read_text())["meta"]["frameTags"][0]["name"] == "poses"


def test_animate_astronaut_sprites(run_posekit, tmp_path):
    """The README's offline example: an upper-body photo, the wave clip, transparent sprites."""
    out = tmp_path / "wave"
    proc = run_posekit("animate", ASTRONAUT, "--poses", "wave", "--frames", "4", "--out", out, "--size", "128x96",
                       "--background", "transparent", "--format", "mp4", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["size"] == [128, 96] and summary["pose_fidelity"] > 0.6
    frame = np.asarray(Image.open(out / "frames" / "frame_002.png"))
    assert frame.shape == (96, 128, 4)
    assert frame[:, :10, 3].max() == 0  # letterbox padding is transparent
    assert frame[60, 64, 3] == 255 and frame[5, 20, 3] == 0  # the chest is opaque, the sky is not
    pose = json.loads((out / "poses" / "frame_002_keypoints.json").read_text())
    assert (pose["canvas_width"], pose["canvas_height"]) == (128, 96)
    assert (out / "animation.mp4").stat().st_size > 0


def test_a_character_without_feet_or_too_big_for_a_texture_says_so(run_posekit, tmp_path):
    """A character sheet of an upper-body photo has no pivots (nothing shows where it stands):
    a warning says so, where the sheet used to leave them out without a word. A sheet wider than
    the 4096 px many GPUs take as one texture (16 cells of the astronaut's 404 px: 6464 px) is
    named with its size and the flag to pass. Both on stderr, the run still succeeds; a
    whole-body figure at a game's size gets neither."""
    out = tmp_path / "astro"
    proc = run_posekit("animate", ASTRONAUT, "--poses", "idle", "--frames", "16", "--mirror", "--columns", "32",
                       "--background", "transparent", "--no-evaluate", "--json", "--out", out)
    assert proc.returncode == 0, proc.stderr
    sheet = json.loads((out / "sheet.json").read_text())
    assert all("pivot" not in f for f in sheet["frames"].values())
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("posekit: warning:")]
    assert any("no pivots" in w and "astronaut.png" in w for w in warnings), proc.stderr
    width = Image.open(out / "sheet.png").size[0]
    assert width > 4096 and any(f"is {width}x" in w and "--size" in w for w in warnings), proc.stderr
    proc = run_posekit("animate", FIGURE, "--poses", "idle", "--frames", "4", "--mirror", "--size", "96x128",
                       "--background", "transparent", "--no-evaluate", "--json", "--out", tmp_path / "fig")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_animate_tiny_diffusion_sheet(run_posekit, tmp_path, tiny_sd):
    """The diffusion method through animate, sheet mode, on a tiny random SD + ControlNet."""
    sd, cn = tiny_sd
    small = tmp_path / "figure_small.png"  # small, so that the random VAE decodes in a second
    Image.open(FIGURE).resize((96, 128)).save(small)
    out = tmp_path / "sd_out"
    proc = run_posekit("animate", small, "--source-pose", REPO / "examples" / "figure_keypoints.json",
                       "--poses", "jump", "--frames", "4", "--out", out, "--method", "diffusion",
                       "--model", sd, "--controlnet", cn, "--steps", "2", "--strength", "1.0", "--sheet",
                       "--columns", "2", "--device", "cpu", "--no-evaluate", "--json", "--size", "96x128",
                       env={"OMP_NUM_THREADS": "1"})  # a tiny model gains nothing from threads
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["frames"] == 4 and summary["method"] == "diffusion" and summary["pose_fidelity"] is None
    # generated at SD 1.5's size (the 96x128 photo scaled up to 512x680), then fitted to --size
    assert summary["size"] == [96, 128] and Image.open(out / "sheet.png").size == (192, 256)
    assert len(list((out / "frames").glob("*.png"))) == 4


def test_nobody_in_the_photo_writes_nothing(run_posekit, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(blank)
    out = tmp_path / "never"
    proc = run_posekit("animate", blank, "--poses", "walk", "--out", out)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert "wall.png: no person found" in lines[-1] and "--source-pose" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, flag", [
    (["--method", "magic"], "--method"),
    (["--background", "blue"], "--background"),
    (["--size", "big"], "--size"),
    (["--format", "avi"], "--format"),
    (["--sheet"], "--sheet"),
])
def test_usage_errors(run_posekit, tmp_path, args, flag):
    out = tmp_path / "x"
    proc = run_posekit("animate", FIGURE, "--poses", "walk", "--out", out, *args)
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_animate_gan_frames_and_poses_in_the_models_frame(run_posekit, tmp_path):
    """--method gan (PATN, an official-layout Market-1501 generator with random weights): frames
    come out at the model's 64x128 and the poses written are in those frames' pixels."""
    import torch
    from test_patn_model import official_state

    torch.manual_seed(0)
    torch.save(official_state(ngf=8, blocks=2, norm="batch"), tmp_path / "latest_net_netG.pth")
    out = tmp_path / "gan"
    proc = run_posekit("animate", FIGURE, "--poses", "walk", "--frames", "4", "--out", out, "--method", "gan",
                       "--checkpoint", tmp_path, "--dataset", "market1501", "--device", "cpu", "--no-evaluate",
                       "--json", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["size"] == [64, 128]
    assert Image.open(out / "sheet.png").size == (256, 128)
    from posekit.pose.formats import read_openpose_json

    pose = read_openpose_json(out / "poses" / "frame_001_keypoints.json")[0]
    assert pose.size == (64, 128)
    x0, y0, x1, y1 = pose.bbox()
    assert 0 <= x0 and x1 <= 64 and 0 <= y0 and y1 <= 128 and y1 - y0 > 80  # the person fills the frame


def test_a_rerun_leaves_no_stale_outputs_and_keeps_the_users_files(run_posekit, tmp_path):
    out = tmp_path / "out"
    # a longer run with a WebP and an MP4 (one --format, comma separated) this run does not ask for
    longer = run_posekit("animate", FIGURE, "--poses", "walk", "--frames", "4", "-f", "webp,mp4", "--out", out,
                         "--no-evaluate")
    assert longer.returncode == 0, longer.stderr
    assert (out / "animation.webp").is_file() and (out / "animation.mp4").is_file()
    (out / "notes.txt").write_text("mine")
    (out / "frames" / "frame_0001.png").write_text("mine: frames from ffmpeg")
    proc = run_posekit("animate", FIGURE, "--poses", "walk", "--frames", "2", "--out", out, "--no-evaluate")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "animation.gif", "frames", "notes.txt", "poses", "sheet.json", "sheet.png"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_000.png", "frame_0001.png", "frame_001.png"]
    assert (out / "notes.txt").read_text() == "mine"


def test_animate_never_writes_over_an_input_or_a_users_file(run_posekit, tmp_path):
    """A photo where an output goes is a usage error; a file of the user's at an output's name is
    refused; both before any work (no pose detected), naming the file and what to do."""
    import shutil

    photo = tmp_path / "ow" / "sheet.png"
    (tmp_path / "ow").mkdir()
    shutil.copy(FIGURE, photo)
    framed = tmp_path / "ow3" / "frames" / "frame_000.png"
    framed.parent.mkdir(parents=True)
    shutil.copy(FIGURE, framed)
    for given, out in ((photo, photo.parent), (framed, tmp_path / "ow3")):
        proc = run_posekit("animate", given, "--poses", "walk", "--frames", "2", "--out", out)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"--out {out}" in lines[0] and str(given) in lines[0] and "choose another --out" in lines[0]
        assert given.read_bytes() == FIGURE.read_bytes()
    assert sorted(p.name for p in photo.parent.iterdir()) == ["sheet.png"]
    for mine in ("animation.gif", "sheet.json", "frames/frame_001.png"):
        out = tmp_path / mine.replace("/", "_")
        (out / mine).parent.mkdir(parents=True, exist_ok=True)
        (out / mine).write_text("mine")
        proc = run_posekit("animate", FIGURE, "--poses", "walk", "--frames", "2", "--out", out)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "detecting" not in proc.stderr, proc.stderr
        assert f"{out / mine} exists and posekit did not write it" in lines[0] and "move it" in lines[0]
        assert (out / mine).read_text() == "mine" and len(list(out.rglob("*"))) == len(Path(mine).parts)


def test_a_mistyped_motion_is_a_usage_error_before_any_work(run_posekit, tmp_path):
    proc = run_posekit("animate", FIGURE, "--poses", "idle,walkk", "--out", tmp_path / "x")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "--poses 'walkk'" in lines[0] and "did you mean 'walk'" in lines[0] and "run, jump" in lines[0]
    assert not (tmp_path / "x").exists()


def test_a_transparent_clip_is_a_sprite_framed_around_the_figure(run_posekit, tmp_path):
    """One clip with --background transparent is a sprite: cut to one cell around the figure, as
    a character's clips are, not the whole photo letterboxed (the figure was 35 px of 128)."""
    from skimage import data

    scene = Image.fromarray(data.coffee()).resize((600, 400))  # a wide real photo, the person at its right
    scene.paste(Image.open(FIGURE).convert("RGB").resize((225, 300)), (360, 100))
    scene.save(tmp_path / "wide.png")
    out = tmp_path / "sprite"
    r = run_posekit("animate", tmp_path / "wide.png", "--poses", "walk", "--frames", "4", "--size", "64x128",
                    "--background", "transparent", "--no-evaluate", "--out", out)
    assert r.returncode == 0, r.stderr
    alphas = [np.asarray(Image.open(out / "frames" / f"frame_{i:03d}.png"))[:, :, 3] > 127 for i in range(4)]
    assert all(a.shape == (128, 64) for a in alphas)
    rows = [np.flatnonzero(a.any(axis=1)) for a in alphas]
    cols = [np.flatnonzero(a.any(axis=0)) for a in alphas]
    assert min(r[-1] - r[0] + 1 for r in rows) > 100  # the figure fills the cell's height
    assert all(abs((c[0] + c[-1]) / 2 - 32) < 12 for c in cols)  # and stands in its middle

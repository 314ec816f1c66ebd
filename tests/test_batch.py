"""`posekit animate` on many photos: OUT/<stem>/ each, one failing photo named while the rest
finish (exit 1), a summary; under `accelerate launch` the photos split across processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from posekit.errors import UsageError
from posekit.pose.pose import Pose
from posekit.sheet import Strip

FIGURE = REPO / "examples" / "figure.png"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three small photos: two of the figure, one of a wall (nobody in it)."""
    folder = tmp_path_factory.mktemp("photos")
    small = Image.open(FIGURE).convert("RGB").resize((192, 256))
    small.save(folder / "anna.png")
    small.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "bert.jpg")
    Image.fromarray(np.full((128, 128, 3), 200, np.uint8)).save(folder / "wall.png")
    return folder


ARGS = ["--poses", "walk,idle", "--frames", "2", "--no-evaluate"]


def check_results(lines, out):
    results = {Path(r["photo"]).name: r for r in map(json.loads, lines)}
    assert len(lines) == 3 and sorted(results) == ["anna.png", "bert.jpg", "wall.png"]
    assert "no person found" in results["wall.png"]["error"] and not (out / "wall").exists()
    assert "leave it out of the batch" in results["wall.png"]["error"]  # not "pass --source-pose": a batch refuses it
    for stem in ("anna", "bert"):
        r = results[f"{stem}.png" if stem == "anna" else f"{stem}.jpg"]
        assert Path(r["out"]) == out / stem and [c["name"] for c in r["clips"]] == ["walk", "idle"]
        sheet = Image.open(out / stem / "sheet.png")
        data = json.loads((out / stem / "sheet.json").read_text())
        assert data["meta"]["size"] == {"w": sheet.size[0], "h": sheet.size[1]} and len(data["frames"]) == 4
        assert sorted(p.name for p in (out / stem / "animations").iterdir()) == ["idle.gif", "walk.gif"]
    return results


def test_a_folder_of_photos(run_posekit, photos, tmp_path):
    out = tmp_path / "out"
    proc = run_posekit("animate", photos, *ARGS, "--out", out, "--json")
    assert proc.returncode == 1, proc.stderr
    check_results(proc.stdout.splitlines(), out)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "wall.png: no person found" in errors[0] and "Traceback" not in proc.stderr


def test_paths_on_stdin_and_the_summary(run_posekit, photos, tmp_path):
    out = tmp_path / "out"
    paths = "\n".join(str(photos / n) for n in ("bert.jpg", "anna.png")) + "\n"
    proc = run_posekit("animate", "-", *ARGS, "--out", out, input=paths)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "animated 2 of 2 photos into" in proc.stderr.splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == ["anna", "bert"]


@pytest.mark.parametrize("args, flag", [
    (["--source-pose", REPO / "examples" / "figure_keypoints.json"], "--source-pose"),
    (["--export", "nope"], "--export"),
])
def test_batch_usage_errors(run_posekit, photos, tmp_path, args, flag):
    proc = run_posekit("animate", photos, *ARGS, "--out", tmp_path / "o", *args)
    assert proc.returncode == 2 and flag in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "o").exists()


def test_two_photos_one_stem(run_posekit, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(photos / "anna.png", other / "anna.jpg")
    proc = run_posekit("animate", photos / "anna.png", other / "anna.jpg", *ARGS, "--out", tmp_path / "o")
    assert proc.returncode == 2 and "OUT/anna/" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_accelerate_launch_splits_the_photos(photos, tmp_path):
    """Two CPU processes: each photo done by exactly one of them, one summary for all."""
    import socket

    out = tmp_path / "out"
    with socket.socket() as free:  # a port nobody else's launch is using
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
           "-m", "posekit", "animate", str(photos), *ARGS, "--out", str(out), "--json"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode != 0  # the wall failed; accelerate passes the failure on
    results = check_results(proc.stdout.splitlines(), out)  # printed once, by the main process
    assert {r["process"] for r in results.values()} == {0, 1}
    assert proc.stderr.count("detecting the source pose") == 3  # nothing done twice


def test_the_method_is_loaded_once_for_all_photos(photos, tmp_path, monkeypatch):
    """A batch with --method gan reads the generator from disk once, not once per photo."""
    import torch

    from posekit.methods.patn import method as patn
    from posekit.methods.patn.train import TrainConfig, train
    from posekit.pipeline import animate_batch

    torch.set_num_threads(1)
    run = tmp_path / "gan"
    train(TrainConfig(dataset="synthetic", iters=1, batch_size=2, checkpoint_every=1, perceptual_weight=0, ngf=4,
                      blocks=1, image_height=32, image_width=16, eval_pairs=2, workers=0), run)
    loads = []
    real = patn.load_patn
    monkeypatch.setattr(patn, "load_patn", lambda *a, **k: loads.append(a) or real(*a, **k))
    two = [photos / "anna.png", photos / "bert.jpg"]
    results = animate_batch(two, tmp_path / "out", device="cpu", method="gan", poses="walk", frames=2, evaluate=False,
                            options=patn.PatnOptions(checkpoint=str(run), device="cpu"))
    assert len(loads) == 1
    assert [r.get("error") for r in results] == [None, None]
    assert all((tmp_path / "out" / stem / "sheet.png").is_file() for stem in ("anna", "bert"))


def test_the_warp_segmenter_is_built_once_for_all_photos(photos, tmp_path, monkeypatch):
    """The warp's person segmenter (about 0.7 s to build) serves every photo of a batch and is
    closed at the end."""
    from posekit.methods.warp import segment
    from posekit.pipeline import animate_batch

    built, real = [], segment.segmenter
    monkeypatch.setattr(segment, "segmenter", lambda: built.append(real()) or built[-1])
    two = [photos / "anna.png", photos / "bert.jpg"]
    results = animate_batch(two, tmp_path / "out", device="cpu", poses="walk", frames=2, evaluate=False)
    assert [r.get("error") for r in results] == [None, None]
    assert len(built) == 1 and built[0]._landmarker is None  # one, and closed


def test_a_rerun_does_not_animate_its_own_outputs(run_posekit, photos, tmp_path):
    """Run twice over a folder whose --out is inside it, or is the folder itself: the second run
    finds the one photo again, not the sheets, GIFs and frames of the first."""
    folder = tmp_path / "ph"
    folder.mkdir()
    shutil.copy(photos / "anna.png", folder / "me.png")
    for out in (folder / "sheets", folder):
        for _ in range(2):
            proc = run_posekit("animate", folder, "--poses", "walk", "--frames", "2", "--no-evaluate", "--out", out)
            assert proc.returncode == 0, proc.stderr
            assert f"animated 1 of 1 photos into {out}" in proc.stderr.splitlines()[-1]
    assert sorted(p.name for p in folder.iterdir()) == ["me", "me.png", "sheets"]
    assert sorted(p.name for p in (folder / "sheets").iterdir()) == ["me"]


def test_a_photo_folder_leaves_out_posekit_outputs(tmp_path):
    """Of a folder: not what lies under --out (unless the folder is --out), and not what the
    manifest of a folder holding it lists (posekit's outputs); everything else is a photo, also
    beside or below an earlier run's outputs."""
    from posekit.commands.animate import photo_batch
    from posekit.pipeline import write_strips

    frame, pose = np.zeros((16, 16, 3), np.uint8), Pose.empty(16, 16)
    for name in ("a.png", "deep/b.jpg", "out/c.png", "run/frames/mine.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(tmp_path / name)
    # OUT/<stem>/ of a batch
    write_strips(tmp_path / "run", [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)
    write_strips(tmp_path, [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)  # one photo's --out: the folder

    def names(folder, out):
        return [str(p.relative_to(tmp_path)) for p in photo_batch([str(folder)], None, out)]

    assert names(tmp_path, tmp_path / "out") == ["a.png", "deep/b.jpg", "run/frames/mine.png"]
    assert names(tmp_path, tmp_path) == ["a.png", "deep/b.jpg", "out/c.png", "run/frames/mine.png"]
    assert names(tmp_path / "out", tmp_path / "out") == ["out/c.png"]
    assert names(tmp_path / "run", tmp_path / "elsewhere") == ["run/frames/mine.png"]  # what its manifest lists: not
    assert names(tmp_path / "run" / "frames", tmp_path / "x") == ["run/frames/mine.png"]  # a manifest above it
    # photos beside and below the outputs of a batch that wrote OUT/<stem>/ into the photo folder
    hero = tmp_path / "hero"
    for name in ("closeup.jpg", "side.jpg"):
        (hero / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(hero / name)
    write_strips(hero, [Strip("t", [frame] * 2, [pose] * 2)], fps=12, columns=None)
    assert names(hero, tmp_path) == ["hero/closeup.jpg", "hero/side.jpg"]
    assert "hero/side.jpg" in names(tmp_path, tmp_path)
    (tmp_path / "run" / "frames" / "mine.png").unlink()
    with pytest.raises(UsageError, match="no photos found"):
        names(tmp_path / "run", tmp_path / "x")


def test_inputs_where_the_outputs_go_stop_the_batch_before_any_work(run_posekit, photos, tmp_path):
    out = tmp_path / "out"
    (out / "anna" / "frames").mkdir(parents=True)
    shutil.copy(photos / "anna.png", out / "anna" / "frames" / "frame_000.png")
    before = (out / "anna" / "frames" / "frame_000.png").read_bytes()
    for args, flag in (([photos / "bert.jpg", photos / "anna.png", "--poses", out / "anna" / "frames"], "--out"),
                       ([photos / "anna.png", out / "anna" / "frames" / "frame_000.png"], "--out"),
                       ([photos, "--poses", "walkk"], "--poses")):
        proc = run_posekit("animate", *args, *ARGS, "--out", out)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and flag in lines[0], proc.stderr
        assert "detecting" not in proc.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "anna", "anna/frames", "anna/frames/frame_000.png"]
    assert (out / "anna" / "frames" / "frame_000.png").read_bytes() == before


def test_an_outline_with_a_background_stops_a_batch_before_the_models_load(photos, tmp_path, monkeypatch):
    """animate_batch checks --outline (pipeline.check_pixel_art) before it loads the method's
    networks for all the photos."""
    from posekit.methods.warp.method import WarpMethod
    from posekit.pipeline import animate_batch

    def load(options=None):
        raise AssertionError("the models were loaded before --outline was checked")

    monkeypatch.setattr(WarpMethod, "load", staticmethod(load))
    with pytest.raises(UsageError, match="--outline .*add --background transparent"):
        animate_batch([photos / "anna.png"], tmp_path / "out", device="cpu", poses="walk", pixel_art=8, outline=True)

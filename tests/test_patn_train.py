"""train-gan end to end on the synthetic data: learning, SIGKILL + --resume, VGG weights, and
`transfer --method gan` from the run (and from an official-layout .pth)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch

from posekit.methods.patn.data import PRESETS
from posekit.methods.patn.synthetic import synthetic_pair
from posekit.pose.formats import write_openpose_json

# one intra-op thread: on a shared 2-core machine, torch's spinning thread pool is several times
# slower than a single thread
THREADS = {"OMP_NUM_THREADS": "1"}
def posekit_cmd(*args) -> list[str]:
    from conftest import posekit_exe

    return [posekit_exe(), *map(str, args)]


TINY = ["--dataset", "synthetic", "--size", "16x32", "--ngf", "4", "--blocks", "1", "--batch-size", "2",
        "--workers", "0", "--eval-pairs", "4"]


def test_training_learns_on_held_out_figures(tmp_path):
    """A small real run: after 150 iterations the held-out L1 is below, and the SSIM above, what the
    same configuration reaches in 10 (the full proof, against the copy-source baseline, is
    `python benchmarks/bench_patn.py --proof`)."""
    from posekit.methods.patn.train import TrainConfig, train

    torch.set_num_threads(1)
    config = TrainConfig(dataset="synthetic", iters=150, batch_size=8, checkpoint_every=10, perceptual_weight=0,
                         ngf=8, blocks=2, image_height=32, image_width=16, eval_pairs=32, workers=0)
    final = train(config, tmp_path / "run")
    # the same configuration run for 10 iterations (same seed, data order and held-out pairs)
    ten = train(TrainConfig(**{**config.__dict__, "iters": 10}), tmp_path / "ten")
    assert final["iteration"] == 150 and final["held_out_pairs"] == 32
    assert final["l1"] < 0.8 * ten["l1"], (final, ten)
    assert final["ssim"] > ten["ssim"] + 0.08, (final, ten)
    assert final["ssim_source_baseline"] == pytest.approx(ten["ssim_source_baseline"])  # same held-out pairs
    strip = tmp_path / "run" / "samples" / "step-000150.png"
    from PIL import Image

    assert Image.open(strip).size == (4 * 16, 4 * 32)   # source | target pose | generated | target
    lines = [json.loads(l) for l in open(tmp_path / "run" / "log.jsonl")]
    assert [l["iteration"] for l in lines][-1] == 150 and lines[-1]["lr"] < lines[0]["lr"]  # decays at the end


def test_sigkilled_run_resumes_from_its_last_checkpoint(run_posekit, tmp_path):
    from posekit.training import checkpoints

    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **THREADS}
    proc = subprocess.Popen(posekit_cmd("train-gan", *TINY, "--iters", "100000", "--checkpoint-every", "3",
                                        "--perceptual-weight", "0", "--out", run),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 180
    while time.time() < deadline and len(checkpoints(run)) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    # while it runs, no other run may write into its folder, even one that would resume it
    for extra in ((), ("--resume",)):
        r = run_posekit("train-gan", *TINY, "--iters", "100000", "--checkpoint-every", "3", "--perceptual-weight", "0",
                        "--out", run, *extra, env=THREADS)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"--out {run}: another posekit run is writing into it (pid {proc.pid})" in r.stderr, r.stderr
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = [step for step, _ in checkpoints(run)]
    assert done and done[-1] % 3 == 0 and len(done) <= 2  # the newest two are kept
    last = done[-1]
    for name in ("netG", "netD_PP", "netD_PB"):
        assert (run / f"checkpoint-{last}" / f"{name}.safetensors").is_file()

    r = run_posekit("train-gan", *TINY, "--iters", last + 4, "--checkpoint-every", "3", "--perceptual-weight", "0",
                    "--out", run, "--resume", "--json", env=THREADS)
    assert r.returncode == 0, r.stderr
    assert f"from iteration {last}" in r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["iteration"] == last + 4 and set(metrics) >= {"ssim", "ssim_source_baseline", "l1", "l1_source_baseline"}
    assert json.loads(r.stdout.strip().splitlines()[-1])["iteration"] == last + 4
    assert (run / f"checkpoint-{last + 4}").is_dir()
    assert not list(run.glob(".checkpoint-*"))
    # a run folder with checkpoints is not overwritten by accident
    r = run_posekit("train-gan", *TINY, "--iters", "2", "--out", run, "--perceptual-weight", "0", env=THREADS)
    assert r.returncode == 2 and "--resume" in r.stderr
    # nor continued with another model: one line naming the flag and both values
    r = run_posekit("train-gan", *TINY, "--ngf", "8", "--iters", last + 8, "--perceptual-weight", "0",
                    "--out", run, "--resume", env=THREADS)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--ngf 4, not 8" in r.stderr, r.stderr
    # --size as the user types it
    r = run_posekit("train-gan", *TINY, "--size", "16x16", "--iters", last + 8, "--perceptual-weight", "0",
                    "--out", run, "--resume", env=THREADS)
    assert r.returncode == 2 and "was trained with --size 16x32, not 16x16; pass the same --size" in r.stderr, r.stderr


def test_resumed_run_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    """A run that died right after its iteration-3 checkpoint, resumed, ends with exactly the
    weights and metrics of the same run never interrupted: the data order, the random state
    (dropout is on here) and the discriminators' image pools all come back."""
    import dataclasses
    import shutil

    from safetensors.torch import load_file

    from posekit.methods.patn import data
    from posekit.methods.patn.train import TrainConfig, train

    torch.set_num_threads(1)
    # dropout and an image pool: every iteration draws random numbers that a resume must restore
    monkeypatch.setitem(data.PRESETS, "synthetic",
                        dataclasses.replace(data.PRESETS["synthetic"], dropout=0.5, pool_size=2))
    config = TrainConfig(dataset="synthetic", iters=6, batch_size=2, checkpoint_every=3, perceptual_weight=0,
                         ngf=4, blocks=1, image_height=32, image_width=16, eval_pairs=4, workers=0)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    metrics = train(config, whole)
    shutil.copytree(whole / "checkpoint-3", cut / "checkpoint-3")
    shutil.copy(whole / "config.json", cut / "config.json")
    assert train(config, cut, resume=True) == metrics
    for name in ("netG.safetensors", "checkpoint-6/netD_PP.safetensors", "checkpoint-6/netD_PB.safetensors"):
        a, b = load_file(whole / name), load_file(cut / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a, at_3 = load_file(whole / "netG.safetensors"), load_file(whole / "checkpoint-3" / "netG.safetensors")
    assert not all(torch.equal(a[k], at_3[k]) for k in a)  # and the last three iterations did train


def test_resume_logs_each_point_once_and_warns_when_iters_change(tmp_path, monkeypatch, capsys):
    """log.jsonl has one row per log point after a resume (the rows a killed run wrote past its
    checkpoint are replaced by the resumed run's, equal ones); resuming with another --iters says
    that the learning-rate schedule is planned anew from there; the plain progress line gives the
    rate once."""
    import shutil

    from posekit import console
    from posekit.methods.patn import train as patn_train
    from posekit.methods.patn.train import TrainConfig, lr_at, train

    torch.set_num_threads(1)
    monkeypatch.setattr(patn_train, "LOG_EVERY", 1)
    monkeypatch.setattr(console.LineProgress.__init__, "__defaults__", (0.0, None))  # a line per update
    config = TrainConfig(dataset="synthetic", iters=4, batch_size=2, checkpoint_every=2, perceptual_weight=0,
                         ngf=4, blocks=1, image_height=32, image_width=16, eval_pairs=4, workers=0)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(config, whole)
    rows = lambda run: [json.loads(line) for line in open(run / "log.jsonl")]  # noqa: E731
    losses = lambda row: {k: v for k, v in row.items() if k != "it_per_s"}  # noqa: E731
    assert [r["iteration"] for r in rows(whole)] == [1, 2, 3, 4]
    progress_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train-gan: ")]
    assert progress_lines and all(line.count("/s") == 1 for line in progress_lines), progress_lines
    # a run killed at iteration 3, after its checkpoint-2: it had logged rows 1 to 3
    shutil.copytree(whole / "checkpoint-2", cut / "checkpoint-2")
    shutil.copy(whole / "config.json", cut / "config.json")
    (cut / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(whole)[:3]) + '{"iteration": 4, "L')
    train(config, cut, resume=True)
    assert [r["iteration"] for r in rows(cut)] == [1, 2, 3, 4]
    assert [losses(r) for r in rows(cut)] == [losses(r) for r in rows(whole)]
    assert "re-planned" not in capsys.readouterr().err
    # extended past the run's --iters: the decay is planned anew, and the user is told
    train(TrainConfig(**{**config.__dict__, "iters": 8}), cut, resume=True)
    err = capsys.readouterr().err
    assert (f"--iters 8: {cut} was planned for 4 iterations; the learning-rate schedule is re-planned from "
            f"iteration 4 (lr {lr_at(4, 4, 2e-4):.3g} there becomes {lr_at(4, 8, 2e-4):.3g}") in err, err
    assert [r["iteration"] for r in rows(cut)] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_small_nets_train_on_one_cpu_thread_unless_omp_num_threads_says(tmp_path, monkeypatch):
    """Torch's pool of a thread per core gains nothing on the docs' CPU trial and, on a busy
    machine, spins for cores other processes hold (docs/patn.md has the measurements): small
    runs use one thread on the CPU; large ones and OMP_NUM_THREADS keep theirs; the caller's
    setting comes back after the run."""
    from posekit.methods.patn import train as patn_train
    from posekit.methods.patn.train import TrainConfig

    monkeypatch.setattr(patn_train, "_train", lambda *args: torch.get_num_threads())
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        docs = TrainConfig(dataset="synthetic", image_width=32, image_height=64, ngf=16, blocks=3, batch_size=8)
        official = TrainConfig(dataset="deepfashion", data_root=str(tmp_path))
        assert patn_train.train(docs, tmp_path / "a") == 1 and torch.get_num_threads() == 2
        assert patn_train.train(official, tmp_path / "b") == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert patn_train.train(docs, tmp_path / "c") == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A randomly initialised torchvision VGG19 `features` state_dict: exercises the loading path
    (not a claim of perceptual quality)."""
    import torchvision

    path = tmp_path_factory.mktemp("vgg") / "vgg19_features_random.pth"
    torch.save(torchvision.models.vgg19(weights=None).features.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, vgg_file):
    run = tmp_path_factory.mktemp("gan") / "run"
    cmd = ["train-gan", *TINY, "--iters", "3", "--checkpoint-every", "2", "--vgg-weights", vgg_file, "--out", run]
    r = subprocess.run(posekit_cmd(*cmd), capture_output=True, text=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", **THREADS})
    assert r.returncode == 0, r.stderr
    return run


def test_vgg_weights_from_a_file_are_used(tiny_run):
    lines = [json.loads(l) for l in open(tiny_run / "log.jsonl")]
    assert lines[-1]["perceptual"] > 0
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["perceptual_weight"] == PRESETS["synthetic"].lambda_perceptual and (config["generator"]["width"], config["generator"]["height"]) == (16, 32)  # --size WxH


def test_missing_vgg_weights_stop_at_once_with_what_to_do(run_posekit, tmp_path):
    r = run_posekit("train-gan", *TINY, "--iters", "2", "--out", tmp_path / "run",
                    env={"TORCH_HOME": str(tmp_path / "empty_torch_cache"), **THREADS})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--vgg-weights" in r.stderr and "--perceptual-weight 0" in r.stderr
    assert not list((tmp_path / "run").glob("*checkpoint-*")) and not (tmp_path / "run" / "config.json").exists()


def write_pose(pose, path):
    write_openpose_json([pose], path)
    return path


def test_transfer_gan_from_a_run_folder(run_posekit, tiny_run, tmp_path):
    from PIL import Image

    src, src_pose, _, tgt_pose = synthetic_pair(9, 0, 16, 32)
    Image.fromarray(src).save(tmp_path / "src.png")
    r = run_posekit("transfer", tmp_path / "src.png", "--pose", write_pose(tgt_pose, tmp_path / "t_keypoints.json"),
                    "--source-pose", write_pose(src_pose, tmp_path / "s_keypoints.json"), "--method", "gan",
                    "--checkpoint", tiny_run, "--out", tmp_path / "out.png", env=THREADS)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out.png").size == (16, 32)
    r = run_posekit("transfer", tmp_path / "src.png", "--pose", tmp_path / "t_keypoints.json", "--method", "gan",
                    "--out", tmp_path / "o.png", "--source-pose", tmp_path / "s_keypoints.json")
    assert r.returncode == 2 and "--checkpoint" in r.stderr


def test_patn_method_crops_other_sizes_and_batches(tiny_run):
    from posekit.methods.patn.method import PatnMethod, PatnOptions

    big, pose, _, target = synthetic_pair(4, 1, 96, 160)           # not the model's 16x32
    canvas = np.full((200, 300, 3), 255, np.uint8)
    canvas[20:180, 50:146] = big
    src_pose, tgt_pose = pose.translate(50, 20).with_canvas(300, 200), target.translate(50, 20).with_canvas(300, 200)
    method = PatnMethod(canvas, src_pose, PatnOptions(checkpoint=str(tiny_run), batch_size=2))
    framed = method.frame_pose(src_pose)
    assert framed.size == (16, 32)
    x0, y0, x1, y1 = framed.bbox()
    assert 0 <= x0 and x1 <= 15 and 0 <= y0 and y1 <= 31           # the person fills the frame
    assert (y1 - y0) > 0.7 * 32 or (x1 - x0) > 0.7 * 16            # ... along its tighter side
    frames = method([tgt_pose] * 5)                                  # three batches
    assert len(frames) == 5 and frames[0].shape == (32, 16, 3)
    assert np.array_equal(frames[0], frames[4])                      # eval mode: deterministic
    # a source of exactly the model's size keeps its frame: target keypoints are used as given
    small, small_pose, *_ = synthetic_pair(4, 2, 16, 32)
    same = PatnMethod(small, small_pose, PatnOptions(checkpoint=str(tiny_run / "netG.safetensors")))
    assert same.frame_pose(target.resized(16, 32)).allclose(target.resized(16, 32))


def test_official_pth_checkpoint_drives_transfer_with_the_market_preset(tmp_path):
    from test_patn_model import official_state

    from posekit.errors import UsageError
    from posekit.methods.patn.method import PatnMethod, PatnOptions

    torch.save(official_state(ngf=8, blocks=2, norm="batch"), tmp_path / "latest_net_netG.pth")
    img, pose, _, target = synthetic_pair(2, 0, 64, 128)
    method = PatnMethod(img, pose, PatnOptions(checkpoint=str(tmp_path), dataset="market1501"))
    assert method.config["heatmap"] == "gaussian" and (method.width, method.height) == (64, 128)
    out = method([target])
    assert out[0].shape == (128, 64, 3)
    with pytest.raises(UsageError, match="is a batch-norm generator.*; pass --dataset market1501 or leave --dataset out"):
        PatnMethod(img, pose, PatnOptions(checkpoint=str(tmp_path / "latest_net_netG.pth"), dataset="deepfashion"))
    torch.save(official_state(ngf=8, blocks=2, norm="instance"), tmp_path / "latest_net_netG.pth")
    with pytest.raises(UsageError, match="is an instance-norm generator.*; pass --dataset deepfashion"):
        PatnMethod(img, pose, PatnOptions(checkpoint=str(tmp_path / "latest_net_netG.pth"), dataset="market1501"))


def test_train_gan_usage_errors_name_the_flag(run_posekit, tmp_path):
    r = run_posekit("train-gan", "--dataset", "coco", "--out", tmp_path / "a")
    assert r.returncode == 2 and "deepfashion, market1501, synthetic" in r.stderr
    # a flag's missing path is a usage error (exit 2), like prepare-dataset's and dreambooth's
    r = run_posekit("train-gan", "--dataset", "market1501", "--data-root", tmp_path / "nowhere", "--out", tmp_path / "d",
                    "--perceptual-weight", "0")
    assert r.returncode == 2 and "--data-root" in r.stderr and "no such folder" in r.stderr, r.stderr
    r = run_posekit("train-gan", *TINY, "--vgg-weights", tmp_path / "none.pth", "--out", tmp_path / "e")
    assert r.returncode == 2 and "--vgg-weights" in r.stderr and "no such file" in r.stderr, r.stderr
    assert not any((tmp_path / n).exists() for n in ("a", "d", "e"))  # nothing made for a run that did not start
    r = run_posekit("train-gan", "--dataset", "deepfashion", "--out", tmp_path / "b", "--perceptual-weight", "0")
    assert r.returncode == 2 and "--data-root" in r.stderr and "Traceback" not in r.stderr
    r = run_posekit("train-gan", "--dataset", "synthetic", "--size", "16x30", "--out", tmp_path / "c")
    assert r.returncode == 2 and "multiples of 4" in r.stderr


def test_damaged_generators_are_one_line_errors(tiny_run, tmp_path):
    from safetensors.torch import load_file, save_file

    from posekit.errors import PosekitError
    from posekit.methods.patn.method import load_patn

    state = load_file(str(tiny_run / "netG.safetensors"))
    no_sizes = tmp_path / "no_sizes.safetensors"
    save_file(state, str(no_sizes), metadata={"posekit_patn": json.dumps({"dataset": "synthetic"})})
    with pytest.raises(PosekitError, match="damaged posekit_patn metadata"):
        load_patn(no_sizes)
    key = next(k for k in state if k.endswith("stream2_down.1.weight"))
    wrong_shape = tmp_path / "wrong_shape.safetensors"
    save_file({**state, key: torch.zeros(3, 3, 3, 3)}, str(wrong_shape))
    with pytest.raises(PosekitError, match="do not match the PATN layout"):
        load_patn(wrong_shape)


def test_the_scores_go_on_stdout_only_with_json(run_posekit, tmp_path):
    """As evaluate-gan and animate: the table and "wrote" for people on stderr; stdout, the data
    channel, holds the JSON object only when --json asks for it."""
    r = run_posekit("train-gan", *TINY, "--iters", "2", "--perceptual-weight", "0", "--out", tmp_path / "a", env=THREADS)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "SSIM" in r.stderr and f"wrote {tmp_path / 'a'}" in r.stderr
    r = run_posekit("train-gan", *TINY, "--iters", "2", "--perceptual-weight", "0", "--out", tmp_path / "b", "--json",
                    env=THREADS)
    assert r.returncode == 0, r.stderr
    line = json.loads(r.stdout)
    assert line["run"] == str(tmp_path / "b") and line == {"run": line["run"], **json.loads((tmp_path / "b" / "metrics.json").read_text())}


def test_checkpoint_run_loads_the_newest_generator_after_a_resume(tmp_path, monkeypatch):
    """A finished run resumed to train further and stopped before it finished (killed during its
    final evaluation here): `--checkpoint RUN` loads its newest checkpoint, not the old final
    netG.safetensors, and no metrics.json claims the old iteration. A run left so by an older
    posekit (the stale final still there) is read by the steps."""
    import dataclasses
    import shutil

    from posekit.methods.patn import train as patn_train
    from posekit.methods.patn.method import checkpoint_file
    from posekit.methods.patn.train import TrainConfig, train

    torch.set_num_threads(1)
    config = TrainConfig(dataset="synthetic", iters=2, batch_size=2, checkpoint_every=1, perceptual_weight=0,
                         ngf=4, blocks=1, image_height=32, image_width=16, eval_pairs=2, workers=0)
    run = tmp_path / "r1"
    train(config, run)
    assert checkpoint_file(run) == run / "netG.safetensors"
    shutil.copy(run / "netG.safetensors", tmp_path / "final_2.safetensors")
    shutil.copy(run / "metrics.json", tmp_path / "metrics_2.json")

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(patn_train, "finish", killed)
    with pytest.raises(RuntimeError, match="killed"):
        train(dataclasses.replace(config, iters=4), run, resume=True)
    assert not (run / "netG.safetensors").exists() and not (run / "metrics.json").exists()
    assert checkpoint_file(run) == run / "checkpoint-4" / "netG.safetensors"
    # the stale final of iteration 2 beside checkpoint-4 (as an older posekit left it)
    shutil.copy(tmp_path / "final_2.safetensors", run / "netG.safetensors")
    shutil.copy(tmp_path / "metrics_2.json", run / "metrics.json")
    assert checkpoint_file(run) == run / "checkpoint-4" / "netG.safetensors"
    (run / "metrics.json").write_text(json.dumps({"iteration": 4}))  # a final of iteration 4: the final
    assert checkpoint_file(run) == run / "netG.safetensors"

"""`posekit dreambooth` on a tiny SD 1.x: LoRA and full fine-tunes, prior preservation, chaining,
checkpoints, exact resumption, SIGKILL, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image




pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "a photo of sks person"


@pytest.fixture(scope="module")
def sd(tiny_sd):
    return tiny_sd[0]


@pytest.fixture(scope="module")
def instances(tmp_path_factory, astronaut):
    """Three images of different sizes and shapes, one with a caption."""
    d = tmp_path_factory.mktemp("instances")
    Image.fromarray(astronaut).save(d / "a.png")
    Image.fromarray(astronaut[:300, 100:250]).save(d / "tall.jpg")
    Image.fromarray(astronaut[200:300]).save(d / "wide.png")
    (d / "wide.txt").write_text("a photo of sks person, cropped")
    return d


def train(sd, instances, out, resume=False, **kw):
    from posekit.methods.diffusion.dreambooth import DreamBoothConfig, train_dreambooth

    options = dict(model=str(sd), resolution=32, steps=2, checkpointing_steps=0, device="cpu", class_steps=2)
    return train_dreambooth(DreamBoothConfig(instances, PROMPT, **{**options, **kw}), out, resume=resume)


def sample(model, lora=None, seed=0) -> np.ndarray:
    from posekit.methods.diffusion.models import load_pipeline

    pipe = load_pipeline(str(model), controlnet=None, lora=lora, img2img=False, device="cpu")
    return pipe(PROMPT, height=32, width=32, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(seed)).images[0]


def test_fit_square_keeps_the_whole_figure(astronaut):
    from posekit.methods.diffusion.dreambooth import fit_square

    tall = np.full((200, 100, 3), 255, np.uint8)
    tall[:, 40:60] = 0  # a dark figure from head to feet on white
    out = fit_square(tall, 64)
    assert out.shape == (64, 64, 3)
    assert out[0, 32].max() < 128 and out[63, 32].max() < 128  # head and feet still there
    assert (out[:, :10] == 255).all()  # padded with the border colour, not black


def test_lora_run_writes_loadable_weights_that_change_the_output(sd, instances, tmp_path):
    out = tmp_path / "lora"
    result = train(sd, instances, out, lora=True, steps=3, learning_rate=1e-2, checkpointing_steps=2,
                   validation_prompt="sks person", validation_steps=2)
    assert result == out / "pytorch_lora_weights.safetensors" and result.is_file()
    # checkpoints hold only the adapters (not the frozen UNet); validation images were written
    ckpt = out / "checkpoint-2"
    assert (ckpt / "pytorch_lora_weights.safetensors").is_file() and (ckpt / "optimizer.bin").is_file()
    assert not list(ckpt.glob("model*.safetensors"))
    assert sorted(p.name for p in (out / "validation").iterdir()) == [
        "step-000002-0.png", "step-000002-1.png", "step-000003-0.png", "step-000003-1.png"]
    base, tuned = sample(sd), sample(sd, lora=str(result))
    assert np.abs(base - tuned).max() > 1e-4
    assert np.array_equal(tuned, sample(sd, lora=str(out)))  # the folder works as --lora too


def test_full_finetune_with_prior_preservation_chains_as_model(sd, instances, tmp_path):
    from diffusers import StableDiffusionPipeline

    classes = tmp_path / "class"
    first = train(sd, instances, tmp_path / "style", class_prompt="a photo of a person",
                  with_prior_preservation=True, class_dir=classes, num_class_images=2, learning_rate=1e-3)
    made = sorted(classes.iterdir())
    assert [p.suffix for p in made] == [".png", ".png"]
    stamps = [p.stat().st_mtime_ns for p in made]
    StableDiffusionPipeline.from_pretrained(first)  # a complete diffusers folder
    assert not np.array_equal(sample(first), sample(sd))
    # the paper's two stages: a subject trained on top of the first fine-tune
    second = train(first, instances, tmp_path / "subject", class_prompt="a photo of a person",
                   with_prior_preservation=True, class_dir=classes, num_class_images=2, learning_rate=1e-3)
    assert [p.stat().st_mtime_ns for p in sorted(classes.iterdir())] == stamps  # class images reused
    assert sample(second).shape == (32, 32, 3)


def test_resume_continues_exactly_where_the_checkpoint_left_off(sd, instances, tmp_path):
    import json
    import shutil
    from dataclasses import asdict

    from safetensors.torch import load_file

    from posekit.errors import UsageError
    from posekit.methods.diffusion.dreambooth import DreamBoothConfig

    whole = train(sd, instances, tmp_path / "whole", steps=4, checkpointing_steps=2, learning_rate=1e-3)
    # every multiple of --checkpointing-steps, the last step's included (as diffusers' script)
    assert sorted(p.name for p in whole.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    cut = tmp_path / "cut"  # a run that died right after its step-2 checkpoint
    shutil.copytree(whole / "checkpoint-2", cut / "checkpoint-2")
    shutil.copy(whole / "config.json", cut / "config.json")
    train(sd, instances, cut, steps=4, checkpointing_steps=2, learning_rate=1e-3, resume=True)
    a = load_file(whole / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(cut / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(sd / "unet" / "diffusion_pytorch_model.safetensors")
    assert not all(torch.equal(a[k], first[k]) for k in a)  # and training did move the weights
    # config.json is the resolved config; a resume may go on longer, but not with another setting
    saved = json.loads((whole / "config.json").read_text())
    assert saved == {**asdict(DreamBoothConfig(str(instances), PROMPT, model=str(sd), resolution=32, steps=4,
                                               checkpointing_steps=2, learning_rate=1e-3, device="cpu", class_steps=2)),
                     "processes": 1}
    with pytest.raises(UsageError, match=r"^--resume: .* was trained with --learning-rate 0\.001, not 0\.01; "):
        train(sd, instances, cut, steps=6, checkpointing_steps=2, learning_rate=1e-2, resume=True)


def test_dreambooth_loss_weights_the_class_half_by_the_prior_loss_weight():
    from posekit.methods.diffusion.dreambooth import dreambooth_loss

    pred = torch.zeros(4, 4, 2, 2)
    target = torch.cat([torch.full((2, 4, 2, 2), 1.0), torch.full((2, 4, 2, 2), 2.0)])  # instances, classes
    assert dreambooth_loss(pred, target, 0.5).item() == pytest.approx(1 + 0.5 * 4)
    assert dreambooth_loss(pred, target, 0.0).item() == pytest.approx(1)
    assert dreambooth_loss(pred, target, 3.0).item() == pytest.approx(1 + 3 * 4)
    assert dreambooth_loss(pred, target).item() == pytest.approx((1 + 4) / 2)  # no prior preservation: one mean


def test_prior_loss_weight_reaches_the_update(sd, instances, tmp_path, astronaut):
    """With --prior-loss-weight 0 the class images cannot change the weights (two different class
    folders train to identical weights); with 1 they do."""
    from safetensors.torch import load_file

    folders = []
    for name, image in (("gray", np.full((64, 64, 3), 128, np.uint8)), ("astronaut", astronaut)):
        folders.append(tmp_path / name)
        folders[-1].mkdir()
        for k in range(2):
            Image.fromarray(np.ascontiguousarray(np.rot90(image, k))).save(folders[-1] / f"class-{k}.png")

    def unet_after(weight, class_dir):
        out = train(sd, instances, tmp_path / f"{class_dir.name}-{weight}", steps=1, learning_rate=1e-2,
                    class_prompt="a photo of a person", with_prior_preservation=True, class_dir=class_dir,
                    num_class_images=2, prior_loss_weight=weight)
        return load_file(out / "unet" / "diffusion_pytorch_model.safetensors")

    a, b = unet_after(0.0, folders[0]), unet_after(0.0, folders[1])
    assert all(torch.equal(a[k], b[k]) for k in a)
    c, d = unet_after(1.0, folders[0]), unet_after(1.0, folders[1])
    assert not all(torch.equal(c[k], d[k]) for k in c)


def test_every_dreambooth_flag_is_a_config_field_with_its_default():
    """The CLI fills DreamBoothConfig from its parameters by name: a flag renamed on one side only,
    or a default changed on one side only, fails here."""
    import inspect
    from dataclasses import MISSING, fields

    from posekit.commands.dreambooth import dreambooth
    from posekit.methods.diffusion.dreambooth import DreamBoothConfig

    flags = {name: p.default for name, p in inspect.signature(dreambooth).parameters.items()}
    config = {f.name: f.default for f in fields(DreamBoothConfig)}
    assert set(flags) - {"out", "resume"} == set(config) - {"class_steps"}
    for name, option in flags.items():
        if name in config and config[name] is not MISSING:
            assert option.default == config[name], name
            assert option.param_decls[0] == "--" + name.replace("_", "-"), name


def test_bad_input_is_named(sd, instances, tmp_path):
    from posekit.errors import PosekitError, UsageError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        train(sd, tmp_path / "empty", tmp_path / "o1")
    with pytest.raises(UsageError, match="no such folder"):
        train(sd, tmp_path / "missing", tmp_path / "o2")
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(bad / "ok.png")
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(PosekitError, match="broken.png"):
        train(sd, bad, tmp_path / "o3")
    with pytest.raises(UsageError, match="--class-prompt"):
        train(sd, instances, tmp_path / "o4", with_prior_preservation=True)
    with pytest.raises(UsageError, match=r"^--model .*nomodel: no such file or folder"):  # a missing path: exit 2
        train(tmp_path / "nomodel", instances, tmp_path / "o5")
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3", "o4", "o5"))  # nothing half-made


def test_a_second_run_into_the_same_out_is_refused_at_once(sd, instances, tmp_path):
    """Two runs writing one folder would mix their weights and configs: while one holds --out
    (posekit.training.run_lock, as every dreambooth run does), another is refused, naming it,
    before it writes anything; with --resume too."""
    import os

    from posekit.errors import UsageError
    from posekit.training import run_lock

    out = tmp_path / "run"
    with run_lock(out):
        for resume in (False, True):
            with pytest.raises(UsageError, match=rf"^--out .*run: another posekit run is writing into it "
                                                 rf"\(pid {os.getpid()}\)"):
                train(sd, instances, out, resume=resume)
        assert list(out.iterdir()) == []
    train(sd, instances, out)  # once the first is done, --out is free
    assert (out / "model_index.json").is_file()


def test_a_run_that_fails_to_start_leaves_no_config(instances, tmp_path, run_posekit):
    """A base model that does not load fails after the flags were parsed: no OUT/config.json (a
    later run would take it for a run to --resume and compare its settings against)."""
    (tmp_path / "not_a_model").mkdir()
    out = tmp_path / "run"
    proc = run_posekit("dreambooth", "--instance-dir", instances, "--instance-prompt", PROMPT, "--out", out,
                       "--model", tmp_path / "not_a_model", "--resolution", "32", "--device", "cpu")
    assert proc.returncode in (1, 2) and "not_a_model" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (out / "config.json").exists()


def test_prompts_without_the_instance_token_warn(capsys):
    from posekit.methods.diffusion.dreambooth import Example, warn_about_prompts

    warn_about_prompts(PROMPT, "a photo of a person", "a person on a beach", [Example(None, "a dog")])
    err = capsys.readouterr().err
    assert "--validation-prompt" in err and "sks" in err and "1 caption(s)" in err
    warn_about_prompts("a photo of a person", "a photo of a person", None, [])
    assert "rare token" in capsys.readouterr().err
    warn_about_prompts(PROMPT, "a photo of a person", "sks person dancing", [])
    assert capsys.readouterr().err == ""


def test_cli_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(sd, instances, tmp_path, run_posekit):
    from posekit.training import checkpoints

    out = tmp_path / "killed"
    args = ["dreambooth", "--instance-dir", instances, "--instance-prompt", PROMPT, "--out", out, "--model", sd,
            "--resolution", "32", "--checkpointing-steps", "2", "--device", "cpu"]
    proc = subprocess.Popen([posekit_exe(), *map(str, args), "--steps", "100000"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint-4").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    found = checkpoints(out)
    assert found and found[-1][0] >= 4 and len(found) <= 2  # the newest two are kept
    for _, path in found:  # every checkpoint-<step> folder is whole
        assert {"optimizer.bin", "scheduler.bin", "random_states_0.pkl"} <= {p.name for p in path.iterdir()}
        assert list(path.glob("model*.safetensors"))
    assert not (out / "model_index.json").exists()  # a killed run does not look finished
    last = found[-1][0]
    r = run_posekit(*args, "--steps", last + 2, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert f"resuming from step {last}" in r.stderr
    assert (out / "model_index.json").is_file() and not list(out.glob(".checkpoint-*"))
    r = run_posekit(*args, "--steps", "2", env={"OMP_NUM_THREADS": "1"})  # the same folder without --resume: refused, exit 2
    assert r.returncode == 2 and "--resume" in r.stderr and r.stderr.strip().count("\n") == 0


def posekit_exe() -> str:
    import shutil
    from pathlib import Path

    return shutil.which("posekit", path=str(Path(sys.executable).parent)) or shutil.which("posekit")


def test_captions_override_the_prompt_and_unreadable_ones_are_named(tmp_path, astronaut):
    from posekit.errors import PosekitError
    from posekit.methods.diffusion.dreambooth import load_examples

    Image.fromarray(astronaut).save(tmp_path / "a.png")
    Image.fromarray(astronaut).save(tmp_path / "b.png")
    (tmp_path / "a.txt").write_text("a photo of sks astronaut\n")
    examples = load_examples(tmp_path, "a photo of sks person", 64, "--instance-dir")
    assert sorted(e.prompt for e in examples) == ["a photo of sks astronaut", "a photo of sks person"]
    assert all(e.image.shape[:2] == (64, 64) for e in examples)
    (tmp_path / "b.txt").write_bytes(b"\xff\xfe not utf-8 \xc3")
    with pytest.raises(PosekitError, match=r"b\.txt: cannot read this caption"):
        load_examples(tmp_path, "a photo of sks person", 64, "--instance-dir")


def test_lora_with_the_text_encoder_trains_and_loads(sd, instances, tmp_path):
    """`--lora --train-text-encoder`: the text encoder's adapters are trained and saved beside the
    UNet's in one diffusers LoRA file, which --lora loads (this crashed with a ValueError when the
    installed transformers wanted a newer peft than the one allowed)."""
    from safetensors.torch import load_file

    result = train(sd, instances, tmp_path / "lora_te", lora=True, train_text_encoder=True, steps=2,
                   learning_rate=1e-2)
    keys = list(load_file(result))
    assert any(k.startswith("text_encoder.") for k in keys) and any(k.startswith("unet.") for k in keys)
    assert np.abs(sample(sd) - sample(sd, lora=str(result))).max() > 1e-4


def test_lora_checkpoints_are_lora_files_holding_the_weights_of_their_step(sd, instances, tmp_path, monkeypatch):
    """checkpoint-N of `--lora --train-text-encoder` is a diffusers LoRA folder: `--lora` (the
    folder or its file) loads exactly the UNet and text encoder adapters the run had at step N, and
    the loaded text encoder encodes prompts as the trained one did, not as the base one."""
    from peft.utils import get_peft_model_state_dict

    import posekit.methods.diffusion.dreambooth as db
    from posekit.methods.diffusion.models import add_lora, load_pipeline

    def tokens(pipe):
        return pipe.tokenizer([PROMPT], padding="max_length", max_length=77, return_tensors="pt").input_ids

    snapshots, trained_models, real_save, real_trained = {}, {}, db.save_checkpoint, db.trained_modules

    def trained_modules(*args):  # the training UNet and text encoder, updated in place as it goes
        unet, te = real_trained(*args)
        trained_models.update(UNet2DConditionModel=unet, CLIPTextModel=te)
        return unet, te

    def save_checkpoint(accelerator, out, step, keep):  # what the run holds in memory at the step
        with torch.no_grad():
            encoded = trained_models["CLIPTextModel"](tokens(base))[0].clone()
        snapshots[step] = ({k: {n: v.detach().clone() for n, v in get_peft_model_state_dict(m).items()}
                            for k, m in trained_models.items()}, encoded)
        return real_save(accelerator, out, step, keep)

    base = load_pipeline(str(sd), controlnet=None, img2img=False, device="cpu")
    monkeypatch.setattr(db, "trained_modules", trained_modules)
    monkeypatch.setattr(db, "save_checkpoint", save_checkpoint)
    out = tmp_path / "run"
    train(sd, instances, out, lora=True, train_text_encoder=True, steps=5, checkpointing_steps=2,
          keep_checkpoints=3, learning_rate=1e-2)
    assert sorted(snapshots) == [2, 4]
    with torch.no_grad():
        base_encoded = base.text_encoder(tokens(base))[0]
    for step, (trained, encoded) in snapshots.items():
        for lora in (out / f"checkpoint-{step}", out / f"checkpoint-{step}" / "pytorch_lora_weights.safetensors"):
            pipe = load_pipeline(str(sd), controlnet=None, img2img=False, device="cpu")
            add_lora(pipe, str(lora))
            adapter = pipe.get_active_adapters()[0]
            for name, model in (("UNet2DConditionModel", pipe.unet), ("CLIPTextModel", pipe.text_encoder)):
                loaded = get_peft_model_state_dict(model, adapter_name=adapter)
                assert sorted(loaded) == sorted(trained[name]), name
                assert all(torch.equal(loaded[k], trained[name][k]) for k in loaded), (name, step)
            with torch.no_grad():
                now = pipe.text_encoder(tokens(pipe))[0]
            assert torch.allclose(now, encoded, atol=1e-5)
            assert (now - base_encoded).abs().max() > 1e-3  # the text encoder LoRA does act
    # and each checkpoint holds its own step's weights, not the newest ones
    unet2, unet4 = snapshots[2][0]["UNet2DConditionModel"], snapshots[4][0]["UNet2DConditionModel"]
    assert not all(torch.equal(unet2[k], unet4[k]) for k in unet2)


def test_lora_run_resumes_exactly_from_a_lora_checkpoint(sd, instances, tmp_path):
    import shutil

    from safetensors.torch import load_file

    kw = dict(lora=True, train_text_encoder=True, steps=4, checkpointing_steps=2, learning_rate=1e-2)
    whole = train(sd, instances, tmp_path / "whole", **kw).parent
    assert sorted(p.name for p in (whole / "checkpoint-2").iterdir()) == [
        "optimizer.bin", "pytorch_lora_weights.safetensors", "random_states_0.pkl", "scheduler.bin"]
    cut = tmp_path / "cut"  # a run that died right after its step-2 checkpoint
    shutil.copytree(whole / "checkpoint-2", cut / "checkpoint-2")
    shutil.copy(whole / "config.json", cut / "config.json")
    a = load_file(whole / "pytorch_lora_weights.safetensors")
    b = load_file(train(sd, instances, cut, resume=True, **kw))
    assert sorted(a) == sorted(b) and any(k.startswith("text_encoder.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    step2 = load_file(whole / "checkpoint-2" / "pytorch_lora_weights.safetensors")
    assert not all(torch.equal(a[k], step2[k]) for k in a)  # steps 3 and 4 did train

    # a run interrupted under the old checkpoint layout (one peft state file per model) resumes too
    from diffusers.utils import convert_state_dict_to_peft, convert_unet_state_dict_to_peft
    from safetensors.torch import save_file

    old = tmp_path / "old"
    shutil.copytree(cut / "checkpoint-2", old / "checkpoint-2")  # the resumed run kept checkpoint-2 (keep 2)
    shutil.copy(whole / "config.json", old / "config.json")
    (old / "checkpoint-2" / "pytorch_lora_weights.safetensors").unlink()
    for name, to_peft in (("unet", convert_unet_state_dict_to_peft), ("text_encoder", convert_state_dict_to_peft)):
        part = {k[len(name) + 1:]: v for k, v in step2.items() if k.startswith(name + ".")}
        save_file(to_peft(part), old / "checkpoint-2" / f"{name}_lora.safetensors")
    c = load_file(train(sd, instances, old, resume=True, **kw))
    assert all(torch.equal(a[k], c[k]) for k in a)

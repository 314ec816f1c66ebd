"""Model paths are checked when a method's options are made, before any photo is read or model
loaded: a missing local path (clearly one: never a hub id 'org/name') or a file or folder that
holds the wrong thing is one UsageError line naming the flag; --method gan without --checkpoint
fails before the command starts."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import REPO
from posekit.errors import PosekitError, UsageError

FIGURE = REPO / "examples" / "figure.png"


def method_options(method):
    from posekit.methods import method_class

    return method_class(method).Options


@pytest.mark.parametrize("method, field, value, flag", [
    ("diffusion", "model", "./nomodel", "--model"),
    ("diffusion", "model", "~/posekit-no-such-dir/sd.safetensors", "--model"),
    ("diffusion", "model", "models/sd/v1", "--model"),  # two '/': a path, not a hub id
    ("diffusion", "lora", "./nolora", "--lora"),
    ("diffusion", "ip_adapter", "./nope", "--ip-adapter"),
    ("diffusion", "controlnet", "/no/such/controlnet", "--controlnet"),
    ("animatediff", "motion_adapter", "./x", "--motion-adapter"),
    ("animatediff", "lora", "style.safetensors", "--lora"),
    ("animatediff", "model", "/no/such/model.ckpt", "--model"),
    ("wan", "model", "./nowan", "--model"),
])
def test_a_missing_local_path_is_a_usage_error_naming_its_flag(method, field, value, flag, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as e:
        method_options(method)(**{field: value})
    assert str(e.value) == f"{flag} {value}: no such file or folder"
    assert e.value.exit_code == 2


@pytest.mark.parametrize("method", ["diffusion", "animatediff"])
def test_a_missing_model_config_folder_is_a_usage_error(method, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    for value in ("./nocfg", Path("nocfg"), "nocfg"):  # always a folder: a bare name is checked too
        with pytest.raises(UsageError, match=f"^--model-config {value}: no such folder; pass a diffusers SD 1.x folder"):
            method_options(method)(model_config=value)


def test_hub_ids_and_bare_names_are_left_to_loading(tmp_path, monkeypatch):
    """'org/name' is a hub id (looked up when loading); a bare name may be either, so loading
    decides. Neither fails when the options are made, here where no such folder exists."""
    from posekit.methods.diffusion.models import clearly_local, is_local

    monkeypatch.chdir(tmp_path)
    o = method_options("diffusion")(model="stable-diffusion-v1-5/stable-diffusion-v1-5", lora="someone/style-lora",
                                    ip_adapter="h94/IP-Adapter", controlnet="none")
    assert o.model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert method_options("animatediff")(motion_adapter="mine", model="runwayml/sd").motion_adapter == "mine"
    assert method_options("wan")(model="Wan-AI/Wan2.2-Animate-14B-Diffusers").model.startswith("Wan-AI/")
    assert method_options("gan")(checkpoint="run").checkpoint == "run"
    for name in ("org/name", "org/name.v2", "Wan-AI/Wan2.2-Animate-14B-Diffusers", "sd", "mine"):
        assert not clearly_local(name), name
    for name in ("./sd", "../sd", "/abs/sd", "~/sd", "sd.safetensors", "a/b.ckpt", "a/b/c", "x.pth", "x.bin", "x.pt", "D:/sd15", "c:\\models\\sd"):
        assert clearly_local(name) and is_local(name), name  # what is refused early would never load


def write_png(path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(path)
    return path


def test_an_existing_path_must_hold_what_its_flag_loads(tmp_path):
    diffusion = method_options("diffusion")
    png, config = write_png(tmp_path / "photo.png"), tmp_path / "config.json"
    config.write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=rf"^--model {png}: not a weights file \(safetensors or PyTorch\); pass a diffusers"):
        diffusion(model=str(png))
    with pytest.raises(UsageError, match=rf"^--model {empty}: no model_index.json in this folder; pass"):
        diffusion(model=str(empty))
    with pytest.raises(UsageError, match=rf"^--lora {config}: not a weights file"):
        diffusion(lora=str(config))
    with pytest.raises(UsageError, match=rf"^--controlnet {empty}: no config.json in this folder"):
        diffusion(controlnet=str(empty))
    with pytest.raises(UsageError, match=rf"^--controlnet {config}: a file, not a folder"):
        diffusion(controlnet=str(config))
    with pytest.raises(UsageError, match=rf"^--model-config {empty}: no model_index.json in this folder"):
        diffusion(model_config=empty)
    with pytest.raises(UsageError, match=rf"^--ip-adapter {empty}: no .safetensors/.bin file in it"):
        diffusion(ip_adapter=str(empty))
    with pytest.raises(UsageError, match=rf"^--motion-adapter {png}: a file, not a folder"):
        method_options("animatediff")(motion_adapter=str(png))
    # a .safetensors name on a torch.save file would be read as safetensors, and fail
    torch.save({"w": torch.zeros(2)}, tmp_path / "lora.safetensors")
    with pytest.raises(UsageError, match="^--lora .*lora.safetensors: holds torch weights but is named .safetensors; "
                                         "rename it to .ckpt or .bin"):
        diffusion(lora=str(tmp_path / "lora.safetensors"))
    assert "\n" not in str(pytest.raises(UsageError, diffusion, model=str(png)).value)


def test_a_folder_of_another_model_is_refused_by_wans_options(tmp_path):
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(UsageError, match=r"^--model .*sd: not a Wan-Animate diffusers folder \(its model_index.json "
                                         r"says StableDiffusionPipeline\)"):
        method_options("wan")(model=str(tmp_path / "sd"))
    (tmp_path / "wan").mkdir()
    (tmp_path / "wan" / "model_index.json").write_text(json.dumps({"_class_name": "WanAnimatePipeline"}))
    assert method_options("wan")(model=str(tmp_path / "wan")).model == str(tmp_path / "wan")


def test_real_model_folders_and_files_pass(tiny_sd, tmp_path):
    from safetensors.torch import save_file

    sd, cn = tiny_sd
    save_file({"w": torch.zeros(2)}, tmp_path / "lora.safetensors")
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.ckpt")
    torch.save({"w": torch.zeros(2)}, tmp_path / "old.ckpt", _use_new_zipfile_serialization=False)
    (tmp_path / "ip" / "image_encoder").mkdir(parents=True)  # the weights and their CLIP vision encoder
    save_file({"w": torch.zeros(2)}, tmp_path / "ip" / "ip-adapter.safetensors")
    for model in (sd, tmp_path / "model.ckpt", tmp_path / "old.ckpt"):
        o = method_options("diffusion")(model=str(model), controlnet=str(cn), lora=str(tmp_path / "lora.safetensors"),
                                        ip_adapter=str(tmp_path / "ip"), model_config=sd)
        assert o.model == str(model)


def test_weights_format_reads_the_first_bytes(tmp_path):
    from safetensors.torch import save_file

    from posekit.methods.diffusion.models import weights_format

    save_file({"w": torch.zeros(2)}, tmp_path / "a.safetensors")
    torch.save({"w": torch.zeros(2)}, tmp_path / "b.pth")
    torch.save({"w": torch.zeros(2)}, tmp_path / "c.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "c.json").write_text('{"a": 1}')
    assert [weights_format(tmp_path / n) for n in ("a.safetensors", "b.pth", "c.pth")] == ["safetensors", "torch", "torch"]
    assert [weights_format(p) for p in (FIGURE, tmp_path / "empty.bin", tmp_path / "c.json", tmp_path / "none")] == [None] * 4


def test_a_wrong_or_missing_gan_checkpoint_fails_with_the_options(tmp_path, monkeypatch):
    from posekit.methods.patn.method import PatnOptions

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"^--checkpoint ./run/netG.safetensors: no such file or folder$"):
        PatnOptions(checkpoint="./run/netG.safetensors")
    (tmp_path / "config.json").write_text("{}")
    for wrong in (str(FIGURE), "config.json"):
        with pytest.raises(UsageError) as e:
            PatnOptions(checkpoint=wrong)
        assert str(e.value) == (f"--checkpoint {wrong}: not a PATN checkpoint (a train-gan run folder, a .safetensors, "
                                "or latest_net_netG.pth)")
    torch.save({"w": torch.zeros(1)}, tmp_path / "netG.safetensors")
    with pytest.raises(UsageError, match="not a PATN checkpoint"):
        PatnOptions(checkpoint="netG.safetensors")
    torch.save({"w": torch.zeros(1)}, tmp_path / "latest_net_netG.pth")
    assert PatnOptions(checkpoint="latest_net_netG.pth").checkpoint == "latest_net_netG.pth"
    # a folder: the weights it holds are checked alike (its netG.safetensors is the torch file above)
    with pytest.raises(UsageError, match=f"^--checkpoint {tmp_path / 'netG.safetensors'}: not a PATN checkpoint"):
        PatnOptions(checkpoint=str(tmp_path))
    (tmp_path / "netG.safetensors").unlink()
    assert PatnOptions(checkpoint=str(tmp_path)).checkpoint == str(tmp_path)  # latest_net_netG.pth
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"^--checkpoint empty: no netG.safetensors, checkpoint-N/ or "
                                         r"latest_net_netG.pth in this folder; pass a train-gan run folder"):
        PatnOptions(checkpoint="empty")
    assert PatnOptions().checkpoint is None  # the library may pass the weights in as models=


def test_a_checkpoint_torch_cannot_read_is_one_line_that_never_says_weights_only(tmp_path):
    from posekit.methods.patn.model import load_official_generator

    import argparse

    torch.save({"net": argparse.Namespace(a=1)}, tmp_path / "objects.pth")  # not tensors: weights_only refuses it
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "objects.pth").read_bytes()[:40])
    for path, why in [(FIGURE, "not a PyTorch file"), (tmp_path / "objects.pth", "holds Python objects"),
                      (tmp_path / "truncated.pth", "damaged")]:
        with pytest.raises(PosekitError) as e:
            load_official_generator(path)
        message = str(e.value)
        assert message.startswith(f"--checkpoint {path}: not a PATN checkpoint (cannot read it as a PyTorch state_dict: ")
        assert why in message and "\n" not in message and "weights_only" not in message and "arbitrary" not in message


def test_gan_needs_an_existing_checkpoint_on_the_command_line(tmp_path):
    from posekit.commands.method_flags import check_required_flags

    with pytest.raises(UsageError, match="^--method gan needs --checkpoint"):
        check_required_flags("gan", {"checkpoint": None})
    with pytest.raises(UsageError, match="^--checkpoint run: no such file or folder$"):
        check_required_flags("gan", {"checkpoint": "run"})  # on the command line a bare name is a path too
    check_required_flags("gan", {"checkpoint": str(tmp_path)})
    check_required_flags("warp", {"checkpoint": None})


@pytest.mark.parametrize("args, line", [
    (("--method", "gan", "--checkpoint", FIGURE),
     f"--checkpoint {FIGURE}: not a PATN checkpoint (a train-gan run folder, a .safetensors, or latest_net_netG.pth)"),
    (("--method", "diffusion", "--model", "./nomodel"), "--model ./nomodel: no such file or folder"),
    (("--method", "gan"), "--method gan needs --checkpoint: a train-gan run folder, a netG .safetensors, "
                          "or the authors' latest_net_netG.pth"),
])
def test_the_cli_fails_before_any_work(run_posekit, astronaut_path, tmp_path, args, line):
    """On a real photo: exit 2 and one line, before the pose is detected or anything written."""
    r = run_posekit("transfer", astronaut_path, "--pose", "walk", *args, "--out", tmp_path / "x.png", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"posekit: error: {line}"]
    assert "detecting" not in r.stderr and "lllyasviel" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_animate_fails_before_any_work_too(run_posekit, astronaut_path, tmp_path):
    r = run_posekit("animate", astronaut_path, "--poses", "walk", "--method", "animatediff", "--lora", "./nolora",
                    "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["posekit: error: --lora ./nolora: no such file or folder"]
    assert not (tmp_path / "out").exists()


def test_a_gan_run_folder_without_weights_fails_before_any_work(run_posekit, astronaut_path, tmp_path):
    (tmp_path / "run" / "samples").mkdir(parents=True)  # a train-gan --out that never saved a checkpoint
    r = run_posekit("animate", astronaut_path, "--poses", "wave", "--method", "gan", "--checkpoint", "run",
                    "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "posekit: error: --checkpoint run: no netG.safetensors, checkpoint-N/ or latest_net_netG.pth in this folder; "
        "pass a train-gan run folder (--out of train-gan) or the weights file"]
    assert not (tmp_path / "out").exists()


def test_a_folder_given_to_the_wrong_flag_says_what_it_is(tmp_path):
    """A ControlNet folder passed as --motion-adapter, a Wan pipeline as an SD --model, an
    IP-Adapter file without its image encoder: one line before any load (they were diffusers'
    errors at load time, cut off mid-sentence, exit 1)."""
    import json

    from posekit.methods.diffusion.models import check_model_path

    def folder(name, file, cls):
        (tmp_path / name).mkdir()
        (tmp_path / name / file).write_text(json.dumps({"_class_name": cls}))
        return str(tmp_path / name)

    cn, motion = folder("cn", "config.json", "ControlNetModel"), folder("motion", "config.json", "MotionAdapter")
    wan = folder("wan", "model_index.json", "WanAnimatePipeline")
    sd = folder("sd", "model_index.json", "StableDiffusionPipeline")
    check_model_path(cn, "--controlnet")
    check_model_path(motion, "--motion-adapter")
    check_model_path(sd, "--model")
    for value, flag, says in [(motion, "--controlnet", "MotionAdapter (pass it as --motion-adapter)"),
                              (cn, "--motion-adapter", "ControlNetModel (pass it as --controlnet)"),
                              (wan, "--model", "WanAnimatePipeline;"), (wan, "--model-config", "WanAnimatePipeline;")]:
        with pytest.raises(UsageError) as e:
            check_model_path(value, flag)
        assert str(e.value).startswith(f"{flag} {value}: its ") and says in str(e.value)
    (tmp_path / "ip").mkdir()
    weights = tmp_path / "ip" / "ip-adapter-plus_sd15.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, weights)
    with pytest.raises(UsageError, match="no image_encoder/ folder next to the weights"):
        check_model_path(str(weights), "--ip-adapter")
    (tmp_path / "ip" / "image_encoder").mkdir()
    check_model_path(str(weights), "--ip-adapter")
    check_model_path(str(tmp_path / "ip"), "--ip-adapter")  # the folder holding both


def test_a_pose_file_of_unknown_length_refuses_only_the_files_it_writes(run_posekit, tmp_path):
    """`poses show` and `transfer` from a pose file (its frame count unknown before it is read):
    a file of the user's with a frame name this run does not write (frame 7 of a 1-frame pose) is
    left alone and the run goes on (every frame-like file was refused); one at a name it does
    write is still refused, before anything is written."""
    keypoints, photo = REPO / "examples" / "figure_keypoints.json", REPO / "examples" / "figure.png"
    show, images = tmp_path / "show", tmp_path / "images"
    show.mkdir(), images.mkdir()
    (show / "frame_007_pose.png").write_bytes(b"mine")
    (images / "007.png").write_bytes(b"mine")
    proc = run_posekit("poses", "show", keypoints, "--out", show)
    assert proc.returncode == 0, proc.stderr
    assert (show / "frame_000_pose.png").is_file() and (show / "frame_007_pose.png").read_bytes() == b"mine"
    proc = run_posekit("transfer", photo, "--pose", keypoints, "--out", images)
    assert proc.returncode == 0, proc.stderr
    assert (images / "000.png").is_file() and (images / "007.png").read_bytes() == b"mine"
    for args, folder, name in ((("poses", "show", keypoints), "show2", "frame_000_pose.png"),
                               (("transfer", photo, "--pose", keypoints), "images2", "000.png")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(b"mine")
        proc = run_posekit(*args, "--out", tmp_path / folder)
        assert proc.returncode == 1 and "posekit did not write it" in proc.stderr and name in proc.stderr, proc.stderr
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [name]
        assert (tmp_path / folder / name).read_bytes() == b"mine"


def test_an_out_file_over_its_photo_names_the_out_as_typed(tmp_path, monkeypatch):
    """`transfer fig.png --out fig.png`: the error names `--out fig.png`, not the folder it is in."""
    import shutil

    from posekit.pipeline import transfer

    shutil.copy(FIGURE, tmp_path / "fig_copy.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as e:
        transfer("fig_copy.png", ["walk:side"], "fig_copy.png")
    assert str(e.value) == "--out fig_copy.png: would write over the input fig_copy.png; choose another --out"


def test_a_folder_of_posekits_own_frames_as_the_photo_says_what_it_holds(run_posekit, tmp_path):
    """OUT/frames of an earlier run given as the photo: not only "no photos found" (it holds
    PNGs), but that they are an earlier run's outputs, and what to pass instead; named one by one
    they are animated like any photos."""
    first = run_posekit("animate", FIGURE, "--poses", "walk", "--frames", "2", "--out", tmp_path / "run",
                        "--no-evaluate")
    assert first.returncode == 0, first.stderr
    r = run_posekit("animate", tmp_path / "run" / "frames", "--poses", "walk", "--frames", "2",
                    "--out", tmp_path / "again", "--no-evaluate")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"posekit: error: {tmp_path / 'run' / 'frames'}: no photos found, only the outputs "
                               "of an earlier posekit run (2 images, such as ")
    assert "pass the photo that run animated" in r.stderr and not (tmp_path / "again").exists()
    frames = sorted((tmp_path / "run" / "frames").glob("*.png"))
    r = run_posekit("animate", *frames, "--poses", "walk", "--frames", "2", "--out", tmp_path / "again",
                    "--no-evaluate")
    assert r.returncode == 0, r.stderr


"""Loading SD / ControlNet / LoRA from folders, files and hub ids, and the errors when we can't."""

from __future__ import annotations

import pytest
import torch

from tiny_sd import make_tiny_single_file


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_sd):
    return tiny_sd


def test_folders_load_as_the_pipeline_asked_for(tiny):
    from diffusers import StableDiffusionControlNetImg2ImgPipeline, StableDiffusionPipeline

    from posekit.methods.diffusion.models import load_pipeline

    sd, cn = tiny
    pipe = load_pipeline(str(sd), controlnet=str(cn), device="cpu")
    assert isinstance(pipe, StableDiffusionControlNetImg2ImgPipeline)
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32  # CPU: float32
    assert pipe.vae_scale_factor == 8  # the tiny model is shaped like SD 1.5
    text = load_pipeline(str(sd), controlnet="none", img2img=False, device="cpu")
    assert type(text) is StableDiffusionPipeline and not hasattr(text, "controlnet")


def test_hub_ids_that_are_not_cached_name_the_model_and_the_flag(tiny):
    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import load_pipeline

    sd, cn = tiny
    with pytest.raises(ModelNotFoundError) as e:  # conftest keeps the hub offline
        load_pipeline("posekit-tests/no-such-model", controlnet=None, device="cpu")
    assert str(e.value) == ("posekit-tests/no-such-model is not downloaded and the hub is unreachable; "
                            "run `hf download posekit-tests/no-such-model` or pass --model PATH")
    with pytest.raises(ModelNotFoundError, match=r"posekit-tests/no-such-controlnet .*--controlnet PATH"):
        load_pipeline(str(sd), controlnet="posekit-tests/no-such-controlnet", device="cpu")


def test_paths_are_never_sent_to_the_hub(tiny, tmp_path):
    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import is_local, load_pipeline

    assert not is_local("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert all(is_local(p) for p in ("./sd", "/abs/sd", "model.safetensors", "a/b/c", "sd"))
    sd, _ = tiny
    with pytest.raises(ModelNotFoundError, match="--model .*missing: no such file or folder"):
        load_pipeline(str(tmp_path / "missing"), controlnet=None, device="cpu")
    with pytest.raises(ModelNotFoundError, match="--lora .*nope.safetensors: no such file or folder"):
        load_pipeline(str(sd), controlnet=None, lora=str(tmp_path / "nope.safetensors"), device="cpu")
    with pytest.raises(ModelNotFoundError, match="--model .*cannot load it"):
        load_pipeline(str(tmp_path), controlnet=None, device="cpu")  # a folder, but no model in it


def test_a_single_file_checkpoint_loads_like_its_folder(tiny, tmp_path):
    """An original-layout .safetensors as model sites ship it, with --model-config offline."""
    import numpy as np
    from PIL import Image

    from posekit.methods.diffusion.models import load_pipeline

    sd, cn = tiny
    ckpt = make_tiny_single_file(sd, tmp_path / "tiny-sd.safetensors")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))

    def run(pipe):
        return pipe("a photo", image=image, control_image=image, strength=0.5, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(0), output_type="np").images[0]

    from_file = run(load_pipeline(str(ckpt), model_config=str(sd), controlnet=str(cn), device="cpu"))
    from_folder = run(load_pipeline(str(sd), controlnet=str(cn), device="cpu"))
    np.testing.assert_array_equal(from_file, from_folder)


def test_single_files_need_configs_offline(tiny, tmp_path):
    from safetensors.torch import save_file

    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    ckpt = tmp_path / "model.safetensors"
    save_file({"something.else": torch.zeros(2)}, ckpt)
    with pytest.raises(ModelNotFoundError, match="--model-config DIR"):
        load_pipeline(str(ckpt), controlnet=None, device="cpu")
    with pytest.raises(ModelNotFoundError, match=r"cannot load it as an SD 1.x checkpoint"):
        load_pipeline(str(ckpt), model_config=str(sd), controlnet=None, device="cpu")
    with pytest.raises(ModelNotFoundError, match="no such file"):
        load_pipeline(str(tmp_path / "gone.ckpt"), controlnet=None, device="cpu")


def test_devices():
    from posekit.errors import UsageError
    from posekit.device import resolve_device
    from posekit.methods.diffusion.models import dtype_for

    assert resolve_device("cpu").type == "cpu" and dtype_for(torch.device("cpu")) == torch.float32
    assert dtype_for(torch.device("cuda")) == torch.float16
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(UsageError, match="--device cuda"):
            resolve_device("cuda")
    with pytest.raises(UsageError, match="--device"):
        resolve_device("toaster")


ATTN = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"  # 16 wide in the tiny UNet


@pytest.mark.parametrize("weights, words", [
    # diffusers' own LoRA layout, made for a wider model (as an SDXL LoRA is for SD 1.5)
    ({f"unet.{ATTN}.lora_A.weight": torch.zeros(4, 40), f"unet.{ATTN}.lora_B.weight": torch.zeros(40, 4)},
     rf"{ATTN}.lora_A is \[4, 40\] in the LoRA, \[4, 16\] in the model"),
    ({"text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(4, 40),
      "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(32, 4)},
     "text encoder weights have other shapes"),
    ({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4)}, "cannot load it"),  # not a LoRA
])
def test_a_lora_that_does_not_fit_is_one_line_naming_the_flag(tiny, tmp_path, weights, words):
    from safetensors.torch import save_file

    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    save_file(weights, tmp_path / "lora.safetensors")
    with pytest.raises(ModelNotFoundError, match=words) as e:
        load_pipeline(str(sd), controlnet=None, lora=str(tmp_path / "lora.safetensors"), device="cpu")
    assert str(e.value).startswith(f"--lora {tmp_path / 'lora.safetensors'}: ") and "\n" not in str(e.value)


def test_cli_with_a_lora_of_another_model(tiny, tmp_path, run_posekit):
    from safetensors.torch import save_file

    from conftest import REPO

    sd, _ = tiny
    save_file({f"unet.{ATTN}.lora_A.weight": torch.zeros(4, 40), f"unet.{ATTN}.lora_B.weight": torch.zeros(40, 4)},
              tmp_path / "lora.safetensors")
    figure = REPO / "examples" / "figure_keypoints.json"
    r = run_posekit("transfer", REPO / "examples" / "figure.png", "--source-pose", figure, "--pose", figure,
                    "--method", "diffusion", "--model", sd, "--controlnet", "none",
                    "--lora", tmp_path / "lora.safetensors", "--device", "cpu", "--out", tmp_path / "o.png")
    assert r.returncode == 1 and not (tmp_path / "o.png").exists()
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--lora" in r.stderr and "cannot load it into this model" in r.stderr


def test_a_lora_folder_must_hold_lora_weights_said_before_any_work(tiny, tmp_path):
    """A pipeline folder (a full DreamBooth run) given to --lora failed after pose detection with
    diffusers' "no file named pytorch_lora_weights.bin"; now it is a usage error pointing to
    --model, and so is a folder with no weights file, or several."""
    from safetensors.torch import save_file

    from posekit.errors import UsageError
    from posekit.methods.diffusion.method import DiffusionOptions
    from posekit.methods.diffusion.models import check_model_path, lora_weight_name

    sd, _ = tiny
    with pytest.raises(UsageError) as e:
        DiffusionOptions(model=str(sd), controlnet="none", lora=str(sd), device="cpu")
    assert str(e.value) == (f"--lora {sd}: a diffusers pipeline folder (model_index.json), not a LoRA; "
                            f"pass it as --model {sd}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"--lora .*empty: no LoRA weights in this folder"):
        check_model_path(str(empty), "--lora")
    one = tmp_path / "one"
    one.mkdir()
    save_file({"x": torch.zeros(1)}, one / "my_style.safetensors")
    (one / "optimizer.safetensors").write_bytes(b"")  # training state: not a candidate, as diffusers skips it
    check_model_path(str(one), "--lora")
    assert lora_weight_name(one) == "my_style.safetensors"
    save_file({"x": torch.zeros(1)}, one / "other.safetensors")
    with pytest.raises(UsageError, match=r"2 weight files in this folder \(my_style.safetensors, other.safetensors\)"):
        check_model_path(str(one), "--lora")
    save_file({"x": torch.zeros(1)}, one / "pytorch_lora_weights.safetensors")  # diffusers' own name wins
    assert lora_weight_name(one) == "pytorch_lora_weights.safetensors"


def test_a_wan_folder_given_to_an_sd_method_points_to_method_wan(tmp_path):
    from posekit.errors import UsageError
    from posekit.methods.animatediff.method import AnimateDiffOptions
    from posekit.methods.diffusion.method import DiffusionOptions

    (tmp_path / "model_index.json").write_text('{"_class_name": "WanAnimatePipeline"}')
    for options in (DiffusionOptions, AnimateDiffOptions):
        with pytest.raises(UsageError) as e:
            options(model=str(tmp_path), device="cpu")
        assert str(e.value) == (f"--model {tmp_path}: its model_index.json says WanAnimatePipeline; that is a "
                                "Wan-Animate model: use it with --method wan")

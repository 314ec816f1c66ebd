"""Error hints and docs name commands that exist (huggingface_hub's CLI is `hf`; `huggingface-cli`
is gone from current releases)."""

from __future__ import annotations

import pytest

from conftest import REPO
from posekit.errors import ModelNotFoundError


def test_openpose_weights_hint_is_a_working_hf_command():
    from posekit.pose.detect.openpose import WEIGHTS_NAME, weights_path

    with pytest.raises(ModelNotFoundError) as e:  # conftest keeps the hub offline
        weights_path("posekit-tests/no-such-annotators")
    assert f"hf download posekit-tests/no-such-annotators {WEIGHTS_NAME} --local-dir DIR" in str(e.value)
    assert "--model DIR" in str(e.value)


def test_no_hint_or_guide_names_huggingface_cli():
    files = [*(REPO / "posekit").rglob("*.py"), *(REPO / "docs").glob("*.md"), REPO / "README.md"]
    assert [str(f) for f in files if "huggingface-cli" in f.read_text()] == []


def test_every_missing_model_is_named_in_one_error_before_any_loads(tmp_path, monkeypatch):
    """Offline, SD, its ControlNet and an IP-Adapter all missing: one error naming each with its
    flag, raised before the first model loads (not one per run, 20-45 s each)."""
    from posekit.methods.diffusion import models

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the missing ones were named")

    monkeypatch.setattr(models, "load_controlnet", no_loading)
    monkeypatch.setattr(models, "_load_base", no_loading)
    with pytest.raises(ModelNotFoundError) as e:
        models.load_pipeline("posekit-tests/no-such-sd", controlnet="posekit-tests/no-such-cn", device="cpu",
                             ip_adapter="posekit-tests/no-such-ip", lcm=True)
    text = str(e.value)
    assert "\n" not in text
    for name, flag in (("posekit-tests/no-such-cn", "--controlnet PATH"), ("posekit-tests/no-such-sd", "--model PATH"),
                       ("posekit-tests/no-such-ip", "--ip-adapter PATH")):
        assert f"`hf download {name}` or pass {flag}" in text, text
    assert f"`hf download {models.LCM_LORA} {models.LCM_LORA_WEIGHT}` (for --lcm)" in text
    assert text.startswith("posekit-tests/no-such-cn is not downloaded and the hub is unreachable; ")
    # a model that is here (a local folder) is not named: only what is missing
    with pytest.raises(ModelNotFoundError) as e:
        models.load_pipeline(str(tmp_path), controlnet="posekit-tests/no-such-cn", device="cpu")
    assert "no-such-cn" in str(e.value) and str(tmp_path) not in str(e.value)
    assert " either" not in str(e.value)  # one missing model: the one-model message


def test_animatediff_names_the_motion_adapter_with_the_other_missing_models(monkeypatch):
    from posekit.methods.animatediff import method as animatediff
    from posekit.methods.diffusion import models

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the missing ones were named")

    monkeypatch.setattr(animatediff, "load_motion_adapter", no_loading)
    monkeypatch.setattr(models, "load_controlnet", no_loading)
    options = animatediff.AnimateDiffOptions(model="posekit-tests/no-such-sd", controlnet="posekit-tests/no-such-cn",
                                             motion_adapter="posekit-tests/no-such-motion", device="cpu")
    with pytest.raises(ModelNotFoundError) as e:
        animatediff.load_animatediff(options)
    text = str(e.value)
    assert "\n" not in text
    for name, flag in (("posekit-tests/no-such-motion", "--motion-adapter"), ("posekit-tests/no-such-cn", "--controlnet"),
                       ("posekit-tests/no-such-sd", "--model")):
        assert f"`hf download {name}` or pass {flag} PATH" in text, text


def included(files, hint):
    """What `hf download REPO --include ...` in `hint` fetches of `files` (huggingface_hub matches with fnmatch)."""
    import fnmatch
    import re

    patterns = re.findall(r'--include "([^"]+)"', hint)
    return [f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)]


def test_motion_adapter_and_animatelcm_hints_fetch_only_what_a_run_loads(monkeypatch):
    """v1-5-3 holds its adapter twice (1.7 GB each), AnimateLCM 4.7 GB in four files: the offline
    error names the config and the one weights file the device's dtype loads (+ AnimateLCM's LoRA)."""
    import torch

    from posekit.methods.animatediff import method as animatediff
    from posekit.methods.animatediff.method import ANIMATELCM, ANIMATELCM_LORA, DEFAULT_MOTION_ADAPTER, motion_download

    v153 = ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "README.md"]
    lcm = [*v153, "AnimateLCM_sd15_t2v.ckpt", ANIMATELCM_LORA]
    for dtype, fp16 in ((torch.float16, ".fp16"), (torch.float32, "")):
        weights = f"diffusion_pytorch_model{fp16}.safetensors"
        assert included(v153, motion_download(DEFAULT_MOTION_ADAPTER, dtype)) == ["config.json", weights]
        assert included(lcm, motion_download(ANIMATELCM, dtype, lcm=True)) == ["config.json", weights, ANIMATELCM_LORA]
    assert motion_download("someone/their-adapter", torch.float16) is None  # their layout: all of it

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the missing ones were named")

    monkeypatch.setattr(animatediff, "load_motion_adapter", no_loading)
    with pytest.raises(ModelNotFoundError) as e:  # conftest keeps the hub offline, its cache empty
        animatediff.load_animatediff(animatediff.AnimateDiffOptions(lcm=True, device="cpu"))
    assert str(e.value).startswith(f"{ANIMATELCM} is not downloaded and the hub is unreachable; run `hf download "
                                   f'{ANIMATELCM} --include "config.json" --include "diffusion_pytorch_model.safetensors" '
                                   f'--include "{ANIMATELCM_LORA}"` or pass --motion-adapter PATH; '), str(e.value)


def test_the_offline_error_in_docs_is_the_one_posekit_gives(monkeypatch):
    """docs/diffusion.md quotes the offline error on the CPU with neither model downloaded:
    it must be, byte for byte, what load_pipeline raises (the CLI prints "posekit: error: " + it)."""
    from posekit.methods.diffusion import models

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the missing ones were named")

    monkeypatch.setattr(models, "load_controlnet", no_loading)
    monkeypatch.setattr(models, "_load_base", no_loading)
    with pytest.raises(ModelNotFoundError) as e:
        models.load_pipeline(device="cpu")
    quoted = [line.strip() for line in (REPO / "docs" / "diffusion.md").read_text().splitlines()
              if line.strip().startswith("posekit: error: lllyasviel/")]
    assert quoted == [f"posekit: error: {e.value}"]

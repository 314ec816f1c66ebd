"""Loading Stable Diffusion, ControlNet and LoRA weights from wherever users keep them.

    pipe = load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5", controlnet="lllyasviel/...",
                         lora="out/pytorch_lora_weights.safetensors", device="auto")

A model argument is a hub id, a diffusers folder (also one `posekit dreambooth` wrote) or, for
the base model, a single `.safetensors`/`.ckpt` file as users download them from model sites
(read with `from_single_file`; `model_config` names a diffusers folder with the matching configs
when the hub is out of reach). Hub ids are looked up in the local cache first, so a cached model
loads without touching the network; a model that is neither cached nor downloadable becomes one
ModelNotFoundError naming the model and the flag, never a traceback.

Device and precision: CUDA runs in float16 with PyTorch's SDPA attention (diffusers' default
processor on torch 2), everything else in float32 (CPU half precision is slow and lossy).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from posekit.device import resolve_device
from posekit.errors import ModelNotFoundError, PosekitError

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def dtype_for(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


def is_local(name: str) -> bool:
    """A path on disk (or meant as one: a missing path must not be sent to the hub as an id)."""
    p = Path(name).expanduser()
    return (p.exists() or name.startswith((".", "/", "~")) or name.endswith(SINGLE_FILE_SUFFIXES)
            or name.count("/") != 1 or os.sep != "/" and os.sep in name)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# What each flag takes, for the error when a local path does not load.
LOCAL_HINT = {
    "--model": "pass a diffusers pipeline folder or a .safetensors/.ckpt checkpoint file",
    "--controlnet": "pass a diffusers ControlNet folder (config.json + weights) or a hub id",
    "--lora": "pass a LoRA .safetensors file or the folder holding pytorch_lora_weights.safetensors",
}


def from_hub_or_path(load, name: str, flag: str, **kwargs):
    """Call `load(name, **kwargs)` for a folder, or for a hub id from the cache first and then
    the hub; every failure to find the weights becomes one ModelNotFoundError line."""
    if is_local(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"{flag} {name}: no such file or folder")
        try:
            return load(str(path), **kwargs)
        except (OSError, ValueError, KeyError, EnvironmentError) as e:
            raise ModelNotFoundError(f"{flag} {name}: cannot load it ({_first_line(e)}); "
                                     f"{LOCAL_HINT.get(flag, 'pass a diffusers folder')}") from None
    try:
        return load(name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        if _offline():
            raise _not_downloaded(name, flag) from None
    try:
        return load(name, **kwargs)
    except (OSError, ValueError) as e:
        if "does not appear to have" in str(e) or "not fully cached" in str(e) or "Cannot find" in str(e) \
                or "connect" in str(e).lower() or "resolve" in str(e).lower():
            raise _not_downloaded(name, flag) from None
        raise ModelNotFoundError(f"{flag} {name}: cannot load it ({_first_line(e)})") from None


def _not_downloaded(name: str, flag: str) -> ModelNotFoundError:
    # "models/walkcycle" looks like a hub id too: say that no such folder exists either
    top = Path(name).parts[0]
    local = f" (and there is no folder {name} here)" if top != name and Path(top).is_dir() else ""
    return ModelNotFoundError(f"{name} is not downloaded and the hub is unreachable{local}; "
                              f"run `hf download {name}` or pass {flag} PATH")


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def load_controlnet(name: str, dtype: torch.dtype = torch.float32):
    from diffusers import ControlNetModel

    return from_hub_or_path(ControlNetModel.from_pretrained, name, "--controlnet", torch_dtype=dtype)


def pipeline_class(controlnet: bool, img2img: bool = True):
    import diffusers

    if controlnet:
        return diffusers.StableDiffusionControlNetImg2ImgPipeline if img2img else diffusers.StableDiffusionControlNetPipeline
    return diffusers.StableDiffusionImg2ImgPipeline if img2img else diffusers.StableDiffusionPipeline


def load_pipeline(model: str = DEFAULT_MODEL, model_config: str | os.PathLike | None = None,
                  controlnet: str | None = DEFAULT_CONTROLNET, lora: str | None = None,
                  device: str | torch.device = "auto", img2img: bool = True, dtype: torch.dtype | None = None):
    """A ready diffusers pipeline on its device: img2img (or text-to-image), with a ControlNet
    unless `controlnet` is None/'none', LoRA weights added when given. Progress bars off: the
    caller shows its own."""
    device = resolve_device(device)
    dtype = dtype or dtype_for(device)
    _no_loading_bars()
    extra = {"safety_checker": None, "requires_safety_checker": False, "torch_dtype": dtype}
    if controlnet and str(controlnet).lower() != "none":
        extra["controlnet"] = load_controlnet(str(controlnet), dtype)
    cls = pipeline_class("controlnet" in extra, img2img)
    pipe = _load_base(cls, str(model), model_config, extra)
    if lora:
        add_lora(pipe, str(lora))
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _no_loading_bars() -> None:
    """diffusers' and transformers' "Loading components/weights" bars would interleave with ours."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def _load_base(cls, model: str, model_config, extra: dict):
    path = Path(model).expanduser()
    if path.is_file() or (not path.exists() and model.endswith(SINGLE_FILE_SUFFIXES)):
        if not path.exists():
            raise ModelNotFoundError(f"--model {model}: no such file")
        return _load_single_file(cls, path, model_config, extra)
    return from_hub_or_path(cls.from_pretrained, model, "--model", **extra)


def _load_single_file(cls, path: Path, model_config, extra: dict):
    """A checkpoint as downloaded from model sites (original LDM layout). Its configs come from
    --model-config (a diffusers folder) or, online, from the SD 1.5 repository on the hub."""
    config = str(model_config) if model_config else DEFAULT_MODEL
    if model_config and not Path(model_config).is_dir():
        raise ModelNotFoundError(f"--model-config {model_config}: not a folder; pass a diffusers SD 1.x folder")
    local = bool(model_config) or _offline()
    try:
        return cls.from_single_file(str(path), config=config, local_files_only=local, **extra)
    except Exception as e:  # diffusers raises a zoo here (SingleFileComponentError, KeyError, OSError...)
        if not model_config:
            raise ModelNotFoundError(f"--model {path}: cannot load it as an SD 1.x checkpoint ({_first_line(e)}); "
                                     f"if its configs ({DEFAULT_MODEL}) cannot be downloaded here, pass "
                                     "--model-config DIR (a diffusers SD 1.x folder)") from None
        raise ModelNotFoundError(f"--model {path}: cannot load it as an SD 1.x checkpoint with the configs in "
                                 f"{model_config} ({_first_line(e)})") from None


def add_lora(pipe, lora: str) -> None:
    """Load LoRA weights (a pytorch_lora_weights.safetensors file, a folder holding one, or a
    hub id) into the pipeline's UNet and text encoder."""
    path = Path(lora).expanduser()
    if path.is_file():
        load = lambda name, **kw: pipe.load_lora_weights(str(path.parent), weight_name=path.name, **kw)  # noqa: E731
    else:
        load = pipe.load_lora_weights
    try:
        from_hub_or_path(load, lora, "--lora")
    except (PosekitError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # diffusers, peft and transformers raise a zoo for a LoRA of another model
        raise ModelNotFoundError(f"--lora {lora}: cannot load it into this model ({_lora_mismatch(e)}); "
                                 "pass a LoRA file trained for this --model (an SD 1.x LoRA for SD 1.x)") from None


def _lora_mismatch(e: Exception) -> str:
    """The first shape that differs, from torch's load_state_dict message, when it says so."""
    m = re.search(r"size mismatch for (\S+?)(?:\.default\w*)?\.weight: copying a param with shape torch.Size"
                  r"\((\[.*?\])\) from checkpoint, the shape in current model is torch.Size\((\[.*?\])\)", str(e))
    if m:
        return f"{m[1]} is {m[2]} in the LoRA, {m[3]} in the model"
    if "mismatched_sizes" in str(e):  # transformers (the text encoder) only prints its report
        return "its text encoder weights have other shapes"
    return f"{type(e).__name__}: {_first_line(e)}"

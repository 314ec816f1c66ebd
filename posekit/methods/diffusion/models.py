"""Loading Stable Diffusion, ControlNet and LoRA weights from wherever users keep them.

    pipe = load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5", controlnet="lllyasviel/...",
                         lora="out/pytorch_lora_weights.safetensors", device="auto")

A model argument is a hub id, a diffusers folder (also one `posekit dreambooth` wrote) or, for
the base model, a single `.safetensors`/`.ckpt` file as users download them from model sites
(read with `from_single_file`; `model_config` names a diffusers folder with the matching configs
when the hub is out of reach). Hub ids are looked up in the local cache first, so a cached model
loads without touching the network; a model that is neither cached nor downloadable becomes one
ModelNotFoundError naming the model and the flag, never a traceback, and every other model the
run lacks with it (`all_missing_named`: offline, before any loads), so one run lists every download. Before that, when a
method's options are made, `check_model_paths` refuses a local path that is missing or holds the
wrong thing (the rule for what is "clearly" a path, never a hub id 'org/name': `clearly_local`).

Device and precision: CUDA runs in float16 with PyTorch's SDPA attention (diffusers' default
processor on torch 2), everything else in float32 (CPU half precision is slow and lossy). In
float16 the repository's fp16 weight files (`variant="fp16"`: half the download) are tried first,
then the full ones, so a folder without them still loads.

What the other SD 1.x methods (animatediff) share from here, one function each:

    set_scheduler(pipe, "unipc")        # unipc | dpm++ | ddim | euler-a | model | lcm
    add_lcm_lora(pipe)                  # LCM-LoRA next to the user's --lora, LCMScheduler
    add_extra_lora(pipe, repo, file, "name", 0.8)  # any such LoRA (AnimateLCM's), active with --lora
    add_ip_adapter(pipe, "h94/IP-Adapter", 0.6)   # IP-Adapter Plus + its CLIP ViT-H image encoder
    place(pipe, "cuda", offload="model")          # onto the device, or CPU offload
    images = decode(pipe, latents)      # VAE decode (slicing/tiling, float32 retry on NaN)
    with out_of_memory_hint(offload_suggestion("none"), "the frames"): ...  # OOM -> one line
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch

from posekit.device import resolve_device
from posekit.errors import ModelNotFoundError, PosekitError, UsageError

if TYPE_CHECKING:  # numpy is imported where images are made
    import numpy as np

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_CONTROLNET = "lllyasviel/control_v11p_sd15_openpose"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
SCHEDULERS = ("unipc", "dpm++", "ddim", "euler-a", "model")  # --scheduler (--lcm brings its own: lcm)
OFFLOADS = ("none", "model", "sequential")  # --offload
# IP-Adapter Plus for SD 1.5, as diffusers documents it: the adapter and the CLIP ViT-H/14 image
# encoder it was trained with, both in the models/ folder of the h94/IP-Adapter repository
IP_ADAPTER = "h94/IP-Adapter"
IP_ADAPTER_SUBFOLDER = "models"
IP_ADAPTER_WEIGHT = "ip-adapter-plus_sd15.safetensors"
IP_ADAPTER_DOWNLOAD = (f"hf download {IP_ADAPTER} models/{IP_ADAPTER_WEIGHT} models/image_encoder/config.json "
                       "models/image_encoder/model.safetensors")
LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"  # LCM-LoRA for SD 1.5: 4-8 steps at guidance 1-2
LCM_LORA_WEIGHT = "pytorch_lora_weights.safetensors"
TILE_ABOVE = 768  # decode with VAE tiling when an image is larger than this on a side (sheets)


def dtype_for(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


def is_local(name: str) -> bool:
    """A path on disk (or meant as one: a missing path must not be sent to the hub as an id)."""
    return Path(name).expanduser().exists() or name.count("/") != 1 or clearly_local(name)


def clearly_local(name: str) -> bool:
    """Whether a flag's value can only be meant as a path, so that a missing one is the user's
    typo, said when the options are made (`check_local_path`), not after other models loaded:
    it starts with '.', '/' or '~', ends with a weights suffix (SINGLE_FILE_SUFFIXES), has more
    than one '/', holds the platform's own separator or starts with a drive ('D:/'). A hub id is 'org/name' (one '/', no
    suffix), so none is ever taken for a path; a bare name ('sd', 'mine') might be either and is
    left to loading (`is_local` treats it as a path there: "no such file or folder"). Every
    name this calls local `is_local` does too: the early check never refuses what would load."""
    return (name.startswith((".", "/", "~")) or name.endswith(SINGLE_FILE_SUFFIXES) or name.count("/") > 1
            or (os.sep != "/" and os.sep in name) or re.match(r"[A-Za-z]:[\\/]", name) is not None)


def check_local_path(value, flag: str) -> Path | None:
    """The options' check of a model flag, before any work: a value that is `clearly_local` but
    does not exist is a UsageError ("--model ./nomodel: no such file or folder"). Returns the
    path when it exists (the caller checks what is in it), None for a hub id or nothing given."""
    if value is None or str(value) == "":
        return None
    name = str(value)
    path = Path(name).expanduser()
    if path.exists():
        return path
    if clearly_local(name):
        raise UsageError(f"{flag} {name}: no such file or folder")
    return None


def weights_format(path: str | os.PathLike) -> str | None:
    """What a weights file holds, from its first bytes: "safetensors" (an 8-byte header length,
    then its JSON), "torch" (torch.save's zip, or the legacy pickle of older PyTorch), "gguf", or
    None (an image, a JSON config, text, an empty file: nothing that loads as weights)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = os.path.getsize(path)
    except OSError:
        return None
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        return "torch"
    if head.startswith(b"GGUF"):
        return "gguf"
    return None


def check_model_paths(options, model_flags=("model", "controlnet", "lora", "ip_adapter", "motion_adapter")) -> None:
    """Every local path among an SD method's options, checked when the options are made (so a
    mistyped --lora is one line before the ControlNet and the model load): missing and
    `clearly_local` -> "no such file or folder"; an existing one must be what its flag loads:
    --model a weights file or a folder with model_index.json, --model-config such a folder,
    --controlnet and --motion-adapter a folder with config.json, --lora and --ip-adapter a weights
    file or a folder (an IP-Adapter folder with one weight file). All UsageErrors, naming the flag."""
    for name in model_flags:
        value = getattr(options, name, None)
        if name == "controlnet" and value is not None and str(value).lower() == "none":
            continue
        check_model_path(value, "--" + name.replace("_", "-"))
    config = getattr(options, "model_config", None)
    if config is not None:  # always a folder: any name, bare or not, that is not there is a typo
        path = Path(str(config)).expanduser()
        if not path.exists():
            raise UsageError(f"--model-config {config}: no such folder; {LOCAL_HINT['--model-config']}")
        check_model_path(config, "--model-config")


def check_model_path(value, flag: str) -> None:
    """`check_model_paths` for one flag's value."""
    path = check_local_path(value, flag)
    if path is None:
        return
    hint = LOCAL_HINT[flag]
    needs = {"--model": "model_index.json", "--model-config": "model_index.json", "--controlnet": "config.json",
             "--motion-adapter": "config.json"}.get(flag)
    if path.is_file():
        if flag in ("--model-config", "--controlnet", "--motion-adapter"):
            raise UsageError(f"{flag} {value}: a file, not a folder; {hint}")
        found = weights_format(path)
        if found is None:
            raise UsageError(f"{flag} {value}: not a weights file (safetensors or PyTorch); {hint}")
        named = path.suffix.lower() == ".safetensors"
        if named != (found == "safetensors"):  # diffusers picks the reader by the name
            right = ".safetensors" if found == "safetensors" else ".ckpt or .bin"
            raise UsageError(f"{flag} {value}: holds {found} weights but is named {path.suffix or 'without a suffix'}; "
                             f"rename it to {right}")
    elif path.is_dir():
        if needs and not (path / needs).is_file():
            raise UsageError(f"{flag} {value}: no {needs} in this folder; {hint}")
        if needs:
            check_model_class(path / needs, flag, value)
        if flag == "--ip-adapter":
            try:
                _ip_adapter_files(path)
            except ModelNotFoundError as e:
                raise UsageError(str(e)) from None
        if flag == "--lora":
            lora_weight_name(path, value)
    if flag == "--ip-adapter":
        folder, sub, _ = _ip_adapter_files(path)
        if not (folder / sub / "image_encoder").is_dir():
            raise UsageError(f"--ip-adapter {value}: no image_encoder/ folder next to the weights (the CLIP vision "
                             f"encoder they need); {hint}")


LORA_WEIGHTS = ("pytorch_lora_weights.safetensors", "pytorch_lora_weights.bin")  # what diffusers looks for


def lora_weight_name(folder: Path, value=None) -> str:
    """The weights file a --lora folder holds, as diffusers picks it: pytorch_lora_weights
    .safetensors (or .bin), else its one .safetensors (or .bin) file. A UsageError, before any
    work, for a folder that is a whole pipeline (model_index.json: that is a --model) or holds
    no such file, or several (which one is meant?)."""
    value = folder if value is None else value
    if (folder / "model_index.json").is_file():
        raise UsageError(f"--lora {value}: a diffusers pipeline folder (model_index.json), not a LoRA; "
                         f"pass it as --model {value}")
    for name in LORA_WEIGHTS:
        if (folder / name).is_file():
            return name
    for suffix in (".safetensors", ".bin"):  # diffusers skips these names (training state)
        found = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix)
                       and not any(w in p.name for w in ("scheduler", "optimizer", "checkpoint")))
        if len(found) == 1:
            return found[0]
        if found:
            raise UsageError(f"--lora {value}: {len(found)} weight files in this folder ({', '.join(found)}); "
                             "pass the LoRA file itself")
    raise UsageError(f"--lora {value}: no LoRA weights in this folder (pytorch_lora_weights.safetensors or "
                     f"one .safetensors/.bin file); {LOCAL_HINT['--lora']}")


# what another flag loads, by the class its folder's JSON names: a folder passed to the wrong flag
OTHER_FAMILIES = ("XL", "StableDiffusion3", "Wan", "Flux", "Kandinsky", "PixArt", "Sana", "CogVideo", "LTX",
                  "Hunyuan", "Mochi", "Allegro")
CLASS_FLAGS = {"ControlNetModel": "--controlnet", "MotionAdapter": "--motion-adapter"}


def check_model_class(config: Path, flag: str, value) -> None:
    """The class a folder's model_index.json / config.json names (`_class_name`) fits `flag`:
    --controlnet a ControlNetModel, --motion-adapter a MotionAdapter, --model and --model-config
    an SD 1.x pipeline (not SDXL, SD 3, Wan, Flux, ...; nor a ControlNet or motion adapter). A
    UsageError naming what the folder is; a JSON without a class name passes (loading tells)."""
    import json

    try:
        found = json.loads(config.read_text()).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(found, str):
        return
    wanted = {"--controlnet": "ControlNetModel", "--motion-adapter": "MotionAdapter"}.get(flag)
    if wanted is not None and found == wanted:
        return
    if wanted is None and not (found in CLASS_FLAGS or any(f in found for f in OTHER_FAMILIES)):
        return
    elsewhere = f" (pass it as {CLASS_FLAGS[found]})" if CLASS_FLAGS.get(found, flag) != flag else ""
    if found == "WanAnimatePipeline" and flag == "--model":  # the method's --model, not this one's
        raise UsageError(f"--model {value}: its {config.name} says {found}; that is a Wan-Animate model: use it with "
                         "--method wan")
    raise UsageError(f"{flag} {value}: its {config.name} says {found}{elsewhere}; {LOCAL_HINT[flag]}")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# What each flag takes, for the error when a local path does not load.
LOCAL_HINT = {
    "--model": "pass a diffusers pipeline folder or a .safetensors/.ckpt checkpoint file",
    "--controlnet": "pass a diffusers ControlNet folder (config.json + weights) or a hub id",
    "--lora": "pass a LoRA .safetensors file or the folder holding pytorch_lora_weights.safetensors",
    "--ip-adapter": f"pass the IP-Adapter weight file ({IP_ADAPTER_WEIGHT}) with its image_encoder/ folder next to it",
    "--model-config": "pass a diffusers SD 1.x folder (model_index.json and the models' configs)",
    "--motion-adapter": "pass a diffusers MotionAdapter folder (config.json + weights) or a hub id",
}


def from_hub_or_path(load, name: str, flag: str, download: str | None = None, **kwargs):
    """Call `load(name, **kwargs)` for a folder, or for a hub id from the cache first and then
    the hub; every failure to find the weights becomes one ModelNotFoundError line. `download`:
    what that line tells the user to run (default `hf download NAME`, or pass FLAG PATH)."""
    if is_local(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"{flag} {name}: no such file or folder")
        try:
            return load(str(path), **kwargs)
        except (OSError, ValueError, KeyError, EnvironmentError) as e:
            raise ModelNotFoundError(f"{flag} {name}: cannot load it ({first_line(e)}); "
                                     f"{LOCAL_HINT.get(flag, 'pass a diffusers folder')}") from None
    try:
        return load(name, local_files_only=True, **kwargs)
    except (OSError, ValueError):
        if _offline():
            raise _not_downloaded(name, flag, download) from None
    try:
        return load(name, **kwargs)
    except (OSError, ValueError) as e:
        if "does not appear to have" in str(e) or "not fully cached" in str(e) or "Cannot find" in str(e) \
                or "connect" in str(e).lower() or "resolve" in str(e).lower():
            raise _not_downloaded(name, flag, download) from None
        raise ModelNotFoundError(f"{flag} {name}: cannot load it ({first_line(e)})") from None


def _not_downloaded(name: str, flag: str, download: str | None = None) -> ModelNotFoundError:
    return ModelNotFoundError(f"{name} is not downloaded and the hub is unreachable{_no_folder(name)}; "
                              + (download or f"run `hf download {name}` or pass {flag} PATH"))


def _no_folder(name: str) -> str:
    # "models/walkcycle" looks like a hub id too: say that no such folder exists either
    top = Path(name).parts[0]
    return f" (and there is no folder {name} here)" if top != name and Path(top).is_dir() else ""


class HubNeed(NamedTuple):
    """One hub model a run loads."""

    name: str  # repo id (or a local path: never missing)
    flag: str  # the flag that names it
    file: str | None = None  # the file whose presence in the cache says it is downloaded (None: any snapshot)
    download: str | None = None  # the `hf download` hint (None: the default one)


def _cached(name: str, file: str | None) -> bool:
    """Whether the local hub cache holds `file` of the model `name` (any snapshot when None),
    without touching the network."""
    from huggingface_hub import constants, try_to_load_from_cache

    if file is not None:
        return isinstance(try_to_load_from_cache(name, file), str)
    snapshots = Path(constants.HF_HUB_CACHE) / ("models--" + name.replace("/", "--")) / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def missing_models(needs) -> list[HubNeed]:
    """The HubNeeds (repeats of a repository dropped) that are hub ids not in the local cache."""
    seen, missing = set(), []
    for need in needs:
        name, _, file, _ = need
        if name in seen or is_local(name):
            continue
        seen.add(name)
        if not _cached(name, file):
            missing.append(need)
    return missing


def not_downloaded_error(missing) -> ModelNotFoundError:
    """One line for every model in `missing` (HubNeeds): the first as `_not_downloaded` says it,
    each other one "NAME is not downloaded either: run ... or pass FLAG PATH"."""
    parts = []
    for i, (name, flag, _, download) in enumerate(missing):
        todo = download or f"run `hf download {name}` or pass {flag} PATH"
        parts.append(f"{name} is not downloaded and the hub is unreachable{_no_folder(name)}; {todo}" if i == 0
                     else f"{name} is not downloaded either{_no_folder(name)}: {todo}")
    return ModelNotFoundError("; ".join(parts))


@contextmanager
def all_missing_named(needs):
    """Around loading the models `needs` (HubNeeds): offline (HF_HUB_OFFLINE), every one not in
    the cache is one error before anything loads; online, a model the hub cannot give becomes
    an error naming it and every other one missing from the cache too. Either way one run tells
    every `hf download` it needs, not one per run."""
    needs = list(needs)
    missing = missing_models(needs)
    if missing and _offline():
        raise not_downloaded_error(missing)
    try:
        yield
    except ModelNotFoundError as e:
        failed = [m for m in missing if str(e).startswith(f"{m[0]} is not downloaded and the hub is unreachable")]
        if not failed or len(missing) == 1:
            raise
        raise not_downloaded_error(failed + [m for m in missing if m is not failed[0]]) from None


def pipeline_needs(model, model_config=None, controlnet=None, lora=None, *, lcm: bool = False,
                   safety_checker: bool = False, ip_adapter=None, dtype: torch.dtype = torch.float32) -> list[HubNeed]:
    """The hub models `load_pipeline` loads for these arguments, in the order it loads them."""
    needs = []
    if controlnet and str(controlnet).lower() != "none":
        needs.append(HubNeed(str(controlnet), "--controlnet", "config.json",
                             weights_download(str(controlnet), "--controlnet", dtype)))
    model = str(model)
    if not model.endswith(SINGLE_FILE_SUFFIXES):
        needs.append(HubNeed(model, "--model", "model_index.json",
                             weights_download(model, "--model", dtype, safety_checker)))
    if lora:
        needs.append(HubNeed(str(lora), "--lora"))
    if lcm:
        needs.append(HubNeed(LCM_LORA, "--lcm", LCM_LORA_WEIGHT, f"run `hf download {LCM_LORA} {LCM_LORA_WEIGHT}` (for --lcm)"))
    if safety_checker:  # from the model's repository when it has one, else SD 1.5's (`add_safety_checker`)
        def may_have_one(c: str) -> bool:  # a hub id not downloaded yet is named above: it may bring one
            if is_local(c):
                return (Path(c).expanduser() / "safety_checker").is_dir()
            return c == DEFAULT_MODEL or not _cached(c, "model_index.json") or _cached(c, "safety_checker/config.json")

        if not any(may_have_one(str(c)) for c in (model, model_config) if c):
            needs.append(HubNeed(DEFAULT_MODEL, "--safety-checker", "safety_checker/config.json",
                                 safety_download(DEFAULT_MODEL, dtype)))
    if ip_adapter:
        ip = str(ip_adapter)
        needs.append(HubNeed(ip, "--ip-adapter", f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT}",
                             f"run `{IP_ADAPTER_DOWNLOAD}` or pass --ip-adapter PATH" if ip == IP_ADAPTER else None))
    return needs


def first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def weights_download(name: str, flag: str, dtype: torch.dtype, safety_checker: bool = False) -> str | None:
    """The `hf download` that fetches only what the pipeline loads from SD 1.5's or the OpenPose
    ControlNet's repository (both also hold whole-model checkpoints in several formats, over
    10 GB for SD 1.5, and SD 1.5 a safety checker in four): the configs, the tokenizer and the
    UNet's, VAE's and text encoder's weights in the dtype it runs in (fp16 files on a GPU), with
    `safety_checker` the safety checker's too (`safety_download`). None for other repositories
    (their layout is theirs: the whole repository)."""
    if name not in (DEFAULT_MODEL, DEFAULT_CONTROLNET):
        return None
    fp16 = ".fp16" if dtype == torch.float16 else ""
    if name == DEFAULT_CONTROLNET:
        patterns = ["*.json", f"diffusion_pytorch_model{fp16}.safetensors"]
    else:
        patterns = ["*.json", "*.txt", f"*/diffusion_pytorch_model{fp16}.safetensors",  # unet/, vae/
                    f"text_encoder/model{fp16}.safetensors"]
        if safety_checker:
            patterns.append(f"safety_checker/model{fp16}.safetensors")
    include = " ".join(f'--include "{p}"' for p in patterns)
    return f"run `hf download {name} {include}` or pass {flag} PATH"


def safety_download(name: str, dtype: torch.dtype) -> str:
    """The `hf download` of a model's safety checker (its config and the one weights file the
    dtype loads: 0.6 GB in fp16, 1.2 GB in fp32) and feature extractor, for --safety-checker."""
    fp16 = ".fp16" if dtype == torch.float16 else ""
    return (f"run `hf download {name} --include \"safety_checker/config.json\" --include "
            f"\"safety_checker/model{fp16}.safetensors\" --include \"feature_extractor/*\"` or leave out --safety-checker")


def fp16_first(load, dtype: torch.dtype):
    """`load` that, for float16, asks for the fp16 weight files first (`variant="fp16"`, as the
    SD 1.5 and ControlNet repositories have them: half the download) and takes the full ones
    when there are none (a folder of one's own, a fine-tune without them)."""
    if dtype != torch.float16:
        return load

    def load_fp16(name, **kwargs):
        try:
            return load(name, variant="fp16", **kwargs)
        except (OSError, ValueError):
            return load(name, **kwargs)

    return load_fp16


def load_controlnet(name: str, dtype: torch.dtype = torch.float32):
    from diffusers import ControlNetModel

    return from_hub_or_path(fp16_first(ControlNetModel.from_pretrained, dtype), name, "--controlnet", dtype=dtype,
                            download=weights_download(name, "--controlnet", dtype))


def pipeline_class(controlnet: bool, img2img: bool = True):
    import diffusers

    if controlnet:
        return diffusers.StableDiffusionControlNetImg2ImgPipeline if img2img else diffusers.StableDiffusionControlNetPipeline
    return diffusers.StableDiffusionImg2ImgPipeline if img2img else diffusers.StableDiffusionPipeline


def load_pipeline(model: str = DEFAULT_MODEL, model_config: str | os.PathLike | None = None,
                  controlnet: str | None = DEFAULT_CONTROLNET, lora: str | None = None,
                  device: str | torch.device = "auto", img2img: bool = True, dtype: torch.dtype | None = None,
                  *, scheduler: str = "model", lcm: bool = False, safety_checker: bool = False,
                  ip_adapter: str | None = None, ip_adapter_scale: float = 0.6, offload: str = "none"):
    """A ready diffusers pipeline on its device: img2img (or text-to-image), with a ControlNet
    unless `controlnet` is None/'none', LoRA weights added when given, then (see the functions
    below) its scheduler, LCM-LoRA, the safety checker, an IP-Adapter, and placed on the device
    (`offload`). Progress bars off: the caller shows its own."""
    if not lcm:
        check_choice(scheduler, SCHEDULERS, "--scheduler")
    if ip_adapter_scale == 0:  # the adapter adds nothing: its 2.5 GB image encoder is not loaded
        ip_adapter = None
    device = resolve_device(device)
    check_offload(offload, device)
    dtype = dtype or dtype_for(device)
    no_loading_bars()
    extra = {"safety_checker": None, "requires_safety_checker": False, "dtype": dtype}
    with all_missing_named(pipeline_needs(model, model_config, controlnet, lora, lcm=lcm, safety_checker=safety_checker,
                                          ip_adapter=ip_adapter, dtype=dtype)):
        if controlnet and str(controlnet).lower() != "none":
            extra["controlnet"] = load_controlnet(str(controlnet), dtype)
        cls = pipeline_class("controlnet" in extra, img2img)
        pipe = _load_base(cls, str(model), model_config, extra)
        if lora:
            add_lora(pipe, str(lora))
        if lcm:
            add_lcm_lora(pipe)
        else:
            set_scheduler(pipe, scheduler)
        if safety_checker:
            add_safety_checker(pipe, str(model), model_config)
        if ip_adapter:
            add_ip_adapter(pipe, str(ip_adapter), ip_adapter_scale)
    with out_of_memory_hint(offload_suggestion(offload), "the model"):
        return place(pipe, device, offload)


def check_choice(value: str, choices: tuple[str, ...], flag: str) -> None:
    if value not in choices:
        raise UsageError(f"{flag} {value!r}: choose one of {', '.join(choices)}")


def check_offload(offload: str, device: torch.device | str | None = None) -> None:
    """--offload is a choice, and moves models between the CPU and a CUDA GPU only."""
    check_choice(offload, OFFLOADS, "--offload")
    if device is not None:
        check_offload_device(offload, device)


def check_offload_device(offload: str, device: torch.device | str = "auto") -> None:
    """Any --offload but none needs a CUDA GPU as --device (every GPU method's options check
    this, so the mistake is one line before any photo is read or model loaded)."""
    if offload != "none" and resolve_device(device).type != "cuda":
        raise UsageError(f"--offload {offload} moves models between the CPU and a CUDA GPU; on "
                         f"{resolve_device(device).type} use --offload none (or --device cuda)")


def place(pipe, device: str | torch.device = "auto", offload: str = "none"):
    """Put the pipeline where it runs: all of it on `device` (offload none), or in CPU memory
    with each model moved to the GPU while it runs (model: about 3 GB of GPU memory for SD 1.5
    at a small cost in speed) or each layer (sequential: the least memory, several times slower).
    Returns the pipeline, its progress bar off."""
    device = resolve_device(device)
    check_offload(offload, device)
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@contextmanager
def out_of_memory_hint(suggestion: str, what: str):
    """torch.cuda.OutOfMemoryError inside the block -> one PosekitError line: "the GPU ran out of
    memory for WHAT; SUGGESTION" (the flag that saves memory: see `offload_suggestion`)."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise PosekitError(f"the GPU ran out of memory for {what}; {suggestion}") from None


def offload_suggestion(offload: str, smaller: str = "a smaller photo") -> str:
    """What to try after running out of GPU memory under --offload `offload` (SD 1.x methods)."""
    if offload == "none":
        return "try --offload model (about 3 GB of GPU memory) or --offload sequential (the least)"
    if offload == "model":
        return f"try --offload sequential (the least GPU memory, slower) or {smaller}"
    return f"try {smaller} (--offload sequential already uses the least GPU memory)"


def set_scheduler(pipe, name: str) -> None:
    """Replace the pipeline's sampler, built from its own scheduler config (the model's beta
    schedule and prediction type): unipc (UniPC: good images in 20 steps), dpm++ (DPM-Solver++
    with Karras sigmas), ddim, euler-a (Euler ancestral), lcm (for LCM-LoRA), model (keep it)."""
    import diffusers

    if name == "model":
        return
    config = pipe.scheduler.config
    if name == "unipc":
        pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(config)
    elif name == "dpm++":
        pipe.scheduler = diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", use_karras_sigmas=True)
    elif name == "ddim":
        pipe.scheduler = diffusers.DDIMScheduler.from_config(config)
    elif name == "euler-a":
        pipe.scheduler = diffusers.EulerAncestralDiscreteScheduler.from_config(config)
    elif name == "lcm":
        pipe.scheduler = diffusers.LCMScheduler.from_config(config)
    else:
        raise UsageError(f"--scheduler {name!r}: choose one of {', '.join(SCHEDULERS)}")


def add_lcm_lora(pipe) -> None:
    """LCM-LoRA for SD 1.5 (`LCM_LORA`) as the adapter "lcm", active together with every
    adapter already loaded (a --lora), and the LCMScheduler it was distilled for: good frames in
    4-8 steps at guidance 1-2."""
    add_extra_lora(pipe, LCM_LORA, LCM_LORA_WEIGHT, "lcm")
    set_scheduler(pipe, "lcm")


def add_extra_lora(pipe, repo: str, weight_name: str, adapter_name: str, weight: float = 1.0,
                   flag: str = "--lcm") -> None:
    """Load the LoRA file `weight_name` of the hub repository (or folder) `repo` as the adapter
    `adapter_name` and make it active at `weight` together with every adapter already loaded
    (a --lora, at 1.0): how --lcm adds LCM-LoRA, and animatediff's --lcm AnimateLCM's LoRA.
    Not downloaded, or made for another model: one ModelNotFoundError line naming `flag`."""
    def load(name, **kwargs):
        pipe.load_lora_weights(name, weight_name=weight_name, adapter_name=adapter_name, **kwargs)

    download = f"run `hf download {repo} {weight_name}` (for {flag})"
    try:
        from_hub_or_path(load, repo, flag, download=download)
    except (PosekitError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # diffusers, peft and transformers raise a zoo for a LoRA of another model
        raise ModelNotFoundError(f"{flag}: cannot load {repo} into this model ({mismatch(e)}); "
                                 f"{flag} is for SD 1.x models") from None
    others = sorted({a for names in pipe.get_list_adapters().values() for a in names} - {adapter_name})
    pipe.set_adapters(others + [adapter_name], adapter_weights=[1.0] * len(others) + [weight])


def add_safety_checker(pipe, model: str, model_config=None) -> None:
    """The SD safety checker and its feature extractor, from the model's own `safety_checker/`
    and `feature_extractor/` folders when it has them (the SD 1.5 repository does), else from
    SD 1.5's (`DEFAULT_MODEL`). `check_safety(pipe, images)` then runs it."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    # a folder says whether it has one; a hub id is tried, and SD 1.5's taken when it has none
    sources = [str(c) for c in (model, model_config)
               if c and (not is_local(str(c)) or (Path(c).expanduser() / "safety_checker").is_dir())]
    sources += [DEFAULT_MODEL] if DEFAULT_MODEL not in sources else []
    for source in sources:
        download = safety_download(source, pipe.dtype)
        try:
            checker = from_hub_or_path(fp16_first(StableDiffusionSafetyChecker.from_pretrained, pipe.dtype), source,
                                       "--safety-checker", download=download, subfolder="safety_checker",
                                       dtype=pipe.dtype)
            extractor = from_hub_or_path(CLIPImageProcessor.from_pretrained, source, "--safety-checker",
                                         download=download, subfolder="feature_extractor")
            break
        except ModelNotFoundError:
            if source == sources[-1]:
                raise
    pipe.register_modules(safety_checker=checker, feature_extractor=extractor)


def place_safety_checker(pipe, checker, device, offload: str = "none") -> None:
    """Attach a safety checker that is not one of the pipeline's components (animatediff's) on
    the device, or, under --offload, in CPU memory, moved to the GPU while it runs and back
    after every `check_safety`."""
    hook = None
    if offload == "none":
        checker.to(device)
    else:
        from accelerate import cpu_offload_with_hook

        checker, hook = cpu_offload_with_hook(checker, device)  # onto the GPU when it runs
    pipe.safety_checker = checker
    pipe.posekit_safety_checker_hook = hook


def check_safety(pipe, images: "np.ndarray") -> list[bool]:
    """Run the pipeline's safety checker on (N, H, W, 3) float images in 0..1; which are flagged."""
    if getattr(pipe, "safety_checker", None) is None:
        return [False] * len(images)
    from PIL import Image

    pil = [Image.fromarray((im * 255).round().astype("uint8")) for im in images]
    clip = pipe.feature_extractor(pil, return_tensors="pt").pixel_values
    checker = pipe.safety_checker
    with torch.inference_mode():
        _, flagged = checker(images=images.copy(), clip_input=clip.to(pipe._execution_device, checker.dtype))
    hook = getattr(pipe, "posekit_safety_checker_hook", None)
    if hook is not None:  # under --offload: back to CPU memory
        hook.offload()
    return [bool(f) for f in flagged]


def add_ip_adapter(pipe, spec: str, scale: float = 0.6) -> None:
    """An SD 1.5 IP-Adapter: the person's look steers every frame through an image instead of a
    prompt, without training. `spec`: a hub id laid out like h94/IP-Adapter (models/
    ip-adapter-plus_sd15.safetensors + models/image_encoder/), a folder holding the weight file
    and `image_encoder/` (or a copy of that repository), or the weight file itself (.safetensors
    or .bin) with `image_encoder/` next to it. `scale`: how strongly the image steers."""
    if is_local(spec):
        folder, subfolder, weight = _ip_adapter_files(Path(spec).expanduser())
    else:  # the image encoder comes from image_encoder/ inside the subfolder: models/image_encoder
        folder, subfolder, weight = spec, IP_ADAPTER_SUBFOLDER, IP_ADAPTER_WEIGHT

    def load(name, **kwargs):
        pipe.load_ip_adapter(str(folder), subfolder=subfolder, weight_name=weight, **kwargs)

    download = f"run `{IP_ADAPTER_DOWNLOAD}` or pass --ip-adapter PATH"
    try:
        from_hub_or_path(load, spec, "--ip-adapter", download=download if spec == IP_ADAPTER else None)
    except (PosekitError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # an SDXL adapter, another kind of file: torch and diffusers raise a zoo
        raise ModelNotFoundError(f"--ip-adapter {spec}: cannot load it into this model ({mismatch(e)}); "
                                 f"pass an SD 1.5 IP-Adapter ({IP_ADAPTER_WEIGHT} with its image_encoder/)") from None
    pipe.set_ip_adapter_scale(scale)


def _ip_adapter_files(path: Path) -> tuple[Path, str, str]:
    """(folder, subfolder, weight file name) of a local IP-Adapter: a file, or a folder holding
    one (the repository's models/ folder when it is a copy of h94/IP-Adapter)."""
    if path.is_file() or not path.exists():
        return path.parent, "", path.name
    for sub in ("", IP_ADAPTER_SUBFOLDER):
        if (path / sub / IP_ADAPTER_WEIGHT).is_file():
            return path, sub, IP_ADAPTER_WEIGHT
    found = sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".bin"))
    if len(found) != 1:
        what = "no .safetensors/.bin file" if not found else f"{len(found)} weight files ({', '.join(found)})"
        raise ModelNotFoundError(f"--ip-adapter {path}: {what} in it; pass the IP-Adapter weight file itself")
    return path, "", found[0]


def has_ip_adapter(pipe) -> bool:
    return getattr(pipe.unet.config, "encoder_hid_dim_type", None) == "ip_image_proj"


def decode(pipe, latents: torch.Tensor, warn=None) -> "np.ndarray":
    """Latents (N, 4, h, w) -> (N, H, W, 3) float images in 0..1, with the VAE's memory savers on
    when they help (slicing for several images, tiling above TILE_ABOVE px). A VAE that overflows
    in float16 (many community checkpoints do: NaN, a black frame) is decoded again in float32;
    `warn(message)` is told once, and the pipeline remembers it (`FP32_DECODE`): its later
    decodes go to float32 straight away. Only decoding is upcast: the VAE is back in its own
    dtype afterwards, so the pipeline's img2img encoding keeps working in the pipeline's dtype."""
    import numpy as np

    if not torch.isfinite(latents).all():  # nothing any VAE can decode: the denoising itself overflowed
        raise PosekitError(nan_latents_message(latents.dtype))
    vae = pipe.vae
    vae.enable_slicing() if latents.shape[0] > 1 else vae.disable_slicing()
    side = max(latents.shape[-2:]) * pipe.vae_scale_factor
    vae.enable_tiling() if side > TILE_ABOVE else vae.disable_tiling()
    if getattr(pipe, FP32_DECODE, False) and vae.dtype != torch.float32:
        images = _vae_decode_float32(vae, latents)
    else:
        images = _vae_decode(vae, latents)
        if not torch.isfinite(images).all() and vae.dtype != torch.float32:
            images = _vae_decode_float32(vae, latents)
            setattr(pipe, FP32_DECODE, True)
            if warn is not None:
                warn(f"the model's VAE overflows in {str(vae.dtype).replace('torch.', '')} (frames came out NaN, "
                     "black): decoding in float32 from now on (slower); pass a --model with a fixed VAE to avoid it")
    images = torch.nan_to_num(images.float(), nan=0.0)
    return (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


FP32_DECODE = "posekit_vae_decodes_in_float32"  # set on a pipeline whose VAE overflowed in float16


def nan_latents_message(dtype: torch.dtype) -> str:
    """Why a clip's latents came out NaN (before the VAE: the UNet, the ControlNet, a LoRA or the
    sampler), and what to try."""
    if dtype == torch.float16:
        return ("the denoised latents are NaN: the model (UNet, ControlNet or LoRA) overflowed in float16 while "
                "denoising; try another --scheduler, a lower --guidance or --controlnet-scale, or --device cpu "
                "(float32, slow)")
    return ("the denoised latents are NaN: the model (UNet, ControlNet or LoRA) gave NaN while denoising; "
            "try another --scheduler, a lower --guidance or --controlnet-scale, or another --model or --lora")


def _vae_decode_float32(vae, latents: torch.Tensor) -> torch.Tensor:
    """Decode with the VAE upcast to float32 for this call only."""
    was = vae.dtype
    vae.to(torch.float32)
    try:
        return _vae_decode(vae, latents)
    finally:
        vae.to(was)


def _vae_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    latents = latents.to(vae.dtype) / vae.config.scaling_factor
    if getattr(vae.config, "shift_factor", None):
        latents = latents + vae.config.shift_factor
    with torch.inference_mode():
        return vae.decode(latents, return_dict=False)[0]


def no_loading_bars() -> None:
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
    return from_hub_or_path(fp16_first(cls.from_pretrained, extra["dtype"]), model, "--model",
                            download=weights_download(model, "--model", extra["dtype"]), **extra)


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
            raise ModelNotFoundError(f"--model {path}: cannot load it as an SD 1.x checkpoint ({first_line(e)}); "
                                     f"if its configs ({DEFAULT_MODEL}) cannot be downloaded here, pass "
                                     "--model-config DIR (a diffusers SD 1.x folder)") from None
        raise ModelNotFoundError(f"--model {path}: cannot load it as an SD 1.x checkpoint with the configs in "
                                 f"{model_config} ({first_line(e)})") from None


def add_lora(pipe, lora: str, adapter_name: str = "lora") -> None:
    """Load LoRA weights (a pytorch_lora_weights.safetensors file, a folder holding one, or a
    hub id) into the pipeline's UNet and text encoder, as the adapter `adapter_name`."""
    path = Path(lora).expanduser()
    if path.is_dir():  # the file diffusers would guess, said here when there is none or a pipeline
        path = path / lora_weight_name(path, lora)
    if path.is_file():
        load = lambda name, **kw: pipe.load_lora_weights(str(path.parent), weight_name=path.name,  # noqa: E731
                                                         adapter_name=adapter_name, **kw)
    else:
        load = lambda name, **kw: pipe.load_lora_weights(name, adapter_name=adapter_name, **kw)  # noqa: E731
    try:
        from_hub_or_path(load, lora, "--lora")
    except (PosekitError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # diffusers, peft and transformers raise a zoo for a LoRA of another model
        raise ModelNotFoundError(f"--lora {lora}: cannot load it into this model ({mismatch(e)}); "
                                 "pass a LoRA file trained for this --model (an SD 1.x LoRA for SD 1.x)") from None


def mismatch(e: Exception, what: str = "the LoRA") -> str:
    """The first shape that differs, from torch's load_state_dict message, when it says so (the
    peft adapter's name, default_0, lora or lcm, left out): why weights made for another model
    (`what`: the LoRA, the adapter) do not load into this one."""
    m = re.search(r"size mismatch for (\S+?)(?:\.(?:default\w*|lcm-lora|lora|lcm))?\.(?:weight|bias): copying a param with "
                  r"shape torch.Size\((\[.*?\])\) from checkpoint, the shape in current model is "
                  r"torch.Size\((\[.*?\])\)", str(e))
    if m:
        return f"{m[1]} is {m[2]} in {what}, {m[3]} in the model"
    if "mismatched_sizes" in str(e):  # transformers (the text encoder) only prints its report
        return "its text encoder weights have other shapes"
    return f"{type(e).__name__}: {first_line(e)}"

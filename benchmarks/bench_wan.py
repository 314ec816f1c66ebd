"""Wan2.2-Animate-14B: seconds per denoising step and peak GPU memory, without the weights.

    python benchmarks/bench_wan.py                 # a CUDA GPU: the full-size transformer, random bf16 weights
    python benchmarks/bench_wan.py --tiny          # the tests' tiny transformer on the CPU (a smoke test)
    python benchmarks/bench_wan.py --meta          # no GPU: the full-size step of each case on the meta device
    python benchmarks/bench_wan.py --sprite none   # the whole 16-frame sprite through posekit (also model, group)

The transformer is built from the published configuration (FULL_CONFIG below) on the meta
device, then given random bfloat16 weights on the GPU (no 69 GB download, no time spent on a
CPU initialisation), with diffusers' float32 modules (`_keep_in_fp32_modules`) in float32 as
`from_pretrained` keeps them. One denoising step of WanAnimatePipeline with guidance 1 (its
default: no classifier-free guidance) is one transformer forward pass over a segment: the noisy
latents next to the reference image latents (36 channels, one latent frame more than the
segment), the pose latents, 512 text tokens, 257 CLIP image tokens and the segment's 512 x 512
face crops. Each case is timed as the median of `--repeats` passes after one warm-up pass.

Cases: one 77-frame segment (the pipeline's default) at 480p (832 x 480) and 720p (1280 x 720),
each with every model on the GPU (offload none) and with group offloading (the transformer's
blocks streamed from pinned CPU memory one at a time, the next copied on a CUDA stream while the
current one runs: posekit's --offload group); and a 16-frame sprite cycle at 480p, which posekit
generates as one 21-frame segment (16 frames + 4 to close the loop, rounded up to 4k + 1).
The sprite estimate is 20 steps of that, plus the VAE (not timed here: seconds at most).

`--sprite OFFLOAD` times what a user runs instead: the whole pipeline at full size with random
weights (the transformer, UMT5-XXL, CLIP ViT-H/14, the float32 VAE) placed as `--offload` places
it, and posekit's WanMethod making the 16-frame walk cycle at the 480p area (a 640 px square
photo: 624 x 624 frames) in `--steps` steps, after a 1-step warm-up: the sprite's seconds and the
peak GPU memory of everything (prompt and image encoders, VAE encode and decode included).

It prints one JSON line per case and a summary with the card's name; on a GPU each case also
gives the rate reached (`tflop_s`: the step's floating-point operations, counted once on the meta
device, over its time; an H100's bf16 dense peak is 989). `--meta` needs no GPU: each full-size
case runs through diffusers' forward pass on the meta device (shapes, no memory) in seconds,
printing its output shape and TFLOP per step. The 16-frame sprite at 480p
is meant to take under a minute on an H100.

Where FULL_CONFIG comes from: diffusers' scripts/convert_wan_to_diffusers.py, its
"Wan-Animate-14B" entry (the script that wrote the hub folder Wan-AI/Wan2.2-Animate-14B-
Diffusers), whose transformer/config.json (diffusers 0.36.0.dev0) holds the same values plus the
defaults written out: latent_channels 16, motion_encoder_batch_size 8,
motion_encoder_channel_sizes null (diffusers' WAN_ANIMATE_MOTION_ENCODER_CHANNEL_SIZES). The
original Wan config (Wan2.2 wan/configs/wan_animate_14B.py, and the original checkpoint's
config.json) says the same in its own names: dim 5120 (= 40 heads x 128), ffn_dim 13824,
freq_dim 256, in_dim 36, out_dim 16, num_heads 40, num_layers 40, text_dim 4096, text_len 512,
patch_size (1, 2, 2), qk_norm, cross_attn_norm, eps 1e-6, motion_encoder_dim 512.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

FULL_CONFIG = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 40,
    "attention_head_dim": 128,
    "in_channels": 36,
    "latent_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 13824,
    "num_layers": 40,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-06,
    "image_dim": 1280,
    "added_kv_proj_dim": 5120,
    "rope_max_seq_len": 1024,
    "pos_embed_seq_len": None,
    "motion_encoder_size": 512,
    "motion_style_dim": 512,
    "motion_dim": 20,
    "motion_encoder_dim": 512,
    "face_encoder_hidden_dim": 1024,
    "face_encoder_num_heads": 4,
    "inject_face_latents_blocks": 5,
    "motion_encoder_batch_size": 8,
}
# The pipeline's other models, as the hub folder's text_encoder/, image_encoder/ and vae/ configs
# give them: google/umt5-xxl's encoder, OpenCLIP ViT-H/14's vision tower, and Wan 2.1's VAE
# (diffusers' AutoencoderKLWan defaults: base_dim 96, z_dim 16, dim_mult 1,2,4,4, 2 res blocks).
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1, tie_word_embeddings=False)
CLIP_VIT_H = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                  patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)
SPRITE_PHOTO = 640  # a square photo; the 480p area brings it to 632 px, frames of 624 x 624 (16 x 39)
TEXT_TOKENS, IMAGE_TOKENS = 512, 257  # UMT5 max_sequence_length; CLIP ViT-H/14 at 224 px: 16 x 16 + 1
VAE_STRIDE, VAE_TIME = 8, 4


def on_meta(config: dict, dtype):
    """The transformer from `config` on the meta device (shapes, no memory, no values), its
    parameters in `dtype` but diffusers' float32 modules in float32, as `build` gives them."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import WanAnimateTransformer3DModel

    with init_empty_weights(include_buffers=True):
        model = WanAnimateTransformer3DModel.from_config(config)
    keep = model._keep_in_fp32_modules or []
    for module_name, module in model.named_modules():
        for name, p in list(module._parameters.items()):
            if p is not None and not any(k in f"{module_name}.{name}".split(".") for k in keep):
                module._parameters[name] = torch.nn.Parameter(p.to(dtype), requires_grad=False)
    return model.eval()


def step_flops(model, config: dict, frames: int, width: int, height: int, dtype) -> tuple[float, tuple]:
    """Floating-point operations of one denoising step (one forward pass) of a meta-device
    transformer (`on_meta`), counted by torch's FlopCounterMode (matmuls, convolutions and
    attention, 2 per multiply-add), and the shape of its output: the full-size forward runs
    through diffusers' own code without a GPU, in seconds."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = inputs(config, frames, width, height, torch.device("meta"), dtype)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        out = model(**x)[0]
    return counter.get_total_flops(), tuple(out.shape)


def materialize(make, device, dtype):
    """`make()`'s model with random weights on `device`: its parameters built on the meta device
    (no memory, no time), then allocated on `device` in `dtype` (a diffusers model's float32
    modules, `_keep_in_fp32_modules`, in float32 as `from_pretrained` keeps them; transformers
    keeps its own only for float16) and filled with N(0, 0.02); its buffers (rotary tables, blur
    kernels) are computed as usual and moved there."""
    import torch
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        model = make()
    keep = (getattr(model, "_keep_in_fp32_modules", None) or []) if hasattr(model, "register_to_config") else []
    g = torch.Generator(device).manual_seed(0)
    made = {}  # one tensor per parameter, however many modules share it
    for module_name, module in model.named_modules(remove_duplicate=False):
        for name, p in list(module._parameters.items()):
            if p is None:  # a bias=False slot
                continue
            if id(p) not in made:
                fp32 = any(k in f"{module_name}.{name}".split(".") for k in keep)
                real = torch.empty(p.shape, dtype=torch.float32 if fp32 else dtype, device=device)
                made[id(p)] = torch.nn.Parameter(real.normal_(0.0, 0.02, generator=g), requires_grad=False)
            module._parameters[name] = made[id(p)]
        for name, b in list(module._buffers.items()):
            if b is not None:
                module._buffers[name] = b.to(device)
    if hasattr(model, "tie_weights"):  # transformers: UMT5's token embedding is shared with its encoder's
        model.tie_weights()
    return model.eval()


def build(config: dict, device, dtype):
    """The transformer from `config` with random weights on `device` (`materialize`)."""
    from diffusers import WanAnimateTransformer3DModel

    return materialize(lambda: WanAnimateTransformer3DModel.from_config(config), device, dtype)


def inputs(config: dict, frames: int, width: int, height: int, device, dtype) -> dict:
    """One denoising step's transformer inputs for a segment of `frames` frames."""
    import torch

    meta = device.type == "meta"
    g = None if meta else torch.Generator(device).manual_seed(0)
    t = (frames - 1) // VAE_TIME + 1  # latent frames of the segment
    h, w = height // VAE_STRIDE, width // VAE_STRIDE
    z = config["latent_channels"]
    face = config["motion_encoder_size"]
    randn = lambda *shape: torch.empty(*shape, device=device, dtype=dtype) if meta else \
        torch.randn(*shape, generator=g, device=device, dtype=dtype)  # noqa: E731
    return dict(
        hidden_states=randn(1, config["in_channels"], t + 1, h, w),  # noisy latents + reference (36 ch)
        timestep=torch.tensor([500], device=device),
        encoder_hidden_states=randn(1, TEXT_TOKENS, config["text_dim"]),
        encoder_hidden_states_image=randn(1, IMAGE_TOKENS, config["image_dim"]),
        pose_hidden_states=randn(1, z, t, h, w),
        face_pixel_values=randn(1, 3, frames, face, face).clamp(-1, 1),
        return_dict=False,
    )


def time_case(model, config, frames, width, height, device, dtype, repeats) -> dict:
    import torch

    x = inputs(config, frames, width, height, device, dtype)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            model(**x)
            if cuda:
                torch.cuda.synchronize()
            if i:  # the first pass warms up (kernels, allocator, offload hooks)
                seconds.append(time.perf_counter() - start)
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None  # the CPU: not measured
    del x
    return {"frames": frames, "size": f"{width}x{height}", "s_per_step": round(statistics.median(seconds), 3),
            "peak_gib": peak}


def group_offload(model, device):
    """posekit's --offload group on the transformer: weights in pinned CPU memory, one block at a
    time on the device, the next one copied on a side stream (CUDA only)."""
    import torch

    model.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    model.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
                               num_blocks_per_group=1, use_stream=device.type == "cuda")


def full_pipeline(device, dtype, transformer: dict = FULL_CONFIG, text: dict = UMT5_XXL, image: dict = CLIP_VIT_H,
                  vae: dict | None = None):
    """Wan2.2-Animate-14B's WanAnimatePipeline with random weights on `device`: the transformer
    (FULL_CONFIG) and UMT5-XXL in `dtype`, CLIP ViT-H/14 in `dtype`, the VAE in float32 (as
    posekit loads it), the flow UniPC scheduler, and the tests' offline T5 tokenizer (its ids are
    a few of UMT5's 256,384; the cost of the 512 text tokens is the same). The configs can be
    given smaller (the test suite builds a shrunken one through the same code)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanAnimatePipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    from tiny_wan import _tokenizer

    return WanAnimatePipeline(
        tokenizer=_tokenizer(),
        text_encoder=materialize(lambda: UMT5EncoderModel(UMT5Config(**text)), device, dtype),
        vae=materialize(lambda: AutoencoderKLWan(**(vae or {})), device, torch.float32),
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0,
                                          num_train_timesteps=1000),
        image_processor=CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
        image_encoder=materialize(lambda: CLIPVisionModel(CLIPVisionConfig(**image)), device, dtype),
        transformer=build(transformer, device, dtype))


def sprite(offload: str, steps: int, tiny: bool) -> dict:
    """The 16-frame walk cycle at the 480p area, the way `posekit animate --method wan` makes it:
    posekit's WanMethod on the whole pipeline (the prompt through UMT5, the photo through CLIP,
    the VAE's encode and decode, one 21-frame segment of `steps` steps: 16 frames and 4 to close
    the loop), after a 1-step warm-up. Seconds for the sprite and peak GPU memory (allocated and
    reserved) over the warm-up and the sprite, with the pipeline placed as --offload says; the
    peak while loading apart. The offload cases build the models in CPU memory, as loading leaves
    them before they are placed, so they run on the cards they are for."""
    import dataclasses

    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    from posekit.methods.wan.method import WanMethod, WanOptions, place
    from posekit.pose.motions import motion

    cuda = torch.cuda.is_available() and not tiny
    device = torch.device("cuda" if cuda else "cpu")
    if offload != "none" and not cuda:
        return {"case": "whole sprite", "offload": offload, "skipped": "offloading moves models to a CUDA GPU"}
    begin = time.perf_counter()
    if tiny:  # the tests' tiny pipeline folder, loaded as --model loads one
        import tempfile

        from tiny_wan import make_tiny_wan

        o = WanOptions(model=str(make_tiny_wan(Path(tempfile.mkdtemp()) / "wan")), device="cpu")
        pipe, side = WanMethod.load(o), 256  # the least that draws no small-photo warning
    else:
        o = WanOptions(model="(random weights)", device="cuda", offload=offload)
        # offload none: built on the GPU at once; the others in CPU memory (46 GiB), then placed
        pipe, side = full_pipeline(device if offload == "none" else torch.device("cpu"), torch.bfloat16), SPRITE_PHOTO
        place(pipe, device, offload)
        pipe.set_progress_bar_config(disable=True)
        torch.cuda.synchronize()
        load_peak = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    loaded = time.perf_counter() - begin
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.LANCZOS))
    w, h = WanMethod.working_size(side, side, o)
    photo = np.asarray(Image.fromarray(photo).resize((w, h), Image.LANCZOS))
    clip = motion("walk", frames=16, width=w, height=h)
    options = dataclasses.replace(o, character="photo", steps=steps)  # photo: no segmentation in the timing
    WanMethod(photo, clip[0], dataclasses.replace(options, steps=1), models=pipe)(clip)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    frames = WanMethod(photo, clip[0], options, models=pipe)(clip)
    if cuda:
        torch.cuda.synchronize()
    height, width = frames[0].shape[:2]
    out = {"case": "whole sprite", "offload": offload, "frames": len(frames), "size": f"{width}x{height}", "steps": steps,
           "sprite_s": round(time.perf_counter() - start, 1), "load_s": round(loaded, 1)}
    if cuda:
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        out["load_peak_gib"] = round(load_peak, 2)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny transformer on the CPU (smoke test)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per case (after one warm-up)")
    parser.add_argument("--steps", type=int, default=20, help="denoising steps, for the sprite estimate")
    parser.add_argument("--no-offload-cases", action="store_true", help="skip the group offloading cases")
    parser.add_argument("--meta", action="store_true",
                        help="no GPU: each full-size case's forward pass on the meta device (output shape, TFLOP a step)")
    parser.add_argument("--sprite", choices=("none", "model", "group"),
                        help="instead: the whole 16-frame sprite through posekit's WanMethod on the full pipeline, "
                             "placed as --offload says (one offload a run)")
    args = parser.parse_args(argv)

    import torch

    if args.sprite:
        from posekit.console import quiet_libraries

        quiet_libraries()
        if not args.tiny and not torch.cuda.is_available():
            sys.exit("bench_wan.py --sprite: no CUDA GPU here; run it on a GPU, or with --tiny on the CPU")
        r = sprite(args.sprite, args.steps, args.tiny)
        r["card"] = "cpu" if args.tiny else torch.cuda.get_device_name()
        print(json.dumps(r), flush=True)
        return

    full_cases = [("segment", 77, 832, 480), ("segment", 77, 1280, 720), ("sprite", 21, 832, 480)]
    if args.meta:
        model = on_meta(FULL_CONFIG, torch.bfloat16)
        for name, frames, width, height in full_cases:
            flops, shape = step_flops(model, FULL_CONFIG, frames, width, height, torch.bfloat16)
            print(json.dumps({"case": name, "frames": frames, "size": f"{width}x{height}", "output": shape,
                              "tflop_per_step": round(flops / 1e12, 1)}), flush=True)
        params = sum(p.numel() for p in model.parameters())
        print(json.dumps({"card": "meta", "transformer_params_billion": round(params / 1e9, 2)}))
        return
    if args.tiny:
        from tiny_wan import _transformer

        config = {k: v for k, v in _transformer().config.items() if not k.startswith("_")}
        device, dtype = torch.device("cpu"), torch.float32
        model = build(config, device, dtype)
        torch.set_num_threads(1)
        cases = [("segment", 9, 48, 32), ("sprite", 21, 32, 32)]
        card = "cpu"
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_wan.py: no CUDA GPU here; run it on a GPU, or with --tiny on the CPU")
        device, dtype, config = torch.device("cuda"), torch.bfloat16, dict(FULL_CONFIG)
        model = build(config, device, dtype)
        cases = full_cases
        card = torch.cuda.get_device_name(device)
    params = sum(p.numel() for p in model.parameters())
    meta_model, flops = None if args.tiny else on_meta(config, dtype), {}
    results = []
    for offload in ("none",) if args.no_offload_cases else ("none", "group"):
        if offload == "group":
            group_offload(model, device)
        for name, frames, width, height in cases:
            try:
                r = time_case(model, config, frames, width, height, device, dtype, args.repeats)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                r = {"frames": frames, "size": f"{width}x{height}", "s_per_step": None, "peak_gib": "out of memory"}
            r.update(case=name, offload=offload, card=card)
            if not args.tiny and r["s_per_step"] is not None:  # the rate the GPU reached (bf16 peak: H100 989)
                if (frames, width, height) not in flops:
                    flops[frames, width, height] = step_flops(meta_model, config, frames, width, height, dtype)[0]
                r["tflop_s"] = round(flops[frames, width, height] / 1e12 / r["s_per_step"], 1)
            if name == "sprite" and r["s_per_step"] is not None:
                r["sprite_16_frames_s"] = round(args.steps * r["s_per_step"], 1)
            print(json.dumps(r), flush=True)
            results.append(r)
    print(json.dumps({"card": card, "transformer_params_billion": round(params / 1e9, 2),
                      "dtype": str(dtype).replace("torch.", ""), "cases": len(results)}), flush=True)


if __name__ == "__main__":
    main()

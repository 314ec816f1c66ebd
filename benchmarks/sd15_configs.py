"""Stable Diffusion 1.5 and what posekit adds to it, built from the published configs with random
weights and saved in the real file layouts, for benchmarks: the cost of a step does not depend
on the values of the weights, so nothing needs downloading.

    from sd15_configs import write_models
    paths = write_models(tmp / "models", tiny=False, device="cuda", dtype=torch.float16)
    paths["sd"], paths["controlnet"], paths["motion_adapter"], paths["ip_adapter"]

`tiny=True` writes the same components at a few hundred kilobytes (CPU smoke tests). Where each
full-size config comes from is said above it; the values are those files' values, written out
(the diffusers class defaults fill the rest, as they do when the files are loaded).
"""

from __future__ import annotations

from pathlib import Path

import torch

# -- the published configs -------------------------------------------------------------------
# stable-diffusion-v1-5/stable-diffusion-v1-5, unet/config.json
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True, freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, downsample_padding=1, mid_block_scale_factor=1,
    act_fn="silu", norm_num_groups=32, norm_eps=1e-5, cross_attention_dim=768, attention_head_dim=8)
# stable-diffusion-v1-5/stable-diffusion-v1-5, vae/config.json
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, act_fn="silu", norm_num_groups=32,
    block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512, scaling_factor=0.18215)
# stable-diffusion-v1-5/stable-diffusion-v1-5, text_encoder/config.json (openai/clip-vit-large-patch14's text tower)
SD15_TEXT_ENCODER = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768)
# stable-diffusion-v1-5/stable-diffusion-v1-5, scheduler/scheduler_config.json
SD15_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)  # (its clip_sample: false is not a PNDM argument)
# lllyasviel/control_v11p_sd15_openpose is ControlNetModel.from_unet(SD 1.5's UNet) with the
# default conditioning embedding (16, 32, 96, 256): built that way below.
# guoyww/animatediff-motion-adapter-v1-5-3, config.json: v3 has no motion module in the middle
# block (diffusers' single-file loader tells v2 from v3 by that) and a 32-frame position table.
MOTION_ADAPTER_V153 = dict(
    block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2, motion_mid_block_layers_per_block=1,
    motion_num_attention_heads=8, motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False)
# h94/IP-Adapter, models/image_encoder/config.json: OpenCLIP ViT-H/14's vision tower
IMAGE_ENCODER_VIT_H = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14,
    image_size=224, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)
# h94/IP-Adapter, models/ip-adapter-plus_sd15.safetensors: its Resampler (image_proj) takes the
# encoder's 1280-wide hidden states to 16 tokens of 768 (4 layers, 12 heads of 64, ff x4), and each
# of the UNet's 16 cross-attention layers gets to_k_ip/to_v_ip (768 -> the layer's width).
IP_ADAPTER_PLUS = dict(embed=1280, hidden=768, queries=16, depth=4, ff_mult=4, output=768)
IP_ADAPTER_WEIGHT = "ip-adapter-plus_sd15.safetensors"

# The same structures, tiny: two UNet blocks, one layer each, 32-wide text, a 4-block VAE (still
# downsampling by 8), a 2-layer vision tower; for the CPU smoke test (--tiny).
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), block_out_channels=(16, 32), layers_per_block=1,
    norm_num_groups=8, cross_attention_dim=32, attention_head_dim=4)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
    block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64)
TINY_TEXT_ENCODER = dict(
    vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
    max_position_embeddings=77, projection_dim=32)
TINY_MOTION_ADAPTER = dict(
    block_out_channels=(16, 32), motion_layers_per_block=1, motion_num_attention_heads=2, motion_norm_num_groups=8,
    motion_max_seq_length=32, use_motion_mid_block=False)
TINY_IMAGE_ENCODER = dict(
    hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, patch_size=8, image_size=32,
    projection_dim=32)
TINY_IP_ADAPTER_PLUS = dict(embed=32, hidden=64, queries=4, depth=4, ff_mult=4, output=32)


# -- building and writing --------------------------------------------------------------------
def clip_vocab(size: int = 49408) -> dict[str, int]:
    """A CLIP-style byte-level vocabulary without merges, laid out like CLIP's own: the 256 byte
    characters alone and word-final first, unused fillers, and <|startoftext|>, <|endoftext|> as
    the last two ids (49406, 49407 in SD 1.5). Any text tokenizes (one token per byte) into ids
    that fit the text encoder's embedding table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):  # the printable stand-in of every byte, as GPT-2 and CLIP map them
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    tokens = chars + [c + "</w>" for c in chars]
    tokens += [f"<|unused{i}|>" for i in range(size - 2 - len(tokens))]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def write_models(folder, tiny: bool = False, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> dict[str, Path]:
    """Build every component on `device` (random weights: each layer's own initialisation), cast
    to `dtype` and write them under `folder` in the layouts posekit loads (float16 as the
    `variant="fp16"` files, which posekit asks for first on a GPU):

        sd/              a diffusers pipeline folder (model_index.json, unet/, vae/, text_encoder/,
                         tokenizer/, scheduler/), as --model takes it
        controlnet/      a ControlNetModel folder (--controlnet)
        motion_adapter/  a MotionAdapter folder (--motion-adapter)
        ip_adapter/      ip-adapter-plus_sd15.safetensors + image_encoder/ (--ip-adapter)
    """
    from diffusers import (AutoencoderKL, ControlNetModel, MotionAdapter, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    variant = "fp16" if dtype == torch.float16 else None  # the files SD 1.5's repositories have for fp16
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**(TINY_UNET if tiny else SD15_UNET))
        vae = AutoencoderKL(**(TINY_VAE if tiny else SD15_VAE))
        vocab = clip_vocab()
        text_encoder = CLIPTextModel(CLIPTextConfig(
            **(TINY_TEXT_ENCODER if tiny else SD15_TEXT_ENCODER), bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler(**SD15_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    paths = {"sd": folder / "sd", "controlnet": folder / "controlnet", "motion_adapter": folder / "motion_adapter",
             "ip_adapter": folder / "ip_adapter"}
    ControlNetModel.from_unet(unet).to(dtype).save_pretrained(paths["controlnet"], variant=variant)
    with torch.device(device):
        MotionAdapter(**(TINY_MOTION_ADAPTER if tiny else MOTION_ADAPTER_V153)).to(dtype).save_pretrained(
            paths["motion_adapter"], variant=variant)
    write_ip_adapter_plus(paths["ip_adapter"], unet, tiny, device, dtype)
    pipe.to(dtype).save_pretrained(paths["sd"], variant=variant)
    return paths


def write_ip_adapter_plus(folder: Path, unet, tiny: bool, device, dtype) -> Path:
    """An IP-Adapter Plus in the original release's layout for `unet`: one weight file
    (`image_proj.*`, the Resampler; `ip_adapter.N.to_k_ip/to_v_ip`, N = 1, 3, 5... over the
    UNet's cross-attention layers in diffusers' order) and `image_encoder/` beside it."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder.mkdir(parents=True, exist_ok=True)
    with torch.device(device):
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**(TINY_IMAGE_ENCODER if tiny else IMAGE_ENCODER_VIT_H)))
    encoder.to(dtype).save_pretrained(folder / "image_encoder")
    p = TINY_IP_ADAPTER_PLUS if tiny else IP_ADAPTER_PLUS
    g = torch.Generator(device).manual_seed(3)

    def rand(*shape, std=0.02):
        return (torch.randn(*shape, generator=g, device=device) * std).to(dtype)

    def ones(n):
        return torch.ones(n, device=device, dtype=dtype)

    def zeros(n):
        return torch.zeros(n, device=device, dtype=dtype)

    hidden, ff = p["hidden"], p["ff_mult"] * p["hidden"]
    state = {"image_proj.latents": rand(1, p["queries"], hidden, std=hidden ** -0.5),
             "image_proj.proj_in.weight": rand(hidden, p["embed"]), "image_proj.proj_in.bias": zeros(hidden),
             "image_proj.proj_out.weight": rand(p["output"], hidden), "image_proj.proj_out.bias": zeros(p["output"]),
             "image_proj.norm_out.weight": ones(p["output"]), "image_proj.norm_out.bias": zeros(p["output"])}
    for i in range(p["depth"]):
        layer = f"image_proj.layers.{i}"
        for norm in ("0.norm1", "0.norm2", "1.0"):
            state[f"{layer}.{norm}.weight"], state[f"{layer}.{norm}.bias"] = ones(hidden), zeros(hidden)
        state.update({f"{layer}.0.to_q.weight": rand(hidden, hidden), f"{layer}.0.to_kv.weight": rand(2 * hidden, hidden),
                      f"{layer}.0.to_out.weight": rand(hidden, hidden), f"{layer}.1.1.weight": rand(ff, hidden),
                      f"{layer}.1.3.weight": rand(hidden, ff)})
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        width = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
        state[f"ip_adapter.{key}.to_k_ip.weight"] = rand(width, unet.config.cross_attention_dim)
        state[f"ip_adapter.{key}.to_v_ip.weight"] = rand(width, unet.config.cross_attention_dim)
        key += 2
    save_file({k: v.contiguous().cpu() for k, v in state.items()}, folder / IP_ADAPTER_WEIGHT)
    return folder / IP_ADAPTER_WEIGHT

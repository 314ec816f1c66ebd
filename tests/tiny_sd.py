"""Tiny, randomly initialised Stable Diffusion 1.x and ControlNet folders for offline tests.

They have SD 1.5's structure (VAE downsampling by 8, cross-attention UNet with to_q/to_k/to_v/
to_out.0, CLIP text model and byte-level BPE tokenizer, PNDM scheduler) at a few hundred
kilobytes, saved with `save_pretrained` so that `--model FOLDER` loads them exactly as a real
download. Images come out as noise, which is all a test needs: shapes, determinism, files.

    from tiny_sd import make_tiny_sd, make_tiny_controlnet
    model = make_tiny_sd(tmp_path / "sd")            # a pipeline folder (model_index.json)
    controlnet = make_tiny_controlnet(tmp_path / "cn")
"""

from __future__ import annotations

from pathlib import Path

import torch

CROSS_ATTENTION_DIM = 32


def _byte_vocab() -> dict[str, int]:
    """A CLIP-style byte-level vocabulary without merges: every byte, alone and word-final
    ('a', 'a</w>'), plus the two special tokens: 514 entries, so any text tokenizes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):  # GPT-2's byte -> printable character table
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    tokens = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    return {t: i for i, t in enumerate(tokens)}


def _tiny_unet():
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_ATTENTION_DIM, attention_head_dim=4,
    )


def make_tiny_sd(folder) -> Path:
    """Write a tiny SD 1.x diffusers pipeline folder (model_index.json + components)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    vocab = _byte_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=CROSS_ATTENTION_DIM, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=CROSS_ATTENTION_DIM,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"],
    ))
    torch.manual_seed(0)
    vae = AutoencoderKL(  # four blocks: downsamples by 8 like SD's VAE
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        block_out_channels=(8, 8, 8, 8), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=_tiny_unet(),
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def make_tiny_controlnet(folder) -> Path:
    """Write a tiny ControlNet folder matching make_tiny_sd's UNet. Its zero convolutions get
    random weights so that the skeleton visibly changes the output: a freshly initialised
    ControlNet adds exactly nothing."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(_tiny_unet(), conditioning_embedding_out_channels=(8, 8, 16, 16))
    torch.manual_seed(1)
    with torch.no_grad():
        # He-initialise the conditioning embedding so the control image's content (not just the
        # biases) survives its eight small layers, and open the zero convs
        for conv in controlnet.controlnet_cond_embedding.modules():
            if isinstance(conv, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(conv.weight)
                conv.bias.zero_()
        for conv in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            conv.weight.normal_(0.0, 0.5)
    controlnet.save_pretrained(folder)
    return Path(folder)


# -- the original (LDM / CompVis) single-file layout -------------------------------------------
# Model sites distribute SD 1.x as one .safetensors/.ckpt in the original training code's key
# names; diffusers' from_single_file converts them back. To test that path offline we write our
# tiny pipeline in that layout: each diffusers key renamed to its original name.
_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_ATTN = (("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out."))


def _ldm_unet_key(key: str, layers: int, up_has_attention: set[int]) -> str:
    import re

    head, _, leaf = key.rpartition(".")  # leaf: weight / bias
    for new, old in _UNET_TOP.items():
        if head == new:
            return f"{old}.{leaf}"
    per = layers + 1  # an LDM block slot per resnet, plus one for the down/upsampler
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        slot = 1 + b * per + j
        return f"input_blocks.{slot}.0.{_renamed(rest, _RESNET)}" if kind == "resnets" else f"input_blocks.{slot}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"input_blocks.{1 + int(m[1]) * per + layers}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"middle_block.{2 * int(m[1])}.{_renamed(m[2], _RESNET)}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        slot = b * per + j
        return f"output_blocks.{slot}.0.{_renamed(rest, _RESNET)}" if kind == "resnets" else f"output_blocks.{slot}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        b = int(m[1])
        return f"output_blocks.{b * per + layers}.{2 if b in up_has_attention else 1}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key}")


def _ldm_vae_key(key: str, blocks: int) -> str:
    import re

    for part in ("encoder", "decoder"):
        key = key.replace(f"{part}.conv_norm_out.", f"{part}.norm_out.")
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{blocks - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        return f"decoder.up.{blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        return f"{m[1]}.mid.attn_1.{_renamed(m[2], _VAE_ATTN)}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv keep their names


def _renamed(rest: str, pairs) -> str:
    for new, old in pairs:
        if rest.startswith(new):
            return old + rest[len(new):]
    return rest


def make_tiny_single_file(pipeline_folder, path) -> Path:
    """Write a make_tiny_sd folder as one original-layout .safetensors checkpoint (UNet under
    model.diffusion_model., VAE under first_stage_model., CLIP under cond_stage_model.transformer.)."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    pipe = StableDiffusionPipeline.from_pretrained(pipeline_folder)
    cfg = pipe.unet.config
    up_attn = {i for i, t in enumerate(cfg.up_block_types) if "CrossAttn" in t}
    state = {f"model.diffusion_model.{_ldm_unet_key(k, cfg.layers_per_block, up_attn)}": v
             for k, v in pipe.unet.state_dict().items()}
    blocks = len(pipe.vae.config.down_block_types)
    state.update({f"first_stage_model.{_ldm_vae_key(k, blocks)}": v for k, v in pipe.vae.state_dict().items()})
    # the original layout is the classic transformers CLIP one (text_model.*), which transformers
    # >= 5.6 flattened away; put the prefix back
    state.update({f"cond_stage_model.transformer.{k if k.startswith('text_model.') else 'text_model.' + k}": v
                  for k, v in pipe.text_encoder.state_dict().items()})
    path = Path(path)
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


# -- what issue 10 adds on top: fp16 variant, IP-Adapter Plus, LCM-LoRA, safety checker ---------
IMAGE_ENCODER_SIZE = 32  # the tiny CLIP vision tower's input (the real ViT-H/14 takes 224)


def add_fp16_variant(pipeline_folder) -> Path:
    """Write the `variant="fp16"` files (model.fp16.safetensors...) next to a make_tiny_sd
    folder's own, as the SD 1.5 repository has them. Their UNet's conv_in is doubled, so a test
    can tell which files were loaded."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(pipeline_folder)
    with torch.no_grad():
        pipe.unet.conv_in.weight.mul_(2.0)
    pipe.to(torch.float16).save_pretrained(pipeline_folder, variant="fp16")
    return Path(pipeline_folder)


def tiny_unet_cross_attention_layers() -> list[tuple[str, int]]:
    """(processor name, hidden size) of each cross-attention layer of the tiny UNet, in the
    order diffusers numbers an IP-Adapter's `ip_adapter.N.*` keys (N = 1, 3, 5, ...)."""
    unet = _tiny_unet()
    channels = unet.config.block_out_channels
    layers = []
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        layers.append((name, hidden))
    return layers


def make_tiny_ip_adapter(folder, weight_name: str = "ip-adapter-plus_sd15.safetensors") -> Path:
    """A tiny IP-Adapter Plus in the original release's layout, for make_tiny_sd's UNet: one
    weight file (`image_proj.*`: the Resampler, `ip_adapter.N.to_k_ip/to_v_ip`: the extra keys
    and values of each cross-attention layer) and `image_encoder/`, a CLIPVisionModelWithProjection
    folder, next to it. A `.bin` name writes the original torch.save'd dict of the two halves.
    Returns the weight file's path."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(2)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=IMAGE_ENCODER_SIZE, patch_size=8, projection_dim=32))
    encoder.save_pretrained(folder / "image_encoder")

    # the Resampler (IP-Adapter Plus's image_proj): its heads are 64 wide, and diffusers builds 4 layers
    embed, hidden, queries, ff = 32, 64, 4, 4 * 64
    g = torch.Generator().manual_seed(3)

    def rand(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    proj = {"latents": rand(1, queries, hidden, std=1.0), "proj_in.weight": rand(hidden, embed),
            "proj_in.bias": torch.zeros(hidden), "proj_out.weight": rand(CROSS_ATTENTION_DIM, hidden),
            "proj_out.bias": torch.zeros(CROSS_ATTENTION_DIM), "norm_out.weight": torch.ones(CROSS_ATTENTION_DIM),
            "norm_out.bias": torch.zeros(CROSS_ATTENTION_DIM)}
    for i in range(4):
        for norm in ("0.norm1", "0.norm2", "1.0"):
            proj[f"layers.{i}.{norm}.weight"] = torch.ones(hidden)
            proj[f"layers.{i}.{norm}.bias"] = torch.zeros(hidden)
        proj.update({f"layers.{i}.0.to_q.weight": rand(hidden, hidden),
                     f"layers.{i}.0.to_kv.weight": rand(2 * hidden, hidden),  # keys and values, stacked
                     f"layers.{i}.0.to_out.weight": rand(hidden, hidden),
                     f"layers.{i}.1.1.weight": rand(ff, hidden), f"layers.{i}.1.3.weight": rand(hidden, ff)})
    adapter = {}
    for n, (_, width) in enumerate(tiny_unet_cross_attention_layers()):
        adapter[f"{2 * n + 1}.to_k_ip.weight"] = rand(width, CROSS_ATTENTION_DIM, std=1.0)
        adapter[f"{2 * n + 1}.to_v_ip.weight"] = rand(width, CROSS_ATTENTION_DIM, std=1.0)
    path = folder / weight_name
    if path.suffix == ".bin":
        torch.save({"image_proj": proj, "ip_adapter": adapter}, path)
    else:
        save_file({**{f"image_proj.{k}": v for k, v in proj.items()},
                   **{f"ip_adapter.{k}": v.contiguous() for k, v in adapter.items()}}, path)
    return path


def make_tiny_lcm_lora(folder) -> Path:
    """A tiny LCM-LoRA in the layout latent-consistency/lcm-lora-sdv1-5 ships (kohya-style
    `lora_unet_<module>.lora_down/lora_up.weight` + `.alpha`, UNet only) as
    FOLDER/pytorch_lora_weights.safetensors for make_tiny_sd's UNet."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(4)
    state, rank = {}, 4
    for name, module in _tiny_unet().named_modules():
        if name.endswith(("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q", "attn2.to_k", "attn2.to_v")):
            key = "lora_unet_" + name.replace(".", "_")
            state[f"{key}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=g) * 0.5
            state[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=g) * 0.5
            state[f"{key}.alpha"] = torch.tensor(float(rank))
    save_file(state, folder / "pytorch_lora_weights.safetensors")
    return folder


def add_tiny_safety_checker(pipeline_folder, flag_everything: bool) -> Path:
    """`safety_checker/` + `feature_extractor/` folders in a pipeline folder, as the SD 1.5
    repository has them: a tiny StableDiffusionSafetyChecker whose concept thresholds flag every
    image (flag_everything) or none."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(5)
    config = CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                         num_attention_heads=4, vocab_size=100),
                        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                                           num_attention_heads=4, image_size=IMAGE_ENCODER_SIZE, patch_size=8),
                        projection_dim=32)
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():  # cosine similarities lie in [-1, 1]: a threshold beyond that decides alone
        checker.concept_embeds_weights.fill_(-2.0 if flag_everything else 2.0)
        checker.special_care_embeds_weights.fill_(2.0)
    checker.save_pretrained(Path(pipeline_folder) / "safety_checker")
    CLIPImageProcessor(size=IMAGE_ENCODER_SIZE, crop_size=IMAGE_ENCODER_SIZE).save_pretrained(
        Path(pipeline_folder) / "feature_extractor")
    return Path(pipeline_folder)

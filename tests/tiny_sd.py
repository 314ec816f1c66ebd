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

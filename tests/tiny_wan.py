"""A tiny, randomly initialised Wan2.2-Animate pipeline folder for offline tests.

It has the real folder layout of `Wan-AI/Wan2.2-Animate-14B-Diffusers` (model_index.json +
transformer/, vae/, text_encoder/, tokenizer/, image_encoder/, image_processor/, scheduler/,
each written by `save_pretrained`) and the real classes (WanAnimateTransformer3DModel,
AutoencoderKLWan, UMT5EncoderModel, a T5 Unigram tokenizer, CLIPVisionModel + CLIPImageProcessor,
UniPCMultistepScheduler with flow sigmas), at a few hundred kilobytes, so that `--model FOLDER`
loads it exactly as a download. The tokenizer is built offline from a small Unigram vocabulary
(every printable ASCII character is a piece), so any prompt tokenizes. Videos come out as noise,
which is all a test needs: shapes, determinism, files.

    from tiny_wan import make_tiny_wan
    model = make_tiny_wan(tmp_path / "wan")   # a pipeline folder (model_index.json)

Its face encoder reads FACE_SIZE x FACE_SIZE crops (the real one 512 x 512); frames are any
multiple of 16 pixels (the VAE's stride 8 times the transformer's 2 x 2 patches).
"""

from __future__ import annotations

from pathlib import Path

import torch

FACE_SIZE = 8  # motion_encoder_size: the face crops' side (512 in the real model)
TEXT_DIM = 16  # the text encoder's width (4096 in UMT5-XXL)
IMAGE_DIM = 8  # the CLIP vision encoder's width (1280 in ViT-H/14)


def _tokenizer():
    """A T5 (Unigram) tokenizer with the special tokens and one piece per printable character."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(chr(c), -3.0) for c in range(33, 127)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=512)


def _transformer():
    from diffusers import WanAnimateTransformer3DModel

    torch.manual_seed(0)
    return WanAnimateTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=36, latent_channels=16,
        out_channels=16, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=16, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", image_dim=IMAGE_DIM, added_kv_proj_dim=16, rope_max_seq_len=32,
        motion_encoder_channel_sizes={"4": 8, "8": 8}, motion_encoder_size=FACE_SIZE, motion_style_dim=8,
        motion_dim=4, motion_encoder_dim=8, face_encoder_hidden_dim=8, face_encoder_num_heads=2,
        inject_face_latents_blocks=1, motion_encoder_batch_size=8,
    )


def make_tiny_wan(folder) -> Path:
    """Write a tiny Wan-Animate diffusers pipeline folder (model_index.json + components)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanAnimatePipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    folder = Path(folder)
    tokenizer = _tokenizer()
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(tokenizer), d_model=TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0, eos_token_id=1,
    ))
    torch.manual_seed(0)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=IMAGE_DIM, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        image_size=8, patch_size=4, projection_dim=8,
    ))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8})
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0,
                                        num_train_timesteps=1000)
    pipe = WanAnimatePipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                              image_processor=image_processor, image_encoder=image_encoder,
                              transformer=_transformer())
    pipe.save_pretrained(folder)
    return folder

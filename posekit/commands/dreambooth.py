"""`posekit dreambooth`: fine-tune Stable Diffusion 1.x on a subject or a style (full or LoRA)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.checks import LEARNING_RATE, LOSS_WEIGHT, check_out, finite
from posekit.commands.method_flags import MIXED_PRECISION, TRAINING_DEVICE


def dreambooth(
    instance_dir: Path = typer.Option(..., "--instance-dir", help="Folder of images of the subject (any size; NAME.txt beside an image overrides its prompt)."),
    instance_prompt: str = typer.Option(..., "--instance-prompt", help="Prompt with a rare token, e.g. 'a photo of sks person'."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Run folder: checkpoints, validation images, and the result (a pipeline folder, or pytorch_lora_weights.safetensors with --lora)."),
    model: str = typer.Option("stable-diffusion-v1-5/stable-diffusion-v1-5", "--model", help="Base model: hub id, diffusers folder (e.g. an earlier dreambooth --out), or .safetensors/.ckpt file."),
    model_config: Optional[Path] = typer.Option(None, "--model-config", help="Diffusers config folder for a single-file --model (offline)."),
    class_prompt: Optional[str] = typer.Option(None, "--class-prompt", help="Prompt of the subject's class, e.g. 'a photo of a person'."),
    with_prior_preservation: bool = typer.Option(False, "--with-prior-preservation", help="Also train on class images of the base model (keeps the class from drifting)."),
    class_dir: Optional[Path] = typer.Option(None, "--class-dir", help="Class images; generated with the base model when it holds fewer than --num-class-images."),
    num_class_images: int = typer.Option(100, "--num-class-images", min=1, help="Class images to use (and generate when missing)."),
    prior_loss_weight: float = typer.Option(1.0, "--prior-loss-weight", callback=finite(*LOSS_WEIGHT), help="Weight of the class images' loss."),
    lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (peft) instead of the whole UNet."),
    rank: int = typer.Option(4, "--rank", min=1, help="LoRA rank."),
    train_text_encoder: bool = typer.Option(False, "--train-text-encoder", help="Train the text encoder too."),
    resolution: int = typer.Option(512, "--resolution", min=8, help="Training size (images are fitted whole and padded to a square)."),
    steps: int = typer.Option(800, "--steps", min=1, help="Optimizer steps."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", "--lr", callback=finite(*LEARNING_RATE), help="Default 1e-4 with --lora, else 5e-6 (2e-6 with --train-text-encoder)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Instance images per step and process."),
    gradient_accumulation: int = typer.Option(1, "--gradient-accumulation", min=1, help="Micro-batches per optimizer step."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing", help="Trade compute for memory."),
    use_8bit_adam: bool = typer.Option(False, "--use-8bit-adam", help="bitsandbytes' 8-bit AdamW (CUDA; pip install bitsandbytes)."),
    mixed_precision: str = MIXED_PRECISION,
    checkpointing_steps: int = typer.Option(500, "--checkpointing-steps", min=0, help="Save the training state every K steps (0: never); with --lora each OUT/checkpoint-K is also a --lora folder."),
    keep_checkpoints: int = typer.Option(2, "--keep-checkpoints", min=1, help="How many of the newest checkpoints to keep."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out (same settings; only --steps, --checkpointing-steps, --keep-checkpoints, --validation-prompt, --validation-steps, --gradient-checkpointing, --device and --model-config may change)."),
    validation_prompt: Optional[str] = typer.Option(None, "--validation-prompt", help="Sample this prompt into OUT/validation/ during training."),
    validation_steps: int = typer.Option(100, "--validation-steps", min=1, help="Steps between validation samples."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: str = TRAINING_DEVICE,
):
    """Fine-tune Stable Diffusion on a few images of one subject or style (DreamBooth).

    It trains on the GPU --device auto finds (else the CPU), or on the CPU with --device cpu; to
    choose GPUs, or train on several, set CUDA_VISIBLE_DEVICES or run it under `accelerate launch`."""
    flags = dict(locals())  # every parameter but --out and --resume is a DreamBoothConfig field, same name
    from posekit.console import quiet_libraries

    check_out(out)
    quiet_libraries()
    from posekit.methods.diffusion.dreambooth import DreamBoothConfig, train_dreambooth

    del flags["out"], flags["resume"]
    train_dreambooth(DreamBoothConfig(**flags), out, resume=resume)

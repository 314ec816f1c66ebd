"""`posekit prepare-dataset` and `posekit train-gan`: the PATN pose-transfer GAN's data and training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.checks import LEARNING_RATE, LOSS_WEIGHT, check_out, finite, parse_size
from posekit.device import check_device


def prepare_dataset(
    raw_dir: Path = typer.Argument(..., help="Folder of raw photos (DeepFashion In-shop id_* folders, or Market-1501 bounding_box_* images)."),
    dataset: str = typer.Option(..., "--dataset", help="deepfashion | market1501."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset root to write (train/, test/, annotation and pairs CSVs)."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", callback=finite(0.0, 0.9), help="Share of person ids held out for test/."),
    max_pairs_per_person: int = typer.Option(0, "--max-pairs-per-person", min=0, help="Cap on ordered pairs per person (0: all)."),
    detector: str = typer.Option("blazepose", "--detector", help="blazepose | openpose."),
    device: str = typer.Option("auto", "--device", callback=check_device, help="auto | cpu | cuda[:N] | mps (openpose detector)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/test split and the pair sampling."),
):
    """Build the official PATN layout from raw photos with our pose detector."""
    from posekit.console import quiet_libraries

    check_out(out)
    quiet_libraries()
    from posekit.methods.patn.prepare import prepare

    failed = prepare(raw_dir, dataset, out, test_fraction=test_fraction, max_pairs_per_person=max_pairs_per_person,
                     detector_name=detector, device=device, seed=seed)
    if failed:
        raise typer.Exit(1)


def train_gan(
    dataset: str = typer.Option(..., "--dataset", help="deepfashion | market1501 | synthetic (built in, no download)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: config, checkpoints, samples, metrics.json."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root in the official layout (prepare-dataset writes one)."),
    iters: int = typer.Option(1000, "--iters", min=1, help="Total training iterations (a resumed run continues up to this)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Pairs per step and process (default: the dataset's official 7 / 32; synthetic 8)."),
    lr: float = typer.Option(2e-4, "--lr", callback=finite(*LEARNING_RATE), help="Adam learning rate for G and both Ds (betas 0.5, 0.999)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1, help="Save a checkpoint and a sample strip every K iterations."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint (same settings; --iters, --checkpoint-every, --workers, --eval-pairs may change)."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no | fp16 | bf16."),
    perceptual_weight: Optional[float] = typer.Option(None, "--perceptual-weight", callback=finite(*LOSS_WEIGHT), help="VGG19 perceptual loss weight (default: official 1 / 10); 0 trains without VGG."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="torchvision vgg19-dcbb9e9d.pth (else the torch cache)."),
    ngf: int = typer.Option(64, "--ngf", min=1, help="Base channels of G and the Ds (official 64)."),
    blocks: int = typer.Option(9, "--blocks", min=1, help="Pose-attentional transfer blocks (official 9)."),
    size: Optional[str] = typer.Option(None, "--size", help="Image size WxH, sides multiples of 4 (default: 176x256 DeepFashion, 64x128 Market; synthetic any)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, init, synthetic figures)."),
    eval_pairs: int = typer.Option(64, "--eval-pairs", min=1, help="Held-out pairs scored into metrics.json."),
    workers: int = typer.Option(2, "--workers", min=0, help="Data-loading worker processes."),
):
    """Train the PATN pose-transfer GAN (runs under `accelerate launch` too)."""
    from posekit.console import emit_json, info, quiet_libraries
    from posekit.errors import UsageError

    w, h = parse_size(size, multiple=4) or (None, None)
    check_out(out)
    quiet_libraries()
    from posekit.methods.patn.data import PRESETS
    from posekit.methods.patn.train import TrainConfig, train

    if dataset not in PRESETS:
        raise UsageError(f"--dataset {dataset!r}: choose one of {', '.join(PRESETS)}")
    if mixed_precision not in ("no", "fp16", "bf16"):
        raise UsageError(f"--mixed-precision {mixed_precision!r}: choose no, fp16 or bf16")
    config = TrainConfig(dataset=dataset, data_root=str(data_root) if data_root else None, iters=iters,
                         batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
                         mixed_precision=mixed_precision, perceptual_weight=perceptual_weight, ngf=ngf,
                         blocks=blocks, image_height=h, image_width=w, seed=seed, eval_pairs=eval_pairs,
                         workers=workers)
    # the library decides what --resume may change (posekit.training.check_run_folder)
    metrics = train(config, out, resume=resume, vgg_weights=str(vgg_weights) if vgg_weights else None)
    if metrics:
        info(f"held-out SSIM {metrics['ssim']:.3f} (copy-source baseline {metrics['ssim_source_baseline']:.3f}), "
             f"L1 {metrics['l1']:.4f} (baseline {metrics['l1_source_baseline']:.4f}); wrote {out}")
        emit_json({"run": str(out), **metrics})

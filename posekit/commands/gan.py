"""`posekit prepare-dataset` and `posekit train-gan`: the PATN pose-transfer GAN's data and training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.checks import LEARNING_RATE, LOSS_WEIGHT, check_out, finite, parse_size
from posekit.commands.method_flags import DEVICE, MIXED_PRECISION, warn_if_device_unused


def prepare_dataset(
    raw_dir: Path = typer.Argument(..., help="Folder of raw photos (DeepFashion In-shop id_* folders, or Market-1501 bounding_box_* images)."),
    dataset: str = typer.Option(..., "--dataset", help="deepfashion | market1501."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Dataset root to write (train/, test/, annotation and pairs CSVs)."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", callback=finite(0.0, 0.9), help="Share of person ids held out for test/."),
    max_pairs_per_person: int = typer.Option(0, "--max-pairs-per-person", min=0, help="Cap on ordered pairs per person (0: all)."),
    detector: str = typer.Option("blazepose", "--detector", help="blazepose | openpose."),
    device: str = DEVICE,
    seed: int = typer.Option(0, "--seed", help="Seed of the train/test split and the pair sampling."),
):
    """Build the official PATN layout from raw photos with our pose detector."""
    from posekit.console import quiet_libraries

    check_out(out)
    quiet_libraries()
    warn_if_device_unused(detector, device)
    from posekit.methods.patn.prepare import prepare

    failed = prepare(raw_dir, dataset, out, test_fraction=test_fraction, max_pairs_per_person=max_pairs_per_person,
                     detector_name=detector, device=device, seed=seed)
    if failed:
        raise typer.Exit(1)


def train_gan(
    dataset: str = typer.Option(..., "--dataset", help="deepfashion | market1501 | synthetic (built in, no download)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Run folder: config, checkpoints, samples, metrics.json."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root in the official layout (prepare-dataset writes one)."),
    iters: int = typer.Option(1000, "--iters", min=1, help="Total training iterations (a resumed run continues up to this). The authors' 700 epochs: 400000 for deepfashion, 87500 for market1501; divide by N under accelerate launch with N processes."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Pairs per step and process (default: the dataset's official 7 / 32; synthetic 8)."),
    lr: float = typer.Option(2e-4, "--lr", callback=finite(*LEARNING_RATE), help="Adam learning rate for G and both Ds (betas 0.5, 0.999)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", min=1, help="Save a checkpoint and a sample strip every K iterations."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint (same settings; --iters, --checkpoint-every, --workers, --eval-pairs may change)."),
    mixed_precision: str = MIXED_PRECISION,
    perceptual_weight: Optional[float] = typer.Option(None, "--perceptual-weight", callback=finite(*LOSS_WEIGHT), help="VGG19 perceptual loss weight (default: 1 DeepFashion, 10 Market, 10 synthetic, as the official settings); 0 trains without VGG."),
    vgg_weights: Optional[Path] = typer.Option(None, "--vgg-weights", help="torchvision vgg19-dcbb9e9d.pth (else the torch cache)."),
    ngf: int = typer.Option(64, "--ngf", min=1, help="Base channels of G and the Ds (official 64)."),
    blocks: int = typer.Option(9, "--blocks", min=1, help="Pose-attentional transfer blocks (official 9)."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH", help="Image size WxH, sides multiples of 4 (default: 176x256 DeepFashion, 64x128 Market, 176x256 synthetic, which takes any size)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (data order, init, synthetic figures)."),
    eval_pairs: int = typer.Option(64, "--eval-pairs", min=1, help="Held-out pairs scored into metrics.json."),
    workers: int = typer.Option(2, "--workers", min=0, help="Data-loading worker processes."),
    json_out: bool = typer.Option(False, "--json", help="Print the run folder and its final scores (metrics.json) as one JSON line on stdout."),
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
    config = TrainConfig(dataset=dataset, data_root=str(data_root) if data_root else None, iters=iters,
                         batch_size=batch_size, lr=lr, checkpoint_every=checkpoint_every,
                         mixed_precision=mixed_precision, perceptual_weight=perceptual_weight, ngf=ngf,
                         blocks=blocks, image_height=h, image_width=w, seed=seed, eval_pairs=eval_pairs,
                         workers=workers)
    # the library decides what --resume may change (posekit.training.check_run_folder)
    metrics = train(config, out, resume=resume, vgg_weights=str(vgg_weights) if vgg_weights else None)
    if metrics:
        from posekit.methods.patn.evaluate import CHEAP, print_table

        baseline = {key: metrics[f"{key}_source_baseline"] for key in CHEAP if f"{key}_source_baseline" in metrics}
        print_table([("posekit", metrics), ("copy the source", baseline)], dataset,
                    f"{metrics['held_out_pairs']} held-out pairs")
        info(f"wrote {out}")
        if json_out:  # the data channel only when asked for, as evaluate-gan and animate
            emit_json({"run": str(out), **metrics}, keep_going=True)


def synthetic_stream(checkpoint) -> dict:
    """The seed and size of the synthetic data a train-gan run was trained on (its config.json),
    so evaluate-gan scores the held-out figures train-gan scored; {} for anything else."""
    from pathlib import Path

    from posekit.training import CONFIG, read_config

    if checkpoint is None or not (Path(checkpoint).expanduser() / CONFIG).is_file():
        return {}
    run = read_config(Path(checkpoint).expanduser())
    return {k: run[k] for k in ("seed", "synthetic_size") if isinstance(run.get(k), int)}


def evaluate_gan(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A train-gan run folder, a netG .safetensors, or the authors' latest_net_netG.pth."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="deepfashion | market1501 | synthetic: needed only for the authors' .pth (else read from the checkpoint)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root in the official layout (test pairs, and train/ for FID); not for synthetic."),
    limit: int = typer.Option(0, "--limit", min=0, help="Score only the first N test pairs (0: all; synthetic: 500)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Pairs per forward pass."),
    device: str = DEVICE,
    detector: str = typer.Option("blazepose", "--detector", help="Keypoint detector for PCKh: blazepose | openpose (the papers used OpenPose)."),
    pckh: bool = typer.Option(True, "--pckh/--no-pckh", help="PCKh@0.5 of the keypoints detected on the generated images."),
    lpips: bool = typer.Option(True, "--lpips/--no-lpips", help="LPIPS (AlexNet, v0.1)."),
    fid: bool = typer.Option(True, "--fid/--no-fid", help="FID against the training images."),
    inception_score: bool = typer.Option(False, "--is", help="Also the Inception Score (10 splits, one per image when fewer; DeepFashion also IS pad40, the authors' padded images)."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="torchvision alexnet-owt-7be5be79.pth (else the torch cache or a download)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="weights-inception-2015-12-05-6726825d.pth (torch-fidelity) or pytorch-fid's pt_inception-2015-12-05-6726825d.pth."),
    fid_reference: int = typer.Option(0, "--fid-reference", min=0, help="Use the first N training images as FID reference (0: all)."),
    save_images: Optional[Path] = typer.Option(None, "--save-images", help="Folder for <from>___<to>_vis.png (source | pose | target | pose | generated), what the authors' getMetrics scripts read (.jpg with --jpeg)."),
    jpeg: bool = typer.Option(False, "--jpeg", help="Score the images cut out of JPEG strips (quality 75, panels truncated to 8 bits), as the authors' test.py saved and getMetrics scored them: the protocol of PATN's numbers (default: rounded, lossless)."),
    json_out: bool = typer.Option(False, "--json", help="Print the scores as one JSON line on stdout."),
):
    """Score a PATN generator on a dataset's test pairs: SSIM (and DeepFashion's padded SSIM), mask-SSIM, PCKh, LPIPS, FID, IS."""
    from posekit.console import emit_json, info, progress, quiet_libraries

    check_out(save_images, "--save-images")
    quiet_libraries()
    from posekit.device import resolve_device
    from posekit.errors import UsageError
    from posekit.methods.patn.data import preset
    from posekit.methods.patn.evaluate import (Backbones, evaluate_generator, evaluation_set, print_table,
                                               protocol)
    from posekit.methods.patn.method import load_patn
    from posekit.pose.detect import DETECTORS, load_detector

    if dataset is not None:
        preset(dataset)  # a usage error naming --dataset
    if detector not in DETECTORS:
        raise UsageError(f"--detector {detector!r}: choose one of {', '.join(DETECTORS)}")
    dev = resolve_device(device)
    G, config = load_patn(checkpoint, dataset)
    data = evaluation_set(config, data_root, limit, with_reference=fid, **synthetic_stream(checkpoint))
    backbones = Backbones.load(lpips, fid or inception_score, lpips_weights, inception_weights)
    found = load_detector(detector, device=device) if pckh else None
    try:
        with progress() as bar:
            task = bar.add_task("evaluate-gan", total=len(data.pairs), status="")
            report = evaluate_generator(G, data, dev, backbones, found, with_fid=fid, with_is=inception_score,
                                        reference_limit=fid_reference, batch_size=batch_size, save_dir=save_images,
                                        on_batch=lambda n: bar.update(task, advance=n),
                                        jpeg=jpeg)
    finally:
        if found is not None:
            found.close()
    how = protocol(report, detector, jpeg)
    print_table([("posekit", report)], config["dataset"], f"{report['pairs']} test pairs of {config['dataset']}")
    info(how)
    if json_out:
        emit_json({"checkpoint": str(checkpoint), "dataset": config["dataset"], **report, "protocol": how},
                  keep_going=save_images is not None)

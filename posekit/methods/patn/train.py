"""Training PATN with accelerate: the authors' losses and update order, our run folder.

    RUN/config.json                       what was asked (read back by --resume and by transfer)
    RUN/checkpoints/iter_000600/          netG / netD_PP / netD_PB .safetensors, optimizers.pt, state.json
    RUN/samples/iter_000600.png           rows of: source | target pose | generated | target
    RUN/metrics.json                      held-out ssim, l1 and the copy-the-source baselines
    RUN/log.jsonl                         losses, learning rate and it/s every 10 iterations
    RUN/netG.safetensors                  the final generator, what `transfer --checkpoint RUN` loads

A checkpoint folder is written under a temporary name and renamed into place, so a run killed
at any moment (even SIGKILL) leaves only whole checkpoints; `--resume` picks the newest.

One step, as the authors' PATN.optimize_parameters does it:
    fake = G(P1, [BP1, BP2])
    G:    lambda_L1 * L1 + lambda_perc * L1(VGG19[:relu1_2]) + lambda_GAN * (GAN(D_PB) + GAN(D_PP)) / 2
    D_PP: 0.5 * lambda_GAN * (real [P2, P1] + fake [fake, P1])      (appearance)
    D_PB: 0.5 * lambda_GAN * (real [P2, BP2] + fake [fake, BP2])    (shape)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from posekit.errors import PosekitError, UsageError
from posekit.methods.patn.data import datasets, heatmap_sigma, preset, to_uint8
from posekit.methods.patn.model import (NUM_KEYPOINTS, PATNGenerator, ResnetDiscriminator, gan_loss,
                                        init_weights)

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
NETS = ("netG", "netD_PP", "netD_PB")
LOG_EVERY = 10  # iterations between lines of RUN/log.jsonl


@dataclass
class TrainConfig:
    """What `train-gan` was asked; saved as RUN/config.json. None means "the preset's value"."""

    dataset: str = "synthetic"
    data_root: str | None = None
    iters: int = 1000
    batch_size: int | None = None
    lr: float = 2e-4
    checkpoint_every: int = 500
    mixed_precision: str = "no"
    perceptual_weight: float | None = None
    ngf: int = 64
    blocks: int = 9
    image_height: int | None = None
    image_width: int | None = None
    seed: int = 0
    eval_pairs: int = 64
    synthetic_size: int = 4000
    workers: int = 2

    def resolved(self) -> "TrainConfig":
        """Fill the preset's defaults in (batch size, perceptual weight, image size)."""
        p = preset(self.dataset)
        c = TrainConfig(**asdict(self))
        c.batch_size = c.batch_size or p.batch_size
        c.perceptual_weight = p.lambda_perceptual if c.perceptual_weight is None else c.perceptual_weight
        c.image_height = c.image_height or p.height
        c.image_width = c.image_width or p.width
        return c

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def generator_config(c: TrainConfig) -> dict:
    """What inference needs to rebuild and feed the generator (stored in every netG file)."""
    p = preset(c.dataset)
    return {"ngf": c.ngf, "blocks": c.blocks, "norm": p.norm, "height": c.image_height,
            "width": c.image_width, "dataset": c.dataset, "heatmap": p.heatmap,
            "sigma": heatmap_sigma(p, c.image_height)}


# -- VGG19 perceptual loss -------------------------------------------------------------------------
class VGGRelu12(nn.Module):
    """torchvision VGG19 `features[0:4]` (conv1_1, relu, conv1_2, relu): the authors' perceptual
    layers. Inputs in [-1, 1] are mapped to ImageNet mean/std first, as their loss does."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(True),
                                      nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(True))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x):
        return self.features(((x + 1) / 2 - self.mean) / self.std)


def vgg_state(vgg_weights: str | None) -> dict:
    """The first two conv layers of torchvision's ImageNet VGG19: from --vgg-weights, the torch
    hub cache, or a download; never silently random."""
    if vgg_weights:
        path = Path(vgg_weights)
        if not path.is_file():
            raise PosekitError(f"--vgg-weights {path}: no such file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise PosekitError(f"--vgg-weights {path}: not a PyTorch state_dict ({type(e).__name__})") from None
    else:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_URL).name
        try:
            # torch.hub announces downloads on stdout (our data channel) in some versions
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                state = torch.hub.load_state_dict_from_url(VGG19_URL, map_location="cpu", progress=False,
                                                           weights_only=True)
        except Exception:
            raise PosekitError(
                f"VGG19 ImageNet weights (for the perceptual loss) are not in the torch cache ({cached}) "
                f"and cannot be downloaded; pass --vgg-weights PATH to torchvision's {cached.name}, "
                f"or train without the perceptual loss with --perceptual-weight 0") from None
    state = {k.removeprefix("features."): v for k, v in state.items()}
    try:
        return {"features.0.weight": state["0.weight"], "features.0.bias": state["0.bias"],
                "features.2.weight": state["2.weight"], "features.2.bias": state["2.bias"]}
    except KeyError:
        raise PosekitError(f"--vgg-weights {vgg_weights}: not a VGG19 state_dict "
                           f"(no features.0 / features.2 conv weights)") from None


def perceptual_net(vgg_weights: str | None) -> VGGRelu12:
    net = VGGRelu12()
    net.load_state_dict(vgg_state(vgg_weights), strict=False)
    return net.eval()


# -- helpers ---------------------------------------------------------------------------------------
class ImagePool:
    """The authors' history of fakes for the discriminators (Market: 50; 0 = off): each fake is
    swapped, half of the time, for an older one."""

    def __init__(self, size: int):
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() > 0.5:
                i = random.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)


class IterationSampler(torch.utils.data.Sampler):
    """Indices for iterations [start, stop) of an endless shuffled stream (epoch e is the
    permutation seeded by (seed, e)), so a resumed run draws what the uninterrupted run would."""

    def __init__(self, n: int, per_iteration: int, start: int, stop: int, seed: int):
        self.n, self.per, self.start, self.stop, self.seed = n, per_iteration, start, stop, seed

    def __len__(self):
        return (self.stop - self.start) * self.per

    def __iter__(self):
        epoch, perm = -1, None
        for k in range(self.start * self.per, self.stop * self.per):
            e, j = divmod(k, self.n)
            if e != epoch:
                epoch, perm = e, np.random.default_rng([self.seed, e]).permutation(self.n)
            yield int(perm[j])


def lr_at(iteration: int, iters: int, lr: float) -> float:
    """Constant, then linear decay to 0 over the last 2/7 (the authors' 500 + 200 epochs)."""
    decay = max(1, round(iters * 2 / 7))
    return lr * min(1.0, (iters - iteration) / decay)


def log_line(run: Path, record: dict) -> None:
    """Append one JSON line to RUN/log.jsonl (losses, learning rate, speed): a plain record that
    survives a killed run and reads without a terminal."""
    with open(Path(run) / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def checkpoints(run: Path) -> list[Path]:
    folder = Path(run) / "checkpoints"
    return sorted(folder.glob("iter_[0-9]*")) if folder.is_dir() else []


def latest_checkpoint(run: Path) -> Path | None:
    found = checkpoints(run)
    return found[-1] if found else None


def save_net(net: nn.Module, path: Path, config: dict | None = None) -> None:
    from safetensors.torch import save_file

    from posekit.images import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:  # transfer prefers this file: never leave it half-written
        save_file(state, str(tmp), metadata={"posekit_patn": json.dumps(config)} if config else None)


def save_checkpoint(run: Path, iteration: int, nets: dict, optimizers: dict, gen_config: dict,
                    keep: int = 2) -> Path:
    """Write every file into a temporary folder, then rename it into place (atomic)."""
    final = Path(run) / "checkpoints" / f"iter_{iteration:06d}"
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, net in nets.items():
        save_net(net, tmp / f"{name}.safetensors", gen_config if name == "netG" else None)
    torch.save({name: opt.state_dict() for name, opt in optimizers.items()}, tmp / "optimizers.pt")
    (tmp / "state.json").write_text(json.dumps({"iteration": iteration}) + "\n")
    for f in tmp.iterdir():  # the data must be on disk before the rename makes it visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, nets: dict, optimizers: dict) -> int:
    from safetensors.torch import load_file

    try:
        for name, net in nets.items():
            net.load_state_dict(load_file(str(folder / f"{name}.safetensors")))
        states = torch.load(folder / "optimizers.pt", map_location="cpu", weights_only=True)
        for name, opt in optimizers.items():
            opt.load_state_dict(states[name])
        return int(json.loads((folder / "state.json").read_text())["iteration"])
    except Exception as e:  # damaged files raise SafetensorError, UnpicklingError, ...
        raise PosekitError(f"{folder}: cannot resume from this checkpoint ({type(e).__name__}: {e})") from None


def sample_strip(batch: dict, fake: torch.Tensor, rows: int = 4) -> np.ndarray:
    """Rows of source | target pose | generated | target."""
    from posekit.pose.pose import Pose
    from posekit.pose.render import draw_skeleton

    src, gen, tgt = to_uint8(batch["P1"][:rows]), to_uint8(fake[:rows]), to_uint8(batch["P2"][:rows])
    lines = []
    for i in range(len(src)):
        h, w = src[i].shape[:2]
        skeleton = draw_skeleton(Pose(batch["K2"][i].cpu().numpy(), w, h), w, h)
        lines.append(np.concatenate([src[i], skeleton, gen[i], tgt[i]], axis=1))
    return np.concatenate(lines, axis=0)


# -- held-out evaluation ---------------------------------------------------------------------------
@torch.no_grad()
def evaluate(G: nn.Module, held_out, device, batch_size: int = 16) -> tuple[dict, dict, torch.Tensor]:
    """Held-out SSIM / L1 of G's output and of the copy-the-source baseline, vs the target."""
    from posekit.metrics import ssim

    loader = torch.utils.data.DataLoader(held_out, batch_size=batch_size, shuffle=False)
    was_training = G.training
    G.eval()
    scores = {"ssim": [], "ssim_source_baseline": [], "l1": [], "l1_source_baseline": []}
    first = first_fake = None
    for batch in loader:
        fake = G(batch["P1"].to(device), batch["BP1"].to(device), batch["BP2"].to(device)).float().cpu()
        if first is None:
            first, first_fake = batch, fake
        gen, src, tgt = to_uint8(fake), to_uint8(batch["P1"]), to_uint8(batch["P2"])
        for g, s, t in zip(gen, src, tgt):
            scores["ssim"].append(ssim(g, t))
            scores["ssim_source_baseline"].append(ssim(s, t))
            scores["l1"].append(float(np.abs(g.astype(np.float32) - t).mean() / 255))
            scores["l1_source_baseline"].append(float(np.abs(s.astype(np.float32) - t).mean() / 255))
    G.train(was_training)
    return {k: float(np.mean(v)) for k, v in scores.items()}, first, first_fake


# -- the loop --------------------------------------------------------------------------------------
def train(config: TrainConfig, run: str | Path, resume: bool = False, vgg_weights: str | None = None) -> dict:
    """Train (or continue) a run; returns the held-out metrics written to RUN/metrics.json."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from posekit.console import info, progress
    from posekit.images import save_image, write_json

    run = Path(run)
    c = config.resolved()
    p = preset(c.dataset)
    if c.image_height % 4 or c.image_width % 4:
        raise UsageError(f"--size {c.image_width}x{c.image_height}: both sides must be multiples of 4")
    try:
        accelerator = Accelerator(mixed_precision=c.mixed_precision)
    except ValueError as e:
        raise UsageError(f"--mixed-precision {c.mixed_precision}: {e}") from None
    main = accelerator.is_main_process
    gen_config = generator_config(c)
    # data first: a wrong --data-root fails before any network is built
    train_set, held_out = datasets(c.dataset, c.data_root, c.image_height, c.image_width, c.seed,
                                   c.synthetic_size, c.eval_pairs)

    set_seed(c.seed)  # the same seed gives the same initial nets
    G = init_weights(PATNGenerator(c.ngf, c.blocks, p.norm, p.dropout))
    # the discriminators follow --ngf too, so small runs shrink every net (official: 64 each)
    D_PP = init_weights(ResnetDiscriminator(6, c.ngf, 3, p.norm, sigmoid=not p.lsgan))
    D_PB = init_weights(ResnetDiscriminator(3 + NUM_KEYPOINTS, c.ngf, 3, p.norm, sigmoid=not p.lsgan))
    vgg = perceptual_net(vgg_weights).to(accelerator.device) if c.perceptual_weight > 0 else None
    betas = (0.5, 0.999)
    opt_G, opt_PP, opt_PB = (torch.optim.Adam(n.parameters(), lr=c.lr, betas=betas) for n in (G, D_PP, D_PB))
    nets = {"netG": G, "netD_PP": D_PP, "netD_PB": D_PB}
    optimizers = {"netG": opt_G, "netD_PP": opt_PP, "netD_PB": opt_PB}

    start = 0
    if resume:
        last = latest_checkpoint(run)
        if last is None:
            if main:
                info(f"{run}: no checkpoint yet; starting from iteration 0")
        else:
            start = load_checkpoint(last, nets, optimizers)
            if main:
                info(f"resuming {run} from iteration {start} ({last.name})")
    if start >= c.iters and main:
        info(f"{run}: already at iteration {start} of --iters {c.iters}; evaluating only")
    set_seed(c.seed + start)
    if main:
        for stale in (run / "checkpoints").glob(".tmp-*"):  # left by a run killed while saving
            shutil.rmtree(stale, ignore_errors=True)
        write_json({**asdict(c), "generator": gen_config, "processes": accelerator.num_processes},
                   run / "config.json")

    stop = max(start, c.iters)
    sampler = IterationSampler(len(train_set), c.batch_size * accelerator.num_processes, start, stop, c.seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=c.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=c.workers, persistent_workers=False)
    G, D_PP, D_PB, opt_G, opt_PP, opt_PB, loader = accelerator.prepare(G, D_PP, D_PB, opt_G, opt_PP, opt_PB, loader)
    pool_PP, pool_PB = ImagePool(p.pool_size), ImagePool(p.pool_size)
    l1 = nn.L1Loss()

    def d_loss(D, real, fake, pool):
        fake = pool.query(fake.detach())
        return 0.5 * p.lambda_gan * (gan_loss(D(real), True, p.lsgan) + gan_loss(D(fake), False, p.lsgan))

    bar = progress(transient=False) if main else contextlib.nullcontext()
    with bar:
        task = bar.add_task("train-gan", total=c.iters, completed=start, status="") if main else None
        tick, it = time.perf_counter(), start
        for it, batch in enumerate(loader, start=start):
            for opt in (opt_G, opt_PP, opt_PB):
                for group in opt.param_groups:
                    group["lr"] = lr_at(it, c.iters, c.lr)
            P1, BP1, P2, BP2 = batch["P1"], batch["BP1"], batch["P2"], batch["BP2"]
            with accelerator.autocast():
                fake = G(P1, BP1, BP2)
                loss_l1 = l1(fake.float(), P2) * p.lambda_l1
                loss_perc = (F.l1_loss(vgg(fake).float(), vgg(P2).float().detach()) * c.perceptual_weight
                             if vgg is not None else torch.zeros((), device=fake.device))
                loss_gan = (gan_loss(D_PB(torch.cat([fake, BP2], 1)), True, p.lsgan)
                            + gan_loss(D_PP(torch.cat([fake, P1], 1)), True, p.lsgan)) * p.lambda_gan / 2
                loss_G = loss_l1 + loss_perc + loss_gan
            opt_G.zero_grad(set_to_none=True)
            accelerator.backward(loss_G)
            opt_G.step()
            with accelerator.autocast():
                loss_PP = d_loss(D_PP, torch.cat([P2, P1], 1), torch.cat([fake, P1], 1), pool_PP)
            opt_PP.zero_grad(set_to_none=True)
            accelerator.backward(loss_PP)
            opt_PP.step()
            with accelerator.autocast():
                loss_PB = d_loss(D_PB, torch.cat([P2, BP2], 1), torch.cat([fake, BP2], 1), pool_PB)
            opt_PB.zero_grad(set_to_none=True)
            accelerator.backward(loss_PB)
            opt_PB.step()

            done = it + 1
            if main:
                rate = (done - start) / max(1e-9, time.perf_counter() - tick)
                losses = {"L1": loss_l1.item(), "perceptual": loss_perc.item(), "G_GAN": loss_gan.item(),
                          "D_PP": loss_PP.item(), "D_PB": loss_PB.item()}
                bar.update(task, completed=done, status=" ".join(f"{k} {v:.3f}" for k, v in losses.items())
                           + f" {rate:.2f} it/s")
                if done % LOG_EVERY == 0 or done == c.iters:
                    log_line(run, {"iteration": done, **losses, "lr": lr_at(it, c.iters, c.lr), "it_per_s": rate})
            if done % c.checkpoint_every == 0 or done == c.iters:
                accelerator.wait_for_everyone()
                if main:
                    unwrapped = {k: accelerator.unwrap_model(v) for k, v in
                                 (("netG", G), ("netD_PP", D_PP), ("netD_PB", D_PB))}
                    save_checkpoint(run, done, unwrapped, optimizers, gen_config)
                    save_image(sample_strip(batch, fake.float()), run / "samples" / f"iter_{done:06d}.png")
                accelerator.wait_for_everyone()

    metrics = {}
    if main:
        netG = accelerator.unwrap_model(G)
        metrics, first, first_fake = evaluate(netG, held_out, accelerator.device)
        metrics = {**metrics, "iteration": max(start, c.iters), "held_out_pairs": len(held_out)}
        write_json(metrics, run / "metrics.json")
        save_image(sample_strip(first, first_fake, rows=8), run / "samples" / "held_out.png")
        save_net(netG, run / "netG.safetensors", gen_config)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics

"""Training PATN with accelerate: the authors' losses and update order, the shared run folder.

    RUN/config.json                  what was asked (read back by --resume and by transfer)
    RUN/checkpoint-600/              netG / netD_PP / netD_PB .safetensors, accelerate's optimizer,
                                     random and image-pool states (posekit.training: atomic, fsynced)
    RUN/samples/step-000600.png      rows of: source | target pose | generated | target
    RUN/metrics.json                 held-out ssim, ssim_padded, mask_ssim, l1 and the copy-the-source baselines
    RUN/log.jsonl                    losses, learning rate and it/s every 10 iterations (one row per
                                     log point: a resume drops the rows past its checkpoint)
    RUN/netG.safetensors             the final generator, what `transfer --checkpoint RUN` loads
                                     (a resume that trains further removes it and metrics.json
                                     until it finishes: meanwhile the newest checkpoint-N/ is loaded)

One run at a time writes into RUN (posekit.training.run_lock). A run killed at any moment (even
SIGKILL) leaves only whole checkpoints; `--resume` continues from the newest exactly as the
uninterrupted run would have (same data order, random state and image pools), with the same
settings but for those `TrainConfig.may_change_on_resume` lists. A resume with another --iters
re-plans the learning rate's decay from there (warned: `warn_if_replanned`).

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
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from posekit.errors import PosekitError, UsageError
from posekit.methods.patn.data import Preset, datasets, heatmap_sigma, preset, to_uint8
from posekit.methods.patn.model import (NUM_KEYPOINTS, PATNGenerator, ResnetDiscriminator, gan_loss,
                                        init_weights)
from posekit.training import (CONFIG, DataOrder, check_run_folder, load_latest_checkpoint, make_accelerator,
                              read_config, run_lock, save_checkpoint, write_config)

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
NETS = ("netG", "netD_PP", "netD_PB")
LOG_EVERY = 10  # iterations between lines of RUN/log.jsonl
KEEP_CHECKPOINTS = 2


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

    # how long to go on, how often to save, how to load and score: a resumed run may change
    # these; every other field defines the model or its data and must stay what the run used
    may_change_on_resume: ClassVar[tuple[str, ...]] = ("iters", "checkpoint_every", "workers", "eval_pairs")
    flag_names: ClassVar[dict[str, str]] = {"image_height": "--size", "image_width": "--size"}

    def shown_value(self, values: dict, field: str) -> str:
        """A field's value as its flag takes it (check_run_folder's messages): --size WxH."""
        if field in ("image_height", "image_width"):
            return f"{values['image_width']}x{values['image_height']}"
        return repr(values[field])

    def resolved(self) -> "TrainConfig":
        """Fill the preset's defaults in (batch size, perceptual weight, image size)."""
        p = preset(self.dataset)
        c = TrainConfig(**asdict(self))
        c.batch_size = c.batch_size or p.batch_size
        c.perceptual_weight = p.lambda_perceptual if c.perceptual_weight is None else c.perceptual_weight
        c.image_height = c.image_height or p.height
        c.image_width = c.image_width or p.width
        return c


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


def hub_weights(path: str | Path | None, url: str, flag: str, what: str, instead: str = "") -> dict:
    """A torchvision-style state_dict (loaded with weights_only=True): from the file the user
    passed with `flag`, else the torch hub cache, else a download; offline, one line naming the
    file to fetch and the flag (`instead`: what else the user may do)."""
    if path:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{flag} {path}: no such file")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise PosekitError(f"{flag} {path}: not a PyTorch state_dict ({type(e).__name__})") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    try:
        # torch.hub announces downloads on stdout (our data channel) in some versions
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except Exception:
        raise PosekitError(
            f"{what} are not in the torch cache ({cached}) and cannot be downloaded; pass {flag} PATH "
            f"to {cached.name} (from {url}){instead}") from None


def vgg_state(vgg_weights: str | None) -> dict:
    """The first two conv layers of torchvision's ImageNet VGG19: from --vgg-weights, the torch
    hub cache, or a download; never silently random."""
    state = hub_weights(vgg_weights, VGG19_URL, "--vgg-weights", "VGG19 ImageNet weights (for the perceptual loss)",
                        ", or train without the perceptual loss with --perceptual-weight 0")
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
    swapped, half of the time, for an older one. Checkpoints keep it (state_dict; under several
    processes each has its own pool, and a checkpoint keeps the main process's)."""

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
                out.append(self.images[i].clone().to(image.device))
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"images": [image.cpu() for image in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"])


def lr_at(iteration: int, iters: int, lr: float) -> float:
    """Constant, then linear decay to 0 over the last 2/7 (the authors' 500 + 200 epochs)."""
    decay = max(1, round(iters * 2 / 7))
    return lr * min(1.0, (iters - iteration) / decay)


def log_line(run: Path, record: dict) -> None:
    """Append one JSON line to RUN/log.jsonl (losses, learning rate, speed): a plain record that
    survives a killed run and reads without a terminal."""
    with open(Path(run) / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def keep_log_until(run: Path, iteration: int) -> None:
    """Drop the rows of RUN/log.jsonl past `iteration` (what a killed run logged after the
    checkpoint a resume starts from: the resumed run logs those iterations again), atomically.
    Unreadable rows (a line cut by a kill) go too."""
    from posekit.images import atomic_path

    path = Path(run) / "log.jsonl"
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("iteration"), int) and row["iteration"] <= iteration:
            kept.append(line)
    if kept == lines:
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("".join(line + "\n" for line in kept))
            f.flush()
            os.fsync(f.fileno())


def warn_if_replanned(say_warning, run: Path, saved_iters, c: "TrainConfig", start: int) -> None:
    """--resume with another --iters: the learning rate's decay (the last 2/7 of --iters) is
    planned anew, so from `start` on the run trains as a run of the new --iters would (a finished
    run extended gets its full rate back), not as the uninterrupted run of either length."""
    if not isinstance(saved_iters, int) or saved_iters == c.iters or not 0 < start < c.iters:
        return  # nothing re-planned: the same plan, a start from 0, or no iteration left to train
    before, after = lr_at(start, saved_iters, c.lr), lr_at(start, c.iters, c.lr)
    say_warning(f"--iters {c.iters}: {run} was planned for {saved_iters} iterations; the learning-rate "
                f"schedule is re-planned from iteration {start} (lr {before:.3g} there becomes {after:.3g}, "
                f"decaying to 0 over the last {max(1, round(c.iters * 2 / 7))} iterations)")


def save_net(net: nn.Module, path: Path, config: dict | None = None) -> None:
    from safetensors.torch import save_file

    from posekit.images import atomic_path

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(path) as tmp:  # transfer prefers this file: never leave it half-written
        save_file(state, str(tmp), metadata={"posekit_patn": json.dumps(config)} if config else None)


def checkpoint_hooks(accelerator, gen_config: dict) -> None:
    """Make accelerator.save_state / load_state keep the nets as netG / netD_PP / netD_PB
    .safetensors (netG with the settings transfer needs), beside accelerate's own files."""
    from safetensors.torch import load_file

    def save(models, weights, folder):
        if accelerator.is_main_process:
            for name, model in zip(NETS, models):
                save_net(accelerator.unwrap_model(model), Path(folder) / f"{name}.safetensors",
                         gen_config if name == "netG" else None)
        weights.clear()

    def load(models, folder):
        for name, model in zip(NETS, models):
            accelerator.unwrap_model(model).load_state_dict(load_file(str(Path(folder) / f"{name}.safetensors")))
        models.clear()

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


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
def evaluate(G: nn.Module, held_out, device, batch_size: int = 16,
             padded: bool = True) -> tuple[dict, dict, torch.Tensor]:
    """Held-out scores of G's output and of the copy-the-source baseline (`*_source_baseline`)
    vs the target: the evaluation table's columns that need no network (ssim, ssim_padded unless
    not `padded`, mask_ssim, l1; posekit.methods.patn.evaluate.cheap_scores)."""
    from posekit.methods.patn.evaluate import CHEAP, cheap_scores
    from posekit.pose.pose import Pose

    loader = torch.utils.data.DataLoader(held_out, batch_size=batch_size, shuffle=False)
    was_training = G.training
    G.eval()
    ours, baseline = [], []
    first = first_fake = None
    for batch in loader:
        fake = G(batch["P1"].to(device), batch["BP1"].to(device), batch["BP2"].to(device)).float().cpu()
        if first is None:
            first, first_fake = batch, fake
        gen, src, tgt = to_uint8(fake), to_uint8(batch["P1"]), to_uint8(batch["P2"])
        h, w = gen.shape[1:3]
        for g, s, t, k in zip(gen, src, tgt, batch["K2"]):
            pose = Pose(k.numpy(), w, h)
            ours.append(cheap_scores(g, t, pose, padded))
            baseline.append(cheap_scores(s, t, pose, padded))
    G.train(was_training)
    scores = {}
    for key in (key for key in CHEAP if key in ours[0]):
        scores[key] = float(np.mean([r[key] for r in ours]))
        scores[f"{key}_source_baseline"] = float(np.mean([r[key] for r in baseline]))
    return scores, first, first_fake


# -- the loop --------------------------------------------------------------------------------------
def train(config: TrainConfig, run: str | Path, resume: bool = False, vgg_weights: str | None = None) -> dict:
    """Train (or continue) a run; returns the held-out metrics written to RUN/metrics.json."""
    run, c = Path(run), config.resolved()
    if c.image_height % 4 or c.image_width % 4:
        raise UsageError(f"--size {c.image_width}x{c.image_height}: both sides must be multiples of 4")
    preset(c.dataset)
    accelerator = make_accelerator(c.mixed_precision)
    threads = torch.get_num_threads()
    try:
        with run_lock(run, accelerator.is_main_process):  # one run writes into --out, for the whole run
            if accelerator.device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ and small_work(c):
                torch.set_num_threads(1)
            return _train(c, run, resume, vgg_weights, accelerator)
    finally:
        torch.set_num_threads(threads)


# per-step work (batch x pixels x ngf^2 x blocks) below which train-gan uses one torch thread on
# the CPU: the official configurations are ~1e10, the docs' CPU trial ~1.3e7
SMALL_WORK = 1e9


def small_work(c: TrainConfig) -> bool:
    """Whether a run's nets are small enough that torch's intra-op threads gain little on the CPU
    while costing much on a busy machine: its thread pool spins waiting for cores other processes
    hold (measured with the docs' trial on a 2-core CPU at load 5: 0.07 it/s with torch's 2
    threads, 0.84 it/s with 1). OMP_NUM_THREADS, when set, decides instead."""
    return c.batch_size * c.image_height * c.image_width * c.ngf ** 2 * c.blocks < SMALL_WORK


def _train(c: TrainConfig, run: Path, resume: bool, vgg_weights: str | None, accelerator) -> dict:
    from accelerate.utils import set_seed

    from posekit.console import LineProgress, info, progress, warn
    from posekit.images import save_image

    p = preset(c.dataset)
    check_run_folder(run, c, resume, results=("netG.safetensors",))
    saved_iters = read_config(run).get("iters") if resume and (run / CONFIG).is_file() else None
    main = accelerator.is_main_process
    say = info if main else (lambda message: None)  # one voice under `accelerate launch`
    # data first: a wrong --data-root fails before any network is built
    train_set, held_out = datasets(c.dataset, c.data_root, c.image_height, c.image_width, c.seed,
                                   c.synthetic_size, c.eval_pairs)
    set_seed(c.seed)  # the same seed gives the same initial nets
    nets, optimizers, pools = build_nets(c, p, accelerator)
    vgg = perceptual_net(vgg_weights).to(accelerator.device) if c.perceptual_weight > 0 else None
    start, last = load_latest_checkpoint(accelerator, run) if resume else (0, None)
    if resume:
        say(f"resuming {run} from iteration {start} ({last.name})" if last
            else f"{run}: no checkpoint yet; starting from iteration 0")
    if main:
        warn_if_replanned(warn, run, saved_iters, c, start)
    if start >= c.iters:
        say(f"{run}: already at iteration {start} of --iters {c.iters}; evaluating only")
    if main:  # only now that the set-up worked: a run that failed to start leaves no config behind
        keep_log_until(run, start)  # rows a killed run logged past its checkpoint are logged again
        write_config(run, {**asdict(c), "generator": generator_config(c), "processes": accelerator.num_processes})
        if start < c.iters:  # training on: an earlier finish's generator and metrics are stale from now
            retire_final(run)
    loader = accelerator.prepare(data_loader(train_set, c, start, accelerator.num_processes))

    bar = progress(transient=False) if main else contextlib.nullcontext()
    rate_shown = isinstance(bar, LineProgress)  # the plain progress line adds the rate itself
    with bar:
        task = bar.add_task("train-gan", total=c.iters, completed=start, status="") if main else None
        tick = time.perf_counter()
        for it, batch in enumerate(loader, start=start):
            losses, fake = train_step(batch, it, c, p, nets, optimizers, pools, vgg, accelerator)
            done = it + 1
            if main:
                values = {k: v.item() for k, v in losses.items()}
                rate = (done - start) / max(1e-9, time.perf_counter() - tick)
                bar.update(task, completed=done, status=" ".join(f"{k} {v:.3f}" for k, v in values.items())
                           + ("" if rate_shown else f" {rate:.2f} it/s"))
                if done % LOG_EVERY == 0 or done == c.iters:
                    log_line(run, {"iteration": done, **values, "lr": lr_at(it, c.iters, c.lr), "it_per_s": rate})
            if done % c.checkpoint_every == 0 or done == c.iters:
                save_checkpoint(accelerator, run, done, KEEP_CHECKPOINTS)
                if main:
                    save_image(sample_strip(batch, fake.float()), run / "samples" / f"step-{done:06d}.png")
    return finish(run, c, nets["netG"], held_out, accelerator, start)


def build_nets(c: TrainConfig, p: Preset, accelerator) -> tuple[dict, dict, dict]:
    """G, D_PP and D_PB with their Adam optimizers, prepared by accelerate, and the
    discriminators' image pools: everything a checkpoint saves and --resume restores."""
    G = init_weights(PATNGenerator(c.ngf, c.blocks, p.norm, p.dropout))
    # the discriminators follow --ngf too, so small runs shrink every net (official: 64 each)
    D_PP = init_weights(ResnetDiscriminator(6, c.ngf, 3, p.norm, sigmoid=not p.lsgan))
    D_PB = init_weights(ResnetDiscriminator(3 + NUM_KEYPOINTS, c.ngf, 3, p.norm, sigmoid=not p.lsgan))
    adam = [torch.optim.Adam(net.parameters(), lr=c.lr, betas=(0.5, 0.999)) for net in (G, D_PP, D_PB)]
    prepared = accelerator.prepare(G, D_PP, D_PB, *adam)
    pools = {"netD_PP": ImagePool(p.pool_size), "netD_PB": ImagePool(p.pool_size)}
    accelerator.register_for_checkpointing(*pools.values())
    checkpoint_hooks(accelerator, generator_config(c))
    return dict(zip(NETS, prepared[:3])), dict(zip(NETS, prepared[3:])), pools


def data_loader(train_set, c: TrainConfig, start: int, processes: int):
    """Batches for iterations [start, iters) at their positions of the seeded stream
    (posekit.training.DataOrder). The loader draws its worker seeds from a generator of its own,
    so creating it leaves the global random state (restored by --resume) untouched."""
    per = c.batch_size * processes
    order = DataOrder(len(train_set), c.seed, start * per, max(start, c.iters) * per)
    return torch.utils.data.DataLoader(train_set, batch_size=c.batch_size, sampler=order, drop_last=True,
                                       num_workers=c.workers, persistent_workers=False,
                                       generator=torch.Generator().manual_seed(c.seed))


def train_step(batch: dict, it: int, c: TrainConfig, p: Preset, nets: dict, optimizers: dict, pools: dict,
               vgg: nn.Module | None, accelerator) -> tuple[dict, torch.Tensor]:
    """One iteration: G, then D_PP, then D_PB, each its own backward and Adam step; returns the
    (detached) losses and the generated batch."""
    G, D_PP, D_PB = (nets[name] for name in NETS)
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = lr_at(it, c.iters, c.lr)
    P1, BP1, P2, BP2 = batch["P1"], batch["BP1"], batch["P2"], batch["BP2"]
    with accelerator.autocast():
        fake = G(P1, BP1, BP2)
        loss_l1 = F.l1_loss(fake.float(), P2) * p.lambda_l1
        loss_perc = (F.l1_loss(vgg(fake).float(), vgg(P2).float().detach()) * c.perceptual_weight
                     if vgg is not None else torch.zeros((), device=fake.device))
        loss_gan = (gan_loss(D_PB(torch.cat([fake, BP2], 1)), True, p.lsgan)
                    + gan_loss(D_PP(torch.cat([fake, P1], 1)), True, p.lsgan)) * p.lambda_gan / 2
    update(accelerator, optimizers["netG"], loss_l1 + loss_perc + loss_gan)
    with accelerator.autocast():
        loss_PP = d_loss(D_PP, torch.cat([P2, P1], 1), torch.cat([fake, P1], 1), pools["netD_PP"], p)
    update(accelerator, optimizers["netD_PP"], loss_PP)
    with accelerator.autocast():
        loss_PB = d_loss(D_PB, torch.cat([P2, BP2], 1), torch.cat([fake, BP2], 1), pools["netD_PB"], p)
    update(accelerator, optimizers["netD_PB"], loss_PB)
    losses = {"L1": loss_l1, "perceptual": loss_perc, "G_GAN": loss_gan, "D_PP": loss_PP, "D_PB": loss_PB}
    return {k: v.detach() for k, v in losses.items()}, fake


def d_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, pool: ImagePool, p: Preset) -> torch.Tensor:
    """A discriminator's loss: real pairs as real, detached (pooled) fakes as fake."""
    fake = pool.query(fake.detach())
    return 0.5 * p.lambda_gan * (gan_loss(D(real), True, p.lsgan) + gan_loss(D(fake), False, p.lsgan))


def retire_final(run: Path) -> None:
    """Remove a finished run's netG.safetensors and metrics.json when a resume trains it further:
    until this run finishes (it may be stopped or killed) its newest weights are in its newest
    checkpoint-N/, which `--checkpoint RUN` then loads, and no metrics.json claims the old
    iteration for them."""
    for name in ("netG.safetensors", "metrics.json"):
        (run / name).unlink(missing_ok=True)


def update(accelerator, optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    optimizer.step()


def finish(run: Path, c: TrainConfig, G: nn.Module, held_out, accelerator, start: int) -> dict:
    """Score the held-out pairs into metrics.json, draw them into samples/held_out.png and write
    the final RUN/netG.safetensors; the metrics (empty on other processes than the main one)."""
    from posekit.images import save_image, write_json
    from posekit.methods.patn.evaluate import pads

    metrics = {}
    if accelerator.is_main_process:
        netG = accelerator.unwrap_model(G)
        scores, first, first_fake = evaluate(netG, held_out, accelerator.device, padded=pads(c.dataset))
        metrics = {**scores, "iteration": max(start, c.iters), "held_out_pairs": len(held_out)}
        write_json(metrics, run / "metrics.json")
        save_image(sample_strip(first, first_fake, rows=8), run / "samples" / "held_out.png")
        save_net(netG, run / "netG.safetensors", generator_config(c))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics

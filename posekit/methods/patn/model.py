"""PATN (Zhu et al., CVPR 2019): the pose-attentional transfer generator and its two discriminators.

The module tree mirrors the authors' code index for index, so the published state_dicts
(`latest_net_netG.pth`) load with their own key names:

    model.stream1_down / model.stream2_down   image / pose encoders (ReflectionPad, 7x7, 2x 3x3 s2)
    model.att.{0..T-1}                         Pose-Attentional Transfer Blocks
        .conv_block_stream1  pad, conv, norm, relu, dropout, pad, conv, norm     (image stream)
        .conv_block_stream2  pad, conv, norm, relu, dropout, pad, conv           (pose stream)
    model.stream1_up                           decoder: 2x ConvTranspose, ReflectionPad, 7x7, tanh

The Dropout at index 4 of each block carries no weights, but it is what puts the second conv at
index 6 and its norm at 7, as in the published keys. Instance norm (DeepFashion) comes with
biased convs; batch norm (Market-1501) with bias-free convs; the last 7x7 conv always has a bias.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from posekit.errors import PosekitError

NUM_KEYPOINTS = 18


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True)
    raise ValueError(f"norm must be 'instance' or 'batch', not {norm!r}")


def encoder(in_channels: int, ngf: int, norm: str) -> nn.Sequential:
    """ReflectionPad(3), 7x7 conv, then two stride-2 3x3 convs: ngf -> 4*ngf at 1/4 size."""
    bias = norm == "instance"
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                   norm_layer(norm, ngf * mult * 2), nn.ReLU(True)]
    return nn.Sequential(*layers)


def decoder(ngf: int, out_channels: int, norm: str) -> nn.Sequential:
    bias = norm == "instance"
    layers = []
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                   norm_layer(norm, ngf * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class PATBlock(nn.Module):
    """One Pose-Attentional Transfer Block.

    The pose stream's output (pre-sigmoid) gates the image stream's residual; the next block's
    pose input is [pose_out, updated image code], hence 2*dim input channels after block 0.
    """

    def __init__(self, dim: int, norm: str, first: bool, dropout: float = 0.5):
        super().__init__()
        bias = norm == "instance"
        pose_in = dim if first else 2 * dim
        self.conv_block_stream1 = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True),
            nn.Dropout(dropout),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim))
        self.conv_block_stream2 = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(pose_in, pose_in, 3, bias=bias), norm_layer(norm, pose_in), nn.ReLU(True),
            nn.Dropout(dropout),
            nn.ReflectionPad2d(1), nn.Conv2d(pose_in, dim, 3, bias=bias))

    def forward(self, image_code: torch.Tensor, pose_code: torch.Tensor):
        pose_out = self.conv_block_stream2(pose_code)
        image_code = image_code + self.conv_block_stream1(image_code) * torch.sigmoid(pose_out)
        return image_code, torch.cat([pose_out, image_code], dim=1)


class PATNetwork(nn.Module):
    def __init__(self, ngf: int = 64, blocks: int = 9, norm: str = "instance", dropout: float = 0.5,
                 image_channels: int = 3, keypoints: int = NUM_KEYPOINTS):
        super().__init__()
        self.stream1_down = encoder(image_channels, ngf, norm)
        self.stream2_down = encoder(2 * keypoints, ngf, norm)
        self.att = nn.ModuleList(PATBlock(4 * ngf, norm, (i == 0), dropout) for i in range(blocks))
        self.stream1_up = decoder(ngf, image_channels, norm)

    def forward(self, source_image: torch.Tensor, pose_code: torch.Tensor) -> torch.Tensor:
        return self.transfer(self.stream1_down(source_image), pose_code)

    def transfer(self, image_code: torch.Tensor, pose_code: torch.Tensor) -> torch.Tensor:
        """The blocks and the decoder on an already encoded source (inference encodes it once)."""
        pose_code = self.stream2_down(pose_code)
        for block in self.att:
            image_code, pose_code = block(image_code, pose_code)
        return self.stream1_up(image_code)


class PATNGenerator(nn.Module):
    """G(source image in [-1, 1], source heatmaps, target heatmaps) -> target image in [-1, 1].

    Heights and widths must be multiples of 4 (two stride-2 stages). `dropout` acts in training
    only (the official 0.5; a Dropout of 0 keeps its place, so the key layout never changes).
    """

    def __init__(self, ngf: int = 64, blocks: int = 9, norm: str = "instance", dropout: float = 0.5):
        super().__init__()
        self.ngf, self.blocks, self.norm = ngf, blocks, norm
        self.model = PATNetwork(ngf, blocks, norm, dropout)  # the extra level gives the official "model." prefix

    def forward(self, source_image, source_heatmaps, target_heatmaps):
        return self.model(source_image, torch.cat([source_heatmaps, target_heatmaps], dim=1))

    def encode(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source image's code, to reuse for many targets with `from_code`."""
        return self.model.stream1_down(source_image)

    def from_code(self, image_code, source_heatmaps, target_heatmaps):
        """Same as forward, on a code from `encode` (identical in eval mode)."""
        return self.model.transfer(image_code, torch.cat([source_heatmaps, target_heatmaps], dim=1))


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str):
        super().__init__()
        bias = norm == "instance"
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True),
            nn.Dropout(0.5),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetDiscriminator(nn.Module):
    """The authors' ResNet discriminator: encoder + residual blocks; the 4*ndf-channel map at 1/4
    size is the per-element real/fake score (sigmoid only for the vanilla-GAN preset).

    Appearance D_PP reads [image, source image] (6 ch); shape D_PB reads [image, target heatmaps]
    (3 + 18 ch).
    """

    def __init__(self, in_channels: int, ndf: int = 64, blocks: int = 3, norm: str = "instance",
                 sigmoid: bool = False):
        super().__init__()
        layers = list(encoder(in_channels, ndf, norm))
        layers += [ResnetBlock(4 * ndf, norm) for _ in range(blocks)]
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def init_weights(net: nn.Module, std: float = 0.02) -> nn.Module:
    """The authors' 'normal' init: conv weights N(0, std); batch-norm weights N(1, std), bias 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return net


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# -- official checkpoints ------------------------------------------------------------------------
def _is_batch_norm(state: dict) -> bool:
    """Market's batch-norm generator stores weights at the norm indices (stream1_down.2.weight);
    DeepFashion's instance norm has none there (at most stray running stats)."""
    return "model.stream1_down.2.weight" in state


def architecture_of(state: dict) -> dict:
    """ngf, number of blocks and norm of a generator state_dict (official or ours)."""
    try:
        ngf = state["model.stream1_down.1.weight"].shape[0]
    except KeyError:
        raise PosekitError("not a PATN generator state_dict (no model.stream1_down.1.weight)") from None
    blocks = len({k.split(".")[2] for k in state if k.startswith("model.att.")})
    return {"ngf": int(ngf), "blocks": blocks, "norm": "batch" if _is_batch_norm(state) else "instance"}


def without_module_prefix(state: dict) -> dict:
    """The keys as the bare network names them: (Distributed)DataParallel saves them as `module.*`."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def clean_official_state(state: dict, norm: str) -> dict:
    """Drop what modern PyTorch rejects: the DeepFashion file's InstanceNorm running stats (saved by
    an old PyTorch whose InstanceNorm tracked them)."""
    if norm == "instance":
        state = {k: v for k, v in state.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    return state


def load_generator_state(state: dict) -> PATNGenerator:
    """A generator with the architecture read from `state`, loaded strictly (every key 1:1)."""
    state = without_module_prefix(state)
    arch = architecture_of(state)
    state = clean_official_state(state, arch["norm"])
    net = PATNGenerator(**arch)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as e:  # tensor shapes that do not fit the layout
        raise PosekitError(f"generator weights do not match the PATN layout ({str(e).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise PosekitError(f"generator weights do not match the PATN layout "
                           f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
    return net


CHECKPOINT_KINDS = "a train-gan run folder, a .safetensors, or latest_net_netG.pth"  # what --checkpoint takes


def check_checkpoint(checkpoint: str | Path | None) -> None:
    """PatnOptions' check of --checkpoint, before any work: a path that is clearly one
    (posekit.methods.diffusion.models.clearly_local) must exist, and a file must hold what it
    will be read as (a .safetensors file safetensors, any other torch.save's zip or pickle). For a
    folder PatnOptions checks the file it holds (patn.method.checkpoint_file). UsageError lines
    naming --checkpoint."""
    from posekit.errors import UsageError
    from posekit.methods.diffusion.models import check_local_path, weights_format

    path = check_local_path(checkpoint, "--checkpoint")
    if path is None or not path.is_file():
        return
    wanted = "safetensors" if path.suffix == ".safetensors" else "torch"
    if weights_format(path) != wanted:
        raise UsageError(f"--checkpoint {checkpoint}: not a PATN checkpoint ({CHECKPOINT_KINDS})")


def load_official_generator(path: str | Path) -> PATNGenerator:
    """Load the authors' `latest_net_netG.pth` (a torch.save'd state_dict) safely: tensors only
    (torch.load's weights_only), so a file that holds anything else is refused, one line."""
    from posekit.methods.diffusion.models import weights_format

    path = Path(path)
    if not path.is_file():
        raise PosekitError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, non-tensor payloads
        # never torch's own text: it is many lines, and it suggests weights_only=False (running
        # whatever code the file holds)
        if weights_format(path) != "torch":
            why = "not a PyTorch file"
        elif "weights only" in str(e).lower() or "weights_only" in str(e):
            why = "it holds Python objects, not only tensors"
        else:
            why = f"damaged ({type(e).__name__})"
        raise PosekitError(f"--checkpoint {path}: not a PATN checkpoint (cannot read it as a PyTorch state_dict: "
                           f"{why}); pass {CHECKPOINT_KINDS}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PosekitError(f"{path}: expected a state_dict, found {type(state).__name__}")
    try:
        return load_generator_state(state)
    except PosekitError as e:
        raise PosekitError(f"{path}: {e}") from None


def gan_loss(prediction: torch.Tensor, real: bool, lsgan: bool) -> torch.Tensor:
    """LSGAN (MSE to 1/0) or vanilla GAN (BCE on the sigmoid output), over every element."""
    prediction = prediction.float()
    if lsgan:
        return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))
    # BCE written out: F.binary_cross_entropy refuses to run under fp16 autocast
    p = prediction.clamp(1e-7, 1 - 1e-7)
    return -(torch.log(p) if real else torch.log1p(-p)).mean()

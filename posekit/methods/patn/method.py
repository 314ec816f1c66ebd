"""`--method gan`: move the person of one photo into target poses with a PATN generator.

    method = PatnMethod(photo, pose, PatnOptions(checkpoint="runs/patn"))
    frames = method(target_poses)

Frames: the generator works at a fixed size (DeepFashion 256x176, Market 128x64, or what a run
was trained at). A source of exactly that size is used as it is and target keypoints stay in its
frame (the official test pairs are so). Any other source is cropped around the person to the
model's aspect ratio and resized; each target pose, given on the source canvas, is carried into
that crop the same way (`frame_pose`), so frames come out at the model's size.

Weights (--checkpoint): a `train-gan` run folder (its netG.safetensors, or the newest checkpoint),
one of our netG .safetensors files (architecture and preprocessing in its metadata), or the
authors' latest_net_netG.pth (architecture read from the keys; preprocessing from --dataset).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posekit.device import resolve_device
from posekit.errors import PosekitError, UsageError
from posekit.methods import long_side_at_most
from posekit.pose.pose import Pose

CROP_MARGIN = 0.12  # extra room around the keypoints' box (heads and feet reach past their points)


def _official_config(arch: dict, dataset: str | None, path: Path) -> dict:
    from posekit.methods.patn.data import heatmap_sigma, preset

    if dataset is None:  # the published files differ in their norm: read the preset from it
        dataset = "deepfashion" if arch["norm"] == "instance" else "market1501"
    p = preset(dataset)
    if p.norm != arch["norm"]:
        article = "an" if arch["norm"][:1] in "aeiou" else "a"
        fits = "deepfashion" if arch["norm"] == "instance" else "market1501"
        raise UsageError(f"--dataset {dataset}: {path} is {article} {arch['norm']}-norm generator, "
                         f"but the {dataset} preset uses {p.norm} norm; pass --dataset {fits} or leave --dataset out")
    return {**arch, "height": p.height, "width": p.width, "dataset": dataset, "heatmap": p.heatmap,
            "sigma": heatmap_sigma(p, p.height)}


def _safetensors_generator(path: Path, dataset: str | None):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from posekit.methods.patn.model import architecture_of, load_generator_state

    try:
        with safe_open(str(path), "pt") as f:
            meta = (f.metadata() or {}).get("posekit_patn")
        state = load_file(str(path))
    except Exception as e:
        raise PosekitError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from None
    try:
        net = load_generator_state(state)
    except PosekitError as e:
        raise PosekitError(f"{path}: {e}") from None
    if meta:
        config = _our_config(meta, path)
        if dataset and dataset != config.get("dataset"):
            raise UsageError(f"--dataset {dataset}: {path} was trained on {config.get('dataset')}; "
                             f"leave --dataset out for our own checkpoints")
        return net, config
    return net, _official_config(architecture_of(state), dataset, path)


def _our_config(meta: str, path: Path) -> dict:
    """The settings our train-gan stores in netG.safetensors, checked, or a one-line error."""
    try:
        config = json.loads(meta)
        missing = [k for k in ("height", "width", "heatmap", "sigma") if k not in config]
    except (ValueError, TypeError):
        config, missing = None, ["valid JSON"]
    if missing or config.get("heatmap") not in ("gaussian", "pixel"):
        raise PosekitError(f"{path}: damaged posekit_patn metadata (missing {', '.join(missing) or 'a heatmap kind'}); "
                           f"use a netG.safetensors written by posekit train-gan")
    return config


def checkpoint_file(checkpoint: str | Path) -> Path:
    """The file --checkpoint names: itself, or in a folder the newest generator of the run: its
    netG.safetensors (a finished train-gan run) unless a checkpoint-N/netG.safetensors is newer
    (a run resumed to train further, still training or stopped: N past metrics.json's
    "iteration", the final generator's), else the authors' latest_net_netG.pth. A folder with
    none of them is a UsageError."""
    path = Path(checkpoint).expanduser()
    if not path.is_dir():
        return path
    from posekit.training import checkpoints

    found = [(step, folder / "netG.safetensors") for step, folder in checkpoints(path)
             if (folder / "netG.safetensors").is_file()]
    final = path / "netG.safetensors"
    if final.is_file() and not (found and found[-1][0] > _final_iteration(path, found[-1][1])):
        return final
    if found:
        return found[-1][1]
    if (path / "latest_net_netG.pth").is_file():
        return path / "latest_net_netG.pth"
    raise UsageError(f"--checkpoint {checkpoint}: no netG.safetensors, checkpoint-N/ or latest_net_netG.pth in "
                     "this folder; pass a train-gan run folder (--out of train-gan) or the weights file")


def _final_iteration(run: Path, newest: Path) -> float:
    """The iteration of the run's final netG.safetensors: metrics.json's "iteration" (written with
    it); without a readable one, taken as newer than the newest checkpoint unless that file was
    written after it."""
    try:
        iteration = json.loads((run / "metrics.json").read_text()).get("iteration")
        if isinstance(iteration, int) and not isinstance(iteration, bool):
            return iteration
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return -1 if newest.stat().st_mtime > (run / "netG.safetensors").stat().st_mtime else float("inf")
    except OSError:
        return float("inf")


def load_patn(checkpoint: str | Path | None, dataset: str | None = None):
    """(generator, config) from a run folder, a .safetensors file or an official .pth."""
    from posekit.methods.patn.model import load_official_generator

    if checkpoint is None:
        raise UsageError("--method gan needs --checkpoint: a train-gan run folder, a netG .safetensors, "
                         "or the authors' latest_net_netG.pth")
    path = checkpoint_file(checkpoint)
    if not path.is_file():
        raise UsageError(f"--checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        return _safetensors_generator(path, dataset)
    net = load_official_generator(path)
    return net, _official_config({"ngf": net.ngf, "blocks": net.blocks, "norm": net.norm}, dataset, path)


def person_crop(pose: Pose, width: int, height: int) -> tuple[float, float, float, float]:
    """(x0, y0, w, h) of a box of aspect width:height around the person (may leave the canvas)."""
    box = pose.bbox()
    if box is None:
        raise PosekitError("the source pose has no keypoints; pass --source-pose")
    x0, y0, x1, y1 = box
    bw, bh = (x1 - x0) * (1 + 2 * CROP_MARGIN), (y1 - y0) * (1 + 2 * CROP_MARGIN)
    h = max(bh, bw * height / width, 8.0)
    w = h * width / height
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - w / 2, cy - h / 2, w, h


def cropped_image(image: np.ndarray, box, width: int, height: int) -> np.ndarray:
    """The box resampled to width x height; outside the photo, its border pixels repeat."""
    import cv2

    x0, y0, w, h = box
    sx, sy = width / w, height / h
    affine = np.float32([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]])
    interp = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, affine, (width, height), flags=interp, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class PatnOptions:
    """What `--method gan` takes from the command line."""

    checkpoint: str | None = None  # a train-gan run folder, a netG .safetensors or an official .pth
    dataset: str | None = None  # the preprocessing preset of official weights: deepfashion | market1501
    device: str = "auto"
    batch_size: int = 8  # targets per forward pass

    def __post_init__(self):  # a mistyped or wrong --checkpoint, or a folder without weights: before any work
        from posekit.methods.patn.model import check_checkpoint

        check_checkpoint(self.checkpoint)
        if self.checkpoint is not None and Path(self.checkpoint).expanduser().is_dir():
            check_checkpoint(checkpoint_file(self.checkpoint))


class PatnMethod:
    """PATN pose transfer: one source, many target poses, batched."""

    Options = PatnOptions

    @staticmethod
    def load(options: PatnOptions | None = None):
        """The generator on its device and its config: what a batch of photos shares."""
        options = options or PatnOptions()
        net, config = load_patn(options.checkpoint, options.dataset)
        return net.to(resolve_device(options.device)).eval(), config  # eval: no dropout, running BN stats

    def __init__(self, source_image: np.ndarray, source_pose: Pose, options: PatnOptions | None = None,
                 models=None):
        from posekit.methods.patn.data import heatmap_tensor, image_tensor

        options = options or PatnOptions()
        self.device = resolve_device(options.device)
        self.batch_size = max(1, int(options.batch_size))
        self.net, self.config = models if models is not None else self.load(options)
        self.width, self.height = int(self.config["width"]), int(self.config["height"])
        h, w = source_image.shape[:2]
        if (w, h) == (self.width, self.height):
            self.box = None
            frame = source_image
        else:
            self.box = person_crop(source_pose, self.width, self.height)
            frame = cropped_image(source_image, self.box, self.width, self.height)
        self.source_frame = frame
        self.source = image_tensor(frame)[None].to(self.device)
        self.source_maps = heatmap_tensor(self._maps(self.frame_pose(source_pose)))[None].to(self.device)
        with torch.no_grad():
            self.source_code = self.net.encode(self.source)  # once per clip, not per target

    @staticmethod
    def working_size(width: int, height: int, options=None) -> tuple[int, int]:
        """The size the photo is scaled to before the crop: a long side of at most 1024 px."""
        return long_side_at_most(width, height, 1024)

    def _maps(self, pose: Pose) -> np.ndarray:
        from posekit.pose.render import heatmaps

        return heatmaps(pose, sigma=float(self.config["sigma"]), kind=self.config["heatmap"])

    def frame_pose(self, pose: Pose) -> Pose:
        """A pose on the source canvas, in the output frame's pixel coordinates."""
        if self.box is None:
            return pose.with_canvas(self.width, self.height)
        x0, y0, w, h = self.box
        return pose.cropped(x0, y0, max(1, round(w)), max(1, round(h))).scale(
            self.width / w, self.height / h).with_canvas(self.width, self.height)

    @torch.no_grad()
    def __call__(self, targets: list[Pose]) -> list[np.ndarray]:
        from posekit.methods.patn.data import heatmap_tensor, to_uint8

        frames = []
        for i in range(0, len(targets), self.batch_size):
            chunk = targets[i:i + self.batch_size]
            maps = torch.stack([heatmap_tensor(self._maps(self.frame_pose(t))) for t in chunk]).to(self.device)
            n = len(chunk)
            out = self.net.from_code(self.source_code.expand(n, -1, -1, -1), self.source_maps.expand(n, -1, -1, -1), maps)
            frames += list(to_uint8(out))
        return frames

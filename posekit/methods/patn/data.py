"""PATN data: the official DeepFashion / Market-1501 release layouts, the synthetic stand-in, and
the presets that say how each was preprocessed.

Official layout (what the authors' scripts produce, and what `posekit prepare-dataset` writes):

    ROOT/train/<name>.jpg   ROOT/test/<name>.jpg
    ROOT/fasion-resize-annotation-{train,test}.csv   (Market: market-annotation-*.csv)
    ROOT/fasion-resize-pairs-{train,test}.csv        (Market: market-pairs-*.csv)
    ROOT/trainK/<name>.npy  ROOT/testK/<name>.npy    optional precomputed H x W x 18 heatmaps

Every sample is a dict of float32 tensors: P1/P2 (3, H, W) in [-1, 1] (source/target image) and
BP1/BP2 (18, H, W) heatmaps, the names the authors' code uses, plus K1/K2 (18, 3) keypoints.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from posekit.errors import PosekitError, UsageError
from posekit.pose.pose import Pose


@dataclass(frozen=True)
class Preset:
    """How one dataset's official model was built and fed (patn.md): fixed facts, not options."""

    name: str
    height: int
    width: int
    norm: str             # generator/discriminator norm
    heatmap: str          # "pixel" (DeepFashion's uint8-truncated maps) or "gaussian"
    sigma: float
    lsgan: bool           # LSGAN (MSE) or vanilla GAN (BCE + sigmoid)
    lambda_l1: float
    lambda_perceptual: float
    lambda_gan: float
    batch_size: int
    pool_size: int
    files: str            # prefix of the annotation/pairs CSVs
    dropout: float = 0.5  # in the transfer blocks, training only


SYNTHETIC_DROPOUT = 0.0  # short CPU runs learn faster without it; official presets keep 0.5
PRESETS = {
    "deepfashion": Preset("deepfashion", 256, 176, "instance", "pixel", 6.0, True, 1.0, 1.0, 5.0, 7, 0, "fasion-resize"),
    "market1501": Preset("market1501", 128, 64, "batch", "gaussian", 6.0, False, 10.0, 10.0, 5.0, 32, 50, "market"),
    # ours, for short CPU runs: batch norm (instance norm erases the absolute colour of flat
    # regions, and the flat backgrounds here must be copied), pix2pix's strong L1 weight, LSGAN,
    # no dropout, gaussian maps whose width follows the image size
    "synthetic": Preset("synthetic", 256, 176, "batch", "gaussian", 6.0, True, 100.0, 10.0, 5.0, 8, 0, "synthetic",
                        dropout=SYNTHETIC_DROPOUT),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        from posekit.errors import UsageError

        raise UsageError(f"--dataset {name!r}: choose one of {', '.join(PRESETS)}") from None


def heatmap_sigma(p: Preset, height: int) -> float:
    """Official presets keep sigma 6; the synthetic preset scales it with the image (3 px at 64)."""
    return p.sigma if p.name != "synthetic" else max(1.5, p.sigma * height / 128)


def pose_heatmaps(pose: Pose, p: Preset) -> np.ndarray:
    """(H, W, 18) float32 maps on the pose's canvas, as the preset's model was trained on."""
    from posekit.pose.render import heatmaps

    return heatmaps(pose, sigma=heatmap_sigma(p, pose.height), kind=p.heatmap)


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1] (the authors' ToTensor + Normalize(0.5, 0.5))."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 127.5 - 1.0


def heatmap_tensor(maps: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).permute(2, 0, 1)


def keypoints_tensor(pose: Pose) -> torch.Tensor:
    """(18, 3) x, y, confidence: kept beside the heatmaps for sample strips and metrics."""
    return torch.from_numpy(pose.keypoints.copy())


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


# -- the official layouts ------------------------------------------------------------------------
def annotation_csv(root: Path, p: Preset, split: str) -> Path:
    return Path(root) / f"{p.files}-annotation-{split}.csv"


def pairs_csv(root: Path, p: Preset, split: str) -> Path:
    return Path(root) / f"{p.files}-pairs-{split}.csv"


def read_pairs(path: Path) -> list[tuple[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise PosekitError(f"{path}: pairs file not found (expected the official layout; "
                           f"build one with `posekit prepare-dataset`)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0][:2]] != ["from", "to"]:
        raise PosekitError(f"{path}: not a pairs CSV (the first line must be 'from,to')")
    return [(r[0].strip(), r[1].strip()) for r in rows[1:] if len(r) >= 2]


def write_pairs(pairs: list[tuple[str, str]], path: Path) -> None:
    from posekit.images import write_text

    write_text("from,to\n" + "".join(f"{a},{b}\n" for a, b in pairs), path)


def first_process() -> bool:
    """Whether this is the first process of an `accelerate launch` (or the only one): what
    every process would say alike is said once."""
    import os

    return (os.environ.get("RANK") or "0") == "0"


class DataError(PosekitError):
    """A dataset file that every process of a launch reads alike and finds wrong (said once)."""

    same_everywhere = True


def npy_problem(path: Path, shape: tuple[int, ...]) -> str | None:
    """What is wrong with a .npy file that should hold an array of `shape`, read from its header
    and size alone (None: nothing)."""
    from numpy.lib import format as npy

    try:
        with open(path, "rb") as f:
            version = npy.read_magic(f)
            read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            found, _, dtype = read(f)
            start = f.tell()
    except (ValueError, OSError, EOFError) as e:
        return f"not a readable .npy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if tuple(found) != tuple(shape):
        return f"an array of shape {tuple(found)}, expected {tuple(shape)} (height, width, 18 keypoints)"
    if dtype.hasobject:
        return "an array of Python objects, not numbers"
    if path.stat().st_size < start + int(np.prod(found)) * dtype.itemsize:
        return "truncated (the file is shorter than its header says)"
    return None


def other_layouts(p: Preset) -> list[Preset]:
    """The official layouts other than `p`'s (what a --data-root given with the wrong --dataset holds)."""
    return [q for q in PRESETS.values() if q.name not in (p.name, "synthetic")]


def other_root(p: Preset, other: str) -> str:
    """What to do about a --data-root of the `other` dataset's layout where `p`'s was expected:
    train-gan can train on it; evaluate-gan's generator fixes the dataset, so the root is wrong."""
    return f"pass the --data-root of a {p.name} layout (train-gan: or --dataset {other} to train on this one)"


def size_hint(width: int, height: int, p: Preset) -> str:
    """What to do about a layout image of `width` x `height` that is not `p`'s size: the other
    dataset's size names its --dataset; DeepFashion's uncropped 256x256 In-shop images, the crop."""
    other = [q.name for q in other_layouts(p) if (q.width, q.height) == (width, height)]
    if other:
        return f" (a {other[0]} image: {other_root(p, other[0])})"
    if p.name == "deepfashion" and (width, height) == (256, 256):
        return " (the In-shop images before the official crop to x 40..216: `posekit prepare-dataset` makes the layout)"
    return ""


class PairDataset(torch.utils.data.Dataset):
    """Pairs of one split of an official-layout dataset (DeepFashion or Market-1501)."""

    def __init__(self, root: str | Path, split: str, p: Preset):
        from posekit.pose.formats import read_patn_annotations

        self.root, self.split, self.preset = Path(root), split, p
        if not self.root.is_dir():
            raise UsageError(f"--data-root {self.root}: no such folder")
        ann = annotation_csv(self.root, p, split)
        if not ann.is_file():
            other = [q.name for q in other_layouts(p) if annotation_csv(self.root, q, split).is_file()]
            if other:  # the layout of another dataset: the flag, not the files, is wrong
                raise UsageError(f"--data-root {self.root}: a {other[0]} layout ({annotation_csv(self.root, PRESETS[other[0]], split).name}), "
                                 f"not {p.name}'s ({ann.name}); {other_root(p, other[0])}")
            raise PosekitError(f"{ann}: annotation file not found (expected the official layout; "
                               f"build one with `posekit prepare-dataset`)")
        self.poses = read_patn_annotations(ann, p.width, p.height)
        listed = read_pairs(pairs_csv(self.root, p, split))
        self.pairs = [(a, b) for a, b in listed if a in self.poses and b in self.poses]
        if not self.pairs:
            raise PosekitError(f"{pairs_csv(self.root, p, split)}: no pair whose images are both annotated")
        if len(self.pairs) < len(listed) and first_process():
            from posekit.console import warn

            warn(f"{pairs_csv(self.root, p, split)}: {len(listed) - len(self.pairs)} of {len(listed)} pairs "
                 f"skipped: an image of theirs is not in {ann.name}")
        self.check_heatmap_files()

    def check_heatmap_files(self) -> None:
        """The split's cached maps (trainK/, testK/: the authors' compute_coordinates.py output),
        checked by their .npy headers before any work: (H, W, 18) at the dataset's size, and the
        whole array in the file. One line naming the first bad file otherwise (a worker process
        cannot say it in one line, and a run should not stop hours in)."""
        folder = self.root / f"{self.split}K"
        if not folder.is_dir():
            return
        expected = (self.preset.height, self.preset.width, 18)
        for name in sorted({n for pair in self.pairs for n in pair}):
            path = folder / f"{name}.npy"
            if path.is_file():
                problem = npy_problem(path, expected)
                if problem:
                    raise DataError(f"{path}: {problem}; fix or delete the {folder.name}/ folder (without it the "
                                       f"maps are drawn from {annotation_csv(self.root, self.preset, self.split).name})")

    def __len__(self) -> int:
        return len(self.pairs)

    def image(self, name: str) -> np.ndarray:
        from posekit.images import load_image

        img = load_image(self.root / self.split / name)
        if img.shape[:2] != (self.preset.height, self.preset.width):
            raise PosekitError(f"{self.root / self.split / name}: {img.shape[1]}x{img.shape[0]} pixels, "
                               f"the {self.preset.name} layout has {self.preset.width}x{self.preset.height}"
                               + size_hint(img.shape[1], img.shape[0], self.preset))
        return img

    def heatmaps(self, name: str) -> np.ndarray:
        cached = self.root / f"{self.split}K" / f"{name}.npy"
        if cached.is_file():  # checked by check_heatmap_files
            return np.load(cached, allow_pickle=False).astype(np.float32)
        return pose_heatmaps(self.poses[name], self.preset)

    def __getitem__(self, i: int) -> dict:
        a, b = self.pairs[i]
        return {"P1": image_tensor(self.image(a)), "BP1": heatmap_tensor(self.heatmaps(a)),
                "P2": image_tensor(self.image(b)), "BP2": heatmap_tensor(self.heatmaps(b)),
                "K1": keypoints_tensor(self.poses[a]), "K2": keypoints_tensor(self.poses[b])}


class SyntheticPairs(torch.utils.data.Dataset):
    """`length` mannequin pairs, deterministic by (seed, index); drawn on the fly."""

    def __init__(self, length: int, height: int, width: int, seed: int = 0, p: Preset = PRESETS["synthetic"]):
        self.length, self.height, self.width, self.seed, self.preset = length, height, width, seed, p

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        from posekit.methods.patn.synthetic import synthetic_pair

        a, pa, b, pb = synthetic_pair(self.seed, i, self.width, self.height)
        return {"P1": image_tensor(a), "BP1": heatmap_tensor(pose_heatmaps(pa, self.preset)),
                "P2": image_tensor(b), "BP2": heatmap_tensor(pose_heatmaps(pb, self.preset)),
                "K1": keypoints_tensor(pa), "K2": keypoints_tensor(pb)}


HELD_OUT_SEED_OFFSET = 1_000_003  # held-out synthetic figures come from a different seed stream


def datasets(name: str, data_root: str | Path | None, height: int, width: int, seed: int = 0,
             synthetic_size: int = 4000, eval_pairs: int = 64, with_train: bool = True):
    """(train, held-out) datasets for `train-gan`. The held-out set is a fixed slice of the test
    split (official layouts) or figures the training stream never draws (synthetic).
    `with_train=False`: an official layout's train split is not read (None in its place), so a
    folder holding only the test split can be scored."""
    p = preset(name)
    if name == "synthetic" and data_root is not None:
        from posekit.errors import UsageError

        raise UsageError(f"--data-root {data_root}: --dataset synthetic is built in (no files); leave --data-root out")
    if name == "synthetic":
        return (SyntheticPairs(synthetic_size, height, width, seed, p),
                SyntheticPairs(eval_pairs, height, width, seed + HELD_OUT_SEED_OFFSET, p))
    if data_root is None:
        from posekit.errors import UsageError

        raise UsageError(f"--dataset {name} needs --data-root (the folder with train/, test/ and the CSVs)")
    if (height, width) != (p.height, p.width):
        from posekit.errors import UsageError

        raise UsageError(f"--size {width}x{height}: the {name} layout is {p.width}x{p.height}")
    train = PairDataset(data_root, "train", p) if with_train else None
    test = PairDataset(data_root, "test", p)
    held_out = torch.utils.data.Subset(test, range(min(eval_pairs, len(test))))
    return train, held_out

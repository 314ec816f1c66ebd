"""The pose-transfer papers' evaluation table for a PATN generator (`posekit evaluate-gan`).

    G, config = load_patn("runs/fashion")                 # posekit.methods.patn.method
    data = evaluation_set(config, "data/fashion")          # test pairs + the training images
    report = evaluate_generator(G, data, device, Backbones.load(lpips=True, fid=True), detector)
    print_table([("ours", report)], config["dataset"])

Columns, each averaged over the test pairs (generated image vs the target photo):

- `ssim`: PATN's SSIM (posekit.metrics.ssim) at the dataset's size; `ssim_padded`: the same
  after padding both images with 40 px of white on each side, the authors' DeepFashion script
  (256x176 -> 256x256; it raises the score, as the white margins match exactly; not for
  Market-1501, whose script does not pad);
- `mask_ssim`: SSIM inside the target pose's body mask (Market-1501's mask-SSIM);
- `l1`: mean absolute difference in [0, 1];
- `pckh`: PCKh@0.5 of the keypoints our detector finds on the generated image against the
  target's annotation (pairs whose target has fewer than two head points are not counted);
  `pckh_targets`, the same detector on the target photos themselves, is its ceiling;
- `lpips`: LPIPS v0.1 with the AlexNet trunk (the `lpips` package: its linear layers ship
  inside it; the trunk is torchvision's ImageNet AlexNet);
- `fid`: FID (torch-fidelity's Inception, pt_inception-2015-12-05 weights, 2048-d pool
  features) of the generated images against the training images, each image once;
- `is`: Inception Score (10 splits, fewer when there are fewer images) of the generated images,
  on request; `is_padded`, DeepFashion's: of the images padded as for `ssim_padded`, as the
  authors' script scores them (PATN's 3.209).

`jpeg=True` scores what the authors' scripts scored: their test.py made each result strip
(`authors_image`) of panels truncated to uint8 (`tensor2im`), saved it as a JPEG at PIL's default
quality 75, and getMetrics cut the generated and target images back out of those JPEGs. Without
it the images are rounded to uint8 and scored losslessly.

Backbones are passed in (`Backbones`), so tests build them with random weights through the same
code path that loads the real ones.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from posekit.errors import PosekitError, UsageError
from posekit.pose.pose import Pose

PAD = 40  # px of white on each side in the authors' DeepFashion SSIM/IS scripts
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
SYNTHETIC_TEST_PAIRS = 500  # the synthetic "test split": held-out figures (train-gan's held-out stream)
LPIPS_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # lpips' AlexNet slices of features[0:12]

# the papers' numbers, to place ours among (their protocols differ; see docs/patn.md)
PAPERS = {
    "deepfashion": [("PATN (paper)", {"ssim_padded": 0.773, "is_padded": 3.209}),
                    ("PIDM (paper)", {"ssim": 0.731, "lpips": 0.168, "fid": 6.36}),
                    ("CFLD (paper)", {"ssim": 0.738, "lpips": 0.152, "fid": 6.80})],
    "market1501": [("PATN (paper)", {"ssim": 0.311, "mask_ssim": 0.811})],
}
COLUMNS = (("ssim", "SSIM"), ("ssim_padded", "SSIM pad40"), ("mask_ssim", "mask-SSIM"), ("l1", "L1"),
           ("pckh", "PCKh@0.5"), ("lpips", "LPIPS"), ("fid", "FID"), ("is", "IS"), ("is_padded", "IS pad40"))
CHEAP = ("ssim", "ssim_padded", "mask_ssim", "l1")  # what needs no detector and no backbone


# -- backbones -------------------------------------------------------------------------------------
def alexnet_state(path: str | Path | None) -> dict:
    """torchvision's ImageNet AlexNet (`features.*`, from --lpips-weights, the cache or a download)."""
    from posekit.methods.patn.train import hub_weights

    return hub_weights(path, ALEXNET_URL, "--lpips-weights", "AlexNet ImageNet weights (for LPIPS)",
                       ", or leave LPIPS out with --no-lpips")


def inception_state(path: str | Path | None) -> dict:
    """The FID Inception (torch-fidelity's file; pytorch-fid's pt_inception-2015-12-05 has the same keys)."""
    from posekit.methods.patn.train import hub_weights

    return hub_weights(path, INCEPTION_URL, "--inception-weights", "FID Inception weights (pt_inception-2015-12-05)",
                       ", or leave FID and IS out with --no-fid")


def lpips_net(alexnet: dict):
    """LPIPS v0.1 (AlexNet): the package's own linear layers, the trunk from `alexnet` (a
    torchvision AlexNet state_dict, whole or its `features`)."""
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation, inside lpips
        net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    features = {k.removeprefix("features."): v for k, v in alexnet.items()}
    trunk = {}
    for slice_number, (lo, hi) in enumerate(LPIPS_SLICES, start=1):
        for key, value in features.items():
            index = key.split(".")[0]
            if index.isdigit() and lo <= int(index) < hi:
                trunk[f"slice{slice_number}.{key}"] = value
    try:
        net.net.load_state_dict(trunk)
    except RuntimeError:
        raise PosekitError("--lpips-weights: not torchvision's AlexNet state_dict "
                           "(alexnet-owt-7be5be79.pth)") from None
    return net.eval().requires_grad_(False)


def inception_net(state: dict):
    """torch-fidelity's FID Inception v3 with `state` (2048-d pool features and unbiased logits)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    buffer = io.BytesIO()  # torch-fidelity reads a file; hand it the tensors we loaded safely
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=buffer)
    except RuntimeError:
        raise PosekitError("--inception-weights: not the FID Inception state_dict "
                           "(weights-inception-2015-12-05-6726825d.pth)") from None


@dataclass
class Backbones:
    """The networks behind LPIPS and FID / IS; None leaves those columns out."""

    lpips: torch.nn.Module | None = None
    inception: torch.nn.Module | None = None

    @classmethod
    def load(cls, lpips: bool, fid: bool, lpips_weights=None, inception_weights=None) -> "Backbones":
        return cls(lpips_net(alexnet_state(lpips_weights)) if lpips else None,
                   inception_net(inception_state(inception_weights)) if fid else None)

    def to(self, device) -> "Backbones":
        return Backbones(*(None if net is None else net.to(device) for net in (self.lpips, self.inception)))


# -- data ------------------------------------------------------------------------------------------
@dataclass
class EvaluationSet:
    """Test pairs with their image names, and the training images FID compares against."""

    pairs: torch.utils.data.Dataset
    names: list[tuple[str, str]]
    reference: Callable[[int], Iterator[np.ndarray]]  # n -> the first n training images (uint8 H x W x 3)
    reference_size: int
    dataset: str = ""  # the preset's name: deepfashion, market1501, synthetic


def evaluation_set(config: dict, data_root: str | Path | None, limit: int = 0, seed: int = 0,
                   synthetic_size: int = 4000, with_reference: bool = True) -> EvaluationSet:
    """The official test pairs of the generator's dataset (the first `limit`, 0 = all), or for
    `synthetic` the held-out figures train-gan scores (the run's `seed` and `synthetic_size`:
    a seeded stream it never trained on). `with_reference=False` (no FID): the training images are
    not needed, and an official layout's train split is not even read."""
    from posekit.methods.patn.data import datasets

    name, height, width = config["dataset"], int(config["height"]), int(config["width"])
    if name == "synthetic" and data_root is not None:
        raise UsageError(f"--data-root {data_root}: the checkpoint was trained on --dataset synthetic and is scored "
                         "on its built-in held-out figures; leave --data-root out")
    pairs = limit or (SYNTHETIC_TEST_PAIRS if name == "synthetic" else 10 ** 9)
    train, test = datasets(name, data_root, height, width, seed=seed, synthetic_size=synthetic_size, eval_pairs=pairs,
                           with_train=with_reference)
    if name == "synthetic":
        names = [(f"synthetic-{i:05d}-a.png", f"synthetic-{i:05d}-b.png") for i in range(len(test))]

        def reference(n):  # both figures of each training pair
            return itertools.islice((image for i in range(len(train)) for image in synthetic_images(train, i)), n)
        return EvaluationSet(test, names, reference, 2 * len(train), config["dataset"])
    names = [test.dataset.pairs[i] for i in test.indices]
    images = sorted(train.poses) if train is not None else []

    def reference(n):
        for image_name in images[:n]:
            yield train.image(image_name)
    return EvaluationSet(test, names, reference, len(images), config["dataset"])


def synthetic_images(train, i: int):
    from posekit.methods.patn.data import to_uint8

    item = train[i]
    return list(to_uint8(torch.stack([item["P1"], item["P2"]])))


# -- scores ----------------------------------------------------------------------------------------
def cheap_scores(generated: np.ndarray, target: np.ndarray, pose: Pose, padded: bool = True) -> dict:
    """The columns that need no network: SSIM (as is and, with `padded`, padded), mask-SSIM, L1."""
    from posekit.metrics import mask_ssim, ssim

    return {"ssim": ssim(generated, target), **({"ssim_padded": ssim(generated, target, pad=PAD)} if padded else {}),
            "mask_ssim": mask_ssim(generated, target, pose),
            "l1": float(np.abs(generated.astype(np.float32) - target).mean() / 255)}


def pads(dataset: str) -> bool:
    """Whether the authors' script for `dataset` pads the images (DeepFashion's, and ours for the
    synthetic set; Market-1501's 64-wide images are scored as they are)."""
    return dataset != "market1501"


def padded_white(images: np.ndarray, pad: int = PAD) -> np.ndarray:
    """(B, H, W, 3) uint8 with `pad` px of white left and right, as the authors' DeepFashion scripts."""
    return np.pad(images, ((0, 0), (0, 0), (pad, pad), (0, 0)), constant_values=255)


def tensor2im(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 as the authors' util.tensor2im made the
    panels of their strips: (x + 1) / 2 * 255 in float32, truncated (not rounded: the generated
    image comes out about half a level darker than `to_uint8`'s, and the photos' levels 1..63 one
    lower, by float error)."""
    x = images.detach().float().cpu().clamp(-1, 1).permute(0, 2, 3, 1).numpy()
    return ((x + 1) / 2.0 * 255.0).astype(np.uint8)


def jpeg_round_trip(strip: np.ndarray) -> tuple[np.ndarray, bytes]:
    """A result strip as the authors' test.py saved it (PIL's JPEG defaults: quality 75, 4:2:0)
    and as their getMetrics read it back: (the decoded strip, the JPEG file's bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, format="JPEG")
    data = buffer.getvalue()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), data


def pckh_scores(generated: list[np.ndarray], targets: list[Pose], detector) -> list[float]:
    """PCKh@0.5 of the first person the detector finds on each image (none found: 0); NaN where
    the target has no head box."""
    from posekit.metrics import pckh

    found = detector.detect(generated)
    return [pckh(people[0] if people else Pose.empty(t.width, t.height), t) for people, t in zip(found, targets)]


def pooled(scores: list[float], present: list[int], measured: np.ndarray) -> float | None:
    """Correct keypoints over all target keypoints of the measured pairs, as the authors' PCKh
    script counts them (not the mean of per-pair fractions, which overweights sparse poses)."""
    if not measured.any():
        return None
    n = np.asarray(present, np.float64)[measured]
    return float((np.asarray(scores)[measured] * n).sum() / n.sum())


def as_tensor(images: np.ndarray, device) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) uint8 on device."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)


@torch.no_grad()
def lpips_scores(net, generated: np.ndarray, targets: np.ndarray, device) -> list[float]:
    a = as_tensor(generated, device).float() / 127.5 - 1
    b = as_tensor(targets, device).float() / 127.5 - 1
    return net(a, b).flatten().cpu().tolist()


@torch.no_grad()
def inception_features(net, images: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    pool, logits = net(as_tensor(images, device))
    return pool.double().cpu(), logits.double().cpu()


def fid(generated: torch.Tensor, reference: torch.Tensor) -> float:
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    if min(len(generated), len(reference)) < 2:  # a covariance needs two images at least
        raise UsageError(f"FID needs at least 2 generated and 2 reference images, not {len(generated)} and "
                         f"{len(reference)}; raise --limit / --fid-reference or pass --no-fid")

    out = fid_statistics_to_metric(fid_features_to_statistics(generated), fid_features_to_statistics(reference),
                                   verbose=False)
    return float(out["frechet_inception_distance"])


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:  # IS_SPLITS
    from torch_fidelity.metric_isc import isc_features_to_metric

    out = isc_features_to_metric(logits, splits=is_splits(len(logits), splits))
    return out["inception_score_mean"], out["inception_score_std"]


def is_splits(images: int, splits: int = 10) -> int:  # IS_SPLITS
    """The splits an Inception Score of `images` images uses: `splits`, or one per image when fewer."""
    return max(1, min(splits, images))


def reference_features(net, images, device, batch_size: int) -> torch.Tensor:
    """Inception pool features of an iterator of uint8 images, batched."""
    features, chunk = [], []
    for image in images:
        chunk.append(image)
        if len(chunk) == batch_size:
            features.append(inception_features(net, np.stack(chunk), device)[0])
            chunk = []
    if chunk:
        features.append(inception_features(net, np.stack(chunk), device)[0])
    return torch.cat(features)


def authors_image(source, target, generated, source_pose: Pose, target_pose: Pose) -> np.ndarray:
    """One `<from>___<to>_vis.png` of the authors' test output, which their getMetrics scripts
    cut into fifths: source | source pose | target | target pose | generated."""
    from posekit.pose.render import draw_skeleton

    h, w = source.shape[:2]
    return np.concatenate([source, draw_skeleton(source_pose, w, h), target, draw_skeleton(target_pose, w, h),
                           generated], axis=1)


@torch.no_grad()
def evaluate_generator(G, data: EvaluationSet, device, backbones: Backbones | None = None, detector=None,
                       with_fid: bool = True, with_is: bool = False, reference_limit: int = 0,
                       batch_size: int = 16, save_dir: str | Path | None = None, on_batch=None,
                       padded: bool | None = None, jpeg: bool = False) -> dict:
    """Run G over the test pairs and score them (see the module docstring); `detector` None leaves
    PCKh out; FID and IS need `backbones.inception` (`with_fid`, `with_is` choose); `padded`
    adds the pad40 columns (None: for every dataset but Market-1501, whose script does not pad); `jpeg` scores the images cut out
    of JPEG strips, as the authors did (and saves the strips as .jpg). `on_batch(n)` is told
    after each batch (progress). Returns the table's columns, `pairs`, `pckh_pairs` (pairs with
    a head box), `pckh_targets`, `fid_reference_images` and `is_splits`."""
    from posekit.images import atomic_path, save_image
    from posekit.methods.patn.data import to_uint8

    padded = pads(data.dataset) if padded is None else padded
    G = G.to(device).eval()
    backbones = (backbones or Backbones()).to(device)
    loader = torch.utils.data.DataLoader(data.pairs, batch_size=batch_size, shuffle=False)
    rows, pck, pck_targets, present, lp, pools, logits, padded_logits = [], [], [], [], [], [], [], []
    start = 0
    convert = tensor2im if jpeg else to_uint8  # --jpeg: the panels as the authors' test.py made them
    for batch in loader:
        fake = G(batch["P1"].to(device), batch["BP1"].to(device), batch["BP2"].to(device))
        gen, src, tgt = convert(fake), convert(batch["P1"]), convert(batch["P2"])
        h, w = gen.shape[1:3]
        sources = [Pose(k.numpy(), w, h) for k in batch["K1"]]
        targets = [Pose(k.numpy(), w, h) for k in batch["K2"]]
        strips = ([authors_image(src[i], tgt[i], gen[i], sources[i], targets[i]) for i in range(len(gen))]
                  if jpeg or save_dir is not None else [])  # (two skeleton drawings a pair: only when used)
        files = [None] * len(gen)
        if jpeg:  # what the authors scored: both images cut back out of the saved JPEG strip
            strips, files = zip(*(jpeg_round_trip(s) for s in strips))
            tgt = np.stack([s[:, 2 * w:3 * w] for s in strips])
            gen = np.stack([s[:, 4 * w:5 * w] for s in strips])
        rows += [cheap_scores(g, t, pose, padded) for g, t, pose in zip(gen, tgt, targets)]
        if detector is not None:
            pck += pckh_scores(list(gen), targets, detector)
            pck_targets += pckh_scores(list(tgt), targets, detector)
            present += [int(t.visible.sum()) for t in targets]
        if backbones.lpips is not None:
            lp += lpips_scores(backbones.lpips, gen, tgt, device)
        if backbones.inception is not None:
            pool, logit = inception_features(backbones.inception, gen, device)
            pools.append(pool)
            logits.append(logit)
            if with_is and padded:
                padded_logits.append(inception_features(backbones.inception, padded_white(gen), device)[1])
        if save_dir is not None:
            for i in range(len(gen)):
                a, b = data.names[start + i]
                if files[i] is None:
                    save_image(strips[i], Path(save_dir) / f"{a}___{b}_vis.png")
                else:  # the JPEG scored, byte for byte
                    with atomic_path(Path(save_dir) / f"{a}___{b}_vis.jpg") as tmp:
                        tmp.write_bytes(files[i])
        start += len(gen)
        if on_batch:
            on_batch(len(gen))
    report = {key: float(np.mean([r[key] for r in rows])) for key in CHEAP if key in rows[0]}
    report["pairs"] = len(rows)
    if detector is not None:
        measured = np.isfinite(pck)
        report.update(pckh=pooled(pck, present, measured), pckh_targets=pooled(pck_targets, present, measured),
                      pckh_pairs=int(measured.sum()))
    if backbones.lpips is not None:
        report["lpips"] = float(np.mean(lp))
    if backbones.inception is not None and with_fid:
        n = min(reference_limit or data.reference_size, data.reference_size)
        ref = reference_features(backbones.inception, data.reference(n), device, batch_size)
        report.update(fid=fid(torch.cat(pools), ref), fid_reference_images=len(ref))
    if backbones.inception is not None and with_is:
        report["is"], report["is_std"] = inception_score(torch.cat(logits))
        report["is_splits"] = is_splits(len(rows))
        if padded_logits:
            report["is_padded"], report["is_padded_std"] = inception_score(torch.cat(padded_logits))
    from posekit.console import warn

    for message in too_few_images(report):
        warn(message)
    return report


# below these the numbers say more about the sample size than about the generator
FID_MIN_IMAGES = 2048  # the Inception pool features' dimension: fewer images give a singular covariance
IS_SPLITS = 10
IS_MIN_PER_SPLIT = 50  # one image per split scores exactly 1


def too_few_images(report: dict) -> list[str]:
    """Warnings for an FID or IS computed from far fewer images than the literature uses."""
    messages = []
    if "fid" in report:
        generated, reference = report["pairs"], report["fid_reference_images"]
        if min(generated, reference) < FID_MIN_IMAGES:
            messages.append(
                f"FID from {generated} generated and {reference} reference images: below {FID_MIN_IMAGES} each (the "
                "Inception features' dimension) it is strongly biased upward and not comparable to papers, which use "
                "thousands (PATN's test sets: 8570 / 12000 pairs; Heusel et al. 50000); raise --limit / --fid-reference")
    if "is" in report:
        n = report["pairs"]
        splits = is_splits(n)
        if n // splits < IS_MIN_PER_SPLIT:
            messages.append(
                f"IS from {n} images in {splits} splits ({n // splits} per split): under {IS_MIN_PER_SPLIT} per split "
                f"it tends to 1 whatever the generator (Salimans et al.: 50000 images, 5000 per split); "
                f"score at least {IS_MIN_PER_SPLIT * IS_SPLITS} pairs")
    return messages


# -- the table -------------------------------------------------------------------------------------
def table(rows: list[tuple[str, dict]], dataset: str | None = None, title: str | None = None):
    """A rich Table: one row per (name, report), the columns any of them has, then the papers'
    rows for the dataset (dimmed)."""
    from rich.table import Table

    columns = [(key, label) for key, label in COLUMNS if any(key in report for _, report in rows)]
    t = Table(title=title, title_justify="left")
    t.add_column("")
    for _, label in columns:
        t.add_column(label, justify="right", no_wrap=True)

    def cell(value):
        return "-" if value is None else f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"

    for name, report in rows:
        t.add_row(name, *(cell(report.get(key)) for key, _ in columns))
    for name, numbers in PAPERS.get(dataset, []):
        t.add_row(name, *(cell(numbers.get(key)) for key, _ in columns), style="dim")
    return t


def print_table(rows: list[tuple[str, dict]], dataset: str | None = None, title: str | None = None) -> None:
    """The table on stderr, never squeezed below its natural width (a log file is 80 columns)."""
    from rich.console import Console

    from posekit.console import err

    # a console of its own: rich's print(width=) cannot go past the console's width (80 in a log)
    wide = Console(file=err.file, width=max(err.width, 160), highlight=False, markup=False, emoji=False)
    wide.print(table(rows, dataset, title))


def protocol(report: dict, detector: str | None = None, jpeg: bool = False) -> str:
    """The choices behind the report's numbers, in one line (printed under the table, kept in --json)."""
    parts = [("images cut out of JPEG strips (quality 75), as the authors' test.py saved and getMetrics scored them"
              if jpeg else "images scored losslessly (the authors scored JPEG strips: --jpeg)"),
             "SSIM: scikit-image, gaussian sigma 1.5, data range of the generated image"
             + (f"; pad40: {PAD} px of white on each side first (PATN's DeepFashion script)"
                if "ssim_padded" in report else "")]
    if "pckh" in report:
        ceiling = "-" if report["pckh_targets"] is None else f"{report['pckh_targets']:.3f}"
        parts.append(f"PCKh@0.5: {detector} keypoints on the generated images vs the target annotation, "
                     f"{report['pckh_pairs']} pairs with a head box (on the target photos themselves: {ceiling})")
    if "lpips" in report:
        parts.append("LPIPS: v0.1, AlexNet")
    if "fid" in report:
        parts.append(f"FID: torch-fidelity Inception (2015-12-05) pool features, {report['pairs']} generated vs "
                     f"{report['fid_reference_images']} training images")
    if "is" in report:
        parts.append(f"IS: {report['is_splits']} splits of {report['pairs']} images"
                     + (", unpadded and padded as for SSIM pad40" if "is_padded" in report else ""))
    return "; ".join(parts)

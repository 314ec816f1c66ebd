"""`posekit prepare-dataset`: raw photos -> the official PATN layout, with our pose detector.

    OUT/train/<name>  OUT/test/<name>          images at the preset's size
    OUT/<prefix>-annotation-{train,test}.csv   name: [18 ys]: [18 xs]   (-1 = missing)
    OUT/<prefix>-pairs-{train,test}.csv        from,to  (two images of the same person id)
    OUT/<prefix>-names.csv                     name,split,person,raw path (back to the raw file)

Person ids: Market-1501 file names start with it (`0002_c1s1_000451_03.jpg` -> 0002; the
distractor ids -1 and 0000 are skipped); DeepFashion In-shop keeps each item in an `id_XXXXXXXX`
folder. Images whose largest person lacks either shoulder or either hip are dropped (PATN needs
the torso to place the clothes). DeepFashion frames: resized to 256 px high and centre-cropped to
176 px wide (the official x 40..216 crop of the 256x256 images); Market: resized to 64x128
(width x height). A frame that is its file's pixels as they are (Market's crops) is copied byte
for byte; the others are saved as JPEGs of quality 95 (`save_frame`).
The split is by person id, so no test person is seen in training.
"""

from __future__ import annotations

import csv
import io
import re
from itertools import permutations
from pathlib import Path

import numpy as np

from posekit.errors import PosekitError, UsageError
from posekit.pose.pose import INDEX, Pose

TORSO = tuple(INDEX[n] for n in ("r_shoulder", "l_shoulder", "r_hip", "l_hip"))
MARKET_NAME = re.compile(r"^(-?\d+)_c\d")
DEEPFASHION_ID = re.compile(r"^id_\d+$")


def person_id(path: Path, raw_dir: Path, dataset: str) -> str | None:
    """The person an image shows, or None when the name/folder gives none (or a distractor)."""
    if dataset == "market1501":
        m = MARKET_NAME.match(path.name)
        return None if m is None or m.group(1) in ("-1", "0000") else m.group(1)
    for part in reversed(path.relative_to(raw_dir).parts[:-1]):
        if DEEPFASHION_ID.match(part):
            return part
    return None


def output_name(path: Path, raw_dir: Path, dataset: str) -> str:
    """Market keeps its unique file names; DeepFashion's (01_1_front.jpg in every folder) get
    their folders in front, joined by '__' so the raw path can be read back."""
    if dataset == "market1501":
        return path.name
    return "__".join(path.relative_to(raw_dir).parts).replace(":", "_")


def framed(image: np.ndarray, pose: Pose, width: int, height: int, keep_aspect: bool):
    """Image and pose in the dataset's frame. keep_aspect: scale to the height, centre-crop (or
    pad with white) to the width; else stretch to width x height."""
    import cv2

    h, w = image.shape[:2]
    sy = height / h
    sx = sy if keep_aspect else width / w
    dx = (width - w * sx) / 2
    affine = np.float32([[sx, 0, dx], [0, sy, 0]])
    interp = cv2.INTER_AREA if sy < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(image, affine, (width, height), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(255, 255, 255))
    kp = pose.keypoints.copy()
    kp[:, 0] = kp[:, 0] * sx + dx
    kp[:, 1] = kp[:, 1] * sy
    return out, Pose(kp, width, height).in_frame()


def save_frame(frame: np.ndarray, source: Path, path: Path) -> None:
    """A prepared image at `path`: the source file's own bytes when the frame is its pixels as
    they are, in the same format (Market's 64x128 crops: a JPEG encoded again loses detail, up to
    53 levels in a pixel), else encoded anew (a JPEG at quality 95)."""
    from PIL import Image

    from posekit.images import atomic_path, save_image

    def kind(p: Path) -> str:
        return p.suffix.lower().replace(".jpeg", ".jpg")

    if kind(source) == kind(path):
        with Image.open(source) as im:
            pixels = np.asarray(im.convert("RGB"))  # as stored: no EXIF turn, which the bytes would not have
        if np.array_equal(pixels, frame):
            with atomic_path(path) as tmp:
                tmp.write_bytes(Path(source).read_bytes())
            return
    save_image(frame, path, quality=95)


def has_torso(pose: Pose) -> bool:
    return bool(pose.visible[list(TORSO)].all())


def split_ids(ids: list[str], test_fraction: float, seed: int) -> set[str]:
    ids = sorted(set(ids))
    n_test = int(round(len(ids) * test_fraction))
    if test_fraction > 0 and len(ids) >= 2:
        n_test = min(max(1, n_test), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[i] for i in order[:n_test]}


def same_person_pairs(names_by_id: dict[str, list[str]], max_per_person: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for pid in sorted(names_by_id):
        ordered = list(permutations(sorted(names_by_id[pid]), 2))
        if max_per_person and len(ordered) > max_per_person:
            ordered = [ordered[i] for i in sorted(rng.choice(len(ordered), max_per_person, replace=False))]
        pairs += ordered
    return pairs


def prepare(raw_dir: str | Path, dataset: str, out: str | Path, test_fraction: float = 0.1,
            max_pairs_per_person: int = 0, detector_name: str = "blazepose", device: str = "auto",
            seed: int = 0, detector=None, batch: int = 16) -> int:
    """Build the layout in a new --out (one that holds a dataset is refused); returns how many
    input files could not be read (the rest is written)."""
    if dataset not in ("deepfashion", "market1501"):
        raise UsageError(f"--dataset {dataset!r}: choose deepfashion or market1501")
    raw_dir, out = Path(raw_dir), Path(out)
    if not raw_dir.is_dir():
        raise UsageError(f"{raw_dir}: no such folder of raw photos")
    from posekit.training import run_lock

    with run_lock(out):  # one run writes into --out at a time
        check_new_dataset(out)
        return _prepare(raw_dir, dataset, out, test_fraction, max_pairs_per_person, detector_name, device, seed,
                        detector, batch)


def check_new_dataset(out: Path) -> None:
    """Refuse an --out that holds a dataset already: writing over it would replace its CSVs and
    leave the old images behind, listed nowhere."""
    if not out.is_dir():
        return
    found = sorted(out.glob("*-pairs-*.csv")) + sorted(out.glob("*-annotation-*.csv")) + sorted(out.glob("*-names.csv"))
    found += [out / split for split in ("train", "test") if (out / split).exists()]
    if found:
        raise UsageError(f"--out {out}: already holds a dataset ({found[0].name}); choose another folder, "
                         "or remove that one to rebuild it")


def _prepare(raw_dir: Path, dataset: str, out: Path, test_fraction: float, max_pairs_per_person: int,
             detector_name: str, device: str, seed: int, detector, batch: int) -> int:
    from posekit.console import error, info, progress, warn
    from posekit.images import IMAGE_SUFFIXES, expand_paths, load_image, write_text
    from posekit.methods.patn.data import PRESETS, annotation_csv, pairs_csv, write_pairs
    from posekit.pose.formats import write_patn_annotations

    p = PRESETS[dataset]
    files = expand_paths([str(raw_dir)], IMAGE_SUFFIXES)
    items, skipped_id = [], 0
    for f in files:
        pid = person_id(f, raw_dir, dataset)
        if pid is None:
            skipped_id += 1
        else:
            items.append((f, pid, output_name(f, raw_dir, dataset)))
    if not items:
        where = "an id_* folder" if dataset == "deepfashion" else "a name like 0002_c1s1_000451_03.jpg"
        raise UsageError(f"{raw_dir}: no image with a person id ({where}) among {len(files)} files; pass the "
                         f"folder of the raw {dataset} photos")  # the wrong folder (or an empty one), before any work
    test_ids = split_ids([pid for _, pid, _ in items], test_fraction, seed)

    own_detector = detector is None
    if own_detector:
        from posekit.pose.detect import load_detector

        detector = load_detector(detector_name, device=device)
    kept = {"train": [], "test": []}   # (name, pose)
    by_id = {"train": {}, "test": {}}
    names_rows, seen, failed, no_torso = [], set(), 0, 0
    try:
        with progress() as bar:
            task = bar.add_task("prepare-dataset", total=len(items), status="")
            for start in range(0, len(items), batch):
                chunk, images = [], []
                for f, pid, name in items[start:start + batch]:
                    try:
                        images.append(load_image(f))
                        chunk.append((f, pid, name))
                    except PosekitError as e:  # counts toward exit 1: an error, not a warning
                        error(str(e))
                        failed += 1
                people = detector.detect(images) if images else []
                for (f, pid, name), image, found in zip(chunk, images, people):
                    bar.advance(task)
                    if name in seen:
                        warn(f"{f}: {name} already taken by another file; skipped")
                        continue
                    if not found:
                        no_torso += 1
                        continue
                    frame, pose = framed(image, found[0], p.width, p.height, keep_aspect=dataset == "deepfashion")
                    if not has_torso(pose):
                        no_torso += 1
                        continue
                    split = "test" if pid in test_ids else "train"
                    save_frame(frame, f, out / split / name)
                    seen.add(name)
                    kept[split].append((name, pose))
                    by_id[split].setdefault(pid, []).append(name)
                    names_rows.append((name, split, pid, str(f)))
                bar.advance(task, len(items[start:start + batch]) - len(chunk))
    finally:
        if own_detector:
            detector.close()

    counts = {}
    for split in ("train", "test"):
        write_patn_annotations(sorted(kept[split]), annotation_csv(out, p, split))
        pairs = same_person_pairs(by_id[split], max_pairs_per_person, seed)
        write_pairs(pairs, pairs_csv(out, p, split))
        counts[split] = (len(kept[split]), len(pairs))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "split", "person", "raw_path"])
    writer.writerows(sorted(names_rows))
    write_text(buf.getvalue(), out / f"{p.files}-names.csv")
    info(f"{out}: train {counts['train'][0]} images / {counts['train'][1]} pairs, "
         f"test {counts['test'][0]} images / {counts['test'][1]} pairs; dropped {no_torso} without "
         f"both shoulders and hips, {skipped_id} without a person id, {failed} unreadable")
    return failed

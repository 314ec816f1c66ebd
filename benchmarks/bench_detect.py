"""BlazePose throughput: what `posekit extract-pose` costs per photo against the model itself.

    python benchmarks/bench_detect.py [--photos 24] [--size 512]

Makes a folder of photos (scikit-image's astronaut, cropped, mirrored and resized, saved as
JPEG), then measures, side by side:
  1. model only: MediaPipe PoseLandmarker.detect on images already decoded in memory;
  2. posekit in-process: decode the file + detect + COCO-18 conversion + write the OpenPose
     JSON and the skeleton PNG (what extract-pose does per image);
  3. the CLI end to end: `posekit extract-pose FOLDER --out DIR` (start-up and model loading
     included) and `--jsonl` without --out.
The difference 2 - 1 is what our I/O and conversion add per image.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_photos(folder: Path, count: int, size: int) -> list[Path]:
    from PIL import Image
    from skimage import data

    base = data.astronaut()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        x0, y0 = rng.integers(0, 64, 2)
        img = base[y0:, x0:]
        if i % 2:
            img = img[:, ::-1]
        im = Image.fromarray(np.ascontiguousarray(img)).resize((size, size))
        path = folder / f"photo_{i:03d}.jpg"
        im.save(path, quality=92)
        paths.append(path)
    return paths


def model_only(images) -> float:
    import mediapipe as mp

    from posekit.pose.detect.blazepose import BlazePoseDetector

    det = BlazePoseDetector()
    landmarker = det._landmarker
    mp_images = [mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(im)) for im in images]
    from posekit.console import silence_fd

    with silence_fd():  # the graph logs a calculator warning on its first run
        landmarker.detect(mp_images[0])  # warm-up
    start = time.perf_counter()
    for im in mp_images:
        landmarker.detect(im)
    elapsed = time.perf_counter() - start
    det.close()
    return elapsed / len(images)


def posekit_in_process(paths, out: Path) -> float:
    from posekit.images import load_image, save_image
    from posekit.pose.detect import load_detector
    from posekit.pose.formats import keypoints_json_name, write_openpose_json
    from posekit.pose.render import draw_skeleton

    det = load_detector("blazepose")
    det.detect([load_image(paths[0])])  # warm-up
    start = time.perf_counter()
    for path in paths:
        image = load_image(path)
        poses = det.detect([image])[0]
        h, w = image.shape[:2]
        write_openpose_json(poses, out / keypoints_json_name(path.stem), size=(w, h))
        save_image(draw_skeleton(poses, w, h), out / f"{path.stem}_pose.png")
    elapsed = time.perf_counter() - start
    det.close()
    return elapsed / len(paths)


def cli_seconds(args: list[str]) -> float:
    exe = shutil.which("posekit", path=str(Path(sys.executable).parent)) or "posekit"
    start = time.perf_counter()
    subprocess.run([exe, *args], capture_output=True, check=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    from posekit.console import quiet_libraries
    from posekit.images import load_image

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        paths = make_photos(tmp / "photos", args.photos, args.size)
        images = [load_image(p) for p in paths]
        model = model_only(images)
        ours = posekit_in_process(paths, tmp / "lib_out")
        cli_out = cli_seconds(["extract-pose", str(tmp / "photos"), "--out", str(tmp / "cli_out")])
        cli_jsonl = cli_seconds(["extract-pose", str(tmp / "photos"), "--jsonl"])
        cli_one = cli_seconds(["extract-pose", str(paths[0]), "--jsonl"])
    n = len(paths)
    print(f"{n} photos, {args.size}x{args.size} JPEG, BlazePose full, CPU")
    print(f"{'':46s} {'ms/image':>9s} {'images/s':>9s}")
    print(f"{'model only (PoseLandmarker.detect)':46s} {model * 1000:9.1f} {1 / model:9.1f}")
    print(f"{'posekit in-process (decode+detect+JSON+PNG)':46s} {ours * 1000:9.1f} {1 / ours:9.1f}")
    print(f"{'  of which I/O and conversion':46s} {(ours - model) * 1000:9.1f}")
    print(f"{'CLI extract-pose --out (whole run / n)':46s} {cli_out / n * 1000:9.1f} {n / cli_out:9.1f}")
    print(f"{'CLI extract-pose --jsonl (whole run / n)':46s} {cli_jsonl / n * 1000:9.1f} {n / cli_jsonl:9.1f}")
    print(f"{'CLI one photo, start to finish':46s} {cli_one * 1000:9.1f}")
    print(f"\nI/O and conversion add {100 * (ours - model) / model:.0f}% to the model's own time per image")


if __name__ == "__main__":
    main()

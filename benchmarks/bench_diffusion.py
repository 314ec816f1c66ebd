"""Diffusion benchmarks: DreamBooth seconds/step and peak memory (full vs LoRA, with and without
gradient checkpointing) and transfer seconds/image, side by side in one run.

    python benchmarks/bench_diffusion.py                       # tiny SD 1.x on the CPU (offline)
    python benchmarks/bench_diffusion.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --controlnet lllyasviel/control_v11p_sd15_openpose --resolution 512   # a GPU and real weights

Each DreamBooth configuration runs in its own process, so that its peak memory is its own: on
CUDA the peak of torch.cuda.max_memory_allocated, on the CPU the process's peak RSS (VmHWM) and
how far training raised it above the resident size just before the first step. Seconds/step is
the median time between optimizer steps after the first (warm-up) one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_dreambooth(args) -> None:
    """Train in this process and print one JSON line of figures."""
    import torch

    import posekit.methods.diffusion.dreambooth as db

    times, base = [], {}
    real_loss = db.diffusion_loss

    def timed_loss(*a, **kw):
        if not times:
            base["rss"] = rss_mb("VmRSS")
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        times.append(time.perf_counter())
        return real_loss(*a, **kw)

    db.diffusion_loss = timed_loss
    with tempfile.TemporaryDirectory() as tmp:
        config = db.DreamBoothConfig(str(args.instances), "a photo of sks person", model=args.model, lora=args.lora,
                                     gradient_checkpointing=args.gc, resolution=args.resolution, steps=args.steps,
                                     checkpointing_steps=0, mixed_precision=args.mixed_precision, device="auto")
        db.train_dreambooth(config, Path(tmp) / "run")
    step = statistics.median(np.diff(times[1:])) if len(times) > 2 else float("nan")
    out = {"s_per_step": step, "peak_rss_mb": rss_mb("VmHWM"), "train_rss_mb": rss_mb("VmHWM") - base["rss"]}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(out))


def bench_dreambooth(args, instances: Path) -> None:
    print(f"\nDreamBooth, {args.resolution}px, batch 1, {args.steps} steps, mixed precision {args.mixed_precision}")
    print(f"{'configuration':<34}{'s/step':>10}{'peak RSS MB':>14}{'train +RSS MB':>15}{'CUDA peak MB':>14}")
    for lora in (False, True):
        for gc in (False, True):
            cmd = [sys.executable, __file__, "--child", "--model", args.model, "--instances", str(instances),
                   "--resolution", str(args.resolution), "--steps", str(args.steps),
                   "--mixed-precision", args.mixed_precision] + (["--lora"] if lora else []) + (["--gc"] if gc else [])
            r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
            name = f"{'LoRA r4' if lora else 'full fine-tune'}{' + grad checkpointing' if gc else ''}"
            if line is None:
                print(f"{name:<34} failed: {r.stderr.strip().splitlines()[-1:]}")
                continue
            f = json.loads(line[7:])
            print(f"{name:<34}{f['s_per_step']:>10.3f}{f['peak_rss_mb']:>14.0f}{f['train_rss_mb']:>15.0f}"
                  f"{f.get('cuda_peak_mb', float('nan')):>14.0f}")


def bench_transfer(args) -> None:
    import torch

    from posekit.methods.diffusion.method import DiffusionMethod, DiffusionOptions
    from posekit.pose.motions import motion

    size = args.transfer_size
    photo = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(
        __import__("skimage.data", fromlist=["astronaut"]).astronaut()).resize((size, size)))
    clip = motion("walk", frames=4, width=size, height=size)
    print(f"\nTransfer, {size}x{size}, {args.transfer_steps} steps x strength 0.75, 4 frames")
    print(f"{'configuration':<34}{'s/image':>10}{'denoise it/s':>14}")
    for controlnet, sheet in ((None, False), (args.controlnet, False), (args.controlnet, True)):
        m = DiffusionMethod(photo, clip[0], DiffusionOptions(model=args.model, controlnet=controlnet or "none",
                            steps=args.transfer_steps, strength=0.75, prompt="a photo of sks person", sheet=sheet))
        m(clip[:1])  # warm-up
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        m(clip)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / len(clip)
        passes = 1 if sheet else len(clip)
        its = passes * int(args.transfer_steps * 0.75) / (dt * len(clip))
        name = ("img2img" if controlnet is None else "img2img + ControlNet") + (" (sheet)" if sheet else "")
        print(f"{name:<34}{dt:>10.3f}{its:>14.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="SD 1.x hub id or folder (default: a tiny random SD built in a temp folder)")
    p.add_argument("--controlnet", help="ControlNet hub id or folder (default: a tiny one)")
    p.add_argument("--resolution", type=int, default=128, help="DreamBooth training resolution")
    p.add_argument("--steps", type=int, default=8, help="DreamBooth steps per configuration")
    p.add_argument("--mixed-precision", default="no")
    p.add_argument("--transfer-size", type=int, default=256)
    p.add_argument("--transfer-steps", type=int, default=20)
    p.add_argument("--only", choices=("dreambooth", "transfer"), help="run one of the two benchmarks")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--instances", help=argparse.SUPPRESS)
    p.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gc", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child_dreambooth(args)

    from posekit.console import quiet_libraries

    quiet_libraries()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.model or not args.controlnet:
            from tiny_sd import make_tiny_controlnet, make_tiny_sd

            args.model = args.model or str(make_tiny_sd(tmp / "sd"))
            args.controlnet = args.controlnet or str(make_tiny_controlnet(tmp / "cn"))
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
        print(f"model {args.model}\ncontrolnet {args.controlnet}\ndevice {device}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        from PIL import Image
        from skimage import data

        instances = tmp / "instances"
        instances.mkdir()
        a = data.astronaut()
        for i, crop in enumerate((a, a[:, 128:384], a[100:400])):
            Image.fromarray(crop).save(instances / f"{i}.png")
        if args.only != "transfer":
            bench_dreambooth(args, instances)
        if args.only != "dreambooth":
            bench_transfer(args)


if __name__ == "__main__":
    main()

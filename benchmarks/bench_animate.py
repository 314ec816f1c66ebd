"""Seconds per frame of `posekit animate`, by method, and where the time goes.

Runs the whole pipeline (posekit.pipeline.animate: the source photo and its pose, the target poses,
retargeting, the method, writing frames/poses/sheet/GIF, pose-fidelity evaluation) on the examples
the repo ships, and prints one table: per run, seconds per frame and each stage's share of the total.

    python benchmarks/bench_animate.py                    # warp + diffusion on the tiny model
    python benchmarks/bench_animate.py --sd15             # + SD 1.5 + ControlNet at 512 px (GPU, hub)
    python benchmarks/bench_animate.py --gan-checkpoint runs/patn   # + PATN

The tiny diffusion model (tests/tiny_sd.py) measures the pipeline's own overhead, not image
quality; SD 1.5 is only meaningful on a GPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
STAGES = ("source", "targets", "retargeting", "method", "writing", "evaluation")


def runs(args, tmp: Path):
    from posekit.methods.diffusion.method import DiffusionOptions
    from posekit.methods.warp.method import WarpOptions

    fig, astro = REPO / "examples" / "figure.png", REPO / "examples" / "astronaut.png"
    yield "warp  figure 384x512 walk", dict(photo=fig, poses="walk", method="warp")
    yield "warp  astronaut 512x512 wave", dict(photo=astro, poses="wave", method="warp")
    yield "warp  astronaut transparent", dict(photo=astro, poses="wave", method="warp",
                                              options=WarpOptions(background="transparent"))
    if not args.no_diffusion:
        from tiny_sd import make_tiny_controlnet, make_tiny_sd

        from PIL import Image

        sd, cn = make_tiny_sd(tmp / "sd"), make_tiny_controlnet(tmp / "cn")
        small = tmp / "figure_192.png"  # the tiny model's cost grows with pixels like SD's does
        Image.open(fig).resize((192, 256)).save(small)
        # one torch thread: a tiny model gains nothing from more, and on a shared CPU they only spin
        kw = dict(photo=small, poses="walk", method="diffusion", source_pose=REPO / "examples" / "figure_keypoints.json",
                  threads=1)
        opts = dict(model=str(sd), controlnet=str(cn), steps=10, strength=1.0, seed=0, device="cpu")
        yield "diffusion tiny 192x256, per frame", dict(**kw, options=DiffusionOptions(**opts))
        yield "diffusion tiny 192x256, --init warp", dict(**kw, options=DiffusionOptions(**opts, init="warp"))
        yield "diffusion tiny 192x256, --sheet", dict(**kw, options=DiffusionOptions(**opts, sheet=True))
    if args.sd15:
        opts = dict(steps=30, strength=0.75, seed=0, prompt="a photo of a person", device="auto")
        yield "diffusion SD 1.5 + ControlNet 512 px", dict(photo=astro, poses="wave", method="diffusion",
                                                         options=DiffusionOptions(**opts))
        yield "diffusion SD 1.5 --sheet", dict(photo=astro, poses="wave", method="diffusion",
                                             options=DiffusionOptions(**opts, sheet=True))
    if args.gan_checkpoint:
        from posekit.methods.patn.method import PatnOptions

        yield "gan (PATN)", dict(photo=fig, poses="walk", method="gan", options=PatnOptions(checkpoint=args.gan_checkpoint))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2, help="runs per case; the fastest is reported")
    ap.add_argument("--no-diffusion", action="store_true")
    ap.add_argument("--only", help="run only the cases whose name contains this")
    ap.add_argument("--sd15", action="store_true")
    ap.add_argument("--gan-checkpoint")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from posekit.console import quiet_libraries

    quiet_libraries()
    import torch

    from posekit.pipeline import animate

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
          f"{torch.get_num_threads()}, GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print(f"{args.frames} frames per run, best of {args.repeat}; stage shares of the total\n")
    head = f"{'run':<38}{'s/frame':>9}{'total s':>9}" + "".join(f"{s[:8]:>10}" for s in STAGES) + f"{'PCK':>6}"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, kw in runs(args, tmp):
            if args.only and args.only not in name:
                continue
            threads = kw.pop("threads", None)
            saved = torch.get_num_threads()
            torch.set_num_threads(threads or saved)
            best = None
            for r in range(args.repeat):
                s = animate(out=tmp / f"out{r}", frames=args.frames, **kw)
                if best is None or s["seconds_total"] < best["seconds_total"]:
                    best = s
            torch.set_num_threads(saved)
            total = best["seconds_total"]
            shares = "".join(f"{100 * best['seconds'].get(st, 0) / total:9.0f}%" for st in STAGES)
            pck = best["pose_fidelity"]
            print(f"{name:<38}{total / best['frames']:9.3f}{total:9.2f}{shares}{'' if pck is None else f'{pck:6.2f}'}", flush=True)


if __name__ == "__main__":
    main()

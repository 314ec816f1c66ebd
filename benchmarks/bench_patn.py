"""PATN speed and the proof that it learns, printed side by side.

    python benchmarks/bench_patn.py                 # forward + training speed, full and small configs
    python benchmarks/bench_patn.py --proof         # + the 600-iteration synthetic run (a few minutes)
    python benchmarks/bench_patn.py --threads 1     # torch intra-op threads (1 is faster on a busy box)

Measures:
  1. generator forward, full DeepFashion size (256x176, ngf 64, 9 blocks, 41.36 M parameters),
     batch 8: CPU fp32, and CUDA bf16 autocast when a GPU is present;
  2. training iterations/s of the whole PATN step (G, then D_PP, then D_PB, with the losses) for
     the full config (batch 7, no VGG) and the small CPU config (64x32, ngf 16, 3 blocks, batch 8),
     taken as (time of a 2k-iteration run - time of a k-iteration run) / k, so set-up and the
     held-out evaluation cancel out;
  3. with --proof: `posekit train-gan --dataset synthetic --size 32x64 --ngf 16 --blocks 3
     --batch-size 8 --iters 600 --perceptual-weight 0`, its wall time and metrics.json, and the
     held-out metrics of every checkpoint (the learning curve).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def forward_images_per_s(device: str, dtype, batch: int = 8, repeats: int = 2) -> float:
    from posekit.methods.patn.model import PATNGenerator

    net = PATNGenerator().to(device).eval()
    x = torch.randn(batch, 3, 256, 176, device=device)
    bp = torch.rand(batch, 18, 256, 176, device=device)
    with torch.no_grad(), torch.autocast(device_type=device, dtype=dtype, enabled=dtype != torch.float32):
        net(x, bp, bp)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            net(x, bp, bp)
        if device == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - t)


def training_iterations_per_s(height, width, ngf, blocks, batch, k: int) -> float:
    from posekit.methods.patn.train import TrainConfig, train

    def timed(iters):
        with tempfile.TemporaryDirectory() as d:
            c = TrainConfig(dataset="synthetic", iters=iters, batch_size=batch, checkpoint_every=10 ** 9,
                            perceptual_weight=0, ngf=ngf, blocks=blocks, image_height=height, image_width=width,
                            eval_pairs=2, workers=0)
            t = time.perf_counter()
            train(c, Path(d) / "run")
            return time.perf_counter() - t

    return k / max(1e-9, timed(2 * k) - timed(k))


def proof(threads: int) -> dict:
    out = Path(tempfile.mkdtemp()) / "proof"
    cmd = [str(Path(sys.executable).parent / "posekit"), "train-gan", "--dataset", "synthetic", "--size",
           "32x64", "--ngf", "16", "--blocks", "3", "--batch-size", "8", "--iters", "600",
           "--perceptual-weight", "0", "--checkpoint-every", "100", "--workers", "0", "--out", str(out)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall_s": wall, "run": str(out), **metrics}


def curve(run: Path) -> list[tuple[int, dict]]:
    """Held-out metrics of each kept checkpoint and of the final generator."""
    from safetensors.torch import load_file

    from posekit.methods.patn.data import datasets
    from posekit.methods.patn.model import load_generator_state
    from posekit.methods.patn.train import evaluate
    from posekit.training import checkpoints

    _, held_out = datasets("synthetic", None, 64, 32, eval_pairs=64)
    rows = []
    for step, folder in checkpoints(run):
        net = load_generator_state(load_file(str(folder / "netG.safetensors")))
        rows.append((step, evaluate(net, held_out, torch.device("cpu"))[0]))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proof", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-full-train", action="store_true", help="skip the slow full-size CPU training step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from posekit.console import quiet_libraries

    quiet_libraries()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"))
    print("\n| measurement | value |\n|---|---|")
    print(f"| G forward 256x176 batch 8, CPU fp32 | {forward_images_per_s('cpu', torch.float32):.2f} images/s |")
    if torch.cuda.is_available():
        print(f"| G forward 256x176 batch 8, CUDA bf16 | {forward_images_per_s('cuda', torch.bfloat16, repeats=20):.1f} images/s |")
    print(f"| train step, small 64x32 ngf16 3 blocks batch 8 | "
          f"{training_iterations_per_s(64, 32, 16, 3, 8, k=20):.2f} it/s |")
    if not args.skip_full_train:
        print(f"| train step, full 256x176 ngf64 9 blocks batch 7 | "
              f"{training_iterations_per_s(256, 176, 64, 9, 7, k=1):.3f} it/s |")
    if args.proof:
        r = proof(args.threads or torch.get_num_threads())
        print(f"\nproof run: {r['wall_s']:.0f} s wall for 600 iterations")
        print("| iteration | ssim | ssim copy-source | l1 | l1 copy-source |\n|---|---|---|---|---|")
        for it, m in curve(Path(r["run"])):
            print(f"| {it} | {m['ssim']:.3f} | {m['ssim_source_baseline']:.3f} | {m['l1']:.4f} | {m['l1_source_baseline']:.4f} |")
        ok = r["ssim"] >= r["ssim_source_baseline"] + 0.05 and r["l1"] <= 0.8 * r["l1_source_baseline"]
        print(f"final metrics.json: ssim {r['ssim']:.3f} vs {r['ssim_source_baseline']:.3f}, "
              f"l1 {r['l1']:.4f} vs {r['l1_source_baseline']:.4f} -> {'PASS' if ok else 'FAIL'} "
              f"(ssim +0.05 and l1 <= 0.8x the copy-source baseline)")


if __name__ == "__main__":
    main()

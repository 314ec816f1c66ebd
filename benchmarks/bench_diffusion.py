"""Diffusion benchmarks: DreamBooth seconds/step and peak memory (full vs LoRA, with and without
gradient checkpointing) and transfer seconds/image, side by side in one run.

    python benchmarks/bench_diffusion.py                       # tiny SD 1.x on the CPU (offline)
    python benchmarks/bench_diffusion.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --controlnet lllyasviel/control_v11p_sd15_openpose --resolution 512   # a GPU and real weights
    python benchmarks/bench_diffusion.py --only vs-diffusers --diffusers-examples DIR --resolution 512

`--only vs-diffusers` runs `posekit dreambooth` and diffusers' own examples/dreambooth/
train_dreambooth.py (full) / train_dreambooth_lora.py (LoRA), unmodified, from DIR (a diffusers
checkout), on the same model, images, resolution, batch and steps, alternating the two `--rounds`
times so that a machine busy with other work weighs on both alike. Both run as the user runs them
(`python -m posekit dreambooth ...`, `python train_dreambooth.py ...`) inside a small wrapper that
notes the time of every AdamW step and the process's peak RSS; nothing else is changed.

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


def child_script(argv: list[str]) -> None:
    """Run a training script (a .py path, or `-m module`) as __main__ in this process, timing its
    optimizer steps from the outside: one JSON line of figures at the end."""
    import runpy

    import torch

    times, real_step = [], torch.optim.AdamW.step

    def step(self, *a, **kw):
        result = real_step(self, *a, **kw)
        times.append(time.perf_counter())
        return result

    torch.optim.AdamW.step = step
    module = argv[1] if argv[0] == "-m" else None
    sys.argv = argv[1:] if module else argv
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        gaps = np.diff(times[1:])  # the first step warms up
        print("RESULT " + json.dumps({"steps": len(times), "peak_rss_mb": rss_mb("VmHWM"),
                                      "s_per_step": statistics.median(gaps) if len(gaps) else float("nan")}))


def bench_vs_diffusers(args, instances: Path, tmp: Path) -> None:
    """posekit dreambooth and diffusers' train_dreambooth(_lora).py side by side, alternating."""
    examples = Path(args.diffusers_examples)
    scripts = {False: examples / "train_dreambooth.py", True: examples / "train_dreambooth_lora.py"}
    for script in scripts.values():
        if not script.is_file():
            sys.exit(f"--diffusers-examples {examples}: no {script.name} (pass diffusers/examples/dreambooth)")
    prompt, steps, res = "a photo of sks person", str(args.steps), str(args.resolution)

    def posekit_cmd(lora: bool, te: bool, out: Path) -> list[str]:
        return ["-m", "posekit", "dreambooth", "--instance-dir", str(instances), "--instance-prompt", prompt,
                "--out", str(out), "--model", args.model, "--resolution", res, "--steps", steps,
                "--batch-size", "1", "--checkpointing-steps", "0", "--mixed-precision", args.mixed_precision,
                "--learning-rate", "1e-4" if lora else "5e-6"] + (["--lora", "--rank", "4"] if lora else []) \
            + (["--train-text-encoder"] if te else [])

    def diffusers_cmd(lora: bool, te: bool, out: Path) -> list[str]:
        return [str(scripts[lora]), "--pretrained_model_name_or_path", args.model, "--instance_data_dir",
                str(instances), "--instance_prompt", prompt, "--output_dir", str(out), "--resolution", res,
                "--train_batch_size", "1", "--max_train_steps", steps, "--checkpointing_steps", "1000000",
                "--learning_rate", "1e-4" if lora else "5e-6", "--lr_scheduler", "constant", "--lr_warmup_steps", "0",
                "--mixed_precision", args.mixed_precision, "--seed", "0"] + (["--rank", "4"] if lora else []) \
            + (["--train_text_encoder"] if te else [])

    configs = [(lora, te) for te in (False, True) for lora in (False, True)]
    name = lambda lora, te: ("LoRA rank 4" if lora else "full fine-tune") + (" + text encoder" if te else "")  # noqa: E731
    figures: dict[tuple[bool, bool, str], list[dict]] = {}
    for r in range(args.rounds):
        for lora, te in configs:
            for tool, make in (("posekit", posekit_cmd), ("diffusers", diffusers_cmd)):
                out = tmp / f"vs-{tool}-{lora}-{te}-{r}"
                proc = subprocess.run([sys.executable, __file__, "--child-script", *make(lora, te, out)],
                                      capture_output=True, text=True, cwd=tmp,
                                      env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                f = json.loads(line[7:]) if line and proc.returncode == 0 else None
                if f is None:
                    print(f"{tool} {name(lora, te)} round {r}: failed: "
                          f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
                    continue
                figures.setdefault((lora, te, tool), []).append(f)
                print(f"  round {r} {name(lora, te):<30}{tool:<10}{f['s_per_step']:.4f} s/step, "
                      f"peak RSS {f['peak_rss_mb']:.0f} MB, {f['steps']} steps", flush=True)
    print(f"\nDreamBooth vs diffusers' scripts, {args.resolution}px, batch 1, {args.steps} steps, "
          f"mixed precision {args.mixed_precision}, median of {args.rounds} alternating rounds")
    print("| configuration | posekit s/step | diffusers s/step | ratio | posekit peak RSS MB | diffusers peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for lora, te in configs:
        p, d = figures.get((lora, te, "posekit")), figures.get((lora, te, "diffusers"))
        if not p or not d:
            continue
        med = lambda fs, k: statistics.median(f[k] for f in fs)  # noqa: E731
        print(f"| {name(lora, te)} | {med(p, 's_per_step'):.4f} | "
              f"{med(d, 's_per_step'):.4f} | {med(p, 's_per_step') / med(d, 's_per_step'):.2f}x | "
              f"{med(p, 'peak_rss_mb'):.0f} | {med(d, 'peak_rss_mb'):.0f} |")


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
    p.add_argument("--only", choices=("dreambooth", "transfer", "vs-diffusers"), help="run one benchmark")
    p.add_argument("--diffusers-examples", help="diffusers' examples/dreambooth folder (for --only vs-diffusers)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of --only vs-diffusers")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--instances", help=argparse.SUPPRESS)
    p.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--gc", action="store_true", help=argparse.SUPPRESS)
    if sys.argv[1:2] == ["--child-script"]:
        return child_script(sys.argv[2:])
    args = p.parse_args()
    if args.only == "vs-diffusers" and not args.diffusers_examples:
        p.error("--only vs-diffusers needs --diffusers-examples DIR")
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
        if args.only == "vs-diffusers":
            return bench_vs_diffusers(args, instances, tmp)
        if args.only != "transfer":
            bench_dreambooth(args, instances)
        if args.only != "dreambooth":
            bench_transfer(args)


if __name__ == "__main__":
    main()

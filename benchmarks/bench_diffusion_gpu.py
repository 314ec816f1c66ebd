"""Full-size diffusion benchmark: SD 1.5 at 512 px in float16, the way `posekit animate` runs it.

    python benchmarks/bench_diffusion_gpu.py                  # a CUDA GPU: full size, fp16, 512 px
    python benchmarks/bench_diffusion_gpu.py --tiny           # CPU smoke test: tiny models, 64 px
    python benchmarks/bench_diffusion_gpu.py --only img2img,animatediff --no-compile
    python benchmarks/bench_diffusion_gpu.py --meta           # no GPU: TFLOP of one step of each row

SD 1.5's UNet, VAE and text encoder, the OpenPose ControlNet, the AnimateDiff v1-5-3 motion
adapter and IP-Adapter Plus (with its ViT-H image encoder) are built from their published
configs (benchmarks/sd15_configs.py) with random weights (the cost of a step does not depend on
the values, so nothing is downloaded) and written to a temporary folder in the real layouts.
Each row then runs posekit's own code in a fresh process, with `--model` & co. pointing at those
folders: `DiffusionMethod` per frame (ControlNet img2img) and with `sheet=True`,
`AnimateDiffMethod` on 16 frames; eager, with `torch.compile` on the UNet and ControlNet, with
`offload="model"`, with the IP-Adapter (ROWS). What is timed is what users run; the frames start
from the photo (init="source") and, for AnimateDiff, from noise (its default), so the classical
warp's cost stays out of it.

it/s: denoising steps per second, 1 / the median time between consecutive scheduler steps (CUDA
events, so nothing is synchronised in between), after a warm-up pass. One step is everything the
sampler does for one step of the whole clip: one guided UNet + ControlNet call for a frame or a
sheet's canvas; for AnimateDiff, one per context window (a cycle of up to 16 frames has two: the
clip, and one across its seam), each in two halves under offload. The note column gives the UNet
calls per step. s/frame: wall time of the measured pass divided by its frames (VAE, init and skeletons
included). Peak memory: torch.cuda.max_memory_allocated over the whole process (loading, warm-up
and measurement; on the CPU the peak RSS instead). A row whose component is missing or fails
says `skipped:`/`failed:` and why, and the others still run. The table is printed as markdown
with the card's name.

Targets (issue 10): ControlNet img2img >= 45 it/s on an H100 (plain PyTorch about 36,
stable-fast 73); AnimateDiff 16 x 512 px under 12 GB peak with --offload model.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PROMPT = "a photo of sks person"

# name (--only takes a name or its first word) -> (what runs, its variant, the table's label)
ROWS = {
    "img2img": ("frame", {}, "ControlNet img2img, per frame"),
    "img2img compile": ("frame", {"compile": True}, "ControlNet img2img, per frame, torch.compile"),
    "img2img offload": ("frame", {"offload": "model"}, "ControlNet img2img, per frame, offload model"),
    "img2img ip-adapter": ("frame", {"ip_adapter": True}, "ControlNet img2img + IP-Adapter Plus, per frame"),
    "sheet": ("sheet", {}, "ControlNet img2img, sheet of 4 frames (one pass)"),
    "sheet compile": ("sheet", {"compile": True}, "ControlNet img2img, sheet of 4 frames, torch.compile"),
    "animatediff": ("animatediff", {}, "AnimateDiff + ControlNet, 16 frames"),
    "animatediff compile": ("animatediff", {"compile": True}, "AnimateDiff + ControlNet, 16 frames, torch.compile"),
    "animatediff offload": ("animatediff", {"offload": "model"}, "AnimateDiff + ControlNet, 16 frames, offload model"),
    "animatediff ip-adapter offload": ("animatediff", {"ip_adapter": True, "offload": "model"},
                                       "AnimateDiff + ControlNet + IP-Adapter Plus, 16 frames, offload model"),
}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- one measurement, in its own process -----------------------------------------------------
class StepClock:
    """Notes when each denoising step ends: a mark at every `scheduler.step` call (once per step,
    whatever the step ran: AnimateDiff's context windows, a cycle's wrap-around window, guidance
    in two halves under offload), as CUDA events on a GPU (read after the pass, so the pipeline
    runs unsynchronised) or perf_counter on the CPU; and counts the UNet calls."""

    def __init__(self, pipe, cuda: bool):
        import torch

        self.cuda, self.marks, self.torch, self.unet_calls = cuda, [], torch, 0
        scheduler = pipe.scheduler
        step = scheduler.step

        @functools.wraps(step)  # its signature too: callers pass eta and generator only if step takes them
        def timed_step(*args, **kwargs):
            self.mark()
            return step(*args, **kwargs)

        scheduler.step = timed_step  # on this instance: the pipeline's own calls come here
        self.handle = pipe.unet.register_forward_pre_hook(lambda *_: setattr(self, "unet_calls", self.unet_calls + 1))

    def mark(self):
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def intervals(self) -> list[float]:
        """Seconds between consecutive steps noted so far, then forget them."""
        if self.cuda:
            self.torch.cuda.synchronize()
            gaps = [a.elapsed_time(b) / 1000 for a, b in zip(self.marks, self.marks[1:])]
        else:
            gaps = list(np.diff(self.marks))
        self.marks = []
        return gaps


def compile_models(pipe, mode: str) -> None:
    """torch.compile the UNet and the ControlNet in place of the pipeline's (diffusers' recipe:
    channels-last memory, then torch.compile)."""
    import torch

    for name in ("unet", "controlnet"):
        module = getattr(pipe, name, None)
        if module is not None:
            module.to(memory_format=torch.channels_last)
            setattr(pipe, name, torch.compile(module, mode=mode))


def measure(args, kind: str, variant: dict) -> dict:
    """Load the method as `posekit animate` does, warm up once, time one pass."""
    import torch

    from PIL import Image
    from skimage import data

    from posekit.pose.motions import motion

    cuda = torch.cuda.is_available()
    models = json.loads(args.models)
    size = args.size
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.LANCZOS))
    common = dict(model=models["sd"], controlnet=models["controlnet"], prompt=PROMPT, steps=args.steps,
                  offload=variant.get("offload", "none"), device="auto",
                  ip_adapter=models["ip_adapter"] if variant.get("ip_adapter") else None)
    if kind == "animatediff":
        try:
            from posekit.methods.animatediff.method import AnimateDiffMethod as Method
        except ImportError as e:
            return {"skipped": f"no AnimateDiff method ({e})"}
        options = Method.Options(motion_adapter=models["motion_adapter"], init="none", **common)
        frames, passes = args.animatediff_frames, 1
    else:
        from posekit.methods.diffusion.method import DiffusionMethod as Method

        options = Method.Options(init="source", sheet=kind == "sheet", **common)
        frames, passes = (4, 1) if kind == "sheet" else (args.frames, args.frames)
    clip = motion("walk", frames=frames, width=size, height=size)
    pipe = Method.load(options)
    if variant.get("compile"):
        compile_models(pipe, args.compile_mode)
    method = Method(photo, clip[0], options, models=pipe)  # may set the scheduler: the clock comes after
    clock = StepClock(pipe, cuda)
    method(clip)  # warm-up (and compilation)
    clock.intervals()
    clock.unet_calls = 0
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    method(clip)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    gaps = clock.intervals()
    # the gap between two passes (decode, the next init) is an outlier among the steps
    within = sorted(gaps)[:max(1, len(gaps) - (passes - 1))]
    out = {"it_s": 1 / statistics.median(within) if within else float("nan"), "s_per_frame": wall / frames,
           "steps": len(gaps) + 1, "unet_calls_per_step": round(clock.unet_calls / (len(gaps) + 1), 2),
           "peak_rss_mb": peak_rss_mb()}
    if cuda:
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
        out["reserved_gb"] = torch.cuda.max_memory_reserved() / 2**30
    return out


def child(args) -> None:
    """Run one row and print one RESULT line; a missing component is a skip, not a crash."""
    from posekit.console import quiet_libraries
    from posekit.errors import PosekitError

    quiet_libraries()
    kind, variant, _ = ROWS[args.child]
    try:
        result = measure(args, kind, variant)
    except PosekitError as e:  # e.g. --offload on a machine without CUDA, a component that does not load
        result = {"skipped": str(e).splitlines()[0][:200]}
    except Exception as e:  # noqa: BLE001 - a benchmark row reports its failure and the others go on
        result = {"failed": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}
    print("RESULT " + json.dumps(result), flush=True)


def step_flops(frames: int | None, side: int = 512) -> float:
    """TFLOP of one guided denoising step (a batch of 2: negative and positive prompt) of SD 1.5's
    UNet with the OpenPose ControlNet, at `side` x `side` px, counted by torch's FlopCounterMode on
    the meta device (the published configs; no memory, no weights): one frame or sheet canvas
    (frames None), or one AnimateDiff window of `frames` frames (UNetMotionModel, v1-5-3)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from torch.utils.flop_counter import FlopCounterMode

    from sd15_configs import MOTION_ADAPTER_V153, SD15_UNET

    with init_empty_weights(include_buffers=True):
        unet = UNet2DConditionModel(**SD15_UNET).half()
        controlnet = ControlNetModel.from_unet(unet, load_weights_from_unet=False).half()
        if frames:
            unet = UNetMotionModel.from_unet2d(unet, MotionAdapter(**MOTION_ADAPTER_V153)).half()
    meta = lambda *shape: torch.empty(*shape, device="meta", dtype=torch.float16)  # noqa: E731
    z, n = side // 8, 2 * (frames or 1)
    t = torch.tensor(500, device="meta")
    text, skeletons = meta(n, 77, 768), meta(n, 3, side, side)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        down, mid = controlnet(meta(n, 4, z, z), t, encoder_hidden_states=text, controlnet_cond=skeletons,
                               return_dict=False)
        x = meta(2, 4, frames, z, z) if frames else meta(n, 4, z, z)
        unet(x, t, encoder_hidden_states=text, down_block_additional_residuals=down, mid_block_additional_residual=mid)
    return counter.get_total_flops() / 1e12


def meta_table() -> None:
    """--meta: the work of one step of each row, without a GPU."""
    frame, window = step_flops(None), step_flops(16)
    rows = [("ControlNet img2img, per frame (512x512)", frame),
            ("ControlNet img2img, sheet of 4 frames of a square photo (one 512x512 canvas)", frame),
            ("AnimateDiff + ControlNet, one 16-frame window", window),
            ("AnimateDiff + ControlNet, a 16-frame cycle (two windows a step)", 2 * window)]
    print("| one guided step, SD 1.5 configs (meta device) | TFLOP |")
    print("|---|---:|")
    for name, tflop in rows:
        print(f"| {name} | {tflop:.2f} |")


# -- the driver ------------------------------------------------------------------------------
def run_row(args, name: str, models: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--models", json.dumps({k: str(v) for k, v in models.items()}),
           "--size", str(args.size), "--steps", str(args.steps), "--frames", str(args.frames),
           "--animatediff-frames", str(args.animatediff_frames), "--compile-mode", args.compile_mode]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.row_timeout,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    except subprocess.TimeoutExpired:
        return {"failed": f"took over {args.row_timeout} s (--row-timeout)"}
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("RESULT ")), None)
    if line is None:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"failed": f"exit code {proc.returncode}: {last[:200]}"}
    return json.loads(line[len("RESULT "):])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny models, 64 px, 4 steps: a CPU smoke test")
    p.add_argument("--only", help=f"comma-separated rows or row groups ({', '.join(sorted({n.split()[0] for n in ROWS}))})")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    p.add_argument("--compile-mode", default="reduce-overhead",
                   help="torch.compile mode for the UNet and ControlNet (default: reduce-overhead, CUDA graphs)")
    p.add_argument("--size", type=int, help="photo and frame size (default 512; 64 with --tiny)")
    p.add_argument("--steps", type=int, help="sampling steps (default 20; 4 with --tiny); img2img denoises 0.75 of them")
    p.add_argument("--frames", type=int, default=3, help="frames of the per-frame rows")
    p.add_argument("--animatediff-frames", type=int, default=16)
    p.add_argument("--models", help="reuse a folder written by an earlier run (--keep-models)")
    p.add_argument("--keep-models", help="write the models into this folder and keep them")
    p.add_argument("--row-timeout", type=int, default=900, help="seconds before a row counts as failed")
    p.add_argument("--meta", action="store_true", help="no GPU: the TFLOP of one step of each row, on the meta device")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.meta:
        from posekit.console import quiet_libraries

        quiet_libraries()
        return meta_table()
    args.size = args.size or (64 if args.tiny else 512)
    args.steps = args.steps or (4 if args.tiny else 20)
    wanted = [n for n in ROWS if not args.only or any(n == o or n.split()[0] == o for o in args.only.split(","))]
    if args.no_compile:
        wanted = [n for n in wanted if "compile" not in n]

    import torch

    from posekit.console import quiet_libraries

    quiet_libraries()
    cuda = torch.cuda.is_available()
    card = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores, no CUDA)"
    if not cuda and not args.tiny:
        print("no CUDA GPU: full-size SD 1.5 on the CPU takes minutes a step; use --tiny for a smoke test")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.models or args.keep_models or tmp)
        if args.models:
            models = {k: folder / k for k in ("sd", "controlnet", "motion_adapter", "ip_adapter")}
        else:
            from sd15_configs import write_models

            t = time.perf_counter()
            models = write_models(folder, tiny=args.tiny, device="cuda" if cuda else "cpu",
                                  dtype=torch.float16 if cuda else torch.float32)
            if cuda:
                torch.cuda.empty_cache()
            print(f"built {'tiny' if args.tiny else 'full-size'} models in {folder} ({time.perf_counter() - t:.0f} s)")
        print(f"\n{card}, torch {torch.__version__}, {'float16' if cuda else 'float32'}, {args.size} px, "
              f"{args.steps} steps ({'tiny models' if args.tiny else 'SD 1.5 configs, random weights'})\n")
        memory = "peak GPU GB (reserved)" if cuda else "peak RSS MB"
        rows = []
        for name in wanted:
            r = run_row(args, name, models)
            if "it_s" in r:
                mem = f"{r['peak_gb']:.2f} ({r['reserved_gb']:.2f})" if cuda else f"{r['peak_rss_mb']:.0f}"
                rows.append(f"| {ROWS[name][2]} | {r['it_s']:.2f} | {r['s_per_frame']:.3f} | {mem} | "
                            f"UNet calls a step: {r['unet_calls_per_step']:g} |")
            else:
                note = f"skipped: {r['skipped']}" if "skipped" in r else f"failed: {r['failed']}"
                rows.append(f"| {ROWS[name][2]} | | | | {note} |")
            print(rows[-1], file=sys.stderr, flush=True)  # progress while the table builds
        print(f"| {card}: configuration | it/s | s/frame | {memory} | note |")
        print("|---|---:|---:|---:|---|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()

"""A game character from one photo with the warp: 4 clips (idle, walk, run, jump, each at its
motion's own frame count) x 2 directions (--mirror), trimmed, with every engine file, and the same
as pixel art. Prints seconds per frame (of the frames the method made, and of all frames written)
and the total, stage by stage.

    python benchmarks/bench_character.py            # the bundled figure (384x512)
    python benchmarks/bench_character.py --photo me.jpg --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = "idle,walk,run,jump"


def main() -> None:
    from posekit.methods.warp.method import WarpOptions
    from posekit.pipeline import animate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=REPO / "examples" / "figure.png")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per configuration (the fastest is kept).")
    args = parser.parse_args()
    configs = {"4 clips x 2 directions, trim, all engine files": {},
               "the same as pixel art (16 colours, outline)": dict(pixel_art=16, outline=True)}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; photo {args.photo.name}, clips {CLIPS}\n")
    print("| configuration | frames made | frames written | s/frame made | s total | method s | writing s | evaluation s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, extra in configs.items():
        best = None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                s = animate(args.photo, CLIPS, Path(tmp) / "out", method="warp", mirror=True, trim=True,
                            options=WarpOptions(background="transparent"), exports=("array", "godot", "atlas"),
                            **extra)
            best = s if best is None or s["seconds_total"] < best["seconds_total"] else best
        made = best["frames"] // 2
        secs = best["seconds"]
        print(f"| {name} | {made} | {best['frames']} | {best['seconds_total'] / made:.3f} | {best['seconds_total']:.2f} "
              f"| {secs['method']:.2f} | {secs['writing']:.2f} | {secs.get('evaluation', 0):.2f} |")


if __name__ == "__main__":
    main()

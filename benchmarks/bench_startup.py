"""CLI start-up: `posekit --help` against a minimal Typer app with five commands.

    python benchmarks/bench_startup.py [--runs 15]

Each command runs in a fresh process (what a user waits for); we report the median wall time
of --runs runs, after one warm-up run each (so both read from a warm file cache).
Target: posekit no slower than 1.5x the minimal app.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL_APP = '''
import typer

app = typer.Typer(add_completion=False)

for name in ("one", "two", "three", "four", "five"):
    def command(path: str = typer.Argument(...), flag: bool = typer.Option(False, "--flag")):
        """A command."""
    app.command(name)(command)

if __name__ == "__main__":
    app()
'''


def median_seconds(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    posekit = shutil.which("posekit", path=str(Path(sys.executable).parent)) or shutil.which("posekit")
    if posekit is None:
        sys.exit("the posekit command is not installed (pip install -e .)")
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "minimal_app.py"
        app.write_text(MINIMAL_APP)
        rows = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ("minimal Typer app, 5 commands: --help", [sys.executable, str(app), "--help"]),
            ("posekit --help", [posekit, "--help"]),
            ("posekit extract-pose --help", [posekit, "extract-pose", "--help"]),
        ]
        results = {label: median_seconds(cmd, args.runs) for label, cmd in rows}
    base = results["minimal Typer app, 5 commands: --help"]
    print(f"{'command':44s} {'median ms':>10s} {'x minimal app':>14s}")
    for label, seconds in results.items():
        print(f"{label:44s} {seconds * 1000:10.1f} {seconds / base:14.2f}")
    ratio = results["posekit --help"] / base
    print(f"\nposekit --help / minimal app = {ratio:.2f} (target <= 1.5): {'OK' if ratio <= 1.5 else 'TOO SLOW'}")


if __name__ == "__main__":
    main()

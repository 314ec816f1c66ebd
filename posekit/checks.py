"""Flag checks every command shares, defined once. Cheap (standard library only), so they run at
flag-parse time or first thing in a command, before any model is loaded or any file written.

    fps: float = typer.Option(12.0, "--fps", callback=finite(*FPS))
    size = parse_size(size_text)               # "WxH" -> (w, h)
    check_out(out)                             # --out can become this command's folder
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from posekit.errors import UsageError

# GIF frame durations are whole 1/100 s and browsers slow frames under 20 ms down, so 50 fps is the
# most a GIF shows; WebP, MP4 and sheet.json (ms) take up to 120. 0.1 fps is a 10 s frame.
FPS = (0.1, 120.0)
LEARNING_RATE = (1e-8, 1.0)
LOSS_WEIGHT = (0.0, 1000.0)


MIXED_PRECISIONS = ("no", "fp16", "bf16")


def check_mixed_precision(value: str) -> str:
    """--mixed-precision: no, fp16 or bf16, else a usage error naming the flag (the one check of
    it: both trainers' flag runs it when parsed, and training.make_accelerator for library use)."""
    if value not in MIXED_PRECISIONS:
        raise UsageError(f"--mixed-precision {value!r}: choose {', '.join(MIXED_PRECISIONS[:-1])} or {MIXED_PRECISIONS[-1]}")
    return value


def check_finite(value: float, flag: str, lo: float | None = None, hi: float | None = None) -> float:
    """`value` unless it is nan, infinite or outside [lo, hi]: then a usage error naming `flag`."""
    if math.isfinite(value) and (lo is None or value >= lo) and (hi is None or value <= hi):
        return value
    where = (f"from {lo:g} to {hi:g}" if lo is not None and hi is not None
             else f"of at least {lo:g}" if lo is not None else f"of at most {hi:g}" if hi is not None else "")
    raise UsageError(f"{flag} {value:g}: use a number {where}".rstrip())


def finite(lo: float | None = None, hi: float | None = None):
    """A Typer callback for a float option: `check_finite` on its value (None passes)."""

    def callback(ctx, param, value):
        return value if value is None else check_finite(value, param.opts[0], lo, hi)

    return callback


def parse_size(text: str | None, flag: str = "--size", multiple: int = 1) -> tuple[int, int] | None:
    """'128x160' -> (128, 160): WIDTHxHEIGHT, each side 8 to 8192 and a multiple of `multiple`;
    None stays None."""
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: use WIDTHxHEIGHT, e.g. 256x256") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise UsageError(f"{flag} {text!r}: each side must be 8 to 8192 pixels")
    if w % multiple or h % multiple:
        raise UsageError(f"{flag} {text!r}: both sides must be multiples of {multiple}")
    return w, h


def check_out(path: Path | None, flag: str = "--out", file: bool = False) -> Path | None:
    """Fail at once, naming `flag`, when `path` cannot become the output folder (file=True: the
    output file): "-" (not stdout), a file where a folder is needed or the reverse, a file on the
    way, or a place nothing can be created in (permission denied, /proc, a read-only disk).
    Nothing is left behind: an empty folder is made in the nearest existing one and removed."""
    if path is None:
        return None
    if str(path) == "-":  # not stdout: posekit writes files (data on stdout is --json / --jsonl)
        raise UsageError(f"{flag} -: posekit writes files there, not to stdout; pass "
                         + ("a file name" if file else f"a folder's name (e.g. {flag} out)"))
    path = Path(path)
    if file and path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; pass a file name")
    if not file and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: is a file; pass a folder")
    # files are written under a temporary name beside them, so it is the folder that must be writable
    here = Path(os.path.abspath(path.parent if file else path))
    while not here.exists() and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise UsageError(f"{flag} {path}: {here} is a file, not a folder; choose another {flag}")
    if not os.access(here, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {here} (permission denied); choose another {flag}")
    try:  # what access() cannot know (/proc, /sys, a read-only or full disk): make something there, and remove it
        probe = tempfile.mkdtemp(prefix=".writable-", dir=here)
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot create anything in {here} ({e.strerror or e}); "
                         f"choose another {flag} on a disk you can write to") from None
    try:
        os.rmdir(probe)
    except OSError:
        pass
    return path

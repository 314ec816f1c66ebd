"""Frames -> animations: `write_gif` (loops forever, one palette for all frames), `write_webp`
(animated, lossless, loops forever), `write_mp4` (H.264); `write_animation` picks by suffix.
Everything is written atomically (a killed run never leaves a half-written file).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from posekit.errors import PosekitError
from posekit.images import atomic_path, to_rgb

ANIMATION_FORMATS = ("gif", "webp", "mp4")


def as_rgba(frame: np.ndarray) -> np.ndarray:
    return to_rgb(frame, keep_alpha=True)


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 12) -> Path:
    """An animated GIF that loops forever. All frames share one palette (no colour flicker from
    frame to frame, and fast). RGBA frames keep a transparent background (GIF has a 1-bit
    alpha: pixels under half opacity become transparent). Frame times are whole centiseconds
    (all GIF stores) whose running total follows `fps` (see `gif_durations`). Identical
    consecutive frames are merged into one by Pillow, their times added."""
    from PIL import Image

    duration = gif_durations(len(frames), fps)
    rgba = any(f.ndim == 3 and f.shape[2] == 4 for f in frames)
    frames = [as_rgba(f) if rgba else to_rgb(f) for f in frames]
    palette = shared_palette([f[:, :, :3] for f in frames], colours=255 if rgba else 256)
    images = []
    for f in frames:
        index = np.asarray(Image.fromarray(np.ascontiguousarray(f[:, :, :3])).quantize(
            palette=palette, dither=Image.Dither.NONE)).copy()
        if rgba:
            index[f[:, :, 3] < 128] = 255
        im = Image.fromarray(index, mode="P")
        im.putpalette(palette.getpalette())
        images.append(im)
    extra = {"transparency": 255, "disposal": 2} if rgba else {"disposal": 1}
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration,
                       loop=0, optimize=False, **extra)
    return path


def frame_durations(frames: int, fps: float, unit_ms: int = 1) -> list[int]:
    """Milliseconds per frame, each a whole number of `unit_ms`, from running totals: frame i
    starts at i / fps rounded to the unit, so the loop lasts frames / fps rounded (12 frames at
    12 fps: 83, 84, 83, 83, 84, 83, ... = 1000 ms, where 83 each would be 996 ms), and no frame
    drifts by more than half a unit. The one definition of per-frame times: WebP, sheet.json and
    the GIF (in centiseconds, `gif_durations`) all use it. Never under one unit."""
    per_unit = 1000.0 / unit_ms  # units a second
    starts = [math.floor(i * per_unit / fps + 0.5) for i in range(frames + 1)]
    return [unit_ms * max(1, b - a) for a, b in zip(starts, starts[1:])]


def gif_durations(frames: int, fps: float) -> list[int]:
    """Milliseconds per frame for a GIF, each a whole number of centiseconds (GIF's unit), from
    `frame_durations`: 12 fps gives 80, 90, 80, 80, 90, 80, ... (not 80 each, 4% fast). Never
    under 20 ms, as browsers slow shorter frames down to 100 ms: above 50 fps, 20 ms each."""
    if fps >= 50:  # the fastest a GIF plays: 20 ms a frame
        return [20] * frames
    return frame_durations(frames, fps, unit_ms=10)


def shared_palette(frames: list[np.ndarray], colours: int = 256):
    """One palette image for all frames, from a mosaic of (subsampled) frames; when the frames
    hold no more than `colours` colours (pixel art), exactly those colours."""
    from PIL import Image

    step = max(1, int(np.sqrt(sum(f.shape[0] * f.shape[1] for f in frames) / 250_000)))
    mosaic = np.concatenate([f[::step, ::step].reshape(-1, 3) for f in frames])[None]
    if len(unique_colours([mosaic])) <= colours:  # few colours in the sample: maybe exactly these
        exact = unique_colours(frames)
        if len(exact) <= colours:
            # the unused entries get a colour no pixel has, so no pixel maps to them (index 255 included)
            codes = set((exact @ np.int64([65536, 256, 1])).tolist())
            spare = next(c for c in range(257) if c not in codes)
            pad = np.repeat([[0, spare >> 8, spare & 255]], 256 - len(exact), axis=0)
            pal = Image.new("P", (1, 1))
            pal.putpalette(np.concatenate([exact, pad]).astype(np.uint8).reshape(-1).tolist())
            return pal
    pal = Image.fromarray(np.ascontiguousarray(mosaic)).quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    entries = pal.getpalette()[: colours * 3]
    pal.putpalette(entries + [0] * (768 - len(entries)))  # index 255 stays free for transparency
    return pal


def unique_colours(frames: list[np.ndarray]) -> np.ndarray:
    """(k, 3) the distinct RGB colours of the frames."""
    packed = np.unique(np.concatenate([f.reshape(-1, 3).astype(np.int32) @ np.int32([65536, 256, 1]) for f in frames]))
    return np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1)


def write_webp(frames: list[np.ndarray], path: str | Path, fps: float = 12) -> Path:
    """An animated WebP (lossless, full alpha) that loops forever; frame times in whole
    milliseconds whose running total follows `fps` (`frame_durations`)."""
    import imageio.v3 as iio

    rgba = any(f.ndim == 3 and f.shape[2] == 4 for f in frames)
    stack = np.stack([as_rgba(f) if rgba else to_rgb(f) for f in frames])
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stack, extension=".webp", plugin="pillow", duration=frame_durations(len(frames), fps),
                    loop=0, lossless=True)
    return path


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: float = 12) -> Path:
    """An H.264 MP4 (yuv420p, playable everywhere). Transparency is composited on white and odd
    sides are padded by a pixel, as yuv420p needs even sizes."""
    import imageio.v3 as iio

    stack = np.stack([to_rgb(f) for f in frames])
    h, w = stack.shape[1:3]
    stack = np.pad(stack, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, stack, extension=".mp4", plugin="FFMPEG", fps=fps, codec="libx264",
                        macro_block_size=2, pixelformat="yuv420p", ffmpeg_log_level="error")
    except (OSError, RuntimeError) as e:
        raise PosekitError(f"{path}: cannot write MP4 ({e}); is imageio-ffmpeg installed?") from None
    return path


def write_animation(frames: list[np.ndarray], path: str | Path, fps: float = 12) -> Path:
    """GIF, WebP or MP4 by the file's suffix."""
    writer = {".gif": write_gif, ".webp": write_webp, ".mp4": write_mp4}.get(Path(path).suffix.lower())
    if writer is None:
        raise PosekitError(f"{path}: unknown animation format; use .gif, .webp or .mp4")
    return writer(frames, path, fps)

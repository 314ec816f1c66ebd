"""Frames -> animations: `write_gif` (one palette for all frames), `write_webp` (animated,
lossless), `write_mp4` (H.264); `write_animation` picks by suffix. GIF and WebP loop forever, or
play once when the clip is not a cycle (`loop=False`: a jump is played once in a game, so its
preview shows it once too).
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


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 12, loop: bool = True) -> Path:
    """An animated GIF that loops forever, or plays once (`loop=False`: no loop extension, as for
    a clip that is not a cycle, like a jump). All frames share one palette (no colour flicker
    from frame to frame, and fast). RGBA frames keep a transparent background (GIF has a 1-bit
    alpha: pixels under half opacity become transparent). Frame times are whole centiseconds
    (all GIF stores) whose running total follows `fps` (see `gif_durations`). One GIF frame per
    frame, repeated frames included (see `told_apart`), so the GIF matches the sheet frame for
    frame."""
    from PIL import Image

    duration = gif_durations(len(frames), fps)
    rgba = any(f.ndim == 3 and f.shape[2] == 4 for f in frames)
    frames = [as_rgba(f) if rgba else to_rgb(f) for f in frames]
    colours = 255 if rgba else 256  # index 255 is the transparent one
    spare = 0  # palette entries kept free to tell repeated frames apart (see told_apart)
    while True:
        palette = shared_palette([f[:, :, :3] for f in frames], colours=colours - spare)
        indexed = []
        for f in frames:
            index = np.asarray(Image.fromarray(np.ascontiguousarray(f[:, :, :3])).quantize(
                palette=palette, dither=Image.Dither.NONE)).copy()
            if rgba:
                index[f[:, :, 3] < 128] = 255
            indexed.append(index)
        entries = palette.getpalette()  # the colours chosen: colours - spare entries or fewer
        marked, aliases = repeats(indexed, len(entries) // 3)
        if len(entries) // 3 + len(aliases) <= colours:  # room for the aliases (pixel art: often at once)
            break
        # once more with room for as many: as the palette held at most colours - spare colours,
        # there are more aliases than spare entries, so each pass asks for fewer (rarely a third)
        spare = len(aliases)
    told_apart(indexed, marked, aliases, len(entries) // 3)
    entries += [c for i in aliases for c in entries[3 * i: 3 * i + 3]]
    entries += [0] * (768 - len(entries))
    images = []
    for index in indexed:
        im = Image.fromarray(index, mode="P")
        im.putpalette(entries)
        images.append(im)
    disposal = cleared(indexed)
    if all(np.array_equal(i, indexed[0]) for i in indexed[1:]):  # Pillow writes one frame, with one disposal
        disposal = disposal[0]
    extra = {"transparency": 255, "disposal": disposal} if rgba else {"disposal": 1}
    if loop:
        extra["loop"] = 0
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration,
                       optimize=False, palette=bytes(entries), **extra)  # one global palette
    return path


def cleared(indexed: list[np.ndarray]) -> list[int]:
    """GIF disposal per frame of a transparent GIF: 2 (cleared after it shows), or 3 (restored to
    what was there before: cleared too, as every frame is) before a frame with nothing opaque,
    as Pillow writes such a frame after a disposal-2 frame as a second file header, which ends
    the GIF there for readers."""
    return [3 if i + 1 < len(indexed) and (indexed[i + 1] == 255).all() else 2 for i in range(len(indexed))]


def repeats(indexed: list[np.ndarray], first: int) -> tuple[list[int], list[int]]:
    """Pillow writes a frame whose palette indices equal the previous frame's as one frame with
    the two times added (no option turns this off), so a GIF of an idle clip would have fewer
    frames than its sheet. Returns the frames to mark (in a run of equal frames every other one,
    so the next equal one differs from it again) and the fewest palette colours (indices under
    `first`, the transparent 255 aside) that every marked frame shows one of: each becomes a
    spare palette entry repeating that colour (see `told_apart`). A repeated frame with nothing
    opaque (no pixel to mark unseen) is left to Pillow."""
    marked = []
    for i in range(1, len(indexed)):
        if (np.array_equal(indexed[i], indexed[i - 1]) and (not marked or marked[-1] != i - 1)
                and (indexed[i] < first).any()):
            marked.append(i)
    copies: list[int] = []
    left = marked
    while left:
        counts = {}
        for i in left:
            for c in np.unique(indexed[i]).tolist():
                if c < first:
                    counts[c] = counts.get(c, 0) + 1
        copies.append(max(counts, key=counts.get))
        left = [i for i in left if not (indexed[i] == copies[-1]).any()]
    return marked, copies


def told_apart(indexed: list[np.ndarray], marked: list[int], copies: list[int], first: int) -> None:
    """Draws one pixel of each marked frame (`repeats`) with the spare palette entry `first` + k
    that repeats the k-th copied colour: the frame looks the same, but its indices differ from
    its neighbour's, so Pillow keeps it. Changes `indexed` in place."""
    for i in marked:
        k = next(k for k, c in enumerate(copies) if (indexed[i] == c).any())
        y, x = np.argwhere(indexed[i] == copies[k])[0]
        indexed[i][y, x] = first + k


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
    hold no more than `colours` colours (pixel art), exactly those colours. The palette holds
    only the colours chosen (at most `colours` entries), so quantizing never maps a pixel to a
    padding entry (black padding took near-black pixels, turned transparent at index 255)."""
    from PIL import Image

    step = max(1, int(np.sqrt(sum(f.shape[0] * f.shape[1] for f in frames) / 250_000)))
    mosaic = np.concatenate([f[::step, ::step].reshape(-1, 3) for f in frames])[None]
    pal = Image.new("P", (1, 1))
    if len(unique_colours([mosaic])) <= colours:  # few colours in the sample: maybe exactly these
        exact = unique_colours(frames)
        if len(exact) <= colours:
            pal.putpalette(exact.astype(np.uint8).reshape(-1).tolist())
            return pal
    entries = Image.fromarray(np.ascontiguousarray(mosaic)).quantize(
        colors=colours, method=Image.Quantize.MEDIANCUT).getpalette()
    pal.putpalette(entries[: colours * 3])
    return pal


def unique_colours(frames: list[np.ndarray]) -> np.ndarray:
    """(k, 3) the distinct RGB colours of the frames."""
    packed = np.unique(np.concatenate([f.reshape(-1, 3).astype(np.int32) @ np.int32([65536, 256, 1]) for f in frames]))
    return np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1)


def write_webp(frames: list[np.ndarray], path: str | Path, fps: float = 12, loop: bool = True) -> Path:
    """An animated WebP (lossless, full alpha) that loops forever, or plays once (`loop=False`);
    frame times in whole milliseconds whose running total follows `fps` (`frame_durations`)."""
    import imageio.v3 as iio

    rgba = any(f.ndim == 3 and f.shape[2] == 4 for f in frames)
    stack = np.stack([as_rgba(f) if rgba else to_rgb(f) for f in frames])
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stack, extension=".webp", plugin="pillow", duration=frame_durations(len(frames), fps),
                    loop=0 if loop else 1, lossless=True)  # WebP counts plays: 1 = once
    return path


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: float = 12, loop: bool = True) -> Path:
    """An H.264 MP4 (yuv420p, playable everywhere). Transparency is composited on white and odd
    sides are padded by a pixel, as yuv420p needs even sizes. A video has no loop flag (the
    player decides): `loop` is taken for the same call as the other writers."""
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


def write_animation(frames: list[np.ndarray], path: str | Path, fps: float = 12, loop: bool = True) -> Path:
    """GIF, WebP or MP4 by the file's suffix; GIF and WebP loop forever, or play once when `loop`
    is False (a clip that is not a cycle: its Strip's `loop`)."""
    writer = {".gif": write_gif, ".webp": write_webp, ".mp4": write_mp4}.get(Path(path).suffix.lower())
    if writer is None:
        raise PosekitError(f"{path}: unknown animation format; use .gif, .webp or .mp4")
    return writer(frames, path, fps, loop)

"""Frames -> the files animators and game engines read.

- `sprite_sheet(frames, columns)`: one RGBA image, frames on a grid left to right, top to bottom
  (empty cells transparent), and each frame's rectangle on it.
- `aseprite_json(...)`: the sheet's data in Aseprite's "json-hash" format, which Phaser's
  `load.aseprite` and the Godot Aseprite importers read: frame keys "0".."N-1", durations in ms,
  one frameTags entry named after the clip, meta.size = the sheet.
- `write_gif` (loops forever), `write_webp` (animated, loops forever), `write_mp4` (H.264).
Everything is written atomically (a killed run never leaves a half-written file).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from posekit.errors import PosekitError
from posekit.images import atomic_path, save_image, to_rgb, write_json

ANIMATION_FORMATS = ("gif", "webp", "mp4")


def grid(n: int, columns: int | None = None, one_row_up_to: int = 8) -> tuple[int, int]:
    """(columns, rows) for n frames: `columns` if given, else one row up to `one_row_up_to`
    frames, else a near-square grid."""
    if n < 1:
        raise PosekitError("no frames to lay out")
    if columns is None:
        columns = n if n <= one_row_up_to else math.ceil(math.sqrt(n))
    columns = max(1, min(int(columns), n))
    return columns, math.ceil(n / columns)


def as_rgba(frame: np.ndarray) -> np.ndarray:
    return to_rgb(frame, keep_alpha=True)


def sprite_sheet(frames: list[np.ndarray], columns: int | None = None) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """(sheet RGBA uint8, [(x, y, w, h) of each frame]). All frames must have one size."""
    sizes = {f.shape[:2] for f in frames}
    if len(sizes) != 1:
        raise PosekitError(f"frames differ in size ({sorted(sizes)}); resize them to one size first")
    h, w = sizes.pop()
    cols, rows = grid(len(frames), columns)
    sheet = np.zeros((rows * h, cols * w, 4), np.uint8)
    rects = []
    for i, frame in enumerate(frames):
        x, y = (i % cols) * w, (i // cols) * h
        sheet[y:y + h, x:x + w] = as_rgba(frame)
        rects.append((x, y, w, h))
    return sheet, rects


def aseprite_json(rects: list[tuple[int, int, int, int]], sheet_size: tuple[int, int], fps: float,
                  tag: str = "animation", image: str = "sheet.png", direction: str = "forward") -> dict:
    """Aseprite json-hash data for a sheet whose frames sit at `rects` (sheet_size = (w, h))."""
    from posekit import __version__

    duration = max(1, round(1000.0 / fps))
    frames = {
        str(i): {"frame": {"x": x, "y": y, "w": w, "h": h}, "rotated": False, "trimmed": False,
                 "spriteSourceSize": {"x": 0, "y": 0, "w": w, "h": h}, "sourceSize": {"w": w, "h": h},
                 "duration": duration}
        for i, (x, y, w, h) in enumerate(rects)
    }
    meta = {"app": "posekit", "version": __version__, "image": image, "format": "RGBA8888",
            "size": {"w": int(sheet_size[0]), "h": int(sheet_size[1])}, "scale": "1",
            "frameTags": [{"name": tag, "from": 0, "to": len(rects) - 1, "direction": direction}],
            "layers": [], "slices": []}
    return {"frames": frames, "meta": meta}


def write_sheet(frames: list[np.ndarray], png: str | Path, json_path: str | Path | None = None,
                columns: int | None = None, fps: float = 12, tag: str = "animation") -> tuple[Path, Path | None]:
    """Write sheet.png (and its Aseprite JSON beside it when json_path is given)."""
    sheet, rects = sprite_sheet(frames, columns)
    png = save_image(sheet, png)
    if json_path is not None:
        data = aseprite_json(rects, (sheet.shape[1], sheet.shape[0]), fps, tag, image=Path(png).name)
        json_path = write_json(data, json_path)
    return png, json_path


def write_gif(frames: list[np.ndarray], path: str | Path, fps: float = 12) -> Path:
    """An animated GIF that loops forever. All frames share one palette (no colour flicker from
    frame to frame, and fast). RGBA frames keep a transparent background (GIF has a 1-bit
    alpha: pixels under half opacity become transparent)."""
    from PIL import Image

    duration = max(20, round(1000.0 / fps))  # browsers slow GIF frames under 20 ms down to 100 ms
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


def shared_palette(frames: list[np.ndarray], colours: int = 256):
    """One palette image for all frames, from a mosaic of (subsampled) frames."""
    from PIL import Image

    step = max(1, int(np.sqrt(sum(f.shape[0] * f.shape[1] for f in frames) / 250_000)))
    mosaic = np.concatenate([f[::step, ::step].reshape(-1, 3) for f in frames])[None]
    pal = Image.fromarray(np.ascontiguousarray(mosaic)).quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    entries = pal.getpalette()[: colours * 3]
    pal.putpalette(entries + [0] * (768 - len(entries)))  # index 255 stays free for transparency
    return pal


def write_webp(frames: list[np.ndarray], path: str | Path, fps: float = 12) -> Path:
    """An animated WebP (lossless, full alpha) that loops forever."""
    import imageio.v3 as iio

    rgba = any(f.ndim == 3 and f.shape[2] == 4 for f in frames)
    stack = np.stack([as_rgba(f) if rgba else to_rgb(f) for f in frames])
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stack, extension=".webp", plugin="pillow", duration=round(1000.0 / fps),
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

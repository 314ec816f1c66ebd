"""Pixel art: every cell scaled down, one palette of at most N colours for every frame of every
animation (no colour flicker from frame to frame or clip to clip), alpha either 0 or 255, and
optionally a 1-pixel outline around the figure in the palette's darkest colour. Pixels are only
ever palette colours (no in-between colours), so the sheet and the GIFs show the same palette. No
two palette colours are nearly the same (`DISTINCT`): median cut splits a big flat area (a red
shirt) into boxes of all but the same colour, and the shirt's pixels would flip between them from
frame to frame.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from posekit.sheet.layout import Strip, scaled

DEFAULT_HEIGHT = 64  # cell height when no --size is given: a classic sprite size
_SAMPLE = 200_000    # pixels the palette is chosen from at most
DISTINCT = 8.0       # RGB distance under which two palette colours are one (about 5 levels a channel)


def palette_of(pixels: np.ndarray, colours: int) -> np.ndarray:
    """(k, 3) uint8, k <= colours: a median-cut palette of the (n, 3) pixels, less the colours
    within DISTINCT of a colour more of the pixels take (those pixels go to that one)."""
    from PIL import Image

    step = max(1, len(pixels) // _SAMPLE)
    sample = np.ascontiguousarray(pixels[::step])
    q = Image.fromarray(sample[None]).quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    used, counts = np.unique(np.asarray(q), return_counts=True)  # the pixels each colour took
    palette = np.asarray(q.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)[used]
    kept: list[int] = []
    for i in np.argsort(-counts, kind="stable"):  # the most used first: a near twin joins it
        near = np.sqrt(((palette[kept].astype(float) - palette[i]) ** 2).sum(1)) < DISTINCT
        if counts[i] and not near.any():
            kept.append(int(i))
    return palette[sorted(kept)] if kept else palette[:1]


def nearest_index(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The index of each (n, 3) pixel's nearest palette colour (in chunks: n x colours distances
    at once would take gigabytes for a big frame and 256 colours)."""
    pal = palette[None].astype(np.int32)
    index = np.empty(len(pixels), np.int64)
    for start in range(0, len(pixels), 16384):
        d = ((pixels[start:start + 16384, None, :].astype(np.int32) - pal) ** 2).sum(-1)
        index[start:start + 16384] = d.argmin(1)
    return index


def nearest(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Each (n, 3) pixel replaced by its nearest palette colour."""
    return palette[nearest_index(pixels, palette)]


def outlined(frame: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Transparent pixels next to (4-neighbour) opaque ones become opaque `colour`."""
    solid = frame[:, :, 3] > 0
    grown = solid.copy()
    grown[1:] |= solid[:-1]
    grown[:-1] |= solid[1:]
    grown[:, 1:] |= solid[:, :-1]
    grown[:, :-1] |= solid[:, 1:]
    ring = grown & ~solid
    out = frame.copy()
    out[ring, :3], out[ring, 3] = colour, 255
    return out


def pixelate(strips: list[Strip], colours: int, size: tuple[int, int] | None = None,
             outline: bool = False) -> list[Strip]:
    """The strips as pixel art (see the module docstring); cells become `size` (w, h), by default
    DEFAULT_HEIGHT pixels tall with the cells' aspect."""
    h, w = strips[0].frames[0].shape[:2]
    size = size or (max(1, round(w * DEFAULT_HEIGHT / h)), DEFAULT_HEIGHT)
    strips = [scaled(s, size) for s in strips]
    rgba = strips[0].frames[0].ndim == 3 and strips[0].frames[0].shape[2] == 4
    frames = [f for s in strips for f in s.frames]
    if rgba:
        for f in frames:
            f[:, :, 3] = np.where(f[:, :, 3] >= 128, 255, 0)
    solid = np.concatenate([f[f[:, :, 3] > 0][:, :3] if rgba else f.reshape(-1, 3) for f in frames])
    if not len(solid):  # nothing visible anywhere: one colour is the whole palette
        solid = np.zeros((1, 3), np.uint8)
    palette = palette_of(solid, colours)
    dark = palette[palette.astype(int).sum(1).argmin()]
    out = []
    for s in strips:
        art = []
        for f in s.frames:
            f = f.copy()
            f[:, :, :3] = nearest(f[:, :, :3].reshape(-1, 3), palette).reshape(f.shape[:2] + (3,))
            if rgba:
                f[f[:, :, 3] == 0, :3] = dark  # hidden, but a colour of the palette all the same
                f = outlined(f, dark) if outline else f
            art.append(f)
        out.append(replace(s, frames=art))
    return out

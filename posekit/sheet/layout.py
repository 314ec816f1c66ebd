"""Where every frame goes: animations (clips x directions) -> one sheet and one `Layout` that
every writer (Aseprite JSON, Godot .tres, atlas JSON) reads, so all the files agree.

- A `Strip` is one animation in the sheet: a tag name, its frames (all one cell size), the pose
  of each frame in its pixels, whether it loops.
- `layout(strips, columns, trim)`: each strip starts a new row and wraps after `columns` frames
  (default: one strip, one row up to 8 frames, else a near-square grid; several strips, the
  longest strip's length, so each strip is one row). With `trim`, each frame keeps only its
  non-transparent box and the rows are packed shelf by shelf; the cell is still its source.
- The pivot of a frame is where the character stands: under the middle of the hips, on the
  ground line, one for every frame of every strip, so animations switch without a jump: the
  photo's floor (the strips' `ground`, where retargeting put the feet), else the lowest ankle of
  any frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from posekit.errors import PosekitError


@dataclass
class Strip:
    name: str
    frames: list  # HxWx3|4 uint8 arrays, one cell size
    poses: list = field(default_factory=list)  # Pose per frame, in frame pixels ([] = unknown)
    loop: bool = True
    ground: float | None = None  # y of the floor the figure stands on, in frame pixels


@dataclass(frozen=True)
class Frame:
    rect: tuple[int, int, int, int]      # (x, y, w, h) on the sheet
    offset: tuple[int, int]              # where rect's pixels sit in the cell (trim)
    cell: tuple[int, int]                # (w, h) of the untrimmed frame
    pivot: tuple[float, float] | None    # in cell pixels

    @property
    def trimmed(self) -> bool:
        return (self.rect[2], self.rect[3]) != self.cell


@dataclass(frozen=True)
class Tag:
    name: str
    start: int  # first frame index
    end: int    # last frame index
    loop: bool = True


@dataclass(frozen=True)
class Layout:
    size: tuple[int, int]  # the sheet (w, h)
    frames: tuple[Frame, ...]
    tags: tuple[Tag, ...]


def grid(n: int, columns: int | None = None, one_row_up_to: int = 8) -> tuple[int, int]:
    """(columns, rows) for n frames: `columns` if given, else one row up to `one_row_up_to`
    frames, else a near-square grid."""
    if n < 1:
        raise PosekitError("no frames to lay out")
    if columns is None:
        columns = n if n <= one_row_up_to else math.ceil(math.sqrt(n))
    columns = max(1, min(int(columns), n))
    return columns, math.ceil(n / columns)


def opaque_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the frame's non-transparent pixels (the whole frame when it has no alpha;
    one pixel when it is all transparent, as atlas formats need a frame of some size)."""
    h, w = frame.shape[:2]
    if frame.ndim < 3 or frame.shape[2] < 4:
        return 0, 0, w, h
    ys, xs = np.nonzero(frame[:, :, 3])
    if not len(xs):
        return 0, 0, 1, 1
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def ground_line(strips: list[Strip]) -> float | None:
    """The strips' ground, else the y of the lowest ankle over every frame of every strip (None
    without poses)."""
    if strips[0].ground is not None:
        return strips[0].ground
    ys = [max(a[1] for a in ankles) for s in strips for p in s.poses
          if (ankles := [a for a in (p["r_ankle"], p["l_ankle"]) if a is not None])]
    return max(ys) if ys else None


def pivot_of(pose, ground: float | None, cell: tuple[int, int]) -> tuple[float, float] | None:
    """The point the character stands on in this frame: under the middle of the hips (the cell's
    middle when they are not seen), on the ground line."""
    if ground is None:
        return None
    hips = [h for h in (pose["r_hip"], pose["l_hip"]) if h is not None] if pose is not None else []
    x = float(np.mean([h[0] for h in hips])) if hips else cell[0] / 2
    return round(x, 2), round(float(ground), 2)


def mirrored(strip: Strip) -> list[Strip]:
    """The strip facing right ("<name>_right", as it was made) and its left-facing twin
    ("<name>_left": frames and poses flipped left to right)."""
    return [replace(strip, name=f"{strip.name}_right"),
            replace(strip, name=f"{strip.name}_left", frames=[np.ascontiguousarray(f[:, ::-1]) for f in strip.frames],
                    poses=[p.flip() for p in strip.poses])]


CROP_MARGIN = 0.2  # of the figure's height, around the keypoints (hair above the eyes, hands, feet)


def figure_box(strips: list[Strip]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the union of the figure over every frame of every strip: its opaque
    pixels when frames are transparent, else its keypoints plus CROP_MARGIN (the frame when
    neither is known)."""
    frames = [f for s in strips for f in s.frames]
    h, w = frames[0].shape[:2]
    if frames[0].ndim == 3 and frames[0].shape[2] == 4:
        boxes = [(x, y, x + bw, y + bh) for x, y, bw, bh in map(opaque_box, frames)]
        pad = 2
    else:
        boxes = [b for s in strips for p in s.poses if (b := p.bbox()) is not None]
        pad = CROP_MARGIN * (max(b[3] for b in boxes) - min(b[1] for b in boxes)) if boxes else 0
    if not boxes:
        return 0, 0, w, h
    x0, y0 = min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad
    x1, y1 = max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad
    return max(0, int(x0)), max(0, int(y0)), min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))


def cropped(strips: list[Strip]) -> list[Strip]:
    """Every frame cut to one cell, `figure_box`: the same for every strip, so the ground line
    and the pivot stay where they are relative to the cell from one animation to the next."""
    x0, y0, x1, y1 = figure_box(strips)
    return [replace(s, frames=[f[y0:y1, x0:x1].copy() for f in s.frames],
                    poses=[p.cropped(x0, y0, x1 - x0, y1 - y0) for p in s.poses],
                    ground=None if s.ground is None else s.ground - y0) for s in strips]


def scaled(strip: Strip, size: tuple[int, int]) -> Strip:
    """The strip's frames and poses at `size` (w, h), scaled uniformly and centred (letterboxed)."""
    from posekit.pipeline import letterbox

    h, w = strip.frames[0].shape[:2]
    s = min(size[0] / w, size[1] / h)  # as letterbox and Pose.fitted scale and centre
    ground = None if strip.ground is None else strip.ground * s + (size[1] - h * s) / 2
    return replace(strip, frames=[letterbox(f, *size) for f in strip.frames], poses=[p.fitted(*size) for p in strip.poses],
                   ground=ground)


def layout(strips: list[Strip], columns: int | None = None, trim: bool = False) -> Layout:
    """Place every frame of every strip (see the module docstring)."""
    frames = [f for s in strips for f in s.frames]
    if not frames:
        raise PosekitError("no frames to lay out")
    sizes = {f.shape[:2] for f in frames}
    if len(sizes) != 1:
        raise PosekitError(f"frames differ in size ({sorted(sizes)}); resize them to one size first")
    ch, cw = sizes.pop()
    if columns is None:
        columns = grid(len(frames))[0] if len(strips) == 1 else max(len(s.frames) for s in strips)
    ground = ground_line(strips)
    placed, tags, y, width = [], [], 0, 0
    for s in strips:
        tags.append(Tag(s.name, len(placed), len(placed) + len(s.frames) - 1, s.loop))
        for row in range(0, len(s.frames), columns):
            x, row_h = 0, 0
            for i in range(row, min(row + columns, len(s.frames))):
                bx, by, bw, bh = opaque_box(s.frames[i]) if trim else (0, 0, cw, ch)
                pose = s.poses[i] if s.poses else None
                placed.append(Frame((x, y, bw, bh), (bx, by), (cw, ch), pivot_of(pose, ground, (cw, ch))))
                x, row_h = x + bw, max(row_h, bh)
            y, width = y + row_h, max(width, x)
    return Layout((width, y), tuple(placed), tuple(tags))


def render(strips: list[Strip], plan: Layout) -> np.ndarray:
    """The sheet image (RGBA uint8, transparent where no frame is) that `plan` describes."""
    from posekit.sheet.animation import as_rgba

    sheet = np.zeros((plan.size[1], plan.size[0], 4), np.uint8)
    frames = [f for s in strips for f in s.frames]
    for frame, where in zip(frames, plan.frames):
        (x, y, w, h), (ox, oy) = where.rect, where.offset
        sheet[y:y + h, x:x + w] = as_rgba(frame)[oy:oy + h, ox:ox + w]
    return sheet


def sprite_sheet(frames: list[np.ndarray], columns: int | None = None) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """(sheet RGBA uint8, [(x, y, w, h) of each frame]) for one clip on a grid, left to right, top
    to bottom. All frames must have one size."""
    strips = [Strip("animation", list(frames))]
    plan = layout(strips, columns)  # full rows but the last: the size of the grid
    return render(strips, plan), [f.rect for f in plan.frames]

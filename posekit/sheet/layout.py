"""Where every frame goes: animations (clips x directions) -> one sheet and one `Layout` that
every writer (Aseprite JSON, Godot .tres, atlas JSON) reads, so all the files agree.

- A `Strip` is one animation in the sheet: a tag name, its frames (all one cell size), the pose
  of each frame in its pixels, whether it loops.
- `layout(strips, columns, trim)`: each strip starts a new row and wraps after `columns` frames
  (default: one strip, one row up to 8 frames, else a near-square grid; several strips, the
  longest strip's length, so each strip is one row). With `trim`, each frame keeps only its
  non-transparent box and the rows are packed shelf by shelf; the cell is still its source.
- The pivot of a frame is where the character stands: under the middle of the hips, on the
  contact line (the soles, `ground_line`), one line for every frame of every strip, so
  animations switch without a jump. Pivots are in the cell's pixel coordinates as engines read
  them (the cell spans 0..w, 0..h; pixel (i, j) covers i..i+1): a sprite drawn with its pivot on
  the floor stands on it, neither sunk in nor floating.
- Why one line and not each frame's own soles: engines place a sprite by its pivot, and many
  read one origin per sprite, not per frame (Godot's AnimatedSprite2D offset, a Unity sprite
  sliced on a grid); a pivot that follows each frame's soles would move the whole character by
  the method's frame-to-frame error (it bobs), and would pin a jump to the floor. So the pivot
  stays put, and the frames are made to meet it instead: `grounded` moves each transparent
  frame whose feet are on the ground down until its lowest sole is on the line (the lowest
  sole of the clips), the frames in the air along with their grounded neighbours.
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
    ground: float | None = None  # y of the ankles of a figure standing on the floor, in frame pixels
    # (where retargeting put the lower ankle of every grounded frame; the soles are below it)


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


SOLE_BELOW_ANKLE = 0.2   # of the shin (knee to ankle): the ankle joint is ~0.039 of stature above
# the floor barefoot and the shin ~0.246 (Drillis & Contini's segment proportions, as in Winter's
# "Biomechanics and Motor Control of Human Movement"): 0.16; a shoe's sole (~2 cm, ~0.012 of
# stature) makes it ~0.2. Used only where no alpha shows the sole.
GROUNDED = 0.25          # of the shin: a frame's lower ankle this close to the lowest is on the ground


def _feet(strips: list[Strip]):
    """(ankle line, shin, [[(depth or None, grounded) per frame] per strip]) or None when no pose
    shows an ankle: see `ground_line`. A frame's depth is how far its soles as drawn lie below
    its lower ankle (None without alpha, or where no sole is found)."""
    feet = [(f, p, max((a for a in (p["r_ankle"], p["l_ankle"]) if a is not None), key=lambda a: a[1]))
            for s in strips for f, p in zip(s.frames, s.poses) if p["r_ankle"] is not None or p["l_ankle"] is not None]
    if not feet:
        return None
    line = strips[0].ground if strips[0].ground is not None else max(float(a[1]) for _, _, a in feet)
    ankles = line + 0.5  # keypoints name pixel centres: to the pixel's edge
    shins = [math.dist(p[k][:2], p[a][:2]) for _, p, _ in feet for k, a in (("r_knee", "r_ankle"), ("l_knee", "l_ankle"))
             if p[k] is not None and p[a] is not None]
    heights = [b[3] - b[1] for _, p, _ in feet if (b := p.bbox()) is not None]
    shin = float(np.median(shins)) if shins else 0.25 * float(np.median(heights))
    transparent = feet[0][0].ndim == 3 and feet[0][0].shape[2] == 4 and shin > 0
    frames = []
    for s in strips:
        row = []
        for frame, pose in zip(s.frames, s.poses):
            shown = [a[:2] for a in (pose["r_ankle"], pose["l_ankle"]) if a is not None] if pose is not None else []
            if not shown:
                row.append((None, False))
                continue
            ay = max(y for _, y in shown)
            depth = None
            if transparent:  # under the lower ankle, across both feet: the lowest opaque row
                h, w = frame.shape[:2]
                x0 = max(0, int(min(x for x, _ in shown) - 0.6 * shin))
                x1 = min(w, int(max(x for x, _ in shown) + 0.6 * shin) + 1)
                y0 = min(h, max(0, int(ay)))
                rows = np.nonzero(frame[y0:, x0:x1, 3].any(axis=1))[0]
                if len(rows) and y0 + int(rows.max()) + 1 - (ay + 0.5) <= shin:  # further down: not the foot
                    depth = y0 + int(rows.max()) + 1 - (ay + 0.5)
            row.append((depth, ay + 0.5 >= ankles - GROUNDED * shin))
        frames.append(row)
    return ankles, shin, frames


def _sole_depth(feet) -> float | None:
    """How far below the ankles the soles reach in the grounded frames: the most of any of them."""
    depths = [d for row in feet[2] for d, on in row if on and d is not None]
    return max(depths) if depths else None


def ground_line(strips: list[Strip]) -> float | None:
    """The y the character stands on (the contact line, in cell pixels: the bottom edge of the
    soles), one for every frame of every strip. It starts from the ankle line, the strips'
    `ground` (where retargeting put the feet) or else the lowest ankle of any frame, but the
    ankles lie above the soles (when no pose shows an ankle: `ground` as it is, or None):

    - transparent frames: the soles as drawn. In each frame whose lower ankle is on the ground
      (within GROUNDED x the shin of the ankle line), the lowest opaque pixel below that ankle,
      across both feet and 0.6 shin to either side (the feet, not a hand or a stray pixel
      elsewhere); one more than a shin below the ankle (something else drawn under the feet)
      is not trusted. The contact line lies as far below the ankle line as the deepest of those
      soles lies below its frame's ankle: no grounded frame's feet reach below it, and
      `grounded` moves the others' down onto it.
    - otherwise (a background, or no sole found): the ankle line plus SOLE_BELOW_ANKLE x the
      shin, the ankle's usual height above the floor in proportion to the shin.

    The shin is the median knee-to-ankle distance over every pose (a quarter of the figure's
    height when no knee is seen)."""
    feet = _feet(strips)
    if feet is None:
        return strips[0].ground
    depth = _sole_depth(feet)
    return feet[0] + (depth if depth is not None else SOLE_BELOW_ANKLE * feet[1])


def grounded(strips: list[Strip]) -> list[Strip]:
    """Transparent strips with every grounded frame's feet on the contact line (`ground_line`),
    so that one pivot for every frame stands the character on the floor in each of them. The
    poses say where the feet are; the method draws the soles under them a little deeper in one
    frame than in the next (a foot drawn shorter or turned: a few % of the figure's height, the
    sprite would hover there and bob from frame to frame). Each frame whose feet are on the
    ground is moved down by what its soles lack of the deepest (so a run's feet, a few pixels
    up between strides as its poses have them, stay that far up); a frame in the air moves as
    its clip's grounded frames on either side of it do (in proportion to where it lies between
    them; around the loop for a looping clip), so a jump's arc keeps its shape. Whole pixels,
    never up (nothing leaves the cell's top), never further than the frame's empty rows at the
    bottom; the poses move with their frames. Frames with a background are returned as they are.
    The strips keep the ankle line it started from as their `ground`: without one (no
    retargeting), the lowest ankle of the moved poses would be another line, and the pivots
    would hang below the soles."""
    feet = _feet(strips)
    depth = _sole_depth(feet) if feet is not None else None
    if depth is None:
        return strips
    out = []
    for s, row in zip(strips, feet[2]):
        s = replace(s, ground=feet[0] - 0.5)
        known = [(i, depth - d) for i, (d, on) in enumerate(row) if on and d is not None]
        if not known:
            out.append(s)
            continue
        frames, poses = [], []
        for i, (frame, pose) in enumerate(zip(s.frames, s.poses)):
            drop = int(round(_between(i, known, len(row), s.loop)))
            rows = np.nonzero(frame[:, :, 3].any(axis=1))[0]
            drop = max(0, min(drop, frame.shape[0] - 1 - int(rows.max()) if len(rows) else 0))
            if drop:
                frame = np.concatenate([np.zeros_like(frame[:drop]), frame[:-drop]])
                pose = pose.cropped(0, -drop, *pose.size)
            frames.append(frame)
            poses.append(pose)
        out.append(replace(s, frames=frames, poses=poses))
    return out


def _between(i: int, known: list[tuple[int, float]], n: int, loop: bool) -> float:
    """The value at frame i of a clip of n frames, from (frame, value) pairs: theirs at those
    frames, linear between the nearest known frames before and after (around the loop when
    `loop`), else the nearest known one's."""
    at = dict(known)
    if i in at:
        return at[i]
    before = [(j, v) for j, v in known if j < i] or ([(j - n, v) for j, v in known] if loop else [])
    after = [(j, v) for j, v in known if j > i] or ([(j + n, v) for j, v in known] if loop else [])
    if not before or not after:
        return (before or after)[-1 if before else 0][1]
    (j0, v0), (j1, v1) = max(before), min(after)
    return v0 + (v1 - v0) * (i - j0) / (j1 - j0)


def pivot_of(pose, ground: float | None, cell: tuple[int, int]) -> tuple[float, float] | None:
    """The point the character stands on in this frame: under the middle of the hips (the cell's
    middle when they are not seen), on the contact line `ground`. In the cell's pixel coordinates
    (keypoints name pixel centres, so x is the hips' + 0.5): a mirrored frame's pivot is at
    cell width - x."""
    if ground is None:
        return None
    hips = [h for h in (pose["r_hip"], pose["l_hip"]) if h is not None] if pose is not None else []
    x = float(np.mean([h[0] for h in hips])) + 0.5 if hips else cell[0] / 2
    return round(x, 2), round(float(ground), 2)


def mirrored(strip: Strip) -> list[Strip]:
    """The strip facing right ("<name>_right", as it was made) and its left-facing twin
    ("<name>_left": frames and poses flipped left to right)."""
    return [replace(strip, name=f"{strip.name}_right"),
            replace(strip, name=f"{strip.name}_left", frames=[np.ascontiguousarray(f[:, ::-1]) for f in strip.frames],
                    poses=[p.flip() for p in strip.poses])]


CROP_MARGIN = 0.2  # of the figure's height, around the keypoints (hair above the eyes, hands, feet)
CELL_MARGIN = 2    # pixels of the finished cell between transparent frames' figure and the cell's edge


def figure_box(strips: list[Strip], cell: tuple[int | None, int | None] | None = None,
               margin: float = CELL_MARGIN) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the union of the figure over every frame of every strip: its keypoints
    plus CROP_MARGIN when frames have a background (within the frame, grown to the cell's shape
    where the frame has room, `widened`; the frame when neither is known); its opaque pixels
    when frames are transparent (frames with none left out), plus `margin` pixels of the cell
    the box will be scaled to fit (`cell` = (w, h), either None when free; None: not scaled), so
    the figure (and a pixel-art outline) stays inside the cell at any scale. That box may reach
    past the frame (`cropped` pads with transparent pixels)."""
    frames = [f for s in strips for f in s.frames]
    h, w = frames[0].shape[:2]
    if frames[0].ndim == 3 and frames[0].shape[2] == 4:
        shown = [f for f in frames if f[:, :, 3].any()] or frames  # an empty frame does not stretch the box
        boxes = [(x, y, x + bw, y + bh) for x, y, bw, bh in map(opaque_box, shown)]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        pad = cell_padding((x1 - x0, y1 - y0), cell, margin)
        return x0 - pad, y0 - pad, x1 + pad, y1 + pad
    boxes = [b for s in strips for p in s.poses if (b := p.bbox()) is not None]
    if not boxes:
        return 0, 0, w, h
    pad = CROP_MARGIN * (max(b[3] for b in boxes) - min(b[1] for b in boxes))
    x0, y0 = min(b[0] for b in boxes) - pad, min(b[1] for b in boxes) - pad
    x1, y1 = max(b[2] for b in boxes) + pad, max(b[3] for b in boxes) + pad
    box = max(0, int(x0)), max(0, int(y0)), min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
    return widened(box, cell, w, h) if cell is not None and None not in cell else box


def widened(box: tuple[int, int, int, int], cell: tuple[int, int], w: int, h: int) -> tuple[int, int, int, int]:
    """`box` grown about its centre to the aspect of `cell` (w, h) as far as the w x h frame
    reaches, kept inside it: a frame with a background scaled into a cell of another shape then
    shows more of the photo's own background, where the letterbox pads only past the photo's edge
    (its edge pixels repeated: streaks across a third of a square cell from a tall figure)."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    if bw <= 0 or bh <= 0:
        return box
    aspect = cell[0] / cell[1]
    if bw < bh * aspect:
        nw = min(w, round(bh * aspect))
        x0 = min(max(round((x0 + x1 - nw) / 2), 0), w - nw)
        x1 = x0 + nw
    else:
        nh = min(h, round(bw / aspect))
        y0 = min(max(round((y0 + y1 - nh) / 2), 0), h - nh)
        y1 = y0 + nh
    return x0, y0, x1, y1


def cell_padding(box: tuple[int, int], cell: tuple[int | None, int | None] | None, margin: float) -> int:
    """Source pixels to add on each side of a (w, h) box so that, once the padded box is scaled
    to fit `cell` (its limiting side), the padding is at least `margin` cell pixels: for a side
    of b source and c cell pixels, p = margin * b / (c - 2 margin) gives p * c / (b + 2p) = margin."""
    pads = [margin * b / (c - 2 * margin) for b, c in zip(box, cell or (None, None))
            if c is not None and c > 2 * margin]
    return int(math.ceil(max(pads, default=margin)))


def cropped(strips: list[Strip], cell: tuple[int | None, int | None] | None = None,
            margin: float = CELL_MARGIN) -> list[Strip]:
    """Every frame cut to one cell, `figure_box`: the same for every strip, so the ground line
    and the pivot stay where they are relative to the cell from one animation to the next."""
    x0, y0, x1, y1 = figure_box(strips, cell, margin)
    return [replace(s, frames=[cut(f, x0, y0, x1, y1) for f in s.frames],
                    poses=[p.cropped(x0, y0, x1 - x0, y1 - y0) for p in s.poses],
                    ground=None if s.ground is None else s.ground - y0) for s in strips]


def cut(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """frame[y0:y1, x0:x1], a copy, padded with zeros (transparent) where it reaches past the frame."""
    h, w = frame.shape[:2]
    part = frame[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    pads = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w))) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(part, pads) if any(any(p) for p in pads) else part.copy()


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

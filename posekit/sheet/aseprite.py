"""Aseprite's sprite-sheet JSON, which Phaser's `load.aseprite` and the Unity and Godot Aseprite
importers read: "json-hash" (frames keyed "0".."N-1") or "json-array" (a list, each with its
"filename"); durations in whole ms, each animation's from running totals (`frame_durations`:
12 frames at 12 fps last 1000 ms, not 12 x 83 = 996); a frameTags entry per animation (a clip that plays once gets
Aseprite's `"repeat": "1"`); meta.size = the sheet.

Trimmed frames say so: `frame` is the rectangle on the sheet, `spriteSourceSize` where it sits
in the untrimmed cell, `sourceSize` the cell. Where the pivot is known, each frame has a
TexturePacker-style `pivot` (0..1 of sourceSize, which Phaser reads as the frame's origin) and a
"pivot" slice carries it per frame in pixels, as Aseprite keeps pivots.
"""

from __future__ import annotations

from pathlib import Path

from posekit.images import save_image, write_json
from posekit.sheet.animation import frame_durations
from posekit.sheet.layout import Frame, Layout, Strip, Tag, layout, render


def durations(plan: Layout, fps: float) -> list[int]:
    """Milliseconds of every frame of `plan`: each tag's frames timed from the tag's first frame
    (`frame_durations`), so every animation lasts its frames / fps; a frame in no tag (none in
    what posekit lays out) as if it were a tag of its own."""
    ms = [frame_durations(1, fps)[0]] * len(plan.frames)
    for t in plan.tags:
        ms[t.start:t.end + 1] = frame_durations(t.end - t.start + 1, fps)
    return ms


def frame_entry(f: Frame, duration: int | None = None) -> dict:
    """One frame's rectangles (the keys Aseprite, TexturePacker and Phaser share), its pivot."""
    (x, y, w, h), (ox, oy), (cw, ch) = f.rect, f.offset, f.cell
    entry = {"frame": {"x": x, "y": y, "w": w, "h": h}, "rotated": False, "trimmed": f.trimmed,
             "spriteSourceSize": {"x": ox, "y": oy, "w": w, "h": h}, "sourceSize": {"w": cw, "h": ch}}
    if duration is not None:
        entry["duration"] = duration
    if f.pivot is not None:
        entry["pivot"] = {"x": round(f.pivot[0] / cw, 4), "y": round(f.pivot[1] / ch, 4)}
    return entry


def frame_tag(tag: Tag, direction: str = "forward") -> dict:
    entry = {"name": tag.name, "from": tag.start, "to": tag.end, "direction": direction}
    if not tag.loop:
        entry["repeat"] = "1"
    return entry


def pivot_slices(plan: Layout) -> list[dict]:
    if any(f.pivot is None for f in plan.frames):
        return []
    keys = [{"frame": i, "bounds": {"x": 0, "y": 0, "w": f.cell[0], "h": f.cell[1]},
             "pivot": {"x": round(f.pivot[0]), "y": round(f.pivot[1])}} for i, f in enumerate(plan.frames)]
    return [{"name": "pivot", "color": "#0000ffff", "keys": keys}]


def aseprite_data(plan: Layout, fps: float, image: str = "sheet.png", array: bool = False,
                  direction: str = "forward") -> dict:
    """The Aseprite JSON (hash, or array with `array`) of a sheet laid out as `plan`."""
    from posekit import __version__

    entries = [frame_entry(f, ms) for f, ms in zip(plan.frames, durations(plan, fps))]
    frames = [{"filename": str(i), **e} for i, e in enumerate(entries)] if array else \
        {str(i): e for i, e in enumerate(entries)}
    meta = {"app": "posekit", "version": __version__, "image": image, "format": "RGBA8888",
            "size": {"w": int(plan.size[0]), "h": int(plan.size[1])}, "scale": "1",
            "frameTags": [frame_tag(t, direction) for t in plan.tags], "layers": [],
            "slices": pivot_slices(plan)}
    return {"frames": frames, "meta": meta}


def aseprite_json(rects: list[tuple[int, int, int, int]], sheet_size: tuple[int, int], fps: float,
                  tag: str = "animation", image: str = "sheet.png", direction: str = "forward") -> dict:
    """Aseprite json-hash data for one clip whose frames sit at `rects` (sheet_size = (w, h))."""
    frames = tuple(Frame(r, (0, 0), (r[2], r[3]), None) for r in rects)
    plan = Layout(tuple(sheet_size), frames, (Tag(tag, 0, len(rects) - 1),))
    return aseprite_data(plan, fps, image, direction=direction)


def write_sheet(frames: list, png: str | Path, json_path: str | Path | None = None,
                columns: int | None = None, fps: float = 12, tag: str = "animation") -> tuple[Path, Path | None]:
    """Write one clip's sheet.png (and its Aseprite JSON beside it when json_path is given)."""
    strips = [Strip(tag, list(frames))]
    plan = layout(strips, columns)
    png = save_image(render(strips, plan), png)
    if json_path is not None:
        json_path = write_json(aseprite_data(plan, fps, image=Path(png).name), json_path)
    return png, json_path

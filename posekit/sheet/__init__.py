"""Frames -> the files animators and game engines read, all from one layout.

- layout.py: animations (`Strip`s: clips x directions) -> one `Layout` (rectangles, trim,
  pivots, tags) and the sheet image; `grid`, `sprite_sheet` for one clip.
- aseprite.py: Aseprite JSON, hash and array (Phaser `load.aseprite`, Unity/Godot importers).
- godot.py: a Godot 4 SpriteFrames .tres.   atlas.py: a TexturePacker-style JSON atlas.
- pixelart.py: cells scaled down to a shared palette, hard alpha, an optional outline.
- animation.py: GIF (one palette), WebP, MP4 previews.
"""

from posekit.sheet.animation import (ANIMATION_FORMATS, as_rgba, shared_palette, write_animation, write_gif,
                                     write_mp4, write_webp)
from posekit.sheet.aseprite import aseprite_data, aseprite_json, write_sheet
from posekit.sheet.layout import Layout, Strip, grid, layout, render, sprite_sheet

__all__ = ["ANIMATION_FORMATS", "Layout", "Strip", "as_rgba", "aseprite_data", "aseprite_json", "grid", "layout",
           "render", "shared_palette", "sprite_sheet", "write_animation", "write_gif", "write_mp4", "write_sheet",
           "write_webp"]

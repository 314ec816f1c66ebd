"""A Godot 4 `SpriteFrames` resource (.tres, text format 3) for an AnimatedSprite2D: one
animation per tag with its fps and loop flag, each frame an AtlasTexture region of the sheet
(a trimmed frame's margin puts it back where it sat in its cell, so frames do not jump) with
`filter_clip = true`: the cells are packed edge to edge, and without it Godot's default linear
filter samples the neighbouring cell's pixels along a region's border (a line of the next frame
at the sprite's edge, worse when scaled or placed between pixels).

    [gd_resource type="SpriteFrames" load_steps=N format=3]
    [ext_resource type="Texture2D" path="sheet.png" id="1_sheet"]
    [sub_resource type="AtlasTexture" id="AtlasTexture_0"]
    atlas = ExtResource("1_sheet")
    region = Rect2(x, y, w, h)
    filter_clip = true
    [resource]
    animations = [{"frames": [{"duration": 1.0, "texture": SubResource("AtlasTexture_0")}, ...],
                   "loop": true, "name": &"walk", "speed": 12.0}, ...]

The texture's path is relative ("sheet.png"): Godot's text loader reads it from the .tres's own
folder, so the pair works wherever it is copied into a project (`image_path` can name a
`res://` path instead).
"""

from __future__ import annotations

import json

from posekit.sheet.layout import Layout

TEXTURE_ID = "1_sheet"


def _float(v: float) -> str:
    return repr(float(v))


def sprite_frames(plan: Layout, fps: float, image_path: str = "sheet.png") -> str:
    """The .tres text of `plan`'s animations."""
    parts = [f'[gd_resource type="SpriteFrames" load_steps={len(plan.frames) + 2} format=3]', "",
             f'[ext_resource type="Texture2D" path={json.dumps(image_path)} id="{TEXTURE_ID}"]', ""]
    for i, f in enumerate(plan.frames):
        (x, y, w, h), (ox, oy), (cw, ch) = f.rect, f.offset, f.cell
        parts += [f'[sub_resource type="AtlasTexture" id="AtlasTexture_{i}"]',
                  f'atlas = ExtResource("{TEXTURE_ID}")', f"region = Rect2({x}, {y}, {w}, {h})"]
        if f.trimmed:
            parts.append(f"margin = Rect2({ox}, {oy}, {cw - w}, {ch - h})")
        parts += ["filter_clip = true", ""]
    animations = []
    for t in plan.tags:
        frames = ", ".join(f'{{"duration": 1.0, "texture": SubResource("AtlasTexture_{i}")}}'
                           for i in range(t.start, t.end + 1))
        animations.append(f'{{"frames": [{frames}], "loop": {"true" if t.loop else "false"}, '
                          f'"name": &{json.dumps(t.name)}, "speed": {_float(fps)}}}')
    parts += ["[resource]", "animations = [" + ", ".join(animations) + "]", ""]
    return "\n".join(parts)

"""A TexturePacker-style JSON atlas (JSON hash), what Phaser's `load.atlas` and PixiJS's
`Assets.load` / `Spritesheet` read: frames keyed "<tag>_<nnn>" with their rectangles, trim and
pivot (0..1 of sourceSize, Phaser's origin), `animations` (tag -> frame keys, PixiJS), and meta
(image, size, scale). Frame rates and loops are not part of this format: they live in the game.
"""

from __future__ import annotations

from posekit.sheet.aseprite import frame_entry
from posekit.sheet.layout import Layout


def frame_names(plan: Layout) -> list[str]:
    """The key of each frame: its tag and its index in the tag ("walk_left_003")."""
    names = [""] * len(plan.frames)
    for t in plan.tags:
        digits = max(3, len(str(t.end - t.start)))
        for i in range(t.start, t.end + 1):
            names[i] = f"{t.name}_{i - t.start:0{digits}d}"
    return names


def atlas_data(plan: Layout, image: str = "sheet.png") -> dict:
    from posekit import __version__

    names = frame_names(plan)
    return {"frames": {n: frame_entry(f) for n, f in zip(names, plan.frames)},
            "animations": {t.name: names[t.start:t.end + 1] for t in plan.tags},
            "meta": {"app": "posekit", "version": __version__, "image": image, "format": "RGBA8888",
                     "size": {"w": int(plan.size[0]), "h": int(plan.size[1])}, "scale": "1"}}

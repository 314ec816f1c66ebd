"""Character sheets: several clips, both directions, trim, pivots, engine files, pixel art.
Every file written is read back and checked against the sheet PNG and the format's rules."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image, ImageSequence

from conftest import REPO
from posekit.pose.pose import Pose
from posekit.sheet import Strip, aseprite_data, layout, render
from posekit.sheet.atlas import atlas_data
from posekit.sheet.godot import sprite_frames
from posekit.sheet.layout import SOLE_BELOW_ANKLE, cropped, mirrored
from posekit.sheet.pixelart import pixelate

FIGURE = REPO / "examples" / "figure.png"
CLIPS = ["idle", "walk", "run", "jump"]
TAGS = [f"{c}_{d}" for c in CLIPS for d in ("right", "left")]


# -- readers: each file checked against its format's rules -----------------------------------------
def read_tres(text: str, texture_size: tuple[int, int]) -> dict:
    """Parse a Godot 4 SpriteFrames .tres (text format 3) strictly enough to catch what Godot
    refuses: the header, one Texture2D ext_resource, AtlasTextures whose atlas is it and whose
    regions lie inside the texture, and [resource] animations whose textures all exist.
    Returns {animation name: (frames as (x, y, w, h, margin), loop, speed)}."""
    sections = re.split(r"\n(?=\[)", text.strip())
    header = re.fullmatch(r'\[gd_resource type="SpriteFrames" load_steps=(\d+) format=3\]\s*', sections[0])
    assert header, sections[0]
    ext = re.fullmatch(r'\[ext_resource type="Texture2D" path="([^"]+)" id="([^"]+)"\]\s*', sections[1])
    assert ext, sections[1]
    subs = {}
    for section in sections[2:-1]:
        head, *props = section.strip().splitlines()
        sub_id = re.fullmatch(r'\[sub_resource type="AtlasTexture" id="([^"]+)"\]', head).group(1)
        values = dict(line.split(" = ", 1) for line in props)
        assert values.pop("atlas") == f'ExtResource("{ext.group(2)}")'
        x, y, w, h = map(float, re.fullmatch(r"Rect2\(([^)]*)\)", values.pop("region")).group(1).split(","))
        assert 0 <= x and 0 <= y and w > 0 and h > 0
        assert x + w <= texture_size[0] and y + h <= texture_size[1]
        margin = tuple(map(float, re.fullmatch(r"Rect2\(([^)]*)\)", values.pop("margin")).group(1).split(","))) \
            if "margin" in values else (0, 0, 0, 0)
        assert values.pop("filter_clip") == "true"  # cells packed edge to edge: no bleeding from the next
        assert not values, values  # nothing else
        subs[sub_id] = (x, y, w, h, margin)
    assert int(header.group(1)) == len(subs) + 2  # the resources + the resource itself
    assert sections[-1].startswith("[resource]\nanimations = [")
    value = sections[-1].split(" = ", 1)[1]
    as_json = re.sub(r'SubResource\("([^"]+)"\)', r'"\1"', value).replace('&"', '"')
    animations = {}
    for a in json.loads(as_json):
        assert set(a) == {"frames", "loop", "name", "speed"} and a["speed"] > 0
        assert all(set(f) == {"duration", "texture"} and f["duration"] > 0 for f in a["frames"])
        animations[a["name"]] = ([subs[f["texture"]] for f in a["frames"]], a["loop"], a["speed"])
    return animations


def check_frames_in_sheet(frames: list[dict], sheet: np.ndarray, cells: dict) -> None:
    """Each frame's rectangle inside the sheet, its trim consistent, and its pixels those of the
    untrimmed cell (`cells`: index -> the frame image written to frames/)."""
    for i, f in enumerate(frames):
        r, s, src = f["frame"], f["spriteSourceSize"], f["sourceSize"]
        assert r["x"] + r["w"] <= sheet.shape[1] and r["y"] + r["h"] <= sheet.shape[0]
        assert (r["w"], r["h"]) == (s["w"], s["h"]) and s["x"] + s["w"] <= src["w"] and s["y"] + s["h"] <= src["h"]
        assert f["trimmed"] == ((s["w"], s["h"]) != (src["w"], src["h"]))
        if i in cells:
            cell = cells[i]
            assert cell.shape[:2] == (src["h"], src["w"])
            part = sheet[r["y"]:r["y"] + r["h"], r["x"]:r["x"] + r["w"]]
            assert np.array_equal(part, cell[s["y"]:s["y"] + s["h"], s["x"]:s["x"] + s["w"]])
            outside = cell[:, :, 3].copy()
            outside[s["y"]:s["y"] + s["h"], s["x"]:s["x"] + s["w"]] = 0
            assert outside.max() == 0  # trimming dropped only transparent pixels


# -- the library, on small synthetic strips ---------------------------------------------------------
def figure_strip(name, n, x=20, h=60, w=40, feet=50, loop=True):
    """n RGBA frames of a w x h cell with a box 'figure' standing on y=feet, and its poses."""
    frames, poses = [], []
    for i in range(n):
        f = np.zeros((h, w, 4), np.uint8)
        f[10 + i:feet + 1, x - 5:x + 5 + i] = (200, 40 + 30 * i, 90, 255)
        frames.append(f)
        xy = np.tile([float(x), 30.0], (18, 1))
        xy[10] = (x - 3, feet)  # r_ankle
        xy[13] = (x + 3, feet - 2 * i)  # l_ankle, lifted
        xy[8], xy[11] = (x - 2, 35), (x + 2, 35)  # hips
        poses.append(Pose.from_xy(xy, w, h))
    return Strip(name, frames, poses, loop)


def test_layout_rows_tags_and_pivots():
    strips = [figure_strip("walk", 3), figure_strip("jump", 5, loop=False)]
    plan = layout(strips)
    assert plan.size == (5 * 40, 2 * 60)  # each strip one row, as wide as the longest
    assert [(t.name, t.start, t.end, t.loop) for t in plan.tags] == [("walk", 0, 2, True), ("jump", 3, 7, False)]
    assert plan.frames[3].rect == (0, 60, 40, 60)
    # under the hips (pixel centres 18 and 22: x 20.5 in the cell's coordinates), on the soles:
    # the bottom edge of the lowest opaque row (50), as engines place a pivot
    assert {f.pivot for f in plan.frames} == {(20.5, 51.0)}
    data = aseprite_data(plan, fps=10)
    assert data["meta"]["frameTags"][1] == {"name": "jump", "from": 3, "to": 7, "direction": "forward", "repeat": "1"}
    assert data["frames"]["0"]["pivot"] == {"x": round(20.5 / 40, 4), "y": round(51 / 60, 4)}
    keys = data["meta"]["slices"][0]["keys"]
    assert len(keys) == 8 and keys[7] == {"frame": 7, "bounds": {"x": 0, "y": 0, "w": 40, "h": 60},
                                          "pivot": {"x": 20, "y": 51}}
    assert layout(strips, columns=2).size == (80, 5 * 60)  # wrapped: 2 + 3 rows


def test_trim_packs_opaque_boxes_and_keeps_their_place():
    strips = [figure_strip("idle", 4)]
    plan = layout(strips, trim=True)
    sheet = render(strips, plan)
    assert plan.size[1] == 41 and plan.size[0] == sum(10 + i for i in range(4))
    data = aseprite_data(plan, fps=12)
    check_frames_in_sheet(list(data["frames"].values()), sheet, dict(enumerate(strips[0].frames)))
    assert data["frames"]["2"]["spriteSourceSize"] == {"x": 15, "y": 12, "w": 12, "h": 39}
    assert data["frames"]["2"]["trimmed"] is True


def test_mirror_and_crop_keep_the_feet_on_one_line():
    walk = figure_strip("walk", 3, x=12, w=60)
    twins = mirrored(walk)
    assert [t.name for t in twins] == ["walk_right", "walk_left"]
    assert np.array_equal(twins[1].frames[0], walk.frames[0][:, ::-1])
    assert twins[1].poses[0]["l_ankle"][0] == pytest.approx(60 - 1 - walk.poses[0]["r_ankle"][0])
    cells = cropped(twins + [figure_strip("idle", 2, x=30, w=60)])
    sizes = {f.shape for s in cells for f in s.frames}
    assert len(sizes) == 1  # one cell for every clip and direction
    h, w = sizes.pop()[:2]
    assert w < 60 and h <= 60
    plan = layout(cells)
    assert len({f.pivot[1] for f in plan.frames}) == 1  # the ground line, the same in every frame
    for s in cells:  # and that is where the feet are: the bottom edge of their lowest row
        for f, p in zip(s.frames, s.poses):
            assert np.nonzero(f[:, :, 3])[0].max() + 1 == pytest.approx(plan.frames[0].pivot[1])
            assert max(p["r_ankle"][1], p["l_ankle"][1]) + 1 == pytest.approx(plan.frames[0].pivot[1])


def test_godot_and_atlas_agree_with_the_aseprite_json():
    strips = [figure_strip("walk", 3), figure_strip("jump", 2, loop=False)]
    plan = layout(strips, trim=True)
    godot = read_tres(sprite_frames(plan, fps=8), plan.size)
    assert list(godot) == ["walk", "jump"] and godot["walk"][1:] == (True, 8.0) and godot["jump"][1] is False
    aseprite = aseprite_data(plan, fps=8, array=True)["frames"]
    atlas = atlas_data(plan)
    assert atlas["animations"] == {"walk": ["walk_000", "walk_001", "walk_002"], "jump": ["jump_000", "jump_001"]}
    flat = godot["walk"][0] + godot["jump"][0]
    for (x, y, w, h, margin), a, key in zip(flat, aseprite, [k for v in atlas["animations"].values() for k in v]):
        r, s, src = a["frame"], a["spriteSourceSize"], a["sourceSize"]
        assert (x, y, w, h) == (r["x"], r["y"], r["w"], r["h"])
        assert margin == (s["x"], s["y"], src["w"] - s["w"], src["h"] - s["h"])  # Godot pads back to the cell
        assert {k: atlas["frames"][key][k] for k in ("frame", "spriteSourceSize", "sourceSize", "pivot")} == \
            {k: a[k] for k in ("frame", "spriteSourceSize", "sourceSize", "pivot")}
    assert aseprite[0]["filename"] == "0" and atlas["meta"]["size"] == {"w": plan.size[0], "h": plan.size[1]}


def test_pixel_art_one_palette_hard_alpha_outline():
    strips = [figure_strip("walk", 3), figure_strip("run", 3, x=18)]
    for s in strips:  # smooth gradients: far more than 6 colours to start with
        for f in s.frames:
            f[:, :, 1] = np.linspace(0, 255, f.shape[1], dtype=np.uint8)[None]
    art = pixelate(strips, colours=6, size=(20, 30), outline=True)
    frames = [f for s in art for f in s.frames]
    assert {f.shape for f in frames} == {(30, 20, 4)}
    assert set(np.unique(np.stack(frames)[..., 3])) <= {0, 255}
    colours = {tuple(c) for f in frames for c in f[f[:, :, 3] > 0][:, :3]}
    assert 2 <= len(colours) <= 6
    dark = min(colours, key=lambda c: sum(map(int, c)))
    for f, src in zip(frames, [f for s in strips for f in s.frames]):
        solid = f[:, :, 3] > 0
        edge = solid & ~np.pad(solid, 1)[2:, 1:-1] | solid & ~np.pad(solid, 1)[:-2, 1:-1]
        assert all(tuple(c) == dark for c in f[edge][:, :3])  # the outline
    assert art[0].poses[0].size == (20, 30)


def test_pixel_art_one_flat_colour_is_one_palette_entry_in_every_frame():
    """A big red shirt of slightly varying red (the photo's grain, other in every frame) beside
    a few other colours: median cut splits it into near-identical reds and the shirt flipped
    between them from frame to frame. Now one entry, the same in every frame, and no two entries
    of the palette within a few levels of each other."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(6):
        f = np.zeros((60, 40, 4), np.uint8)
        f[..., 3] = 255
        f[:40, :, :3] = np.clip(np.array([199, 40, 45]) + rng.normal(0, 1.5, (40, 40, 3)), 0, 255)  # the shirt
        f[40:, :20, :3] = (40, 67, 144)
        f[40:, 20:, :3] = (230, 200, 170)
        f[55:, :, :3] = np.linspace(0, 255, 40, dtype=np.uint8)[:, None]  # a gradient: colours to spare
        frames.append(f)
    strip = Strip("idle", frames, [Pose.empty(40, 60)] * 6)
    art = pixelate([strip], colours=32, size=(40, 60))[0].frames
    palette = np.unique(np.concatenate([f[..., :3].reshape(-1, 3) for f in art]), axis=0).astype(float)
    gaps = np.sqrt(((palette[:, None] - palette[None]) ** 2).sum(-1)) + np.eye(len(palette)) * 1e9
    assert gaps.min() >= 8
    shirts = {tuple(c) for f in art for c in f[:40, :, :3].reshape(-1, 3)}
    assert len(shirts) == 1, shirts


def shod_strip(n=4, h=120, w=60, ankle=100, sole=110, ground=None):
    """A figure whose feet reach `sole` (the last opaque row is sole - 1), well below its ankles,
    the second frame in the air (8 px up); knees 30 px above the ankles."""
    frames, poses = [], []
    for i in range(n):
        lift = 8 if i == 1 else 0
        f = np.zeros((h, w, 4), np.uint8)
        f[20 - lift:ankle - lift, 25:35] = (200, 40, 90, 255)   # body and legs
        f[ankle - lift:sole - lift, 22:38] = (60, 30, 20, 255)  # shoes
        f[115, 2:6] = (200, 40, 90, 255)  # something low beside the feet (a hand, a prop): not a sole
        frames.append(f)
        xy = np.tile([30.0, 40.0], (18, 1))
        xy[10], xy[13] = (27, ankle - lift), (33, ankle - lift)  # ankles
        xy[9], xy[12] = (27, ankle - lift - 30), (33, ankle - lift - 30)  # knees
        xy[8], xy[11] = (27, 60 - lift), (33, 60 - lift)  # hips
        poses.append(Pose.from_xy(xy, w, h))
    return Strip("walk", frames, poses, ground=ground)


def test_pivot_on_the_soles_not_the_ankles():
    """A sprite drawn with its pivot on the floor stands on it: the pivot is the soles' bottom
    edge (was the ankles' line, 10 px up: the sprite sank 10 px into the floor)."""
    for ground in (None, 100.0):  # from the poses, or the photo's ankle line the pipeline gives
        plan = layout([shod_strip(ground=ground)])
        assert {f.pivot[1] for f in plan.frames} == {110.0}
    # with a background no alpha shows the soles: the ankles plus SOLE_BELOW_ANKLE of the shin
    opaque = shod_strip()
    opaque.frames = [f[:, :, :3].copy() for f in opaque.frames]
    plan = layout([opaque])
    assert plan.frames[0].pivot[1] == pytest.approx(100.5 + SOLE_BELOW_ANKLE * 30, abs=0.01)
    # something drawn under the feet further down than a shin (a shadow, a stray blob) is not
    # taken for the soles
    far = shod_strip(h=200)
    for f in far.frames:
        f[190:, 25:35, 3] = 255  # 90 px under the ankles: 3 shins
    assert layout([far]).frames[0].pivot[1] == pytest.approx(100.5 + SOLE_BELOW_ANKLE * 30, abs=0.01)


def off_centre_strip(n=3, w=240, h=160, x=200):
    """A photo-wide transparent strip with the figure near its right edge."""
    s = figure_strip("walk", n, x=x, h=h, w=w, feet=140)
    for f in s.frames:
        f[30:141, x - 6:x + 8, 3] = 255
        f[30:141, x - 6:x + 8, :3] = (90, 120, 200)
    return s


def test_mirror_frames_the_twin_like_its_clip():
    """--mirror with the subject off the photo's centre: the same cell and framing as without
    --mirror, the twin the exact mirror image, pivots mirrored (it was one cell around both
    positions: the figure shrank and sat at the cell's right in _right, at its left in _left)."""
    from posekit.pipeline import character_strips

    size = (32, 64)
    plain = character_strips([off_centre_strip()], size, mirror=False, pixel_art=None, outline=False)
    right, left = character_strips([off_centre_strip()], size, mirror=True, pixel_art=None, outline=False)
    assert (right.name, left.name) == ("walk_right", "walk_left")
    for a, b, c in zip(plain[0].frames, right.frames, left.frames):
        assert np.array_equal(a, b) and np.array_equal(c, b[:, ::-1])
        ys, xs = np.nonzero(b[:, :, 3])
        assert ys.max() - ys.min() + 1 >= 0.85 * size[1]  # the figure fills the cell's height
        assert abs((xs.min() + xs.max() + 1) / 2 - size[0] / 2) < 0.2 * size[0]  # centred
    plan = layout([right, left])
    n = len(right.frames)
    for r, l in zip(plan.frames[:n], plan.frames[n:]):
        assert l.pivot[0] == pytest.approx(size[0] - r.pivot[0], abs=0.02) and l.pivot[1] == r.pivot[1]


def test_a_background_fills_a_cell_of_another_shape_with_the_photo():
    """Frames with the photo's background (a tall figure in scikit-image's coffee photo) cut to a
    square --size: the cut was the figure's own tall box, and the letterbox repeated its edge
    columns across 37% of the cell (streaks) though the photo has background there. The cut is
    now the cell's shape where the photo reaches, centred on the figure: no column repeated, the
    figure still whole and centred; past the photo's edge, the padding remains."""
    from skimage import data

    from posekit.pipeline import character_strips

    photo = data.coffee()  # 400 x 600
    xy = np.full((18, 2), np.nan)
    xy[0], xy[1], xy[8], xy[11], xy[10], xy[13] = (300, 100), (300, 150), (290, 250), (310, 250), (290, 330), (310, 330)
    strip = Strip("idle", [photo.copy(), photo.copy()], [Pose.from_xy(xy, 600, 400)] * 2)
    for size in ((128, 128), (96, 64)):
        cell = character_strips([strip], size, mirror=False, pixel_art=None, outline=False)[0]
        f = cell.frames[0].astype(np.int16)
        assert f.shape[:2] == size[::-1]
        repeated = (np.abs(np.diff(f, axis=1)).max(axis=(0, 2)) == 0).sum() + (np.abs(np.diff(f, axis=0)).max(axis=(1, 2)) == 0).sum()
        assert repeated == 0, (size, repeated)  # was 83 rows and columns at 128 x 128
        x0, y0, x1, y1 = cell.poses[0].bbox()
        assert 0 <= x0 and x1 <= size[0] and 0 <= y0 and y1 <= size[1]
        assert abs((x0 + x1) / 2 - size[0] / 2) < 2
    # the figure at the photo's left edge: the cut stops at it, the letterbox pads the rest
    left = Strip("idle", [photo.copy()], [Pose.from_xy(xy - [280, 0], 600, 400)])
    f = character_strips([left], (128, 128), mirror=False, pixel_art=None, outline=False)[0].frames[0]
    assert f.shape[:2] == (128, 128)


@pytest.mark.parametrize("size", [None, (24, 48)])
def test_pixel_art_figure_and_outline_inside_every_cell(size):
    """Pixel art scaled far down keeps the whole figure and its outline inside the cell: the
    margin is counted in the cell's pixels (2 source pixels became a third of one, and hands at
    the top, feet at the bottom were cut flat with no outline)."""
    from posekit.pipeline import character_strips

    s = figure_strip("jump", 4, x=150, h=600, w=300, feet=560)
    for i, f in enumerate(s.frames):
        f[8 + 20 * i:561, 120:180 + 10 * i] = (200, 60, 90, 255)  # tall: up to 8 px from the frame's top
    for outline in (True, False):
        art = character_strips([s], size, mirror=True, pixel_art=8, outline=outline)
        for strip in art:
            for f in strip.frames:
                a = f[:, :, 3] > 0
                assert not (a[0].any() or a[-1].any() or a[:, 0].any() or a[:, -1].any())
                if outline:  # the outline closes the figure at the top and the bottom
                    top, bottom = np.nonzero(a.any(1))[0][[0, -1]]
                    dark = f[a][:, :3].astype(int).sum(1).min()
                    assert (f[top][a[top]][:, :3].astype(int).sum(1) == dark).all()
                    assert (f[bottom][a[bottom]][:, :3].astype(int).sum(1) == dark).all()


# -- the command, end to end ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def character(tmp_path_factory):
    """One character run: 4 clips, both directions, trimmed, every engine file."""
    from conftest import posekit_exe
    import subprocess

    out = tmp_path_factory.mktemp("character")
    proc = subprocess.run([posekit_exe(), "animate", str(FIGURE), "--poses", "idle,walk", "--poses", "run,jump",
                           "--frames", "3", "--mirror", "--trim", "--background", "transparent", "--export",
                           "array,godot", "--export", "atlas", "--fps", "10", "--out", str(out), "--no-evaluate",
                           "--json"], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def written_frames(out, tags, n):
    return {i * n + j: np.asarray(Image.open(out / "frames" / f"{tag}_{j:03d}.png"))
            for i, tag in enumerate(tags) for j in range(n)}


def test_character_sheet_aseprite_hash_and_array(character):
    out, summary = character
    assert [c["name"] for c in summary["clips"]] == TAGS and summary["frames"] == 24
    assert summary["clips"][-1]["loop"] is False and summary["clips"][0]["loop"] is True
    sheet = np.asarray(Image.open(out / "sheet.png"))
    data = json.loads((out / "sheet.json").read_text())
    array = json.loads((out / "sheet_array.json").read_text())
    assert data["meta"]["size"] == {"w": sheet.shape[1], "h": sheet.shape[0]} == array["meta"]["size"]
    assert [(t["name"], t["from"], t["to"]) for t in data["meta"]["frameTags"]] == \
        [(tag, 3 * i, 3 * i + 2) for i, tag in enumerate(TAGS)]
    assert list(data["frames"]) == [str(i) for i in range(24)]
    assert [f.pop("filename") for f in array["frames"]] == list(data["frames"])
    assert array["frames"] == list(data["frames"].values()) and array["meta"] == data["meta"]
    check_frames_in_sheet(list(data["frames"].values()), sheet, written_frames(out, TAGS, 3))
    assert {f["duration"] for f in data["frames"].values()} == {100}
    assert len({(f["sourceSize"]["w"], f["sourceSize"]["h"]) for f in data["frames"].values()}) == 1
    assert summary["size"] == [data["frames"]["0"]["sourceSize"]["w"], data["frames"]["0"]["sourceSize"]["h"]]


def test_character_feet_on_one_pivot_line(character):
    """The pivot's y is one line in every frame of every clip and direction, and that is where
    the feet are: the soles of every standing frame end on it (the bottom edge of their lowest
    opaque row), the ankles of every grounded pose written a little above it."""
    from posekit.pose.formats import read_openpose_json

    out, summary = character
    data = json.loads((out / "sheet.json").read_text())
    w, h = summary["size"]
    pivots = [(f["pivot"]["x"] * w, f["pivot"]["y"] * h) for f in data["frames"].values()]
    assert max(p[1] for p in pivots) - min(p[1] for p in pivots) < 0.01
    ground = pivots[0][1]
    assert 0.8 * h < ground < h
    for tag in ("idle_right", "idle_left", "walk_right", "walk_left"):
        for j in range(3):
            pose = read_openpose_json(out / "poses" / f"{tag}_{j:03d}_keypoints.json")[0]
            assert pose.size == (w, h)
            assert 0 < ground - max(pose["r_ankle"][1], pose["l_ankle"][1]) < 0.1 * h
            if tag.startswith("idle"):  # both feet down
                alpha = np.asarray(Image.open(out / "frames" / f"{tag}_{j:03d}.png"))[:, :, 3]
                assert abs(np.nonzero(alpha.any(1))[0].max() + 1 - ground) <= 1
    x_right = [p[0] for p in pivots[:3]]  # idle_right
    x_left = [p[0] for p in pivots[3:6]]  # its twin: the same frames mirrored
    assert np.allclose(x_left, [w - x for x in x_right], atol=0.01)


def test_character_godot_resource_and_atlas(character):
    out, _ = character
    sheet = Image.open(out / "sheet.png")
    godot = read_tres((out / "sheet.tres").read_text(), sheet.size)
    assert list(godot) == TAGS
    assert all(speed == 10.0 and len(frames) == 3 for frames, _, speed in godot.values())
    assert [loop for _, loop, _ in godot.values()] == [True] * 6 + [False] * 2
    assert '[ext_resource type="Texture2D" path="sheet.png"' in (out / "sheet.tres").read_text()
    atlas = json.loads((out / "atlas.json").read_text())
    assert list(atlas["animations"]) == TAGS and len(atlas["frames"]) == 24
    assert atlas["meta"]["image"] == "sheet.png" and atlas["meta"]["size"] == {"w": sheet.size[0], "h": sheet.size[1]}
    aseprite = json.loads((out / "sheet.json").read_text())["frames"]
    for i, key in enumerate(k for v in atlas["animations"].values() for k in v):
        assert atlas["frames"][key]["frame"] == aseprite[str(i)]["frame"]
        assert 0 <= atlas["frames"][key]["pivot"]["x"] <= 1 and 0 <= atlas["frames"][key]["pivot"]["y"] <= 1


def test_character_gif_per_clip(character):
    out, _ = character
    assert sorted(p.name for p in (out / "animations").iterdir()) == sorted(f"{t}.gif" for t in TAGS)
    for tag in TAGS:  # one GIF frame per sheet frame; the jump plays once as its tag does, the cycles loop
        gif = Image.open(out / "animations" / f"{tag}.gif")
        assert gif.n_frames == 3 and gif.info.get("loop") == (None if tag.startswith("jump") else 0), tag
    frames = written_frames(out, ["walk_left"], 3)
    gif = Image.open(out / "animations" / "walk_left.gif")
    assert gif.n_frames == 3 and gif.info["loop"] == 0
    jump = Image.open(out / "animations" / "jump_left.gif")  # a one-shot plays once, as its tag and Godot say
    assert jump.n_frames == 3 and "loop" not in jump.info
    for j, g in enumerate(ImageSequence.Iterator(gif)):
        rgba = np.asarray(g.convert("RGBA"))
        assert rgba.shape == frames[j].shape
        assert np.array_equal(rgba[:, :, 3] > 0, frames[j][:, :, 3] >= 128)


def test_pixel_art_character_one_palette_in_sheet_and_gifs(run_posekit, tmp_path):
    out = tmp_path / "pixel"
    proc = run_posekit("animate", FIGURE, "--poses", "walk,jump", "--frames", "2", "--frames", "3", "--mirror",
                       "--pixel-art", "12", "--outline", "--background", "transparent", "--out", out,
                       "--no-evaluate", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["size"][1] == 64 and [c["frames"] for c in summary["clips"]] == [2, 2, 3, 3]
    sheet = np.asarray(Image.open(out / "sheet.png"))
    assert set(np.unique(sheet[:, :, 3])) == {0, 255}
    palette = {tuple(c) for c in sheet[sheet[:, :, 3] > 0][:, :3]}
    assert 4 <= len(palette) <= 12
    for cell in (out / "frames").iterdir():  # the figure and its outline inside every cell
        a = np.asarray(Image.open(cell))[:, :, 3] > 0
        assert not (a[0].any() or a[-1].any() or a[:, 0].any() or a[:, -1].any()), cell.name
    for tag in ("walk_right", "walk_left", "jump_right", "jump_left"):
        for g in ImageSequence.Iterator(Image.open(out / "animations" / f"{tag}.gif")):
            rgba = np.asarray(g.convert("RGBA"))
            assert {tuple(c) for c in rgba[rgba[:, :, 3] > 0][:, :3]} <= palette  # no colour of its own


def test_frames_per_clip_and_a_single_rerun_cleans_up(run_posekit, tmp_path):
    out = tmp_path / "o"
    proc = run_posekit("animate", FIGURE, "--poses", "walk:side", "-p", "walk", "--frames", "2", "--frames", "4",
                       "--out", out, "--no-evaluate")
    assert proc.returncode == 0, proc.stderr
    assert "2 animations: walk_side, walk" in proc.stderr
    tags = json.loads((out / "sheet.json").read_text())["meta"]["frameTags"]
    assert [(t["name"], t["from"], t["to"]) for t in tags] == [("walk_side", 0, 1), ("walk", 2, 5)]
    cell = np.asarray(Image.open(out / "frames" / "walk_side_000.png")).shape
    assert cell == np.asarray(Image.open(out / "frames" / "walk_003.png")).shape and cell[:2] != (512, 384)
    proc = run_posekit("animate", FIGURE, "--poses", "walk", "--frames", "2", "--out", out, "--no-evaluate")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "animation.gif", "frames", "poses", "sheet.json", "sheet.png"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["frame_000.png", "frame_001.png"]


@pytest.mark.parametrize("args, flag", [
    (["--poses", "run", "--frames", "2", "--frames", "3", "--frames", "4"], "--frames"),
    (["--export", "unity"], "--export"),
    (["--pixel-art", "1"], "--pixel-art"),
    (["--outline"], "--outline"),
    (["--pixel-art", "8", "--outline"], "--outline"),  # frames with a background have no outline to draw
])
def test_character_usage_errors(run_posekit, tmp_path, args, flag):
    out = tmp_path / "x"
    proc = run_posekit("animate", FIGURE, "--poses", "walk", "--out", out, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()

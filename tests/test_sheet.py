"""Sprite sheets, Aseprite JSON, GIF/WebP/MP4: read back what was written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageSequence

from posekit.errors import PosekitError
from posekit.sheet import Strip, aseprite_data, aseprite_json, grid, layout, sprite_sheet, write_animation, write_sheet
from posekit.sheet.animation import frame_durations, gif_durations


def frames_rgb(n=5, h=30, w=41):
    # each frame a distinct colour, with a marker pixel so placement errors show
    out = []
    for i in range(n):
        f = np.full((h, w, 3), (i * 40, 255 - i * 40, 100), np.uint8)
        f[0, 0] = (255, 255, 255)
        out.append(f)
    return out


def test_grid_defaults_and_columns():
    assert grid(5) == (5, 1)
    assert grid(8) == (8, 1)
    assert grid(12) == (4, 3)
    assert grid(7, columns=3) == (3, 3)
    assert grid(3, columns=10) == (3, 1)
    with pytest.raises(PosekitError):
        grid(0)


def test_sprite_sheet_places_frames_row_major():
    frames = frames_rgb(5)
    sheet, rects = sprite_sheet(frames, columns=2)
    assert sheet.shape == (3 * 30, 2 * 41, 4)
    assert rects[3] == (41, 30, 41, 30)
    for f, (x, y, w, h) in zip(frames, rects):
        assert np.array_equal(sheet[y:y + h, x:x + w, :3], f)
        assert (sheet[y:y + h, x:x + w, 3] == 255).all()
    assert (sheet[60:, 41:, 3] == 0).all()  # the empty sixth cell is transparent


def test_sprite_sheet_rejects_mixed_sizes():
    with pytest.raises(PosekitError, match="differ in size"):
        sprite_sheet([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])


def test_aseprite_json_hash_format(tmp_path):
    png, js = write_sheet(frames_rgb(5), tmp_path / "sheet.png", tmp_path / "sheet.json", columns=3, fps=8, tag="walk")
    data = json.loads(js.read_text())
    sheet = Image.open(png)
    assert sheet.mode == "RGBA" and sheet.size == (3 * 41, 2 * 30)
    assert list(data["frames"]) == ["0", "1", "2", "3", "4"]
    f4 = data["frames"]["4"]
    assert f4 == {"frame": {"x": 41, "y": 30, "w": 41, "h": 30}, "rotated": False, "trimmed": False,
                  "spriteSourceSize": {"x": 0, "y": 0, "w": 41, "h": 30}, "sourceSize": {"w": 41, "h": 30},
                  "duration": 125}
    meta = data["meta"]
    assert meta["image"] == "sheet.png" and meta["format"] == "RGBA8888" and meta["scale"] == "1"
    assert meta["size"] == {"w": sheet.size[0], "h": sheet.size[1]}
    assert meta["frameTags"] == [{"name": "walk", "from": 0, "to": 4, "direction": "forward"}]
    assert meta["layers"] == [] and meta["slices"] == []
    # every frame rectangle lies inside the sheet, as Phaser's loader expects
    for f in data["frames"].values():
        r = f["frame"]
        assert r["x"] + r["w"] <= meta["size"]["w"] and r["y"] + r["h"] <= meta["size"]["h"]


def test_aseprite_durations_follow_fps():
    data = aseprite_json([(0, 0, 4, 4)] * 3, (12, 4), fps=12)
    assert [f["duration"] for f in data["frames"].values()] == [83, 84, 83]  # 250 ms, not 3 x 83


def test_frame_durations_add_up_to_the_loop():
    """Per-frame milliseconds from running totals: whole ms, every frame within half a ms of
    i / fps, the loop frames / fps long (round(1000 / fps) each made 12 frames at 12 fps 996 ms)."""
    for n, fps in [(12, 12), (16, 12), (10, 7), (7, 30), (5, 0.3), (9, 120), (1, 24)]:
        ms = frame_durations(n, fps)
        assert all(isinstance(d, int) and d >= 1 for d in ms)
        assert sum(ms) == round(n * 1000 / fps)
        starts = np.cumsum([0] + ms[:-1])
        assert np.all(np.abs(starts - np.arange(n) * 1000 / fps) <= 0.5)
    assert frame_durations(12, 12) == [83, 84, 83] * 4
    assert gif_durations(12, 12) == [80, 90, 80] * 4 and sum(gif_durations(10, 7)) == 1430  # the same rule in cs


def test_sheet_json_durations_per_animation():
    """Each animation's frames are timed from its own first frame, so each lasts frames / fps."""
    plan = layout([Strip("walk", frames_rgb(12)), Strip("jump", frames_rgb(5))])
    ms = [f["duration"] for f in aseprite_data(plan, fps=12)["frames"].values()]
    assert sum(ms[:12]) == 1000 and sum(ms[12:]) == round(5000 / 12) and ms[12:] == frame_durations(5, 12)


def test_gif_loops_forever_with_fps_durations(tmp_path):
    path = write_animation(frames_rgb(5), tmp_path / "a.gif", fps=10)
    im = Image.open(path)
    assert im.n_frames == 5 and im.info["loop"] == 0
    durations, firsts = [], []
    for frame in ImageSequence.Iterator(im):
        durations.append(frame.info["duration"])
        firsts.append(np.asarray(frame.convert("RGB"))[10, 10].tolist())
    assert durations == [100] * 5
    assert firsts == [[i * 40, 255 - i * 40, 100] for i in range(5)]


def test_gif_keeps_transparency(tmp_path):
    frames = [np.dstack([f, np.zeros(f.shape[:2], np.uint8)]) for f in frames_rgb(3)]
    for f in frames:
        f[5:20, 5:20, 3] = 255
    im = Image.open(write_animation(frames, tmp_path / "t.gif", fps=12))
    for frame in ImageSequence.Iterator(im):
        rgba = np.asarray(frame.convert("RGBA"))
        assert rgba[0, 40, 3] == 0 and rgba[10, 10, 3] == 255


def test_webp_is_animated_and_loops(tmp_path):
    im = Image.open(write_animation(frames_rgb(4), tmp_path / "a.webp", fps=12))
    assert im.n_frames == 4 and im.info.get("loop") == 0


def test_webp_durations_add_up_to_the_loop(tmp_path):
    frames = [np.full((6, 8, 3), 20 * i, np.uint8) for i in range(12)]
    im = Image.open(write_animation(frames, tmp_path / "a.webp", fps=12))
    durations = []
    for i in range(im.n_frames):
        im.seek(i)
        im.load()  # Pillow reads a WebP frame's duration as it decodes it
        durations.append(im.info["duration"])
    assert durations == frame_durations(12, 12) and sum(durations) == 1000  # was 12 x 83 = 996


def test_mp4_has_every_frame(tmp_path):
    import imageio.v3 as iio

    path = write_animation(frames_rgb(6, h=31, w=41), tmp_path / "a.mp4", fps=12)
    video = iio.imread(path, plugin="FFMPEG")
    assert video.shape[0] == 6 and video.shape[1] % 2 == 0 and video.shape[2] % 2 == 0
    assert abs(int(video[3, 10, 10, 0]) - 120) < 12  # frame order kept


def test_unknown_animation_format(tmp_path):
    with pytest.raises(PosekitError, match="unknown animation format"):
        write_animation(frames_rgb(2), tmp_path / "a.avi")


def test_gif_of_few_colours_keeps_them_exactly(tmp_path):
    """Pixel art: a GIF of frames with few colours shows exactly those colours, pixel for pixel
    (no colour of the palette's padding, no opaque pixel turned transparent)."""
    colours = np.array([(0, 0, 0), (255, 0, 0), (12, 200, 7)], np.uint8)
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        f = np.zeros((20, 24, 4), np.uint8)
        f[:, :, :3] = colours[rng.integers(0, 3, (20, 24))]
        f[:, :, 3] = np.where(rng.random((20, 24)) < 0.3, 0, 255)
        frames.append(f)
    gif = Image.open(write_animation(frames, tmp_path / "p.gif"))
    for f, g in zip(frames, ImageSequence.Iterator(gif)):
        rgba = np.asarray(g.convert("RGBA"))
        opaque = f[:, :, 3] == 255
        assert np.array_equal(rgba[:, :, 3] == 255, opaque)
        assert np.array_equal(rgba[opaque][:, :3], f[opaque][:, :3])


def test_an_empty_transparent_frame_does_not_stretch_the_figure_box():
    """A frame where nothing shows (the figure warped out of view) used to add the frame's
    corner to the box, so every cell became nearly the whole photo."""
    from posekit.sheet.layout import figure_box

    frame = np.zeros((400, 300, 4), np.uint8)
    frame[200:380, 200:260, 3] = 255
    empty = np.zeros_like(frame)
    alone = figure_box([Strip("a", [frame, frame])])
    assert figure_box([Strip("a", [frame, empty])]) == alone and alone[0] > 150 and alone[1] > 150
    x0, y0, x1, y1 = figure_box([Strip("a", [empty, empty])])  # nothing anywhere: some box all the same
    assert x1 > x0 and y1 > y0


def uneven_soles_strip():
    """A transparent walk whose poses keep the lower ankle on one line (y 100, knees 30 above)
    but whose soles the method drew 6.5 to 11.5 px under it, frame by frame (the sprite would hover
    and bob against one pivot); frame 2 is in the air (ankles 20 px up, the shoes as in frame 0)."""
    from posekit.pose import Pose

    frames, poses = [], []
    for depth, lift in ((10, 0), (7, 0), (10, 20), (12, 0), (9, 0)):  # sole rows end at ankle + depth
        ankle = 100 - lift
        f = np.zeros((130, 60, 4), np.uint8)
        f[20 - lift:ankle, 25:35] = (200, 40, 90, 255)
        f[ankle:ankle + depth, 22:38] = (60, 30, 20, 255)
        frames.append(f)
        xy = np.tile([30.0, 40.0], (18, 1))
        xy[10], xy[13] = (27, ankle), (33, ankle)
        xy[9], xy[12] = (27, ankle - 30), (33, ankle - 30)
        xy[8], xy[11] = (27, 60 - lift), (33, 60 - lift)
        poses.append(Pose.from_xy(xy, 60, 130))
    return Strip("walk", frames, poses, ground=100.0)


def lowest_row_end(frame):
    return int(np.nonzero(frame[:, :, 3].any(axis=1))[0].max()) + 1


def test_every_grounded_frame_stands_on_the_one_pivot_line():
    """A sprite placed by its pivot stands on the floor in every frame: one pivot y for the clip
    (no jitter), and each grounded frame's lowest opaque row ends exactly on it (the frames are
    moved down onto the deepest sole, 112; before, the pivot was one median line 2 px below or
    up to 3 px above the drawn soles); the frame in the air keeps its height above the line,
    moved as its grounded neighbours are; the poses move with their frames."""
    from posekit.pipeline import character_strips
    from posekit.sheet.layout import grounded

    strip = uneven_soles_strip()
    assert [lowest_row_end(f) for f in strip.frames] == [110, 107, 90, 112, 109]
    (done,) = grounded([strip])
    plan = layout([done])
    assert {f.pivot[1] for f in plan.frames} == {112.0}
    assert [lowest_row_end(f) for f in done.frames] == [112, 112, 92, 112, 112]  # in the air: 2 of 0..5 down, 20 up
    for frame, pose in zip(done.frames, done.poses):  # each ankle still on top of its shoe
        ankle = int(max(pose["r_ankle"][1], pose["l_ankle"][1]))
        assert frame[ankle - 1, 30, 3] == 255 and frame[ankle, 37, 3] == 255 and frame[ankle - 1, 37, 3] == 0
    # as animate makes a character's cells (cut around the figure): the same, in the cell
    (cell,) = character_strips([uneven_soles_strip()], None, False, None, False)
    plan = layout([cell])
    (pivot,) = {f.pivot[1] for f in plan.frames}
    assert [pivot - lowest_row_end(f) for f in cell.frames] == [0, 0, 20, 0, 0]
    # no retargeting (no `ground`: the ankle line is the lowest ankle of the poses): the same line,
    # not the lowest ankle of the moved poses (the pivot hung 11 px under the soles)
    free = uneven_soles_strip()
    free.ground = None
    (done,) = grounded([free])
    assert {f.pivot[1] for f in layout([done]).frames} == {112.0}
    assert [lowest_row_end(f) for f in done.frames] == [112, 112, 92, 112, 112]
    # frames with a background: nothing shows the soles, nothing moves
    opaque = uneven_soles_strip()
    opaque.frames = [f[:, :, :3].copy() for f in opaque.frames]
    assert all(a is b for a, b in zip(grounded([opaque])[0].frames, opaque.frames))


def gif_frames(path):
    """(RGBA arrays, durations in ms) of every frame of a GIF, as a viewer shows them."""
    im = Image.open(path)
    frames, durations = [], []
    for frame in ImageSequence.Iterator(im):
        frames.append(np.asarray(frame.convert("RGBA")))
        durations.append(frame.info["duration"])
    return frames, durations


@pytest.mark.parametrize("alpha", [False, True])
def test_gif_keeps_repeated_frames(tmp_path, alpha):
    """An idle clip repeats frames: the GIF still holds one frame per sheet frame, each with its
    own time (Pillow merged equal frames into one, their times added), and looks the same."""
    a, b = frames_rgb(2)
    if alpha:
        a, b = (np.dstack([f, np.where(np.arange(f.shape[1]) < 20, 255, 0).astype(np.uint8)[None].repeat(f.shape[0], 0)])
                for f in (a, b))
    frames = [a, a, a, b, b, a]
    path = write_animation(frames, tmp_path / "idle.gif", fps=12)
    got, durations = gif_frames(path)
    assert len(got) == 6 and durations == gif_durations(6, 12)
    for f, g in zip(frames, got):
        shown = g[:, :, 3] == 255
        assert np.array_equal(shown, f[:, :, 3] == 255) if alpha else shown.all()
        assert np.array_equal(g[shown][:, :3], f[shown][:, :3])
    distinct = write_animation([a, b, a], tmp_path / "aba.gif").stat().st_size
    assert path.stat().st_size < 1.3 * distinct  # the three repeats cost little


@pytest.mark.parametrize("count, each", [(8, 32), (10, 25)])
def test_gif_keeps_repeated_frames_when_the_palette_is_full(tmp_path, monkeypatch, count, each):
    """Pixel-art frames, each twice, with colours of their own (8 x 32 = 256 in all; or 10 x 25 =
    250, a palette just short of full), no colour shared: marking the repeats needs one spare
    palette entry per repeat. The GIF still has every frame, each within a quantization step of
    its own colours, and the frames are quantized twice at most (the spare entries were once
    found one at a time: seven passes for the first case, up to 255; then four for the second)."""
    import posekit.sheet.animation as animation

    passes = []
    palette = animation.shared_palette
    monkeypatch.setattr(animation, "shared_palette", lambda *a, **k: passes.append(1) or palette(*a, **k))
    rng = np.random.default_rng(0)
    colours = rng.permutation(np.stack(np.meshgrid(np.arange(16) * 17, np.arange(4) * 85, np.arange(4) * 85,
                                                   indexing="ij"), -1).reshape(-1, 3))
    distinct = [colours[each * k + rng.integers(0, each, (24, 24))].astype(np.uint8) for k in range(count)]
    frames = [f for f in distinct for _ in range(2)]
    got, durations = gif_frames(write_animation(frames, tmp_path / "full.gif", fps=12))
    assert len(got) == 2 * count and durations == gif_durations(2 * count, 12) and len(passes) <= 2
    for f, g in zip(frames, got):
        assert np.abs(g[:, :, :3].astype(int) - f).max() <= 17


@pytest.mark.parametrize("suffix", ["gif", "webp"])
def test_a_clip_that_is_no_cycle_plays_once(tmp_path, suffix):
    """A jump is no cycle: its preview plays once (no GIF loop extension; a WebP loop count of
    one play), where a cycle loops forever."""
    once = Image.open(write_animation(frames_rgb(3), tmp_path / f"once.{suffix}", loop=False))
    cycle = Image.open(write_animation(frames_rgb(3), tmp_path / f"cycle.{suffix}"))
    assert once.n_frames == 3 and once.info.get("loop") == (None if suffix == "gif" else 1)
    assert cycle.info.get("loop") == 0


def test_gif_with_an_empty_transparent_frame_is_whole(tmp_path):
    """A transparent frame with nothing opaque (the figure out of view) after a figure: Pillow
    wrote it as a second GIF header, which ended the file for readers (one frame of three)."""
    figure = np.zeros((30, 41, 4), np.uint8)
    figure[5:20, 5:20] = (200, 30, 30, 255)
    frames = [figure, np.zeros_like(figure), np.roll(figure, 9, axis=1)]
    path = write_animation(frames, tmp_path / "e.gif", fps=12)
    got, durations = gif_frames(path)
    assert len(got) == 3 and durations == gif_durations(3, 12) and path.read_bytes().count(b"GIF89a") == 1
    for f, g in zip(frames, got):
        assert np.array_equal(g[:, :, 3] == 255, f[:, :, 3] == 255)


@pytest.mark.parametrize("alpha", [True, False])
@pytest.mark.parametrize("count", [1, 2])
def test_gif_of_one_distinct_frame(tmp_path, alpha, count):
    """One frame (`--frames 1`, a single OpenPose file), or the same frame twice: Pillow writes a
    single frame, with one disposal (a list of them crashed it)."""
    frame = np.zeros((20, 24, 4 if alpha else 3), np.uint8)
    got, durations = gif_frames(write_animation([frame] * count, tmp_path / "one.gif", fps=10))
    assert len(got) >= 1 and sum(durations) == 100 * count


def test_gif_keeps_dark_pixels_of_a_many_coloured_frame_opaque(tmp_path):
    """The palette of a photo-like frame had black padding up to index 255, the transparent one:
    black pixels with no near palette colour were quantized onto it and vanished."""
    rng = np.random.default_rng(0)
    f = np.zeros((200, 200, 4), np.uint8)
    f[:, :, :3] = rng.integers(100, 255, (200, 200, 3))
    f[:, :, 3] = 255
    f[:, 190:, 3] = 0
    f[:10, :10, :3] = 0
    got, _ = gif_frames(write_animation([f, np.roll(f, 1, axis=0)], tmp_path / "dark.gif"))
    assert np.array_equal(got[0][:, :, 3] == 255, f[:, :, 3] == 255)

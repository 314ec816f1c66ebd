"""Image loading: the modes photos come in, and one-line errors for what is not an image."""

import numpy as np
import pytest
from PIL import Image

from posekit.errors import PosekitError
from posekit.images import expand_paths, load_image, read_video, save_image


def test_cmyk_16bit_palette_and_alpha_images_load_as_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # red in print colours
    assert load_image(tmp_path / "cmyk.jpg")[0, 0].tolist() == [255, 0, 0]
    Image.fromarray(np.full((8, 8), 30000, np.uint16)).save(tmp_path / "gray16.png")
    assert load_image(tmp_path / "gray16.png")[0, 0].tolist() == [117, 117, 117]  # 30000 / 65535
    Image.new("RGBA", (8, 8), (0, 0, 255, 0)).save(tmp_path / "clear.png")
    assert load_image(tmp_path / "clear.png")[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert load_image(tmp_path / "clear.png", keep_alpha=True)[0, 0].tolist() == [0, 0, 255, 0]
    Image.new("P", (8, 8), 0).save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").shape == (8, 8, 3)


def test_bad_files_are_one_line_errors_naming_them(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    rng = np.random.default_rng(0)
    save_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    for name, says in [("missing.png", "no such file"), ("empty.png", "empty file"),
                       ("text.png", "not an image"), ("cut.png", "corrupt")]:
        with pytest.raises(PosekitError, match=says) as e:
            load_image(tmp_path / name)
        assert name in str(e.value) and "\n" not in str(e.value)


def test_unwritable_output_is_one_line(run_posekit, tmp_path):
    (tmp_path / "afile").write_text("")
    proc = run_posekit("poses", "show", "walk", "--frames", "2", "--out", tmp_path / "afile" / "sub")
    assert proc.returncode == 2  # checked before any work, as a usage error
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("posekit: error: --out ") and "afile" in proc.stderr


def test_unreadable_videos_are_one_line_errors(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "ok.mp4", np.zeros((6, 32, 32, 3), np.uint8), fps=3)
    assert [f.shape for f in read_video(tmp_path / "ok.mp4", max_frames=2)] == [(32, 32, 3)] * 2
    data = (tmp_path / "ok.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mov").write_text("not a video")
    for name, says in [("missing.mp4", "no such file"), ("empty.mp4", "empty file"),
                       ("cut.mp4", "not a readable video"), ("text.mov", "not a readable video")]:
        with pytest.raises(PosekitError, match=says) as e:
            list(read_video(tmp_path / name))
        assert str(e.value).startswith(f"{tmp_path / name}: ") and "\n" not in str(e.value)


def test_folders_are_read_without_hidden_files_and_posekit_skeletons(tmp_path):
    for name in ["a.png", "b_pose.png", ".c.png", ".hidden/d.png", "e_pose.png", "e_keypoints.json",
                 "f_keypoints.json"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    Image.new("RGB", (4, 4)).save(tmp_path / "a_pose.png")
    (tmp_path / "a_keypoints.json").write_text('{"people": [{"pose_keypoints_2d": [' + ", ".join(["0"] * 54) + "]}]}")
    Image.new("RGB", (4, 4)).save(tmp_path / "f_pose.png")
    # a_pose.png (a PNG) beside a_keypoints.json (OpenPose) is posekit's; b_pose.png alone is someone's
    # photo, and so are e_pose.png and f_pose.png: their pair is not a PNG and an OpenPose file
    assert [p.name for p in expand_paths([str(tmp_path)])] == ["a.png", "b_pose.png", "e_pose.png", "f_pose.png"]


def test_a_pair_is_posekits_only_when_a_png_and_an_openpose_file(tmp_path):
    from posekit.images import written_by_posekit

    keypoints = '{"people": [{"pose_keypoints_2d": [' + ", ".join(["1"] * 54) + "]}]}"
    Image.new("RGB", (8, 8)).save(tmp_path / "ok_pose.png")
    (tmp_path / "ok_keypoints.json").write_text(keypoints)
    assert written_by_posekit(tmp_path / "ok_pose.png")
    for stem, png, js in [("hi", b"hi", "hi"), ("text", b"hi", keypoints), ("json", None, "hi"),
                          ("notes", None, '{"people": "none"}'), ("short", None, '{"people": [{"pose_keypoints_2d": [1, 2]}]}')]:
        if png is None:
            Image.new("RGB", (8, 8)).save(tmp_path / f"{stem}_pose.png")
        else:
            (tmp_path / f"{stem}_pose.png").write_bytes(png)
        (tmp_path / f"{stem}_keypoints.json").write_text(js)
        assert not written_by_posekit(tmp_path / f"{stem}_pose.png"), stem
    Image.new("RGB", (8, 8)).save(tmp_path / "jpeg_pose.png", format="JPEG")  # a JPEG under a PNG's name
    (tmp_path / "jpeg_keypoints.json").write_text(keypoints)
    assert not written_by_posekit(tmp_path / "jpeg_pose.png")
    whole = (tmp_path / "ok_pose.png").read_bytes()
    (tmp_path / "cut_pose.png").write_bytes(whole[: len(whole) // 2])  # truncated
    (tmp_path / "cut_keypoints.json").write_text(keypoints)
    assert not written_by_posekit(tmp_path / "cut_pose.png")


def test_folders_are_read_in_natural_order(tmp_path):
    """frame_2 before frame_10, at every level (--poses DIR reads frames so: one order for both)."""
    names = ["frame_1.png", "frame_2.png", "frame_10.png", "Frame_3.png", "s2/a.png", "s10/a.png", "s10/b_9.png",
             "s10/b_11.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    got = [p.relative_to(tmp_path).as_posix() for p in expand_paths([str(tmp_path)])]
    assert got == ["frame_1.png", "frame_2.png", "Frame_3.png", "frame_10.png", "s2/a.png", "s10/a.png",
                   "s10/b_9.png", "s10/b_11.png"]
    # ties under case folding and leading zeros still have one order, whatever the file system lists first
    from posekit.images import natural_key

    assert sorted(["x01.png", "x1.png", "X1.png"], key=natural_key) == sorted(["X1.png", "x1.png", "x01.png"], key=natural_key)


def test_a_folder_named_on_stdin_is_searched_as_an_argument(tmp_path, monkeypatch):
    import io

    (tmp_path / "many").mkdir()
    for name in ("p10.png", "p2.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / "many" / name)
    Image.new("RGB", (4, 4)).save(tmp_path / "one.png")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(f"{tmp_path / 'many'}\n{tmp_path / 'one.png'}\n".encode())))
    assert expand_paths(["-"]) == [tmp_path / "many" / "p2.png", tmp_path / "many" / "p10.png", tmp_path / "one.png"]


def test_animated_images_are_videos_frame_by_frame(tmp_path):
    """A GIF, WebP or PNG of several frames is read as a video (every frame whole); one frame
    of any of them is an image."""
    from posekit.images import is_video, iter_inputs

    frames = [np.full((10, 12, 3), (40 * k, 200 - 40 * k, 90), np.uint8) for k in range(4)]
    frames[2][3:6, 4:8] = (0, 0, 255)
    ims = [Image.fromarray(f) for f in frames]
    for suffix in (".gif", ".webp", ".png"):
        ims[0].save(tmp_path / f"anim{suffix}", save_all=True, append_images=ims[1:], duration=100, loop=0,
                    **({"lossless": True} if suffix == ".webp" else {}))
        ims[1].save(tmp_path / f"still{suffix}")
        assert is_video(tmp_path / f"anim{suffix}") and not is_video(tmp_path / f"still{suffix}"), suffix
        got = list(read_video(tmp_path / f"anim{suffix}"))
        assert len(got) == 4 and all(np.abs(g.astype(int) - f).max() <= 8 for g, f in zip(got, frames)), suffix
        assert len(list(read_video(tmp_path / f"anim{suffix}", max_frames=2))) == 2
    assert not is_video(tmp_path / "missing.gif") and not is_video(tmp_path / "clip.gifx")
    names = [item.name for item in iter_inputs([tmp_path])]  # a folder: the animations frame by frame
    assert names.count(f"{tmp_path / 'anim.gif'}#3") == 1 and str(tmp_path / "still.gif") in names
    assert len(names) == 3 * 4 + 3


def _header_only_png(path, width, height):
    """A PNG that says it is width x height (and holds no pixels): Pillow judges its size on open."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def test_images_over_pillows_limit_are_one_line_and_under_it_load_quietly(tmp_path, monkeypatch):
    import gc
    import warnings

    bomb = _header_only_png(tmp_path / "bomb.png", 15000, 15000)  # 225 megapixels, over Pillow's 179
    with pytest.raises(PosekitError) as e:
        load_image(bomb)
    message = str(e.value)
    assert message.startswith(f"{bomb}: 225 megapixels") and "179 megapixels" in message and "downscale" in message
    assert "\n" not in message
    # between half the limit and the limit Pillow only warns: the image is read, the warning kept quiet
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (12, 12), (10, 20, 30)).save(tmp_path / "big.png")  # 144 pixels
    gc.collect()  # other tests' leftovers collected now, not inside the window below
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert load_image(tmp_path / "big.png")[0, 0].tolist() == [10, 20, 30]
    # (an unclosed file of another test, collected meanwhile, warns here too: a ResourceWarning that
    # names whatever line was running, Pillow's; that is no warning of this load)
    loud = [w for w in seen if not issubclass(w.category, ResourceWarning)]
    assert loud == [], [(w.category.__name__, str(w.message)[:200], w.filename) for w in loud]


def test_stdin_paths_split_on_nul_else_on_lines():
    import io

    from posekit.images import read_stdin_paths

    def stdin(data: bytes):
        return io.TextIOWrapper(io.BytesIO(data))

    # find -print0: names may hold newlines and edge spaces
    assert read_stdin_paths(stdin(b"a.png\0two\nlines.png\0 b.png \0")) == ["a.png", "two\nlines.png", " b.png "]
    assert read_stdin_paths(stdin(b"a.png\n\n  b.png \r\n")) == ["a.png", "b.png"]
    assert read_stdin_paths(stdin(b"caf\xe9.png\0")) == ["caf\udce9.png"]  # not UTF-8: as the file system names it
    assert read_stdin_paths(io.StringIO("a.png\0b.png")) == ["a.png", "b.png"]  # a text stream (no .buffer)
    assert read_stdin_paths(stdin(b"")) == []


def test_recorded_outputs_are_known_by_content(tmp_path):
    """Inside recording_outputs each atomic write is listed (hash and name) before it takes its
    name: a listed file is posekit's while its content is what was written, not once changed;
    files written outside the block, or elsewhere, are not listed."""
    from posekit.images import LEDGER_NAME, recorded_by_posekit, recording_outputs, write_json, write_text

    out = tmp_path / "out"
    write_text("before\n", out / "early.txt")
    with recording_outputs(out):
        save_image(np.zeros((4, 4, 3), np.uint8), out / "a_pose.png")
        write_json({"people": []}, out / "a_keypoints.json")
        write_text("elsewhere\n", tmp_path / "other.txt")
    assert recorded_by_posekit(out / "a_pose.png") and recorded_by_posekit(out / "a_keypoints.json")
    assert not recorded_by_posekit(out / "early.txt") and not recorded_by_posekit(tmp_path / "other.txt")
    assert not recorded_by_posekit(out / "missing.json")
    (out / "a_keypoints.json").write_text('{"people": []}  \n')  # edited by hand since
    assert not recorded_by_posekit(out / "a_keypoints.json")
    # the half pair a killed run leaves: a listed skeleton without its keypoints is still posekit's
    (out / "a_keypoints.json").unlink()
    assert [p.name for p in expand_paths([str(out)])] == []  # not a photo: a skeleton posekit wrote
    for i in range(5):  # re-runs append; entering again keeps the last two contents of each name
        with recording_outputs(out):
            write_text(f"run {i}\n", out / "b.txt")
    with recording_outputs(out):
        pass
    lines = (out / LEDGER_NAME).read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines].count("b.txt") == 2
    assert not any(line.endswith("a_keypoints.json") for line in lines)  # gone: no longer listed
    assert recorded_by_posekit(out / "b.txt") and recorded_by_posekit(out / "a_pose.png")


def test_stale_temporary_files_of_killed_runs_are_removed(tmp_path):
    import os
    import time

    from posekit.images import remove_stale_temp_files

    names = {".x_pose.png.ab12_cd3.tmp.png": True,  # atomic_path's temp file, hours old: removed
             ".x.npy.0123abcd.tmp.npy": True,
             ".x_keypoints.json.zzzzzzzz.tmp.json": True,  # a second old, nobody writing it: removed too
             ".x.png.ab12cd34.tmp.jpg": False,  # not atomic_path's pattern: kept
             ".notes.txt": False, "x.png": False}
    for name, stale in names.items():
        (tmp_path / name).write_bytes(b"x")
        if name != ".x_keypoints.json.zzzzzzzz.tmp.json":
            os.utime(tmp_path / name, (time.time() - 7200,) * 2)
    assert remove_stale_temp_files(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, stale in names.items() if not stale)


def test_a_killed_runs_temporary_file_goes_at_once_a_live_runs_stays(tmp_path):
    """A run killed while writing (extract-pose under `timeout -s KILL`) left its fresh temp file
    behind, and a re-run at once kept it (only those an hour old went); another run's file being
    written now (its writer holds its lock) must stay, however long its write takes."""
    import os
    import signal
    import subprocess
    import sys

    from posekit.images import atomic_path, remove_stale_temp_files

    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from posekit.images import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half'); print(tmp.name, flush=True); time.sleep(60)"), str(tmp_path / "big.npy")],
        stdout=subprocess.PIPE, text=True)
    try:
        name = writer.stdout.readline().strip()
        assert name.startswith(".big.npy.") and name.endswith(".tmp.npy")
        assert remove_stale_temp_files(tmp_path) == 0 and (tmp_path / name).exists()  # being written
        with atomic_path(tmp_path / "a_pose.png") as mine:  # this process's own write, under way
            mine.write_bytes(b"x")
            assert remove_stale_temp_files(tmp_path) == 0 and mine.exists()
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        writer.stdout.close()
    assert (tmp_path / name).exists()  # the killed run's, seconds old
    assert remove_stale_temp_files(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_pose.png"]


def test_a_32_bit_float_tiff_is_read_by_its_range(tmp_path):
    """A mode F TIFF (values 0..1) fell into convert("RGB") and came out black."""
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tif")
    got = load_image(tmp_path / "f.tif")
    assert got.shape == (8, 8, 3) and np.abs(got[:, :, 0].astype(int) - np.round(ramp * 255)).max() <= 1
    Image.fromarray(ramp * 255, mode="F").save(tmp_path / "f255.tif")  # 0..255 floats stay as they are
    assert np.abs(load_image(tmp_path / "f255.tif")[:, :, 1].astype(int) - np.round(ramp * 255)).max() <= 1
    bad = ramp.copy()
    bad[0, 0] = np.nan
    Image.fromarray(bad, mode="F").save(tmp_path / "nan.tif")
    assert load_image(tmp_path / "nan.tif")[0, 0].tolist() == [0, 0, 0] and load_image(tmp_path / "nan.tif").max() == 255

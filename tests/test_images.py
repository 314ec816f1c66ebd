"""Image loading: the modes photos come in, and one-line errors for what is not an image."""

import numpy as np
import pytest
from PIL import Image

from posekit.errors import PosekitError
from posekit.images import load_image, save_image


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
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("posekit: error: ") and "Traceback" not in proc.stderr
    assert "afile" in proc.stderr

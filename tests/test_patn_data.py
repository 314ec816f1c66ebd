"""PATN data: synthetic pairs, the official layout reader, and prepare-dataset's layout."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from posekit.errors import PosekitError, UsageError
from posekit.methods.patn.data import PRESETS, PairDataset, SyntheticPairs, datasets, read_pairs, write_pairs
from posekit.methods.patn.prepare import prepare
from posekit.methods.patn.synthetic import synthetic_pair
from posekit.pose.formats import read_patn_annotations, write_patn_annotations
from posekit.pose.pose import INDEX, Pose


def test_synthetic_pairs_are_deterministic_and_show_one_figure_in_two_poses():
    a1, pa1, b1, pb1 = synthetic_pair(3, 7, 32, 64)
    a2, pa2, b2, pb2 = synthetic_pair(3, 7, 32, 64)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2) and pa1.allclose(pa2)
    assert a1.shape == (64, 32, 3) and a1.dtype == np.uint8
    assert pa1.size == (32, 64) and len(pa1) >= 14          # most points on the canvas
    assert not pa1.allclose(pb1) and np.abs(a1.astype(int) - b1).mean() > 1
    other, *_ = synthetic_pair(3, 8, 32, 64)
    assert not np.array_equal(a1, other)
    # the figure is drawn where its skeleton is: the torso centre differs from the background
    neck, hip = pa1["neck"], (pa1["r_hip"] + pa1["l_hip"]) / 2
    cx, cy = ((neck + hip) / 2).round().astype(int)
    assert np.abs(a1[cy, cx].astype(int) - a1[1, 1]).sum() > 0 or np.abs(a1[cy, cx].astype(int) - a1[-2, -2]).sum() > 0


def test_synthetic_dataset_items_are_patn_tensors():
    item = SyntheticPairs(4, 64, 32, seed=1)[2]
    assert item["P1"].shape == (3, 64, 32) and item["BP2"].shape == (18, 64, 32) and item["K2"].shape == (18, 3)
    assert -1 <= item["P1"].min() and item["P1"].max() <= 1
    # each heatmap peaks at its keypoint
    k = item["K2"][INDEX["neck"]]
    y, x = np.unravel_index(item["BP2"][INDEX["neck"]].argmax().item(), (64, 32))
    assert abs(x - k[0]) <= 1 and abs(y - k[1]) <= 1


def official_layout(root, preset, names=("a.jpg", "b.jpg", "c.jpg")):
    """A tiny dataset in the authors' layout, with synthetic figures as the photos."""
    from posekit.images import save_image

    rows = []
    for split in ("train", "test"):
        for i, name in enumerate(names):
            img, pose, *_ = synthetic_pair(5, i, preset.width, preset.height)
            save_image(img, root / split / name)
            rows.append((name, pose))
        write_patn_annotations(rows[-len(names):], root / f"{preset.files}-annotation-{split}.csv")
        write_pairs([(names[0], names[1]), (names[1], names[2]), (names[0], "unannotated.jpg")],
                    root / f"{preset.files}-pairs-{split}.csv")
    return rows


def test_official_market_layout_is_read_with_gaussian_maps_and_cached_npy(tmp_path, capsys):
    p = PRESETS["market1501"]
    official_layout(tmp_path, p)
    ds = PairDataset(tmp_path, "train", p)
    assert len(ds) == 2                     # the pair with an unannotated image is left out
    # ... and said so, once, with the count and the files
    warning = capsys.readouterr().err
    assert warning.count("warning") == 1, warning
    assert "market-pairs-train.csv: 1 of 3 pairs skipped" in warning and "market-annotation-train.csv" in warning
    item = ds[0]
    assert item["P1"].shape == (3, 128, 64) and item["BP1"].shape == (18, 128, 64)
    pose = read_patn_annotations(tmp_path / "market-annotation-train.csv", 64, 128)["a.jpg"]
    x, y = (int(v) for v in pose.keypoints[INDEX["neck"], :2])
    assert item["BP1"][INDEX["neck"], y, x] == pytest.approx(1.0)
    assert 0.3 < item["BP1"][INDEX["neck"], y, x + 6] < 0.9      # sigma 6: exp(-0.5) one sigma away
    # a precomputed trainK/<name>.npy is used as it is
    cached = np.zeros((128, 64, 18), np.float32)
    cached[5, 6, 0] = 0.25
    (tmp_path / "trainK").mkdir()
    np.save(tmp_path / "trainK" / "a.jpg.npy", cached)
    assert ds[0]["BP1"][0, 5, 6] == pytest.approx(0.25) and ds[0]["BP1"].sum() == pytest.approx(0.25)


def test_deepfashion_preset_uses_single_pixel_maps(tmp_path):
    p = PRESETS["deepfashion"]
    official_layout(tmp_path, p)
    item = PairDataset(tmp_path, "test", p)[1]
    present = item["K1"][:, 2] > 0
    assert item["BP1"].sum() == pytest.approx(float(present.sum()))   # one pixel of 1 per keypoint
    assert set(torch.unique(item["BP1"]).tolist()) <= {0.0, 1.0}


def test_missing_layout_files_name_the_file(tmp_path):
    with pytest.raises(PosekitError, match="annotation file not found"):
        PairDataset(tmp_path, "train", PRESETS["deepfashion"])
    with pytest.raises(UsageError, match="^--data-root .*nowhere: no such folder"):  # a flag's missing path: exit 2
        PairDataset(tmp_path / "nowhere", "train", PRESETS["deepfashion"])
    with pytest.raises(UsageError, match="^--data-root .*: --dataset synthetic is built in"):  # not silently ignored
        datasets("synthetic", tmp_path, 32, 16)
    (tmp_path / "market-pairs-train.csv").write_text("a,b\n")
    with pytest.raises(PosekitError, match="from,to"):
        read_pairs(tmp_path / "market-pairs-train.csv")


class StubDetector:
    """Returns a known pose per image (by its size), so the layout logic is checked exactly."""

    def __init__(self, torso=True):
        self.torso = torso

    def detect(self, images):
        out = []
        for img in images:
            h, w = img.shape[:2]
            xy = np.array([[w * 0.5, h * (0.1 + 0.045 * i)] for i in range(18)], np.float32)
            pose = Pose.from_xy(xy, w, h)
            if not self.torso or img[0, 0, 0] == 0:   # a black corner marks "no hips"
                kp = pose.keypoints.copy()
                kp[INDEX["l_hip"]] = 0
                pose = Pose(kp, w, h)
            out.append([pose])
        return out

    def close(self):
        pass


def test_prepare_deepfashion_layout_crops_and_pairs_by_id(tmp_path):
    from PIL import Image

    raw = tmp_path / "raw"
    for pid in ("id_00000001", "id_00000002", "id_00000003"):
        for view in ("01_1_front.jpg", "01_2_side.jpg"):
            (raw / "WOMEN" / "Dresses" / pid).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (256, 256), (200, 180, 160)).save(raw / "WOMEN" / "Dresses" / pid / view)
    Image.new("RGB", (256, 256), (0, 0, 0)).save(raw / "WOMEN" / "Dresses" / "id_00000003" / "02_1_front.jpg")
    (raw / "notes.jpg").write_bytes(b"not under an id folder")
    out = tmp_path / "fashion"
    failed = prepare(raw, "deepfashion", out, test_fraction=0.34, detector=StubDetector())
    assert failed == 0
    names = list(csv.DictReader(open(out / "fasion-resize-names.csv")))
    assert len(names) == 6                                   # the hip-less image is dropped
    assert {r["split"] for r in names} == {"train", "test"}
    by_split = {s: {r["person"] for r in names if r["split"] == s} for s in ("train", "test")}
    assert not by_split["train"] & by_split["test"]          # split by person
    for r in names:
        assert (out / r["split"] / r["name"]).is_file()
        assert r["raw_path"].endswith(r["name"].replace("__", "/"))
    ann = read_patn_annotations(out / "fasion-resize-annotation-train.csv", 176, 256)
    name, pose = next(iter(ann.items()))
    assert Image.open(out / "train" / name).size == (176, 256)
    assert pose.keypoints[0, 0] == pytest.approx(128 - 40)   # the official x 40..216 crop
    pairs = read_pairs(out / "fasion-resize-pairs-train.csv")
    person = {r["name"]: r["person"] for r in names}
    assert pairs and all(person[a] == person[b] and a != b for a, b in pairs)
    assert len(pairs) == 2 * len(by_split["train"])          # both orders of each person's two views
    # a second run into the same --out is refused, and leaves the dataset as it was
    before = {f: f.stat().st_mtime_ns for f in out.rglob("*")}
    with pytest.raises(UsageError, match=r"^--out .*fashion: already holds a dataset"):
        prepare(raw, "deepfashion", out, test_fraction=0.5, detector=StubDetector())
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*")} == before
    (out / "fasion-resize-pairs-train.csv").unlink()
    with pytest.raises(UsageError, match="already holds a dataset"):  # its images alone are a dataset too
        prepare(raw, "deepfashion", out, detector=StubDetector())


def test_prepare_market_reads_ids_from_names_and_skips_distractors(tmp_path):
    from PIL import Image

    raw = tmp_path / "bounding_box_train"
    raw.mkdir()
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s1_000001_01.jpg",
                 "0007_c3s1_000002_01.jpg", "-1_c1s1_000001_00.jpg", "0000_c1s1_000002_00.jpg"):
        Image.new("RGB", (64, 128), (90, 90, 90)).save(raw / name)
    out = tmp_path / "market"
    prepare(raw, "market1501", out, test_fraction=0.5, detector=StubDetector())
    names = list(csv.DictReader(open(out / "market-names.csv")))
    assert sorted(r["person"] for r in names) == ["0002", "0002", "0007", "0007"]
    assert {r["name"] for r in names} == {p.name for p in raw.iterdir() if not p.name.startswith(("-1", "0000"))}
    assert len(read_pairs(out / "market-pairs-train.csv")) == 2 == len(read_pairs(out / "market-pairs-test.csv"))


def test_prepare_market_keeps_the_original_jpeg_bytes(tmp_path):
    """Market's crops are 64x128 already: copied as they are, not encoded again (a JPEG encoded
    twice loses detail); an image that must be resized is encoded at quality 95."""
    from PIL import Image

    raw = tmp_path / "bounding_box_train"
    raw.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (128, 64, 3), np.uint8)
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg"):
        Image.fromarray(noise).save(raw / name, quality=90)
    Image.fromarray(np.repeat(np.repeat(noise, 2, 0), 2, 1)).save(raw / "0007_c1s1_000001_01.jpg", quality=90)
    Image.fromarray(noise).save(raw / "0007_c3s1_000002_01.jpg", quality=90)
    out = tmp_path / "market"
    prepare(raw, "market1501", out, test_fraction=0.5, detector=StubDetector())
    written = {p.name: p for p in out.glob("t*/*.jpg")}
    assert len(written) == 4
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c3s1_000002_01.jpg"):
        assert written[name].read_bytes() == (raw / name).read_bytes(), name
    resized = np.asarray(Image.open(written["0007_c1s1_000001_01.jpg"]))
    assert resized.shape == (128, 64, 3)
    assert Image.open(written["0007_c1s1_000001_01.jpg"]).quantization[0][0] <= 2  # quality 95's tables


def test_prepare_dataset_cli_usage_errors(run_posekit, tmp_path):
    r = run_posekit("prepare-dataset", tmp_path / "missing", "--dataset", "market1501", "--out", tmp_path / "o")
    assert r.returncode == 2 and "no such folder" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "raw").mkdir()
    (tmp_path / "data" / "test").mkdir(parents=True)
    (tmp_path / "data" / "market-pairs-test.csv").write_text("from,to\n")
    r = run_posekit("prepare-dataset", tmp_path / "raw", "--dataset", "market1501", "--out", tmp_path / "data")
    assert r.returncode == 2 and r.stderr.startswith("posekit: error: --out ") and "already holds a dataset" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = run_posekit("prepare-dataset", tmp_path, "--dataset", "coco", "--out", tmp_path / "o")
    assert r.returncode == 2 and "deepfashion or market1501" in r.stderr


def test_prepare_dataset_cli_with_the_real_detector(run_posekit, tmp_path, astronaut_path):
    """BlazePose on a full-body figure (kept, in both splits) and the astronaut (no hips: dropped)."""
    import shutil
    from pathlib import Path

    from PIL import Image

    figure = Path(__file__).resolve().parents[1] / "examples" / "figure.png"
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("0002_c1s1_000451_03", "0002_c2s1_000301_01", "0007_c1s1_000001_01", "0007_c3s1_000002_01"):
        shutil.copy(figure, raw / f"{name}.png")
    shutil.copy(astronaut_path, raw / "0009_c1s1_000001_01.png")
    r = run_posekit("prepare-dataset", raw, "--dataset", "market1501", "--out", tmp_path / "m", "--test-fraction", "0.5")
    assert r.returncode == 0, r.stderr
    assert "dropped 1 without both shoulders and hips" in r.stderr
    for split in ("train", "test"):
        ann = read_patn_annotations(tmp_path / "m" / f"market-annotation-{split}.csv", 64, 128)
        assert len(ann) == 2 and all(p.visible[[2, 5, 8, 11]].all() for p in ann.values())
        assert all(Image.open(tmp_path / "m" / split / n).size == (64, 128) for n in ann)
        assert len(read_pairs(tmp_path / "m" / f"market-pairs-{split}.csv")) == 2


@pytest.mark.parametrize("bad, says", [
    (lambda p: np.save(p, np.zeros((18, 128, 64), np.float32)), r"shape \(18, 128, 64\), expected \(128, 64, 18\)"),
    (lambda p: np.save(p, np.zeros((256, 176, 18), np.float32)), r"shape \(256, 176, 18\), expected \(128, 64, 18\)"),
    (lambda p: (np.save(p, np.zeros((128, 64, 18), np.float32)), p.write_bytes(p.read_bytes()[:5000])),
     "truncated"),
    (lambda p: p.write_bytes(b"\x93NUMPY"), "not a readable .npy file"),
    (lambda p: np.save(p, np.empty((128, 64, 18), object), allow_pickle=True), "Python objects"),
])
def test_a_bad_cached_heatmap_is_one_line_naming_it_before_any_work(tmp_path, bad, says):
    """trainK/<name>.npy of another layout (channels first, another dataset's size), cut short or
    not a .npy at all: said when the split is opened, with the file and what to do."""
    p = PRESETS["market1501"]
    official_layout(tmp_path, p)
    (tmp_path / "trainK").mkdir()
    bad(tmp_path / "trainK" / "b.jpg.npy")
    with pytest.raises(PosekitError, match=says) as e:
        PairDataset(tmp_path, "train", p)
    assert str(e.value).startswith(str(tmp_path / "trainK" / "b.jpg.npy"))
    assert "delete the trainK/ folder" in str(e.value) and "\n" not in str(e.value)
    PairDataset(tmp_path, "test", p)  # the other split has no cached maps


def test_a_root_of_the_other_dataset_names_the_flag(tmp_path):
    official_layout(tmp_path, PRESETS["market1501"])
    with pytest.raises(UsageError, match=r"a market1501 layout \(market-annotation-train.csv\).*the --data-root of a deepfashion layout \(train-gan: or --dataset market1501"):
        PairDataset(tmp_path, "train", PRESETS["deepfashion"])


def test_an_image_of_the_other_dataset_names_the_flag(tmp_path):
    """Market's 64x128 crops under DeepFashion's CSV names: the error names --dataset market1501;
    the uncropped 256x256 In-shop images: the crop and prepare-dataset."""
    from posekit.images import save_image

    p = PRESETS["deepfashion"]
    official_layout(tmp_path / "market", PRESETS["market1501"])
    for split in ("train", "test"):
        for kind in ("annotation", "pairs"):
            (tmp_path / "market" / f"market-{kind}-{split}.csv").rename(tmp_path / "market" / f"{p.files}-{kind}-{split}.csv")
    with pytest.raises(PosekitError, match=r"a.jpg: 64x128 pixels, the deepfashion layout has 176x256 "
                                           r"\(a market1501 image: pass the --data-root of a deepfashion layout \(train-gan: or --dataset market1501 to train on this one\)\)"):
        PairDataset(tmp_path / "market", "test", p)[0]
    official_layout(tmp_path / "inshop", p)
    save_image(np.full((256, 256, 3), 200, np.uint8), tmp_path / "inshop" / "test" / "a.jpg")
    with pytest.raises(PosekitError, match=r"256x256 pixels, .*crop to x 40..216: `posekit prepare-dataset`"):
        PairDataset(tmp_path / "inshop", "test", p)[0]
    save_image(np.full((100, 100, 3), 200, np.uint8), tmp_path / "inshop" / "test" / "a.jpg")
    with pytest.raises(PosekitError, match=r"100x100 pixels, the deepfashion layout has 176x256$"):
        PairDataset(tmp_path / "inshop", "test", p)[0]

"""`posekit evaluate-gan` and its library (posekit.methods.patn.evaluate): each metric's known
properties with randomly initialised backbones (built through the code path that loads the real
weights), the official layout end to end, the authors' image layout, the CLI and its errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from posekit.errors import PosekitError
from posekit.methods.patn.data import to_uint8
from posekit.methods.patn.evaluate import (Backbones, authors_image, cheap_scores, evaluate_generator,
                                           evaluation_set, fid, inception_features, inception_net, inception_score,
                                           lpips_net, lpips_scores)
from posekit.methods.patn.synthetic import synthetic_pair
from posekit.pose.pose import Pose

THREADS = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def inception_state():
    """A random FID Inception (torchvision's Inception v3 with the FID head of 1008 classes, the
    same keys as the real file), its batch-norm statistics set on one random batch so that its
    features keep a sensible scale (untrained, the default init shrinks them to ~1e-7)."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # running stats = this batch's
    with torch.no_grad():
        net.train()(torch.rand(6, 3, 299, 299) * 2 - 1)
    return net.state_dict()


@pytest.fixture(scope="module")
def alexnet_state():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.alexnet(weights=None).state_dict()


@pytest.fixture(scope="module")
def backbones(inception_state, alexnet_state):
    return Backbones(lpips_net(alexnet_state), inception_net(inception_state))


def random_images(n, seed, height=64, width=32):
    return np.random.default_rng(seed).integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def test_ssim_padded_scores_higher_than_unpadded_as_patns_protocol_says():
    a, pose_a, b, pose_b = synthetic_pair(4, 0, 176, 256)
    same = cheap_scores(a, a, pose_a)
    assert same["ssim"] == pytest.approx(1) and same["ssim_padded"] == pytest.approx(1)
    assert same["mask_ssim"] == pytest.approx(1) and same["l1"] == 0
    other = cheap_scores(a, b, pose_b)
    # 40 px of identical white on each side: the padded score lies between the unpadded one and 1
    assert other["ssim"] < other["ssim_padded"] < 1
    assert 0 < other["l1"] < 1


def test_lpips_is_zero_for_identical_images_and_symmetric(alexnet_state):
    net = lpips_net(alexnet_state)
    # the trunk is the AlexNet given (lpips' slices of torchvision's `features`)
    assert torch.equal(net.net.slice2[1].weight, alexnet_state["features.3.weight"])
    a, b = random_images(3, 0), random_images(3, 1)
    assert lpips_scores(net, a, a, "cpu") == [0.0] * 3
    ab, ba = lpips_scores(net, a, b, "cpu"), lpips_scores(net, b, a, "cpu")
    assert min(ab) > 0 and ab == pytest.approx(ba)
    # a features-only state_dict (the `features.*` keys without the prefix) builds the same net
    features = {k.removeprefix("features."): v for k, v in alexnet_state.items() if k.startswith("features.")}
    assert lpips_scores(lpips_net(features), a, b, "cpu") == pytest.approx(ab)


def test_lpips_and_inception_refuse_other_weights(alexnet_state):
    with pytest.raises(PosekitError, match="--lpips-weights: not torchvision's AlexNet"):
        lpips_net({"features.0.weight": torch.zeros(3, 3, 3, 3)})
    with pytest.raises(PosekitError, match="--lpips-weights: not torchvision's AlexNet"):
        lpips_net({"conv1.weight": torch.zeros(64, 3, 7, 7)})  # a ResNet, say
    with pytest.raises(PosekitError, match="--inception-weights: not the FID Inception"):
        inception_net(alexnet_state)


def test_fid_is_about_zero_for_identical_sets_and_grows_with_the_difference(backbones):
    a, b = random_images(8, 0), random_images(8, 1)
    fa, la = inception_features(backbones.inception, a, "cpu")
    fb, _ = inception_features(backbones.inception, b, "cpu")
    fdark, _ = inception_features(backbones.inception, a // 4, "cpu")
    apart = fid(fa, fdark)
    assert abs(fid(fa, fa)) < 1e-6 * apart
    assert fid(fdark, fa) == pytest.approx(apart, rel=1e-4)  # symmetric
    assert 0 < fid(fa, fb) < apart  # two random sets are closer than a set and its darkened copy
    # IS: one image repeated is 1 exactly (every split's marginal is its prediction); more is >= 1
    assert inception_score(la[:1].repeat(8, 1))[0] == pytest.approx(1)
    assert inception_score(la, splits=2)[0] >= 1


@pytest.fixture
def market_layout(tmp_path):
    from test_patn_data import official_layout
    from test_patn_model import official_state

    from posekit.methods.patn.data import PRESETS

    official_layout(tmp_path / "market", PRESETS["market1501"])
    torch.save(official_state(ngf=8, blocks=2, norm="batch"), tmp_path / "latest_net_netG.pth")
    return tmp_path


class ListDetector:
    """Finds, on the i-th image of every batch it is shown, the i-th pose of a list (None: nobody)."""

    def __init__(self, poses):
        self.poses = list(poses)

    def detect(self, images):
        assert len(images) == len(self.poses)
        return [[p] if p is not None else [] for p in self.poses]


def test_official_market_layout_end_to_end_in_the_authors_image_layout(market_layout, backbones):
    from posekit.images import load_image
    from posekit.methods.patn.method import load_patn
    from posekit.metrics import ssim

    G, config = load_patn(market_layout / "latest_net_netG.pth", "market1501")
    data = evaluation_set(config, market_layout / "market")
    assert data.names == [("a.jpg", "b.jpg"), ("b.jpg", "c.jpg")]  # the unannotated pair is left out
    targets = [Pose(data.pairs[i]["K2"].numpy(), 64, 128) for i in range(2)]
    report = evaluate_generator(G, data, "cpu", backbones, ListDetector(targets), with_is=True)
    assert report["pairs"] == 2 and report["pckh"] == report["pckh_targets"] == 1.0 and report["pckh_pairs"] == 2
    assert report["fid_reference_images"] == 3 and np.isfinite(report["fid"]) and report["is"] >= 1
    assert 0 < report["lpips"] and "ssim_padded" not in report and "is_padded" not in report  # DeepFashion's only
    assert report["is_splits"] == 2
    # a detector that finds nobody scores 0; without backbones those columns are left out; one
    # pair per batch gives the same scores
    out = market_layout / "results"
    bare = evaluate_generator(G, data, "cpu", detector=ListDetector([None]), batch_size=1, save_dir=out)
    assert bare["pckh"] == bare["pckh_targets"] == 0.0 and not {"lpips", "fid", "is"} & set(bare)
    assert bare["ssim"] == pytest.approx(report["ssim"])
    # what the authors' getMetrics scripts read: <from>___<to>_vis.png, cut into fifths
    saved = sorted(p.name for p in out.iterdir())
    assert saved == ["a.jpg___b.jpg_vis.png", "b.jpg___c.jpg_vis.png"]
    scores = []
    for name in saved:
        image = load_image(out / name)
        assert image.shape == (128, 5 * 64, 3)
        target, generated = image[:, 128:192], image[:, 256:]
        assert np.array_equal(target, load_image(market_layout / "market" / "test" / name.split("___")[1][:-8]))
        scores.append(ssim(generated, target))
    assert np.mean(scores) == pytest.approx(report["ssim"])
    only_is = evaluate_generator(G, data, "cpu", backbones, with_fid=False, with_is=True)
    assert "fid" not in only_is and only_is["is"] == pytest.approx(report["is"])


def test_jpeg_scores_what_the_authors_scored(market_layout):
    """--jpeg: the strips saved as the authors' test.py saved them (PIL's JPEG, quality 75) and
    the scores those of the images cut back out of the saved files, as their getMetrics did."""
    from PIL import Image

    from posekit.images import load_image
    from posekit.methods.patn.method import load_patn
    from posekit.metrics import mask_ssim, ssim

    G, config = load_patn(market_layout / "latest_net_netG.pth", "market1501")
    data = evaluation_set(config, market_layout / "market")
    out = market_layout / "jpeg"
    lossless = evaluate_generator(G, data, "cpu", padded=False)
    report = evaluate_generator(G, data, "cpu", save_dir=out, padded=False, jpeg=True)
    saved = sorted(out.iterdir())
    assert [p.name for p in saved] == ["a.jpg___b.jpg_vis.jpg", "b.jpg___c.jpg_vis.jpg"]
    assert all(Image.open(p).format == "JPEG" for p in saved)
    scores, masked = [], []
    for path, i in zip(saved, range(2)):
        strip = load_image(path)
        target, generated = strip[:, 128:192], strip[:, 256:]
        scores.append(ssim(generated, target))
        masked.append(mask_ssim(generated, target, Pose(data.pairs[i]["K2"].numpy(), 64, 128)))
    assert report["ssim"] == pytest.approx(np.mean(scores)) and report["mask_ssim"] == pytest.approx(np.mean(masked))
    assert report["ssim"] != pytest.approx(lossless["ssim"])  # JPEG changes what is scored
    # the panels before the JPEG are the authors' util.tensor2im's: (x + 1) / 2.0 * 255.0 in
    # float32, truncated (rounding, as the lossless scores do, gives other files)
    def tensor2im(x):
        return ((x.permute(0, 2, 3, 1).numpy() + 1) / 2.0 * 255.0).astype(np.uint8)

    batch = torch.utils.data.default_collate([data.pairs[i] for i in range(2)])
    with torch.no_grad():
        fake = G.eval()(batch["P1"], batch["BP1"], batch["BP2"])
    panels = [tensor2im(batch["P1"]), tensor2im(batch["P2"]), tensor2im(fake)]
    assert (panels[1] != to_uint8(batch["P2"])).any() and (panels[2] != to_uint8(fake)).any()
    for i, path in enumerate(saved):
        strip = authors_image(*(panel[i] for panel in panels), Pose(batch["K1"][i].numpy(), 64, 128),
                              Pose(batch["K2"][i].numpy(), 64, 128))
        buffer = io.BytesIO()
        Image.fromarray(strip).save(buffer, format="JPEG")
        assert buffer.getvalue() == path.read_bytes(), path.name


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, inception_state, alexnet_state):
    """A small synthetic generator (with train-gan's metadata) and random backbone files."""
    from posekit.methods.patn.model import PATNGenerator, init_weights
    from posekit.methods.patn.train import TrainConfig, generator_config, save_net

    root = tmp_path_factory.mktemp("evaluate_gan")
    config = TrainConfig(dataset="synthetic", ngf=4, blocks=1, image_height=64, image_width=32).resolved()
    torch.manual_seed(0)
    save_net(init_weights(PATNGenerator(4, 1, "batch", 0.0)), root / "netG.safetensors", generator_config(config))
    torch.save(alexnet_state, root / "alexnet.pth")
    torch.save(inception_state, root / "inception.pth")
    return root


def test_evaluate_gan_prints_the_table_and_json(run_posekit, cli_files):
    r = run_posekit("evaluate-gan", "--checkpoint", cli_files / "netG.safetensors", "--limit", "4",
                    "--lpips-weights", cli_files / "alexnet.pth", "--inception-weights", cli_files / "inception.pth",
                    "--fid-reference", "6", "--is", "--json", "--save-images", cli_files / "images", env=THREADS)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["dataset"] == "synthetic" and report["pairs"] == 4 and report["fid_reference_images"] == 6
    for key in ("ssim", "ssim_padded", "mask_ssim", "l1", "pckh_pairs", "lpips", "fid", "is", "is_padded"):
        assert key in report, key
    assert "pad40: 40 px of white" in report["protocol"] and "IS: 4 splits of 4 images" in report["protocol"]
    for label in ("SSIM pad40", "mask-SSIM", "PCKh@0.5", "LPIPS", "FID", "IS", "IS pad40", "4 test pairs of synthetic"):
        assert label in r.stderr, label
    # an FID and an IS of a handful of images are said to be that, with what the literature uses
    assert "warning: FID from 4 generated and 6 reference images: below 2048" in r.stderr, r.stderr
    assert "warning: IS from 4 images in 4 splits (1 per split): under 50 per split" in r.stderr, r.stderr
    assert len(list((cli_files / "images").glob("synthetic-*___synthetic-*_vis.png"))) == 4


def test_evaluate_gan_offline_names_the_file_to_fetch_and_the_flag(run_posekit, cli_files, tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "empty_torch_cache"), **THREADS}
    common = ("evaluate-gan", "--checkpoint", cli_files / "netG.safetensors", "--limit", "2", "--no-pckh")
    r = run_posekit(*common, "--no-fid", env=env)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "alexnet-owt-7be5be79.pth" in r.stderr and "--lpips-weights" in r.stderr
    r = run_posekit(*common, "--no-lpips", env=env)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "weights-inception-2015-12-05-6726825d.pth" in r.stderr and "--inception-weights" in r.stderr
    r = run_posekit(*common, "--no-lpips", "--inception-weights", tmp_path / "missing.pth", env=env)
    assert r.returncode == 2 and "--inception-weights" in r.stderr and "no such file" in r.stderr  # a usage error


def test_evaluate_gan_usage_errors(run_posekit, cli_files, market_layout):
    r = run_posekit("evaluate-gan", "--checkpoint", cli_files / "netG.safetensors", "--dataset", "coco")
    assert r.returncode == 2 and "--dataset 'coco'" in r.stderr
    r = run_posekit("evaluate-gan", "--checkpoint", market_layout / "latest_net_netG.pth", "--dataset", "market1501")
    assert r.returncode == 2 and "--data-root" in r.stderr and "Traceback" not in r.stderr
    r = run_posekit("evaluate-gan", "--checkpoint", cli_files / "netG.safetensors", "--detector", "yolo")
    assert r.returncode == 2 and "--detector 'yolo'" in r.stderr
    r = run_posekit("evaluate-gan", "--checkpoint", market_layout / "nothing.pth")
    assert r.returncode == 2 and "no such file" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_posekit("evaluate-gan", "--checkpoint", market_layout / "latest_net_netG.pth", "--dataset", "market1501",
                    "--data-root", market_layout / "nowhere")
    assert r.returncode == 2 and "--data-root" in r.stderr and "no such folder" in r.stderr, r.stderr
    # a synthetic generator is scored on its built-in figures: a --data-root is refused, not ignored
    r = run_posekit("evaluate-gan", "--checkpoint", cli_files / "netG.safetensors", "--data-root", market_layout / "market")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "--data-root" in r.stderr and "synthetic" in r.stderr and "leave --data-root out" in r.stderr


def test_evaluate_gan_without_fid_needs_only_the_test_split(run_posekit, market_layout):
    import shutil

    root = market_layout / "market"
    shutil.rmtree(root / "train")
    (root / "market-annotation-train.csv").unlink()
    (root / "market-pairs-train.csv").unlink()
    common = ("evaluate-gan", "--checkpoint", market_layout / "latest_net_netG.pth", "--dataset", "market1501",
              "--data-root", root, "--no-pckh", "--no-lpips")
    r = run_posekit(*common, "--no-fid", "--json", env=THREADS)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pairs"] == 2
    r = run_posekit(*common, env=THREADS)  # FID compares against the training images: it names the missing file
    assert r.returncode == 1 and "market-annotation-train.csv" in r.stderr and len(r.stderr.splitlines()) == 1


def test_train_gan_ends_with_the_tables_cheap_columns(run_posekit, tmp_path):
    r = run_posekit("train-gan", "--dataset", "synthetic", "--size", "16x32", "--ngf", "4", "--blocks", "1",
                    "--batch-size", "2", "--workers", "0", "--eval-pairs", "4", "--iters", "1",
                    "--perceptual-weight", "0", "--seed", "3", "--out", tmp_path / "run", env=THREADS)
    assert r.returncode == 0, r.stderr
    for label in ("4 held-out pairs", "SSIM pad40", "mask-SSIM", "copy the source"):
        assert label in r.stderr, label
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["ssim"] < metrics["ssim_padded"] and "mask_ssim_source_baseline" in metrics
    # evaluate-gan's synthetic test pairs begin with train-gan's held-out pairs (the run's own seed,
    # read from its config.json): the same scores
    r = run_posekit("evaluate-gan", "--checkpoint", tmp_path / "run", "--limit", "4", "--no-pckh", "--no-lpips",
                    "--no-fid", "--json", env=THREADS)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    for key in ("ssim", "ssim_padded", "mask_ssim", "l1"):
        assert report[key] == pytest.approx(metrics[key]), key


def test_train_gan_on_market_has_no_pad40_column(run_posekit, market_layout):
    """Market-1501's script does not pad its 64-wide images: train-gan's table and metrics.json
    leave SSIM pad40 out there, as evaluate-gan does."""
    run = market_layout / "run"
    r = run_posekit("train-gan", "--dataset", "market1501", "--data-root", market_layout / "market", "--ngf", "4",
                    "--blocks", "1", "--batch-size", "2", "--workers", "0", "--iters", "1", "--perceptual-weight", "0",
                    "--out", run, env=THREADS)
    assert r.returncode == 0, r.stderr
    assert "mask-SSIM" in r.stderr and "pad40" not in r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert "mask_ssim_source_baseline" in metrics and not any(key.startswith("ssim_padded") for key in metrics)


def test_fid_and_is_of_enough_images_are_not_warned_about():
    from posekit.methods.patn.evaluate import too_few_images

    assert too_few_images({"pairs": 8570, "fid_reference_images": 20000, "fid": 1.0, "is": 3.0}) == []
    assert len(too_few_images({"pairs": 499, "is": 3.0})) == 1 and too_few_images({"pairs": 500, "is": 3.0}) == []
    assert len(too_few_images({"pairs": 8570, "fid_reference_images": 500, "fid": 9.0})) == 1


def test_pckh_pools_keypoints_over_pairs_and_fid_needs_two_images():
    """The authors' PCKh divides all correct keypoints by all target keypoints once; FID of one
    image has no covariance and is a usage error, not a LinAlgError."""
    import numpy as np
    import torch

    from posekit.errors import UsageError
    from posekit.methods.patn.evaluate import fid, pooled

    measured = np.array([True, True, False])
    assert pooled([1.0, 0.0, float("nan")], [2, 8, 5], measured) == pytest.approx(0.2)  # mean would be 0.5
    assert pooled([float("nan")], [3], np.array([False])) is None
    with pytest.raises(UsageError, match="FID needs at least 2"):
        fid(torch.rand(1, 8), torch.rand(5, 8))

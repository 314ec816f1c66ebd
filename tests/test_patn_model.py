"""PATN generator / discriminators: the authors' key layout, official checkpoint loading, and a
forward pass checked against an independent functional reading of their architecture."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from posekit.errors import PosekitError
from posekit.methods.patn.model import (PATNGenerator, ResnetDiscriminator, architecture_of, gan_loss,
                                        load_official_generator, parameter_count)


def official_layout(ngf=64, blocks=9, norm="instance") -> dict[str, tuple]:
    """Key -> shape of the authors' latest_net_netG.pth, written from reference/patn.md."""
    bias = norm == "instance"
    shapes: dict[str, tuple] = {}

    def conv(prefix, cin, cout, k, has_bias=bias, transposed=False):
        shapes[f"{prefix}.weight"] = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        if has_bias:
            shapes[f"{prefix}.bias"] = (cout,)

    def bn(prefix, c):
        if norm == "batch":
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{prefix}.{name}"] = (c,)
            shapes[f"{prefix}.num_batches_tracked"] = ()

    for stream, cin in (("stream1_down", 3), ("stream2_down", 36)):
        conv(f"model.{stream}.1", cin, ngf, 7); bn(f"model.{stream}.2", ngf)
        conv(f"model.{stream}.4", ngf, 2 * ngf, 3); bn(f"model.{stream}.5", 2 * ngf)
        conv(f"model.{stream}.7", 2 * ngf, 4 * ngf, 3); bn(f"model.{stream}.8", 4 * ngf)
    d = 4 * ngf
    for i in range(blocks):
        c = d if i == 0 else 2 * d
        s1, s2 = f"model.att.{i}.conv_block_stream1", f"model.att.{i}.conv_block_stream2"
        conv(f"{s1}.1", d, d, 3); bn(f"{s1}.2", d); conv(f"{s1}.6", d, d, 3); bn(f"{s1}.7", d)
        conv(f"{s2}.1", c, c, 3); bn(f"{s2}.2", c); conv(f"{s2}.6", c, d, 3)
    conv("model.stream1_up.0", 4 * ngf, 2 * ngf, 3, transposed=True); bn("model.stream1_up.1", 2 * ngf)
    conv("model.stream1_up.3", 2 * ngf, ngf, 3, transposed=True); bn("model.stream1_up.4", ngf)
    conv("model.stream1_up.7", ngf, 3, 7, has_bias=True)
    return shapes


def official_state(ngf=64, blocks=9, norm="instance", stray=True) -> dict:
    g = torch.Generator().manual_seed(1)
    state = {}
    for k, shape in official_layout(ngf, blocks, norm).items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g) * 0.05
    if stray and norm == "instance":  # what the published DeepFashion file carries
        for prefix in ("model.stream1_down.2", "model.att.0.conv_block_stream1.2", "model.stream1_up.1"):
            c = 128 if "up" in prefix else (64 if "down" in prefix else 256) * ngf // 64
            state[f"{prefix}.running_mean"] = torch.zeros(c)
            state[f"{prefix}.running_var"] = torch.ones(c)
    return state


def test_full_deepfashion_generator_matches_the_official_layout():
    g = PATNGenerator()
    state = g.state_dict()
    expected = official_layout()
    assert len(state) == 90 == len(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert parameter_count(g) == pytest.approx(41.36e6, rel=1e-3)


def test_market_generator_matches_the_official_batch_norm_layout():
    g = PATNGenerator(norm="batch")
    assert {k: tuple(v.shape) for k, v in g.state_dict().items()} == official_layout(norm="batch")
    assert architecture_of(g.state_dict()) == {"ngf": 64, "blocks": 9, "norm": "batch"}


def test_official_deepfashion_checkpoint_loads_key_by_key(tmp_path):
    state = official_state()
    path = tmp_path / "latest_net_netG.pth"
    torch.save(state, path)
    net = load_official_generator(path)
    assert (net.ngf, net.blocks, net.norm) == (64, 9, "instance")
    ours = net.state_dict()
    official = {k: v for k, v in state.items() if "running" not in k}  # the stray stats are dropped
    assert set(ours) == set(official) and len(ours) == 90
    for k, v in official.items():
        assert torch.equal(ours[k], v), k


def test_official_market_checkpoint_keeps_batch_norm_statistics(tmp_path):
    state = official_state(ngf=8, blocks=2, norm="batch")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "latest_net_netG.pth")  # DataParallel prefix
    net = load_official_generator(tmp_path / "latest_net_netG.pth")
    assert net.norm == "batch" and net.blocks == 2 and net.ngf == 8
    ours = net.state_dict()
    assert set(ours) == set(state)
    for k, v in state.items():
        assert torch.equal(ours[k], v), k


def reference_forward(state: dict, blocks: int, norm: str, image, pose_code):
    """The authors' generator as functional calls on their own key names (patn.md), in eval mode."""
    def n(x, prefix):
        if norm == "instance":
            return F.instance_norm(x)
        return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False)

    def conv(x, prefix, pad, stride=1):
        if pad:
            x = F.pad(x, (pad,) * 4, mode="reflect")
        return F.conv2d(x, state[f"{prefix}.weight"], state.get(f"{prefix}.bias"), stride=stride,
                        padding=0 if pad else 1)

    def down(x, s):
        x = F.relu(n(conv(x, f"model.{s}.1", 3), f"model.{s}.2"))
        x = F.relu(n(conv(x, f"model.{s}.4", 0, 2), f"model.{s}.5"))
        return F.relu(n(conv(x, f"model.{s}.7", 0, 2), f"model.{s}.8"))

    x, p = down(image, "stream1_down"), down(pose_code, "stream2_down")
    for i in range(blocks):
        s1, s2 = f"model.att.{i}.conv_block_stream1", f"model.att.{i}.conv_block_stream2"
        a = F.relu(n(conv(x, f"{s1}.1", 1), f"{s1}.2"))
        a = n(conv(a, f"{s1}.6", 1), f"{s1}.7")
        q = F.relu(n(conv(p, f"{s2}.1", 1), f"{s2}.2"))
        q = conv(q, f"{s2}.6", 1)
        x = x + a * torch.sigmoid(q)
        p = torch.cat([q, x], 1)
    for i, j in ((0, 1), (3, 4)):
        x = F.conv_transpose2d(x, state[f"model.stream1_up.{i}.weight"], state.get(f"model.stream1_up.{i}.bias"),
                               stride=2, padding=1, output_padding=1)
        x = F.relu(n(x, f"model.stream1_up.{j}"))
    return torch.tanh(conv(x, "model.stream1_up.7", 3))


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_forward_reproduces_the_official_architecture(tmp_path, norm):
    state = official_state(ngf=8, blocks=3, norm=norm, stray=False)
    torch.save(state, tmp_path / "latest_net_netG.pth")
    net = load_official_generator(tmp_path / "latest_net_netG.pth").eval()
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 16, generator=g) * 2 - 1
    bp1, bp2 = torch.rand(2, 18, 32, 16, generator=g), torch.rand(2, 18, 32, 16, generator=g)
    with torch.no_grad():
        ours = net(image, bp1, bp2)
        theirs = reference_forward(state, 3, norm, image, torch.cat([bp1, bp2], 1))
    assert ours.shape == (2, 3, 32, 16)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_discriminators_score_every_element_at_quarter_size():
    d_pp, d_pb = ResnetDiscriminator(6, 8), ResnetDiscriminator(21, 8, sigmoid=True)
    assert parameter_count(ResnetDiscriminator(6)) == pytest.approx(3.93e6, rel=0.01)
    out = d_pb(torch.randn(2, 21, 32, 16))
    assert out.shape == (2, 32, 8, 4) and out.min() >= 0 and out.max() <= 1
    assert d_pp(torch.randn(2, 6, 32, 16)).shape == (2, 32, 8, 4)
    # LSGAN and vanilla GAN targets: a perfect prediction costs nothing
    assert gan_loss(torch.ones(2, 4), True, lsgan=True).item() == 0
    assert gan_loss(torch.full((2, 4), 0.9), True, lsgan=False) < gan_loss(torch.full((2, 4), 0.1), True, lsgan=False)


def test_unreadable_or_foreign_checkpoints_are_one_line_errors(tmp_path):
    bad = tmp_path / "latest_net_netG.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(PosekitError, match="cannot read"):
        load_official_generator(bad)
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(PosekitError, match="not a PATN generator"):
        load_official_generator(bad)
    state = official_state(ngf=8, blocks=2, stray=False)
    del state["model.att.1.conv_block_stream2.6.weight"]
    torch.save(state, bad)
    with pytest.raises(PosekitError, match="do not match"):
        load_official_generator(bad)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_encoding_the_source_once_gives_the_same_frames(norm):
    torch.manual_seed(0)
    g = PATNGenerator(ngf=8, blocks=2, norm=norm).eval()
    src, src_maps = torch.randn(1, 3, 32, 16), torch.rand(1, 18, 32, 16)
    targets = torch.rand(3, 18, 32, 16)
    with torch.no_grad():
        full = g(src.expand(3, -1, -1, -1), src_maps.expand(3, -1, -1, -1), targets)
        reused = g.from_code(g.encode(src).expand(3, -1, -1, -1), src_maps.expand(3, -1, -1, -1), targets)
    assert torch.allclose(full, reused, atol=1e-6)

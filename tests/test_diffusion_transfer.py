"""`posekit transfer --method diffusion` and DiffusionMethod on a tiny SD 1.x + ControlNet."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image



pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_sd):
    return tiny_sd


@pytest.fixture(scope="module")
def small_photo(astronaut):
    """The astronaut at 101x90: a size that is not a multiple of 8."""
    return np.asarray(Image.fromarray(astronaut).resize((101, 90), Image.LANCZOS))


@pytest.fixture(scope="module")
def clip():
    from posekit.pose.motions import motion

    return motion("walk", frames=4, width=101, height=90)


def method(tiny, photo, pose, **kw):
    from posekit.methods.diffusion.method import DiffusionMethod, DiffusionOptions

    sd, cn = tiny
    # init source unless a test asks for the warp: the tests here are about SD, not the warp
    options = dict(model=str(sd), controlnet=str(cn), steps=4, strength=0.5, prompt="a photo of sks person",
                   device="cpu", init="source")
    return DiffusionMethod(photo, pose, DiffusionOptions(**{**options, **kw}))


def test_frames_have_the_source_size_rounded_to_8_and_same_seed_same_image(tiny, small_photo, clip):
    m = method(tiny, small_photo, clip[0])
    a = m(clip[:2])
    assert [f.shape for f in a] == [(88, 104, 3)] * 2 and a[0].dtype == np.uint8
    b = m(clip[:2])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # the skeleton steers the image: two poses, the same seed, two different frames
    assert not np.array_equal(a[0], a[1])
    other = method(tiny, small_photo, clip[0], seed=1)(clip[:1])
    assert not np.array_equal(a[0], other[0])
    # frame_pose: the target pose in the 104x88 frame
    fp = m.frame_pose(clip[1])
    assert fp.size == (104, 88)
    np.testing.assert_allclose(fp.keypoints[:, 0], clip[1].keypoints[:, 0] * 104 / 101, rtol=1e-5)


def test_controlnet_none_is_plain_img2img_from_the_source(tiny, small_photo, clip):
    m = method(tiny, small_photo, clip[0], controlnet="none", strength=0.25)
    assert not hasattr(m.pipe, "controlnet")
    a, b = m(clip[:2])
    assert np.array_equal(a, b)  # no pose conditioning: the same noise and init give the same image
    # img2img: the result starts from the source photo (another photo, another image)
    mirrored = method(tiny, small_photo[:, ::-1], clip[0], controlnet="none", strength=0.25)(clip[:1])[0]
    assert not np.array_equal(a, mirrored)


def test_sheet_mode_generates_one_canvas_and_cuts_it(tiny, small_photo, clip):
    m = method(tiny, small_photo, clip[0], sheet=True, columns=3)
    assert (m.sheet_short, m.sheet_side) == (512, 768)  # SD 1.5's bounds, for the whole canvas
    m.sheet_side = 256
    seen = []
    real = m._generate
    m._generate = lambda init, skeleton, step, name: seen.append((init.shape, skeleton.copy())) or real(
        init, skeleton, step, name)
    frames = m(clip)
    assert len(seen) == 1  # one pass for the whole clip
    (shape, skeleton), = seen
    # 3 columns x 2 rows of cells, the sheet's long side within 256 px, cells multiples of 8
    assert shape[1] <= 256 and shape[0] % 2 == 0 and shape[1] % 3 == 0 and (shape[1] // 3) % 8 == 0
    ch, cw = shape[0] // 2, shape[1] // 3
    assert all(skeleton[:ch, c * cw:(c + 1) * cw].any() for c in range(3))
    assert skeleton[ch:, :cw].any() and not skeleton[ch:, cw:].any()  # 4 frames: the last 2 cells are empty
    assert [f.shape for f in frames] == [(88, 104, 3)] * 4


def test_sheet_canvas_is_sd_sized_and_small_cells_warn(tiny, small_photo, clip, capsys):
    """The whole canvas at SD 1.5's scale: 512 px on its short side, at most 768 on its long one."""
    m = method(tiny, small_photo, clip[0], sheet=True, steps=1, strength=1.0)
    seen = []
    real = m._generate
    m._generate = lambda init, skeleton, step, name: seen.append(init.shape) or real(init, skeleton, step, name)
    m(clip[:2])  # 2 cells of 104x88 side by side: 208x88, scaled up until the long side is 768
    assert seen == [(320, 768, 3)] and "warning" not in capsys.readouterr().err
    four = [clip[i % 4] for i in range(4)]  # 2x2 cells: 208x176 brought to 512 px high, 296x256 each
    m(four)
    assert seen[-1] == (512, 592, 3) and "warning" not in capsys.readouterr().err
    many = [clip[i % 4] for i in range(16)]  # 4x4 cells: 416x352 brought to 512 px high, 144x128 each
    m(many)  # a person 128 px tall: SD 1.5 breaks faces and hands; no --columns helps, 4 frames do
    err = capsys.readouterr().err
    assert seen[-1] == (512, 576, 3) and "too small for SD to draw a person" in err
    assert "use 4 frames or fewer (--frames)" in err
    m.columns = 16
    m(many)  # one row of 16: 48 px cells
    assert seen[-1][1] <= 768 and "too small for SD to draw a person" in capsys.readouterr().err
    m.size, m.columns = (192, 108), None  # a 16:9 photo: 2 frames side by side are 216 px tall, one above the other 288
    assert m._sheet_advice(2) == "use --columns 1 (512x288 px per frame)"


def test_init_warp_is_the_default_and_starts_from_the_warped_source(tiny, small_photo, clip):
    from posekit.methods.diffusion.method import DiffusionOptions

    assert DiffusionOptions().init == "warp"
    m = method(tiny, small_photo, clip[0], init="warp", strength=0.25)
    assert m.warp is not None
    frames = m(clip[1:3])
    assert [f.shape for f in frames] == [(88, 104, 3)] * 2
    assert not np.array_equal(frames[0], method(tiny, small_photo, clip[0], strength=0.25)(clip[1:2])[0])


def test_init_warp_falls_back_to_the_source_without_a_torso(tiny, small_photo, clip, capsys):
    """The warp needs the photo's torso; a pose without shoulders gets init source, with one warning."""
    from posekit.pose.pose import Pose

    kp = clip[0].keypoints.copy()
    kp[[2, 5, 8, 11], 2] = 0.0  # no shoulders, no hips: no torso to warp
    no_torso = Pose(kp, *clip[0].size)
    m = method(tiny, small_photo, no_torso, init="warp", strength=0.5)
    err = capsys.readouterr().err
    assert m.warp is None and err.count("warning") == 1 and "--init warp" in err and "--init source" in err
    np.testing.assert_array_equal(m(clip[1:2])[0], method(tiny, small_photo, no_torso)(clip[1:2])[0])


def test_bad_options_are_usage_errors(tiny, small_photo, clip):
    from posekit.errors import UsageError

    with pytest.raises(UsageError, match="--init"):
        method(tiny, small_photo, clip[0], init="noise")
    with pytest.raises(UsageError, match="--strength"):
        method(tiny, small_photo, clip[0], strength=0.1, steps=4)


def test_cli_transfer_diffusion(tiny, small_photo, clip, tmp_path, run_posekit):
    from posekit.pose.formats import write_openpose_json

    from posekit.methods.diffusion.method import DiffusionMethod
    from posekit.pipeline import working_image

    sd, cn = tiny
    photo = tmp_path / "me.png"
    Image.fromarray(small_photo).save(photo)
    write_openpose_json([clip[0]], tmp_path / "me_keypoints.json")
    write_openpose_json([clip[2]], tmp_path / "target.json")
    args = ["transfer", photo, "--source-pose", tmp_path / "me_keypoints.json", "--pose", tmp_path / "target.json",
            "--method", "diffusion", "--model", sd, "--controlnet", cn, "--steps", "2", "--strength", "1.0",
            "--prompt", "a photo of sks person", "--device", "cpu", "--init", "source"]
    r = run_posekit(*args, "--out", tmp_path / "a.png", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # stdout is for data only
    a = np.asarray(Image.open(tmp_path / "a.png"))
    # the 101x90 photo is brought to SD 1.5's size first: 512 px on the short side
    size = DiffusionMethod.working_size(101, 90)
    assert size == (576, 512) and a.shape == (512, 576, 3)
    # the command gives what the library gives for the same seed, on the photo at that size
    b = method(tiny, working_image(small_photo, size), clip[0].resized(*size), steps=2, strength=1.0)(
        [clip[2].fitted(*size)])[0]
    assert np.array_equal(a, b)


def test_cli_offline_default_models_are_one_line_errors(astronaut_path, clip, tmp_path, run_posekit):
    """The real defaults (hub ids), not cached, no network: one line naming model and flag."""
    from posekit.pose.formats import write_openpose_json

    write_openpose_json([clip[0].resized(512, 512)], tmp_path / "t.json")
    r = run_posekit("transfer", astronaut_path, "--source-pose", tmp_path / "t.json", "--pose", tmp_path / "t.json",
                    "--method", "diffusion", "--out", tmp_path / "o.png",
                    env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "lllyasviel/control_v11p_sd15_openpose is not downloaded" in r.stderr and "--controlnet PATH" in r.stderr
    # only what the pipeline loads (on the CPU: full precision), not the repository's other checkpoints
    assert ('`hf download lllyasviel/control_v11p_sd15_openpose --include "*.json" '
            '--include "diffusion_pytorch_model.safetensors"`') in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_the_download_hints_name_only_what_the_pipeline_loads():
    import torch
    from test_hints import included

    from posekit.methods.diffusion.models import DEFAULT_CONTROLNET, DEFAULT_MODEL, safety_download, weights_download

    # SD 1.5's repository as the hub lists it (diffusers layout, plus whole-model checkpoints)
    repo = ["model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
            "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors", "tokenizer/merges.txt",
            "tokenizer/vocab.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.bin",
            "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.safetensors", "v1-5-pruned-emaonly-fp16.safetensors",
            "v1-5-pruned.ckpt", "feature_extractor/preprocessor_config.json", "safety_checker/config.json",
            "safety_checker/model.safetensors", "safety_checker/model.fp16.safetensors",
            "safety_checker/pytorch_model.bin", "safety_checker/pytorch_model.fp16.bin"]
    for dtype, fp16 in ((torch.float16, ".fp16"), (torch.float32, "")):
        loaded = [f"text_encoder/model{fp16}.safetensors", f"unet/diffusion_pytorch_model{fp16}.safetensors",
                  f"vae/diffusion_pytorch_model{fp16}.safetensors"]
        checker = [f"safety_checker/model{fp16}.safetensors"]
        for safety, wanted in ((False, loaded), (True, loaded + checker)):
            hint = weights_download(DEFAULT_MODEL, "--model", dtype, safety_checker=safety)
            got = included(repo, hint)
            # the weights the pipeline loads and no others (the safety checker only with it)
            assert sorted(f for f in got if f.endswith((".safetensors", ".bin", ".ckpt"))) == sorted(wanted), hint
            assert "tokenizer/vocab.json" in got and "model_index.json" in got and "tokenizer/merges.txt" in got
        got = included(repo, safety_download(DEFAULT_MODEL, dtype))
        assert sorted(got) == sorted(["safety_checker/config.json", *checker, "feature_extractor/preprocessor_config.json"])
    controlnet = ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                  "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin", "images/input.png"]
    assert included(controlnet, weights_download(DEFAULT_CONTROLNET, "--controlnet", torch.float16)) == [
        "config.json", "diffusion_pytorch_model.fp16.safetensors"]
    assert weights_download("someone/their-model", "--model", torch.float16) is None  # their layout: all of it


def sheet_clips(photo_size: tuple[int, int]):
    """The figure (feet in the photo) at `photo_size` and its pose, with idle, jump and run
    retargeted onto it: the jump leaves the frame, so a camera chosen per clip would differ."""
    from conftest import REPO
    from posekit.pipeline import Timer, prepare_targets
    from posekit.pose.formats import read_openpose_json

    image = np.asarray(Image.open(REPO / "examples" / "figure.png").convert("RGB").resize(photo_size, Image.LANCZOS))
    pose = read_openpose_json(REPO / "examples" / "figure_keypoints.json")[0].resized(*photo_size)
    clips = [(n, prepare_targets([n], image, pose, photo_size, Timer(), None, frames=3), n != "jump")
             for n in ("idle", "jump", "run")]
    return image, pose, clips


def lower_ankle(pose) -> float:
    return max(a[1] for a in (pose["r_ankle"], pose["l_ankle"]) if a is not None)


def test_one_init_warp_camera_for_every_clip_of_a_sheet(tiny, monkeypatch):
    """generate_strips fixes the init warp's camera once for all clips (fit_camera), before it
    takes the photo's floor: every clip is framed alike, and Strip.ground is where frame_pose puts
    the photo's feet while each clip runs (a camera chosen per clip moved the jump's floor)."""
    from posekit import pipeline
    from posekit.methods.diffusion.method import DiffusionMethod, DiffusionOptions

    image, pose, clips = sheet_clips((96, 128))
    built, floors = [], []
    original = DiffusionMethod.__call__

    @functools.wraps(original)  # its signature kept: clip_keywords reads the keywords it takes
    def call(self, targets, **keywords):
        frames = original(self, targets, **keywords)
        built.append(self)
        floors.append((self.warp.camera.matrix().copy(), lower_ankle(self.frame_pose(pose))))
        return frames

    monkeypatch.setattr(DiffusionMethod, "__call__", call)
    sd, cn = tiny
    options = DiffusionOptions(model=str(sd), controlnet=str(cn), steps=2, strength=0.5, device="cpu")
    strips = pipeline.generate_strips("diffusion", options, image, pose, clips, pipeline.Timer())
    m = built[0]
    assert all(b is m for b in built) and m.warp.camera_fixed and len(floors) == 3
    assert all(np.array_equal(c, floors[0][0]) for c, _ in floors)  # one camera for idle, jump and run
    assert all(s.ground == f for s, (_, f) in zip(strips, floors))  # the floor the frames are drawn with
    assert not m.warp.camera.is_identity()  # the jump needed room: the fixed camera is not the photo's view

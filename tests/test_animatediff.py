"""`--method animatediff` on a tiny SD 1.x + ControlNet + motion adapter (tests/tiny_animatediff.py).

Random tiny models draw noise, so these tests measure the machinery: frames and sizes, seeds,
that the motion module couples frames (and a zeroed one does not), that long clips go through
overlapping windows, that a cycle's windows wrap around its seam, and that one window gives
exactly what diffusers' own AnimateDiff ControlNet pipelines give for the same seed.
"""

from __future__ import annotations

import functools
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FIGURE, FIGURE_POSE = REPO / "examples" / "figure.png", REPO / "examples" / "figure_keypoints.json"


@pytest.fixture(scope="module")
def models(tiny_sd, tmp_path_factory):
    """(sd, controlnet, motion adapter, the same adapter with its motion modules zeroed)."""
    from tiny_animatediff import make_tiny_motion_adapter

    root = tmp_path_factory.mktemp("tiny_animatediff")
    still = make_tiny_motion_adapter(root / "still", coupled=False)
    return (*tiny_sd, make_tiny_motion_adapter(root / "motion"), still)


@pytest.fixture(scope="module")
def photo(astronaut):
    """The astronaut at 70x60: not a multiple of 8."""
    return np.asarray(Image.fromarray(astronaut).resize((70, 60), Image.LANCZOS))


@pytest.fixture(scope="module")
def clip():
    from posekit.pose.motions import motion

    return motion("walk", frames=8, width=70, height=60)


def method(models, photo, pose, motion=2, **kw):
    from posekit.methods.animatediff.method import AnimateDiffMethod, AnimateDiffOptions

    options = dict(model=str(models[0]), controlnet=str(models[1]), motion_adapter=str(models[motion]), steps=2,
                   prompt="a photo of sks person", device="cpu")
    return AnimateDiffMethod(photo, pose, AnimateDiffOptions(**{**options, **kw}))


def level(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames, in 0-255 levels."""
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# -- options ---------------------------------------------------------------------------------
def test_options_defaults_follow_lcm_and_bad_values_are_usage_errors():
    from posekit.errors import UsageError
    from posekit.methods.animatediff.method import AnimateDiffOptions

    plain, lcm = AnimateDiffOptions(), AnimateDiffOptions(lcm=True)
    assert (plain.steps, plain.guidance, plain.scheduler, plain.motion_adapter) == \
        (20, 7.5, "unipc", "guoyww/animatediff-motion-adapter-v1-5-3")
    assert (lcm.steps, lcm.guidance, lcm.scheduler, lcm.motion_adapter) == (6, 1.5, "lcm", "wangfuyun/AnimateLCM")
    assert AnimateDiffOptions(lcm=True, steps=4, motion_adapter="mine").steps == 4
    assert AnimateDiffOptions(context=4).context_overlap == 2  # the default overlap 4 would leave no stride
    for bad, flag in [(dict(init="source"), "--init"), (dict(scheduler="pndm"), "--scheduler"),
                      (dict(lcm=True, scheduler="ddim"), "--lcm"), (dict(controlnet="none"), "--controlnet"),
                      (dict(context_overlap=-1), "--context-overlap"), (dict(offload="gpu"), "--offload"),
                      (dict(init="warp", strength=0.01), "--strength")]:
        with pytest.raises(UsageError, match=flag):
            AnimateDiffOptions(**bad)


def test_motion_schedulers_are_set_as_diffusers_animatediff_docs_set_them():
    """Every sampler of a motion module gets linear betas (what AnimateDiff was trained with; SD
    1.5's folder says scaled_linear), DDIM also linspace timesteps, and the folder's own values
    otherwise (prediction type, steps offset); `model` leaves the folder's scheduler alone."""
    from types import SimpleNamespace

    from diffusers import PNDMScheduler

    from posekit.methods.animatediff.method import set_motion_scheduler

    sd15 = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1,
                skip_prk_steps=True, set_alpha_to_one=False, prediction_type="epsilon")
    for name, cls in [("unipc", "UniPCMultistepScheduler"), ("dpm++", "DPMSolverMultistepScheduler"),
                      ("ddim", "DDIMScheduler"), ("euler-a", "EulerAncestralDiscreteScheduler"),
                      ("lcm", "LCMScheduler"), ("model", "PNDMScheduler")]:
        pipe = SimpleNamespace(scheduler=PNDMScheduler(**sd15))
        set_motion_scheduler(pipe, name)
        c = pipe.scheduler.config
        assert type(pipe.scheduler).__name__ == cls, name
        assert c.beta_schedule == ("scaled_linear" if name == "model" else "linear"), name
        assert c.steps_offset == 1 and c.beta_end == 0.012, name
        if name == "ddim":
            assert c.timestep_spacing == "linspace" and c.clip_sample is False


def test_working_size_is_sd15s():
    from posekit.methods.animatediff.method import AnimateDiffMethod

    assert AnimateDiffMethod.working_size(384, 512) == (512, 680)
    assert AnimateDiffMethod.working_size(2000, 1000) == (768, 384)
    assert AnimateDiffMethod.working_size(100, 100) == (512, 512)


# -- windows ---------------------------------------------------------------------------------
@pytest.mark.parametrize("frames, context, overlap", [(1, 16, 4), (5, 16, 4), (16, 16, 4), (20, 16, 4),
                                                      (33, 16, 4), (10, 4, 1), (9, 4, 3), (12, 6, 0)])
def test_context_windows_cover_every_frame_and_wrap_only_for_loops(frames, context, overlap):
    from posekit.methods.animatediff.windows import context_windows

    for loop in (False, True):
        windows = context_windows(frames, context, overlap, loop)
        assert sorted({i for w in windows for i in w}) == list(range(frames))  # every frame, none else
        assert all(len(w) == min(context, frames) for w in windows)
        steps = [(b - a) % frames for w in windows for a, b in zip(w, w[1:])]
        assert all(s == 1 for s in steps)  # each window is consecutive frames (modulo n for a loop)
        seam = any(a == frames - 1 and b == 0 for w in windows for a, b in zip(w, w[1:]))
        # only a loop's windows run across the seam (with overlap 0 no window crosses any boundary)
        assert seam == (loop and frames > 2 and (overlap > 0 or frames <= context))
        if not loop:
            assert windows == sorted(windows) and (len(windows) == 1) == (frames <= context)
        for w, nxt in zip(windows, windows[1:]):  # neighbouring windows share `overlap` frames (or more)
            assert len(set(w) & set(nxt)) >= min(overlap, len(w) - 1) or frames <= 2


def test_closes_loop_reads_the_poses(clip):
    from posekit.methods.animatediff.windows import closes_loop
    from posekit.pose.motions import motion_at

    assert closes_loop(clip)  # a built-in walk: frame n would be frame 0
    half = motion_at("walk", np.linspace(0.0, 0.5, 8), width=70, height=60)
    assert not closes_loop(half)  # half a stride: the last pose is far from the first
    assert not closes_loop(clip[:2])


# -- the method ------------------------------------------------------------------------------
def test_frames_count_size_and_seed(models, photo, clip):
    m = method(models, photo, clip[0], context=4, context_overlap=2)
    a = m(clip[:5])
    assert [f.shape for f in a] == [(64, 72, 3)] * 5 and a[0].dtype == np.uint8  # 70x60 rounded to 8
    assert all(np.array_equal(x, y) for x, y in zip(a, m(clip[:5])))  # same seed, same frames
    other = method(models, photo, clip[0], context=4, context_overlap=2, seed=1)(clip[:5])
    assert all(level(x, y) > 1.0 for x, y in zip(a, other))
    fp = m.frame_pose(clip[1])
    assert fp.size == (72, 64)
    np.testing.assert_allclose(fp.keypoints[:, 0], clip[1].keypoints[:, 0] * 72 / 70, rtol=1e-5)
    assert m([]) == []


def test_the_motion_module_couples_frames(models, photo, clip):
    """Moving one target pose changes its neighbours' frames with the motion module, and leaves
    them exactly as they were when the motion modules are zeroed (frames then do not see each other)."""
    moved = list(clip[:6])
    moved[3] = clip[3].translate(12, 0)
    changes = {}
    for name, index in (("motion", 2), ("still", 3)):
        m = method(models, photo, clip[0], motion=index, context=6)
        changes[name] = [level(a, b) for a, b in zip(m(clip[:6], loop=False), m(moved, loop=False))]
    assert changes["motion"][3] > 0.05 and changes["still"][3] > 0.05  # the moved pose's own frame
    assert all(changes["motion"][i] > 0.005 for i in (0, 1, 2, 4, 5)), changes
    assert all(changes["still"][i] == 0.0 for i in (0, 1, 2, 4, 5)), changes


def test_a_long_clip_goes_through_overlapping_windows(models, photo, clip):
    from posekit.methods.animatediff.windows import context_windows
    from posekit.pose.motions import motion

    m = method(models, photo, clip[0], context=4, context_overlap=1)
    seen = []
    hook = m.pipe.unet.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[2]))
    try:
        frames = m(motion("walk", frames=11, width=70, height=60), loop=False)
    finally:
        hook.remove()
    windows = context_windows(11, 4, 1)
    assert len(frames) == 11 and len(windows) == 4
    assert seen == [4] * (2 * len(windows))  # each of 2 steps: every window, 4 frames each


def test_a_cycle_flows_across_its_seam(models, photo):
    """A cyclic clip's last frame is its first frame's neighbour like any other: moving the first
    pose changes the last frame as moving frame 6 changes frame 5 (the windows, 4 frames every 2,
    look the same from both). Without wrap-around the last frame is out of the first's reach in
    two steps (12 frames, windows of 4 sharing 2), so that change is exactly zero."""
    from posekit.pose.motions import motion

    from posekit.pose.render import draw_skeleton

    clip = motion("walk", frames=12, width=70, height=60)
    m = method(models, photo, clip[0], context=4, context_overlap=2)
    skeletons = [draw_skeleton(m.frame_pose(t)) for t in clip]
    effect = {}
    for loop, moved in ((True, 0), (True, 6), (False, 0)):
        changed = list(skeletons)
        changed[moved] = draw_skeleton(m.frame_pose(clip[moved].translate(12, 0)))
        effect[loop, moved] = [level(x, y) for x, y in zip(m.generate(skeletons, loop=loop),
                                                           m.generate(changed, loop=loop))]
    seam, inside = effect[True, 0][11], effect[True, 6][5]
    assert inside > 0.005 and 0.5 < seam / inside < 2.0, (seam, inside)  # measured 0.0226 vs 0.0232
    assert effect[False, 0][1] > 0.005 and effect[False, 0][11] == 0.0, effect[False, 0]
    # the poses of a built-in walk are a cycle: loop=None and loop=True close it
    looped = m.generate(skeletons, loop=True)
    assert all(np.array_equal(x, y) for x, y in zip(looped, m(clip)))
    assert all(np.array_equal(x, y) for x, y in zip(looped, m(clip, loop=True)))


def test_a_clip_that_does_not_cycle_is_left_open(models, photo, capsys):
    """Asked to loop a clip whose poses do not come back (half a stride), the method leaves it
    open (the frames of loop=False) and says why."""
    from posekit.pose.motions import motion_at

    half = motion_at("walk", np.linspace(0.0, 0.5, 6), width=70, height=60)
    m = method(models, photo, half[0], context=4, context_overlap=2)
    capsys.readouterr()
    asked = m(half, loop=True)
    assert "does not return to its first pose" in capsys.readouterr().err
    assert all(np.array_equal(x, y) for x, y in zip(asked, m(half, loop=False)))
    assert capsys.readouterr().err == ""


def test_one_window_equals_diffusers_pipelines(models, photo, clip):
    """Text-to-video and video-to-video: our loop gives diffusers' AnimateDiffControlNetPipeline
    and AnimateDiffVideoToVideoControlNetPipeline's frames for the same seed (within one level
    of rounding: the VAE decodes frame by frame here)."""
    import torch
    from diffusers import AnimateDiffVideoToVideoControlNetPipeline

    from posekit.methods.diffusion.method import init_images
    from posekit.pose.render import draw_skeleton

    targets = clip[:6]
    for init in ("none", "warp"):
        m = method(models, photo, clip[0], init=init, steps=4, strength=0.75, context=8)
        ours = m(targets, loop=False)
        skeletons = [Image.fromarray(draw_skeleton(m.frame_pose(t))) for t in targets]
        common = dict(prompt="a photo of sks person", num_inference_steps=4, guidance_scale=7.5, height=64, width=72,
                      conditioning_frames=skeletons, generator=torch.Generator("cpu").manual_seed(0), output_type="np")
        if init == "none":
            theirs = m.pipe(num_frames=6, **common).frames[0]
        else:
            v2v = AnimateDiffVideoToVideoControlNetPipeline.from_pipe(m.pipe)
            video = [Image.fromarray(f) for f in init_images(m.warp, targets, m.size)]
            theirs = v2v(video=video, strength=0.75, **common).frames[0]
        theirs = [(np.clip(f, 0, 1) * 255).round().astype(np.uint8) for f in theirs]
        diff = np.abs(np.stack(ours).astype(int) - np.stack(theirs).astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (init, diff.max(), (diff > 0).mean())
    assert level(ours[0], method(models, photo, clip[0], steps=4, context=8)(targets, loop=False)[0]) > 1.0


def test_init_warp_starts_from_the_photo(models, photo, clip):
    """Video-to-video starts from the photo warped into each pose: another photo, other frames.
    Text-to-video (no IP-Adapter) never looks at the photo: the same frames. (The pixels of the
    warp do not survive a random tiny VAE; the equivalence test above checks the noising.)"""
    other = np.ascontiguousarray(photo[:, ::-1])
    for init, same in (("warp", False), ("none", True)):
        a = method(models, photo, clip[0], init=init, strength=0.5, steps=4, context=4)(clip[:4])
        b = method(models, other, clip[0], init=init, strength=0.5, steps=4, context=4)(clip[:4])
        assert all(np.array_equal(x, y) == same for x, y in zip(a, b)), init


def make_lora(sd_folder, path, seed=3):
    """A LoRA in diffusers' layout for the tiny UNet's attention projections, random (non-zero)."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_pretrained(sd_folder, subfolder="unet")
    torch.manual_seed(seed)
    lora = {}
    for name, module in unet.named_modules():
        if re.search(r"attn[12]\.(to_q|to_k|to_v|to_out\.0)$", name):
            lora[f"unet.{name}.lora_A.weight"] = torch.randn(4, module.in_features) * 0.5
            lora[f"unet.{name}.lora_B.weight"] = torch.randn(module.out_features, 4) * 0.5
    save_file(lora, path)
    return path


def test_lora_dreambooth_folder_and_single_file_load(models, photo, clip, tmp_path):
    """A LoRA for the SD UNet reaches the motion UNet (the frames change); a `posekit dreambooth`
    run folder (a pipeline folder with the run's config and checkpoints beside it) and a
    single-file checkpoint (with --model-config) are a --model, giving the same frames."""
    import shutil

    from tiny_sd import make_tiny_single_file

    lora = make_lora(models[0], tmp_path / "pytorch_lora_weights.safetensors")
    base = method(models, photo, clip[0], context=4)(clip[:4])
    m = method(models, photo, clip[0], context=4, lora=str(lora))
    assert "lora" in m.pipe.get_list_adapters()["unet"]
    assert all(level(a, b) > 1.0 for a, b in zip(base, m(clip[:4])))

    run = tmp_path / "run"
    shutil.copytree(models[0], run)
    (run / "config.json").write_text(json.dumps({"instance_prompt": "a photo of sks person"}))
    (run / "checkpoint-2").mkdir()
    dreambooth = method(models, photo, clip[0], context=4, model=str(run))(clip[:4])
    assert all(np.array_equal(a, b) for a, b in zip(base, dreambooth))
    ckpt = make_tiny_single_file(models[0], tmp_path / "tiny-sd.safetensors")
    single = method(models, photo, clip[0], context=4, model=str(ckpt), model_config=str(models[0]))(clip[:4])
    assert all(level(a, b) < 0.01 for a, b in zip(base, single))


def test_lcm_is_animatelcm(models, photo, clip, tmp_path, monkeypatch):
    """--lcm: AnimateLCM's motion adapter and LoRA (one repository, here a local copy of its
    layout standing in for wangfuyun/AnimateLCM), active with the user's --lora at 1.0 and 0.8,
    and the LCM scheduler with linear betas."""
    import shutil

    import posekit.methods.animatediff.method as animatediff

    repo = tmp_path / "AnimateLCM"
    shutil.copytree(models[2], repo)  # config.json + diffusion_pytorch_model.safetensors at the top
    make_lora(models[0], repo / animatediff.ANIMATELCM_LORA, seed=4)
    monkeypatch.setattr(animatediff, "ANIMATELCM", str(repo))
    lora = make_lora(models[0], tmp_path / "mine.safetensors")
    options = dict(model=str(models[0]), controlnet=str(models[1]), device="cpu", context=4, lcm=True)
    m = animatediff.AnimateDiffMethod(photo, clip[0], animatediff.AnimateDiffOptions(lora=str(lora), **options))
    assert m.options.motion_adapter == str(repo) and (m.options.steps, m.options.guidance) == (6, 1.5)
    scheduler = m.pipe.scheduler
    assert type(scheduler).__name__ == "LCMScheduler" and scheduler.config.beta_schedule == "linear"
    assert sorted(m.pipe.get_active_adapters()) == ["lcm-lora", "lora"]
    layer = m.pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert layer.scaling["lcm-lora"] == pytest.approx(0.8 * layer.scaling["lora"])  # same rank and alpha
    frames = m(clip[:4])
    assert [f.shape for f in frames] == [(64, 72, 3)] * 4


@pytest.mark.parametrize("blocks, words", [
    ((16, 32, 64), "different number of blocks"),  # diffusers' "Incompatible Motion Adapter"
    ((32, 64), r"\.norm is \[32\] in the adapter, \[16\] in the model"),  # other widths
])
def test_a_motion_adapter_that_does_not_fit_is_one_line(models, photo, clip, tmp_path, blocks, words):
    from tiny_animatediff import make_tiny_motion_adapter

    from posekit.errors import ModelNotFoundError

    other = make_tiny_motion_adapter(tmp_path / "other", block_out_channels=blocks)
    with pytest.raises(ModelNotFoundError, match=words) as e:
        method(models, photo, clip[0], motion_adapter=str(other))
    message = str(e.value)
    assert message.startswith(f"--motion-adapter {other} does not fit --model {models[0]} (")
    assert "\n" not in message and len(message) < 400


def test_an_animatelcm_lora_that_does_not_fit_is_one_line(models, photo, clip, tmp_path, monkeypatch):
    """AnimateLCM's LoRA goes through the same loader as --method diffusion's LCM-LoRA."""
    import shutil

    import torch
    from safetensors.torch import save_file

    import posekit.methods.animatediff.method as animatediff
    from posekit.errors import ModelNotFoundError

    repo = tmp_path / "AnimateLCM"
    shutil.copytree(models[2], repo)
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"  # 16 wide in the tiny UNet
    save_file({f"unet.{attn}.lora_A.weight": torch.zeros(4, 40), f"unet.{attn}.lora_B.weight": torch.zeros(40, 4)},
              repo / animatediff.ANIMATELCM_LORA)
    monkeypatch.setattr(animatediff, "ANIMATELCM", str(repo))
    with pytest.raises(ModelNotFoundError) as e:
        method(models, photo, clip[0], motion_adapter=None, lcm=True)
    assert str(e.value) == (f"--lcm: cannot load {repo} into this model ({attn}.lora_A is [4, 40] in the LoRA, "
                            "[4, 16] in the model); --lcm is for SD 1.x models")


def test_out_of_gpu_memory_is_one_line_naming_offload(models, photo, clip, monkeypatch):
    import torch

    from posekit.errors import PosekitError

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    m = method(models, photo, clip[0], context=4)
    monkeypatch.setattr(m.pipe.unet, "forward", out_of_memory)
    with pytest.raises(PosekitError) as e:
        m(clip[:4])
    assert str(e.value) == ("the GPU ran out of memory for 4 frames of 72x64; try --offload model (about 3 GB of "
                            "GPU memory) or --offload sequential (the least)")


def test_ip_adapter_shows_the_person(models, photo, clip, tmp_path):
    """With an IP-Adapter the frames depend on the photo (the person cut out of it) even from
    noise; without one they do not (test_init_warp_starts_from_the_photo)."""
    from tiny_sd import make_tiny_ip_adapter

    from posekit.methods.diffusion.models import has_ip_adapter

    weights = make_tiny_ip_adapter(tmp_path / "ip")
    other = np.ascontiguousarray(photo[:, ::-1])
    m = method(models, photo, clip[0], context=4, ip_adapter=str(weights), ip_adapter_scale=1.0)
    assert has_ip_adapter(m.pipe) and m.image_embeds is not None
    a = m(clip[:4])
    b = method(models, other, clip[0], context=4, ip_adapter=str(weights), ip_adapter_scale=1.0)(clip[:4])
    assert all(level(x, y) > 5.0 for x, y in zip(a, b))  # measured: 24-30 levels


def test_safety_checker_blacks_out_flagged_frames(models, photo, clip, tmp_path, capsys):
    import shutil

    from tiny_sd import add_tiny_safety_checker

    flags, passes = tmp_path / "flags", tmp_path / "passes"
    add_tiny_safety_checker(shutil.copytree(models[0], flags), flag_everything=True)
    add_tiny_safety_checker(shutil.copytree(models[0], passes), flag_everything=False)
    clean = method(models, photo, clip[0], context=4)(clip[:3])
    checked = method(models, photo, clip[0], context=4, model=str(passes), safety_checker=True)(clip[:3])
    assert all(np.array_equal(a, b) for a, b in zip(clean, checked))
    m = method(models, photo, clip[0], context=4, model=str(flags), safety_checker=True)
    capsys.readouterr()
    frames = m(clip[:3])
    assert all(not f.any() for f in frames)
    assert "flagged 3 of 3 frames" in capsys.readouterr().err


def test_guidance_in_two_passes_gives_the_same_frames(models, photo, clip, tmp_path):
    """Under --offload the guided batch runs as two halves (less GPU memory): the same frames,
    with and without an IP-Adapter."""
    from tiny_sd import make_tiny_ip_adapter

    weights = make_tiny_ip_adapter(tmp_path / "ip")
    for extra in ({}, {"ip_adapter": str(weights)}):
        m = method(models, photo, clip[0], context=4, **extra)
        assert m.guidance_passes == 1
        one = m(clip[:4])
        m.guidance_passes = 2
        two = m(clip[:4])
        assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(one, two)), extra


def test_context_longer_than_the_motion_module_is_a_usage_error(models, photo, clip):
    from posekit.errors import UsageError

    with pytest.raises(UsageError, match="--context 40: .* at most 32"):
        method(models, photo, clip[0], context=40)


# -- the command -----------------------------------------------------------------------------
def test_cli_animate_animatediff(models, tmp_path, run_posekit):
    from test_quiet_terminal import foreign_lines

    sd, cn, motion, _ = models
    out = tmp_path / "out"
    r = run_posekit("animate", FIGURE, "--source-pose", FIGURE_POSE, "--poses", "walk", "--frames", "3",
                    "--method", "animatediff", "--model", sd, "--controlnet", cn, "--motion-adapter", motion,
                    "--steps", "1", "--guidance", "1", "--context", "4", "--device", "cpu", "--no-evaluate",
                    "--out", out, "--json", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)  # SD 1.5's working size: 512 px on the short side
    assert summary["method"] == "animatediff" and summary["frames"] == 3 and summary["size"] == [512, 680]
    assert summary["clips"] == [{"name": "walk", "frames": 3, "loop": True}]
    assert len(list((out / "frames").glob("*.png"))) == 3
    stage = re.compile(r"animatediff: [\w ,:]*\d+ frames\.\.\.")  # the pipeline's stage line for this method
    assert [line for line in foreign_lines(r.stderr) if not stage.fullmatch(line)] == [], r.stderr


def test_cli_offline_motion_adapter_is_one_line(models, tmp_path, run_posekit):
    """The default motion adapter (a hub id), not cached, no network: one line naming what to
    download and the flag; nothing written."""
    from test_quiet_terminal import foreign_lines

    sd, cn, _, _ = models
    r = run_posekit("animate", FIGURE, "--source-pose", FIGURE_POSE, "--poses", "walk", "--frames", "2",
                    "--method", "animatediff", "--model", sd, "--controlnet", cn, "--device", "cpu",
                    "--out", tmp_path / "out",
                    env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("posekit: error:")]
    assert len(errors) == 1 and foreign_lines(r.stderr) == [], r.stderr  # the rest: stage lines
    assert "hf download guoyww/animatediff-motion-adapter-v1-5-3" in errors[0] and "--motion-adapter PATH" in errors[0]
    # the repository holds the adapter twice (fp16 and full, 1.7 GB each): only the one the CPU loads
    assert ('`hf download guoyww/animatediff-motion-adapter-v1-5-3 --include "config.json" --include '
            '"diffusion_pytorch_model.safetensors"` or pass --motion-adapter PATH') in errors[0], errors[0]
    assert not (tmp_path / "out").exists()


def test_one_init_warp_camera_for_every_clip_of_a_sheet(models, monkeypatch):
    """generate_strips fixes the init warp's camera once for all clips (fit_camera, as the warp
    method's), before it takes the photo's floor (Strip.ground): a camera chosen per clip framed
    the jump otherwise, and the sheet's pivots missed its feet."""
    from posekit import pipeline
    from posekit.methods.animatediff.method import AnimateDiffMethod, AnimateDiffOptions
    from posekit.pose.formats import read_openpose_json

    size = (48, 64)
    image = np.asarray(Image.open(FIGURE).convert("RGB").resize(size, Image.LANCZOS))
    pose = read_openpose_json(FIGURE_POSE)[0].resized(*size)
    clips = [(n, pipeline.prepare_targets([n], image, pose, size, pipeline.Timer(), None, frames=3), n != "jump")
             for n in ("idle", "jump")]
    seen = []
    original = AnimateDiffMethod.__call__

    @functools.wraps(original)  # its signature kept: clip_keywords reads the keywords it takes
    def call(self, targets, **keywords):
        frames = original(self, targets, **keywords)
        ankles = [a[1] for a in (self.frame_pose(pose)[k] for k in ("r_ankle", "l_ankle")) if a is not None]
        seen.append((self.warp.camera.matrix().copy(), max(ankles)))
        return frames

    monkeypatch.setattr(AnimateDiffMethod, "__call__", call)
    options = AnimateDiffOptions(model=str(models[0]), controlnet=str(models[1]), motion_adapter=str(models[2]),
                                 steps=2, device="cpu", init="warp", strength=0.5, context=4)
    strips = pipeline.generate_strips("animatediff", options, image, pose, clips, pipeline.Timer())
    assert len(seen) == 2 and np.array_equal(seen[0][0], seen[1][0])  # one camera for idle and jump
    assert [s.ground for s in strips] == [floor for _, floor in seen]  # the floor the frames are drawn with


def test_context_flags_with_a_clip_of_one_window_are_a_warning(models, photo, clip, capsys):
    """--context and --context-overlap split a clip into windows; a clip the motion module sees
    whole does not change with them: said once; a clip they split says nothing."""
    m = method(models, photo, clip[0], context=8, context_overlap=2)
    capsys.readouterr()
    m(clip[:6], loop=False)
    m(clip[:4], loop=False)
    assert capsys.readouterr().err.splitlines() == [
        "posekit: warning: --context and --context-overlap have no effect here: the 6-frame clip fits one window "
        "of the motion module"]
    m = method(models, photo, clip[0], context=4)
    capsys.readouterr()
    m(clip[:6], loop=False)  # two windows: --context works
    m(clip[:3], loop=False)
    assert capsys.readouterr().err.splitlines() == [
        "posekit: warning: --context has no effect here: the 3-frame clip fits one window of the motion module"]
    # a --context above the default that is what makes a 20-frame clip one window does something
    m = method(models, photo, clip[0], context=24)
    capsys.readouterr()
    m._warn_idle_context(20, False)
    assert capsys.readouterr().err == ""
    m._warn_idle_context(12, False)  # 12 frames fit the default 16 too
    assert "--context has no effect here" in capsys.readouterr().err


def test_ip_adapter_scale_0_loads_no_ip_adapter(models, photo, clip, tmp_path, monkeypatch):
    """Scale 0 adds nothing: neither the IP-Adapter nor its image encoder is loaded."""
    import diffusers.loaders.ip_adapter as loader
    from tiny_sd import make_tiny_ip_adapter

    from posekit.methods.diffusion.models import has_ip_adapter

    def no_loading(*args, **kwargs):
        raise AssertionError("the IP-Adapter was loaded")

    monkeypatch.setattr(loader.IPAdapterMixin, "load_ip_adapter", no_loading)
    m = method(models, photo, clip[0], context=4, ip_adapter=str(make_tiny_ip_adapter(tmp_path / "ip")),
               ip_adapter_scale=0.0)
    assert not has_ip_adapter(m.pipe) and m.image_embeds is None
    assert len(m(clip[:2], loop=False)) == 2

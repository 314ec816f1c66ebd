"""Issue 10, on tiny models: SD 1.5 at its own size and sampler, fp16 weight files, the float16
VAE overflow guard, memory (offload, VAE slicing/tiling), the safety checker, LCM-LoRA and the
IP-Adapter, each loaded through the same code path a hub id goes through."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from tiny_sd import (IMAGE_ENCODER_SIZE, add_fp16_variant, add_tiny_safety_checker, make_tiny_ip_adapter,
                     make_tiny_lcm_lora)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tiny_sd):
    return tiny_sd


@pytest.fixture(scope="module")
def photo(astronaut):
    return np.asarray(Image.fromarray(astronaut).resize((96, 96), Image.LANCZOS))


@pytest.fixture(scope="module")
def clip():
    from posekit.pose.motions import motion

    return motion("walk", frames=3, width=96, height=96)


@pytest.fixture(scope="module")
def ip_adapter(tmp_path_factory):
    return make_tiny_ip_adapter(tmp_path_factory.mktemp("ip") / "ip-adapter")


def options(tiny, **kw):
    from posekit.methods.diffusion.method import DiffusionOptions

    sd, cn = tiny
    base = dict(model=str(sd), controlnet=str(cn), steps=4, strength=0.5, device="cpu", init="source",
                prompt="a photo of sks person")
    return DiffusionOptions(**{**base, **kw})


def run(tiny, photo, clip, models=None, **kw):
    from posekit.methods.diffusion.method import DiffusionMethod

    return DiffusionMethod(photo, clip[0], options(tiny, **kw), models)(clip[1:2])[0]


# -- SD 1.5 as it was trained: its size, its sampler, its step count -------------------------
@pytest.mark.parametrize("size, expected", [
    ((101, 90), (576, 512)),     # small photos come up to 512 on the short side
    ((512, 512), (512, 512)),
    ((1920, 1080), (768, 432)),  # landscape: the long side stops at 768
    ((1080, 1350), (512, 640)),  # a portrait phone crop: short side 512
    ((600, 2000), (232, 768)),   # very tall: 768 long, the short side follows the aspect
    ((4000, 3000), (680, 512)),
])
def test_working_size_is_sd15s(size, expected):
    from posekit.methods import method_class

    w, h = method_class("diffusion").working_size(*size)  # what transfer and animate scale the photo to
    assert (w, h) == expected and w % 8 == 0 and h % 8 == 0
    assert max(w, h) <= 768 and (min(w, h) == 512 or max(w, h) == 768)
    assert abs(w / h - size[0] / size[1]) < 0.05  # the photo's aspect, give or take the rounding to 8


def test_a_library_caller_with_a_photo_past_sd_size_is_warned(tiny, astronaut, tmp_path, capsys):
    """posekit's commands scale the photo to `working_size`; a library caller who hands the
    methods a 1000x800 photo would get frames generated at that size (SD 1.5 repeats limbs
    there): both methods say so, naming the size to scale to. At the working size: no warning."""
    from tiny_animatediff import make_tiny_motion_adapter

    from posekit.methods.animatediff.method import AnimateDiffMethod, AnimateDiffOptions
    from posekit.methods.diffusion.method import DiffusionMethod
    from posekit.pose.motions import motion

    big = np.asarray(Image.fromarray(astronaut).resize((1000, 800)))
    pose = motion("walk", frames=1, width=1000, height=800)[0]
    pipe = DiffusionMethod.load(options(tiny))
    DiffusionMethod(big, pose, options(tiny), pipe)
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "1000x800" in err and "DiffusionMethod.working_size(1000, 800) = 640x512" in err
    small = np.asarray(Image.fromarray(big).resize(DiffusionMethod.working_size(1000, 800)))
    DiffusionMethod(small, pose.resized(640, 512), options(tiny), pipe)
    DiffusionMethod(big, pose, options(tiny, sheet=True), pipe)  # a sheet's canvas is scaled anyway
    assert capsys.readouterr().err == ""
    sd, cn = tiny
    o = AnimateDiffOptions(model=str(sd), controlnet=str(cn), motion_adapter=str(make_tiny_motion_adapter(
        tmp_path / "motion")), steps=2, init="none", device="cpu")
    AnimateDiffMethod(big, pose, o)
    assert "AnimateDiffMethod.working_size(1000, 800) = 640x512" in capsys.readouterr().err


def test_defaults_and_lcm_defaults():
    from posekit.methods.diffusion.method import DiffusionOptions

    o = DiffusionOptions()
    assert (o.steps, o.guidance, o.scheduler, o.init, o.offload, o.safety_checker, o.lcm) == (
        20, 7.5, "unipc", "warp", "none", False, False)
    assert (DiffusionOptions(lcm=True).steps, DiffusionOptions(lcm=True).guidance) == (6, 1.5)
    given = DiffusionOptions(lcm=True, steps=8, guidance=2.0)  # the user's values win
    assert (given.steps, given.guidance) == (8, 2.0)
    assert DiffusionOptions(steps=20) == DiffusionOptions()


def test_bad_scheduler_and_offload_fail_before_loading(tiny, tmp_path):
    from posekit.errors import UsageError
    from posekit.methods.diffusion.models import load_pipeline

    with pytest.raises(UsageError, match=r"^--scheduler 'karras': choose one of unipc, dpm\+\+, ddim, euler-a, model$"):
        options(tiny, scheduler="karras", model=str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="^--offload 'gpu'"):
        options(tiny, offload="gpu", model=str(tmp_path / "missing"))
    # offload moves models between the CPU and a CUDA GPU: on the CPU it is a usage error, before loading
    with pytest.raises(UsageError, match="^--offload model .*CUDA"):
        load_pipeline(str(tmp_path / "missing"), controlnet=None, device="cpu", offload="model")


@pytest.mark.parametrize("name, cls, extra", [
    ("unipc", "UniPCMultistepScheduler", {}),
    ("dpm++", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    ("ddim", "DDIMScheduler", {}),
    ("euler-a", "EulerAncestralDiscreteScheduler", {}),
    ("model", "PNDMScheduler", {}),  # the folder's own
])
def test_schedulers_keep_the_models_noise_schedule(tiny, name, cls, extra):
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    pipe = load_pipeline(str(sd), controlnet=None, device="cpu", scheduler=name)
    assert type(pipe.scheduler).__name__ == cls
    assert (pipe.scheduler.config.beta_schedule, pipe.scheduler.config.beta_start) == ("scaled_linear", 0.00085)
    assert all(pipe.scheduler.config[k] == v for k, v in extra.items())


def test_the_scheduler_changes_the_frames(tiny, photo, clip):
    unipc, ddim = run(tiny, photo, clip), run(tiny, photo, clip, scheduler="ddim")
    assert unipc.shape == ddim.shape == (96, 96, 3) and not np.array_equal(unipc, ddim)


# -- loading: dtype=, fp16 weight files -----------------------------------------------------
def test_loading_uses_the_current_diffusers_api(tiny, recwarn):
    from posekit.methods.diffusion.models import load_pipeline

    sd, cn = tiny
    load_pipeline(str(sd), controlnet=str(cn), device="cpu")
    deprecated = [str(w.message) for w in recwarn
                  if "torch_dtype" in str(w.message) or "deprecat" in str(w.message).lower()]
    assert deprecated == []


def test_fp16_weight_files_are_preferred_in_half_precision(tiny, tmp_path):
    """float16 asks for variant="fp16" first (half the download); a folder without it still loads."""
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    folder = tmp_path / "sd"
    shutil.copytree(sd, folder)
    add_fp16_variant(folder)  # its UNet's conv_in is doubled: which files were read shows
    own = load_pipeline(str(sd), controlnet=None, device="cpu").unet.conv_in.weight
    half = load_pipeline(str(folder), controlnet=None, device="cpu", dtype=torch.float16)
    assert half.unet.dtype == torch.float16
    torch.testing.assert_close(half.unet.conv_in.weight.float(), 2 * own, atol=2e-3, rtol=2e-3)
    full = load_pipeline(str(folder), controlnet=None, device="cpu")  # float32: the full files
    torch.testing.assert_close(full.unet.conv_in.weight, own)
    without = load_pipeline(str(sd), controlnet=None, device="cpu", dtype=torch.float16)  # no fp16 files
    torch.testing.assert_close(without.unet.conv_in.weight.float(), own, atol=2e-3, rtol=2e-3)


# -- memory ------------------------------------------------------------------------------------
def test_place_puts_the_pipeline_where_offload_says(monkeypatch):
    """The dispatch itself (no CUDA here): model -> enable_model_cpu_offload(device=),
    sequential -> enable_sequential_cpu_offload(device=), none -> .to(device)."""
    import posekit.methods.diffusion.models as models

    class Pipe:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *a, **kw: self.calls.append((name, a, kw))

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(models, "resolve_device", lambda device: cuda)
    for offload, call in [("none", ("to", (cuda,), {})), ("model", ("enable_model_cpu_offload", (), {"device": cuda})),
                          ("sequential", ("enable_sequential_cpu_offload", (), {"device": cuda}))]:
        pipe = Pipe()
        models.place(pipe, "cuda", offload)
        assert pipe.calls[0] == call and pipe.calls[1][0] == "set_progress_bar_config"


def test_decode_slices_several_images_and_tiles_large_ones(tiny):
    from posekit.methods.diffusion.models import decode, load_pipeline

    sd, _ = tiny
    pipe = load_pipeline(str(sd), controlnet=None, device="cpu")
    latents = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    images = decode(pipe, latents)
    assert images.shape == (2, 64, 96, 3) and pipe.vae.use_slicing and not pipe.vae.use_tiling
    # one image at a time gives the same pixels
    np.testing.assert_allclose(decode(pipe, latents[:1])[0], images[0], atol=1e-5)
    assert not pipe.vae.use_slicing
    big = decode(pipe, torch.randn(1, 4, 8, 100, generator=torch.Generator().manual_seed(0)))  # 800 px wide
    assert big.shape == (1, 64, 800, 3) and pipe.vae.use_tiling and np.isfinite(big).all()


# -- the float16 VAE overflow guard --------------------------------------------------------------
def nan_in_half_precision(pipe):
    """A community VAE in float16 gives NaN (black frames): a hook makes the tiny VAE's decoder
    do that whenever it runs in half precision; returns the list its calls are counted in."""
    calls = []

    def hook(module, args, out):
        calls.append(out.dtype)
        return torch.full_like(out, float("nan")) if out.dtype == torch.float16 else out

    pipe.vae.decoder.register_forward_hook(hook)
    return calls


def test_a_vae_that_overflows_in_half_precision_is_decoded_in_float32(tiny, capsys):
    from posekit.methods.diffusion.models import decode, load_pipeline

    sd, _ = tiny
    pipe = load_pipeline(str(sd), controlnet=None, device="cpu", dtype=torch.float16)
    calls = nan_in_half_precision(pipe)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    warnings = []
    images = decode(pipe, latents.half(), warn=warnings.append)
    assert np.isfinite(images).all() and images.std() > 0.01
    assert pipe.vae.dtype == torch.float16  # upcast for the decode only: encoding stays in float16
    assert len(warnings) == 1 and "VAE overflows in float16" in warnings[0]
    again = decode(pipe, latents.half(), warn=warnings.append)  # float32 straight away: no second warning
    assert len(warnings) == 1 and calls == [torch.float16, torch.float32, torch.float32]
    np.testing.assert_array_equal(again, images)


def test_a_nan_frame_is_decoded_again_and_warned_once(tiny, photo, clip, tmp_path, capsys, monkeypatch):
    """float16 on the CPU, the VAE overflowing: frame after frame (img2img encodes each init
    image in float16 after the float32 decodes), clip after clip of animatediff --init warp."""
    import posekit.methods.diffusion.models as models
    from posekit.methods.animatediff.method import AnimateDiffMethod, AnimateDiffOptions
    from posekit.methods.diffusion.method import DiffusionMethod
    from tiny_animatediff import make_tiny_motion_adapter

    sd, cn = tiny
    pipe = models.load_pipeline(str(sd), controlnet=str(cn), device="cpu", dtype=torch.float16, scheduler="unipc")
    calls = nan_in_half_precision(pipe)
    m = DiffusionMethod(photo, clip[0], options(tiny), pipe)
    frames = m(clip[1:3])
    assert calls == [torch.float16, torch.float32, torch.float32]  # frame 1 twice, frame 2 in float32 at once
    assert all(f.std() > 5 for f in frames)  # not black
    assert all(np.array_equal(a, b) for a, b in zip(frames, m(clip[1:3])))  # the float32 frames, again
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "VAE overflows" in err and pipe.vae.dtype == torch.float16

    monkeypatch.setattr(models, "dtype_for", lambda device: torch.float16)  # as on a GPU
    o = AnimateDiffOptions(model=str(sd), controlnet=str(cn), motion_adapter=str(make_tiny_motion_adapter(
        tmp_path / "motion")), steps=2, strength=0.5, init="warp", context=4, device="cpu")
    a = AnimateDiffMethod(photo, clip[0], o)
    assert a.pipe.unet.dtype == torch.float16
    calls = nan_in_half_precision(a.pipe)
    first, second = a(clip[:3]), a(clip[:3])
    assert calls == [torch.float16] * 3 + [torch.float32] * 6  # sliced: frame by frame; once in float16
    assert all(np.array_equal(x, y) and x.std() > 5 for x, y in zip(first, second))
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "VAE overflows" in err and a.pipe.vae.dtype == torch.float16


# -- out of GPU memory ------------------------------------------------------------------------------
def out_of_memory(*args, **kwargs):
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_gpu_memory_is_one_line_naming_offload(tiny, photo, clip, monkeypatch):
    import posekit.methods.diffusion.models as models
    from posekit.errors import PosekitError
    from posekit.methods.diffusion.method import DiffusionMethod

    m = DiffusionMethod(photo, clip[0], options(tiny))
    monkeypatch.setattr(m.pipe.unet, "forward", out_of_memory)
    with pytest.raises(PosekitError) as e:
        m(clip[1:2])
    assert str(e.value) == ("the GPU ran out of memory for 96x96 images; try --offload model (about 3 GB of GPU "
                            "memory) or --offload sequential (the least)")
    monkeypatch.undo()
    monkeypatch.setattr(m.pipe.vae, "decode", out_of_memory)  # the decode too
    with pytest.raises(PosekitError, match="^the GPU ran out of memory for 96x96 images; try --offload model"):
        m(clip[1:2])
    monkeypatch.setattr(models, "place", out_of_memory)  # placing the models on the GPU
    with pytest.raises(PosekitError, match="^the GPU ran out of memory for the model; try --offload model"):
        models.load_pipeline(str(tiny[0]), controlnet=None, device="cpu")
    assert models.offload_suggestion("model").startswith("try --offload sequential")
    with pytest.raises(PosekitError, match=r"^the GPU ran out of memory for x; any advice$"):
        with models.out_of_memory_hint("any advice", "x"):
            out_of_memory()


# -- shared pieces ------------------------------------------------------------------------------------
def test_step_progress_is_a_pipeline_callback_and_a_plain_advance():
    from posekit.console import step_progress

    with step_progress("diffusion", 3) as step:
        assert step() is None
        kwargs = {"latents": torch.zeros(1)}
        assert step(None, 1, 999, kwargs) is kwargs  # diffusers' callback_on_step_end gets its kwargs back


def test_lcm_brings_its_scheduler_in_both_methods():
    """--lcm --scheduler ddim would silently sample with LCM: a usage error, worded alike."""
    from posekit.errors import UsageError
    from posekit.methods.animatediff.method import AnimateDiffOptions
    from posekit.methods.diffusion.method import DiffusionOptions

    messages = []
    for cls in (DiffusionOptions, AnimateDiffOptions):
        with pytest.raises(UsageError) as e:
            cls(lcm=True, scheduler="ddim")
        messages.append(str(e.value))
        assert cls(lcm=True).scheduler == cls(lcm=True, scheduler="lcm").scheduler == "lcm"
        assert (cls().steps, cls().guidance, cls(lcm=True).steps, cls(lcm=True).guidance) == (20, 7.5, 6, 1.5)
    assert messages == ["--lcm samples with the LCM scheduler; leave out --scheduler ddim"] * 2


# -- the safety checker ----------------------------------------------------------------------------
def test_safety_checker_blacks_out_flagged_frames(tiny, photo, clip, tmp_path, capsys):
    from posekit.methods.diffusion.method import DiffusionMethod

    sd, _ = tiny
    flags, passes = tmp_path / "flags", tmp_path / "passes"
    add_tiny_safety_checker(shutil.copytree(sd, flags), flag_everything=True)
    add_tiny_safety_checker(shutil.copytree(sd, passes), flag_everything=False)
    clean = run(tiny, photo, clip)
    assert np.array_equal(run(tiny, photo, clip, model=str(passes), safety_checker=True), clean)
    m = DiffusionMethod(photo, clip[0], options(tiny, model=str(flags), safety_checker=True))
    assert type(m.pipe.safety_checker).__name__ == "StableDiffusionSafetyChecker"
    capsys.readouterr()
    frames = m(clip[:2])
    err = capsys.readouterr().err
    assert all(not f.any() for f in frames)
    assert err.count("warning") == 2 and "flagged frame 0" in err and "flagged frame 1" in err
    # off by default: the same folder, nothing checked
    assert np.array_equal(run(tiny, photo, clip, model=str(flags)), clean)


def test_safety_checker_offline_is_one_line(tiny):
    """A folder without safety_checker/ takes SD 1.5's, which is not downloaded here."""
    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    with pytest.raises(ModelNotFoundError) as e:
        load_pipeline(str(sd), controlnet=None, device="cpu", safety_checker=True)
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5 is not downloaded" in str(e.value)
    assert "--safety-checker" in str(e.value) and "\n" not in str(e.value)


def test_safety_checker_of_a_hub_model_without_one_is_sd15s(tiny, tmp_path, monkeypatch):
    """A hub model with no safety_checker/ (here: not downloaded, offline) takes SD 1.5's
    (DEFAULT_MODEL; here a tiny folder with one), as the docstring promises; so does a folder."""
    import posekit.methods.diffusion.models as models

    sd, _ = tiny
    checked = add_tiny_safety_checker(shutil.copytree(sd, tmp_path / "sd15"), flag_everything=False)
    monkeypatch.setattr(models, "DEFAULT_MODEL", str(checked))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    pipe = models.load_pipeline(str(sd), controlnet=None, device="cpu")
    models.add_safety_checker(pipe, "someone/sd15-finetune-without-checker")
    assert type(pipe.safety_checker).__name__ == "StableDiffusionSafetyChecker"
    pipe = models.load_pipeline(str(sd), controlnet=None, device="cpu", safety_checker=True)  # a folder without
    assert type(pipe.safety_checker).__name__ == "StableDiffusionSafetyChecker"


def test_a_safety_checker_outside_the_pipeline_is_offloaded_after_each_check(tiny, tmp_path, monkeypatch):
    """animatediff's checker is no pipeline component: under --offload it gets its own hook,
    which moves it back to CPU memory after every check."""
    import accelerate

    import posekit.methods.diffusion.models as models

    sd, _ = tiny
    flags = add_tiny_safety_checker(shutil.copytree(sd, tmp_path / "flags"), flag_everything=True)
    pipe = models.load_pipeline(str(flags), controlnet=None, device="cpu", safety_checker=True)
    checker, offloads = pipe.safety_checker, []
    real = accelerate.cpu_offload_with_hook

    def recording(model, device):
        model, hook = real(model, device)
        offload = hook.offload
        hook.offload = lambda: (offloads.append(1), offload())
        return model, hook

    monkeypatch.setattr(accelerate, "cpu_offload_with_hook", recording)
    models.place_safety_checker(pipe, checker, "cpu", offload="model")
    images = np.full((2, 64, 64, 3), 0.5, np.float32)
    assert models.check_safety(pipe, images) == [True, True] and offloads == [1]
    assert models.check_safety(pipe, images) == [True, True] and offloads == [1, 1]


# -- LCM-LoRA --------------------------------------------------------------------------------------
def test_lcm_lora_loads_next_to_a_user_lora(tiny, photo, clip, tmp_path, monkeypatch):
    import posekit.methods.diffusion.models as models

    sd, cn = tiny
    monkeypatch.setattr(models, "LCM_LORA", str(make_tiny_lcm_lora(tmp_path / "lcm")))  # the hub id's place
    user = make_tiny_lcm_lora(tmp_path / "user") / "pytorch_lora_weights.safetensors"  # any SD LoRA file
    pipe = models.load_pipeline(str(sd), controlnet=str(cn), device="cpu", lcm=True, lora=str(user))
    assert type(pipe.scheduler).__name__ == "LCMScheduler"
    assert sorted(pipe.get_active_adapters()) == ["lcm", "lora"]
    o = options(tiny, lcm=True, lora=str(user), steps=None)  # --steps and --guidance left unset
    assert (o.steps, o.guidance) == (6, 1.5)
    lcm = run(tiny, photo, clip, models=pipe, lcm=True, lora=str(user), steps=None)
    plain = run(tiny, photo, clip, steps=6, guidance=1.5)
    assert lcm.shape == plain.shape and not np.array_equal(lcm, plain)


def test_lcm_offline_names_what_to_download(tiny):
    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    with pytest.raises(ModelNotFoundError) as e:
        load_pipeline(str(sd), controlnet=None, device="cpu", lcm=True)
    assert str(e.value) == ("latent-consistency/lcm-lora-sdv1-5 is not downloaded and the hub is unreachable; "
                            "run `hf download latent-consistency/lcm-lora-sdv1-5 pytorch_lora_weights.safetensors` "
                            "(for --lcm)")


# -- IP-Adapter --------------------------------------------------------------------------------------
def test_ip_adapter_image_is_the_person_on_white_squared(photo, clip):
    from posekit.methods.diffusion.method import ip_adapter_image

    mask = np.zeros((96, 96), np.float32)
    mask[20:80, 40:60] = 1.0  # a tall, thin person
    image = ip_adapter_image(photo, clip[0], mask=mask)
    assert image.shape == (66, 66, 3) and image.dtype == np.uint8  # 60 high + 5% margins, square
    assert (image[:, :20] == 255).all() and (image[:, -20:] == 255).all()  # padded with white
    np.testing.assert_array_equal(image[3:63, 23:43], photo[20:80, 40:60])  # the person's own pixels


def test_person_on_white_keeps_the_person_and_whitens_the_rest(photo):
    from posekit.methods.diffusion.method import person_on_white

    mask = np.zeros((96, 96), np.float32)
    mask[20:80, 40:60], mask[0, 0] = 1.0, 0.5
    cut = person_on_white(photo, mask)
    assert cut.dtype == np.uint8 and cut.shape == photo.shape
    np.testing.assert_array_equal(cut[20:80, 40:60], photo[20:80, 40:60])
    assert (cut[mask == 0] == 255).all() and (person_on_white(photo, mask, background=0)[mask == 0] == 0).all()
    np.testing.assert_array_equal(cut[0, 0], np.round(photo[0, 0] * 0.5 + 127.5).astype(np.uint8))
    np.testing.assert_array_equal(person_on_white(photo, mask[:, :, None]), cut)  # (H, W, 1) as wan keeps it


def test_ip_adapter_layouts_load_like_the_hub_one(tiny, ip_adapter, tmp_path):
    """A .safetensors, a .bin, and a folder holding one: diffusers' load_ip_adapter with the
    image encoder from image_encoder/ next to it."""
    from posekit.methods.diffusion.models import has_ip_adapter, load_pipeline

    sd, cn = tiny
    binary = make_tiny_ip_adapter(tmp_path / "bin", "ip-adapter-plus_sd15.bin")
    for spec in (ip_adapter, ip_adapter.parent, binary):
        pipe = load_pipeline(str(sd), controlnet=str(cn), device="cpu", ip_adapter=str(spec))
        assert has_ip_adapter(pipe) and pipe.image_encoder.config.image_size == IMAGE_ENCODER_SIZE
    assert not has_ip_adapter(load_pipeline(str(sd), controlnet=None, device="cpu"))


def test_ip_adapter_with_a_lora(tiny, photo, clip, ip_adapter, tmp_path, monkeypatch):
    import posekit.methods.diffusion.method as method
    from posekit.methods.diffusion.models import has_ip_adapter, load_pipeline

    sd, cn = tiny
    lora = make_tiny_lcm_lora(tmp_path / "lora") / "pytorch_lora_weights.safetensors"
    pipe = load_pipeline(str(sd), controlnet=str(cn), device="cpu", lora=str(lora), ip_adapter=str(ip_adapter),
                         scheduler="unipc")
    assert has_ip_adapter(pipe) and pipe.get_active_adapters() == ["lora"]
    real = method.ip_adapter_image  # the whole photo as the person: no segmentation needed here
    monkeypatch.setattr(method, "ip_adapter_image", lambda source, pose, mask=None: real(source, pose, mask=np.ones(
        source.shape[:2], np.float32)))
    both = run(tiny, photo, clip, models=pipe, lora=str(lora), ip_adapter=str(ip_adapter))
    lora_only = run(tiny, photo, clip, lora=str(lora))
    assert both.shape == (96, 96, 3) and np.abs(both.astype(int) - lora_only).mean() > 2


def test_ip_adapter_steers_the_frames_with_its_scale_and_encodes_once(tiny, photo, clip, ip_adapter, monkeypatch):
    import posekit.methods.diffusion.method as method
    from posekit.methods.diffusion.method import DiffusionMethod
    from posekit.methods.diffusion.models import load_pipeline

    sd, cn = tiny
    pipe = load_pipeline(str(sd), controlnet=str(cn), device="cpu", ip_adapter=str(ip_adapter), scheduler="unipc")
    encoded = []
    real = pipe.encode_image
    pipe.encode_image = lambda *a, **kw: encoded.append(1) or real(*a, **kw)
    box = np.zeros((96, 96), np.float32)
    box[10:90, 30:70] = 1.0

    def frames(scale):
        m = DiffusionMethod(photo, clip[0], options(tiny, ip_adapter=str(ip_adapter), ip_adapter_scale=scale), pipe)
        return m(clip[:3])

    real_image = method.ip_adapter_image  # a given person mask: no segmentation needed here
    monkeypatch.setattr(method, "ip_adapter_image", lambda source, pose, mask=None: real_image(source, pose, mask=box))
    on, strong, zero = frames(0.6), frames(1.5), frames(0.0)
    assert len(encoded) == 3  # once per photo (per method), not per frame
    off = DiffusionMethod(photo, clip[0], options(tiny))(clip[:3])
    assert all(np.abs(a.astype(int) - b).mean() > 2 for a, b in zip(on, off))  # the image steers them
    assert all(np.abs(a.astype(int) - b).mean() > 2 for a, b in zip(on, strong))  # the scale matters
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(zero, off))  # scale 0: as if off


def test_ip_adapter_with_the_warp_uses_its_person_mask(tiny, photo, clip, ip_adapter, monkeypatch):
    """init warp has segmented the person already: the IP-Adapter image reuses that mask."""
    import posekit.methods.diffusion.method as method

    seen = []
    real = method.ip_adapter_image
    monkeypatch.setattr(method, "ip_adapter_image", lambda s, p, mask=None: seen.append(mask) or real(s, p, mask=mask))
    m = method.DiffusionMethod(photo, clip[0], options(tiny, init="warp", ip_adapter=str(ip_adapter)))
    assert m.warp is not None and seen[0] is m.warp.alpha
    assert m(clip[1:2])[0].shape == (96, 96, 3)


def test_ip_adapter_offline_and_wrong_files_are_one_line(tiny, tmp_path):
    from safetensors.torch import save_file

    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import load_pipeline

    sd, _ = tiny
    with pytest.raises(ModelNotFoundError) as e:
        load_pipeline(str(sd), controlnet=None, device="cpu", ip_adapter="h94/IP-Adapter")
    assert str(e.value).startswith("h94/IP-Adapter is not downloaded and the hub is unreachable; run `hf download "
                                   "h94/IP-Adapter models/ip-adapter-plus_sd15.safetensors models/image_encoder/")
    assert str(e.value).endswith("or pass --ip-adapter PATH")
    alone = tmp_path / "alone" / "ip-adapter-plus_sd15.safetensors"  # no image_encoder/ next to it
    make_tiny_ip_adapter(alone.parent)
    shutil.rmtree(alone.parent / "image_encoder")
    with pytest.raises(ModelNotFoundError, match=r"^--ip-adapter .*alone.*image_encoder/ folder next to it$"):
        load_pipeline(str(sd), controlnet=None, device="cpu", ip_adapter=str(alone))
    save_file({"image_proj.latents": torch.zeros(1, 4, 64)}, tmp_path / "broken.safetensors")
    with pytest.raises(ModelNotFoundError, match=r"^--ip-adapter .*broken.safetensors: cannot load it"):
        load_pipeline(str(sd), controlnet=None, device="cpu", ip_adapter=str(tmp_path / "broken.safetensors"))


# -- the command ------------------------------------------------------------------------------------
def test_cli_ip_adapter_and_scheduler_flags(tiny, photo, clip, ip_adapter, tmp_path, run_posekit):
    """The flags reach the method: an IP-Adapter file, dpm++, the default init warp; nothing on
    stderr but our own progress."""
    from posekit.pose.formats import write_openpose_json

    sd, cn = tiny
    Image.fromarray(photo).save(tmp_path / "me.png")
    write_openpose_json([clip[0]], tmp_path / "me_keypoints.json")
    write_openpose_json([clip[1]], tmp_path / "target.json")
    common = ["transfer", tmp_path / "me.png", "--source-pose", tmp_path / "me_keypoints.json", "--pose",
              tmp_path / "target.json", "--method", "diffusion", "--model", sd, "--controlnet", cn, "--steps", "2",
              "--device", "cpu"]
    env = {"OMP_NUM_THREADS": "1"}
    r = run_posekit(*common, "--ip-adapter", ip_adapter, "--scheduler", "dpm++", "--out", tmp_path / "a.png", env=env)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr and "Traceback" not in r.stderr
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (512, 512, 3)  # SD 1.5's size
    r = run_posekit(*common, "--offload", "model", "--out", tmp_path / "b.png", env=env)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--offload model" in r.stderr
    assert not (tmp_path / "b.png").exists()


def test_nan_latents_are_one_line_naming_the_denoising_not_the_vae(tiny):
    """Latents that are NaN before the VAE (the UNet or ControlNet overflowed in float16) were
    blamed on the VAE and came out as flat grey frames, exit 0; now they stop with one line
    saying what overflowed and what to try. A VAE that overflows on finite latents is still
    retried in float32 (test above)."""
    from posekit.errors import PosekitError
    from posekit.methods.diffusion.models import FP32_DECODE, decode, load_pipeline

    sd, _ = tiny
    pipe = load_pipeline(str(sd), controlnet=None, device="cpu", dtype=torch.float16)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)).half()
    latents[1, 0, 0, 0] = float("nan")
    warnings = []
    with pytest.raises(PosekitError) as e:
        decode(pipe, latents, warn=warnings.append)
    text = str(e.value)
    assert "\n" not in text and text.startswith("the denoised latents are NaN: ") and "float16" in text
    assert "--scheduler" in text and "--device cpu" in text
    assert warnings == [] and not getattr(pipe, FP32_DECODE, False)  # the VAE is not blamed
    with pytest.raises(PosekitError, match="latents are NaN.*--model or --lora"):
        decode(load_pipeline(str(sd), controlnet=None, device="cpu"), latents.float())


def test_ip_adapter_scale_0_loads_no_ip_adapter(tiny, photo, clip, ip_adapter, monkeypatch):
    """At scale 0 the IP-Adapter adds nothing (frames as without it, test above), yet its 2.5 GB
    image encoder was loaded: now neither is (the CLI says so: test_flags), and the frames run."""
    import diffusers.loaders.ip_adapter as loader

    from posekit.methods.diffusion.method import DiffusionMethod
    from posekit.methods.diffusion.models import has_ip_adapter, load_pipeline

    def no_loading(*args, **kwargs):
        raise AssertionError("the IP-Adapter was loaded")

    monkeypatch.setattr(loader.IPAdapterMixin, "load_ip_adapter", no_loading)
    sd, cn = tiny
    with pytest.raises(Exception, match="the IP-Adapter was loaded"):  # the spy sees a load at 0.6
        load_pipeline(str(sd), controlnet=str(cn), device="cpu", ip_adapter=str(ip_adapter))
    o = options(tiny, ip_adapter=str(ip_adapter), ip_adapter_scale=0.0)
    pipe = DiffusionMethod.load(o)
    assert not has_ip_adapter(pipe) and getattr(pipe, "image_encoder", None) is None
    frames = DiffusionMethod(photo, clip[0], o, pipe)(clip[:2])
    assert len(frames) == 2 and all(f.any() for f in frames)

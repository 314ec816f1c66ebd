"""Pose transfer with AnimateDiff: a motion module couples the frames of a clip.

    method = AnimateDiffMethod(photo, photo_pose, AnimateDiffOptions(model="runs/me", prompt="a photo of sks person"))
    frames = method(target_poses, loop=True)

The image model is Stable Diffusion 1.5 (a hub id, a diffusers folder such as one `posekit
dreambooth` wrote, or a single-file checkpoint, with an optional LoRA): animating a personalised
model is what AnimateDiff is for. A motion adapter (default guoyww/animatediff-motion-adapter-v1-5-3)
adds temporal attention to its UNet, so every frame is denoised looking at its neighbours; a
ControlNet OpenPose reads each target pose as a skeleton (posekit.pose.render.draw_skeleton); an
IP-Adapter, when given, shows the UNet the person cut out of the photo. With init="warp" the clip
starts from the photo warped into each target pose (posekit's warp method), noised to `strength`
(video-to-video); with init="none" it starts from noise (text-to-video under the ControlNet).
`lcm=True` swaps in AnimateLCM (its motion adapter and LoRA, the LCM scheduler): about 6 steps.

The denoising loop is ours, written out in `AnimateDiffMethod.denoise`, because a sprite cycle
needs what diffusers' AnimateDiffControlNetPipeline does not have: windows that wrap around the
clip. At each step every window of `context` frames (posekit.methods.animatediff.windows) goes
through the ControlNet and the motion UNet, classifier-free guidance is applied, and each
frame's noise prediction is the average over the windows that hold it; then one scheduler step
moves the whole clip. A cyclic clip's windows run across the seam (frame n-1, then frame 0), so
its last frame flows into its first (`loop`: the pipeline marks every clip but a jump as a
cycle; it is closed when the poses come back to the first one, windows.closes_loop). A clip
that fits one window and is not a cycle gives the frames diffusers' own pipelines give for the
same seed, text-to-video and video-to-video (within one level of rounding: the VAE decodes
frame by frame here; tests/test_animatediff.py). The pipeline object supplies the pieces:
encode_prompt, prepare_ip_adapter_image_embeds, the VAE and video processors, the scheduler.
Under --offload the guided batch runs in two halves, for half the activation memory.

Output frames have the source's size rounded to a multiple of 8 (the VAE's stride).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.errors import UsageError
from posekit.methods.animatediff.windows import closes_loop, context_windows
from posekit.methods.diffusion.method import (check_strength, fill_sampling, fit_camera, frame_pose, init_images,
                                              init_warp, ip_adapter_embeds, prompt_embeds, round8, sd_size,
                                              warn_past_sd_size)
from posekit.methods.diffusion.models import DEFAULT_CONTROLNET, DEFAULT_MODEL, OFFLOADS
from posekit.pose.pose import Pose

DEFAULT_MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-3"
ANIMATELCM = "wangfuyun/AnimateLCM"  # AnimateLCM's motion adapter and, in the same repository, its LoRA
ANIMATELCM_LORA = "AnimateLCM_sd15_t2v_lora.safetensors"
ANIMATELCM_LORA_WEIGHT = 0.8  # as AnimateLCM's model card and diffusers' docs use it
INITS = ("none", "warp")
DECODE_CHUNK = 16  # frames through the VAE at a time


@dataclass(frozen=True)
class AnimateDiffOptions:
    """What `--method animatediff` takes from the command line. Fields left None take their
    default from `lcm`: 20 steps, guidance 7.5, UniPC and the v1-5-3 motion adapter; with lcm
    6 steps, guidance 1.5, the LCM scheduler and AnimateLCM."""

    model: str = DEFAULT_MODEL  # hub id, diffusers folder (posekit dreambooth's), or a .safetensors/.ckpt file
    model_config: str | Path | None = None  # diffusers config folder for a single-file model
    controlnet: str | None = DEFAULT_CONTROLNET
    lora: str | None = None
    motion_adapter: str | None = None  # hub id or folder; None: DEFAULT_MOTION_ADAPTER (ANIMATELCM with lcm)
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.6  # with init="warp": how far the warped frames are noised (0 to 1)
    steps: int | None = None
    guidance: float | None = None
    controlnet_scale: float = 1.0
    seed: int = 0
    init: str = "none"  # none (text-to-video under ControlNet) | warp (video-to-video)
    device: str = "auto"
    scheduler: str | None = None  # unipc | dpm++ | ddim | euler-a | model (the folder's own); lcm with lcm
    offload: str = "none"  # none | model | sequential
    safety_checker: bool = False
    ip_adapter: str | None = None
    ip_adapter_scale: float = 0.6
    lcm: bool = False
    context: int = 16  # frames the motion module sees at once (v1-5-3 was trained on 16)
    context_overlap: int = 4  # frames shared by neighbouring windows (at least context: context // 2)

    def __post_init__(self):  # the lcm-dependent defaults, and every check that needs no model
        fill_sampling(self)  # steps, guidance, scheduler, as --method diffusion
        if self.motion_adapter is None:
            object.__setattr__(self, "motion_adapter", ANIMATELCM if self.lcm else DEFAULT_MOTION_ADAPTER)
        if self.init not in INITS:
            raise UsageError(f"--init {self.init!r}: animatediff takes {' or '.join(INITS)}")
        if self.offload not in OFFLOADS:
            raise UsageError(f"--offload {self.offload!r}: animatediff takes {', '.join(OFFLOADS)}")
        from posekit.methods.diffusion.models import check_offload_device

        check_offload_device(self.offload, self.device)
        if not self.controlnet or str(self.controlnet).lower() == "none":
            raise UsageError("--controlnet none: animatediff follows the poses with a ControlNet; "
                             f"pass one (default {DEFAULT_CONTROLNET})")
        if self.context < 2:
            raise UsageError(f"--context {self.context}: the motion module needs at least 2 frames")
        if self.context_overlap < 0:
            raise UsageError(f"--context-overlap {self.context_overlap}: must be 0 or more")
        if self.context_overlap >= self.context:  # --context 4 with the default overlap 4: half a window
            object.__setattr__(self, "context_overlap", self.context // 2)
        if self.init == "warp":
            check_strength(self.strength, self.steps)
        from posekit.methods.diffusion.models import check_model_paths

        check_model_paths(self)  # --model, --controlnet, --lora, --ip-adapter, --motion-adapter, --model-config


class AnimateDiffMethod:
    Options = AnimateDiffOptions

    @staticmethod
    def load(options: AnimateDiffOptions | None = None):
        """The AnimateDiff ControlNet pipeline (SD 1.5 + motion adapter + ControlNet, LoRAs,
        IP-Adapter, scheduler) on its device: what a batch of photos shares."""
        return load_animatediff(options or AnimateDiffOptions())

    def __init__(self, source_image: np.ndarray, source_pose: Pose, options: AnimateDiffOptions | None = None,
                 models=None):
        import torch

        o = options or AnimateDiffOptions()
        self.options = o
        self.source = np.ascontiguousarray(source_image[:, :, :3])
        self.source_pose = source_pose
        self.size = (round8(self.source.shape[1]), round8(self.source.shape[0]))  # (width, height)
        warn_past_sd_size(*self.source.shape[1::-1], "AnimateDiffMethod")
        self.warp = init_warp(self.source, source_pose, o.seed, "generating the clip from noise instead "
                              "(--init none)") if o.init == "warp" else None
        self.pipe = models if models is not None else self.load(o)
        longest = self.pipe.unet.config.motion_max_seq_length
        if o.context > longest:
            raise UsageError(f"--context {o.context}: this motion module sees at most {longest} frames at once")
        pos, neg = prompt_embeds(self.pipe, o.prompt, o.negative_prompt, o.guidance)
        self.prompt_embeds = torch.cat([neg, pos]) if o.guidance > 1.0 else pos  # stacked for guidance
        self.image_embeds = ip_adapter_embeds(self.pipe, self.source, source_pose, self.warp, o.ip_adapter_scale,
                                              o.guidance)
        self.pipe.maybe_free_model_hooks()  # the encoders are done: under --offload, off the GPU
        # under --offload the guided batch runs in two halves (negative, positive): half the activations
        self.guidance_passes = 2 if o.offload != "none" and o.guidance > 1.0 else 1

    @staticmethod
    def working_size(width: int, height: int, options=None) -> tuple[int, int]:
        """SD 1.5's own size: about 512 px on the short side, at most 768 on the long side,
        multiples of 8 (as --method diffusion)."""
        return sd_size(width, height)

    # -- the Method contract --------------------------------------------------------------
    def frame_pose(self, pose: Pose) -> Pose:
        """A target pose (on the source canvas) in output-frame pixels."""
        return frame_pose(self.warp, self.size, pose)

    def fit_camera(self, targets: list[Pose]) -> None:
        """Fix the init warp's camera for all these targets (every clip of one sheet: one size
        and floor, which `frame_pose` then gives before any clip runs)."""
        fit_camera(self.warp, targets)

    def __call__(self, targets: list[Pose], loop: bool | None = None) -> list[np.ndarray]:
        """The clip's frames. `loop`: whether the clip plays as a cycle (the pipeline says so for
        every clip but a jump). A cycle's last frame is made to flow into its first when its
        poses allow it: the last pose steps into the first about as far as neighbours step
        (windows.closes_loop); a clip that does not return to its first pose is left open, with
        a warning when a loop was asked for. False: always open; None: decided from the poses."""
        if not targets:
            return []
        from posekit.pose.render import draw_skeleton

        cycle = loop is not False and closes_loop(targets)
        if loop and not cycle and len(targets) > 2:
            from posekit.console import warn

            warn(f"the {len(targets)}-frame clip does not return to its first pose, so its animation jumps "
                 "where it loops; not closing the loop (use a whole number of cycles for a seamless one)")
        # before frame_pose: the warp chooses its camera here (unless fit_camera fixed it)
        inits = init_images(self.warp, targets, self.size)
        skeletons = [draw_skeleton(self.frame_pose(t)) for t in targets]
        return self.generate(skeletons, inits, cycle)

    # -- generation -----------------------------------------------------------------------
    def generate(self, skeletons: list[np.ndarray], inits: list[np.ndarray] | None = None,
                 loop: bool = False) -> list[np.ndarray]:
        """Frames for these ControlNet skeleton images (one per frame, the frame's size), from
        noise or from `inits` (video-to-video), with wrap-around windows when `loop`."""
        import torch

        from posekit.console import step_progress
        from posekit.methods.diffusion.models import offload_suggestion, out_of_memory_hint

        o, pipe = self.options, self.pipe
        device = pipe._execution_device
        width, height = self.size
        n = len(skeletons)
        generator = torch.Generator("cpu").manual_seed(o.seed)
        windows = context_windows(n, o.context, o.context_overlap, loop)
        if len(windows) == 1:
            self._warn_idle_context(n, loop)
        suggestion = offload_suggestion(o.offload, "a smaller photo or a smaller --context")
        with out_of_memory_hint(suggestion, f"{n} frames of {width}x{height}"), torch.inference_mode():
            # the ControlNet's images as diffusers' pipeline prepares them: (frames, 3, H, W) in [0, 1]
            control = pipe.control_video_processor.preprocess_video([pil(s) for s in skeletons], height=height,
                                                                    width=width)
            control = control.permute(0, 2, 1, 3, 4).flatten(0, 1).to(device, pipe.controlnet.dtype)
            pipe.scheduler.set_timesteps(o.steps, device=device)
            timesteps = pipe.scheduler.timesteps
            if inits is None:
                latents = self._noise_latents(n, generator)
            else:
                timesteps = timesteps[(o.steps - min(int(o.steps * o.strength), o.steps)) * pipe.scheduler.order:]
                latents = self._noised_video_latents(inits, timesteps[:1], generator)
            with step_progress("animatediff", len(timesteps) * len(windows)) as advance:
                latents = self.denoise(latents, timesteps, control, windows, generator, advance)
            frames = self._decode(latents)
            pipe.maybe_free_model_hooks()
        return [(np.clip(f, 0.0, 1.0) * 255.0).round().astype(np.uint8) for f in frames]

    def _warn_idle_context(self, frames: int, loop: bool) -> None:
        """A --context or --context-overlap other than the default does nothing to a clip the
        motion module sees whole (one window): say so, once per method. --context did something
        when it is what made the clip one window (the default would have cut it in several)."""
        from dataclasses import fields

        o, defaults = self.options, {f.name: f.default for f in fields(AnimateDiffOptions)}
        overlap = defaults["context_overlap"]  # as __post_init__ makes it when it is not below --context
        overlap = overlap if overlap < o.context else o.context // 2
        whole_anyway = len(context_windows(frames, defaults["context"], defaults["context_overlap"], loop)) == 1
        idle = [flag for flag, given in (("--context", o.context != defaults["context"] and whole_anyway),
                                         ("--context-overlap", o.context_overlap != overlap)) if given]
        if idle and not getattr(self, "_context_warned", False):
            from posekit.console import warn

            self._context_warned = True
            warn(f"{' and '.join(idle)} {'have' if len(idle) > 1 else 'has'} no effect here: the {frames}-frame "
                 "clip fits one window of the motion module")

    def _decode(self, latents) -> np.ndarray:
        """(1, C, F, h, w) latents -> (F, H, W, 3) floats in 0..1, through the VAE a chunk of
        frames at a time (float32 retry when it overflows in half precision); frames the safety
        checker flags (with --safety-checker) come out black."""
        from posekit.console import warn
        from posekit.methods.diffusion.models import check_safety, decode

        flat = latents[0].transpose(0, 1)  # (F, C, h, w)
        frames = np.concatenate([decode(self.pipe, flat[i:i + DECODE_CHUNK], warn=warn)
                                 for i in range(0, len(flat), DECODE_CHUNK)])
        flagged = check_safety(self.pipe, frames)
        if any(flagged):
            warn(f"the safety checker flagged {sum(flagged)} of {len(frames)} frames; they are black")
            frames[np.array(flagged)] = 0.0
        return frames

    def _noise_latents(self, frames: int, generator):
        """Text-to-video: pure noise (1, C, frames, h, w), drawn as diffusers' pipeline draws it."""
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipe
        f = pipe.vae_scale_factor
        shape = (1, pipe.unet.config.in_channels, frames, self.size[1] // f, self.size[0] // f)
        latents = randn_tensor(shape, generator=generator, device=pipe._execution_device,
                               dtype=self.prompt_embeds.dtype)
        return latents * pipe.scheduler.init_noise_sigma

    def _noised_video_latents(self, inits: list[np.ndarray], t0, generator):
        """Video-to-video: the init frames through the VAE, noised to the first kept timestep
        (as diffusers' AnimateDiffVideoToVideoControlNetPipeline does it)."""
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipe
        device, dtype = pipe._execution_device, self.prompt_embeds.dtype
        width, height = self.size
        video = pipe.video_processor.preprocess_video([pil(f) for f in inits], height=height, width=width)
        video = video.permute(0, 2, 1, 3, 4)[0].to(device, dtype)  # (1, 3, F, H, W) -> (F, 3, H, W) in [-1, 1]
        upcast = pipe.vae.config.force_upcast and dtype == torch.float16  # SD's VAE overflows in half precision
        if upcast:
            pipe.vae.to(dtype=torch.float32)
            video = video.float()
        try:
            latents = torch.cat([pipe.vae.encode(video[i:i + DECODE_CHUNK]).latent_dist.sample(generator)
                                 for i in range(0, len(video), DECODE_CHUNK)])
        finally:
            if upcast:
                pipe.vae.to(dtype=dtype)
        latents = (pipe.vae.config.scaling_factor * latents.to(dtype))[None]  # (1, F, C, h, w)
        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=dtype)
        return pipe.scheduler.add_noise(latents, noise, t0).permute(0, 2, 1, 3, 4)  # (1, C, F, h, w)

    def denoise(self, latents, timesteps, control, windows: list[list[int]], generator, advance=lambda: None):
        """The sampling loop over context windows. latents: (1, C, F, h, w); control: (F, 3, H, W).
        Each step: every window through ControlNet + motion UNet (guided), each frame's noise
        prediction averaged over the windows that hold it, one scheduler step for the clip."""
        import inspect

        import torch

        o, pipe = self.options, self.pipe
        guided = o.guidance > 1.0
        step_kwargs = {k: v for k, v in (("eta", 0.0), ("generator", generator))
                       if k in inspect.signature(pipe.scheduler.step).parameters}
        for t in timesteps:
            noise = torch.zeros_like(latents)
            count = torch.zeros((1, 1, latents.shape[2], 1, 1), device=latents.device, dtype=latents.dtype)
            for window in windows:
                index = torch.tensor(window, device=latents.device)
                x = latents[:, :, index]
                x = pipe.scheduler.scale_model_input(torch.cat([x] * 2) if guided else x, t)  # (B, C, f, h, w)
                # every frame of every batch row sees the prompt; UNetMotionModel takes them (B*f, ...)
                text = self.prompt_embeds.repeat_interleave(len(window), dim=0)
                skeletons = torch.cat([control[index]] * 2) if guided else control[index]
                k = self.guidance_passes
                pred = torch.cat([self.predict_noise(*part, t) for part in zip(
                    x.chunk(k), text.chunk(k), skeletons.chunk(k), self._image_embeds(k))])
                if guided:
                    uncond, cond = pred.chunk(2)
                    pred = uncond + o.guidance * (cond - uncond)
                noise[:, :, index] += pred
                count[:, :, index] += 1
                advance()
            latents = pipe.scheduler.step(noise / count, t, latents, **step_kwargs).prev_sample
        return latents

    def predict_noise(self, x, text, skeletons, image_embeds, t):
        """ControlNet then motion UNet on one window: x (B, C, f, h, w), text (B*f, 77, D),
        skeletons (B*f, 3, H, W), image_embeds the IP-Adapter's (B, ...) or None."""
        pipe = self.pipe
        down, mid = pipe.controlnet(x.transpose(1, 2).flatten(0, 1), t, encoder_hidden_states=text,
                                    controlnet_cond=skeletons, conditioning_scale=self.options.controlnet_scale,
                                    guess_mode=False, return_dict=False)
        added = {"image_embeds": image_embeds} if image_embeds is not None else None
        return pipe.unet(x, t, encoder_hidden_states=text, added_cond_kwargs=added,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid).sample

    def _image_embeds(self, parts: int) -> list:
        """The IP-Adapter embeddings (a list, one tensor per adapter) split like the guided batch."""
        if self.image_embeds is None:
            return [None] * parts
        return [list(p) for p in zip(*(e.chunk(parts) for e in self.image_embeds))]


# -- loading ---------------------------------------------------------------------------------
def load_animatediff(o: AnimateDiffOptions):
    """SD 1.5 (with its ControlNet) loaded as --model says, turned into diffusers'
    AnimateDiffControlNetPipeline with the motion adapter, then LoRAs, IP-Adapter, the
    scheduler, and placed on the device (or offloaded). Every hub model that is not downloaded
    is named in one error before any loads (offline), not one per run."""
    from posekit.device import resolve_device
    from posekit.methods.diffusion.models import HubNeed, all_missing_named, check_offload, dtype_for, pipeline_needs

    device = resolve_device(o.device)
    check_offload(o.offload, device)
    dtype = dtype_for(device)
    if o.ip_adapter and o.ip_adapter_scale == 0:  # it adds nothing: neither it nor its image encoder is loaded
        from dataclasses import replace

        o = replace(o, ip_adapter=None)
    needs = [HubNeed(str(o.motion_adapter), "--motion-adapter", "config.json",
                     motion_download(str(o.motion_adapter), dtype, o.lcm)),
             *pipeline_needs(o.model, o.model_config, o.controlnet, o.lora, safety_checker=o.safety_checker,
                             ip_adapter=o.ip_adapter, dtype=dtype)]
    if o.lcm:  # (named above with the motion adapter when that is AnimateLCM's too)
        needs.append(HubNeed(ANIMATELCM, "--lcm", ANIMATELCM_LORA,
                             f"run `hf download {ANIMATELCM} {ANIMATELCM_LORA}` (for --lcm)"))
    with all_missing_named(needs):
        return _load_animatediff(o, device, dtype)


def _load_animatediff(o: AnimateDiffOptions, device, dtype):
    import torch
    from diffusers import AnimateDiffControlNetPipeline

    from posekit.errors import ModelNotFoundError, PosekitError
    from posekit.methods.diffusion.models import (add_extra_lora, add_ip_adapter, add_lora, load_pipeline, mismatch,
                                                  offload_suggestion, out_of_memory_hint, place, place_safety_checker)

    adapter = load_motion_adapter(o.motion_adapter, dtype)  # first: the smallest download to miss
    # on the CPU first: the motion UNet is built from this UNet's weights, then all of it moves
    sd = load_pipeline(o.model, o.model_config, o.controlnet, None, "cpu", img2img=False, dtype=dtype,
                       safety_checker=o.safety_checker)
    try:  # the motion UNet: SD's UNet with the adapter's temporal layers, which must fit its blocks
        pipe = AnimateDiffControlNetPipeline(
            vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet, motion_adapter=adapter,
            controlnet=sd.controlnet, scheduler=sd.scheduler, feature_extractor=sd.feature_extractor,
            image_encoder=None)
    except (PosekitError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as e:  # diffusers' "Incompatible Motion Adapter", or torch's size mismatch
        raise ModelNotFoundError(f"--motion-adapter {o.motion_adapter} does not fit --model {o.model} "
                                 f"({mismatch(e, 'the adapter')}); pass an SD 1.5 motion adapter (default "
                                 f"{DEFAULT_MOTION_ADAPTER}) with an SD 1.x --model") from None
    checker = sd.safety_checker if o.safety_checker else None
    del sd
    # LoRAs go onto the motion UNet (its 2-D layers keep SD's names) and the text encoder
    if o.lora:
        add_lora(pipe, str(o.lora))
    if o.lcm:  # AnimateLCM's LoRA: the image model's half of its consistency distillation, at 0.8
        add_extra_lora(pipe, ANIMATELCM, ANIMATELCM_LORA, "lcm-lora", ANIMATELCM_LORA_WEIGHT)
    if o.ip_adapter:
        add_ip_adapter(pipe, str(o.ip_adapter), o.ip_adapter_scale)
    set_motion_scheduler(pipe, o.scheduler)
    with out_of_memory_hint(offload_suggestion(o.offload), "the model"):
        place(pipe, device, o.offload)
        if checker is not None:  # not one of the pipeline's components: placed here, read by check_safety
            place_safety_checker(pipe, checker, device, o.offload)
    return pipe


def load_motion_adapter(name: str, dtype):
    """A diffusers MotionAdapter: hub id (cache first) or folder; offline and missing, one line
    naming `hf download NAME` and --motion-adapter."""
    from diffusers import MotionAdapter

    from posekit.methods.diffusion.models import fp16_first, from_hub_or_path

    return from_hub_or_path(fp16_first(MotionAdapter.from_pretrained, dtype), str(name), "--motion-adapter",
                            download=motion_download(str(name), dtype), dtype=dtype)


def motion_download(name: str, dtype, lcm: bool = False) -> str | None:
    """The `hf download` that fetches only what a run loads from the v1-5-3 or AnimateLCM
    repository: config.json and the adapter's weights in the dtype it runs in (fp16 on a GPU;
    both are 1.7 GB for v1-5-3, 0.9 and 1.8 GB for AnimateLCM, whose repository also holds a
    1.8 GB original checkpoint), with `lcm` AnimateLCM's LoRA (0.13 GB). None for other
    repositories (their layout is theirs: the whole repository)."""
    import torch

    if name not in (DEFAULT_MOTION_ADAPTER, ANIMATELCM):
        return None
    fp16 = ".fp16" if dtype == torch.float16 else ""
    files = ["config.json", f"diffusion_pytorch_model{fp16}.safetensors"]
    if lcm and name == ANIMATELCM:
        files.append(ANIMATELCM_LORA)
    include = " ".join(f'--include "{f}"' for f in files)
    return f"run `hf download {name} {include}` or pass --motion-adapter PATH"


def set_motion_scheduler(pipe, name: str) -> None:
    """The sampler. AnimateDiff's motion modules were trained with a linear beta schedule (SD 1.5
    itself uses scaled_linear), so every choice but `model` (the folder's scheduler, untouched)
    is built with beta_schedule="linear", as diffusers' AnimateDiff and AnimateLCM docs do (DDIM
    also with linspace timesteps and no sample clipping, as those docs build it)."""
    if name == "model":
        return
    if name == "lcm":
        from diffusers import LCMScheduler

        pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config, beta_schedule="linear")
        return
    from posekit.methods.diffusion.models import set_scheduler

    set_scheduler(pipe, name)
    spacing = {"timestep_spacing": "linspace", "clip_sample": False} if name == "ddim" else {}  # as diffusers' docs
    pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, beta_schedule="linear", **spacing)


def pil(image: np.ndarray):
    """An RGB uint8 array as a PIL image (diffusers' processors scale PIL images to 0..1; arrays
    they take as already scaled)."""
    from PIL import Image

    return Image.fromarray(image)

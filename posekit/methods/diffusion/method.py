"""Pose transfer with Stable Diffusion: img2img from the source photo, steered by ControlNet.

    method = DiffusionMethod(photo, photo_pose, DiffusionOptions(model=..., prompt="a photo of sks person"))
    frames = method(target_poses)

Each target pose is drawn as a ControlNet OpenPose skeleton; the source warped into that pose by
the classical method (init="warp", the default; or the source photo itself, init="source") is
noised to `strength` and denoised towards the prompt under the skeleton's control. Every frame
starts from the same seed, so the same noise: frames differ only where the pose does, and the
same seed gives the same image.

SD 1.5 is used at the size it was trained at: the photo is scaled to about 512 px on its short
side, at most 768 on its long side (`working_size`), and sampled with UniPC in 20 steps (or with
--lcm, LCM-LoRA in 6). The latents are decoded here rather than in the pipeline, so a VAE that
overflows in float16 is caught (and decoded again in float32) instead of giving black frames,
and the optional safety checker sees every frame.

With an IP-Adapter (`ip_adapter`), the person cut out of the photo (`ip_adapter_image`) is
encoded once and steers every frame as an image prompt: the face and clothes hold better than
with the text prompt alone, without training.

sheet=True is the seed paper's figure-6 trick: all skeletons laid out on one canvas (and the init
images tiled the same way), generated in one pass and cut back into frames, so the character
comes out the same in every frame because it is one image. The canvas is kept within SD's own
bounds (512 px short side, 768 long: the `sheet_short`/`sheet_side` attributes), and each cell
is resized back to the frame size.

Output frames have the source's size rounded to a multiple of 8 (the VAE's stride).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.console import step_progress
from posekit.errors import UsageError
from posekit.methods.diffusion.models import (DEFAULT_CONTROLNET, DEFAULT_MODEL, OFFLOADS, SCHEDULERS, check_choice,
                                              check_model_paths, check_offload, load_pipeline)
from posekit.pose.pose import Pose
from posekit.sheet import grid

INITS = ("source", "warp")
SHORT_SIDE, LONG_SIDE = 512, 768  # SD 1.5's training size, and how far its long side stays sane
STEPS, GUIDANCE = 20, 7.5
LCM_STEPS, LCM_GUIDANCE = 6, 1.5  # LCM-LoRA's own range: 4-8 steps, guidance 1-2
SHEET_SIDE = LONG_SIDE  # the --sheet canvas's long side
SHEET_CELL = 256  # a sheet cell lower than this draws a person too small for SD 1.5: a warning


def warn_past_sd_size(width: int, height: int, method: str) -> None:
    """A warning when a caller hands the method a photo over SD 1.5's long side (768 px): posekit's
    commands scale the photo to `working_size` first, a library caller may not, and SD then
    repeats limbs and takes far more time and memory."""
    if max(width, height) > LONG_SIDE:
        from posekit.console import warn

        w, h = sd_size(width, height)
        warn(f"the photo is {width}x{height}: SD 1.5 draws at about {SHORT_SIDE} px on the short side and "
             f"{LONG_SIDE} at most on the long one (larger repeats limbs and takes far more memory); scale it "
             f"to {method}.working_size({width}, {height}) = {w}x{h} first, as posekit animate does")


def round8(n: float) -> int:
    """The nearest multiple of 8, at least 8."""
    return max(8, int(round(n / 8.0)) * 8)


def sd_size(width: float, height: float, short: int = SHORT_SIDE, long: int = LONG_SIDE) -> tuple[int, int]:
    """(width, height) scaled, keeping the aspect, to `short` px on the short side unless that
    takes the long side past `long`; multiples of 8 (both bounds are, so rounding stays within)."""
    s = min(short / min(width, height), long / max(width, height))
    return round8(width * s), round8(height * s)


@dataclass(frozen=True)
class DiffusionOptions:
    """What `--method diffusion` takes from the command line."""

    model: str = DEFAULT_MODEL  # hub id, diffusers folder, or a .safetensors/.ckpt file
    model_config: str | Path | None = None  # diffusers config folder for a single-file model
    controlnet: str | None = DEFAULT_CONTROLNET  # hub id, folder, or "none"
    lora: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.75  # how far img2img noises the init image (0 to 1)
    steps: int | None = None  # None: 20, with lcm 6
    guidance: float | None = None  # None: 7.5, with lcm 1.5
    controlnet_scale: float = 1.0
    seed: int = 0  # the same for every frame: same noise, so frames differ only by pose
    init: str = "warp"  # img2img start: warp | source
    device: str = "auto"
    sheet: bool = False  # all frames in one pass on one canvas
    columns: int | None = None  # cells per row of that canvas (default: square-ish)
    scheduler: str | None = None  # unipc (default) | dpm++ | ddim | euler-a | model; lcm with lcm
    offload: str = "none"  # none | model | sequential
    safety_checker: bool = False
    ip_adapter: str | None = None  # hub id, folder or file of an SD 1.5 IP-Adapter
    ip_adapter_scale: float = 0.6
    lcm: bool = False

    def __post_init__(self):  # fill the defaults that depend on lcm; fail before any model is loaded
        fill_sampling(self)
        check_offload(self.offload, self.device)
        if self.init not in INITS:
            raise UsageError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        check_choice(self.offload, OFFLOADS, "--offload")
        check_strength(self.strength, self.steps)
        check_model_paths(self)  # a mistyped --model/--lora/... path: before the ControlNet loads


def fill_sampling(options) -> None:
    """The defaults that depend on --lcm, for a frozen options dataclass with `lcm`, `steps`,
    `guidance` and `scheduler` (None: unset): 20 steps, guidance 7.5, UniPC; with lcm 6 steps,
    guidance 1.5 and the LCM scheduler, which --lcm brings: another --scheduler is a usage error."""
    fill = {"steps": LCM_STEPS if options.lcm else STEPS, "guidance": LCM_GUIDANCE if options.lcm else GUIDANCE,
            "scheduler": "lcm" if options.lcm else "unipc"}
    for name, value in fill.items():
        if getattr(options, name) is None:
            object.__setattr__(options, name, value)
    if options.lcm and options.scheduler != "lcm":
        raise UsageError(f"--lcm samples with the LCM scheduler; leave out --scheduler {options.scheduler}")
    if not options.lcm:
        check_choice(options.scheduler, SCHEDULERS, "--scheduler")
    if options.steps < 1:
        raise UsageError(f"--steps {options.steps}: need at least 1")


def check_strength(strength: float, steps: int) -> None:
    """img2img runs int(steps * strength) of the steps: at least one."""
    if int(steps * strength) < 1:
        raise UsageError(f"--strength {strength} with --steps {steps} leaves no denoising step; "
                         "raise --strength or --steps")


class DiffusionMethod:
    Options = DiffusionOptions

    @staticmethod
    def load(options: DiffusionOptions | None = None):
        """The pipeline (UNet, ControlNet, VAE, text encoder, LoRA, LCM-LoRA, IP-Adapter and its
        image encoder, safety checker), placed on the device: what a batch of photos shares."""
        o = options or DiffusionOptions()
        return load_pipeline(o.model, o.model_config, o.controlnet, o.lora, o.device, scheduler=o.scheduler,
                             lcm=o.lcm, safety_checker=o.safety_checker, ip_adapter=o.ip_adapter,
                             ip_adapter_scale=o.ip_adapter_scale, offload=o.offload)

    def __init__(self, source_image: np.ndarray, source_pose: Pose, options: DiffusionOptions | None = None,
                 models=None):
        o = options or DiffusionOptions()
        self.source = np.ascontiguousarray(source_image[:, :, :3])
        self.source_pose = source_pose
        self.size = (round8(self.source.shape[1]), round8(self.source.shape[0]))  # (width, height)
        if not o.sheet:  # a sheet's canvas is scaled to SD's size whatever the photo's
            warn_past_sd_size(*self.source.shape[1::-1], "DiffusionMethod")
        self.prompt, self.negative_prompt = o.prompt, o.negative_prompt
        self.strength, self.steps, self.guidance = o.strength, o.steps, o.guidance
        self.controlnet_scale, self.seed = o.controlnet_scale, o.seed
        self.sheet, self.columns = o.sheet, o.columns
        self.sheet_short, self.sheet_side = SHORT_SIDE, SHEET_SIDE
        self.offload = o.offload
        self.warp = init_warp(self.source, source_pose, o.seed, "starting every frame from the source photo "
                              "instead (--init source)") if o.init == "warp" else None
        self.pipe = models if models is not None else self.load(o)
        self.controlled = hasattr(self.pipe, "controlnet")
        pos, neg = prompt_embeds(self.pipe, o.prompt, o.negative_prompt, o.guidance)
        self.embeds = {"prompt_embeds": pos, "negative_prompt_embeds": neg}
        ip = ip_adapter_embeds(self.pipe, self.source, source_pose, self.warp, o.ip_adapter_scale, o.guidance)
        self.ip_embeds = {"ip_adapter_image_embeds": ip} if ip is not None else {}
        self._warned: set[str] = set()
        self._done = 0  # frames made so far (over several clips): names frames in warnings

    @staticmethod
    def working_size(width: int, height: int, options=None) -> tuple[int, int]:
        """The size the photo is scaled to before the method: SD 1.5's own, about 512 px on the
        short side and at most 768 on the long side, multiples of 8 (frames are then fitted to
        the user's --size)."""
        return sd_size(width, height)

    # -- the Method contract --------------------------------------------------------------
    def frame_pose(self, pose: Pose) -> Pose:
        """A target pose (on the source canvas) in output-frame pixels."""
        return frame_pose(self.warp, self.size, pose)

    def fit_camera(self, targets: list[Pose]) -> None:
        """Fix the init warp's camera for all these targets (every clip of one sheet: one size
        and floor, which `frame_pose` then gives before any clip runs); see `fit_camera`."""
        fit_camera(self.warp, targets)

    def __call__(self, targets: list[Pose]) -> list[np.ndarray]:
        if not targets:
            return []
        inits = init_images(self.warp, targets, self.size) or [resize(self.source, self.size)] * len(targets)
        poses = [self.frame_pose(t) for t in targets]
        first, self._done = self._done, self._done + len(targets)
        passes = 1 if self.sheet and len(targets) > 1 else len(targets)
        with step_progress("diffusion", passes * max(1, int(self.steps * self.strength))) as step:
            if self.sheet and len(targets) > 1:
                return self._sheet(inits, poses, step)
            return [self._generate(init, self._skeleton(pose), step, name=f"frame {first + i}")
                    for i, (init, pose) in enumerate(zip(inits, poses))]

    # -- pieces ---------------------------------------------------------------------------
    def _generate(self, init: np.ndarray, skeleton: np.ndarray | None, step, name: str = "frame 0") -> np.ndarray:
        """One img2img pass from `init`, with `skeleton` as the ControlNet image; the latents
        decoded here (models.decode: the float16 overflow guard), then the safety checker."""
        import torch
        from PIL import Image

        from posekit.methods.diffusion.models import check_safety, decode, offload_suggestion, out_of_memory_hint

        kwargs = dict(image=Image.fromarray(init), strength=self.strength, num_inference_steps=self.steps,
                      guidance_scale=self.guidance, output_type="latent", callback_on_step_end=step,
                      # the same seed for every frame: same noise, so frames differ only by pose
                      generator=torch.Generator("cpu").manual_seed(self.seed), **self.embeds, **self.ip_embeds)
        if self.controlled:
            kwargs.update(control_image=Image.fromarray(skeleton), controlnet_conditioning_scale=self.controlnet_scale)
        what = f"{init.shape[1]}x{init.shape[0]} images"
        with out_of_memory_hint(offload_suggestion(self.offload), what), torch.inference_mode():
            latents = self.pipe(**kwargs).images
            out = decode(self.pipe, latents, warn=self._warn_once)
        if check_safety(self.pipe, out)[0]:
            self._warn_once(f"the safety checker flagged {name}: it is black", key=name)
            out[:] = 0.0
        return (np.clip(out[0], 0.0, 1.0) * 255.0).round().astype(np.uint8)

    def _warn_once(self, message: str, key: str | None = None) -> None:
        from posekit.console import warn

        key = key or message
        if key not in self._warned:
            self._warned.add(key)
            warn(message)

    def _skeleton(self, pose: Pose) -> np.ndarray | None:
        if not self.controlled:
            return None
        from posekit.pose.render import draw_skeleton

        return draw_skeleton(pose)

    def _sheet(self, inits: list[np.ndarray], poses: list[Pose], step) -> list[np.ndarray]:
        """Tile inits and skeletons on one canvas, generate once, cut into frames. Skeletons are
        drawn per cell so their stick width suits the cell, as in the single-frame case."""
        w, h = self.size
        cols, rows, cw, ch = self._cells(len(poses), self.columns)
        if ch < SHEET_CELL:
            from posekit.console import warn

            warn(f"--sheet: {len(poses)} frames on one {cols * cw}x{rows * ch} canvas (SD 1.5's size) leave "
                 f"{cw}x{ch} px per frame, too small for SD to draw a person (faces and hands break below "
                 f"{SHEET_CELL} px tall); {self._sheet_advice(len(poses))}, or leave out --sheet")
        init = np.zeros((rows * ch, cols * cw, 3), np.uint8)
        skeleton = np.zeros_like(init)
        cells = [divmod(i, cols) for i in range(len(poses))]
        for i in range(rows * cols):  # empty cells get the source: context, never cut out
            r, c = divmod(i, cols)
            init[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = resize(inits[i] if i < len(inits) else inits[0], (cw, ch))
            if i < len(poses) and self.controlled:
                skeleton[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = self._skeleton(poses[i].resized(cw, ch))
        sheet = self._generate(init, skeleton, step, name="the sheet")
        return [resize(sheet[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw], (w, h)) for r, c in cells]

    def _cells(self, n: int, columns: int | None) -> tuple[int, int, int, int]:
        """(columns, rows, cell width, cell height) of a sheet of n frames: a square-ish grid (or
        `columns`) scaled to SD's own size for the whole canvas, short side sheet_short and long
        side within sheet_side; cells in multiples of 8, rounded down so the canvas stays within."""
        w, h = self.size
        cols, rows = grid(n, columns, one_row_up_to=1)
        s = min(self.sheet_short / min(cols * w, rows * h), self.sheet_side / max(cols * w, rows * h))
        return (cols, rows, *(max(8, int(v * s) // 8 * 8) for v in (w, h)))

    def _sheet_advice(self, n: int) -> str:
        """What gives cells of SHEET_CELL px or more for this photo: another --columns for the
        same frames (the tallest cells), else the most --frames the default layout allows."""
        columns, _, cw, ch = max((self._cells(n, c) for c in range(1, n + 1)), key=lambda cells: (cells[3], cells[0]))
        if ch >= SHEET_CELL:
            return f"use --columns {columns} ({cw}x{ch} px per frame)"
        fit = [k for k in range(1, n) if self._cells(k, None)[3] >= SHEET_CELL]
        return f"use {max(fit)} frames or fewer (--frames)" if fit else "this photo leaves no room for several frames"


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(width, height) resize with Lanczos; the same array when the size already matches."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.LANCZOS))


def ip_adapter_image(source: np.ndarray, pose: Pose, mask: np.ndarray | None = None,
                     background: int = 255) -> np.ndarray:
    """The IP-Adapter's image of the person: cut out of `source` (`mask`, the (H, W) person alpha
    in 0..1; else the warp's segmentation, posekit.methods.warp.segment), composited on a plain
    `background` grey level (255: white), cropped to the person with a small margin and padded
    to a square, so the image encoder sees the person, centred, and not the room."""
    source = np.ascontiguousarray(source[:, :, :3])
    h, w = source.shape[:2]
    if mask is None:
        from posekit.methods.warp.segment import person_mask

        mask = person_mask(source, pose.fitted(w, h))
    cut = person_on_white(source, mask, background)
    ys, xs = np.nonzero(np.asarray(mask) > 0.5)
    if len(xs):
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    else:  # nobody in the mask: the pose's box, else the whole photo
        box = pose.fitted(w, h).bbox()
        x0, y0, x1, y1 = (int(v) for v in box) if box else (0, 0, w, h)
    margin = round(0.05 * max(x1 - x0, y1 - y0))
    x0, y0, x1, y1 = max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)
    crop = cut[y0:y1, x0:x1]
    side = max(crop.shape[:2])
    square = np.full((side, side, 3), background, np.uint8)
    top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return square


def person_on_white(image: np.ndarray, mask: np.ndarray, background: int = 255) -> np.ndarray:
    """The person of `image` (H, W, 3 uint8) on a plain `background` grey level (255: white):
    `mask` is the person alpha in 0..1, (H, W) or (H, W, 1) (posekit.methods.warp.segment.person_mask)."""
    image = np.asarray(image)[:, :, :3].astype(np.float32)
    alpha = np.clip(np.asarray(mask, np.float32), 0.0, 1.0).reshape(image.shape[:2])[:, :, None]
    return (image * alpha + background * (1.0 - alpha)).round().astype(np.uint8)


# -- what the SD 1.x methods (diffusion, animatediff) share, one function each ----------------------
def init_warp(source: np.ndarray, source_pose: Pose, seed: int, instead: str):
    """The classical warp that makes each frame's init image; None (and a warning ending in
    `instead`: what happens then) when it cannot run on this photo: it needs the pose's torso."""
    from posekit.methods.warp.method import WarpMethod, WarpOptions
    from posekit.methods.warp.rig import Shapes

    h, w = source.shape[:2]
    if Shapes.of(source_pose.fitted(w, h)).torso is None:
        from posekit.console import warn

        warn(f"--init warp: the photo's pose has no torso (shoulders and hips) to warp; {instead}")
        return None
    return WarpMethod(source, source_pose, WarpOptions(seed=seed))


def frame_pose(warp, size: tuple[int, int], pose: Pose) -> Pose:
    """A target pose (on the source canvas) in output-frame pixels (`size`: width, height), as
    the warp frames it when it makes the init images."""
    if warp is not None:
        pose = warp.frame_pose(pose)
    return pose.resized(*size)


def fit_camera(warp, targets: list[Pose]) -> None:
    """Fix the warp's camera (the frame its init images and `frame_pose` share) for all these
    targets, as the warp method's own `fit_camera`: the pipeline calls it once with every clip of
    a sheet, before it takes the photo's floor from `frame_pose`, so each clip is framed alike.
    Nothing to fix without a warp (the frames are the source's own view)."""
    if warp is not None:
        warp.fit_camera(targets)


def init_images(warp, targets: list[Pose], size: tuple[int, int]) -> list[np.ndarray] | None:
    """The source warped into each target pose at the frame size; None without a warp. Call it
    before `frame_pose`: the warp chooses its camera here (unless `fit_camera` fixed it)."""
    if warp is None:
        return None
    from posekit.images import to_rgb

    return [resize(to_rgb(f), size) for f in warp(targets)]


def prompt_embeds(pipe, prompt: str, negative_prompt: str, guidance: float):
    """(positive, negative) prompt embeddings, encoded once for a whole clip (the text encoder
    is then idle); negative is None without guidance (guidance <= 1)."""
    import torch

    with torch.inference_mode():
        return pipe.encode_prompt(prompt, pipe._execution_device, 1, guidance > 1.0, negative_prompt or None)


def ip_adapter_embeds(pipe, source: np.ndarray, source_pose: Pose, warp, scale: float, guidance: float):
    """With an IP-Adapter loaded: its image embeddings (a list, one per adapter, with their
    'unconditional' half for guidance) of the person cut out of the photo (`ip_adapter_image`;
    the warp's person mask when there is a warp), encoded once for every frame at `scale`
    (set here: the models may be a batch's); else None."""
    from posekit.methods.diffusion.models import has_ip_adapter

    if not has_ip_adapter(pipe):
        return None
    import torch
    from PIL import Image

    pipe.set_ip_adapter_scale(scale)
    mask = warp.alpha if warp is not None else None
    image = Image.fromarray(ip_adapter_image(source, source_pose, mask=mask))
    with torch.inference_mode():
        return pipe.prepare_ip_adapter_image_embeds(image, None, pipe._execution_device, 1, guidance > 1.0)

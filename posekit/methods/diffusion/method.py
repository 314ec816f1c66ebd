"""Pose transfer with Stable Diffusion: img2img from the source photo, steered by ControlNet.

    method = DiffusionMethod(photo, photo_pose, DiffusionOptions(model=..., prompt="a photo of sks person"))
    frames = method(target_poses)

Each target pose is drawn as a ControlNet OpenPose skeleton; the source photo (or, with
init="warp", the source warped into that pose by the classical method) is noised to `strength`
and denoised towards the prompt under the skeleton's control. Every frame starts from the same
seed, so the same noise: frames differ only where the pose does, and the same seed gives the
same image.

sheet=True is the seed paper's figure-6 trick: all skeletons laid out on one canvas (and the init
images tiled the same way), generated in one pass and cut back into frames, so the character
comes out the same in every frame because it is one image. The sheet is kept within
`SHEET_SIDE` pixels a side (the `sheet_side` attribute; SD 1.x degrades far beyond its training
size), and each cell is resized back to the frame size.

Output frames have the source's size rounded to a multiple of 8 (the VAE's stride).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posekit.errors import UsageError
from posekit.methods import long_side_at_most
from posekit.methods.diffusion.models import DEFAULT_CONTROLNET, DEFAULT_MODEL, load_pipeline
from posekit.pose.pose import Pose
from posekit.sheet import grid

INITS = ("source", "warp")
SHEET_SIDE = 1024  # the --sheet canvas's long side: SD 1.x degrades far beyond its training size


def round8(n: float) -> int:
    """The nearest multiple of 8, at least 8."""
    return max(8, int(round(n / 8.0)) * 8)


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
    steps: int = 20
    guidance: float = 7.5
    controlnet_scale: float = 1.0
    seed: int = 0  # the same for every frame: same noise, so frames differ only by pose
    init: str = "warp"  # img2img start: warp | source
    device: str = "auto"
    sheet: bool = False  # all frames in one pass on one canvas
    columns: int | None = None  # cells per row of that canvas (default: square-ish)
    scheduler: str = "unipc"  # unipc | dpm++ | ddim | euler-a | model
    offload: str = "none"  # none | model | sequential
    safety_checker: bool = False
    ip_adapter: str | None = None  # hub id, folder or file of an SD 1.5 IP-Adapter
    ip_adapter_scale: float = 0.6
    lcm: bool = False

    def __post_init__(self):  # fail before any model is loaded
        if self.init not in INITS:
            raise UsageError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        if int(self.steps * self.strength) < 1:
            raise UsageError(f"--strength {self.strength} with --steps {self.steps} leaves no denoising step; "
                             "raise --strength or --steps")


class DiffusionMethod:
    Options = DiffusionOptions

    @staticmethod
    def load(options: DiffusionOptions | None = None):
        """The pipeline (UNet, ControlNet, VAE, text encoder, LoRA): what a batch of photos shares."""
        o = options or DiffusionOptions()
        return load_pipeline(o.model, o.model_config, o.controlnet, o.lora, o.device)

    def __init__(self, source_image: np.ndarray, source_pose: Pose, options: DiffusionOptions | None = None,
                 models=None):
        o = options or DiffusionOptions()
        self.source = np.ascontiguousarray(source_image[:, :, :3])
        self.source_pose = source_pose
        self.size = (round8(self.source.shape[1]), round8(self.source.shape[0]))  # (width, height)
        if max(self.size) > 1024 and not o.sheet:
            from posekit.console import warn

            warn(f"the source is {self.size[0]}x{self.size[1]}: SD 1.x works best near 512 px and slows "
                 "with the square of the size; resize the photo for faster, cleaner results")
        self.prompt, self.negative_prompt = o.prompt, o.negative_prompt
        self.strength, self.steps, self.guidance = o.strength, o.steps, o.guidance
        self.controlnet_scale, self.seed = o.controlnet_scale, o.seed
        self.sheet, self.columns, self.sheet_side = o.sheet, o.columns, SHEET_SIDE
        self.warp = self._warp_method() if o.init == "warp" else None
        self.pipe = models if models is not None else self.load(o)
        self.controlled = hasattr(self.pipe, "controlnet")
        self.embeds = self._prompt_embeds()

    @staticmethod
    def working_size(width: int, height: int) -> tuple[int, int]:
        """The size the photo is scaled to before the method: a long side of at most 1024 px."""
        return long_side_at_most(width, height, 1024)

    def _warp_method(self):
        from posekit.methods.warp.method import WarpMethod, WarpOptions

        return WarpMethod(self.source, self.source_pose, WarpOptions(seed=self.seed))

    def _prompt_embeds(self) -> dict:
        """Encode the prompts once for the whole clip (the text encoder is then idle)."""
        import torch

        with torch.inference_mode():
            pos, neg = self.pipe.encode_prompt(self.prompt, self.pipe.device, 1, self.guidance > 1.0,
                                               self.negative_prompt or None)
        return {"prompt_embeds": pos, "negative_prompt_embeds": neg}

    # -- the Method contract --------------------------------------------------------------
    def frame_pose(self, pose: Pose) -> Pose:
        """A target pose (on the source canvas) in output-frame pixels."""
        if self.warp is not None:
            pose = self.warp.frame_pose(pose)
        return pose.resized(*self.size)

    def __call__(self, targets: list[Pose]) -> list[np.ndarray]:
        if not targets:
            return []
        inits = self._init_images(targets)
        poses = [self.frame_pose(t) for t in targets]
        with self._progress(len(targets)) as step:
            if self.sheet and len(targets) > 1:
                return self._sheet(inits, poses, step)
            return [self._generate(init, self._skeleton(pose), step) for init, pose in zip(inits, poses)]

    # -- pieces ---------------------------------------------------------------------------
    def _init_images(self, targets: list[Pose]) -> list[np.ndarray]:
        if self.warp is None:
            return [resize(self.source, self.size)] * len(targets)
        from posekit.images import to_rgb

        return [resize(to_rgb(f), self.size) for f in self.warp(targets)]

    def _generate(self, init: np.ndarray, skeleton: np.ndarray | None, step) -> np.ndarray:
        """One img2img pass from `init`, with `skeleton` as the ControlNet image."""
        import torch
        from PIL import Image

        kwargs = dict(image=Image.fromarray(init), strength=self.strength, num_inference_steps=self.steps,
                      guidance_scale=self.guidance, output_type="np", callback_on_step_end=step,
                      # the same seed for every frame: same noise, so frames differ only by pose
                      generator=torch.Generator("cpu").manual_seed(self.seed), **self.embeds)
        if self.controlled:
            kwargs.update(control_image=Image.fromarray(skeleton), controlnet_conditioning_scale=self.controlnet_scale)
        with torch.inference_mode():
            out = self.pipe(**kwargs).images[0]
        return (np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8)

    def _skeleton(self, pose: Pose) -> np.ndarray | None:
        if not self.controlled:
            return None
        from posekit.pose.render import draw_skeleton

        return draw_skeleton(pose)

    def _sheet(self, inits: list[np.ndarray], poses: list[Pose], step) -> list[np.ndarray]:
        """Tile inits and skeletons on one canvas, generate once, cut into frames. Skeletons are
        drawn per cell so their stick width suits the cell, as in the single-frame case."""
        w, h = self.size
        cols, rows = grid(len(poses), self.columns, one_row_up_to=1)  # a square-ish canvas
        s = min(1.0, self.sheet_side / max(cols * w, rows * h))
        cw, ch = (max(8, int(v * s) // 8 * 8) for v in (w, h))  # floor: the sheet stays within sheet_side
        if min(cw, ch) < 128:
            from posekit.console import warn

            warn(f"--sheet: {len(poses)} frames on one {self.sheet_side} px canvas leave {cw}x{ch} px per frame, "
                 "too small for SD to draw a person; use fewer --frames (8-16 suit one sheet)")
        init = np.zeros((rows * ch, cols * cw, 3), np.uint8)
        skeleton = np.zeros_like(init)
        cells = [divmod(i, cols) for i in range(len(poses))]
        for i in range(rows * cols):  # empty cells get the source: context, never cut out
            r, c = divmod(i, cols)
            init[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = resize(inits[i] if i < len(inits) else inits[0], (cw, ch))
            if i < len(poses) and self.controlled:
                skeleton[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = self._skeleton(poses[i].resized(cw, ch))
        sheet = self._generate(init, skeleton, step)
        return [resize(sheet[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw], (w, h)) for r, c in cells]

    def _progress(self, frames: int):
        """A progress bar over all denoising steps, advanced by the pipeline's step callback."""
        from contextlib import contextmanager

        from posekit.console import progress

        passes = 1 if self.sheet and frames > 1 else frames
        total = passes * max(1, int(self.steps * self.strength))

        @contextmanager
        def bar():
            with progress() as p:
                task = p.add_task("diffusion", total=total, status="")

                def step(pipe, i, t, callback_kwargs):
                    p.advance(task)
                    return callback_kwargs

                yield step

        return bar()


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(width, height) resize with Lanczos; the same array when the size already matches."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(tuple(size), Image.LANCZOS))

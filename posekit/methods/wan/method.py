"""Pose transfer with Wan2.2-Animate-14B: one character image + a pose video -> a video of it.

    method = WanMethod(photo, photo_pose, WanOptions(prompt="a knight in armour"))
    frames = method(target_poses, loop=True)

diffusers' `WanAnimatePipeline` (mode "animate") reads three things, which posekit makes:
1. the character image: the photo with the person cut out onto white (`character="cutout"`,
   the warp method's person mask) or the photo as it is (`"photo"`), at the frame size;
2. the pose video: each retargeted target pose drawn exactly as Wan-Animate's own preprocessing
   draws its skeletons (pose_video.py, which also says what posekit's COCO-18 poses lack);
3. the face video: square face crops (face.py) for the expression: the driving video's faces
   when the caller has them (`faces=`), else the photo's own face in every frame (a neutral,
   constant expression).

Frames: the photo's working size (at most the area of `resolution`: Wan's 480p, 832 x 480 by
default, or 720p, 1280 x 720, which costs about 2.3 times the tokens per frame) rounded down to
multiples of 16 (the VAE's stride 8 times the 2 x 2 patches). A clip that fits in one segment
is generated in one piece of the shortest length Wan allows (4k + 1 frames, the poses held at
the end); longer clips are generated `segment_frames` at a time, each segment conditioned on the
last `prev_frames` frames of the one before, as the pipeline does. A cyclic clip (`loop=True`)
is generated a quarter cycle past its end; the first frames are then cross-faded into those
extra frames, which show the same poses and follow on from the last frame, so the last frame
flows into the first.

Precision: bfloat16 on a GPU, with the VAE in float32 as diffusers advises; float32 on the CPU.
Memory (`offload`): "none" keeps every model on the GPU (about 47 GB of weights: the 17.3B-
parameter transformer alone is 34.5 GB in bfloat16), "model" moves each model to the GPU only while it runs, "group" streams
the transformer's and text encoder's blocks in one at a time (least memory). The same seed gives
the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from posekit.errors import UsageError
from posekit.methods.diffusion.models import out_of_memory_hint
from posekit.pose.pose import Pose

DEFAULT_WAN_MODEL = "Wan-AI/Wan2.2-Animate-14B-Diffusers"
OFFLOADS = ("none", "model", "group")
CHARACTERS = ("cutout", "photo")
AREAS = {"480p": 832 * 480, "720p": 1280 * 720}  # --resolution: the photo is scaled down to at most this area
STRIDE = 16  # frame sides are multiples of this (VAE stride 8 x patch 2)
LOOP_SHARE = 0.25  # a cyclic clip is generated this share of a cycle past its end
MAX_TEXT_TOKENS = 512  # the pipeline's max_sequence_length


def wan_length(n: int) -> int:
    """The shortest segment length Wan accepts (4k + 1) that holds n frames."""
    return 4 * math.ceil((max(n, 1) - 1) / 4) + 1


@dataclass(frozen=True)
class WanOptions:
    """What `--method wan` takes from the command line."""

    model: str = DEFAULT_WAN_MODEL  # hub id or diffusers folder
    prompt: str = ""
    negative_prompt: str = ""  # used when guidance > 1
    steps: int = 20
    guidance: float = 1.0  # Wan-Animate runs without classifier-free guidance
    seed: int = 0
    device: str = "auto"
    offload: str = "none"  # none | model | group
    resolution: str = "480p"  # 480p | 720p: the largest frame area (AREAS)
    character: str = "cutout"  # cutout (the person on white) | photo
    segment_frames: int = 77  # frames per generated segment (4k + 1)
    prev_frames: int = 1  # frames of the previous segment that condition the next (1 or 5)

    def __post_init__(self):  # fail before any model is loaded
        if self.offload == "sequential":
            raise UsageError("--offload sequential: Wan offloads by blocks instead; use --offload group "
                             "(least GPU memory) or --offload model")
        if self.offload not in OFFLOADS:
            raise UsageError(f"--offload {self.offload!r}: choose one of {', '.join(OFFLOADS)}")
        from posekit.methods.diffusion.models import check_offload_device

        check_offload_device(self.offload, self.device)
        if self.resolution not in AREAS:
            raise UsageError(f"--resolution {self.resolution!r}: choose one of {', '.join(AREAS)}")
        if self.character not in CHARACTERS:
            raise UsageError(f"--character {self.character!r}: choose one of {', '.join(CHARACTERS)}")
        if self.steps < 1:
            raise UsageError(f"--steps {self.steps}: at least 1")
        if self.prev_frames not in (1, 5):
            raise UsageError(f"--prev-frames {self.prev_frames}: Wan conditions a segment on 1 or 5 frames")
        n = self.segment_frames
        if n < 5 or (n - 1) % 4:
            lower, upper = max(5, 4 * ((n - 1) // 4) + 1), 4 * math.ceil((n - 1) / 4) + 1
            raise UsageError(f"--segment-frames {n}: Wan generates 4k+1 frames a segment; use "
                             + (f"{lower} or {upper}" if lower != upper else f"{upper}"))
        if n <= 2 * self.prev_frames:
            raise UsageError(f"--segment-frames {n} with --prev-frames {self.prev_frames}: a segment must be "
                             f"longer than twice the frames it is conditioned on; use --segment-frames "
                             f"{wan_length(2 * self.prev_frames + 2)} or more")
        from posekit.errors import ModelNotFoundError
        from posekit.methods.diffusion.models import check_local_path

        if check_local_path(self.model, "--model") is not None:  # there: a WanAnimatePipeline folder?
            try:
                check_folder(str(self.model))
            except ModelNotFoundError as e:
                raise UsageError(str(e)) from None


class WanMethod:
    Options = WanOptions

    @staticmethod
    def load(options: WanOptions | None = None):
        """The WanAnimatePipeline on its device (what a batch of photos shares)."""
        return load_pipeline(options or WanOptions())

    def __init__(self, source_image: np.ndarray, source_pose: Pose, options: WanOptions | None = None,
                 models=None):
        o = self.options = options or WanOptions()
        self.source = np.ascontiguousarray(source_image[:, :, :3])
        self.source_pose = source_pose
        h, w = self.source.shape[:2]
        fw, fh = self.working_size(w, h, o)  # the pipeline has scaled the photo already; a caller may not have
        self.size = (max(STRIDE, fw // STRIDE * STRIDE), max(STRIDE, fh // STRIDE * STRIDE))  # (width, height)
        if min(self.size) < 256:
            from posekit.console import warn

            warn(f"the photo is {w}x{h}: Wan-Animate works at 480p (832x480) and 720p; a larger photo "
                 "gives a sharper character")
        self.pipe = models if models is not None else self.load(o)
        self.face_size = int(self.pipe.transformer.config.motion_encoder_size)
        self.character = self._character_image()
        self.reference_face = self._reference_face()
        self.embeds = self._prompt_embeds()

    @staticmethod
    def working_size(width: int, height: int, options=None) -> tuple[int, int]:
        """The size the photo is scaled to before the method: at most the area of the options'
        resolution (480p: 832 x 480 pixels), the aspect kept; __init__ then rounds each side down
        to a multiple of 16. A smaller photo is not enlarged."""
        area = AREAS[(options or WanOptions()).resolution]
        s = min(1.0, math.sqrt(area / (width * height)))
        return (width, height) if s == 1.0 else (round(width * s), round(height * s))

    # -- the Method contract --------------------------------------------------------------
    def frame_pose(self, pose: Pose) -> Pose:
        """A target pose (on the source canvas) in output-frame pixels."""
        return pose.resized(*self.size)

    def __call__(self, targets: list[Pose], loop: bool | None = None,
                 faces: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """One frame per target. `loop`: the clip plays as a cycle (its last frame leads into its
        first) if its poses come back to the first one; False: always open (a jump, transfer's
        stills); None (the default, as animatediff's): decided from the poses alone.
        `faces`: the driving video's face crops, one per target (face.driving_faces); else the
        photo's own face throughout. Several targets are one video (transfer's poses too), so
        the character stays the same in every frame."""
        if not targets:
            return []
        if faces is not None and len(faces) != len(targets):
            raise ValueError(f"WanMethod: {len(faces)} face crops for {len(targets)} targets")
        n = len(targets)
        poses = [self.frame_pose(t) for t in targets]
        faces = [self._face(f) for f in faces] if faces is not None else [self.reference_face] * n
        from posekit.methods.animatediff.windows import closes_loop

        # a cycle is closed when its poses come back to the first (a file's clip: decided here)
        extra = loop_extra(n) if loop is not False and closes_loop(targets) else 0
        frames = self._generate(poses + poses[:extra], faces + faces[:extra])
        return close_loop(frames, n) if extra else frames

    def driving_faces(self, video, frames: int, detector) -> list[np.ndarray] | None:
        """The face crops of a driving video, resampled to `frames` as its poses were (the
        pipeline passes them to __call__ as `faces` when --poses is a video); None when nobody is
        in it (a skeleton video), so the photo's own face is used."""
        from posekit.methods.wan.face import driving_faces

        return driving_faces(video, frames, detector, self.face_size)

    # -- pieces ---------------------------------------------------------------------------
    def _character_image(self) -> np.ndarray:
        """The photo at the frame size: the person cut out onto white, or the photo itself."""
        from posekit.methods.diffusion.method import resize

        image = self.source
        if self.options.character == "cutout":
            from posekit.methods.warp.segment import person_mask, segmenter

            from posekit.methods.diffusion.method import person_on_white

            with segmenter() as detector:
                image = person_on_white(image, person_mask(image, self.source_pose, self.options.seed, detector=detector))
        return resize(image, self.size)

    def _reference_face(self) -> np.ndarray:
        from posekit.methods.wan.face import face_crop

        return face_crop(self.source, self.source_pose, self.face_size)

    def _face(self, crop: np.ndarray) -> np.ndarray:
        from posekit.methods.diffusion.method import resize

        return resize(np.ascontiguousarray(crop[:, :, :3]), (self.face_size, self.face_size))

    def _prompt_embeds(self) -> dict:
        """Encode the prompts once for every clip of this photo (the text encoder is then idle)."""
        embeds = {"prompt_embeds": encode_text(self.pipe, self.options.prompt)}
        if self.options.guidance > 1.0:
            embeds["negative_prompt_embeds"] = encode_text(self.pipe, self.options.negative_prompt)
        return embeds

    def _generate(self, poses: list[Pose], faces: list[np.ndarray]) -> list[np.ndarray]:
        """Run the pipeline on a pose video (and its face video); one uint8 frame per pose."""
        import torch
        from PIL import Image

        from posekit.methods.wan.pose_video import draw_wan_pose

        o, total = self.options, len(poses)
        prev = o.prev_frames
        if total <= o.segment_frames:  # one segment, as short as Wan allows; the last pose held
            if prev != 1 and not getattr(self, "_prev_warned", False):  # no segment follows another
                from posekit.console import warn

                self._prev_warned = True
                warn(f"--prev-frames has no effect here: the {total}-frame clip fits one segment "
                     f"(--segment-frames {o.segment_frames})")
            prev = 1  # the first segment is conditioned on nothing: any value gives the same frames
            length = wan_length(max(total, 2 * prev + 1))
            poses = poses + [poses[-1]] * (length - total)
            faces = faces + [faces[-1]] * (length - total)
            segments = 1
        else:  # segment by segment; the pipeline pads the last one
            length = o.segment_frames
            segments = math.ceil((total - prev) / (length - prev))
        w, h = self.size
        kwargs = dict(
            image=Image.fromarray(self.character),
            pose_video=[Image.fromarray(draw_wan_pose(p)) for p in poses],
            face_video=[Image.fromarray(f) for f in faces],
            height=h, width=w, segment_frame_length=length, prev_segment_conditioning_frames=prev,
            num_inference_steps=o.steps, guidance_scale=o.guidance, mode="animate", output_type="np",
            generator=torch.Generator("cpu").manual_seed(o.seed), max_sequence_length=MAX_TEXT_TOKENS,
            **self.embeds)
        with self._progress(segments * o.steps) as step, out_of_memory_hint(memory_suggestion(o.offload), f"{w}x{h} frames"):
            with torch.inference_mode():
                video = self.pipe(callback_on_step_end=step, **kwargs).frames[0]
        video = (np.clip(np.asarray(video), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        return list(video[:total])

    def _progress(self, total: int):
        """A progress bar over all denoising steps of all segments."""
        from posekit.console import step_progress

        return step_progress("wan", total)


# -- loops -----------------------------------------------------------------------------------
def loop_extra(n: int) -> int:
    """Frames generated past the end of an n-frame cycle (its first poses again): a quarter."""
    return 0 if n < 3 else max(1, min(n - 1, round(n * LOOP_SHARE)))


def close_loop(frames: list[np.ndarray], n: int) -> list[np.ndarray]:
    """n frames from n + k generated ones, where frames n.. show the poses of frames 0.. again
    and follow on from frame n - 1: frame j < k becomes a cross-fade from frame n + j (all of
    it at j = 0) to frame j, so the last frame leads into the first as it led into frame n."""
    k = len(frames) - n
    out = list(frames[:n])
    for j in range(k):
        a = j / k  # the share of the first pass
        out[j] = ((1.0 - a) * frames[n + j].astype(np.float32) + a * frames[j].astype(np.float32)).round().astype(np.uint8)
    return out


# -- loading ---------------------------------------------------------------------------------
def load_pipeline(o: WanOptions):
    """WanAnimatePipeline from a hub id or folder: bfloat16 on a GPU with the VAE in float32,
    float32 elsewhere; placed on the device as `o.offload` says; progress bars off."""
    import torch

    from posekit.device import resolve_device
    from posekit.methods.diffusion.models import from_hub_or_path, no_loading_bars

    device = resolve_device(o.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    no_loading_bars()  # their loading bars would interleave with ours

    def load(name, **kwargs):
        from diffusers import AutoencoderKLWan, WanAnimatePipeline

        vae = AutoencoderKLWan.from_pretrained(name, subfolder="vae", dtype=torch.float32, **kwargs)
        return WanAnimatePipeline.from_pretrained(name, vae=vae, dtype=dtype, **kwargs)

    check_folder(str(o.model))
    pipe = from_hub_or_path(load, str(o.model), "--model")
    with out_of_memory_hint(memory_suggestion(o.offload), "the model"):
        place(pipe, device, o.offload)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def check_folder(model: str) -> None:
    """A local --model must be a WanAnimatePipeline folder (its model_index.json says so)."""
    import json
    from pathlib import Path

    from posekit.errors import ModelNotFoundError
    from posekit.methods.diffusion.models import is_local

    folder = Path(model).expanduser()
    if not is_local(model) or not folder.exists():
        return  # a hub id; a missing path is from_hub_or_path's error
    index = folder / "model_index.json"
    try:
        kind = json.loads(index.read_text()).get("_class_name") if index.is_file() else None
    except (OSError, ValueError):
        kind = "unreadable"
    if kind != "WanAnimatePipeline":
        found = f"its model_index.json says {kind}" if kind else "no model_index.json"
        sd = ("; an SD 1.x model is for --method diffusion or animatediff"
              if kind and kind.startswith("StableDiffusion") and "XL" not in kind and "3" not in kind else "")
        raise ModelNotFoundError(f"--model {model}: not a Wan-Animate diffusers folder ({found}){sd}; run "
                                 f"`hf download {DEFAULT_WAN_MODEL} --local-dir DIR` and pass --model DIR")


def place(pipe, device, offload: str) -> None:
    """Put the pipeline on `device`: all of it (none), each model while it runs (model), or the
    transformer's and text encoder's blocks brought in from the CPU one block at a time, the next
    one copied on a CUDA stream while the current one runs (group; the VAE and image encoder,
    small, stay on the device). Group offloading gives the same frames as none."""
    import torch

    if offload != "none" and device.type != "cuda":
        raise UsageError(f"--offload {offload} moves models between the CPU and a CUDA GPU; on "
                         f"{device.type} use --offload none (or --device cuda)")
    if offload == "none":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_group_offload(onload_device=device, offload_device=torch.device("cpu"),
                                  offload_type="block_level", num_blocks_per_group=1,
                                  use_stream=device.type == "cuda", exclude_modules=["vae", "image_encoder"])
        pipe.vae.to(device)
        pipe.image_encoder.to(device)


def encode_text(pipe, text: str):
    """(1, 512, dim) UMT5 embeddings of `text`, as the pipeline computes them (the tokens, then
    zeros past the prompt's end); done here so that a prompt needs no ftfy, which the pipeline
    imports only when installed."""
    import html
    import re

    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    text = re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()
    tokens = pipe.tokenizer([text], padding="max_length", max_length=MAX_TEXT_TOKENS, truncation=True,
                            add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
    device = get_module_execution_device(pipe.text_encoder)
    with torch.inference_mode():
        hidden = pipe.text_encoder(tokens.input_ids.to(device), tokens.attention_mask.to(device)).last_hidden_state
        hidden[:, int(tokens.attention_mask.sum()):] = 0.0
    return hidden.to(pipe._execution_device, pipe.transformer.dtype)


def memory_suggestion(offload: str) -> str:
    """What to try after running out of GPU memory under --offload `offload`."""
    if offload == "group":
        return "use a smaller photo or a shorter --segment-frames (e.g. 33); --offload group already uses the least memory"
    return "try --offload group (least memory) or --offload model"

"""DreamBooth: teach Stable Diffusion 1.x one subject (or one style) from a few images.

    config = DreamBoothConfig("photos/", "a photo of sks person", lora=True, steps=400)
    train_dreambooth(config, "runs/me")

A readable training loop on accelerate (devices, mixed precision, several processes) following
the recipe of diffusers' train_dreambooth.py / train_dreambooth_lora.py:

- the instance images are fitted whole into a square (letterboxed on their own border colour,
  never randomly cropped: a sprite sheet cell or a full-body photo must keep its feet); a `.txt`
  beside an image overrides the instance prompt for it;
- prior preservation: class images of the base model (generated once into the class folder when
  it holds too few) are trained on alongside, with their loss weighted by prior_loss_weight
  (`dreambooth_loss`);
- latents and (with a frozen text encoder) prompt embeddings are computed once up front: the VAE
  and text encoder then cost nothing per step;
- full fine-tune, or LoRA (peft) on the attention projections to_q/to_k/to_v/to_out.0;
- the run folder is posekit.training's: OUT/config.json, and every `checkpointing_steps` the
  whole training state (accelerator.save_state) in OUT/checkpoint-<step>, written atomically;
  `resume=True` continues from the newest one exactly where it left off (same data order, noise).
  A LoRA run's checkpoint holds its adapters as pytorch_lora_weights.safetensors in diffusers'
  layout, so `--lora OUT/checkpoint-<step>` samples the weights of that step;
- the result: a full pipeline folder in OUT (usable as --model again, so fine-tunes chain) or
  OUT/pytorch_lora_weights.safetensors (pipeline.load_lora_weights reads it). model_index.json /
  the LoRA file are written last, so a folder that has them is complete.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from posekit.console import info, progress, warn
from posekit.errors import PosekitError, UsageError
from posekit.images import IMAGE_SUFFIXES, load_image, save_image
from posekit.methods.diffusion.models import DEFAULT_MODEL, load_pipeline
from posekit.training import (check_run_folder, load_latest_checkpoint, make_accelerator, run_lock, save_checkpoint,
                              shuffled, write_config)

LORA_FILE = "pytorch_lora_weights.safetensors"
UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


@dataclass
class DreamBoothConfig:
    """What `posekit dreambooth` was asked, one field per flag; saved as OUT/config.json.
    learning_rate None means the default for the kind of run (`default_learning_rate`)."""

    instance_dir: str
    instance_prompt: str
    model: str = DEFAULT_MODEL
    model_config: str | None = None
    class_prompt: str | None = None
    with_prior_preservation: bool = False
    class_dir: str | None = None
    num_class_images: int = 100
    prior_loss_weight: float = 1.0
    lora: bool = False
    rank: int = 4
    train_text_encoder: bool = False
    resolution: int = 512
    steps: int = 800
    learning_rate: float | None = None
    batch_size: int = 1
    gradient_accumulation: int = 1
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    mixed_precision: str = "no"
    checkpointing_steps: int = 500
    keep_checkpoints: int = 2
    validation_prompt: str | None = None
    validation_steps: int = 100
    seed: int = 0
    class_steps: int = 30  # sampling steps of generated class images (no flag)
    device: str = "auto"

    # how long, how often, how to sample and where: a resumed run may change these; every other
    # field defines the model or its data and must stay what the run used
    may_change_on_resume: ClassVar[tuple[str, ...]] = (
        "steps", "checkpointing_steps", "keep_checkpoints", "validation_prompt", "validation_steps", "class_steps",
        "gradient_checkpointing", "device", "model_config")

    def resolved(self) -> "DreamBoothConfig":
        """Paths as text and the learning rate filled in: what config.json records."""
        text = lambda v: None if v is None else str(v)  # noqa: E731
        return replace(self, instance_dir=str(self.instance_dir), model=str(self.model),
                       model_config=text(self.model_config), class_dir=text(self.class_dir),
                       learning_rate=self.learning_rate or default_learning_rate(self.lora, self.train_text_encoder))


def default_learning_rate(lora: bool, train_text_encoder: bool) -> float:
    """What works in practice: 1e-4 for LoRA; 5e-6 full (2e-6 when the text encoder trains too)."""
    return 1e-4 if lora else (2e-6 if train_text_encoder else 5e-6)


# -- data ----------------------------------------------------------------------------------
@dataclass
class Example:
    image: np.ndarray  # (resolution, resolution, 3) uint8
    prompt: str


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Scale the whole image into a size x size square and pad the rest with the median colour
    of its border (a plain background continues; nothing of the figure is cut off)."""
    from PIL import Image

    h, w = image.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.LANCZOS))
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    out = np.empty((size, size, 3), np.uint8)
    out[:] = np.median(border, axis=0).astype(np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = resized
    return out


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_examples(folder: Path, prompt: str, resolution: int, flag: str) -> list[Example]:
    """Every image of a folder, fitted to the resolution, with its caption (.txt) or `prompt`.
    Unreadable images are named together in one error: training on a silently shorter set would
    be worse than stopping."""
    if not folder.is_dir():
        raise UsageError(f"{flag} {folder}: no such folder")
    files = image_files(folder)
    if not files:
        raise UsageError(f"{flag} {folder}: no images in it (JPEG, PNG, WebP...)")
    examples, bad = [], []
    for path in files:
        try:
            image = load_image(path)
        except PosekitError as e:
            bad.append(str(e))
            continue
        caption = path.with_suffix(".txt")
        try:
            text = caption.read_text().strip() if caption.is_file() else ""
        except (OSError, UnicodeDecodeError) as e:
            raise PosekitError(f"{caption}: cannot read this caption ({e}); save it as UTF-8 text") from None
        examples.append(Example(fit_square(image, resolution), text or prompt))
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise PosekitError(f"{flag}: unreadable image {bad[0]}{more}; fix or remove it")
    return examples


def instance_words(instance_prompt: str, class_prompt: str | None) -> set[str]:
    """The words that name the subject: in the instance prompt but not the class prompt."""
    words = lambda s: set(re.findall(r"[\w<>-]+", (s or "").lower()))  # noqa: E731
    return words(instance_prompt) - words(class_prompt) - {"a", "an", "the", "of", "in", "on", "photo", "picture", "image"}


def warn_about_prompts(instance_prompt, class_prompt, validation_prompt, examples) -> None:
    token = instance_words(instance_prompt, class_prompt)
    if class_prompt and not token:
        warn(f"--instance-prompt {instance_prompt!r} has no word beyond the class prompt; add a rare token "
             "such as 'sks' so the model learns a name for the subject")
        return
    lacks = lambda p: token and not (token & instance_words(p, None))  # noqa: E731
    if validation_prompt and lacks(validation_prompt):
        warn(f"--validation-prompt {validation_prompt!r} lacks the instance token ({', '.join(sorted(token))})")
    n = sum(1 for e in examples if e.prompt != instance_prompt and lacks(e.prompt))
    if n:
        warn(f"{n} caption(s) lack the instance token ({', '.join(sorted(token))})")


def generate_class_images(pipe, prompt: str, folder: Path, count: int, resolution: int, seed: int,
                          batch: int = 4, steps: int = 30) -> None:
    """Fill `folder` up to `count` images of `prompt` from the base model (prior preservation);
    each is saved atomically as it comes, so an interrupted fill resumes where it stopped."""
    folder.mkdir(parents=True, exist_ok=True)
    have = len(image_files(folder))
    if have >= count:
        return
    info(f"generating {count - have} class images of {prompt!r} into {folder}")
    device = pipe.device
    autocast = torch.autocast("cuda", torch.float16) if device.type == "cuda" else nullcontext()
    with progress() as p:
        task = p.add_task("class images", total=count - have, status="")
        i = have
        while i < count:
            n = min(batch, count - i)
            gens = [torch.Generator("cpu").manual_seed(seed + i + k) for k in range(n)]
            with torch.inference_mode(), autocast:
                images = pipe([prompt] * n, height=resolution, width=resolution, num_inference_steps=steps,
                              generator=gens, output_type="np").images
            for k, im in enumerate(images):
                save_image((np.clip(im, 0, 1) * 255).round().astype(np.uint8), folder / f"class-{i + k:05d}.png")
            i += n
            p.advance(task, n)


# -- checkpoints -----------------------------------------------------------------------------
def lora_state_hooks(accelerator, unet, text_encoder):
    """Make save_state/load_state store only the LoRA weights of the peft-wrapped models (a few
    MB instead of the whole frozen UNet in every checkpoint), as one diffusers LoRA file: each
    checkpoint-<step> folder of a LoRA run is also a `--lora` folder (the weights of that step)."""
    def name_of(model):
        return "unet" if isinstance(accelerator.unwrap_model(model), type(unet)) else "text_encoder"

    def save(models, weights, output_dir):
        if accelerator.is_main_process:
            trained = {name_of(m): accelerator.unwrap_model(m) for m in models}
            write_lora_file(Path(output_dir), trained["unet"], trained.get("text_encoder"))
        weights.clear()  # accelerate would save every model's full state dict next to it

    def load(models, input_dir):
        trained = {}
        while models:
            model = models.pop()
            trained[name_of(model)] = accelerator.unwrap_model(model)
        read_lora_file(Path(input_dir), trained)

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def write_lora_file(folder: Path, unet, text_encoder=None) -> Path:
    """folder/pytorch_lora_weights.safetensors in diffusers' LoRA layout (what
    StableDiffusionPipeline.load_lora_weights and so `--lora` read): the peft adapters' state dicts
    renamed to diffusers' keys, under unet. and text_encoder."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = lambda m: convert_state_dict_to_diffusers(get_peft_model_state_dict(m))  # noqa: E731
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers(unet),
                                              text_encoder_lora_layers=layers(text_encoder) if text_encoder else None)
    return folder / LORA_FILE


def read_lora_file(folder: Path, models: dict) -> None:
    """Load folder/pytorch_lora_weights.safetensors back into the peft adapters of `models`
    ({"unet": ..., "text_encoder": ...}), exactly: the keys are renamed, the values untouched.
    A checkpoint written before LoRA checkpoints were diffusers files holds <name>_lora.safetensors
    per model in peft's own names instead, which --resume still reads."""
    from diffusers.utils import convert_state_dict_to_peft, convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    if not (folder / LORA_FILE).is_file():  # a checkpoint of posekit 0.x: one peft state file per model
        for name, model in models.items():
            set_peft_model_state_dict(model, load_file(folder / f"{name}_lora.safetensors"))
        return
    state = load_file(folder / LORA_FILE)
    # diffusers names the UNet's layers to_q.lora.down, the text encoder's q_proj.lora_linear_layer.down
    to_peft = {"unet": convert_unet_state_dict_to_peft, "text_encoder": convert_state_dict_to_peft}
    for name, model in models.items():
        part = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        if not part:
            raise PosekitError(f"{folder / LORA_FILE}: holds no {name} LoRA weights")
        result = set_peft_model_state_dict(model, to_peft[name](part))
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise PosekitError(f"{folder / LORA_FILE}: {name} LoRA weights of another model ({unexpected[0]})")


# -- training ------------------------------------------------------------------------------
def train_dreambooth(config: DreamBoothConfig, out, resume: bool = False) -> Path:
    """Fine-tune and write the model into `out`; returns the pipeline folder or the LoRA file.
    With `resume`, continue the run in `out` from its newest checkpoint. One run at a time
    writes into `out` (posekit.training.run_lock): another is refused at once."""
    out, c = Path(out), config.resolved()
    check_options(c)
    accelerator = dreambooth_accelerator(c, out)
    with run_lock(out, accelerator.is_main_process):  # one run writes into --out, for the whole run
        return _train(c, out, resume, accelerator)


def _train(c: DreamBoothConfig, out: Path, resume: bool, accelerator) -> Path:
    from accelerate.utils import set_seed

    check_run_folder(out, c, resume, results=("model_index.json", LORA_FILE))
    instances = load_examples(Path(c.instance_dir), c.instance_prompt, c.resolution, "--instance-dir")
    set_seed(c.seed)
    main = accelerator.is_main_process
    say = info if main else (lambda message: None)  # one voice under `accelerate launch`
    if main:
        warn_about_prompts(c.instance_prompt, c.class_prompt if c.with_prior_preservation else None,
                           c.validation_prompt, instances)
    # the base model once: its components are what we train, its scheduler samples validations
    base = load_pipeline(c.model, c.model_config, controlnet=None, img2img=False, device=accelerator.device,
                         dtype=torch.float32)
    classes = class_examples(c, base, accelerator)
    models, params, optimizer, lr_scheduler, dtype = set_up_models(c, base, accelerator)
    unet, text_encoder = trained_modules(c, base, models, accelerator)
    data = encode_data(c, base, models, instances, classes, accelerator.device, dtype)
    noise_scheduler = _training_scheduler(base.scheduler)
    start, last = load_latest_checkpoint(accelerator, out) if resume else (0, None)
    if last:
        say(f"resuming from step {start} ({last})")
    elif resume and main:
        warn(f"--resume: no checkpoint in {out}; starting from step 0")
    if main:  # only now that the set-up worked: a run that failed to start leaves no config behind
        write_config(out, {**asdict(c), "processes": accelerator.num_processes})
    say(f"dreambooth: {len(instances)} instance images{f', {len(classes)} class images' if classes else ''}, "
        f"{c.steps} steps of {c.batch_size * accelerator.num_processes * c.gradient_accumulation} "
        f"({'LoRA rank ' + str(c.rank) if c.lora else 'full fine-tune'}, lr {c.learning_rate:g}) on {accelerator.device}")

    for m in models:
        m.train()
    step, micro = start, start * c.gradient_accumulation
    with progress(transient=False) if main else nullcontext() as bar:
        task = bar.add_task("dreambooth", total=c.steps, completed=start, status="") if main else None
        while step < c.steps:
            with accelerator.accumulate(*models):
                latents, hidden = data.batch(micro, c.batch_size, accelerator.process_index,
                                             accelerator.num_processes, c.seed)
                loss = diffusion_loss(models[0], noise_scheduler, latents, hidden,
                                      c.prior_loss_weight if classes else None)
                optimize(accelerator, loss, params, optimizer, lr_scheduler)
            micro += 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            if main:
                bar.update(task, advance=1, status=f"loss {loss.detach().item():.4f}")
            if c.checkpointing_steps and step % c.checkpointing_steps == 0:  # the last step's too, as diffusers does
                save_checkpoint(accelerator, out, step, c.keep_checkpoints)
            if c.validation_prompt and c.validation_steps and step % c.validation_steps == 0 and main:
                validate(c, out, step, base, unet, text_encoder, accelerator.device, dtype)
    return finish(c, out, accelerator, base, unet, text_encoder, dtype)


def check_options(c: DreamBoothConfig) -> None:
    from posekit.methods.diffusion.models import is_local

    if is_local(c.model) and not Path(c.model).expanduser().exists():  # a path, and a missing one
        raise UsageError(f"--model {c.model}: no such file or folder")
    if c.model_config and not Path(c.model_config).expanduser().exists():
        raise UsageError(f"--model-config {c.model_config}: no such folder")
    if c.resolution % 8:
        raise UsageError(f"--resolution {c.resolution}: use a multiple of 8 (512 for SD 1.x)")
    if c.with_prior_preservation and not (c.class_prompt and c.class_dir):
        raise UsageError("--with-prior-preservation needs --class-prompt and --class-dir")


def dreambooth_accelerator(c: DreamBoothConfig, out: Path):
    from accelerate.utils import ProjectConfiguration

    return make_accelerator(c.mixed_precision, gradient_accumulation_steps=c.gradient_accumulation,
                            cpu=c.device == "cpu", project_config=ProjectConfiguration(project_dir=str(out)))


def class_examples(c: DreamBoothConfig, base, accelerator) -> list[Example]:
    """Prior preservation's class images (the main process generates the missing ones), else []."""
    if not c.with_prior_preservation:
        return []
    if accelerator.is_main_process:
        generate_class_images(base, c.class_prompt, Path(c.class_dir), c.num_class_images, c.resolution, c.seed,
                              steps=c.class_steps)
    accelerator.wait_for_everyone()
    return load_examples(Path(c.class_dir), c.class_prompt, c.resolution, "--class-dir")[:c.num_class_images]


def set_up_models(c: DreamBoothConfig, base, accelerator):
    """Freeze what does not train, add the LoRA adapters, prepare the trained models with their
    optimizer: (models, params, optimizer, lr_scheduler, weight_dtype). models[0] is the UNet,
    models[1] the text encoder when it trains."""
    from diffusers.optimization import get_scheduler

    device = accelerator.device
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    unet, text_encoder = base.unet, base.text_encoder
    base.vae.requires_grad_(False)
    base.vae.to(device, weight_dtype)
    unet.requires_grad_(not c.lora)
    text_encoder.requires_grad_(c.train_text_encoder and not c.lora)
    if c.lora:
        from peft import LoraConfig

        unet.to(device, weight_dtype)  # frozen base in half precision, adapters in fp32
        unet.add_adapter(LoraConfig(r=c.rank, lora_alpha=c.rank, init_lora_weights="gaussian",
                                    target_modules=UNET_LORA_TARGETS))
        if c.train_text_encoder:
            text_encoder.add_adapter(LoraConfig(r=c.rank, lora_alpha=c.rank, init_lora_weights="gaussian",
                                                target_modules=TEXT_LORA_TARGETS))
    if not c.train_text_encoder:
        text_encoder.to(device, weight_dtype)
    if c.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        if c.train_text_encoder:
            text_encoder.gradient_checkpointing_enable()
    models = [unet] + ([text_encoder] if c.train_text_encoder else [])
    if c.lora:
        from diffusers.training_utils import cast_training_params

        cast_training_params(models, dtype=torch.float32)
        lora_state_hooks(accelerator, unet, text_encoder)
    params = [p for m in models for p in m.parameters() if p.requires_grad]
    optimizer = _optimizer(params, c.learning_rate, c.use_8bit_adam)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer)  # constant, no warm-up: what DreamBooth uses
    *models, optimizer, lr_scheduler = accelerator.prepare(*models, optimizer, lr_scheduler)
    return models, params, optimizer, lr_scheduler, weight_dtype


def trained_modules(c: DreamBoothConfig, base, models: list, accelerator) -> tuple:
    """(unet, text_encoder) as plain modules, for sampling and saving: the trained ones unwrapped
    from accelerate (the same modules, updated in place as training goes on)."""
    text_encoder = accelerator.unwrap_model(models[1]) if c.train_text_encoder else base.text_encoder
    return accelerator.unwrap_model(models[0]), text_encoder


@dataclass
class TrainingData:
    """The examples, encoded once up front: VAE latent distributions (mean, std) and a prompt
    encoder (cached embeddings when the text encoder is frozen)."""

    instances: list[Example]
    classes: list[Example]
    instance_latents: tuple[torch.Tensor, torch.Tensor]
    class_latents: tuple[torch.Tensor, torch.Tensor] | None
    encode: Callable[[list[str]], torch.Tensor]

    def batch(self, micro_step: int, batch_size: int, rank: int, world: int, seed: int):
        """(latents, prompt embeddings) of one micro-batch: its instance examples, then (prior
        preservation) as many class examples."""
        idx = batch_indices(micro_step, batch_size, len(self.instances), rank, world, seed)
        latents, prompts = sample_latents(self.instance_latents, idx), [self.instances[i].prompt for i in idx]
        if self.classes:
            cidx = batch_indices(micro_step, batch_size, len(self.classes), rank, world, seed + 1)
            latents = torch.cat([latents, sample_latents(self.class_latents, cidx)])
            prompts += [self.classes[i].prompt for i in cidx]
        return latents, self.encode(prompts)


def encode_data(c: DreamBoothConfig, base, models: list, instances, classes, device, dtype) -> TrainingData:
    with torch.no_grad():
        instance_latents = encode_latents(base.vae, [e.image for e in instances], device, dtype)
        class_latents = encode_latents(base.vae, [e.image for e in classes], device, dtype)
    text_encoder = models[1] if c.train_text_encoder else base.text_encoder  # the prepared one trains
    encode = _prompt_encoder(base.tokenizer, text_encoder, c.train_text_encoder, device,
                             {e.prompt for e in instances + classes})
    return TrainingData(instances, classes, instance_latents, class_latents, encode)


def optimize(accelerator, loss: torch.Tensor, params: list, optimizer, lr_scheduler) -> None:
    """Backward; the optimizer steps for real only when accelerate's accumulation completes."""
    accelerator.backward(loss)
    if accelerator.sync_gradients:
        accelerator.clip_grad_norm_(params, 1.0)
    optimizer.step()
    lr_scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def finish(c: DreamBoothConfig, out: Path, accelerator, base, unet, text_encoder, dtype) -> Path:
    """The last validation samples and the result: the LoRA file, or a whole pipeline folder."""
    accelerator.wait_for_everyone()
    result = None
    if accelerator.is_main_process:
        if c.validation_prompt and not (c.validation_steps and c.steps % c.validation_steps == 0):
            validate(c, out, c.steps, base, unet, text_encoder, accelerator.device, dtype)
        result = (save_lora(out, unet, text_encoder if c.train_text_encoder else None) if c.lora
                  else save_pipeline(out, base, unet, text_encoder))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result or out


def _training_scheduler(scheduler):
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler.config)


def _optimizer(params, lr: float, use_8bit_adam: bool):
    if use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UsageError("--use-8bit-adam needs bitsandbytes: pip install bitsandbytes (CUDA only)") from None
        return bnb.optim.AdamW8bit(params, lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)


def encode_latents(vae, images: list[np.ndarray], device, dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The VAE's latent distribution (mean, std) of each image, scaled for the UNet; sampled
    afresh every step as the diffusers scripts do."""
    if not images:
        return None
    means, stds = [], []
    for im in images:
        x = torch.from_numpy(im).permute(2, 0, 1)[None].to(device, dtype) / 127.5 - 1.0
        dist = vae.encode(x).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
    s = vae.config.scaling_factor
    return torch.cat(means) * s, torch.cat(stds) * s


def sample_latents(latents: tuple[torch.Tensor, torch.Tensor], idx: list[int]) -> torch.Tensor:
    mean, std = latents[0][idx], latents[1][idx]
    return mean + std * torch.randn_like(mean)


def batch_indices(micro_step: int, batch_size: int, n: int, rank: int, world: int, seed: int) -> list[int]:
    """Which examples micro-batch `micro_step` of process `rank` takes: consecutive slices of the
    seeded stream of posekit.training, a pure function of the step, so a resumed run sees exactly
    the data the killed one would have seen, and processes never share a slice."""
    start = (micro_step * world + rank) * batch_size
    return list(shuffled(n, seed, start, start + batch_size))


def _prompt_encoder(tokenizer, text_encoder, trainable: bool, device, prompts: set[str]):
    """prompts -> encoder hidden states; cached per prompt when the text encoder is frozen."""
    def tokens(batch):
        return tokenizer(batch, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(device)

    if trainable:
        return lambda batch: text_encoder(tokens(batch))[0]
    with torch.no_grad():
        cache = {p: text_encoder(tokens([p]))[0] for p in sorted(prompts)}
    return lambda batch: torch.cat([cache[p] for p in batch])


def diffusion_loss(unet, scheduler, latents, hidden, prior_weight: float | None) -> torch.Tensor:
    """The denoising loss at random timesteps; with prior preservation (prior_weight not None)
    the batch is instance examples followed by as many class examples (dreambooth_loss)."""
    noise = torch.randn_like(latents)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device).long()
    noisy = scheduler.add_noise(latents, noise, t)
    target = scheduler.get_velocity(latents, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    pred = unet(noisy, t, hidden, return_dict=False)[0]  # under mixed precision accelerate autocasts
    return dreambooth_loss(pred, target, prior_weight)


def dreambooth_loss(pred: torch.Tensor, target: torch.Tensor, prior_weight: float | None = None) -> torch.Tensor:
    """Mean squared error of the prediction. With prior preservation (prior_weight not None) the
    first half of the batch is instance examples and the second half class examples; each half's
    error is averaged on its own and the class half's is added times prior_weight, as in
    diffusers' train_dreambooth.py."""
    pred, target = pred.float(), target.float()
    if prior_weight is None:
        return F.mse_loss(pred, target)
    pred, pred_prior = pred.chunk(2)
    target, target_prior = target.chunk(2)
    return F.mse_loss(pred, target) + prior_weight * F.mse_loss(pred_prior, target_prior)


def validate(c: DreamBoothConfig, out: Path, step: int, base, unet, text_encoder, device, dtype,
             count: int = 2) -> None:
    """Sample `count` images of the validation prompt with the weights as they are now."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=text_encoder, tokenizer=base.tokenizer, unet=unet,
                                   scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    autocast = torch.autocast(device.type, dtype) if dtype != torch.float32 else nullcontext()
    gens = [torch.Generator("cpu").manual_seed(c.seed + k) for k in range(count)]
    with torch.inference_mode(), autocast:
        images = pipe([c.validation_prompt] * count, height=c.resolution, width=c.resolution, num_inference_steps=25,
                      generator=gens, output_type="np").images
    for k, im in enumerate(images):
        save_image((np.clip(im, 0, 1) * 255).round().astype(np.uint8), out / "validation" / f"step-{step:06d}-{k}.png")


def save_lora(out: Path, unet, text_encoder=None) -> Path:
    """OUT/pytorch_lora_weights.safetensors, in the layout load_lora_weights reads."""
    tmp = out / ".lora.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.replace(write_lora_file(tmp, unet, text_encoder), out / LORA_FILE)
    shutil.rmtree(tmp, ignore_errors=True)
    info(f"wrote {out / LORA_FILE}")
    return out / LORA_FILE


def save_pipeline(out: Path, base, unet, text_encoder) -> Path:
    """A complete diffusers pipeline folder in OUT (float32), model_index.json moved in last."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=base.vae.to(torch.float32), text_encoder=text_encoder.to(torch.float32),
                                   tokenizer=base.tokenizer, unet=unet.to(torch.float32), scheduler=base.scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tmp = out / ".pipeline.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    (out / "model_index.json").unlink(missing_ok=True)
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == "model_index.json"):
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(item, target)
    tmp.rmdir()
    info(f"wrote a diffusers pipeline to {out} (use it as --model {out})")
    return out

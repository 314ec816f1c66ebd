"""Pose-transfer methods behind one small interface.

    method = load_method("warp", source_image, source_pose, **options)
    frames = method(target_poses)          # one RGB(A) uint8 array per target pose
    method.frame_pose(target_poses[i])     # that target pose in frame i's pixel coordinates

`source_image` is an (H, W, 3) RGB uint8 array and `source_pose` a Pose on its canvas; target
poses are given on the source image's canvas. Expensive set-up (segmenting the person, loading a
network, encoding the source) happens once in the constructor, so a whole clip costs one set-up.
Methods take the whole clip at once so that they can batch it and keep the person consistent.
"""

from __future__ import annotations

METHODS = ("warp", "gan", "diffusion")

# The method flags `posekit animate` and `posekit transfer` share, by method (option names of the
# Method constructors). `method_options` picks the ones a method takes from all flags given.
METHOD_FLAGS = {
    "warp": ("background", "seed"),
    "gan": ("checkpoint", "dataset", "device", "batch_size"),
    "diffusion": ("model", "model_config", "controlnet", "lora", "prompt", "negative_prompt", "strength",
                  "steps", "guidance", "controlnet_scale", "seed", "init", "device", "sheet", "columns"),
}


def method_options(method: str, flags: dict) -> dict:
    """The subset of CLI `flags` (name -> value) that `method`'s constructor takes."""
    return {k: flags[k] for k in METHOD_FLAGS.get(method, ()) if k in flags}


def load_method(name: str, source_image, source_pose, **options):
    if name == "warp":
        from posekit.methods.warp import WarpMethod as cls
    elif name == "gan":
        from posekit.methods.patn.transfer import PatnMethod as cls
    elif name == "diffusion":
        from posekit.methods.diffusion.transfer import DiffusionMethod as cls
    else:
        from posekit.errors import UsageError

        raise UsageError(f"--method {name!r}: choose one of {', '.join(METHODS)}")
    return cls(source_image, source_pose, **options)

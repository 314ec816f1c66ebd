"""Pose-transfer methods behind one small interface; each lives in `methods/<name>/method.py`.

    method = load_method("warp", source_image, source_pose)       # the method's default options
    cls = method_class("warp")                                     # WarpMethod, or with options:
    method = cls(source_image, source_pose, cls.Options(background="transparent"))
    frames = method(target_poses)          # one RGB(A) uint8 array per target pose
    method.frame_pose(target_poses[i])     # that target pose in frame i's pixel coordinates
    cls.working_size(width, height, options)  # the size the photo is scaled to before the method

`source_image` is an (H, W, 3) RGB uint8 array and `source_pose` a Pose on its canvas; target
poses are given on the source image's canvas. Expensive set-up (segmenting the person, loading a
network, encoding the source) happens once in the constructor, so a whole clip costs one set-up.
Methods take the whole clip at once so that they can batch it and keep the person consistent.
Each method's options are a small frozen dataclass (`cls.Options`) that the commands fill from
their flags, field by field (posekit.commands.method_flags).
"""

from __future__ import annotations

METHODS = ("warp", "gan", "diffusion", "animatediff", "wan")


def method_class(name: str):
    """The Method class behind `--method name` (its module, and torch or diffusers, load now)."""
    if name == "warp":
        from posekit.methods.warp.method import WarpMethod

        return WarpMethod
    if name == "gan":
        from posekit.methods.patn.method import PatnMethod

        return PatnMethod
    if name == "diffusion":
        from posekit.methods.diffusion.method import DiffusionMethod

        return DiffusionMethod
    if name == "animatediff":
        from posekit.methods.animatediff.method import AnimateDiffMethod

        return AnimateDiffMethod
    if name == "wan":
        from posekit.methods.wan.method import WanMethod

        return WanMethod
    from posekit.errors import UsageError

    raise UsageError(f"--method {name!r}: choose one of {', '.join(METHODS)}")


def load_method(name: str, source_image, source_pose, options=None):
    """`--method name` built for one source (options: its `Options` dataclass; None: the defaults)."""
    return method_class(name)(source_image, source_pose, options)


def long_side_at_most(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down, keeping the aspect, until the long side is at most max_side."""
    s = min(1.0, max_side / max(width, height))
    return (width, height) if s == 1.0 else (round(width * s), round(height * s))

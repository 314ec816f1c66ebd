"""`posekit transfer`: one source photo, one or more target poses -> one image per target."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posekit.commands import method_flags as flags
from posekit.checks import check_out, parse_size


@flags.with_method_flags
def transfer(
    source: Path = typer.Argument(..., metavar="PHOTO", help="Photo of the person to move."),
    pose: list[str] = typer.Option(..., "--pose", "-p", help="Target pose: OpenPose JSON, skeleton image, photo (its pose is detected), motion name or folder. Repeatable: the images of all of them are one run, numbered across them, so one that cannot be read or holds nobody stops it before anything is written."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE|DIR", help="Output image, .png, .jpg or .webp (one target; replaced if there), or a folder for 000.png, 001.png, ... (several targets; as with animate, a re-run replaces and prunes only the images posekit's last run wrote there, and a file posekit did not write stops it before anything is written)."),
    method: str = typer.Option("warp", "--method", "-m", help="warp (offline, no model) | gan | diffusion | animatediff | wan."),
    size: Optional[str] = typer.Option(None, "--size", metavar="WxH", help="Image size WxH: each image scaled to fit and padded. Default: the method's working size (warp and gan: the photo, up to 1024 px; the SD methods: about 512 px on the short side; wan: 480p)."),
    retarget: bool = typer.Option(False, "--retarget/--no-retarget", help="Fit each target pose to the subject's limb lengths, scale and position."),
    source_pose: Optional[Path] = flags.SOURCE_POSE,
    device: str = flags.DEVICE,
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same image)."),
    columns: Optional[int] = typer.Option(None, "--columns", "-c", min=1, metavar="N", help="[diffusion] With --sheet: images per row of the one canvas (default: square-ish)."),
    **method_flags,  # --background, --checkpoint, --model, ...: see method_flags.with_method_flags
):
    """Move the person in PHOTO into each target pose (one output image per target).

    All the --pose sources are one job (the method gets all the targets at once): a source that
    cannot be read or shows nobody stops the run with an error naming it, and nothing is written."""
    from posekit.console import info, quiet_libraries
    from posekit.pipeline import names_a_file

    check_out(out, file=names_a_file(out))  # else a folder of 000.png, 001.png, ...
    if source.is_dir():
        from posekit.errors import UsageError

        raise UsageError(f"{source}: is a folder; transfer moves one photo (animate takes a folder of photos)")
    image_size = parse_size(size)
    quiet_libraries()
    from posekit.pipeline import transfer as run

    given = dict(method_flags, seed=seed, device=device, columns=columns)
    options = flags.options_for(method, given)  # bad option values fail here, before any work
    if columns is not None and not method_flags["sheet"]:
        from posekit.console import warn

        warn("--columns has no effect here: it lays out the canvas of --sheet (--method diffusion)")
    summary = run(source, pose, out, method=method, options=options, retarget=retarget, source_pose=source_pose,
                  device=device, size=image_size)
    files = summary["files"]
    info(f"wrote {files[0] if len(files) == 1 else f'{len(files)} images to {out}'}")

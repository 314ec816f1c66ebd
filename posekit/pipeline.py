"""The one pipeline: a photo of a person + target poses -> frames, written out.

    summary = animate("me.jpg", "walk", "out/")                 # posekit animate: a clip -> a sheet
    summary = transfer("me.jpg", ["pose.json"], "out/me.png")   # posekit transfer: one image per pose

Both run the same stages (`prepare_source`, `prepare_targets`, then `generate_strips`):
1. the source: the photo scaled to the method's working size (`Method.working_size`) and the
   person's pose on it, read from --source-pose or detected (nobody found: an error before
   anything is written),
2. the targets: each pose source (a motion name, OpenPose JSON, skeleton images, a video or
   extract-pose JSON lines), resampled to --frames and laid on the photo's canvas,
3. retargeting: every target pose put on the subject's own limb lengths, scale and position
   (animate by default; transfer with --retarget),
4. the method (warp | gan | diffusion | animatediff | wan), built once from its typed options, gets the whole clip
   at once, so every frame shows the same person, with the same keywords in both commands
   (`clip_keywords`: whether the clip loops, a driving video's faces). `transfer`'s targets are
   one clip of stills: it never loops.
Then the outputs: `animate` writes frames/, poses/ (the targets in frame pixels: OpenPose JSON +
skeleton PNGs), sheet.png + sheet.json (Aseprite json-hash), animation.gif (+ webp/mp4) and
measures pose fidelity (posekit.evaluate); `transfer` writes one image per target. Neither
writes over an input, and `animate` replaces in its --out only what its last run wrote there
(MANIFEST): both are checked before any work.

A character: several clips (`poses` a list or "idle,walk,run,jump"), `mirror`, `pixel_art`. The
method is built once for the photo and run per clip; each clip becomes a sheet Strip, mirrored
twins are added, all are cut to one cell around the figure (posekit.sheet.layout), and the one
layout gives sheet.png, sheet.json, the `exports` (EXPORTS) and a preview per clip in
animations/. `animate_batch` runs `animate` for many photos (OUT/<stem>/ each, one detector),
split across processes under `accelerate launch`.

One person detector serves a whole run (the source photo, photo and video clips, pose fidelity);
it is built on first use, so a run with a --source-pose JSON and a motion never loads it. It
keeps the two largest people it finds (each use takes the largest), so a photo with a second
person gets a warning. A clip that moves a body part the photo does not show (a walk for a
portrait) gets one too: retargeting leaves that part out of every frame.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from posekit.checks import FPS, check_finite
from posekit.errors import NoPersonError, PosekitError, UsageError
from posekit.images import writing_lock

# what animate writes into its --out folder, and all it ever replaces or removes there
EXPORTS = {"array": "sheet_array.json", "godot": "sheet.tres", "atlas": "atlas.json"}  # --export: file
MANIFEST = ".posekit-outputs.json"  # what the last run wrote into its --out: all a re-run may replace or remove
ONCE = ("jump",)  # the built-in motions a game plays once (their tag does not loop)


def _silent(stage: str) -> None:
    pass


def is_transparent(options) -> bool:
    """Whether a method's options ask for a transparent background (`--background transparent`,
    written in any case, with spaces around: as the warp reads it)."""
    value = getattr(options, "background", None)
    return isinstance(value, str) and value.strip().lower() == "transparent"


def animate(photo: str | Path, poses: str | list[str], out: str | Path, method: str = "warp", options=None,
            frames: int | list[int] | None = None, fps: float = 12.0, columns: int | None = None,
            size: tuple[int, int] | None = None, retarget: bool = True, source_pose: str | Path | None = None,
            formats=("gif",), device: str = "auto", evaluate: bool = True, mirror: bool = False,
            trim: bool = False, exports=(), pixel_art: int | None = None, outline: bool = False,
            detector=None, models=None, status=_silent) -> dict:
    """Animate the person in `photo` along the clips `poses` (one source, a list, or a comma
    separated string) into the folder `out` (see the module docstring); returns the summary the
    CLI prints. `frames`: one count for every clip or one per clip (None: each motion's own).

    `options`: the method's options (`method_class(method).Options`; None: its defaults).
    `detector`: a person detector to use (and leave open); None: one is built when first needed.
    `models`: the method's networks, loaded once for a batch (`Method.load`); None: loaded here.
    `status(stage)` is called as each stage starts (the CLI shows it as a progress line).

    Before any work (no detector is built): a usage error when an input (the photo, `source_pose`,
    a pose file or folder) lies where the outputs go (`check_inputs_apart`), and a PosekitError
    when a file posekit did not write has an output's name in `out` (`check_not_foreign`: the
    names known before generation; `staged_outputs` checks every name again before moving any)."""
    from contextlib import nullcontext

    from posekit.pose.detect import load_detector

    sources = check_poses(clip_sources(poses))
    counts = frame_counts(frames, len(sources))
    formats, exports = animation_formats(formats), export_formats(exports)
    check_finite(fps, "--fps", *FPS)
    check_pixel_art(pixel_art, outline, options)
    character = len(sources) > 1 or mirror or pixel_art is not None
    # sprites (a character, or a transparent clip) are cut to one cell around the figure; a clip
    # with a background keeps the photo's framing
    sprites = character or is_transparent(options)
    names = tag_names(sources) if character else [clip_name(str(sources[0]))]
    # before any work: no input where an output goes, no file of the user's at an output's name
    check_inputs_apart([Path(out)], [photo, source_pose, *pose_files(sources)])
    tags = [f"{n}_{side}" for n in names for side in ("right", "left")] if mirror else names
    lengths = [n for n in clip_lengths(sources, counts) for _ in range(2 if mirror else 1)]
    check_not_foreign(Path(out), output_names(list(zip(tags, lengths)), formats, exports))
    timer = Timer()
    given = nullcontext(detector) if detector is not None else load_detector("blazepose", device=device, max_people=2, lazy=True)
    with given as detector:
        image, pose, canvas = prepare_source(photo, method, timer, detector, source_pose=source_pose,
                                             device=device, status=status, options=options)
        clips = [(name, prepare_targets([src], image, pose, canvas, timer, detector, frames=n, retarget=retarget,
                                        device=device, status=status), clip_loop(src))
                 for name, src, n in zip(names, sources, counts)]
        strips = generate_strips(method, options, image, pose, clips, timer, status, retargeted=retarget,
                                 models=models, sources=sources, detector=detector)
        if size is not None and not sprites:
            from posekit.sheet.layout import scaled

            strips = [scaled(s, size) for s in strips]
        fidelity = measure_fidelity(strips, detector, timer, status) if evaluate else None
    status("writing")
    with timer("writing"):
        if sprites:
            strips = character_strips(strips, size, mirror, pixel_art, outline)
            if character:
                warn_if_no_floor(photo, strips)
        files = write_strips(Path(out), strips, fps=fps, columns=columns, formats=formats, trim=trim,
                             exports=exports)
    fh, fw = strips[0].frames[0].shape[:2]
    return {"out": str(out), "method": method, "frames": sum(len(s.frames) for s in strips), "fps": fps,
            "size": [fw, fh], "clips": [{"name": s.name, "frames": len(s.frames), "loop": s.loop} for s in strips],
            "files": files, "pose_fidelity": fidelity, **timer.summary()}


def animate_batch(photos: list[Path], out: str | Path, device: str = "auto", status=_silent, report=_silent,
                  done=None, **options) -> list[dict]:
    """`animate` each photo into out/<photo stem>/ with one detector for all of them. A photo that
    fails (nobody in it, unreadable) is reported with `report(message)` and the others go on;
    `done(result)` hears of each photo as soon as it is finished (in a single process only: under
    accelerate launch the results are known together, at the end).
    Under `accelerate launch` the photos are split across the processes (each photo done by one
    of them) and every process returns the results of all. Returns one dict per photo, in input
    order: {"photo", "out", ...animate's summary} or {"photo", "error"}. Before anything loads: a
    usage error for a bad --poses entry, --pixel-art or --outline, or a photo or pose file where
    any photo's outputs go."""
    from posekit.methods import method_class
    from posekit.pose.detect import load_detector

    check_stems(photos)
    sources = check_poses(clip_sources(options.get("poses", ())))
    check_pixel_art(options.get("pixel_art"), options.get("outline", False), options.get("options"))
    check_inputs_apart([Path(out) / Path(p).stem for p in photos],
                       [*photos, options.get("source_pose"), *pose_files(sources)], flag=str(out))
    state = launched_state(device)
    rank = state.process_index if state is not None else 0
    # the method's networks, once for all the photos, on every process (one that does not load
    # stops them all alike)
    models = method_class(options.get("method", "warp")).load(options.get("options"))
    mine = photos
    if state is not None:
        with state.split_between_processes(list(photos)) as part:
            mine = list(part)
    results, usage = [], None
    with load_detector("blazepose", device=device, max_people=2, lazy=True) as detector, closing_models(models):
        for photo in mine:
            try:
                summary = animate(photo, out=Path(out) / Path(photo).stem, device=device, detector=detector,
                                  models=models,
                                  status=lambda stage, name=Path(photo).name: status(f"{name}: {stage}"), **options)
                results.append({"photo": str(photo), "process": rank, **summary})
            except UsageError as e:  # a flag, not the photo: the same for every photo
                usage = e
                break
            except PosekitError as e:
                message = getattr(e, "in_batch", None) or str(e)  # advice that fits a batch (no --source-pose)
                report(message)
                results.append({"photo": str(photo), "process": rank, "out": str(Path(out) / Path(photo).stem),
                                "error": message})
            if done is not None and state is None:
                done(results[-1])
    if state is not None:  # every process gathers, also one without photos or with a usage error
        from accelerate.utils import gather_object

        results, usages = gather_object(results), gather_object([str(usage)] if usage else [])
        usage = UsageError(usages[0]) if usages else None
    if usage is not None:
        raise usage
    return results


@contextmanager
def closing_models(models):
    """Close what `Method.load` opened (the warp's segmenter) when the batch ends."""
    try:
        yield models
    finally:
        if hasattr(models, "close"):
            models.close()


def check_stems(photos: list[Path]) -> None:
    """Each photo gets OUT/<stem>/: two photos with one stem would overwrite each other."""
    seen: dict[str, Path] = {}
    for photo in photos:
        stem = Path(photo).stem
        if stem in seen:
            raise UsageError(f"{seen[stem]} and {photo}: both would write into OUT/{stem}/; rename one")
        seen[stem] = Path(photo)


def launched_state(device: str = "auto"):
    """accelerate's PartialState when this process is one of several that `accelerate launch`
    started (it sets WORLD_SIZE), else None (nothing of accelerate is imported). Without a GPU
    (or with --device cpu) the processes talk over gloo on the CPU."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import PartialState

    return PartialState(cpu=device == "cpu" or not torch.cuda.is_available())


def measure_fidelity(strips: list, detector, timer: "Timer", status=_silent) -> float | None:
    """Mean pose fidelity of every frame the method made (posekit.evaluate)."""
    from posekit.evaluate import mean, pose_fidelity

    status("evaluating pose fidelity")
    with timer("evaluation"):
        return mean(pose_fidelity([f for s in strips for f in s.frames], [p for s in strips for p in s.poses],
                                  detector=detector))


def transfer(photo: str | Path, poses: list[str], out: str | Path, method: str = "warp", options=None,
             retarget: bool = False, source_pose: str | Path | None = None, device: str = "auto",
             size: tuple[int, int] | None = None, status=_silent) -> dict:
    """Move the person in `photo` into each pose the `poses` sources hold: one image per target,
    at the method's working size, or scaled to fit `size` (width, height) and padded,
    `out` itself when it names a file (.png, .jpg/.jpeg or .webp; one target only; it is
    replaced), else out/000.png, out/001.png, ... numbered across all the sources.
    Returns the summary: the files written, their size and the seconds per stage.

    The targets are one job (the method gets them all at once, the numbers run across the
    sources): a source that cannot be read or holds nobody stops the run and nothing is written.
    Before any work: a usage error for a --pose that is neither a motion nor a file or folder, an
    --out file of another format, a JPEG for a transparent background, several targets for one
    file, an input where an output goes; a PosekitError when a file posekit did not write has an
    output's name in the folder `out` (`check_not_foreign`). The folder is written as animate's
    (`staged_outputs`): a re-run replaces the last run's images and removes those it does not
    write again, and never touches another file."""
    from posekit.images import save_image
    from posekit.pose.detect import load_detector

    out = Path(out)
    one_file = names_a_file(out)
    if not poses:
        raise UsageError("--pose: name at least one motion or pose file")
    try:
        sources = check_poses([str(p) for p in poses])
    except UsageError as e:  # its words are animate's --poses
        raise UsageError(f"--pose {str(e).removeprefix('--poses ')}") from None
    lengths = clip_lengths(sources, [None] * len(sources))  # a motion's count, None for a file until read
    if one_file:
        suffix = out.suffix.lower()
        if suffix not in (".png", ".jpg", ".jpeg", ".webp"):
            raise UsageError(f"--out {out}: transfer writes .png, .jpg, .jpeg or .webp images; name the file so, "
                             "or pass a folder (a name without a suffix) for 000.png, 001.png, ...")
        if suffix in (".jpg", ".jpeg") and is_transparent(options):
            raise UsageError(f"--out {out}: JPEG has no transparency; use .png or .webp "
                             "(or leave out --background transparent)")
    inputs = [photo, source_pose, *pose_files(sources)]
    if one_file:  # the one image, or out/NNN.png
        check_inputs_apart([out.parent], [i for i in inputs if i is None or not Path(i).is_dir()],
                           lambda rel: rel == Path(out.name), flag=str(out))
    else:
        check_inputs_apart([out], inputs, lambda rel: len(rel.parts) == 1 and re.fullmatch(r"\d{3,}\.png", rel.name))
    if one_file and (len(sources) > 1 or (lengths[0] or 1) > 1):
        targets = f"{lengths[0]} target poses" if len(sources) == 1 else f"{len(sources)} --pose sources"
        raise UsageError(f"--out {out}: {targets} need an output folder, not a file name")
    if not one_file:  # as animate: no file of the user's is replaced: the images certain to be written
        # (those of the sources before the first whose length only reading it tells), the rest below
        known = sum(lengths[:lengths.index(None)] if None in lengths else lengths)
        check_not_foreign(out, [f"{i:03d}.png" for i in range(known)], "transfer")
    timer = Timer()
    with load_detector("blazepose", device=device, max_people=2, lazy=True) as detector:
        image, pose, canvas = prepare_source(photo, method, timer, detector, source_pose=source_pose,
                                             device=device, status=status, options=options)
        from posekit.pose.retarget import Flags

        try:
            targets = prepare_targets(sources, image, pose, canvas, timer, detector, retarget=retarget,
                                      device=device, status=status,
                                      flags=Flags(targets="--pose", skip="leave out --retarget"))
        except PosekitError as e:  # one --pose that cannot be read or holds nobody: said as such
            if isinstance(e, UsageError) or not any(str(e).startswith(str(s)) for s in sources):
                raise
            raise PosekitError(f"--pose {e}; nothing was written (transfer makes the images of all its --pose "
                               "sources in one run): fix or leave out this --pose") from None
        if len(targets) > 1 and one_file:
            raise UsageError(f"--out {out}: {len(targets)} target poses need an output folder, not a file name")
        if not one_file and None in lengths:  # now the count is known: before the method's work
            check_not_foreign(out, [f"{i:03d}.png" for i in range(len(targets))], "transfer")
        # one clip of stills (loop False: each target is an image of its own, never a cycle); a
        # driving video's faces when the targets are one video's
        (strip,) = generate_strips(method, options, image, pose, [("transfer", targets, False)], timer, status,
                                   retargeted=retarget, sources=sources if len(sources) == 1 else None,
                                   detector=detector)
        images = strip.frames
    if size is not None:
        images = [letterbox(i, *size) for i in images]
    names = [out.name] if one_file else [f"{i:03d}.png" for i in range(len(images))]
    status("writing")
    with timer("writing"):
        if one_file:
            save_image(images[0], out)
        else:
            with staged_outputs(out, "transfer") as stage:  # the last run's images replaced, its extra ones removed
                for frame, name in zip(images, names):
                    save_image(frame, stage / name)
    paths = [out] if one_file else [out / n for n in names]
    fh, fw = images[0].shape[:2]
    return {"out": str(out), "method": method, "files": [str(p) for p in paths], "size": [fw, fh],
            **timer.summary()}


def names_a_file(out: Path) -> bool:
    """Whether transfer's --out is one image (a name with a suffix that is not a folder); any
    other --out is a folder."""
    return bool(out.suffix) and not out.is_dir()


# -- the stages ------------------------------------------------------------------------------
SMALL_PERSON = 64  # px: a person shorter than this in the photo gives the methods too little to draw from


def warn_if_small(photo, pose) -> None:
    """One warning naming the photo when the person in it is under SMALL_PERSON px tall (eyes to
    ankles, or whatever keypoints are seen): every frame is drawn from those few pixels, so they
    come out as blurry mush at any --size."""
    box = pose.bbox() if pose is not None else None
    if box is not None and box[3] - box[1] < SMALL_PERSON:
        from posekit.console import warn

        warn(f"{photo}: the person is only about {box[3] - box[1]:.0f} px tall (under {SMALL_PERSON}): the frames "
             "will be blurry; use a larger photo (a few hundred px tall gives clean frames)")


def prepare_source(photo: str | Path, method: str, timer: "Timer", detector, *, source_pose=None,
                   device: str = "auto", status=_silent, options=None):
    """Stage 1: (the photo at the method's working size for these `options`, the person's pose on
    it, the photo's own size, which pose files that state no canvas are in). A cut-out (a PNG or
    WebP whose alpha leaves the background transparent) stays RGBA: its alpha is the person's
    exact mask, which the warp takes instead of segmenting (`built_method` gives the other
    methods the photo on white, as the detector sees it)."""
    from posekit.images import is_cut_out, load_image, to_rgb
    from posekit.methods import method_class
    from posekit.pose.sources import source_pose_of

    working_size = method_class(method).working_size  # an unknown --method fails before any work
    status("reading the source pose" if source_pose is not None else "detecting the source pose")
    with timer("source"):  # the photo and the pose of the person in it
        full = load_image(photo, keep_alpha=True)
        full = full if is_cut_out(full) else to_rgb(full)
        try:
            pose = source_pose_of(full, Path(photo), source_pose, device=device, detector=detector)
        except NoPersonError:
            if min(full.shape[:2]) >= SMALL_PERSON:
                raise
            raise NoPersonError(f"{photo}: the photo is only {full.shape[1]}x{full.shape[0]} px, too small to find "
                                f"a person in or animate; use a larger photo (the person at least {SMALL_PERSON} "
                                "px tall, a few hundred for clean frames)") from None
        warn_if_small(photo, pose)
        image = working_image(full, working_size(full.shape[1], full.shape[0], options))
        h, w = image.shape[:2]
        pose = pose.resized(w, h) if image is not full else pose
    return image, pose, (full.shape[1], full.shape[0])


def prepare_targets(sources: list[str], image: np.ndarray, pose, canvas: tuple[int, int], timer: "Timer",
                    detector, *, frames: int | None = None, retarget: bool = True, device: str = "auto",
                    status=_silent, flags=None) -> list:
    """Stages 2-3: the poses of `sources` on the image's canvas, retargeted onto `pose` if asked
    (`flags`: what a retargeting error names, posekit.pose.retarget.Flags; animate's by default)."""
    from posekit.pose.sources import load_poses

    h, w = image.shape[:2]
    status("loading the target poses")
    with timer("targets"):
        clip = [t.fitted(w, h) for source in sources
                for t in load_poses(source, frames=frames, device=device, canvas=canvas, detector=detector)]
    if not clip:
        raise PosekitError(f"{', '.join(map(str, sources))}: no poses found")
    if retarget:
        status("retargeting")
    with timer("retargeting"):
        if retarget:
            from posekit.pose.retarget import Flags, retarget as retarget_clip

            clip, moving = retarget_clip(clip, pose, flags=flags or Flags()), clip
            warn_of_parts_left_out(", ".join(map(str, sources)), moving, clip)
    return clip


def warn_if_no_floor(photo, strips: list) -> None:
    """A warning when a character's sheet gets no pivots: no frame shows the feet (a photo cut
    above them), so nothing says where the sprite stands (sheet.json and the exports leave the
    pivot out; engines then place the cell by its own origin)."""
    from posekit.sheet.layout import ground_line

    if ground_line(strips) is None:
        from posekit.console import warn

        warn(f"{photo}: no pivots in sheet.json: the photo does not show the feet, so the sprites have no "
             "floor line (place them by the cell; a photo of the whole body gets pivots)")


def warn_of_parts_left_out(name: str, clip: list, retargeted: list) -> None:
    """A warning when the clip moves legs or arms that retargeting had to leave out (the photo
    does not show them): a walk for a head-and-shoulders photo walks without legs."""
    from posekit.pose.retarget import moving_parts_left_out

    parts = moving_parts_left_out(clip, retargeted)
    if parts:
        from posekit.console import warn

        warn(f"{name} moves the {' and '.join(parts)}, which the photo does not show: they are left out of "
             "every frame (a photo of the whole body animates fully)")


def built_method(method: str, options, image: np.ndarray, pose, models=None):
    """`--method method` for this photo; `models`: what `Method.load(options)` loaded for a batch."""
    from posekit.methods import method_class

    cls = method_class(method)
    if options is not None and not isinstance(options, cls.Options):
        raise TypeError(f"--method {method} takes {cls.Options.__name__}, not {type(options).__name__}")
    if image.shape[2] == 4 and method != "warp":  # a cut-out: only the warp takes its alpha as the mask
        from posekit.images import to_rgb

        image = to_rgb(image)
    return cls(image, pose, options, models)


def generate_strips(method: str, options, image: np.ndarray, pose, clips: list, timer: "Timer", status=_silent,
                    retargeted: bool = True, models=None, sources: list | None = None, detector=None):
    """Stage 4 (animate's clips, transfer's one clip): the method built once (the source segmented
    or encoded once), its camera fixed for all the clips (`fit_camera`: the warp's, or the init
    warp of diffusion and animatediff), then run on each clip (name, targets, loop) in turn: a
    sheet Strip per clip, standing on the photo's floor when the clips were retargeted onto it
    (taken through that one camera). `loop`: True for a cycle, False for a clip that plays once
    (a jump; transfer's stills), None to let the poses decide (a file's clip); the Strip loops
    unless it is False. `sources`: where each clip's poses came from (a driving video gives wan
    its faces, found by `detector`)."""
    from posekit.sheet import Strip

    with timer("method"):
        m = built_method(method, options, image, pose, models)
        if hasattr(m, "fit_camera"):  # one camera for every clip of the sheet (one size, one floor)
            m.fit_camera([t for _, targets, _ in clips for t in targets])
    # the photo's floor, through that camera (frame_pose gives it from now on)
    ankles = [a[1] for a in (m.frame_pose(pose)[k] for k in ("r_ankle", "l_ankle")) if a is not None]
    ground = float(max(ankles)) if ankles and retargeted else None
    strips = []
    for (name, targets, loop), source in zip(clips, sources or [None] * len(clips)):
        status(f"{method}: {name}, {len(targets)} frames" if len(clips) > 1 else f"{method}: {len(targets)} frames")
        with timer("method"):
            frames = m(targets, **clip_keywords(m, targets, loop, source, detector))
            strips.append(Strip(name, frames, [m.frame_pose(t) for t in targets], loop is not False, ground))
    return strips


def clip_keywords(method, targets: list, loop: bool | None, source, detector) -> dict:
    """What a method may take besides the targets, by the names its __call__ declares:
    `loop` as given (animatediff, wan close cyclic clips themselves: the last frame flows into
    the first; `clip_loop`) and `faces` (wan: the driving video's face crops, when the poses
    come from a video)."""
    import inspect

    from posekit.images import is_video

    takes = inspect.signature(method.__call__).parameters
    keywords = {"loop": loop} if "loop" in takes else {}
    if "faces" in takes and source is not None and detector is not None and is_video(str(source)):
        keywords["faces"] = method.driving_faces(source, len(targets), detector)
    return keywords


# -- pieces ------------------------------------------------------------------------------------
class Timer:
    """Seconds spent per stage (for the summary and the benchmark)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t

    def summary(self) -> dict:
        return {"seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "seconds_total": round(sum(self.seconds.values()), 3)}


def animation_formats(formats) -> tuple[str, ...]:
    """--format values (repeatable, each comma separated), normalised ('.GIF' -> 'gif') and
    checked, each once."""
    from posekit.sheet import ANIMATION_FORMATS

    given = [formats] if isinstance(formats, str) else formats
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for x in given for f in str(x).split(",")
                                  if f.strip()))
    for f in formats:
        if f not in ANIMATION_FORMATS:
            raise UsageError(f"--format {f!r}: choose from {', '.join(ANIMATION_FORMATS)}")
    return formats


def clip_sources(poses: str | list[str]) -> list[str]:
    """--poses values (repeatable, each comma separated) -> one pose source per clip."""
    given = [poses] if isinstance(poses, (str, Path)) else list(poses)
    sources = [part.strip() for p in given for part in str(p).split(",") if part.strip()]
    if not sources:
        raise UsageError("--poses: name at least one motion or pose file")
    return sources


def check_poses(sources: list[str]) -> list[str]:
    """Each --poses entry must be a built-in motion (with a view that exists: "walk:side") or an
    existing file or folder: a usage error naming it otherwise, before any pose is detected."""
    import difflib

    from posekit.pose.motions import MOTIONS, yaw_of
    from posekit.pose.sources import not_a_pose_file

    for source in sources:
        name, colon, view = str(source).partition(":")
        if name in MOTIONS:  # as load_poses decides: a motion's name before a file of that name
            try:
                yaw_of(view if colon else None, name)
            except UsageError as e:
                raise UsageError(f"--poses {source!r}: view {str(e).partition(' ')[2]}") from None
        elif not Path(source).exists():
            close = difflib.get_close_matches(name, MOTIONS, n=1)
            raise UsageError(f"--poses {source!r}: not a built-in motion nor an existing file or folder; "
                             + (f"did you mean {close[0]!r}? " if close else "") + f"motions: {', '.join(MOTIONS)}")
        elif problem := not_a_pose_file(source):  # a pipe, a device, a folder with nothing to read
            raise UsageError(f"--poses {problem}")
    return sources


def pose_files(sources: list[str]) -> list[str]:
    """The --poses entries that are files or folders (not motion names)."""
    return [s for s in sources if not is_motion(s)]


def clip_lengths(sources: list[str], counts: list[int | None]) -> list[int | None]:
    """Each clip's frame count where it is known before loading: --frames, or a motion's own."""
    from posekit.pose.motions import default_frames

    return [n if n is not None else default_frames(str(s).partition(":")[0]) if is_motion(s) else None
            for s, n in zip(sources, counts)]


def frame_counts(frames: int | list[int] | None, clips: int) -> list[int | None]:
    """--frames: nothing (each motion's own count), one count for every clip, or one per clip."""
    given = [] if frames is None else [frames] if isinstance(frames, int) else list(frames)
    if len(given) > 1 and len(given) != clips:
        raise UsageError(f"--frames: {len(given)} counts for {clips} clips; give one, or one per clip")
    for n in given:
        if n < 1:
            raise UsageError(f"--frames {n}: need at least 1 frame")
    return given * clips if len(given) == 1 else given or [None] * clips


def export_formats(exports) -> tuple[str, ...]:
    """--export values (repeatable, comma separated), checked, each once."""
    exports = tuple(dict.fromkeys(e.strip().lower() for x in exports for e in str(x).split(",") if e.strip()))
    for e in exports:
        if e not in EXPORTS:
            raise UsageError(f"--export {e!r}: choose from {', '.join(EXPORTS)}")
    return exports


def check_pixel_art(colours: int | None, outline: bool, options=None) -> None:
    """--pixel-art's palette size; --outline only for a transparent pixel-art sprite (`options`
    with `--background transparent`): with a background there is no edge to draw around."""
    if colours is not None and not 2 <= colours <= 256:
        raise UsageError(f"--pixel-art {colours}: the palette takes 2 to 256 colours")
    if outline and (colours is None or not is_transparent(options)):
        missing = [f for f, absent in (("--pixel-art N", colours is None),
                                       ("--background transparent", not is_transparent(options))) if absent]
        raise UsageError(f"--outline draws around a transparent pixel-art sprite; add {' and '.join(missing)} "
                         "(--method warp)")


def tag_names(sources: list[str]) -> list[str]:
    """A distinct, file-safe tag per clip: the motion name or the file's stem ('walk:side' ->
    'walk_side'; a second 'walk' -> 'walk_2')."""
    names = []
    for source in sources:
        base = re.sub(r"[^\w-]+", "_", clip_name(source)).strip("_") or "clip"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def is_motion(source) -> bool:
    """A built-in motion's name ("walk", "walk:side"), which load_poses takes before any file of
    that name (None counts: a bare clip)."""
    from posekit.pose.motions import MOTIONS

    return source is None or str(source).partition(":")[0] in MOTIONS  # as load_poses decides


def is_looping(source: str) -> bool:
    return str(source).partition(":")[0] not in ONCE


def clip_loop(source: str) -> bool | None:
    """Whether animate's clip of `source` is a cycle, as the method is told (`clip_keywords`): a
    built-in motion's own (all but ONCE), None for poses from files (only the poses can tell)."""
    return is_looping(source) if is_motion(source) else None


def character_strips(strips: list, size: tuple[int, int] | None, mirror: bool, pixel_art: int | None,
                     outline: bool) -> list:
    """A character's animations as the sheet shows them: all cut to one cell around the figure
    (the feet on one line; transparent frames keep a margin of CELL_MARGIN pixels of the final
    cell, one more for a pixel-art outline), scaled to `size` or pixel art, transparent frames
    moved down onto the contact line their pivots name (`grounded`: no hovering, no bob), then with their
    left-facing twins (`mirror`): the finished cells flipped, so the twin is framed as its clip
    and is its exact mirror image wherever the subject stood in the photo (pivots mirrored too:
    the poses are flipped)."""
    from posekit.sheet.layout import CELL_MARGIN, cropped, grounded, mirrored, scaled
    from posekit.sheet.pixelart import DEFAULT_HEIGHT, pixelate

    cell = size if size is not None else (None, DEFAULT_HEIGHT) if pixel_art is not None else None
    strips = cropped(strips, cell, CELL_MARGIN + (1 if outline else 0))
    if pixel_art is not None:
        strips = pixelate(strips, pixel_art, size, outline)
    elif size is not None:
        strips = [scaled(s, size) for s in strips]
    strips = grounded(strips)  # the finished cells' feet on the one line the pivots name (transparent frames)
    return [twin for s in strips for twin in mirrored(s)] if mirror else strips


def clip_name(source: str) -> str:
    """The name a clip gets in sheet.json's frameTags: the motion name or the file's stem."""
    p = Path(source.rstrip("/"))
    return (p.stem or "animation") if (p.exists() or p.suffix) else source


def working_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo resized to the method's working size (width, height); itself if it has that size."""
    import cv2

    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    smaller = size[0] * size[1] < image.shape[0] * image.shape[1]  # diffusion scales small photos up to 512
    return resized(image, tuple(size), cv2.INTER_AREA if smaller else cv2.INTER_CUBIC)


def letterbox(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale a frame uniformly to fit width x height and pad the rest (transparent for RGBA,
    the frame's edge colours otherwise), the same way Pose.fitted moves a pose."""
    import cv2

    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    rgba = frame.ndim == 3 and frame.shape[2] == 4
    small = resized(frame, (nw, nh), cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    x0, y0 = round((width - w * s) / 2), round((height - h * s) / 2)
    x0, y0 = min(max(x0, 0), width - nw), min(max(y0, 0), height - nh)
    return cv2.copyMakeBorder(small, y0, height - nh - y0, x0, width - nw - x0,
                              cv2.BORDER_CONSTANT if rgba else cv2.BORDER_REPLICATE, value=(0, 0, 0, 0))


def resized(image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """An RGB(A) uint8 image at `size` (w, h). RGBA is resampled with its colour premultiplied by
    its alpha, then made straight again: resampled as it is, the colour of transparent pixels
    (black, or the old background) bleeds into the sprite's soft edge as a dark or coloured rim."""
    import cv2

    if not (image.ndim == 3 and image.shape[2] == 4):
        return cv2.resize(image, size, interpolation=interpolation)
    alpha = image[:, :, 3:4].astype(np.float32) / 255
    pre = np.concatenate([image[:, :, :3] * alpha, alpha * 255], axis=2)
    out = np.clip(cv2.resize(pre, size, interpolation=interpolation), 0, 255)  # cubic overshoots
    a = out[:, :, 3:4] / 255
    rgb = np.where(a > 0, np.clip(out[:, :, :3] / np.maximum(a, 1e-6), 0, 255), 0)
    return np.concatenate([rgb, out[:, :, 3:4]], axis=2).round().astype(np.uint8)


# -- animate's outputs ---------------------------------------------------------------------------
MAX_TEXTURE = 4096  # the largest texture side many GPUs take (WebGL and mobile); a bigger sheet gets a warning


def write_strips(out: Path, strips: list, fps: float, columns: int | None, formats=("gif",), trim: bool = False,
                 exports=()) -> dict:
    """frames/ and poses/ (frame_NNN for one animation, <tag>_NNN for several), sheet.png and
    sheet.json (Aseprite, one frameTag per animation), the `exports` (EXPORTS) and the previews
    (animation.gif for one animation, animations/<tag>.gif for several); returns their paths.

    All of it is written into a hidden folder inside `out` and moved into place at the end
    (`staged_outputs`), so a failure or Ctrl-C leaves the previous result (or nothing)."""
    from posekit import sheet
    from posekit.images import save_image, write_json, write_text
    from posekit.pose.formats import write_pose_files
    from posekit.sheet.atlas import atlas_data
    from posekit.sheet.godot import sprite_frames

    one = len(strips) == 1
    plan = sheet.layout(strips, columns, trim)
    if max(plan.size) > MAX_TEXTURE:
        from posekit.console import warn

        ch, cw = strips[0].frames[0].shape[:2]
        warn(f"{out / 'sheet.png'} is {plan.size[0]}x{plan.size[1]} px, over the {MAX_TEXTURE} px many GPUs (WebGL, "
             f"phones) take as one texture: pass a smaller --size (each cell is {cw}x{ch}) or --columns N")
    with staged_outputs(out) as stage:
        for s in strips:
            for i, (frame, pose) in enumerate(zip(s.frames, s.poses)):
                stem = frame_stem(s.name, i, len(s.frames), one)
                save_image(frame, stage / "frames" / f"{stem}.png")
                write_pose_files([pose] if len(pose) else [], stage / "poses", stem, pose.size)
        save_image(sheet.render(strips, plan), stage / "sheet.png")
        write_json(sheet.aseprite_data(plan, fps), stage / "sheet.json")
        writers = {"array": lambda: sheet.aseprite_data(plan, fps, array=True), "atlas": lambda: atlas_data(plan),
                   "godot": lambda: sprite_frames(plan, fps)}
        for e in exports:
            data = writers[e]()
            (write_text if isinstance(data, str) else write_json)(data, stage / EXPORTS[e])
        for f in formats:
            for s in strips:
                sheet.write_animation(s.frames, stage / preview_name(s.name, f, one), fps=fps, loop=s.loop)
    return {"frames": str(out / "frames"), "poses": str(out / "poses"), "sheet": str(out / "sheet.png"),
            "sheet_json": str(out / "sheet.json"), **{e: str(out / EXPORTS[e]) for e in exports},
            **{f: str(out / preview_name(strips[0].name, f, True)) for f in formats if one},
            **({"animations": str(out / "animations")} if not one else {})}


def preview_name(tag: str, fmt: str, one: bool) -> str:
    return f"animation.{fmt}" if one else f"animations/{tag}.{fmt}"


def frame_stem(tag: str, i: int, frames: int, one: bool) -> str:
    """Frame i's name in frames/ and poses/: frame_NNN for one animation, <tag>_NNN for several."""
    return f"{'frame' if one else tag}_{i:0{max(3, len(str(frames - 1)))}d}"


def output_names(clips: list[tuple[str, int | None]], formats=("gif",), exports=()) -> list[str]:
    """The files `write_strips` writes for the animations (tag, frame count) into its `out`, as
    paths relative to it; the frames and poses of a clip whose count is not known yet (None: a
    pose file before it is read) are left out."""
    from posekit.pose.formats import keypoints_json_name, skeleton_png_name

    one = len(clips) == 1
    names = ["sheet.png", "sheet.json", *(EXPORTS[e] for e in exports)]
    names += [preview_name(tag, f, one) for f in formats for tag, _ in clips]
    for tag, n in clips:
        for stem in (frame_stem(tag, i, n, one) for i in range(n or 0)):
            names += [f"frames/{stem}.png", f"poses/{keypoints_json_name(stem)}", f"poses/{skeleton_png_name(stem)}"]
    return names


def animate_output(rel: Path) -> bool:
    """Whether animate writes or removes, in any run, the place `rel` (relative to its --out):
    sheet.png, sheet.json, the manifest, the exports and previews, and all under frames/,
    poses/ and animations/."""
    from posekit.sheet import ANIMATION_FORMATS

    files = {"sheet.png", "sheet.json", MANIFEST, *EXPORTS.values(), *(f"animation.{f}" for f in ANIMATION_FORMATS)}
    return str(rel) in files or rel.parts[0] in ("frames", "poses", "animations")


def check_inputs_apart(outs: list[Path], inputs: list, is_output=animate_output, flag: str | None = None) -> None:
    """A usage error when an input file (a photo, a source pose, a pose file) lies where a
    command writes into one of the `outs` (`is_output(its path relative to the out)`; animate's
    places by default), or an input folder (of poses) is an `out` itself or one of those places
    (the outputs would be written among the poses it holds). Paths are compared as given
    (absolute) and with links followed. Cheap: run it before any work. `flag`: the --out the
    user gave, when the `outs` are folders made from it (the file's folder, one per photo), so
    that the error names what was typed ("--out fig.png", not "--out .")."""
    import os

    def forms(path: Path) -> set[Path]:  # as given (absolute) and with links followed
        return {Path(os.path.abspath(path)), path.resolve()}

    given = [(g, forms(Path(g)), Path(g).is_dir()) for g in inputs if g is not None and Path(g).exists()]
    for out in outs:
        shown = out if flag is None else flag
        for root in forms(Path(out)):
            for name, paths, is_dir in given:
                for path in paths:
                    if is_dir and path == root:
                        raise UsageError(f"--out {shown}: would write into the input folder {name}; choose another --out")
                    if root in path.parents and is_output(path.relative_to(root)):
                        raise UsageError(f"--out {shown}: would write over the input {name}; choose another --out")


def manifest_files(out: Path) -> list[str] | None:
    """The files (relative to `out`) that posekit's last run wrote into `out`; None without a
    readable MANIFEST."""
    manifest = _manifest(out)
    files = manifest.get("files") if manifest is not None else None
    return [str(f) for f in files] if isinstance(files, list) else None


def manifest_command(out: Path) -> str | None:
    """The command whose run wrote `out` (its MANIFEST's "command": animate, transfer, poses
    show; a manifest without one is animate's, the only writer before), None without a manifest."""
    manifest = _manifest(out)
    return None if manifest is None else str(manifest.get("command", "animate"))


def _manifest(out: Path) -> dict | None:
    import json

    try:
        manifest = json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_not_foreign(out: Path, names: list[str], command: str = "animate") -> None:
    """Refuse (one line naming the file and what to do) to write the files `names` (relative to
    `out`) when one of them would replace a file that posekit's last run did not write (its
    MANIFEST does not list it), or would need a folder where a file is or the reverse. A folder
    with outputs but no manifest (deleted, or written by a posekit from before manifests) holds
    nothing known to be posekit's: its files are refused alike, and the user moves them away.
    A folder another `command` wrote last is refused whole: this run would remove its outputs
    (`posekit transfer` into an animate folder would take its sheet)."""
    if out.exists() and not out.is_dir():
        raise PosekitError(f"--out {out}: is a file, not a folder; move it or choose another --out")
    other = manifest_command(out)
    if other is not None and other != command:
        raise PosekitError(f"--out {out}: holds the outputs of posekit {other}, which posekit {command} would "
                           "remove; choose another --out (or delete them)")
    listed = manifest_files(out)
    ours = {Path(f) for f in listed or ()}
    older = listed is None and (out / "sheet.json").is_file() and (out / "frames").is_dir()
    for name in names:
        target = out / name
        if blocker := _in_the_way(out, Path(name)):
            raise PosekitError(f"--out {out}: {blocker} is in the way of an output; move it or choose another --out")
        if (target.is_file() or target.is_symlink()) and Path(name) not in ours:
            if older:
                raise PosekitError(f"--out {out}: holds posekit outputs but no {MANIFEST} says which (written by "
                                   "an older posekit, or the list was deleted); delete them or choose another --out")
            raise PosekitError(f"--out {out}: {target} exists and posekit did not write it; not replacing it "
                               "(move it or choose another --out)")


@contextmanager
def staged_outputs(out: Path, command: str = "animate"):
    """Yield an empty hidden folder inside `out` to write a run's outputs into. When the block
    ends well they replace the previous run's: each file is moved onto its name (with Ctrl-C held
    back meanwhile), and the files the previous run wrote (its MANIFEST) that this one did not
    write again (a longer run's frames, an animation.webp not asked for this time) are removed;
    other files in `out` are never touched: one at an output's name stops the run before any
    file moves (`check_not_foreign`). When the block fails, `out` is as it was (and not
    left behind empty if this made it). Runs writing into one `out` at the same time take turns
    (`writing_lock`): each one's files and manifest are whole, the last to finish wins. The
    manifest names the `command`, so that another command's run refuses the folder."""
    import shutil
    import tempfile

    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with writing_lock(out):
        out.mkdir(parents=True, exist_ok=True)  # a run that made it and failed meanwhile removed it
        for stale in out.glob(".posekit-*/"):  # left by a run that was killed while writing
            shutil.rmtree(stale, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=".posekit-", dir=out))
        try:
            yield stage
            _move_outputs(stage, out, command)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            if made and not any(out.iterdir()):
                out.rmdir()


def _move_outputs(stage: Path, out: Path, command: str) -> None:
    """Move the staged files into `out`, after checking them all (`check_not_foreign`: nothing of
    the user's is replaced, no folder in the way stops the moves half-way). The manifest lists
    the last run's files and this one's while they move in (a run killed meanwhile leaves none
    of its files unlisted), then this run's only, once the last run's stale ones are removed."""
    import os
    import signal

    from posekit.images import write_json

    new = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file())
    check_not_foreign(out, [str(rel) for rel in new], command)
    previous = manifest_files(out) or []
    can_hold = _main_thread() and hasattr(signal, "pthread_sigmask")  # not on Windows
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if can_hold else None
    try:
        write_json({"command": command, "files": sorted({*previous, *(str(rel) for rel in new)})}, out / MANIFEST)
        for rel in new:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
        root = out.resolve()
        for name in set(previous) - {str(rel) for rel in new}:
            old = out / name
            inside = old.parent.resolve() == root or root in old.parent.resolve().parents  # never outside --out
            if inside and (old.is_file() or old.is_symlink()):
                old.unlink()
                if old.parent != out and not any(old.parent.iterdir()):
                    old.parent.rmdir()
        write_json({"command": command, "files": [str(rel) for rel in new]}, out / MANIFEST)
    finally:
        if held is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _in_the_way(out: Path, rel: Path) -> Path | None:
    """A folder where the file out/rel goes, or a file where one of its folders goes."""
    target = out / rel
    if target.is_dir():
        return target
    for parent in target.parents:
        if parent == out:
            return None
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

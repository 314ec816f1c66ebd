"""Reading inputs and writing outputs safely.

- `load_image(path)` -> RGB uint8 array (EXIF orientation applied, alpha composited on white,
  grayscale expanded); anything unreadable raises a one-line PosekitError naming the file.
- `iter_inputs(args)` expands CLI inputs (files, folders recursively, videos frame by frame,
  "-" for paths on stdin, one a line or NUL-separated) into `Item`s, each loaded lazily so one
  bad file fails alone.
  An animated GIF, WebP or PNG (more than one frame) is a video (`is_video`); one frame, an image.
- `save_image`, `write_json`, `write_text`, `atomic_path`: atomic writes (temp file + rename), so
  a killed run never leaves a half-written file under the final name.
- `recording_outputs(folder)`: atomic writes into `folder` are listed, content hash and name, in
  its hidden `.posekit-written` before they take their final name, so that `recorded_by_posekit`
  knows posekit's own files again, even those of a run killed halfway.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
import warnings
from contextvars import ContextVar
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from posekit.errors import PosekitError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
ANIMATED_SUFFIXES = {".gif", ".webp", ".png"}  # images that may hold several frames: then a video


# -- reading -------------------------------------------------------------------------------
def load_image(path: str | os.PathLike, keep_alpha: bool = False) -> np.ndarray:
    """Read an image file as an (H, W, 3) RGB uint8 array ((H, W, 4) RGBA with keep_alpha)."""
    from PIL import Image, ImageOps

    path = _nonempty_file(path, "an image")
    with _pillow_errors(path, "image"), Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        im.load()
    if im.mode.startswith("I"):  # 16-bit (or 32-bit integer) grayscale -> 8 bits
        a = np.asarray(im, np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(1.0, a.max())
        im = Image.fromarray(np.clip(a / top * 255, 0, 255).round().astype(np.uint8))
    elif im.mode.startswith("F"):  # floating-point grayscale (a 32-bit TIFF) -> 8 bits
        im = Image.fromarray(float_to_8bit(np.asarray(im, np.float64)))
    elif im.mode not in ("RGB", "RGBA", "L"):  # palette, CMYK, YCbCr, LA, ...
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    return to_rgb(np.asarray(im), keep_alpha)


def float_to_8bit(a: np.ndarray) -> np.ndarray:
    """Floating-point pixel values -> uint8, by the range they are in: 0..1 (the usual for float
    images) scaled by 255, 0..255 kept, 0..65535 scaled as 16 bits, anything larger by its
    maximum; below 0 and not-a-number are black."""
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    top = a.max(initial=0.0)
    scale = 255.0 if top <= 1.0 else 1.0 if top <= 255.0 else 255.0 / 65535.0 if top <= 65535.0 else 255.0 / top
    return np.clip(a * scale, 0, 255).round().astype(np.uint8)


CONVEX = 0.95  # an opaque part that fills this share of its convex hull is a photo's shape, not a person's


def is_cut_out(image: np.ndarray) -> bool:
    """Whether an RGBA image looks like a cut-out: its alpha makes part of it transparent (at
    least 1% of the pixels under half) and part of it solid, and the solid part has a figure's
    outline, not a photo's: a photo padded with transparent sides or given a transparent border,
    one with rounded or rotated corners, or a palette image whose transparent entry is also a
    colour of the picture (specks of sky) has a solid part that (nearly) fills its convex hull
    (`CONVEX`); a person's limbs, neck and the gap between the legs leave a good share of it
    empty. A photo saved with an all-opaque alpha is no cut-out either. (The warp asks further
    that the alpha hug the person's skeleton: `segment.hugs_the_skeleton`.)"""
    import cv2

    if image.ndim != 3 or image.shape[2] != 4:
        return False
    alpha = image[:, :, 3]
    s = min(1.0, 512 / max(alpha.shape))
    if s < 1.0:  # the outline's shape, not its pixels: a small copy says it as well
        alpha = cv2.resize(alpha, (max(round(alpha.shape[1] * s), 1), max(round(alpha.shape[0] * s), 1)),
                           interpolation=cv2.INTER_AREA)
    solid = (alpha >= 128).astype(np.uint8)
    if not 0.01 <= 1 - float(solid.mean()) <= 0.99:
        return False
    hull = np.zeros_like(solid)
    cv2.fillConvexPoly(hull, cv2.convexHull(cv2.findNonZero(solid)), 1)
    return float(solid.sum()) < CONVEX * float(np.maximum(hull, solid).sum())


def to_rgb(array: np.ndarray, keep_alpha: bool = False) -> np.ndarray:
    """Any uint8 image array -> (H, W, 3) RGB, or (H, W, 4) RGBA when keep_alpha."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8) if a.dtype.kind in "iu" or a.max() > 1.0 else (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.shape[2] == 4 and not keep_alpha:
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        a = (a[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)  # on white
    elif a.shape[2] == 3 and keep_alpha:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(a)


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the RGB frames of a video file, or of an animated GIF/WebP/PNG (each frame whole, as
    a browser shows it; transparency on white). One that cannot be decoded (empty, corrupt,
    truncated, an unknown codec) raises a one-line PosekitError; ffmpeg's own messages are
    captured by imageio and never shown."""
    import imageio.v3 as iio

    path = _nonempty_file(path, "a video")
    if path.suffix.lower() in ANIMATED_SUFFIXES:
        yield from _animation_frames(path, max_frames)
        return
    try:
        for i, frame in enumerate(iio.imiter(path, plugin="pyav" if _has_pyav() else None)):
            if max_frames is not None and i >= max_frames:
                return
            yield to_rgb(frame)
    except Exception:  # imageio raises many types, their text is ffmpeg's whole banner
        raise PosekitError(f"{path}: not a readable video (corrupt, truncated or an unknown codec)") from None


def _animation_frames(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    """The frames of an animated image, composited by Pillow (GIF disposal, APNG blending)."""
    from PIL import Image, ImageSequence

    with _pillow_errors(path, "animation"), Image.open(path) as im:
        for i, frame in enumerate(ImageSequence.Iterator(im)):
            if max_frames is not None and i >= max_frames:
                return
            yield to_rgb(np.asarray(frame.convert("RGBA")))


@contextmanager
def _pillow_errors(path: Path, what: str):
    """Pillow's errors while reading `path` as one-line PosekitErrors naming it. An image over
    Pillow's decompression-bomb limit (about 179 megapixels) is refused in one line; one between
    half that and the limit is read, without Pillow's warning."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except Image.DecompressionBombError as e:
        raise PosekitError(_too_large(path, e)) from None
    except UnidentifiedImageError:
        raise PosekitError(f"{path}: not an image file (expected JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except PermissionError:
        raise PosekitError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PosekitError(f"{path}: corrupt or truncated {what} ({e})") from None


def _too_large(path: Path, e: Exception) -> str:
    """The one line for an image over Pillow's limit, with its size in megapixels when Pillow said it."""
    from PIL import Image

    pixels = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(pixels.group(1)) / 1e6:.0f} megapixels" if pixels else "too many pixels"
    limit = 2 * Image.MAX_IMAGE_PIXELS / 1e6 if Image.MAX_IMAGE_PIXELS else 0
    return (f"{path}: {size}, more than the {limit:.0f} megapixels posekit reads; downscale it "
            "(e.g. to 4000 pixels on its long side) and pass the smaller copy")


def _nonempty_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise PosekitError(f"{path}: no such file")
    if path.is_dir():
        raise PosekitError(f"{path}: is a folder, not {what}")
    if path.stat().st_size == 0:
        raise PosekitError(f"{path}: empty file")
    return path


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
        return True
    except ImportError:
        return False


@dataclass
class Item:
    """One input image: a display name, an output stem, and a loader (so failures stay per item)."""

    name: str  # what messages on stderr call it: the path, or "clip.mp4#12" for a video frame
    stem: str  # base for output file names
    load: Callable[[], np.ndarray]
    source: Path | None = None  # the file it comes from (a video's, for each of its frames)
    frame: int | None = None  # a video frame's index in its video (--jsonl: "path" the video, "frame" this)


def is_video(path: str | os.PathLike) -> bool:
    """A video file by its suffix, or an animated image (a GIF of more than one frame ...)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES or is_animated_image(path)


def is_animated_image(path: str | os.PathLike) -> bool:
    """Whether `path` is a GIF, WebP or PNG of more than one frame (read as a video, one frame
    after another). False for anything that cannot be opened: it then fails as an image does."""
    path = Path(path)
    if path.suffix.lower() not in ANIMATED_SUFFIXES or not path.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:  # unreadable: load_image says why, in one line
        return False


def natural_key(path: str | os.PathLike):
    """Sort key that puts frame_2 before frame_10 (and frame_2/x before frame_10/x): each part
    of the path split into text (case folded) and numbers; ties (frame01, frame1; A.png, a.png)
    in the order of the path's text, so the order never depends on the file system's."""
    parts = Path(path).parts
    return [[int(t) if t.isdigit() else t.casefold() for t in re.split(r"(\d+)", part)] for part in parts], str(path)


def expand_paths(inputs: list[str], suffixes=IMAGE_SUFFIXES | VIDEO_SUFFIXES) -> list[Path]:
    """Files as given; folders expanded recursively, in natural order (`natural_key`: frame_2
    before frame_10), to files with the given suffixes, leaving out hidden files and folders
    (temporary files of atomic writes among them) and the skeleton images posekit wrote; "-" reads
    paths from stdin: NUL-separated when stdin holds a NUL (`find ... -print0`), else one a line,
    a folder among them expanded as one given as an argument. Missing paths are kept so they fail
    with a message."""
    out: list[Path] = []
    for arg in inputs:
        for path in (read_stdin_paths() if arg == "-" else [arg]):
            out.extend(_expanded(path, suffixes))
    return out


def _expanded(arg: str, suffixes) -> list[Path]:
    if not Path(arg).is_dir():
        return [Path(arg)]
    return sorted((p for p in Path(arg).rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                   and not any(part.startswith(".") for part in p.relative_to(arg).parts)
                   and not written_by_posekit(p)), key=lambda p: natural_key(p.relative_to(arg)))


def read_stdin_paths(stream=None) -> list[str]:
    """The paths on stdin: split on NUL when it holds one (`find -print0`, names may then hold
    newlines or edge spaces), else one a line (blank lines and edge spaces dropped). Bytes that
    are not UTF-8 are kept as the file system names them (os.fsdecode)."""
    stream = sys.stdin if stream is None else stream
    if stream is None:  # started with stdin closed
        return []
    raw = getattr(stream, "buffer", None)
    data = raw.read() if raw is not None else stream.read()
    if isinstance(data, bytes):
        if b"\0" in data:
            return [os.fsdecode(p) for p in data.split(b"\0") if p]
        data = os.fsdecode(data)
    if "\0" in data:
        return [p for p in data.split("\0") if p]
    return [line.strip() for line in data.splitlines() if line.strip()]


def written_by_posekit(path: str | os.PathLike) -> bool:
    """Whether `path` is a skeleton image that posekit wrote (extract-pose, poses show, animate):
    one listed in its folder's `.posekit-written` (`recorded_by_posekit`: also a skeleton whose
    keypoints a killed run never wrote), or a <stem>_pose.png that is a PNG (its chunks intact)
    beside a <stem>_keypoints.json that is an OpenPose keypoint file: a pair of other files under
    those names (notes, a broken download) is not posekit's."""
    from posekit.pose.formats import is_openpose_json, keypoints_json_name

    path = Path(path)
    stem = path.name.removesuffix("_pose.png")
    if stem == path.name or not path.is_file():
        return False
    if recorded_by_posekit(path):
        return True
    keypoints = path.parent / keypoints_json_name(stem)
    return keypoints.is_file() and is_png(path) and is_openpose_json(keypoints)


def is_png(path: str | os.PathLike) -> bool:
    """Whether `path` is a PNG file whose chunks are whole (Pillow's verify: checksums and the
    end chunk, without decoding the pixels)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                if im.format != "PNG":
                    return False
                im.verify()
        return True
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for a damaged file
        return False


def iter_inputs(inputs: list[str] | list[Path]) -> Iterator[Item]:
    """Expand CLI inputs (or paths already expanded) into lazily loaded images. A video yields
    one Item per frame as it is decoded, so a long video is never held in memory whole; one that
    cannot be read yields a single Item whose load raises the error."""
    for path in expand_paths([str(p) for p in inputs]):
        if is_video(path):
            try:
                for i, frame in enumerate(read_video(path)):
                    yield Item(f"{path}#{i}", f"{path.stem}_{i:05d}", lambda f=frame: f, path, frame=i)
            except PosekitError as e:
                yield Item(str(path), path.stem, lambda e=e: _raise(e), path)
        else:
            yield Item(str(path), path.stem, lambda p=path: load_image(p), path)


def _raise(error: Exception):
    raise error


# -- writing (atomic) ----------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it is renamed onto `path` atomically,
    on failure it is removed. Write whatever you like to the yielded path. While the block runs
    this process holds a lock on the temporary file (`_held_temp`), so that
    `remove_stale_temp_files` in another run knows it is being written and leaves it alone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _held_temp(path.parent, f".{path.name}.", ".tmp" + path.suffix) as tmp:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
            if _recording_in(path.parent):
                _record(path.parent, path.name, tmp)  # listed before it takes its name
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextmanager
def _held_temp(folder: Path, prefix: str, suffix: str):
    """Yield the path of a new empty temporary file in `folder` (mkstemp's name) whose flock this
    process holds until the block ends: a killed process's lock goes with it, so a temporary file
    nobody holds a lock on is a dead run's (`remove_stale_temp_files`). A file another run's
    cleaner removed between its making and its locking is made again. Without flock (Windows;
    a file system that refuses it) the file is made without a lock."""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    for _ in range(10):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # a cleaner holds it only while it removes the file
                except OSError:  # no locks on this file system: unlocked, as before
                    pass
            if os.fstat(fd).st_nlink == 0:  # removed by a cleaner before the lock was ours
                continue
            yield Path(tmp)
            return
        finally:
            os.close(fd)  # closing it releases the lock
    raise OSError(f"cannot keep a temporary file in {folder}: another process removes them")


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[^.]*)?$")  # atomic_path's mkstemp names


def remove_stale_temp_files(folder: str | os.PathLike, older_than: float = 3600.0) -> int:
    """Remove the temporary files of atomic writes that a killed run (SIGKILL, power loss) left
    in `folder` (`.<name>.XXXXXXXX.tmp<suffix of name>`): those no process holds the lock of,
    whatever their age (a run writing one holds its lock, `atomic_path`, and a killed run's lock
    went with it). Where locks cannot tell (no flock: Windows, a file system that refuses it), only
    those untouched for `older_than` seconds, so a write still under way in another run is left
    alone. Returns how many were removed."""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    folder, removed, now = Path(folder), 0, time.time()
    if not folder.is_dir():
        return 0
    for entry in os.scandir(folder):
        m = _TEMP_NAME.match(entry.name)
        if not m or (m["suffix"] or "") != Path(m["name"]).suffix or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if _unheld(entry, fcntl, lambda st: now - st.st_mtime >= older_than):
                removed += 1
        except OSError:  # gone already, or not ours to remove: it stays hidden either way
            pass
    return removed


def _unheld(entry: os.DirEntry, fcntl, old_enough) -> bool:
    """Remove `entry` if no process holds its lock (`_held_temp`); where no lock can be taken, if
    `old_enough(its stat)`. Whether it was removed."""
    if fcntl is None:
        if old_enough(entry.stat(follow_symlinks=False)):
            os.unlink(entry.path)
            return True
        return False
    fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live run is writing it
            return False
        except OSError:  # no locks here: by age
            if not old_enough(os.fstat(fd)):
                return False
        st, now_there = os.fstat(fd), os.stat(entry.path, follow_symlinks=False)
        if (st.st_dev, st.st_ino) != (now_there.st_dev, now_there.st_ino):
            return False  # the name is another file's now
        os.unlink(entry.path)  # while the lock is held: its writer, if it was just made, makes another
        return True
    finally:
        os.close(fd)


@contextmanager
def writing_lock(folder: str | os.PathLike):
    """Hold an exclusive lock on `folder` (flock on the folder itself, so nothing is left in
    it): another process writing there (a run moving its outputs in, a list of outputs being
    appended to or rewritten) waits until this one is done; the lock goes with the process, so a
    killed run never leaves it held. Without flock (Windows; NFS for a folder) nobody waits."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # NFS emulates flock with write locks, which a folder cannot take: go unlocked
            pass
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


# -- which outputs posekit wrote -----------------------------------------------------------
# hidden: folder reading never takes it (or its temp files) for an input. Not the .posekit-outputs.json
# of animate, transfer and poses show (pipeline.MANIFEST): that lists a whole staged run by name.
LEDGER_NAME = ".posekit-written"
_RECORDING: ContextVar[frozenset] = ContextVar("posekit_recording", default=frozenset())
_LEDGERS: dict[Path, tuple[tuple, dict[str, list[str]]]] = {}  # ledger -> (its stat, name -> digests)


@contextmanager
def recording_outputs(folder: str | os.PathLike):
    """Within this block, each atomic write into `folder` itself (`atomic_path`, `save_image`,
    `write_json`, ...) is listed in the folder's `.posekit-written` as `<sha256> <name>`, written
    *before* the file is renamed onto its name. A kill at any moment therefore leaves every
    output posekit wrote listed with its content, so a re-run tells its own half-written results
    (`recorded_by_posekit`) from files someone else put there. The list keeps the last two
    contents of each name (a run killed between listing and renaming leaves the older one in
    place); it is compacted on entry."""
    folder = Path(os.path.abspath(folder))
    _compact_ledger(folder)
    token = _RECORDING.set(_RECORDING.get() | {folder})
    try:
        yield folder
    finally:
        _RECORDING.reset(token)


def listed_by_posekit(path: str | os.PathLike) -> bool:
    """Whether `path`'s name is listed in its folder's `.posekit-written`, whatever it holds now."""
    path = Path(path)
    return path.name in _ledger(Path(os.path.abspath(path.parent)))


def recorded_by_posekit(path: str | os.PathLike) -> bool:
    """Whether `path` holds content posekit listed under its name in its folder's
    `.posekit-written` (see `recording_outputs`). A file changed since, or never listed, is not."""
    path = Path(path)
    digests = _ledger(Path(os.path.abspath(path.parent))).get(path.name)
    if not digests or not path.is_file():
        return False
    try:
        return _digest(path) in digests
    except OSError:
        return False


def _recording_in(folder: Path) -> bool:
    recording = _RECORDING.get()
    return bool(recording) and Path(os.path.abspath(folder)) in recording


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _ledger(folder: Path) -> dict[str, list[str]]:
    """name -> the digests listed for it, oldest first (re-read only when the file changed)."""
    ledger = folder / LEDGER_NAME
    try:
        st = ledger.stat()
    except OSError:
        return {}
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _LEDGERS.get(ledger)
    if cached and cached[0] == key:
        return cached[1]
    entries: dict[str, list[str]] = {}
    try:
        data = ledger.read_bytes()
    except OSError:
        return {}
    for line in data.split(b"\n"):
        digest, _, name = line.partition(b" ")
        if len(digest) == 64 and name:
            entries.setdefault(os.fsdecode(name), []).append(digest.decode("ascii", "replace"))
    _LEDGERS[ledger] = (key, entries)
    return entries


def _record(folder: Path, name: str, tmp: Path) -> None:
    if "\n" in name or name == LEDGER_NAME:
        return  # a name the list cannot hold: that file is simply not recognised later
    folder = Path(os.path.abspath(folder))
    digest = _digest(tmp)
    ledger = folder / LEDGER_NAME
    with writing_lock(folder), open(ledger, "ab") as f:  # never into a list another run is rewriting
        f.write(digest.encode() + b" " + os.fsencode(name) + b"\n")
    _LEDGERS.pop(ledger, None)  # read again when next asked (another run may have added to it too)


def _compact_ledger(folder: Path, keep: int = 2) -> None:
    """Rewrite the list without names whose file is gone and with at most `keep` digests a name,
    once it holds more than that (re-runs append to it)."""
    if all(len(d) <= keep and (folder / n).exists() for n, d in _ledger(folder).items()):
        return
    with writing_lock(folder):  # another run appending meanwhile waits, and is read back here
        _LEDGERS.pop(folder / LEDGER_NAME, None)
        _rewrite_ledger(folder, _ledger(folder), keep)


def _rewrite_ledger(folder: Path, entries: dict[str, list[str]], keep: int) -> None:
    kept = {n: d[-keep:] for n, d in entries.items() if (folder / n).exists()}
    ledger = folder / LEDGER_NAME
    with _held_temp(folder, f".{LEDGER_NAME}.", ".tmp") as tmp:  # held: no other run's cleaner takes it
        try:
            tmp.write_bytes(b"".join(d.encode() + b" " + os.fsencode(n) + b"\n" for n, ds in kept.items() for d in ds))
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, ledger)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    _LEDGERS.pop(ledger, None)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(image: np.ndarray, path: str | os.PathLike, **options) -> Path:
    """Save an RGB/RGBA/gray uint8 array (format from the suffix) atomically; `options` go to
    Pillow's writer (`quality=95` for a JPEG)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image)).save(tmp, format=_pil_format(path), **options)
    return path


def _pil_format(path: Path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
            ".tif": "TIFF", ".tiff": "TIFF"}.get(path.suffix.lower(), "PNG")


def write_text(text: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def write_json(obj, path: str | os.PathLike, indent: int | None = 2) -> Path:
    return write_text(json.dumps(obj, indent=indent) + "\n", path)

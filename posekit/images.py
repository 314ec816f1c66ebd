"""Reading inputs and writing outputs safely.

- `load_image(path)` -> RGB uint8 array (EXIF orientation applied, alpha composited on white,
  grayscale expanded); anything unreadable raises a one-line PosekitError naming the file.
- `iter_inputs(args)` expands CLI inputs (files, folders recursively, videos frame by frame,
  "-" for paths on stdin) into `Item`s, each loaded lazily so one bad file fails alone.
  An animated GIF, WebP or PNG (more than one frame) is a video (`is_video`); one frame, an image.
- `save_image`, `write_json`, `write_text`, `atomic_path`: atomic writes (temp file + rename), so
  a killed run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
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
    elif im.mode not in ("RGB", "RGBA", "L"):  # palette, CMYK, YCbCr, LA, ...
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    return to_rgb(np.asarray(im), keep_alpha)


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
    """Pillow's errors while reading `path` as one-line PosekitErrors naming it."""
    from PIL import UnidentifiedImageError

    try:
        yield
    except UnidentifiedImageError:
        raise PosekitError(f"{path}: not an image file (expected JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except PermissionError:
        raise PosekitError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise PosekitError(f"{path}: corrupt or truncated {what} ({e})") from None


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

    name: str  # what errors and --jsonl call it: the path, or "clip.mp4#12" for a video frame
    stem: str  # base for output file names
    load: Callable[[], np.ndarray]


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


def expand_paths(inputs: list[str], suffixes=IMAGE_SUFFIXES | VIDEO_SUFFIXES) -> list[Path]:
    """Files as given; folders expanded recursively (sorted) to files with the given suffixes,
    leaving out hidden files and folders (temporary files of atomic writes among them) and the
    skeleton images posekit wrote; "-" reads one path per line from stdin. Missing paths are
    kept so they fail with a message."""
    out: list[Path] = []
    for arg in inputs:
        if arg == "-":
            out.extend(Path(line.strip()) for line in sys.stdin if line.strip())
        elif Path(arg).is_dir():
            out.extend(sorted(p for p in Path(arg).rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                              and not any(part.startswith(".") for part in p.relative_to(arg).parts)
                              and not written_by_posekit(p)))
        else:
            out.append(Path(arg))
    return out


def written_by_posekit(path: str | os.PathLike) -> bool:
    """Whether `path` is a skeleton image that posekit wrote (extract-pose, poses show, animate):
    <stem>_pose.png beside <stem>_keypoints.json."""
    from posekit.pose.formats import keypoints_json_name

    path = Path(path)
    stem = path.name.removesuffix("_pose.png")
    return stem != path.name and path.is_file() and (path.parent / keypoints_json_name(stem)).is_file()


def iter_inputs(inputs: list[str] | list[Path]) -> Iterator[Item]:
    """Expand CLI inputs (or paths already expanded) into lazily loaded images. A video yields
    one Item per frame as it is decoded, so a long video is never held in memory whole; one that
    cannot be read yields a single Item whose load raises the error."""
    for path in expand_paths([str(p) for p in inputs]):
        if is_video(path):
            try:
                for i, frame in enumerate(read_video(path)):
                    yield Item(f"{path}#{i}", f"{path.stem}_{i:05d}", lambda f=frame: f)
            except PosekitError as e:
                yield Item(str(path), path.stem, lambda e=e: _raise(e))
        else:
            yield Item(str(path), path.stem, lambda p=path: load_image(p))


def _raise(error: Exception):
    raise error


# -- writing (atomic) ----------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it is renamed onto `path` atomically,
    on failure it is removed. Write whatever you like to the yielded path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Save an RGB/RGBA/gray uint8 array (format from the suffix) atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image)).save(tmp, format=_pil_format(path))
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

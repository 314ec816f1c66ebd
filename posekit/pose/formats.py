"""Pose file formats: OpenPose keypoint JSON, the PATN annotation CSV, extract-pose JSON lines.

- OpenPose JSON: `{"version": 1.3, "people": [{"pose_keypoints_2d": [x0, y0, c0, ...]}]}`, pixel
  coordinates, a missing point is 0, 0, 0, one file `<image stem>_keypoints.json` per image. We
  read COCO-18 (54 numbers) and BODY_25 (75 numbers, converted to COCO-18) files, and the
  `canvas_width` / `canvas_height` that ControlNet pose editors add; we write COCO-18 with the
  canvas size included (OpenPose readers ignore the extra keys).
- PATN annotation CSV (Zhu et al. 2019): `name:keypoints_y:keypoints_x`, one row per image,
  `<name>: [y0, ..., y17]: [x0, ..., x17]`, integers, -1 for a missing point. y is the row.
- JSON lines from `posekit extract-pose --jsonl`: one object per input image
  `{"path", "width", "height", "people": [{"pose_keypoints_2d": [...]}, ...]}`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from posekit.errors import PosekitError
from posekit.pose.pose import NUM_KEYPOINTS, Pose

# BODY_25 has a mid-hip (8) and six foot points (19..24) that COCO-18 lacks; the rest map 1:1.
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

_EMPTY_PERSON_FIELDS = ("face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d",
                        "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
                        "hand_right_keypoints_3d")


def keypoints_json_name(stem: str) -> str:
    """The file name OpenPose's --write_json gives the keypoints of image `<stem>.*`."""
    return f"{stem}_keypoints.json"


def skeleton_png_name(stem: str) -> str:
    """The ControlNet skeleton image posekit writes beside `keypoints_json_name(stem)`."""
    return f"{stem}_pose.png"


def write_pose_files(people: list[Pose], folder: str | os.PathLike, stem: str, size: tuple[int, int]) -> np.ndarray:
    """The two files every command writes per image or frame: `<stem>_keypoints.json` (OpenPose,
    with the canvas) and `<stem>_pose.png` (the ControlNet skeleton). Returns the skeleton."""
    from posekit.images import save_image
    from posekit.pose.render import draw_skeleton

    folder = Path(folder)
    write_openpose_json(people, folder / keypoints_json_name(stem), size=size)
    skeleton = draw_skeleton(people, *size)
    save_image(skeleton, folder / skeleton_png_name(stem))
    return skeleton


# -- OpenPose JSON: reading ----------------------------------------------------------------
def read_openpose_json(path: str | os.PathLike, size: tuple[int, int] | None = None) -> list[Pose]:
    """Read every person of an OpenPose keypoint JSON file as COCO-18 Poses.

    The canvas is, in order of preference: the file's canvas_width/canvas_height, the size of an
    image with the same stem beside the file (`photo.jpg` for `photo_keypoints.json`: the image
    the keypoints were made from), `size=(w, h)` (the image the caller knows they belong to; the
    coordinates are kept as they are), or else inferred from the keypoints (their extent plus a
    margin). Coordinates that are all within 0..1 are taken as normalised to the canvas. A point
    with a non-finite x, y or confidence, or more than FAR canvas sizes off the canvas, is missing.
    """
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # some pose editors wrap the one frame in a list
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise PosekitError(f"{path}: not an OpenPose keypoint file (expected a \"people\" list)")

    arrays = [_coco18(person, path, i) for i, person in enumerate(data["people"])]
    arrays = [a for a in arrays if (a[:, 2] > 0).any()]  # a person with no points is nobody
    width, height = _canvas_of(data, path, size, arrays)
    poses = []
    for kp in arrays:
        present = kp[:, 2] > 0
        if present.any() and kp[present, :2].max() <= 1.0 and max(width, height) > 2:
            kp = kp.copy()
            kp[:, :2] *= np.float32([width, height])  # normalised coordinates
        poses.append(Pose(without_far_points(kp, width, height), width, height))
    return [p for p in poses if len(p)]


def is_openpose_json(path: str | os.PathLike) -> bool:
    """Whether `path` is an OpenPose keypoint file: JSON with a "people" list whose entries each
    hold 54 or 75 pose_keypoints_2d numbers (what `read_openpose_json` reads)."""
    path = Path(path)
    try:
        data = _load_json(path)
        if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
            data = data[0]
        if not isinstance(data, dict) or not isinstance(data.get("people"), list):
            return False
        for i, person in enumerate(data["people"]):
            _coco18(person, path, i)
    except (PosekitError, OSError):
        return False
    return True


FAR = 100  # a keypoint more than this many canvas sizes off the canvas is garbage: missing


def without_far_points(kp: np.ndarray, width: float, height: float) -> np.ndarray:
    """(18, 3) keypoints with the points absurdly far from the width x height canvas (more than
    FAR times its size off it: no picture has them; a pose editor's or a converter's garbage)
    made missing, so they cannot blow a figure up to millions of pixels."""
    reach = FAR * max(width, height, 1)
    x, y = kp[:, 0].astype(np.float64), kp[:, 1].astype(np.float64)
    far = (x < -reach) | (y < -reach) | (x > width + reach) | (y > height + reach)
    if not far.any():
        return kp
    kp = kp.copy()
    kp[far] = 0.0
    return kp


def _load_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PosekitError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PosekitError(f"{path}: is a folder, not a JSON file") from None
    except PermissionError:
        raise PosekitError(f"{path}: permission denied") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PosekitError(f"{path}: not valid JSON ({e})") from None


def _coco18(person, path: Path, index: int) -> np.ndarray:
    """One OpenPose person entry -> (18, 3) float32 COCO-18 keypoints."""
    flat = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
    try:
        kp = np.asarray(flat, np.float64).reshape(-1, 3)  # float64: 1e300 stays finite until checked
    except (TypeError, ValueError):
        kp = None
    if kp is None or len(kp) not in (18, 25):
        n = len(flat) if isinstance(flat, list) else 0
        raise PosekitError(f"{path}: person {index} has {n} pose_keypoints_2d numbers; "
                           "expected 54 (COCO-18) or 75 (BODY_25)")
    if len(kp) == 25:
        kp = kp[list(BODY25_TO_COCO18)]
    return finite_keypoints(kp)


def finite_keypoints(kp: np.ndarray) -> np.ndarray:
    """(N, 3) float32 keypoints where a point with a non-finite x, y or confidence (NaN,
    Infinity, or a number beyond float32's range such as 1e300) or a confidence <= 0 is missing
    (0, 0, 0): such a point says nothing about where the joint is."""
    kp = np.asarray(kp, np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(kp).all(axis=1) & (np.abs(kp) < np.finfo(np.float32).max).all(axis=1)) | ~(kp[:, 2] > 0)
    kp = np.where(bad[:, None], 0.0, kp)
    return kp.astype(np.float32)


def _canvas_of(data: dict, path: Path, size, arrays: list[np.ndarray]) -> tuple[int, int]:
    w, h = data.get("canvas_width"), data.get("canvas_height")
    if isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0:
        if not (math.isfinite(w) and math.isfinite(h) and w <= MAX_CANVAS and h <= MAX_CANVAS):
            raise PosekitError(f"{path}: canvas_width {json.dumps(w)}, canvas_height {json.dumps(h)}: not an image's "
                               f"size (whole pixels, up to {MAX_CANVAS}); fix them or leave them out")
        return int(w), int(h)
    image = _image_beside(path)
    if image is not None:
        from PIL import Image

        try:
            with Image.open(image) as im:
                w, h = im.size
                # the upright size, as load_image (exif_transpose) and OpenPose's imread see it
                return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)
        except (OSError, Image.DecompressionBombError):  # the image's size is a guess here: go on without it
            pass
    if size is not None:
        return int(size[0]), int(size[1])
    return _inferred_canvas(arrays)


def _orientation(im) -> int | None:
    """The image's EXIF orientation (5 to 8: stored turned a quarter), None when it has none or
    its EXIF cannot be read (the stored size is then the best guess)."""
    try:
        return im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - damaged EXIF: Pillow raises many kinds
        return None


def _image_beside(path: Path) -> Path | None:
    from posekit.images import IMAGE_SUFFIXES

    stem = path.stem[: -len("_keypoints")] if path.stem.endswith("_keypoints") else path.stem
    for candidate in sorted(path.parent.glob(f"{stem}.*")):
        if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
            return candidate
    return None


def _inferred_canvas(arrays: list[np.ndarray]) -> tuple[int, int]:
    """A canvas around the keypoints when nothing says how big the image was: the points' far
    edge plus the margin they leave on the near side (so the body stays centred), at least 10%."""
    pts = np.concatenate([a[a[:, 2] > 0, :2] for a in arrays]) if arrays else np.zeros((0, 2))
    if len(pts) == 0:
        return 512, 512
    if pts.max() <= 1.0:
        return 512, 512  # normalised coordinates and no size: ControlNet's usual resolution
    # a point absurdly far from the others is garbage (without_far_points then drops it): it
    # does not stretch the canvas
    off = np.abs(pts - np.median(pts, axis=0)).max(axis=1)
    pts = pts[off <= FAR * max(float(np.median(off)), 1.0)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = np.maximum(lo, 0.1 * (hi - lo))
    w, h = (math.ceil(v) + 1 for v in hi + margin)
    return max(w, 1), max(h, 1)


# -- OpenPose JSON: writing ----------------------------------------------------------------
def openpose_dict(poses: list[Pose]) -> dict:
    """The OpenPose --write_json document for the people of one image (canvas = the first
    pose's; an empty list gives no canvas keys)."""
    people = [{"person_id": [-1], "pose_keypoints_2d": p.to_openpose(),
               **{k: [] for k in _EMPTY_PERSON_FIELDS}} for p in poses]
    doc = {"version": 1.3, "people": people}
    if poses:
        doc["canvas_width"], doc["canvas_height"] = poses[0].width, poses[0].height
    return doc


def write_openpose_json(poses: list[Pose], path: str | os.PathLike, size: tuple[int, int] | None = None) -> Path:
    """Write the people of one image atomically. `size=(w, h)` records the canvas when there
    are no people (so an empty file still says how big the image was)."""
    from posekit.images import write_json

    doc = openpose_dict(poses)
    if not poses and size is not None:
        doc["canvas_width"], doc["canvas_height"] = int(size[0]), int(size[1])
    return write_json(doc, path, indent=None)


# -- PATN annotation CSV -------------------------------------------------------------------
def write_patn_annotations(rows: list[tuple[str, Pose]], path: str | os.PathLike) -> Path:
    """Write `name:keypoints_y:keypoints_x` rows (integers, -1 missing) atomically."""
    from posekit.images import write_text

    lines = ["name:keypoints_y:keypoints_x"]
    for name, pose in rows:
        if ":" in name:
            raise PosekitError(f"{name}: a ':' in an image name cannot be stored in a PATN annotation file")
        ys = [int(round(float(y))) if v else -1 for y, v in zip(pose.keypoints[:, 1], pose.visible)]
        xs = [int(round(float(x))) if v else -1 for x, v in zip(pose.keypoints[:, 0], pose.visible)]
        lines.append(f"{name}: {json.dumps(ys)}: {json.dumps(xs)}")
    return write_text("\n".join(lines) + "\n", path)


def _text_lines(path: Path) -> list[str]:
    """The lines of a text file, or a one-line PosekitError naming it."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        raise PosekitError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PosekitError(f"{path}: cannot read ({e})") from None


def read_patn_annotations(path: str | os.PathLike, width: int, height: int) -> dict[str, Pose]:
    """Read a PATN annotation CSV into {image name: Pose on a width x height canvas}."""
    path = Path(path)
    lines = _text_lines(path)
    poses: dict[str, Pose] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or (number == 1 and line.replace(" ", "").startswith("name:keypoints_y")):
            continue
        try:
            name, ys, xs = line.rsplit(":", 2)
            y = np.asarray(json.loads(ys), np.float32)
            x = np.asarray(json.loads(xs), np.float32)
            if y.shape != (NUM_KEYPOINTS,) or x.shape != (NUM_KEYPOINTS,):
                raise ValueError(f"{len(y)} y and {len(x)} x values, expected 18 each")
        except (ValueError, TypeError) as e:
            raise PosekitError(f"{path}:{number}: not a PATN annotation row "
                               f"(expected 'name: [18 ys]: [18 xs]'; {e})") from None
        present = (x != -1) & (y != -1)
        kp = np.column_stack([x, y, present.astype(np.float32)])
        poses[name.strip()] = Pose(kp, width, height)
    return poses


# -- extract-pose JSON lines ---------------------------------------------------------------
def jsonl_record(path: str, width: int | None, height: int | None, poses: list[Pose],
                 error: str | None = None, frame: int | None = None) -> dict:
    """The one JSON object `extract-pose --jsonl` prints per input: "path" is the file read; a
    frame of a video or animated image adds "frame", its index in that file (from 0)."""
    record = {"path": path} | ({"frame": frame} if frame is not None else {}) | {
        "width": width, "height": height, "people": [{"pose_keypoints_2d": p.to_openpose()} for p in poses]}
    if error is not None:
        record["error"] = error
    return record


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read `extract-pose --jsonl` output: one dict per input with path, width, height, people
    (raw OpenPose entries), "frame" for a frame of a video (older posekit wrote "clip.mp4#12" as
    its path instead) and, added here, `poses` (the people as COCO-18 Poses) and `line` (its line
    number in the file). Inputs that failed carry an `error` and no people."""
    path = Path(path)
    lines = _text_lines(path)
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            people = record.get("people") or []
            width, height = record.get("width"), record.get("height")
            bad_canvas = _bad_canvas(width, height) if people else None
            if bad_canvas:
                raise PosekitError(f"{path}:{number}: {bad_canvas}")
            poses = [Pose(without_far_points(_coco18(p, path, i), width, height), width, height)
                     for i, p in enumerate(people)] if people else []
            record["poses"] = [p for p in poses if len(p)]
            record["line"] = number
        except (ValueError, AttributeError, TypeError) as e:  # JSONDecodeError is a ValueError
            raise PosekitError(f"{path}:{number}: not an extract-pose JSON line ({e})") from None
        records.append(record)
    return records


MAX_CANVAS = 1 << 16  # px: a side no image posekit reads has (a stated canvas past it is a broken file)


def _bad_canvas(width, height) -> str | None:
    """What is wrong with a JSON line's canvas (None: whole pixels, 1 to MAX_CANVAS each)."""
    def pixels(v) -> bool:
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and 1 <= v <= MAX_CANVAS and v == int(v))

    if pixels(width) and pixels(height):
        return None
    return (f"width {json.dumps(width)}, height {json.dumps(height)}: the canvas must be whole pixels, "
            f"1 to {MAX_CANVAS} each (as extract-pose --jsonl writes them); fix or remove this line")

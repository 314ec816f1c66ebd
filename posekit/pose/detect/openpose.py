"""OpenPose body model (CMU, as ControlNet's annotator runs it) -> COCO-18 Poses.

Weights: `body_pose_model.pth` from a hub repo (default lllyasviel/Annotators), a local folder
holding it, or the .pth file itself; loaded with weights_only=True. The network and its
post-processing (peak finding, part-affinity grouping) are controlnet_aux's; we add the things
its OpenposeDetector does not do: safe loading, pixel coordinates of the input image, and
running the network in batches on the GPU.

Like controlnet_aux, we resize each image to a 512 px short side (sides multiples of 64) before
detection, and map the keypoints back to the input image's pixels.

Everything that reaches into controlnet_aux's internals is in the adapter section at the end
(`ControlnetAuxBody`, `import_controlnet_aux_openpose`), checked against the versions it was
written for.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from posekit.errors import ModelNotFoundError, UsageError
from posekit.pose.detect import Detector, largest_first
from posekit.pose.pose import NUM_KEYPOINTS, Pose

DEFAULT_REPO = "lllyasviel/Annotators"
WEIGHTS_NAME = "body_pose_model.pth"
DETECT_RESOLUTION = 512
BATCH_SIZE = 8


def weights_path(model: str | None) -> Path:
    """A local body_pose_model.pth for a hub id, a folder or a file."""
    model = model or DEFAULT_REPO
    path = Path(model).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            return path / WEIGHTS_NAME
        raise UsageError(f"--model {model}: the folder has no {WEIGHTS_NAME}; "
                                 f"download it from https://huggingface.co/{DEFAULT_REPO}")
    if path.suffix in (".pth", ".pt") or model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise UsageError(f"--model {model}: no such file or folder; pass the path of "
                                 f"{WEIGHTS_NAME} or a hub id such as {DEFAULT_REPO}")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(model, WEIGHTS_NAME))
    except Exception as e:  # offline, unknown repo, no such file: all mean the same to the user
        raise ModelNotFoundError(
            f"--model {model}: cannot get {WEIGHTS_NAME} from the Hugging Face hub "
            f"({type(e).__name__}); download it (hf download {model} {WEIGHTS_NAME} --local-dir DIR) "
            "and pass --model DIR") from None


class OpenPoseDetector(Detector):
    def __init__(self, model: str | None = None, device: str = "auto", max_people: int = 1,
                 resolution: int = DETECT_RESOLUTION):
        from posekit.device import resolve_device

        path = weights_path(model)  # before the slow imports: a missing model fails at once
        self.device = resolve_device(device)
        self.max_people = max(1, int(max_people))
        self.resolution = int(resolution)  # short side the image is resized to before detection
        self._aux = ControlnetAuxBody(self.device)
        self.net = self._aux.network()
        self.net.load_state_dict(self._state_dict(path))
        self.net.eval().to(self.device)

    def _state_dict(self, path: Path) -> dict:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelNotFoundError(f"{path}: not a loadable OpenPose body model ({type(e).__name__}); "
                                     f"download {WEIGHTS_NAME} from https://huggingface.co/{DEFAULT_REPO}") from None
        if isinstance(state, dict) and set(state) != set(self.net.state_dict()):
            try:  # the published file names its tensors without the block prefix
                state = self._aux.renamed(self.net, state)
            except KeyError as e:
                raise ModelNotFoundError(f"{path}: not an OpenPose body model (no tensor {e})") from None
        return state

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Pose]]:
        import torch

        from posekit.images import to_rgb

        resized = [self._resized(to_rgb(img)) for img in images]  # gray/RGBA/float -> RGB uint8
        inputs = [self._aux.network_input(r) for r in resized]
        outputs: list = [None] * len(images)
        by_shape: dict[tuple, list[int]] = {}
        for i, x in enumerate(inputs):
            by_shape.setdefault(x.shape, []).append(i)
        with torch.no_grad():
            for group in by_shape.values():
                for start in range(0, len(group), BATCH_SIZE):
                    chunk = group[start:start + BATCH_SIZE]
                    batch = torch.from_numpy(np.concatenate([inputs[i] for i in chunk])).to(self.device)
                    pafs, heat = self.net(batch)
                    for j, i in enumerate(chunk):
                        outputs[i] = (pafs[j:j + 1].cpu(), heat[j:j + 1].cpu())
        return [self._people(img, r, out) for img, r, out in zip(images, resized, outputs)]

    def _resized(self, image: np.ndarray) -> np.ndarray:
        """BGR at controlnet_aux's detect resolution (512 px short side, multiples of 64)."""
        import cv2

        h, w = image.shape[:2]
        k = self.resolution / min(h, w)
        size = (max(64, int(round(w * k / 64)) * 64), max(64, int(round(h * k / 64)) * 64))
        out = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)
        return np.ascontiguousarray(out[:, :, ::-1])

    def _people(self, image: np.ndarray, bgr: np.ndarray, output) -> list[Pose]:
        candidate, subset = self._aux.group(bgr, output)
        height, width = image.shape[:2]
        sx, sy = width / bgr.shape[1], height / bgr.shape[0]
        poses = []
        for person in subset:
            kp = np.zeros((NUM_KEYPOINTS, 3), np.float32)
            for part in range(NUM_KEYPOINTS):
                index = int(person[part])
                if index >= 0:
                    x, y, score = candidate[index][:3]
                    # pixel centres: x + 0.5 in the resized image is x' + 0.5 in the input
                    kp[part] = ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5, max(float(score), 1e-3))
            poses.append(Pose(kp, width, height))
        return largest_first(poses)[: self.max_people]

    def close(self) -> None:
        self.net = None


# -- controlnet_aux adapter ------------------------------------------------------------------
# The only code that touches controlnet_aux's internals. It was written for these versions;
# another one is used as long as it still has what _NEEDED names, and refused in one line
# (naming the version) when it does not.
CONTROLNET_AUX_VERSIONS = ("0.0.9", "0.0.10")
_NEEDED = {"body": ("Body",), "model": ("bodypose_model",),
           "util": ("smart_resize_k", "padRightDownCorner", "transfer")}


class ControlnetAuxBody:
    """controlnet_aux's OpenPose body code behind four calls: the network, the weights'
    renaming, Body's network input, and Body's peak grouping run on outputs we computed."""

    def __init__(self, device):
        body, self._model, self._util = import_controlnet_aux_openpose()
        # Body runs the network and then groups peaks into people; we run the network ourselves
        # (batched) and hand Body each image's outputs through _Replay. Body.__init__ is skipped:
        # it loads the weights itself, with an unsafe torch.load.
        self._replay = _Replay(device)
        self._body = body.Body.__new__(body.Body)
        self._body.model = self._replay

    def network(self):
        """A new, untrained OpenPose body network (torch.nn.Module)."""
        return self._model.bodypose_model()

    def renamed(self, net, state: dict) -> dict:
        """The published file's tensors ("conv1_1.weight") under the network's names
        ("model0.conv1_1.weight"); KeyError when one is missing."""
        return self._util.transfer(net, state)

    def network_input(self, bgr: np.ndarray) -> np.ndarray:
        """The (1, 3, h, w) float input Body builds: scale 0.5 of a 368 px box, padded to 8."""
        scale = 0.5 * 368 / bgr.shape[0]
        small = self._util.smart_resize_k(bgr, fx=scale, fy=scale)
        padded, _ = self._util.padRightDownCorner(small, 8, 128)
        return np.ascontiguousarray(np.float32(padded).transpose(2, 0, 1)[None] / 256 - 0.5)

    def group(self, bgr: np.ndarray, output) -> tuple:
        """Body's (candidate, subset) for one BGR image, given the network's (pafs, heatmaps)."""
        self._replay.output = output
        return self._body(bgr)


class _Replay:
    """Stands in for the network inside controlnet_aux's Body: returns the outputs we already
    computed in a batch. Body asks the model for its device and then calls it once."""

    def __init__(self, device):
        import torch

        self._param = torch.zeros(1, device=device)
        self.output = None

    def parameters(self):
        yield self._param

    def __call__(self, data):
        return self.output


def import_controlnet_aux_openpose():
    """controlnet_aux's OpenPose modules (body, model, util), checked to have what _NEEDED names.

    They are imported without the package's __init__, which imports every annotator (timm, the
    MediaPipe face module that crashes with mediapipe >= 0.10.30, see import_controlnet_aux) and
    takes seconds; the OpenPose modules need only torch, cv2 and scipy.
    """
    version = _controlnet_aux_version()
    try:
        modules = _openpose_modules()
    except ImportError as e:
        raise _unsupported(version, f"cannot import its OpenPose modules ({type(e).__name__}: {_first_line(e)})") from None
    missing = [f"open_pose.{part}.{name}" for module, (part, names) in zip(modules, _NEEDED.items())
               for name in names if not hasattr(module, name)]
    if missing:
        raise _unsupported(version, f"has no {', '.join(missing)}")
    return modules


def _controlnet_aux_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("controlnet_aux")
    except metadata.PackageNotFoundError:
        if importlib.util.find_spec("controlnet_aux") is None:
            raise ModelNotFoundError("the openpose detector needs controlnet_aux: pip install controlnet-aux") from None
        return "(version unknown)"


def _unsupported(version: str, problem: str) -> ModelNotFoundError:
    lo, hi = CONTROLNET_AUX_VERSIONS
    release = tuple(int(n) for n in re.findall(r"\d+", version)[:3])
    tested = tuple(map(int, lo.split("."))) <= release <= tuple(map(int, hi.split(".")))
    fix = "reinstall it" if tested else f"pip install 'controlnet-aux>={lo},<={hi}'"
    return ModelNotFoundError(f"controlnet_aux {version}: {problem}; posekit's openpose detector "
                              f"uses its internals as of {lo} to {hi}: {fix}")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _openpose_modules():
    """Import controlnet_aux.open_pose; when the package is not imported yet, under an
    unexecuted shell of it, dropped afterwards, so a later `import controlnet_aux` still runs
    the real __init__ (which then reuses these modules)."""
    if "controlnet_aux.open_pose" not in sys.modules:
        shell = None
        if "controlnet_aux" not in sys.modules:
            shell = importlib.util.module_from_spec(importlib.util.find_spec("controlnet_aux"))
            sys.modules["controlnet_aux"] = shell  # the package object, __init__ not run
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module("controlnet_aux.open_pose")
        finally:
            if shell is not None and sys.modules.get("controlnet_aux") is shell:
                del sys.modules["controlnet_aux"]
    return tuple(sys.modules.get(f"controlnet_aux.open_pose.{part}") for part in _NEEDED)


def import_controlnet_aux():
    """`import controlnet_aux` (the whole package), working around its import-time crash.

    controlnet_aux 0.0.10's __init__ imports its MediaPipe face module, which touches
    `mp.solutions`; mediapipe >= 0.10.30 has no `solutions`, so the import raises
    AttributeError (huggingface/controlnet_aux issue 122, unfixed). With
    sys.modules["mediapipe"] = None that module's `import mediapipe` raises ImportError, which
    it handles; we restore the real entry right after, so BlazePose keeps working in the same
    process. posekit itself needs only the OpenPose part: see import_controlnet_aux_openpose.
    """
    saved = sys.modules.get("mediapipe", ...)
    sys.modules["mediapipe"] = None
    try:
        with warnings.catch_warnings():  # its modules warn about timm and the missing mediapipe
            warnings.simplefilter("ignore")
            import controlnet_aux
    finally:
        if saved is ...:
            del sys.modules["mediapipe"]
        else:
            sys.modules["mediapipe"] = saved
    # submodules loaded earlier by import_controlnet_aux_openpose are not attributes of the
    # package object its __init__ just made; bind them so controlnet_aux.open_pose works
    for name, module in list(sys.modules.items()):
        parent, _, child = name.rpartition(".")
        if parent.startswith("controlnet_aux") and parent in sys.modules and module is not None \
                and not hasattr(sys.modules[parent], child):
            setattr(sys.modules[parent], child, module)
    return controlnet_aux

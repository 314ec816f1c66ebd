import sys

import numpy as np
import pytest

from posekit.errors import ModelNotFoundError, UsageError
from posekit.pose import Pose
from posekit.pose.detect import DETECTORS, detect_person, load_detector

# Hand-labelled on the photo (zoomed in): pixel positions in scikit-image's astronaut.
# Right and left are the person's own: her right eye and shoulder are on the image's left.
LABELS = {"nose": (225, 126), "r_eye": (205, 101), "l_eye": (246, 104),
          "r_shoulder": (112, 240), "l_shoulder": (306, 256)}
TOLERANCE = {"nose": 12, "r_eye": 12, "l_eye": 12, "r_shoulder": 30, "l_shoulder": 30}


@pytest.fixture(scope="module")
def blazepose():
    detector = load_detector("blazepose", max_people=2)
    yield detector
    detector.close()


@pytest.fixture(scope="module")
def openpose_weights(tmp_path_factory):
    """A randomly initialised OpenPose body model saved as the published file names its tensors."""
    import torch

    from posekit.pose.detect.openpose import import_controlnet_aux_openpose

    _, model_lib, _ = import_controlnet_aux_openpose()
    torch.manual_seed(0)
    net = model_lib.bodypose_model()
    path = tmp_path_factory.mktemp("openpose") / "body_pose_model.pth"
    torch.save({k.split(".", 1)[1]: v for k, v in net.state_dict().items()}, path)
    return path


def test_blazepose_finds_the_astronaut_where_she_is(blazepose, astronaut):
    (people,) = blazepose.detect([astronaut])
    assert len(people) == 1
    pose = people[0]
    assert pose.size == (512, 512)
    for name, (x, y) in LABELS.items():
        assert pose[name] is not None, name
        assert np.hypot(*(pose[name] - (x, y))) <= TOLERANCE[name], (name, pose[name])
    # the neck is between the shoulders; the legs are outside the photo, so missing
    assert pose["r_shoulder"][0] < pose["neck"][0] < pose["l_shoulder"][0]
    assert pose["r_ankle"] is None and pose["l_knee"] is None
    assert ((pose.confidence >= 0.5) | (pose.confidence == 0)).all()


def test_blazepose_full_body_against_ground_truth(blazepose):
    """examples/figure.png is rendered from known keypoints (examples/figure_keypoints.json)."""
    from pathlib import Path

    from posekit.images import load_image
    from posekit.pose.formats import read_openpose_json

    examples = Path(__file__).resolve().parents[1] / "examples"
    truth = read_openpose_json(examples / "figure_keypoints.json")[0]
    (people,) = blazepose.detect([load_image(examples / "figure.png")])
    found = people[0]
    assert found.size == truth.size and found.visible.all()
    errors = np.linalg.norm(found.keypoints[:, :2] - truth.keypoints[:, :2], axis=1)
    assert errors.max() < 0.12 * truth.torso_size(), errors.round(1)


def test_blazepose_mirrored_photo_swaps_sides(blazepose, astronaut):
    pose = detect_person(astronaut, blazepose)
    mirrored = detect_person(np.ascontiguousarray(astronaut[:, ::-1]), blazepose)
    flipped = pose.flip()  # what the mirrored photo's pose should be
    for name in LABELS:
        assert np.hypot(*(mirrored[name] - flipped[name])) <= TOLERANCE[name], name
    assert mirrored["r_shoulder"][0] < mirrored["l_shoulder"][0]  # facing us: her right is on our left


def test_blazepose_nobody_and_odd_sizes(blazepose, astronaut):
    blank = np.full((120, 200, 3), 180, np.uint8)
    small = np.ascontiguousarray(astronaut[::2, ::2])
    found = blazepose.detect([blank, small])
    assert found[0] == []
    assert found[1][0].size == (256, 256)
    assert np.hypot(*(found[1][0]["nose"] - np.array(LABELS["nose"]) / 2)) <= 8
    assert detect_person(blank, blazepose) is None
    gray = astronaut.mean(axis=2).astype(np.uint8)  # (H, W) arrays are taken as grayscale photos
    assert np.hypot(*(detect_person(gray, blazepose)["nose"] - LABELS["nose"])) <= TOLERANCE["nose"]


def test_blazepose_two_people_largest_first(blazepose, astronaut):
    import cv2

    canvas = np.full((512, 1024, 3), 128, np.uint8)
    canvas[:, :512] = astronaut
    canvas[128:, 600:984] = cv2.resize(astronaut, (384, 384))  # the same person at 3/4 size
    big, small = blazepose.detect([canvas])[0]
    assert big.size == small.size == (1024, 512)
    assert np.hypot(*(big["nose"] - LABELS["nose"])) <= TOLERANCE["nose"]
    expected = np.array(LABELS["nose"]) * 0.75 + (600, 128)
    assert np.hypot(*(small["nose"] - expected)) <= TOLERANCE["nose"]


def test_default_detector_is_shared(astronaut):
    pose = detect_person(astronaut)
    assert isinstance(pose, Pose) and pose["nose"] is not None
    import posekit.pose.detect as detect

    first = detect._default
    detect_person(astronaut)
    assert detect._default is first


@pytest.fixture(scope="module")
def openpose(openpose_weights):
    # resolution 128 keeps the CPU post-processing cheap; the network input is the same size
    detector = load_detector("openpose", model=str(openpose_weights), device="cpu", max_people=3, resolution=128)
    yield detector
    detector.close()


def test_openpose_batches_and_returns_pixel_poses(openpose, astronaut, blazepose, monkeypatch):
    """Both detectors in one process (the controlnet_aux import workaround must leave the real
    mediapipe in place), and batching must not mix images up: the batched network outputs, fed
    through controlnet_aux's Body, give the same peaks and people as Body running its own
    network on each image."""
    import mediapipe

    from posekit.pose.detect.openpose import OpenPoseDetector, import_controlnet_aux_openpose

    assert isinstance(openpose, OpenPoseDetector)
    assert sys.modules["mediapipe"] is mediapipe
    body_lib, _, _ = import_controlnet_aux_openpose()
    seen = []
    group = openpose._aux.group

    def recording(bgr, output):
        result = group(bgr, output)
        seen.append((bgr, result))
        return result

    monkeypatch.setattr(openpose._aux, "group", recording)
    # tall narrow crops: the network sees 184 px rows, so narrow images keep it quick on a CPU
    images = [np.ascontiguousarray(astronaut[:, 150:278]), np.ascontiguousarray(astronaut[:, 280:400])]
    found = openpose.detect(images)
    assert len(found) == 2 and len(seen) == 2
    for people, image in zip(found, images):
        assert len(people) <= 3
        for p in people:
            assert p.size == (image.shape[1], image.shape[0])
    reference = body_lib.Body.__new__(body_lib.Body)
    reference.model = openpose.net
    for bgr, (cand, subset) in seen:
        ref_cand, ref_subset = reference(bgr)
        assert len(cand) == len(ref_cand) > 0  # random weights still give heatmap peaks
        np.testing.assert_allclose(np.asarray(cand)[:, :3], np.asarray(ref_cand)[:, :3], atol=1e-3)
        assert np.array_equal(subset, ref_subset)
    assert detect_person(astronaut, blazepose)["nose"] is not None


def test_whole_controlnet_aux_imports_beside_mediapipe(blazepose, openpose, astronaut):
    """The known trap: `import controlnet_aux` raises AttributeError with mediapipe >= 0.10.30
    unless imported through our workaround; afterwards BlazePose must still work."""
    import mediapipe

    from posekit.pose.detect.openpose import import_controlnet_aux

    controlnet_aux = import_controlnet_aux()
    assert controlnet_aux.OpenposeDetector is not None
    assert controlnet_aux.open_pose.body.Body is sys.modules["controlnet_aux.open_pose.body"].Body
    assert sys.modules["mediapipe"] is mediapipe
    assert detect_person(astronaut, blazepose)["nose"] is not None


def test_openpose_state_dict_in_either_naming(tmp_path, openpose):
    import torch

    own = tmp_path / "own.pth"
    torch.save(openpose.net.state_dict(), own)
    w = "model0.conv1_1.weight"
    assert torch.equal(openpose._state_dict(own)[w], openpose.net.state_dict()[w].cpu())
    bad = tmp_path / "bad.pth"
    torch.save({"conv1_1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelNotFoundError, match="not an OpenPose body model"):
        openpose._state_dict(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelNotFoundError, match="junk.pth"):
        openpose._state_dict(junk)


def test_openpose_missing_weights_say_what_to_download(tmp_path, monkeypatch):
    from posekit.pose.detect.openpose import weights_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="body_pose_model.pth"):
        weights_path(None)  # lllyasviel/Annotators, offline and not cached
    # a path that is not there, or a folder without the weights: the flag is wrong (exit 2)
    with pytest.raises(UsageError, match="no such file"):
        weights_path(str(tmp_path / "nothing.pth"))
    with pytest.raises(UsageError, match="has no body_pose_model.pth"):
        weights_path(str(tmp_path))


def test_unknown_detector_is_a_usage_error():
    assert DETECTORS == ("blazepose", "openpose")
    with pytest.raises(UsageError, match="blazepose, openpose"):
        load_detector("yolo")


def test_every_detector_has_the_one_interface(blazepose, openpose):
    from posekit.pose.detect import Detector

    with load_detector("skeleton") as skeleton:
        for detector in (blazepose, openpose, skeleton):
            assert isinstance(detector, Detector)
            assert callable(detector.detect) and callable(detector.close)


def test_skeleton_detector_reads_rendered_skeletons_largest_first():
    from posekit.pose.detect.skeleton import parse_skeleton
    from posekit.pose.motions import motion
    from posekit.pose.render import draw_skeleton

    pose = motion("idle", 1, 512, 512)[0]
    big, small = pose.scale(0.7, about=(60, 256)), pose.scale(0.4, about=(460, 256))
    two = draw_skeleton([small, big])
    with load_detector("skeleton", max_people=2) as detector:
        found = detector.detect([draw_skeleton(pose), two, np.zeros((64, 64), np.uint8)])
    assert [len(people) for people in found] == [1, 2, 0]  # a gray image holds no skeleton
    for got, want in zip(found[1], (big, small)):
        assert np.abs(got.keypoints[want.visible, :2] - want.keypoints[want.visible, :2]).max() < 2
    (one,) = load_detector("skeleton").detect([two])[0]  # max_people 1: the largest
    assert one.allclose(parse_skeleton(two)[0])


def test_largest_first_drops_empty_poses():
    from posekit.pose.detect import largest, largest_first

    xy = np.full((18, 2), np.nan, np.float32)
    xy[:3] = [(10, 10), (30, 40), (20, 50)]
    wide = Pose.from_xy(xy, 100, 100)
    narrow = wide.scale(0.5, about=(20, 30))
    empty = Pose.empty(100, 100)
    assert largest_first([narrow, empty, wide]) == [wide, narrow]
    assert largest([empty]) is None and largest([narrow, wide]) is wide


def test_lazy_detector_is_built_on_first_detect(monkeypatch):
    import posekit.pose.detect as detect

    lazy = load_detector("skeleton", lazy=True)
    built = []
    real = detect.load_detector
    monkeypatch.setattr(detect, "load_detector", lambda *a, **k: built.append(a) or real(*a, **k))
    assert built == []
    blank = np.zeros((32, 32, 3), np.uint8)
    assert lazy.detect([blank]) == [[]] and lazy.detect([blank, blank]) == [[], []]
    assert len(built) == 1
    lazy.close()


def test_controlnet_aux_without_the_internals_is_one_line(monkeypatch):
    """The adapter checks what it uses of controlnet_aux and names the installed version."""
    from types import SimpleNamespace

    import posekit.pose.detect.openpose as op

    assert op.CONTROLNET_AUX_VERSIONS == ("0.0.9", "0.0.10")
    monkeypatch.setattr(op, "_controlnet_aux_version", lambda: "0.0.11")
    monkeypatch.setattr(op, "_openpose_modules", lambda: (SimpleNamespace(Body=object), None, SimpleNamespace(transfer=None)))
    with pytest.raises(ModelNotFoundError) as error:
        op.import_controlnet_aux_openpose()
    message = str(error.value)
    assert message.startswith("controlnet_aux 0.0.11: has no open_pose.model.bodypose_model, "
                              "open_pose.util.smart_resize_k, open_pose.util.padRightDownCorner;")
    assert message.endswith("pip install 'controlnet-aux>=0.0.9,<=0.0.10'") and "\n" not in message

    def moved():
        raise ImportError("No module named 'controlnet_aux.open_pose'\nsecond line")

    monkeypatch.setattr(op, "_controlnet_aux_version", lambda: "0.0.10")
    monkeypatch.setattr(op, "_openpose_modules", moved)
    with pytest.raises(ModelNotFoundError) as error:
        op.import_controlnet_aux_openpose()
    assert str(error.value) == ("controlnet_aux 0.0.10: cannot import its OpenPose modules (ImportError: No module "
                                "named 'controlnet_aux.open_pose'); posekit's openpose detector uses its internals "
                                "as of 0.0.9 to 0.0.10: reinstall it")
    monkeypatch.undo()
    body, model, util = op.import_controlnet_aux_openpose()  # the installed one has all it needs
    assert body.Body and model.bodypose_model and util.transfer

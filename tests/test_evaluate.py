"""`posekit evaluate`: pose fidelity of frames against their target poses, SSIM with references."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from posekit.pose.formats import read_openpose_json, write_openpose_json


@pytest.fixture(scope="module")
def frames_and_poses(tmp_path_factory):
    """Warped frames of the figure (the library, not the CLI) and their target poses on disk."""
    from posekit.pipeline import write_strips
    from posekit.sheet import Strip
    from posekit.images import load_image
    from posekit.methods.warp.method import WarpMethod
    from posekit.pose.motions import motion
    from posekit.pose.retarget import retarget

    image = load_image(REPO / "examples" / "figure.png")
    src = read_openpose_json(REPO / "examples" / "figure_keypoints.json")[0]
    targets = retarget([p.fitted(384, 512) for p in motion("walk", frames=4)], src)
    frames = WarpMethod(image, src)(targets)
    out = tmp_path_factory.mktemp("eval")
    write_strips(out, [Strip("walk", frames, targets)], fps=12, columns=None)
    return out


def test_evaluate_scores_faithful_frames_high(frames_and_poses, run_posekit):
    out = frames_and_poses
    proc = run_posekit("evaluate", out / "frames", "--poses", out / "poses", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["frame"] for r in report["frames"]] == [f"frame_{i:03d}.png" for i in range(4)]
    assert report["overall"]["pck"] >= 0.85
    assert "ssim" not in report["overall"]  # no --reference, no image similarity
    assert report["failed"] == []


def test_evaluate_catches_wrong_poses_and_images(frames_and_poses, run_posekit, tmp_path):
    """Targets moved sideways by a torso length score low; a different reference lowers SSIM; a frame
    without a target pose is reported (exit 1) while the others are still scored."""
    out = frames_and_poses
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in sorted((out / "poses").glob("*_keypoints.json")):
        pose = read_openpose_json(f)[0]
        write_openpose_json([pose.translate(pose.torso_size(), 0)], moved / f.name)
    ref = tmp_path / "ref"
    ref.mkdir()
    for f in sorted((out / "frames").glob("*.png")):
        Image.fromarray(np.asarray(Image.open(f))[:, ::-1]).save(ref / f.name)  # mirrored
    frames = tmp_path / "frames"
    shutil.copytree(out / "frames", frames)
    Image.open(frames / "frame_000.png").save(frames / "extra.png")

    proc = run_posekit("evaluate", frames, "--poses", moved, "--reference", ref, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["count"] == 4 and [f["frame"] for f in report["failed"]] == ["extra.png"]
    assert "extra.png" in proc.stderr
    assert report["overall"]["pck"] < 0.3
    assert report["overall"]["ssim"] < 0.9


def test_evaluate_table_on_stderr(frames_and_poses, run_posekit):
    out = frames_and_poses
    proc = run_posekit("evaluate", out / "frames", "--poses", out / "poses", "--alpha", "0.2")
    assert proc.returncode == 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0].split() == ["frame", "pck"] and lines[-2].startswith("overall")
    assert "PCK@0.2" in lines[-1]


def test_evaluate_usage_errors(run_posekit, tmp_path):
    proc = run_posekit("evaluate", tmp_path / "nope", "--poses", tmp_path)
    assert proc.returncode == 2 and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_with_a_folder_matching_no_frame_is_a_usage_error(frames_and_poses, run_posekit, tmp_path):
    """--poses (or --reference) naming a folder that has nothing for any frame is the wrong folder:
    one line naming the flag, exit 2, before any frame is read (not a warning per frame)."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.csv").write_text("x\n")
    frames, poses = frames_and_poses / "frames", frames_and_poses / "poses"
    for flags, named in ((("--poses", tmp_path), "--poses"), (("--poses", poses, "--reference", tmp_path), "--reference")):
        proc = run_posekit("evaluate", frames, *flags, "--json")
        assert proc.returncode == 2 and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"posekit: error: {named} {tmp_path}: "), proc.stderr
        assert "frame_000" in lines[0]


def test_evaluate_names_frames_of_another_size_and_counts_what_it_scored(frames_and_poses, run_posekit, tmp_path):
    """A frame whose size is not its pose's canvas is reported, not silently rescaled; a target with
    nothing inside the frame scores '-'; count, frames, failed and the table agree."""
    from posekit.evaluate import format_table

    out = frames_and_poses
    frames, poses = tmp_path / "frames", tmp_path / "poses"
    shutil.copytree(out / "frames", frames)
    shutil.copytree(out / "poses", poses)
    with Image.open(frames / "frame_001.png") as im:
        im.resize((192, 256)).save(frames / "frame_001.png")
    gone = read_openpose_json(poses / "frame_002_keypoints.json")[0]
    write_openpose_json([gone.translate(2000, 0)], poses / "frame_002_keypoints.json")  # all outside the frame

    proc = run_posekit("evaluate", frames, "--poses", poses, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["failed"] == [{"frame": "frame_001.png", "error": report["failed"][0]["error"]}]
    assert all(s in report["failed"][0]["error"] for s in ("frame_001.png", "192x256", "384x512"))
    assert "192x256" in proc.stderr and "Traceback" not in proc.stderr
    assert [(r["frame"], r["pck"] is None) for r in report["frames"]] == [
        ("frame_000.png", False), ("frame_002.png", True), ("frame_003.png", False)]
    assert report["count"] == 2
    scored = [r["pck"] for r in report["frames"] if r["pck"] is not None]
    assert report["overall"]["pck"] == pytest.approx(np.mean(scored))
    assert format_table(report).splitlines()[-1] == (
        "PCK@0.5 of the torso size over 2 frames (1 more without a measurable target pose: -); 1 could not be scored")


def test_similarity_prefers_the_true_image_of_the_target_pose(run_posekit, tmp_path):
    """Against ground truth: PATN's synthetic figures come in pairs (one person, two poses, the
    true image of each). Frames warped from A into B's pose are scored against the true B and
    against A (the same person and background, the wrong pose): SSIM and mask-SSIM must prefer B,
    and neither is 1 (nothing is compared with itself)."""
    from posekit.methods.patn.synthetic import synthetic_pair

    folders = {name: tmp_path / name for name in ("source", "truth", "wrong", "poses", "frames")}
    for folder in folders.values():
        folder.mkdir()
    for i in range(4):
        a, a_pose, b, b_pose = synthetic_pair(seed=0, index=i, width=176, height=256)
        name = f"{i:03d}"
        Image.fromarray(a).save(folders["source"] / f"{name}.png")
        Image.fromarray(a).save(folders["wrong"] / f"{name}.png")
        Image.fromarray(b).save(folders["truth"] / f"{name}.png")
        write_openpose_json([a_pose], folders["source"] / f"{name}_keypoints.json", size=a_pose.size)
        write_openpose_json([b_pose], folders["poses"] / f"{name}_keypoints.json", size=b_pose.size)
        proc = run_posekit("transfer", folders["source"] / f"{name}.png", "--method", "warp",
                           "--source-pose", folders["source"] / f"{name}_keypoints.json",
                           "--pose", folders["poses"] / f"{name}_keypoints.json", "--out", folders["frames"] / f"{name}.png")
        assert proc.returncode == 0, proc.stderr

    def overall(reference):
        proc = run_posekit("evaluate", folders["frames"], "--poses", folders["poses"], "--reference", reference, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["overall"]

    true, wrong = overall(folders["truth"]), overall(folders["wrong"])
    assert true["ssim"] > wrong["ssim"] + 0.05 and true["mask_ssim"] > wrong["mask_ssim"] + 0.01, (true, wrong)
    assert true["ssim"] < 0.99 and true["mask_ssim"] < 0.995, true


def test_the_person_nearest_the_target_pose_is_scored():
    """A photo of two people animated: the animated one follows the target poses, the other stands
    still and may be the larger. The frame is scored by the one the target pose places."""
    from posekit.evaluate import pose_fidelity
    from posekit.pose.detect import Detector
    from posekit.pose.motions import motion

    target = motion("walk", 4, 400, 300)[1]
    bystander = motion("idle", 1, 400, 300)[0].scale(1.3, about=(200, 300)).translate(150, 0)

    class Two(Detector):  # as a detector gives them: largest first
        def detect(self, images):
            return [[bystander, target.translate(2, 1)] for _ in images]

    frame = np.zeros((300, 400, 3), np.uint8)
    assert pose_fidelity([frame], [target], detector=Two()) == [1.0]

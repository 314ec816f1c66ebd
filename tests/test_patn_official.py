"""`transfer --method gan` with the authors' DeepFashion generator reproduces their own forward pass
on their own keypoints: single-pixel heatmaps at exactly the annotated pixels (a keypoint moved by
a fraction of a pixel lands on another pixel and changes the output)."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from test_patn_model import official_state, reference_forward

# two rows of the authors' fasion-resize-annotation-test.csv layout: name: [18 ys]: [18 xs], -1 missing
ANNOTATIONS = """name:keypoints_y:keypoints_x
src.jpg: [31, 62, 61, 108, 150, 63, 110, 152, 148, 200, 247, 150, 203, 249, 26, 26, 31, 32]: [89, 88, 66, 61, 60, 111, 117, 121, 73, 71, 70, 104, 106, 108, 83, 95, 75, 102]
tgt.jpg: [29, 60, 60, 97, 80, 61, 104, 139, 146, 198, 246, 147, 199, 245, 24, 25, -1, 29]: [92, 90, 68, 50, 37, 113, 121, 128, 76, 79, 81, 106, 102, 99, 86, 97, -1, 105]
"""


def authors_keypoints() -> dict[str, tuple[list[int], list[int]]]:
    rows = {}
    for line in ANNOTATIONS.splitlines()[1:]:
        name, ys, xs = line.split(":")
        rows[name] = json.loads(ys), json.loads(xs)
    return rows


def openpose_file(path, ys, xs):
    """The keypoints as OpenPose writes them: pixel x, y, confidence; no canvas size."""
    flat = []
    for y, x in zip(ys, xs):
        flat += [0, 0, 0] if -1 in (x, y) else [x, y, 1]
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": flat}]}))
    return path


def pixel_maps(ys, xs) -> torch.Tensor:
    """The DeepFashion heatmaps the published weights saw: a single 1 at each keypoint."""
    maps = torch.zeros(18, 256, 176)
    for i, (y, x) in enumerate(zip(ys, xs)):
        if -1 not in (x, y):
            maps[i, y, x] = 1
    return maps


def test_deepfashion_weights_reproduce_the_authors_forward_pass(run_posekit, tmp_path, astronaut):
    state = official_state(ngf=8, blocks=2, norm="instance")  # the official layout, stray stats included
    torch.save(state, tmp_path / "latest_net_netG.pth")
    source = np.ascontiguousarray(astronaut[:256, 160:336])  # 256x176, the DeepFashion size
    Image.fromarray(source).save(tmp_path / "src.png")
    rows = authors_keypoints()
    openpose_file(tmp_path / "source_pose.json", *rows["src.jpg"])
    openpose_file(tmp_path / "target_pose.json", *rows["tgt.jpg"])

    r = run_posekit("transfer", tmp_path / "src.png", "--source-pose", tmp_path / "source_pose.json",
                    "--pose", tmp_path / "target_pose.json", "--method", "gan", "--dataset", "deepfashion",
                    "--checkpoint", tmp_path / "latest_net_netG.pth", "--device", "cpu", "--out", tmp_path / "out.png",
                    env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    ours = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")).astype(int)

    image = torch.from_numpy(source).permute(2, 0, 1).float()[None] / 127.5 - 1
    pose_code = torch.cat([pixel_maps(*rows["src.jpg"]), pixel_maps(*rows["tgt.jpg"])])[None]
    state = {k: v for k, v in state.items() if "running" not in k}
    with torch.no_grad():
        theirs = reference_forward(state, 2, "instance", image, pose_code)[0]
    theirs = ((theirs.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(int)
    assert ours.shape == (256, 176, 3)
    assert np.abs(ours - theirs).max() <= 1  # float rounding only

"""How well a driving clip fits the subject, with and without retargeting, and what it costs.

For each subject (the full-body figure of examples/, the same figure cut at the waist, and the
astronaut photo's detected pose) and each built-in motion, the clip is put on the subject three
ways, side by side:

- fitted: the clip letterboxed onto the photo's canvas (what you get with no retargeting);
- similar: one uniform scale (posekit's overall scale) and the neck moved onto the subject's;
- retarget: posekit.pose.retarget (per-bone ratios, feet on the ground line, neck anchoring).

Figures (lower is better):
- limb err: mean |output limb length at full extension (90th percentile over the clip) -
  subject's limb length| / subject's length, over the body limbs the subject shows;
- ground px: mean |lowest ankle - subject's ankle line| over frames where the clip's feet are
  down (full-body subject only);
- neck px: distance from the subject's neck to the nearest output neck (the clip's neutral
  frame should sit where the person is).
Those three are what retargeting sets out to do, so they show the baselines' errors more than
they test retargeting. An independent check follows: the *same* motion performed by bodies of
other proportions (the 3-D body of posekit.pose.motions with longer legs, a broad short build,
child proportions) is the ground truth. The subject is that body standing, seen from the front
(a photo); the clip is the standard body's motion; the figure is the mean keypoint error
against the true clip, in % of the body's height.
Then timings: motion generation and retargeting (ms per frame), reading sources (ms per frame).

    python benchmarks/bench_motions.py            # add --no-photo to skip the astronaut detection
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posekit.pose import INDEX, LIMBS, Pose  # noqa: E402
from posekit.pose.formats import read_openpose_json, write_openpose_json  # noqa: E402
from posekit.pose.motions import MOTIONS, motion  # noqa: E402
from posekit.pose.retarget import overall_scale, retarget  # noqa: E402

ANKLES = [INDEX["r_ankle"], INDEX["l_ankle"]]
BODY_LIMBS = [k for k, (a, _) in enumerate(LIMBS) if a not in (0, 14, 15)]


def subjects(with_photo: bool):
    figure = read_openpose_json(REPO / "examples" / "figure_keypoints.json")[0]
    yield "figure (full body)", figure
    kp = figure.keypoints.copy()
    kp[kp[:, 1] >= 250] = 0.0
    yield "figure cut at waist", Pose(kp, 384, 250)
    if with_photo:
        from posekit.images import load_image
        from posekit.pose.sources import source_pose_of

        photo = REPO / "examples" / "astronaut.png"
        yield "astronaut (detected)", source_pose_of(load_image(photo), photo)


def similar(clip: list[Pose], subject: Pose) -> list[Pose]:
    """Baseline: one uniform scale about the clip's mean neck, neck onto the subject's."""
    xy = np.stack([p.xy for p in clip])
    s = overall_scale(xy, subject.xy)
    centre = np.nanmean(xy[:, INDEX["neck"]], axis=0)
    return [Pose.from_xy((p.xy - centre) * s + subject["neck"], *subject.size, confidence=p.confidence)
            for p in clip]


def figures(out: list[Pose], clip: list[Pose], subject: Pose) -> tuple[float, float, float]:
    lengths = np.stack([p.limb_lengths() for p in out])
    want = subject.limb_lengths()
    ok = [k for k in BODY_LIMBS if np.isfinite(want[k]) and np.isfinite(lengths[:, k]).any()]
    limb = float(np.mean([abs(np.nanpercentile(lengths[:, k], 90) - want[k]) / want[k] for k in ok]))
    ground = float("nan")
    if subject["r_ankle"] is not None:
        src = np.stack([p.keypoints for p in clip])[:, ANKLES, 1].max(axis=1)
        down = src >= src.max() - 0.5
        feet = np.stack([p.keypoints for p in out])[:, ANKLES, 1].max(axis=1)
        ground = float(np.abs(feet[down] - subject.keypoints[ANKLES, 1].max()).mean())
    necks = np.stack([p.keypoints[INDEX["neck"], :2] for p in out])
    neck = float(np.linalg.norm(necks - subject["neck"], axis=1).min())
    return limb, ground, neck


BODIES = {  # proportions relative to the standard body (body.py)
    "long legs": dict(THIGH=1.15, SHIN=1.15, TORSO=0.9, UPPER_ARM=1.0, FOREARM=1.0, SHOULDER_HALF_WIDTH=0.95),
    "short, broad": dict(THIGH=0.85, SHIN=0.85, TORSO=1.0, UPPER_ARM=0.9, FOREARM=0.9, SHOULDER_HALF_WIDTH=1.25),
    "child": dict(THIGH=0.75, SHIN=0.75, TORSO=0.8, UPPER_ARM=0.75, FOREARM=0.75, SHOULDER_HALF_WIDTH=0.8),
}


def true_clip(name: str, n: int, yaw: float, scale: dict | None = None, standing: bool = False) -> list[Pose]:
    """A motion performed by a body with other proportions, drawn at a fixed pixel scale
    (400 px per standard body height, ground at y = 480 on a 512 x 512 canvas)."""
    from posekit.pose.motions import body, clips

    saved = {k: getattr(body, k) for k in (scale or {})}
    try:
        for k, f in (scale or {}).items():
            setattr(body, k, saved[k] * f)
        generate = clips.idle if standing else getattr(clips, name)
        out = []
        for i in range(n):
            stance = generate(i / n)
            stance.head_yaw -= yaw  # the face turned to the camera, as motion() does
            xy, _ = body.project(body.skeleton(stance), yaw)
            xy = xy[:18] * 400.0 + np.float32([256.0, 480.0 + 400.0 * body.ANKLE_HEIGHT])
            out.append(Pose.from_xy(xy, 512, 512))
        return out
    finally:
        for k, v in saved.items():
            setattr(body, k, v)


def ground_truth_table():
    print("\n# error against the same motion done by another body (% of body height, mean over keypoints)")
    print(f"{'body':<14} {'motion':<6} | {'fitted':>7} {'similar':>8} {'retarget':>9}")
    for label, scale in BODIES.items():
        subject = true_clip("idle", 1, 0.0, scale, standing=True)[0]
        height = subject.keypoints[ANKLES, 1].max() - subject["nose"][1]
        for name in ("walk", "run", "jump", "wave"):
            yaw = 30.0 if name in ("walk", "run") else 0.0
            clip, truth = true_clip(name, 16, yaw), true_clip(name, 16, yaw, scale)
            row = []
            for out in (clip, similar(clip, subject), retarget(clip, subject)):
                err = np.stack([np.linalg.norm(o.xy - t.xy, axis=1) for o, t in zip(out, truth)])
                row.append(np.nanmean(err) / height)
            print(f"{label:<14} {name:<6} | {row[0]:7.1%} {row[1]:8.1%} {row[2]:9.1%}")


def timed(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-photo", action="store_true", help="skip the astronaut (pose detection)")
    args = parser.parse_args()
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"{'subject':<22} {'motion':<6} | {'limb err':^26} | {'ground px':^23} | {'neck px':^23}")
    print(f"{'':<22} {'':<6} | {'fitted  similar  retarget':^26} | {'fitted similar retarget':^23} | {'fitted similar retarget':^23}")
    for label, subject in subjects(not args.no_photo):
        for name in MOTIONS:
            clip = motion(name, 16)
            ways = {"fitted": [p.fitted(*subject.size) for p in clip], "similar": similar(clip, subject),
                    "retarget": retarget(clip, subject)}
            rows = [figures(out, [p.fitted(*subject.size) for p in clip], subject) for out in ways.values()]
            limb = "  ".join(f"{r[0]:7.1%}" for r in rows)
            ground = " ".join(f"{r[1]:7.1f}" for r in rows)
            neck = " ".join(f"{r[2]:7.1f}" for r in rows)
            print(f"{label:<22} {name:<6} | {limb} | {ground} | {neck}")

    ground_truth_table()
    figure = read_openpose_json(REPO / "examples" / "figure_keypoints.json")[0]
    print("\n# timings (best of 5)")
    for name in MOTIONS:
        gen = timed(lambda: motion(name, 64))
        clip = motion(name, 64)
        ret = timed(lambda: retarget(clip, figure))
        print(f"{name:<6} generate {1000 * gen / 64:6.2f} ms/frame   retarget {1000 * ret / 64:6.2f} ms/frame")
    with tempfile.TemporaryDirectory() as tmp:
        from posekit.images import save_image
        from posekit.pose.render import draw_skeleton
        from posekit.pose.sources import load_poses

        clip = motion("walk", 16)
        for i, p in enumerate(clip):
            write_openpose_json([p], Path(tmp) / "json" / f"f{i}_keypoints.json")
            save_image(draw_skeleton(p), Path(tmp) / "png" / f"f{i}_pose.png")
        for kind in ("json", "png"):
            t = timed(lambda: load_poses(str(Path(tmp) / kind)), repeat=3)
            print(f"load_poses folder of 16 {kind:<4} files: {1000 * t / 16:6.2f} ms/frame (512x512)")


if __name__ == "__main__":
    main()

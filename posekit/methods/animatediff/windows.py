"""Which frames the motion module sees together, and whether a clip is a cycle.

AnimateDiff's motion module was trained on 16-frame clips and attends over at most
`motion_max_seq_length` frames (32 for v1-5-3), so a longer clip is denoised in overlapping
windows of `context` frames whose predictions are averaged where they overlap. A cyclic clip
(walk, run, idle) also gets windows that run across the seam, frame n-1 then frame 0, so its
last frame flows into its first exactly as any two neighbours do:

    context_windows(20, 16, 4)             -> [[0..15], [4..19]]
    context_windows(20, 16, 4, loop=True)  -> [[0..15], [12..19, 0..7]]
    context_windows(8, 16, 4, loop=True)   -> [[0..7], [4..7, 0..3]]
"""

from __future__ import annotations

import numpy as np


def context_windows(frames: int, context: int, overlap: int, loop: bool = False) -> list[list[int]]:
    """Frame indices of each window, in the order the motion module sees them (modulo `frames`
    for a loop). Every frame is in at least one window; neighbouring windows share `overlap`
    frames; a loop's last window wraps around to the first frames."""
    if frames < 1:
        return []
    size = min(context, frames)
    stride = max(1, size - overlap)
    if not loop:
        if frames <= context:
            return [list(range(frames))]
        starts = list(range(0, frames - size, stride)) + [frames - size]
        return [list(range(s, s + size)) for s in starts]
    if frames <= 2:  # nothing to wrap: a 2-frame cycle's seam is its only step
        return [list(range(frames))]
    if frames <= context:  # the whole cycle fits: a second window, half a cycle on, spans the seam
        stride = max(stride, -(-frames // 2))
    return [[(s + j) % frames for j in range(size)] for s in range(0, frames, stride)]


def pose_steps(poses) -> np.ndarray:
    """(n,) mean keypoint displacement from each pose to the next, the last to the first
    (keypoints visible in both; 0 when none are)."""
    xy = np.stack([p.xy for p in poses])  # (n, 18, 2), NaN where missing
    moved = np.linalg.norm(np.roll(xy, -1, axis=0) - xy, axis=-1)  # (n, 18)
    seen = ~np.isnan(moved)
    return np.array([m[s].mean() if s.any() else 0.0 for m, s in zip(moved, seen)])


def closes_loop(poses, tolerance: float = 2.0) -> bool:
    """Whether a clip is a cycle: its last pose steps into its first no further than `tolerance`
    times a typical (median) step between neighbours. A walk made by posekit.pose.motions does
    (its frame n would be frame 0); a jump or most filmed clips do not."""
    if len(poses) < 3:
        return False
    steps = pose_steps(poses)
    typical = float(np.median(steps[:-1]))
    return bool(steps[-1] <= tolerance * typical + 1e-3)  # + 1e-3 px: a still clip is a cycle

"""The pose video Wan2.2-Animate reads, drawn from posekit's COCO-18 poses in Wan's own style.

Wan-Animate's preprocessing (Wan2.2 repository, wan/modules/animate/preprocess/:
process_pipepline.py calls human_visualization.draw_aapose_by_meta_new, which calls
draw_aapose_new with stickwidth_type 'v2' and threshold 0.5) draws each frame on a black canvas
the size of the reference image:

- a 20-point body: the 18 OpenPose points in OpenPose order (nose, neck, right shoulder/elbow/
  wrist, left shoulder/elbow/wrist, right hip/knee/ankle, left hip/knee/ankle, right/left eye,
  right/left ear), plus left toe and right toe (each the mean of the big and small toe of the
  COCO-WholeBody detection);
- 19 limbs: OpenPose's 17 in OpenPose order, then left ankle-toe and right ankle-toe; limb i is a
  filled ellipse (cv2.ellipse2Poly with 1-degree steps: centre the integer mean of its ends, half
  length int(length / 2), half width `stickwidth`, angle int(degrees(atan2(dy, dx)))) in colour i
  at 0.6 (int(c * 0.6) per channel);
- then every point as a filled circle of radius `stickwidth` in colour i (full strength);
- `stickwidth` = max(int(min(H, W) / 200) - 1, 1): 1 px at 480p, 2 px at 720p;
- then both hands (21 points each, 20 bones in HSV rainbow colours, blue joints), with half that
  width; no face landmarks (the 68 face points only choose the face crop, see face.py).

posekit's Pose holds exactly the first 18 of those points in the same order, so the mapping is
the identity and the colours and limb order are Wan's. What posekit does not have is dropped:
the two toe points (and their two limbs) and both hands. Wan leaves out a point whose detector
score is below 0.5, and every limb with such an end; posekit's confidences are detector scores
too (BlazePose, OpenPose, a driving video's), so the same rule applies to them: a point under
0.5 is not drawn (the built-in motions' points have confidence 1). Colours are RGB, as Wan draws
(its canvas is the RGB reference).
"""

from __future__ import annotations


import numpy as np

from posekit.pose.pose import LIMBS, Pose

# Wan's 20 colours (RGB): point i and limb i share colour i; the last two belong to the toes.
WAN_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    (200, 200, 0), (100, 100, 0),
)
# Wan's limb order is OpenPose's (posekit's LIMBS) followed by the two ankle-toe limbs (dropped).
WAN_LIMBS = LIMBS
THRESHOLD = 0.5  # Wan draws a point, and a limb between two, only at this score or above
DROPPED = ("l_toe", "r_toe", "l_ankle-l_toe limb", "r_ankle-r_toe limb", "left hand (21 points)",
           "right hand (21 points)")


def stick_width(width: int, height: int) -> int:
    """Wan's 'v2' stick width, also the joint radius: max(int(min(H, W) / 200) - 1, 1)."""
    return max(int(min(width, height) / 200) - 1, 1)


def draw_wan_pose(pose: Pose, width: int | None = None, height: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB: one frame of Wan-Animate's pose video for `pose` (positions in pixels
    of that canvas; the canvas is the pose's own unless width/height are given). Wan's body is
    ControlNet's OpenPose drawing (same colours, limbs at 0.6, joints on top) with its own, thinner
    stick width, so posekit's ControlNet renderer draws it, after Wan's threshold: a point of
    confidence under 0.5 is left out, with its limbs."""
    from posekit.pose.render import draw_skeleton

    width = pose.width if width is None else int(width)
    height = pose.height if height is None else int(height)
    sure = np.where(pose.keypoints[:, 2:] >= THRESHOLD, pose.keypoints, 0.0)
    return draw_skeleton(Pose(sure, pose.width, pose.height), width, height, size=stick_width(width, height))

"""The Pose layer: the Pose value, file formats, rendering, detectors, motions."""

from posekit.pose.pose import FLIP_INDEX, INDEX, KEYPOINT_NAMES, LIMBS, NUM_KEYPOINTS, Pose

__all__ = ["Pose", "KEYPOINT_NAMES", "LIMBS", "INDEX", "FLIP_INDEX", "NUM_KEYPOINTS"]

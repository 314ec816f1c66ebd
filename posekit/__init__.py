"""posekit: one photo of a person -> an animation along a sequence of poses."""

__version__ = "0.1.0"

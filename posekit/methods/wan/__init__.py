"""Pose transfer with Wan2.2-Animate-14B (diffusers' WanAnimatePipeline): method.py (WanOptions,
WanMethod), pose_video.py (the pose video in Wan's own drawing style), face.py (the face crops)."""

"""Pose transfer with AnimateDiff: SD 1.5 + a motion module + ControlNet OpenPose, one clip at a time.

method.py holds the options, the loading and the sampling loop over context windows;
windows.py which frames the motion module sees together (wrapping around a cyclic clip).
"""

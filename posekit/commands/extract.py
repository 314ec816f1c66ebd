"""Placeholder until this area lands (see the open issue); replaced by the real commands."""

from posekit.errors import PosekitError



def extract_pose():
    """Not available yet."""
    raise PosekitError("extract-pose is not available yet")

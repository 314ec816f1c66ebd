"""Placeholder until this area lands (see the open issue); replaced by the real commands."""

from posekit.errors import PosekitError



def dreambooth():
    """Not available yet."""
    raise PosekitError("dreambooth is not available yet")

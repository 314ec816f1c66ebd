"""Placeholder until this area lands (see the open issue); replaced by the real commands."""

from posekit.errors import PosekitError



def animate():
    """Not available yet."""
    raise PosekitError("animate is not available yet")


def evaluate():
    """Not available yet."""
    raise PosekitError("evaluate is not available yet")

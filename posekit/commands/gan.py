"""Placeholder until this area lands (see the open issue); replaced by the real commands."""

from posekit.errors import PosekitError



def prepare_dataset():
    """Not available yet."""
    raise PosekitError("prepare-dataset is not available yet")


def train_gan():
    """Not available yet."""
    raise PosekitError("train-gan is not available yet")

"""Shared fixtures: real photos, the installed `posekit` command, temp folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut (public domain): a real 512x512 upper-body photo, RGB uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_path(tmp_path_factory, astronaut) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


def posekit_exe() -> str:
    exe = shutil.which("posekit", path=str(Path(sys.executable).parent)) or shutil.which("posekit")
    assert exe, "the posekit command is not installed (pip install -e .)"
    return exe


@pytest.fixture
def run_posekit():
    """Run the installed `posekit` command; returns CompletedProcess (text stdout/stderr)."""

    # The timeout only guards against a hung process: far above what any command here needs on a
    # busy machine (tests never measure time).
    def run(*args, input=None, cwd=None, timeout=1800, env=None):
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        return subprocess.run([posekit_exe(), *map(str, args)], capture_output=True, text=True,
                              input=input, cwd=cwd, timeout=timeout, env=full_env)

    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core CPU extra threads only spin."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    """(pipeline folder, ControlNet folder) of a tiny random SD 1.x, built once per test session.
    Tests only read them (training writes to its own --out)."""
    from tiny_sd import make_tiny_controlnet, make_tiny_sd

    root = tmp_path_factory.mktemp("tiny_sd")
    return make_tiny_sd(root / "sd"), make_tiny_controlnet(root / "cn")

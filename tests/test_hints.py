"""Error hints and docs name commands that exist (huggingface_hub's CLI is `hf`; `huggingface-cli`
is gone from current releases)."""

from __future__ import annotations

import pytest

from conftest import REPO
from posekit.errors import ModelNotFoundError


def test_openpose_weights_hint_is_a_working_hf_command():
    from posekit.pose.detect.openpose import WEIGHTS_NAME, weights_path

    with pytest.raises(ModelNotFoundError) as e:  # conftest keeps the hub offline
        weights_path("posekit-tests/no-such-annotators")
    assert f"hf download posekit-tests/no-such-annotators {WEIGHTS_NAME} --local-dir DIR" in str(e.value)
    assert "--model DIR" in str(e.value)


def test_no_hint_or_guide_names_huggingface_cli():
    files = [*(REPO / "posekit").rglob("*.py"), *(REPO / "docs").glob("*.md"), REPO / "README.md"]
    assert [str(f) for f in files if "huggingface-cli" in f.read_text()] == []

"""The CLI shell: version, help, and click's parsing errors as one line with exit status 2."""

import pytest

from posekit import __version__


def test_version_and_help(run_posekit):
    proc = run_posekit("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"posekit {__version__}"
    proc = run_posekit("--help")
    assert proc.returncode == 0
    for command in ("extract-pose", "poses", "animate", "transfer", "evaluate", "prepare-dataset",
                    "train-gan", "evaluate-gan", "dreambooth"):
        assert command in proc.stdout


@pytest.mark.parametrize("args, says", [
    (["animate"], "Missing argument 'photo'"),
    (["animate", "x.png"], "Missing option '--poses'"),
    (["poses", "show", "walk", "--frames", "0", "--out", "p"], "--frames"),
    (["train-gan", "--iters", "many", "--out", "r"], "--iters"),
    (["no-such-command"], "No such command"),
])
def test_usage_errors_are_one_line_with_status_2(run_posekit, tmp_path, args, says):
    proc = run_posekit(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("posekit: error: ") and says in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written

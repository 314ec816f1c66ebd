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


def test_under_a_multi_process_launch_only_the_first_process_prints_a_shared_error(run_posekit, tmp_path):
    """`accelerate launch` runs posekit once per process: a flag or model mistake is the same in
    each, so only RANK 0 prints it (every process still exits with its status); a failure that may
    be one process's own (an unreadable photo) is printed wherever it happens."""
    usage = ("poses", "show", "walk", "--frames", "0", "--out", "p")
    missing = ("animate", tmp_path / "nobody.png", "--poses", "walk", "--out", tmp_path / "o")
    for rank, printed in (("0", True), ("1", False)):
        env = {"WORLD_SIZE": "2", "RANK": rank}
        for args, code in ((usage, 2), (("no-such-command",), 2)):
            proc = run_posekit(*args, cwd=tmp_path, env=env)
            assert proc.returncode == code and bool(proc.stderr) == printed, proc.stderr
        proc = run_posekit(*missing, env=env)
        assert proc.returncode in (1, 2) and "nobody.png" in proc.stderr  # not known to be shared: always said

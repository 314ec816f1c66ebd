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
        env = {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}
        for args, code in ((usage, 2), (("no-such-command",), 2)):
            proc = run_posekit(*args, cwd=tmp_path, env=env)
            assert proc.returncode == code and bool(proc.stderr) == printed, proc.stderr
        proc = run_posekit(*missing, env=env)
        assert proc.returncode in (1, 2) and "nobody.png" in proc.stderr  # not known to be shared: always said


def test_progress_without_a_terminal_is_a_plain_line_every_so_often(capsys):
    """With stderr in a log file (CI, `2>log`) a long task still says where it is: a line every
    `every` seconds with its count, rate and time left, and a last one when it ends; a task
    that ends sooner says nothing."""
    from posekit.console import LineProgress, progress

    assert isinstance(progress(), LineProgress)  # pytest's stderr is not a terminal
    now = [0.0]
    with LineProgress(every=30, clock=lambda: now[0]) as bar:
        quick = bar.add_task("quick", total=3, status="")
        bar.advance(quick, 3)
        task = bar.add_task("train-gan", total=1000, completed=100, status="")  # resumed at 100
        for i in range(101, 401):
            now[0] += 0.5
            bar.update(task, completed=i, status=f"loss {1 / i:.3f}")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "train-gan: 160/1000 (16%) loss 0.006, 2/s, about 7 min left"  # after 30 s
    assert len(lines) == 5 and lines[-1].startswith("train-gan: 400/1000 (40%)")  # every 30 s, then the end
    assert not any(line.startswith("quick") for line in lines)


def test_ctrl_c_says_interrupted_exits_130_and_leaves_no_output(tmp_path):
    import os
    import signal
    import subprocess
    from pathlib import Path

    from conftest import posekit_exe

    figure = Path(__file__).resolve().parents[1] / "examples" / "figure.png"
    out = tmp_path / "out"
    proc = subprocess.Popen([posekit_exe(), "animate", str(figure), "--poses", "walk", "--frames", "8", "--out", str(out)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    first = proc.stderr.readline()  # the first progress line: the command is under way
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(60) == 130, first + rest
    assert rest.splitlines()[-1] == "posekit: error: interrupted" and "Traceback" not in rest
    assert not out.exists()

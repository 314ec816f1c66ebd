"""The CLI shell: version, help, and click's parsing errors as one line with exit status 2."""

import pytest

from conftest import REPO
from posekit import __version__


def test_version_and_help(run_posekit):
    proc = run_posekit("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"posekit {__version__}"
    proc = run_posekit("--help")
    assert proc.returncode == 0
    for command in ("extract-pose", "poses", "animate", "transfer", "evaluate", "prepare-dataset",
                    "train-gan", "evaluate-gan", "dreambooth"):
        assert command in proc.stdout


def _command_paths(command, path=()):
    """Every command and subcommand of the click app, found by walking it (not a list kept here)."""
    yield path
    if hasattr(command, "commands"):  # a group (Typer builds on its own copy of click: no isinstance)
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*path, name))


def test_every_help_names_values_not_typer_types():
    """No --help of any posekit command or subcommand shows Typer's type labels (<str>, <path>,
    <list[str]>, <int range>, ...): every value has a name (DIR, N, WxH, POSES, PHOTO...)."""
    import re

    import typer.main
    from typer.testing import CliRunner

    from posekit.cli import app

    root = typer.main.get_command(app)
    paths = list(_command_paths(root))
    assert ("animate",) in paths and ("poses", "show") in paths and len(paths) > 10
    labels = re.compile(r"<(?:str|int|float|bool|path|file|dir|directory|text|uuid|datetime|choice|list\[|tuple|"
                        r"[a-z]+ range|[a-z]+\|)[^>]*>")
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], terminal_width=80)
        assert result.exit_code == 0, (path, result.output)
        assert not labels.search(result.output), (path, labels.findall(result.output))
        usage = result.output.splitlines()[0]  # arguments by name, not Typer's {PHOTO}
        assert usage.startswith("Usage: ") and "{" not in usage, usage
        command = root
        for name in path:
            command = command.commands[name]
        for param in command.params:
            if param.param_type_name == "argument" or param.param_type_name == "option" and not param.is_flag:
                assert param.metavar and not param.metavar.startswith("<"), (path, param.name)
                if not param.hidden:
                    assert param.metavar in result.output, (path, param.metavar)


def test_help_calls_each_argument_by_its_usage_name_and_lists_only_working_flags():
    """The help text of a command names its argument as the usage line does (`transfer PHOTO`:
    "Move the person in PHOTO", never the parameter's own name SOURCE); and `poses show`, whose
    only detector runs on the CPU, has no --device that would do nothing."""
    import re

    import typer.main
    from typer.testing import CliRunner

    from posekit.cli import app

    root = typer.main.get_command(app)
    for path in _command_paths(root):
        command = root
        for name in path:
            command = command.commands[name]
        help_text = command.help or ""
        for param in command.params:
            if param.param_type_name == "argument" and param.metavar and param.metavar != param.name.upper():
                assert not re.search(rf"\b{param.name.upper()}\b", help_text), (path, param.name, param.metavar)
    transfer = CliRunner().invoke(app, ["transfer", "--help"], terminal_width=100).output
    assert "transfer [OPTIONS] PHOTO" in transfer and "Move the person in PHOTO" in transfer
    show = CliRunner().invoke(app, ["poses", "show", "--help"], terminal_width=100).output
    assert "--onto" in show and "--device" not in show


@pytest.mark.parametrize("args, says", [
    (["animate"], "Missing argument 'PHOTO'"),  # as --help and the usage line name it
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


def test_a_progress_bar_on_a_terminal_escapes_file_names(monkeypatch):
    """A bar's name holds a file name (detecting poses in <video>): a newline or an escape
    sequence in it is shown escaped, and bytes that are not UTF-8 as \\xff, as in every message
    (written raw, a name could move the cursor or fail to encode and end the command)."""
    import io

    from rich.console import Console

    from posekit import console

    screen = io.StringIO()
    monkeypatch.setattr(console, "err", Console(file=screen, force_terminal=True, width=200, color_system=None))
    with console.progress(transient=False) as bar:
        bar.add_task("detecting poses in a\nb\x1b[2J\udcff.mp4", total=2, status="")
    shown = screen.getvalue()
    assert "a\\nb\\x1b[2J\\xff.mp4" in shown and "\x1b[2J" not in shown


def test_ctrl_c_says_interrupted_exits_130_and_leaves_no_output(tmp_path):
    import os
    import signal
    import subprocess
    from pathlib import Path

    from conftest import posekit_exe

    figure = Path(__file__).resolve().parents[1] / "examples" / "figure.png"
    out = tmp_path / "out"
    # as from a terminal: Ctrl-C not ignored (a runner started in the background of a script
    # without job control hands its children an ignored SIGINT, which a program keeps)
    proc = subprocess.Popen([posekit_exe(), "animate", str(figure), "--poses", "walk", "--frames", "8", "--out", str(out)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()  # the first progress line: the command is under way
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(60) == 130, first + rest
    assert rest.splitlines()[-1] == "posekit: error: interrupted" and "Traceback" not in rest
    assert not out.exists()


@pytest.mark.parametrize("command", ["transfer", "animate", "poses show", "extract-pose"])
def test_sigterm_ends_every_command_as_ctrl_c_does(tmp_path, command):
    """kill (SIGTERM) during a write, in any command: exit 143, nothing printed about it, and
    neither the temporary file of the write under way nor a staged output folder is left."""
    import subprocess
    import sys

    figure = REPO / "examples" / "figure.png"
    out = tmp_path / "out"
    argv = {"transfer": ["transfer", figure, "-p", REPO / "examples" / "figure_keypoints.json", "-o", out / "t.png"],
            "animate": ["animate", figure, "-p", "walk", "-n", "2", "-o", out, "--no-evaluate"],
            "poses show": ["poses", "show", "walk", "-n", "2", "-o", out],
            "extract-pose": ["extract-pose", figure, "-o", out]}[command]
    script = (  # the first image saved sends the signal, then the write goes on as if slow
        "import os, signal, sys, time, PIL.Image\n"
        "save = PIL.Image.Image.save\n"
        "def slow(self, *a, **k):\n"
        "    save(self, *a, **k); os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)\n"
        "PIL.Image.Image.save = slow\n"
        "sys.argv = ['posekit', *sys.argv[1:]]\n"
        "from posekit.cli import main\n"
        "main()\n")
    proc = subprocess.run([sys.executable, "-c", script, *map(str, argv)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 143, proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr
    left = [p.relative_to(out) for p in out.rglob("*")] if out.exists() else []
    assert not [p for p in left if any(part.startswith(".posekit-") and part != ".posekit-written" or ".tmp" in part
                                       for part in p.parts)], left


def _one_pose(tmp_path, name: str):
    """An OpenPose JSON of one target pose on the example figure's canvas."""
    from posekit.pose.formats import write_openpose_json
    from posekit.pose.motions import motion

    path = tmp_path / name
    write_openpose_json([motion("walk", 4, 384, 512)[int(name[1])]], path)
    return path


def test_transfer_out_refuses_other_formats_and_transparent_jpeg_before_any_work(run_posekit, tmp_path):
    from pathlib import Path

    figure = Path(__file__).resolve().parents[1] / "examples" / "figure.png"
    pose = _one_pose(tmp_path, "p1.json")
    (tmp_path / "existing.txt").write_text("hello\n")
    proc = run_posekit("transfer", figure, "--pose", pose, "--out", tmp_path / "existing.txt")
    assert proc.returncode == 2 and "--out" in proc.stderr and ".png" in proc.stderr
    assert (tmp_path / "existing.txt").read_text() == "hello\n"
    proc = run_posekit("transfer", figure, "--pose", pose, "--background", "transparent", "--out", tmp_path / "x.jpg")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"posekit: error: --out {tmp_path / 'x.jpg'}: JPEG has no transparency; use .png or .webp (or leave out "
        "--background transparent)"]
    proc = run_posekit("transfer", figure, "--pose", "walk", "--out", tmp_path / "x.png")  # 12 targets, one file
    assert proc.returncode == 2 and "output folder" in proc.stderr
    proc = run_posekit("transfer", figure, "--pose", pose, "--pose", tmp_path / "nosuch.json", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "--pose" in proc.stderr and "nosuch.json" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.txt", "p1.json"]


def test_transfer_out_folder_is_protected_as_animates(run_posekit, tmp_path):
    """transfer's --out folder: a file posekit did not write is never replaced (one line, nothing
    done); a re-run with fewer targets leaves only its own images; one --pose that holds nobody
    stops the run (all targets are one job) with an error naming it, nothing written."""
    from pathlib import Path

    from PIL import Image

    figure = Path(__file__).resolve().parents[1] / "examples" / "figure.png"
    poses = [_one_pose(tmp_path, f"p{i}.json") for i in range(3)]
    out = tmp_path / "out"
    out.mkdir()
    (out / "000.png").write_text("mine\n")
    proc = run_posekit("transfer", figure, *(a for p in poses for a in ("--pose", p)), "--out", out)
    assert proc.returncode == 1 and "000.png" in proc.stderr and "did not write" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and [p.name for p in out.iterdir()] == ["000.png"]
    (out / "000.png").unlink()

    proc = run_posekit("transfer", figure, *(a for p in poses for a in ("--pose", p)), "--out", out)
    assert proc.returncode == 0 and "wrote 3 images" in proc.stderr, proc.stderr
    proc = run_posekit("transfer", figure, "--pose", poses[2], "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["000.png"]
    with Image.open(out / "000.png") as im:
        assert im.size == (384, 512)

    nobody = tmp_path / "nobody.json"
    nobody.write_text('{"people": []}\n')
    proc = run_posekit("transfer", figure, "--pose", poses[0], "--pose", nobody, "--out", tmp_path / "o2")
    assert proc.returncode == 1 and not (tmp_path / "o2").exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"posekit: error: --pose {nobody}") and "nothing was written" in lines[0]


def test_one_command_never_removes_another_commands_outputs(run_posekit, tmp_path):
    """A re-run removes what its last run wrote; so a folder another command wrote is refused
    (transfer into an animate folder would have taken its sheet and frames)."""
    import json

    shared = tmp_path / "out"
    r = run_posekit("poses", "show", "walk", "--frames", "2", "--out", shared)
    assert r.returncode == 0, r.stderr
    assert json.loads((shared / ".posekit-outputs.json").read_text())["command"] == "poses show"
    before = sorted(p.name for p in shared.iterdir())
    keypoints = shared / "frame_000_keypoints.json"
    r = run_posekit("transfer", REPO / "examples" / "figure.png", "--source-pose", REPO / "examples" / "figure_keypoints.json",
                    "--pose", "walk", "--out", shared)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == [
        f"posekit: error: --out {shared}: holds the outputs of posekit poses show, which posekit transfer would "
        "remove; choose another --out (or delete them)"]
    assert sorted(p.name for p in shared.iterdir()) == before and keypoints.is_file()
    r = run_posekit("poses", "show", "run", "--frames", "3", "--out", shared)  # the same command: its own files
    assert r.returncode == 0, r.stderr
    assert len(list(shared.glob("frame_*_keypoints.json"))) == 3
    # a manifest without a command is an animate folder (the only writer of manifests before)
    animated = tmp_path / "animated"
    animated.mkdir()
    (animated / "sheet.png").write_bytes(b"not really")
    (animated / ".posekit-outputs.json").write_text(json.dumps({"files": ["sheet.png"]}))
    r = run_posekit("poses", "show", "walk", "--frames", "2", "--out", animated)
    assert r.returncode == 1 and "holds the outputs of posekit animate" in r.stderr
    assert sorted(p.name for p in animated.iterdir()) == [".posekit-outputs.json", "sheet.png"]


def test_transfer_writes_the_working_size_or_fits_size(run_posekit, tmp_path):
    figure, keypoints = REPO / "examples" / "figure.png", REPO / "examples" / "figure_keypoints.json"
    from PIL import Image

    for args, expected in (([], (384, 512)), (["--size", "200x100"], (200, 100))):
        r = run_posekit("transfer", figure, "--source-pose", keypoints, "--pose", keypoints, *args,
                        "--out", tmp_path / f"{len(args)}.png")
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / f"{len(args)}.png").size == expected
    r = run_posekit("transfer", figure, "--pose", keypoints, "--size", "wide", "--out", tmp_path / "x.png")
    assert r.returncode == 2 and "--size 'wide'" in r.stderr and not (tmp_path / "x.png").exists()

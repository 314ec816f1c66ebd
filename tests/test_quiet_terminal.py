"""Nothing reaches the user's terminal that posekit did not write.

Native libraries (MediaPipe's glog, TFLite, ffmpeg) print on file descriptor 2 whenever they like,
including when a detector closes and at interpreter exit; Python libraries warn and log. Every
command that runs a detector, a video decoder or a model is run here as a subprocess, and each
line of its stderr must have the shape of one of posekit's own messages.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import posekit_exe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# The shapes of posekit's own stderr lines (messages, stage lines, the evaluate table). Strict on
# purpose: a new kind of message must be added here, and a library's line never matches.
OWN_LINES = [re.compile(p) for p in (
    r"posekit: (warning|error): .+",
    r"((reading|detecting) the source pose|loading the target poses|retargeting|writing|evaluating pose fidelity"
    r"|(warp|gan|diffusion|animatediff|wan): [\w ,:]*\d+ frames)\.\.\.",  # the pipeline's stage lines
    r"wrote (\d+ frames \(.+\) to .+|\d+ images to .+|\S+\.png)",
    r"pose fidelity \(PCK@[\d.]+ torso, .+\): [\d.]+",
    r"\d+\.\d s: [a-z]+ [\d.]+ s(, [a-z]+ [\d.]+ s)*",    # timings
    r"\d+ of \d+ inputs processed; .+",
    r"frame +pck( +ssim +mask_ssim)?",                   # evaluate's table
    r"(frame_\d+\.png|overall) +[\d. -]+",
    r"PCK@[\d.]+ of the torso size over \d+ frames.*",
    r"\S+: \d+ frames?, \d+x\d+ .*-> .+",                 # poses show
)]


def foreign_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.strip() and not any(p.fullmatch(line.rstrip()) for p in OWN_LINES)]


def test_the_pattern_list_rejects_library_lines():
    library = ["INFO: [accelerator_registry.cc:43] DestroyAccelerator: 0x55d1",
               "W0000 00:00:1732 inference_feedback_manager.cc:114] Feedback manager requires a model",
               "I0000 00:00:1732 gl_context.cc:369] GL version: 3.2", "Traceback (most recent call last):",
               "/x/site-packages/torch/nn/modules/conv.py:456: UserWarning: Plan failed",
               "ffmpeg version 7.0 Copyright (c) 2000-2024 the FFmpeg developers", "  warnings.warn(",
               "Loading pipeline components...: 100%|##########| 6/6"]
    assert foreign_lines("\n".join(library)) == library
    assert foreign_lines("retargeting...\nwrote 4 frames (384x512, warp) to out: frames/\n") == []


def test_native_and_python_output_never_reach_the_terminal(tmp_path):
    """Whatever a library writes after the CLI took the terminal (fd 2 directly, a child process,
    warnings, logging, at exit) goes to the sink; posekit's own console still reaches the user,
    and POSEKIT_LIBRARY_LOG keeps the library lines for someone debugging."""
    script = """
import atexit, logging, os, subprocess, sys, warnings
from posekit.console import info, keep_terminal_for_posekit
keep_terminal_for_posekit()
os.write(2, b"INFO: [accelerator_registry.cc:43] DestroyAccelerator\\n")
subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('ffmpeg banner\\\\n')"])
warnings.warn("a library warning")
logging.getLogger("diffusers").warning("a library log line")
print("a stray print", file=sys.stderr)
atexit.register(lambda: os.write(2, b"I0000 at exit\\n"))
info("posekit's own line")
"""
    log = tmp_path / "library.log"
    for env, kept in (({}, False), ({"POSEKIT_LIBRARY_LOG": str(log)}, True)):
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                           env={**__import__("os").environ, **env})
        assert r.returncode == 0, r.stderr
        assert r.stderr == "posekit's own line\n"
        if kept:
            text = log.read_text()
            for line in ("DestroyAccelerator", "ffmpeg banner", "a library log line", "a stray print", "at exit"):
                assert line in text


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """An animate run (warp, 4 frames) whose outputs the other commands read."""
    out = tmp_path_factory.mktemp("quiet") / "walk"
    cmd = [posekit_exe(), "animate", EXAMPLES / "figure.png", "--poses", "walk",
           "--frames", "4", "--out", out]
    return out, subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=900)


def test_animate_writes_only_its_own_lines(walk):
    out, r = walk
    assert r.returncode == 0, r.stderr
    assert foreign_lines(r.stderr) == []
    assert "pose fidelity" in r.stderr  # the detector ran on the frames (and was closed)


def test_detector_commands_write_only_their_own_lines(walk, run_posekit, tmp_path):
    import imageio.v3 as iio
    import numpy as np

    from posekit.images import load_image

    out, _ = walk
    frames = sorted((out / "frames").glob("*.png"))
    video = tmp_path / "walk.mp4"
    iio.imwrite(video, np.stack([load_image(f) for f in frames]), fps=4)
    runs = {
        "extract-pose": run_posekit("extract-pose", EXAMPLES / "figure.png", video, "--out", tmp_path / "poses"),
        "evaluate": run_posekit("evaluate", out / "frames", "--poses", out / "poses"),
        "transfer": run_posekit("transfer", EXAMPLES / "figure.png", "--pose", EXAMPLES / "figure_keypoints.json",
                                "--method", "warp", "--out", tmp_path / "t.png"),
        "poses show --onto": run_posekit("poses", "show", "walk", "--frames", "3", "--onto", EXAMPLES / "figure.png",
                                         "--out", tmp_path / "skeletons"),
        "poses show video": run_posekit("poses", "show", video, "--out", tmp_path / "from_video"),
        "an error": run_posekit("animate", tmp_path / "missing.jpg", "--poses", "walk", "--out", tmp_path / "x"),
    }
    for name, r in runs.items():
        assert (r.returncode != 0) if name == "an error" else (r.returncode == 0), f"{name}: {r.stderr}"
        assert foreign_lines(r.stderr) == [], name
        assert r.stderr.strip(), name  # each says something, so the check above is not vacuous


def test_the_detector_is_quiet_in_library_use_too(astronaut_path):
    """Without the CLI (a notebook, a script): creating, using and closing BlazePose, and the
    shared detector closed at interpreter exit, print nothing."""
    script = f"""
from posekit.images import load_image
from posekit.pose.detect import detect_person, load_detector
image = load_image({str(astronaut_path)!r})
with load_detector("blazepose") as detector:
    assert detector.detect([image])[0]
assert detect_person(image) is not None  # the shared one, closed at exit
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_no_arguments_shows_the_help_and_odd_terminals_are_handled(run_posekit, tmp_path):
    bare = run_posekit()  # a usage error: its help on stderr, stdout stays for data
    assert bare.returncode == 2 and bare.stderr.startswith("Usage: posekit") and "animate" in bare.stderr
    assert bare.stdout == ""
    group = run_posekit("poses")
    assert group.returncode == 2 and "show" in group.stderr and group.stdout == ""
    # a log file that cannot be written: a warning, then the command runs
    r = run_posekit("poses", "list", env={"POSEKIT_LIBRARY_LOG": str(tmp_path / "no" / "such" / "dir" / "log")})
    assert r.returncode == 0 and "walk" in r.stdout
    assert r.stderr.startswith("posekit: warning: POSEKIT_LIBRARY_LOG=") and r.stderr.count("\n") == 1
    # started with stderr closed (`2>&-`)
    closed = subprocess.run(f"'{posekit_exe()}' poses list 2>&-", shell=True, capture_output=True, text=True, timeout=600)
    assert closed.returncode == 0 and "walk" in closed.stdout


def test_commands_that_load_a_detector_run_with_stderr_closed(tmp_path):
    """Started with stderr closed (`2>&-`: cron, some daemons), Python has no sys.stderr: the
    commands that load BlazePose (which silences fd 2 around it) still run and write."""
    figure = EXAMPLES / "figure.png"
    runs = {
        "extract-pose": f"'{posekit_exe()}' extract-pose '{figure}' --jsonl 2>&-",
        "animate": f"'{posekit_exe()}' animate '{figure}' -p walk -n 2 -o '{tmp_path / 'a'}' --json 2>&-",
    }
    for name, command in runs.items():
        r = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, name
        assert r.stdout.count("\n") == 1 and r.stdout.startswith("{"), name
    assert (tmp_path / "a" / "sheet.png").is_file()

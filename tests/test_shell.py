"""posekit in shell pipelines: a stdout that is closed or full, names a terminal would misread,
JSON for failures too, and exit codes that do not depend on who reads stdout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, posekit_exe

FIGURE = REPO / "examples" / "figure.png"


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd, timeout=1800)


def test_stdout_closed_is_like_a_reader_that_went_away(tmp_path):
    """`>&-`: no sys.stdout at all. A command with files to write writes every input and exits 0;
    one that only prints ends quietly (exit 1); no traceback either way."""
    shutil.copy(FIGURE, tmp_path / "a.png")
    shutil.copy(FIGURE, tmp_path / "b.png")
    exe = posekit_exe()
    r = sh(f"'{exe}' extract-pose a.png b.png --out o --jsonl >&-", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "o").glob("[ab]_*")) == ["a_keypoints.json", "a_pose.png",
                                                                  "b_keypoints.json", "b_pose.png"]
    r = sh(f"'{exe}' poses show walk -n 3 --out s --jsonl >&-", tmp_path)
    assert r.returncode == 0 and len(list((tmp_path / "s").glob("*_keypoints.json"))) == 3, r.stderr
    r = sh(f"'{exe}' poses list --json >&-", tmp_path)
    assert r.returncode == 1 and r.stderr == "", r.stderr


def test_exit_status_does_not_depend_on_the_reader_when_files_are_written(tmp_path):
    """`| true`: the reader goes before the first line. Every file is written and the status is
    the run's own."""
    exe = posekit_exe()
    r = sh(f"set -o pipefail; '{exe}' poses show walk -n 20 --out s --jsonl | true", tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "s").glob("*_keypoints.json"))) == 20


@pytest.mark.parametrize("args", ["poses list --json", "poses list", "--version"])
def test_a_full_stdout_is_named_as_stdout_not_out(tmp_path, args):
    r = sh(f"'{posekit_exe()}' {args} > /dev/full", tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("posekit: error: no space left where standard output goes"), r.stderr
    assert "--out" not in r.stderr


def test_help_for_a_missing_subcommand_goes_to_stderr(run_posekit):
    r = run_posekit("poses")
    assert r.returncode == 2 and r.stdout == ""
    assert "Usage:" in r.stderr and "show" in r.stderr


@pytest.mark.parametrize("name", ["run:fire:.png", "take[red]1[/red].png"])
def test_names_print_as_they_are_without_emoji_or_markup(run_posekit, tmp_path, name):
    r = run_posekit("extract-pose", tmp_path / name, "--jsonl")
    assert r.returncode == 1
    assert f"{tmp_path / name}: no such file" in r.stderr, r.stderr


def test_a_newline_in_a_file_name_keeps_the_error_on_one_line(run_posekit, tmp_path):
    bad = tmp_path / "two\nlines.png"
    bad.write_bytes(b"not an image")
    r = run_posekit("extract-pose", bad, "--jsonl")
    assert r.returncode == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("posekit: error:")]
    assert len(errors) == 1 and "two\\nlines.png" in errors[0], r.stderr
    assert "lines.png" not in r.stderr.replace("two\\nlines.png", ""), r.stderr


def test_a_single_photo_that_fails_still_prints_its_json(run_posekit, tmp_path):
    from PIL import Image

    Image.new("RGB", (256, 256), (40, 120, 200)).save(tmp_path / "nobody.png")
    r = run_posekit("animate", tmp_path / "nobody.png", "-p", "walk", "-n", "2", "-o", tmp_path / "o", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["photo"] == str(tmp_path / "nobody.png") and "nobody" in doc["error"]
    assert r.stderr.count("posekit: error:") == 1


def test_a_batch_tells_of_each_photo_before_the_next_begins(tmp_path):
    """animate_batch's `done` hears of a photo before the next one's first stage (the CLI prints
    its line there), and the CLI prints one JSON line per photo, in order."""
    from posekit import pipeline

    shutil.copy(FIGURE, tmp_path / "a.png")
    shutil.copy(FIGURE, tmp_path / "b.png")
    events = []
    pipeline.animate_batch([tmp_path / "a.png", tmp_path / "b.png"], tmp_path / "lib", poses=["idle"], frames=[2],
                           evaluate=False, status=lambda stage: events.append(stage.split(":")[0]),
                           done=lambda r: events.append("done " + Path(r["photo"]).name))
    assert events.index("done a.png") < events.index("b.png") < events.index("done b.png")
    r = subprocess.run([posekit_exe(), "animate", "a.png", "b.png", "-p", "idle", "-n", "2", "-o", "out", "--json",
                        "--no-evaluate"], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["photo"] for line in r.stdout.splitlines()] == ["a.png", "b.png"]


def test_evaluate_json_when_every_frame_fails(run_posekit, tmp_path):
    frames, poses = tmp_path / "frames", tmp_path / "poses"
    frames.mkdir()
    poses.mkdir()
    (frames / "frame_000.png").write_bytes(b"not a png")
    (poses / "frame_000_keypoints.json").write_text('{"version": 1.3, "people": []}')
    r = run_posekit("evaluate", frames, "--poses", poses, "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["count"] == 0 and [f["frame"] for f in doc["failed"]] == ["frame_000.png"] and doc["error"]
    assert "posekit: warning:" not in r.stderr, r.stderr  # a frame that fails counts toward exit 1: an error
    assert r.stderr.startswith("posekit: error: ") and "frame_000.png: not an image file" in r.stderr.splitlines()[0]


@pytest.mark.parametrize("command", [["poses", "show", "{empty}", "--jsonl"],
                                     ["evaluate", "{empty}", "--poses", "{empty}"],
                                     ["extract-pose", "{empty}", "--jsonl"],
                                     ["animate", "{figure}", "--poses", "{empty}", "-o", "{out}"],
                                     ["transfer", "{empty}", "--pose", "walk", "-o", "{out}"],
                                     ["prepare-dataset", "{empty}", "--dataset", "market1501", "--out", "{out}"],
                                     ["transfer", "{figure}", "--pose", "{empty}", "-o", "{out}"]])
def test_an_empty_folder_is_a_usage_error_everywhere(run_posekit, tmp_path, command):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an input")
    args = [a.format(empty=tmp_path / "empty", figure=FIGURE, out=tmp_path / "o") for a in command]
    r = run_posekit(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "empty" in r.stderr
    assert "detecting" not in r.stderr  # refused before any work


def test_poses_from_a_pipe_are_refused_before_detection(run_posekit, tmp_path):
    r = run_posekit("animate", FIGURE, "--poses", "/dev/stdin", "-o", tmp_path / "o", input="")
    assert r.returncode == 2
    assert r.stderr.startswith("posekit: error: --poses /dev/stdin: not a regular file"), r.stderr
    assert "detecting" not in r.stderr


def test_a_name_that_is_not_utf8_keeps_the_json_utf8(tmp_path):
    """b'\\xff.png' (Linux): Python holds it as '\\udcff.png', a lone surrogate that a UTF-8 JSON
    reader refuses; posekit writes the byte escaped, in the JSON and in its messages alike."""
    name = tmp_path / b"\xff.png".decode("utf-8", "surrogateescape")
    shutil.copy(FIGURE, name)
    r = subprocess.run([posekit_exe(), "extract-pose", name.name, "--jsonl"], capture_output=True, cwd=tmp_path,
                       timeout=1800)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))  # strict: bytes that are UTF-8, strings without lone surrogates
    assert doc["path"] == "\\xff.png" and doc["path"].encode("utf-8") and len(doc["people"]) == 1
    r = subprocess.run([posekit_exe(), "extract-pose", name.name], capture_output=True, cwd=tmp_path, timeout=1800)
    assert r.stderr.decode("utf-8").startswith("\\xff.png: 1 person"), r.stderr


def test_a_newline_in_a_name_keeps_each_summary_line_one_line(run_posekit, tmp_path):
    """Not only errors: the per-input line of extract-pose (a message, not a warning) too."""
    name = tmp_path / "two\nlines.png"
    shutil.copy(FIGURE, name)
    r = run_posekit("extract-pose", name)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"{tmp_path}/two\\nlines.png: 1 person (18/18 keypoints)"], r.stderr


def test_with_stdout_closed_what_writes_to_it_never_reaches_the_terminal(tmp_path):
    """`>&-` leaves descriptor 1 free: the CLI holds it on devnull, so posekit's copy of the
    terminal is not put there, and a native library or child process writing to its stdout does
    not write onto the user's stderr."""
    script = ("import os, subprocess, sys\n"
              "from posekit.console import info, keep_terminal_for_posekit\n"
              "keep_terminal_for_posekit()\n"
              "os.write(1, b'native stdout\\n')\n"
              "subprocess.run([sys.executable, '-c', 'print(\"child stdout\")'])\n"
              "info(\"posekit's own line\")\n")
    (tmp_path / "lib.py").write_text(script)
    r = sh(f"'{sys.executable}' lib.py >&-", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "posekit's own line\n"


def test_c1_controls_and_line_separators_in_a_name_are_escaped(run_posekit, tmp_path):
    """U+0085 (next line), U+009B (an escape in a UTF-8 terminal), U+2028: lines end there too."""
    bad = tmp_path / "a\u0085b\u009b2Jc\u2028d.png"
    bad.write_bytes(b"not an image")
    r = run_posekit("extract-pose", bad, "--jsonl")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 2, r.stderr  # the error and the count
    assert "a\\x85b\\x9b2Jc\\u2028d.png" in r.stderr.splitlines()[0]


def test_a_failure_with_its_json_on_a_full_disk_still_says_the_failure(tmp_path):
    from PIL import Image

    Image.new("RGB", (256, 256), (40, 120, 200)).save(tmp_path / "nobody.png")
    r = sh(f"'{posekit_exe()}' animate nobody.png -p walk -n 2 -o o --json > /dev/full", tmp_path)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert any("no space left where standard output goes" in line for line in lines), r.stderr
    assert "nobody" in lines[-1] and lines[-1].startswith("posekit: error:"), r.stderr


def test_a_full_stdout_does_not_stop_the_files(tmp_path):
    """`--out D --jsonl > /dev/full`: the stdout error is said once, every input is still written
    (as for a reader that went away), and the status is 1: the data did not arrive."""
    shutil.copy(FIGURE, tmp_path / "a.png")
    shutil.copy(FIGURE, tmp_path / "b.png")
    r = sh(f"'{posekit_exe()}' extract-pose a.png b.png --out o --jsonl > /dev/full", tmp_path)
    assert r.returncode == 1
    assert r.stderr.count("no space left where standard output goes") == 1, r.stderr
    assert sorted(p.name for p in (tmp_path / "o").glob("[ab]_*")) == ["a_keypoints.json", "a_pose.png",
                                                                      "b_keypoints.json", "b_pose.png"]

"""Flags every command shares the checks of: float ranges, --device, --out, --size. A bad value is
one line naming the flag, exit status 2, before anything is written or loaded."""

from __future__ import annotations

import inspect
import os
import typing

import pytest
import typer

from conftest import REPO
from posekit.cli import app
from posekit.checks import check_finite, check_out, parse_size
from posekit.device import check_device
from posekit.errors import UsageError

FIGURE = REPO / "examples" / "figure.png"


def options(pick):
    """(command words, option name) of every option of every command of the CLI for which
    pick(annotation, option names) holds."""
    def commands(typer_app, words):
        for c in typer_app.registered_commands:
            yield [*words, c.name or c.callback.__name__.replace("_", "-")], c.callback
        for g in typer_app.registered_groups:
            yield from commands(g.typer_instance, [*words, g.name])

    found = []
    for words, fn in commands(app, []):
        hints = typing.get_type_hints(fn)
        for name, param in inspect.signature(fn).parameters.items():
            hint = hints.get(name, param.annotation)  # the shared method flags are typed in the signature
            if isinstance(param.default, typer.models.OptionInfo) and pick(hint, param.default.param_decls):
                found.append((words, param.default.param_decls[0]))
    return found


def assert_usage_error(proc, flag, cwd):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and ".tmp" not in proc.stderr
    assert list(cwd.iterdir()) == []  # nothing written


FLOATS = options(lambda annotation, names: annotation in (float, typing.Optional[float]))


def test_the_float_flags_are_all_found():
    found = {(" ".join(words), flag) for words, flag in FLOATS}
    assert {("animate", "--fps"), ("animate", "--guidance"), ("transfer", "--controlnet-scale"),
            ("evaluate", "--alpha"), ("train-gan", "--lr"), ("dreambooth", "--learning-rate"),
            ("prepare-dataset", "--test-fraction"), ("poses show", "--fps")} <= found


@pytest.mark.parametrize("words, flag", FLOATS, ids=[" ".join(w) + " " + f for w, f in FLOATS])
def test_every_float_flag_refuses_nan(run_posekit, tmp_path, words, flag):
    assert_usage_error(run_posekit(*words, flag, "nan", cwd=tmp_path), flag, tmp_path)


@pytest.mark.parametrize("value", ["inf", "-inf", "1e-9", "1000"])
def test_animate_fps_refuses_what_no_writer_can_play(run_posekit, tmp_path, value):
    proc = run_posekit("animate", FIGURE, "--poses", "walk", "--out", "o", "--fps", value, cwd=tmp_path)
    assert_usage_error(proc, "--fps", tmp_path)


def test_check_finite_keeps_values_in_range():
    assert check_finite(12.0, "--fps", 0.1, 120) == 12.0 and check_finite(0.0, "--x", 0.0) == 0.0
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UsageError, match="^--x "):
            check_finite(bad, "--x", 0.0, 1.0)


DEVICES = options(lambda annotation, names: "--device" in names)


def test_device_check():
    for ok in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        assert check_device(ok) == ok
    for bad in ("foo", "cuda:", "cuda:x", "CPU", "gpu"):
        with pytest.raises(UsageError, match="^--device"):
            check_device(bad)


def test_a_cuda_index_past_the_visible_gpus_is_a_usage_error(monkeypatch):
    """cuda:N with N >= the GPUs visible is said as --device, not torch's "invalid device
    ordinal" (an internal error) at the first tensor moved there."""
    import torch

    from posekit.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0") and resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(UsageError, match=r"^--device cuda:1: only 1 CUDA GPU is visible \(cuda:0\); use --device cuda:0$"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UsageError, match=r"^--device cuda:7: only 2 CUDA GPUs are visible \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:7")


def test_device_and_mixed_precision_are_each_defined_once():
    """Every command's --device is one option (one check, one help text), and so is
    --mixed-precision; its choices are checked in one function, at parse time and in the library."""
    from posekit.checks import check_mixed_precision
    from posekit.commands import method_flags

    def defaults(flag):
        return [(words, inspect.signature(fn).parameters[name].default)
                for words, fn in _callbacks(app, []) for name, p in inspect.signature(fn).parameters.items()
                if isinstance(p.default, typer.models.OptionInfo) and flag in p.default.param_decls]

    devices, precisions = defaults("--device"), defaults("--mixed-precision")
    assert {" ".join(w) for w, _ in devices} >= {"animate", "transfer", "extract-pose", "prepare-dataset",
                                                 "evaluate-gan", "dreambooth"}
    # dreambooth trains where accelerate puts it: auto or cpu, and a help that says so
    assert [w for w, d in devices if d is not method_flags.DEVICE] == [["dreambooth"]]
    assert dict((" ".join(w), d) for w, d in devices)["dreambooth"] is method_flags.TRAINING_DEVICE
    assert "cuda" not in method_flags.TRAINING_DEVICE.help
    with pytest.raises(UsageError, match=r"^--device 'cuda:0': use auto or cpu \(choose GPUs with CUDA_VISIBLE_DEVICES"):
        method_flags.TRAINING_DEVICE.callback("cuda:0")
    assert {" ".join(w) for w, _ in precisions} == {"train-gan", "dreambooth"}
    assert [w for w, d in precisions if d is not method_flags.MIXED_PRECISION] == []
    assert method_flags.MIXED_PRECISION.callback is check_mixed_precision
    with pytest.raises(UsageError, match="^--mixed-precision 'fp8': choose no, fp16 or bf16$"):
        check_mixed_precision("fp8")


def _callbacks(typer_app, words):
    for c in typer_app.registered_commands:
        yield [*words, c.name or c.callback.__name__.replace("_", "-")], c.callback
    for g in typer_app.registered_groups:
        yield from _callbacks(g.typer_instance, [*words, g.name])


@pytest.mark.parametrize("args", [["train-gan", "--dataset", "synthetic"],
                                  ["dreambooth", "--instance-dir", ".", "--instance-prompt", "sks"]], ids=lambda a: a[0])
def test_mixed_precision_is_checked_when_parsed(run_posekit, tmp_path, args):
    proc = run_posekit(*args, "--mixed-precision", "fp8", "--out", "run", cwd=tmp_path)
    assert_usage_error(proc, "--mixed-precision 'fp8'", tmp_path)


@pytest.mark.parametrize("words, flag", DEVICES, ids=[" ".join(w) for w, _ in DEVICES])
def test_every_device_flag_is_checked_when_parsed(run_posekit, tmp_path, words, flag):
    """--method warp never resolves a device, so nothing later would notice a typo."""
    assert_usage_error(run_posekit(*words, "--device", "cuda:x", cwd=tmp_path), "--device", tmp_path)


@pytest.mark.parametrize("args", [
    ["animate", FIGURE, "--poses", "walk"],
    ["transfer", FIGURE, "--pose", "walk"],
    ["train-gan", "--dataset", "synthetic"],
    ["prepare-dataset", ".", "--dataset", "market1501"],
    ["dreambooth", "--instance-dir", ".", "--instance-prompt", "sks"],
], ids=lambda a: a[0])
@pytest.mark.parametrize("out", ["taken", "taken/run", "taken/x.png"])
def test_every_out_is_checked_before_the_work(run_posekit, tmp_path, args, out):
    """A file where a folder is needed, or a file on the way: one line naming --out (not the
    name of a temporary file), and nothing loaded, detected or written."""
    (tmp_path / "taken").write_text("mine")
    proc = run_posekit(*args, "--out", out, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"--out {out}: " in proc.stderr, proc.stderr
    assert ".tmp" not in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and (tmp_path / "taken").read_text() == "mine"


def test_check_out(tmp_path, monkeypatch):
    (tmp_path / "file.png").write_text("x")
    assert check_out(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_out(tmp_path / "file.png", file=True) == tmp_path / "file.png"
    with pytest.raises(UsageError, match="is a folder"):
        check_out(tmp_path, file=True)
    with pytest.raises(UsageError, match="is a file"):
        check_out(tmp_path / "file.png")
    with pytest.raises(UsageError, match="^--checkpoint-dir .*file.png is a file"):
        check_out(tmp_path / "file.png" / "a" / "b.png", flag="--checkpoint-dir", file=True)
    # a read-only folder (faked: root may write anywhere)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))
    with pytest.raises(UsageError, match="permission denied"):
        check_out(tmp_path / "new" / "deeper")


@pytest.mark.parametrize("args", [["animate", FIGURE, "--poses", "walk"], ["transfer", FIGURE, "--pose", "walk"]],
                         ids=lambda a: a[0])
def test_out_dash_is_refused_not_made_a_folder(run_posekit, tmp_path, args):
    """`--out -` is not stdout (no command promises that): a usage error naming --out, and no
    folder named '-' appears."""
    assert_usage_error(run_posekit(*args, "--out", "-", cwd=tmp_path), "--out -: posekit writes files there, "
                       "not to stdout; pass a folder's name (e.g. --out out)", tmp_path)


def test_out_where_nothing_can_be_created_names_the_flag(run_posekit, tmp_path, monkeypatch):
    """A place access() calls writable where nothing can be made (/proc, a read-only disk): one
    line naming --out and what to do, before any work; the probe leaves nothing behind."""
    import errno
    import tempfile

    assert check_out(tmp_path / "new") == tmp_path / "new" and list(tmp_path.iterdir()) == []

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(UsageError, match=rf"^--out {tmp_path}/x: cannot create anything in {tmp_path} "
                                         r"\(Read-only file system\); choose another --out on a disk you can write to$"):
        check_out(tmp_path / "x")
    monkeypatch.undo()
    if os.path.isdir("/proc/self"):  # Linux: root may "write" in /proc by access(), yet mkdir there fails
        proc = run_posekit("animate", FIGURE, "--poses", "walk", "--out", "/proc/posekit_x", cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.startswith(
            "posekit: error: --out /proc/posekit_x: cannot create anything in /proc"), proc.stderr
        assert "choose another --out" in proc.stderr and proc.stderr.count("\n") == 1


def test_one_size_parser_is_width_by_height():
    assert parse_size("32x64") == (32, 64) and parse_size(None) is None
    assert parse_size("16X32", multiple=4) == (16, 32)
    with pytest.raises(UsageError, match="^--size '30x16': both sides must be multiples of 4"):
        parse_size("30x16", multiple=4)
    with pytest.raises(UsageError, match="^--image '4x8'"):
        parse_size("4x8", flag="--image")


def test_transfer_defaults_to_warp_offline(run_posekit, tmp_path):
    """No model download: the default method needs none (HF_HUB_OFFLINE=1 here)."""
    proc = run_posekit("transfer", FIGURE, "--pose", "wave", "--out", tmp_path / "moved")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "moved").glob("*.png"))) > 1


def method_flags(command: str) -> dict:
    """Python name -> typer OptionInfo of every option of `command` (read from the app itself)."""
    fn = next(c.callback for c in app.registered_commands if c.name == command)
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if isinstance(p.default, typer.models.OptionInfo)}


@pytest.mark.parametrize("command", ["animate", "transfer"])
def test_every_option_field_is_a_flag_and_every_method_flag_a_field(command):
    """A renamed option fails here: each field of each method's options is a flag of the command,
    spelt after the field (batch_size -> --batch-size), and each flag whose help says [method] is
    a field of that method's options."""
    from dataclasses import fields

    from posekit.methods import METHODS, method_class

    flags = method_flags(command)
    for method in METHODS:
        names = {f.name for f in fields(method_class(method).Options)}
        assert names <= set(flags), (method, names - set(flags))
        assert all(flags[n].param_decls[0] == "--" + n.replace("_", "-") for n in names)
        tagged = {n for n, option in flags.items() if (option.help or "").startswith(f"[{method}]")}
        assert tagged and tagged <= names, (method, tagged - names)


def test_options_for_fills_the_methods_options_from_the_flags():
    from posekit.commands.method_flags import options_for
    from posekit.methods.diffusion.method import DiffusionOptions
    from posekit.methods.patn.method import PatnOptions
    from posekit.methods.warp.method import WarpOptions

    given = {name: option.default for name, option in method_flags("animate").items()}
    given.update(seed=3, device="cpu", columns=2)
    assert options_for("warp", {**given, "background": "#ffffff"}) == WarpOptions(background="#ffffff", seed=3)
    assert options_for("gan", {**given, "checkpoint": "run"}) == PatnOptions(checkpoint="run", device="cpu")
    sheet = options_for("diffusion", {**given, "sheet": True, "steps": 4})
    assert isinstance(sheet, DiffusionOptions) and (sheet.seed, sheet.device, sheet.steps, sheet.sheet, sheet.columns) == (3, "cpu", 4, True, 2)
    with pytest.raises(UsageError, match="--sheet"):
        options_for("warp", {**given, "sheet": True})
    with pytest.raises(UsageError, match="--background"):
        options_for("warp", {**given, "background": "blue"})
    with pytest.raises(UsageError, match="--method"):
        options_for("magic", given)


def test_each_flags_help_names_the_methods_that_use_it():
    """The [brackets] of a method flag's help list exactly the methods whose options have its field."""
    from dataclasses import fields

    from posekit.commands.method_flags import METHOD_FLAGS, flag_methods
    from posekit.methods import METHODS, method_class

    used = {m: {f.name for f in fields(method_class(m).Options)} for m in METHODS}
    for name, _, flag in METHOD_FLAGS:
        assert flag_methods(flag) == "|".join(m for m in METHODS if name in used[m]), name


@pytest.mark.parametrize("method, flag, value", [("wan", "lcm", True), ("wan", "ip_adapter", "h94/IP-Adapter"),
                                                 ("diffusion", "context", 8), ("warp", "steps", 4),
                                                 ("gan", "offload", "model")])
def test_a_flag_the_method_ignores_is_a_warning(method, flag, value, capsys):
    from posekit.commands.method_flags import options_for

    given = {name: option.default for name, option in method_flags("animate").items()}
    assert options_for(method, {**given, flag: value}) == options_for(method, given)
    err = capsys.readouterr().err
    assert f"--{flag.replace('_', '-')} is for --method" in err and f"--method {method} ignores it" in err
    assert err.count("ignores it") == 1  # only for that flag


def test_an_ignored_flag_is_one_warning_from_the_cli(run_posekit, tmp_path):
    proc = run_posekit("animate", FIGURE, "--poses", "idle", "--frames", "2", "--lcm", "--steps", "30",
                       "--out", tmp_path / "out", "--no-evaluate", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "ignores it" in line]
    assert len(warnings) == 2 and any("--lcm is for --method diffusion|animatediff;" in w for w in warnings)


@pytest.mark.parametrize("method, offload", [("diffusion", "model"), ("animatediff", "sequential"), ("wan", "group")])
def test_offload_without_a_gpu_fails_with_the_options(method, offload):
    """--offload moves models between the CPU and a CUDA GPU: on a CPU it is a usage error when the
    options are made, before any photo is read or model loaded."""
    from posekit.methods import method_class

    options = method_class(method).Options
    with pytest.raises(UsageError, match=f"^--offload {offload} moves models between the CPU and a CUDA GPU"):
        options(offload=offload, device="cpu")
    assert options(offload="none", device="cpu").offload == "none"


@pytest.mark.parametrize("args, missing", [
    ([], "add --pixel-art N and --background transparent"),
    (["--pixel-art", "8"], "add --background transparent"),
    (["--background", "transparent"], "add --pixel-art N"),
])
def test_outline_names_every_flag_it_still_needs(run_posekit, tmp_path, args, missing):
    r = run_posekit("animate", FIGURE, "--poses", "walk", "--outline", *args, "--out", tmp_path / "x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and missing + " " in r.stderr, r.stderr


@pytest.mark.parametrize("method, extra, idle", [
    ("wan", {"negative_prompt": "blurry"}, "--negative-prompt"),  # wan's guidance is 1.0
    ("diffusion", {"negative_prompt": "blurry", "guidance": 1.0}, "--negative-prompt"),
    ("animatediff", {"strength": 0.3}, "--strength"),  # its --init is none: frames start from noise
    ("diffusion", {"ip_adapter_scale": 0.9}, "--ip-adapter-scale"),
    ("animatediff", {"ip_adapter": "h94/IP-Adapter", "ip_adapter_scale": 0.0}, "--ip-adapter"),  # not loaded
    ("diffusion", {"controlnet": "none", "controlnet_scale": 0.5}, "--controlnet-scale"),
])
def test_a_flag_these_options_leave_idle_is_a_warning(method, extra, idle, capsys):
    """Measured on tiny models: the frames were the same with and without these; now it is said."""
    from posekit.commands.method_flags import options_for

    given = {name: option.default for name, option in method_flags("animate").items()}
    options_for(method, {**given, **extra})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"posekit: warning: {idle} has no effect here: ")
    options_for(method, {**given, "negative_prompt": "blurry"} if method != "wan" else given)  # used: nothing said
    assert capsys.readouterr().err == ""


def test_device_with_a_method_that_runs_on_the_cpu_is_a_warning(capsys):
    """warp uses no torch device: --device cuda there did nothing, silently; now it is said once.
    The methods that take it say nothing (a device they cannot have is their usage error)."""
    from posekit.commands.method_flags import options_for

    given = {name: option.default for name, option in method_flags("animate").items()}
    options_for("warp", {**given, "device": "cuda"})
    err = capsys.readouterr().err.splitlines()
    assert err == ["posekit: warning: --device has no effect here: --method warp runs on the CPU"]
    options_for("warp", {**given, "device": "auto"})  # the default: nothing said
    options_for("diffusion", {**given, "device": "cpu"})
    assert capsys.readouterr().err == ""


def test_device_cuda_with_warp_runs_with_one_warning_from_the_cli(run_posekit, tmp_path):
    r = run_posekit("transfer", FIGURE, "--pose", REPO / "examples" / "figure_keypoints.json", "--device", "cuda",
                    "--out", tmp_path / "x.png",
                    env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stderr.splitlines() if "warning" in line] == [
        "posekit: warning: --device has no effect here: --method warp runs on the CPU"]
    assert (tmp_path / "x.png").is_file()


def test_lcm_with_a_motion_adapter_warns_that_animatelcms_lora_stays(capsys):
    """--lcm brings AnimateLCM's motion adapter and LoRA; --motion-adapter swaps the adapter only."""
    from posekit.commands.method_flags import options_for

    given = {name: option.default for name, option in method_flags("animate").items()}
    options_for("animatediff", {**given, "lcm": True, "motion_adapter": "someone/motion"})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("posekit: warning: --lcm with --motion-adapter: AnimateLCM's LoRA is "
                                               "still loaded"), err
    options_for("animatediff", {**given, "lcm": True})
    options_for("animatediff", {**given, "lcm": True, "motion_adapter": "wangfuyun/AnimateLCM"})
    options_for("animatediff", {**given, "motion_adapter": "someone/motion"})
    assert capsys.readouterr().err == ""

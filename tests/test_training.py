"""posekit.training, the run folder both trainers share: the resume policy, atomic and durable
checkpoints, rotation, the newest checkpoint, and a data order that survives a resume."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from posekit import training
from posekit.errors import PosekitError, UsageError


@dataclasses.dataclass
class Config:
    width: int = 8
    data: str = "a"
    iters: int = 10
    lora: bool = False

    may_change_on_resume: ClassVar[tuple[str, ...]] = ("iters",)
    flag_names: ClassVar[dict[str, str]] = {"width": "--size"}


def test_data_order_is_a_pure_function_of_the_position():
    full = list(training.shuffled(5, 7, 0, 23))
    assert all(sorted(full[e * 5:(e + 1) * 5]) == list(range(5)) for e in range(4))  # every epoch: each once
    assert full[:5] != full[5:10]  # shuffled afresh every epoch
    assert list(training.shuffled(5, 7, 12, 23)) == full[12:]  # a resumed run draws the same tail
    order = training.DataOrder(5, 7, 12, 23)
    assert len(order) == 11 and list(order) == full[12:]
    assert list(training.shuffled(5, 8, 0, 23)) != full  # another seed, another order


def test_a_run_is_not_trained_over_without_resume(tmp_path):
    run = tmp_path / "run"
    training.check_run_folder(run, Config(), resume=False)  # no folder yet
    (run / "checkpoint-4").mkdir(parents=True)
    with pytest.raises(UsageError, match=r"^--out .*run: already holds a run \(checkpoint-4\); pass --resume"):
        training.check_run_folder(run, Config(), resume=False)
    (run / "checkpoint-4").rmdir()
    (run / "result.bin").write_text("done")
    with pytest.raises(UsageError, match=r"\(result\.bin\)"):
        training.check_run_folder(run, Config(), resume=False, results=("result.bin",))
    training.check_run_folder(run, Config(), resume=True, results=("result.bin",))  # no config.json: nothing to compare


def test_resume_may_change_how_long_but_not_what_is_trained(tmp_path):
    training.write_config(tmp_path, {**dataclasses.asdict(Config()), "written_by_the_trainer": 1})
    training.check_run_folder(tmp_path, Config(iters=99), resume=True)
    with pytest.raises(UsageError) as e:
        training.check_run_folder(tmp_path, Config(width=16, data="b"), resume=True)
    assert str(e.value) == (f"--resume: {tmp_path} was trained with --size 8, not 16; "
                            "pass the same --size or choose another --out")
    with pytest.raises(UsageError, match=r"with --data 'a', not 'b'; pass the same --data"):
        training.check_run_folder(tmp_path, Config(data="b"), resume=True)
    # a switch is named as the user types it, not as "--lora False, not True"
    with pytest.raises(UsageError, match=r"^--resume: .* was trained without --lora; resume it without --lora or"):
        training.check_run_folder(tmp_path, Config(lora=True), resume=True)
    training.check_run_folder(tmp_path, Config(data="b"), resume=False)  # a fresh run does not read it
    training.write_config(tmp_path, {"iters": 3})  # written before `width` existed: not compared
    training.check_run_folder(tmp_path, Config(width=16), resume=True)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(PosekitError, match=r"config\.json: damaged run config"):
        training.check_run_folder(tmp_path, Config(), resume=True)


@pytest.fixture
def fsynced(monkeypatch):
    """The paths os.fsync was called on (Linux: read back from /proc/self/fd)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd")
    paths, real = [], os.fsync

    def fsync(fd):
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def test_config_is_written_atomically_and_durably(tmp_path, fsynced):
    run = tmp_path.resolve() / "run"
    training.write_config(run, {"width": 8})
    assert training.read_config(run) == {"width": 8}
    assert [p.name for p in run.iterdir()] == ["config.json"]  # no temporary file left
    assert str(run) in fsynced and any(Path(p).parent == run and p.endswith(".tmp.json") for p in fsynced)


def test_checkpoints_are_whole_durable_rotated_and_restored(tmp_path, fsynced):
    from accelerate import Accelerator

    accelerator = Accelerator()
    net = torch.nn.Linear(3, 2)
    net, opt = accelerator.prepare(net, torch.optim.SGD(net.parameters(), lr=0.1))
    run = tmp_path.resolve() / "run"
    for step in (2, 4, 6):
        with torch.no_grad():
            net.weight.fill_(step)
        saved = training.save_checkpoint(accelerator, run, step, keep=2)
    after_save = torch.rand(4)
    assert saved == run / "checkpoint-6" == training.checkpoints(run)[-1][1]
    assert [step for step, _ in training.checkpoints(run)] == [4, 6]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-4", "checkpoint-6"]  # no temporary left
    # every file and the folder were fsynced under the temporary name, before the rename
    tmp = str(run / ".checkpoint-6.tmp")
    files = {tmp + "/" + p.name for p in saved.iterdir()}
    assert files and files <= set(fsynced) and tmp in fsynced and str(run) in fsynced

    with torch.no_grad():
        net.weight.zero_()
    assert training.load_latest_checkpoint(accelerator, run) == (6, saved)
    assert (net.weight == 6).all() and torch.equal(torch.rand(4), after_save)  # weights and random state

    def disk_full(models, weights, folder):
        raise OSError("No space left on device")

    accelerator.register_save_state_pre_hook(disk_full)
    with pytest.raises(OSError):
        training.save_checkpoint(accelerator, run, 8, keep=2)
    assert [step for step, _ in training.checkpoints(run)] == [4, 6]  # the failed one never appears
    assert training.load_latest_checkpoint(accelerator, run)[0] == 6
    assert not list(run.glob(".checkpoint-*"))  # what the failed save left is cleared on resume

    (saved / "optimizer.bin").unlink()
    # ... and says what to do: remove it, and the next --resume takes the one before
    with pytest.raises(PosekitError, match=r"checkpoint-6: cannot resume from this checkpoint \(.*\); "
                                           r"remove it to resume from checkpoint-4$"):
        training.load_latest_checkpoint(accelerator, run)
    training.discard(run / "checkpoint-4")
    with pytest.raises(PosekitError, match=r"remove it to resume from the start, or train into another --out$"):
        training.load_latest_checkpoint(accelerator, run)
    assert training.load_latest_checkpoint(accelerator, tmp_path / "empty") == (0, None)


def test_resume_needs_the_same_number_of_processes_and_a_saved_step_stays(tmp_path):
    """Each process resumes its own data slice and random state: a run saved by 2 processes is
    refused in one line by 1 (on every process, so none waits for the others). Saving a step that
    is on disk already keeps the one on disk."""
    from accelerate import Accelerator

    accelerator = Accelerator()
    net = accelerator.prepare(torch.nn.Linear(3, 2))
    run = tmp_path / "run"
    first = training.save_checkpoint(accelerator, run, 2, keep=2)
    stamp = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert training.save_checkpoint(accelerator, run, 2, keep=2) == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamp and not list(run.glob(".checkpoint-*"))
    training.write_config(run, {"seed": 0, "processes": 2})
    with pytest.raises(UsageError, match=r"^--resume: .* was trained with 2 processes, not 1; .*--num_processes 2\)$"):
        training.load_latest_checkpoint(accelerator, run)
    training.write_config(run, {"seed": 0, "processes": 1})
    assert training.load_latest_checkpoint(accelerator, run) == (2, first)
    del net


def test_both_trainers_refuse_a_precision_the_machine_cannot_run():
    """One Accelerator maker for train-gan and dreambooth: fp16 on a CPU is a usage error naming
    --mixed-precision, as dreambooth already did (train-gan accepted it)."""
    from posekit.training import make_accelerator

    with pytest.raises(UsageError, match="^--mixed-precision fp16 needs a CUDA GPU"):
        make_accelerator("fp16", cpu=True)
    with pytest.raises(UsageError, match="^--mixed-precision 'fp8-nonsense': choose no, fp16 or bf16$"):
        make_accelerator("fp8-nonsense", cpu=True)  # the one check of its choices (posekit.checks), as on the CLI


def test_one_run_at_a_time_writes_into_a_folder(tmp_path, monkeypatch):
    """run_lock: a second holder is refused at once (not made to wait), in one line naming the
    flag, the folder and the first one's process; the lock goes with the holder; a folder the
    lock made for a run that wrote nothing is removed; where flock cannot lock a folder (NFS) the
    run goes on unlocked."""
    import subprocess
    import sys

    run = tmp_path / "run"
    with training.run_lock(run):
        assert run.is_dir()
        with pytest.raises(UsageError) as e:
            with training.run_lock(run):
                pass
        assert str(e.value) == (f"--out {run}: another posekit run is writing into it (pid {os.getpid()}); "
                                "wait for it to end or choose another --out")
        with training.run_lock(run, main=False):  # other processes of an accelerate launch do not lock
            pass
        (run / "config.json").write_text("{}")
    with training.run_lock(run):  # released with the first
        pass
    assert (run / "config.json").is_file()
    with training.run_lock(tmp_path / "empty"):
        pass
    assert not (tmp_path / "empty").exists()  # made here and left empty: removed

    # another process holding it (the lock is per process, and a killed one releases it)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from posekit.training import run_lock\n"
                               "with run_lock(sys.argv[1]):\n print('held', flush=True); time.sleep(60)", str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=rf"another posekit run is writing into it \(pid {holder.pid}\)"):
            with training.run_lock(run):
                pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with training.run_lock(run):
        pass

    import fcntl

    def nfs(fd, op):
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", nfs)
    with training.run_lock(run):  # unlocked rather than refused
        pass

"""The run folder every trainer shares (`train-gan`, `dreambooth`): one layout, one resume policy.

    RUN/config.json              what was asked (`dataclasses.asdict` of the trainer's config),
                                 written atomically once the set-up worked
    RUN/checkpoint-<step>/       the whole training state after that step: accelerator.save_state
                                 (optimizers, scaler, random states of every process, registered
                                 objects) plus the weights the trainer's save hook writes
    RUN/.checkpoint-<step>.tmp   a checkpoint being written; removed when found later

The policies, the same for every trainer:
- One run writes into a folder at a time: the main process holds an advisory lock on it for the
  whole run (`run_lock`, flock on the folder itself, so nothing is left in it and a killed run
  never leaves it held); a second run into the same --out is refused at once, naming the first.
- A folder that holds checkpoints or a finished result is not trained over without --resume.
- --resume continues from the newest checkpoint. The saved config must agree with the new one
  on every field except those the config class lists in `may_change_on_resume` (how long to
  train, how often to save, where to run): what defines the model and its data cannot change
  under a run, and the first difference is one line naming the flag and both values.
- A checkpoint is written into a temporary folder, every file and the folder are fsynced, then
  it is renamed into place (and the run folder fsynced): a run killed at any moment, even by a
  power cut, leaves only whole checkpoints. The newest `keep` are kept.
- Data order: position k of the endless stream of examples is fixed by (seed, k) (epoch e is the
  permutation of range(n) seeded by (seed, e)), so a resumed run draws exactly what the
  uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from posekit.errors import PosekitError, UsageError

CONFIG = "config.json"


# -- the run folder ------------------------------------------------------------------------
def make_accelerator(mixed_precision: str, **kwargs):
    """The trainers' Accelerator (devices, precision, processes); a precision the machine cannot
    run is a usage error naming --mixed-precision, not a crash at the first step."""
    import torch
    from accelerate import Accelerator

    from posekit.checks import check_mixed_precision

    # checked before the Accelerator exists: its state is one per process and cannot change after
    check_mixed_precision(mixed_precision)
    if mixed_precision == "fp16" and (kwargs.get("cpu") or not torch.cuda.is_available()):
        raise UsageError("--mixed-precision fp16 needs a CUDA GPU; use bf16 or no on the CPU")
    try:
        return Accelerator(mixed_precision=mixed_precision, **kwargs)
    except (ValueError, RuntimeError) as e:
        raise UsageError(f"--mixed-precision {mixed_precision}: {e}") from None


@contextmanager
def run_lock(run: str | Path, main: bool = True, flag: str = "--out"):
    """Hold `run` (made if missing) for the whole run: an exclusive advisory lock, taken without
    waiting. A folder another posekit process is writing into (a trainer, or animate's
    `writing_lock`, which takes the same lock) is refused at once: one line naming `flag` and the
    other process's id where the system says it. The lock goes with the process (flock on the
    folder itself: nothing is left in it), so a killed run never leaves it held. Only the main
    process of an `accelerate launch` takes it (`main`). Without flock (Windows; NFS, which
    cannot lock a folder) runs go unlocked. A folder made here and still empty at the end (a run
    that failed to start) is removed, while the lock is still held."""
    run = Path(run)
    if not main:
        yield
        return
    made = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    fd = _locked(run, fcntl, flag) if fcntl else None
    try:
        yield
    finally:
        try:
            if made and run.is_dir() and not any(run.iterdir()):
                run.rmdir()
        finally:
            if fd is not None:
                os.close(fd)  # closing it releases the lock


def _locked(run: Path, fcntl, flag: str) -> int:
    """A descriptor of `run` holding its flock, taken without waiting; the folder is checked to
    be still the one at that path once locked (a run that made it and failed may remove it)."""
    for _ in range(10):
        try:
            fd = os.open(run, os.O_RDONLY)
        except FileNotFoundError:
            run.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(fd)
            os.close(fd)
            raise UsageError(f"{flag} {run}: another posekit run is writing into it"
                             f"{f' (pid {holder})' if holder else ''}; wait for it to end or choose another "
                             f"{flag}") from None
        except OSError:  # NFS emulates flock with write locks, which a folder cannot take: unlocked
            return fd
        try:
            if os.path.samestat(os.fstat(fd), os.stat(run)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)
        run.mkdir(parents=True, exist_ok=True)
    raise PosekitError(f"{flag} {run}: cannot lock this folder (it keeps being removed); choose another {flag}")


def lock_holder(fd: int) -> int | None:
    """The process holding a flock on the file of `fd`, from /proc/locks (Linux); else None."""
    st = os.fstat(fd)
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":  # "->" marks a waiter, not the holder
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == want and int(fields[4]) > 0:
                return int(fields[4])
        except ValueError:
            continue
    return None


def checkpoints(run: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of the whole checkpoints of a run, oldest first."""
    run = Path(run)
    if not run.is_dir():
        return []
    found = []
    for path in run.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if m and path.is_dir():
            found.append((int(m.group(1)), path))
    return sorted(found)


def flag_of(config, name: str) -> str:
    """The CLI flag that sets a config field (`--name-with-dashes` unless the class says)."""
    return getattr(config, "flag_names", {}).get(name, "--" + name.replace("_", "-"))


def check_run_folder(run: str | Path, config, resume: bool, results: tuple[str, ...] = ()) -> None:
    """Refuse to train over a run (its checkpoints, or one of the `results` files a finished run
    leaves) unless resuming it; when resuming, the saved config.json must agree with `config` (a
    dataclass) on every field but its class's `may_change_on_resume`."""
    run = Path(run)
    existing = [n for n in results if (run / n).exists()] + [p.name for _, p in checkpoints(run)]
    if existing and not resume:
        raise UsageError(f"--out {run}: already holds a run ({existing[0]}); pass --resume to continue it "
                         "or choose another folder")
    if not resume or not (run / CONFIG).is_file():
        return
    saved = read_config(run)
    new = json.loads(json.dumps(dataclasses.asdict(config)))  # compare as JSON, as it was saved
    for name, value in new.items():
        if name in type(config).may_change_on_resume or name not in saved or saved[name] == value:
            continue
        flag = flag_of(config, name)
        if isinstance(value, bool) and isinstance(saved[name], bool):  # a switch: with or without it
            how = "with" if saved[name] else "without"
            raise UsageError(f"--resume: {run} was trained {how} {flag}; resume it {how} {flag} "
                             "or choose another --out")
        shown = getattr(config, "shown_value", lambda values, field: repr(values[field]))
        raise UsageError(f"--resume: {run} was trained with {flag} {shown(saved, name)}, not {shown(new, name)}; "
                         f"pass the same {flag} or choose another --out")


def read_config(run: str | Path) -> dict:
    path = Path(run) / CONFIG
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise PosekitError(f"{path}: damaged run config ({type(e).__name__}: {e}); "
                           "start a new run with another --out") from None
    return saved


def write_config(run: str | Path, config: dict) -> Path:
    """RUN/config.json, atomically and durably (temporary file, fsync, rename, fsync the folder)."""
    from posekit.images import atomic_path

    path = Path(run) / CONFIG
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(json.dumps(config, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
    fsync_folder(path.parent)
    return path


# -- checkpoints -----------------------------------------------------------------------------
def save_checkpoint(accelerator, run: str | Path, step: int, keep: int) -> Path:
    """accelerator.save_state into RUN/.checkpoint-<step>.tmp, made durable, renamed to
    RUN/checkpoint-<step>; then only the newest `keep` checkpoints are kept. Every process calls
    it (each saves its own random state); only the main one renames and deletes."""
    run = Path(run)
    final, tmp = run / f"checkpoint-{step}", run / f".checkpoint-{step}.tmp"
    main = accelerator.is_main_process
    if main:
        remove_stale(run)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if main:
        fsync_tree(tmp)  # the data must be on disk before the rename makes it visible
        if final.exists():  # this step is on disk already: keep that one, never a moment without it
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
        fsync_folder(run)
        for _, old in checkpoints(run)[:-keep] if keep > 0 else []:
            discard(old)
    accelerator.wait_for_everyone()
    return final


def load_latest_checkpoint(accelerator, run: str | Path) -> tuple[int, Path | None]:
    """Restore the newest checkpoint of a run into the prepared objects (accelerator.load_state:
    the trainer's load hook, optimizers, random states); (its step, its folder), or (0, None)."""
    run = Path(run)
    saved = read_config(run).get("processes") if (run / CONFIG).is_file() else None
    if saved is not None and saved != accelerator.num_processes:  # every process reads it: none hangs
        raise UsageError(f"--resume: {run} was trained with {saved} processes, not {accelerator.num_processes}; "
                         f"resume it with the same number (accelerate launch --num_processes {saved})")
    if accelerator.is_main_process:
        remove_stale(run)  # checkpoints a killed run was still writing
    accelerator.wait_for_everyone()
    found = checkpoints(run)
    if not found:
        return 0, None
    step, path = found[-1]
    try:
        accelerator.load_state(str(path))
    except Exception as e:  # missing or damaged files: SafetensorError, UnpicklingError, KeyError...
        instead = (f"remove it to resume from {found[-2][1].name}" if len(found) > 1
                   else "remove it to resume from the start, or train into another --out")
        raise PosekitError(f"{path}: cannot resume from this checkpoint ({type(e).__name__}: {e}); "
                           f"{instead}") from None
    return step, path


def remove_stale(run: Path) -> None:
    for stale in Path(run).glob(".checkpoint-*"):
        shutil.rmtree(stale, ignore_errors=True)


def discard(folder: Path) -> None:
    """Remove a checkpoint: renamed away first, so a kill mid-delete leaves no half checkpoint."""
    trash = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def fsync_tree(folder: Path) -> None:
    """fsync every file under `folder`, then every folder (so their entries are durable too)."""
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_folder(root)


def fsync_folder(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- data order ------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def shuffled(n: int, seed: int, start: int, stop: int) -> Iterator[int]:
    """Example indices at positions [start, stop) of the endless stream of shuffles of range(n)
    (epoch e is the permutation seeded by (seed, e)): a pure function of the position."""
    for k in range(start, stop):
        epoch, j = divmod(k, n)
        yield int(_permutation(n, seed, epoch)[j])


class DataOrder:
    """Positions [start, stop) of that stream as a DataLoader sampler: a run resumed at step s
    starts at position s x examples per step and sees what the uninterrupted run would."""

    def __init__(self, n: int, seed: int, start: int, stop: int):
        self.n, self.seed, self.start, self.stop = n, seed, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[int]:
        return shuffled(self.n, self.seed, self.start, self.stop)

"""Talking to the user: stderr for people (messages, warnings, progress), stdout for data.

Library warnings (torch, timm, transformers, diffusers, mediapipe/absl/TFLite) are silenced by
`quiet_libraries()`, which every command calls before its heavy imports.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from contextlib import contextmanager

from rich.console import Console

# markup and emoji codes off: file names such as `run:100:.png` or `take[red].png` print as they are
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


def info(message: str) -> None:
    err.print(one_line(message), markup=False)


def warn(message: str) -> None:
    err.print(f"posekit: warning: {one_line(message)}", style="yellow", markup=False)


def error(message: str) -> None:
    err.print(f"posekit: error: {one_line(message)}", style="red", markup=False)


# control characters (a newline in a file name, an escape sequence) as Python writes them in a string
# (C0, DEL, C1 and the Unicode line and paragraph separators: all of them end or garble a line)
_CONTROL = {c: ascii(chr(c))[1:-1] for c in (*range(32), *range(127, 160), 0x2028, 0x2029)}


def one_line(message: str) -> str:
    """A message stays one line, whatever the file names in it hold: control characters are
    written escaped (`a\\nb.png`), bytes that are not UTF-8 as `\\xff` (utf8), the rest as it is."""
    return utf8(str(message)).translate(_CONTROL)


def utf8(text: str) -> str:
    """`text` as valid UTF-8. A file name whose bytes are not UTF-8 (b'\\xff.png' on Linux) comes
    to Python with a lone surrogate for each such byte ('\\udcff.png'), which no UTF-8 reader of
    posekit's JSON or messages accepts: each is written as its byte, escaped (`\\xff.png`)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name holds: as Python writes it (`\\ud800`)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _utf8_strings(obj):
    """`obj` (JSON data) with every string, keys too, made valid UTF-8 (utf8)."""
    if isinstance(obj, str):
        return utf8(obj)
    if isinstance(obj, dict):
        return {_utf8_strings(k): _utf8_strings(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_utf8_strings(v) for v in obj]
    return obj


reader_gone = False  # set once stdout's reader has gone: nothing more is printed there
stdout_failed = False  # set when stdout could not be written (a full disk): the run ends with status 1


def emit_json(obj, keep_going: bool = False) -> None:
    """One JSON document on one line of stdout (the data channel), always valid UTF-8 (`utf8`);
    see print_data for a reader that has gone (`keep_going`)."""
    line = json.dumps(obj, separators=(",", ":"))
    if "\\ud" in line:  # a lone surrogate (a file name that is not UTF-8): the JSON stays UTF-8
        line = json.dumps(_utf8_strings(obj), separators=(",", ":"))
    print_data(line, keep_going)


def print_data(line: str, keep_going: bool = False) -> None:
    """One line of data on stdout (JSON, `poses list`, `--version`). When the reader has gone
    (`posekit ... | head`, or stdout closed: `>&-`), stdout is pointed at devnull (stdout_closed)
    and then a command with files to write (`keep_going`) goes on and exits as it would have,
    while one that only prints gets BrokenPipeError, which cli.main ends quietly with status 1.
    A stdout that cannot be written (a full disk: `> /dev/full`) is a one-line error naming it:
    raised, or with `keep_going` said once, the files still written and the status 1 (cli.main)."""
    global stdout_failed
    if not reader_gone:
        try:
            if sys.stdout is None:  # started with stdout closed
                raise BrokenPipeError
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            return
        except BrokenPipeError:
            stdout_closed()
        except OSError as e:
            import errno

            from posekit.errors import PosekitError

            stdout_closed()  # nothing more goes there, nor at exit
            message = ("no space left where standard output goes: free some space or redirect it elsewhere"
                       if e.errno == errno.ENOSPC else f"standard output: {e.strerror or e}")
            if not keep_going:
                raise PosekitError(message) from None
            error(message)
            stdout_failed = True
            return
    if not keep_going:
        raise BrokenPipeError


def stdout_closed() -> None:
    """Point stdout at devnull once its reader has gone, so that neither a later write nor the
    interpreter's flush at exit fails again (as the Python docs on SIGPIPE recommend). A process
    started with stdout closed has no sys.stdout; its descriptor 1 is devnull already in the CLI
    (hold_stdout) and may hold another file elsewhere, so only sys.stdout is replaced then."""
    global reader_gone
    reader_gone = True
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w")
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file descriptor
        sys.stdout = open(os.devnull, "w")
    finally:
        os.close(devnull)


def quiet_libraries() -> None:
    """Keep library chatter (warnings, C++ logs, hub notices) off the user's terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # its logger resets its level on import
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore")
    for name in ("timm", "transformers", "diffusers", "accelerate", "huggingface_hub", "absl", "peft", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def keep_terminal_for_posekit() -> None:
    """Give the user's stderr to posekit alone, for the whole life of the process.

    Native libraries (MediaPipe/absl/glog, TFLite, ffmpeg subprocesses) write to file descriptor 2
    whenever they like: at creation, on use, when closed, at interpreter exit. So the CLI moves
    posekit's own messages (the rich console `err`) to a private copy of the terminal and points
    fd 2, and with it Python's sys.stderr (warnings, logging, tqdm, tracebacks), at /dev/null, or
    at the file named by POSEKIT_LIBRARY_LOG for someone debugging a library."""
    if getattr(err, "_posekit_owns_terminal", False):
        return
    hold_stdout()
    if sys.stderr is not None:  # None when started with stderr closed (`2>&-`)
        sys.stderr.flush()
    closed = sys.stderr is None
    try:
        own = os.dup(2)
    except OSError:  # no stderr to keep: posekit's messages go nowhere, like everyone else's
        own = os.open(os.devnull, os.O_WRONLY)
        if own == 2:  # the free descriptor 2 itself, which becomes the library sink below
            own = os.dup(2)
    terminal = os.fdopen(own, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                         errors="backslashreplace")
    log = os.environ.get("POSEKIT_LIBRARY_LOG")
    try:
        sink = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        sink = os.open(os.devnull, os.O_WRONLY)
        print(f"posekit: warning: POSEKIT_LIBRARY_LOG={log}: cannot write there ({e.strerror}); "
              "library output is discarded", file=terminal)
    os.dup2(sink, 2)
    if sink != 2:
        os.close(sink)
    if closed:  # Python gave no sys.stderr (`2>&-`): one on the sink, for whatever writes or flushes it
        sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    err.file = terminal
    err._posekit_owns_terminal = True


def hold_stdout() -> None:
    """Started with stdout closed (`>&-`): hold descriptor 1 on devnull, so that it is not the
    next file opened (posekit's copy of the terminal, an output file), which whatever writes to
    its stdout (a native library, a child process) would then write into. sys.stdout stays None:
    emit_json takes that as a reader that has gone."""
    try:
        os.fstat(1)
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        if null != 1:
            os.dup2(null, 1)
            os.close(null)


@contextmanager
def silence_fd(fd: int = 2):
    """Silence a file descriptor at the OS level (C++ libraries such as TFLite write to fd 2
    directly, past Python's sys.stderr). Used around model loading only."""
    if sys.stderr is not None:  # None in a process started with stderr closed (`2>&-`)
        sys.stderr.flush()
    try:
        saved = os.dup(fd)
    except OSError:  # closed: it stays on devnull afterwards, so no file opened later lands there
        saved = None
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)
        if devnull != fd:
            os.close(devnull)


def progress(transient: bool = True):
    """A rich progress bar on stderr (bar, count, rate, time left). When stderr is not a
    terminal (a log file, CI, `2>log`), a bar would only leave a stray blank line: a long task
    says where it is in a plain line every half minute instead (LineProgress)."""
    if not err.is_terminal:
        return LineProgress()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    class OneLineProgress(Progress):  # a file name in a task's name is escaped as in any message
        def add_task(self, description, *args, **kwargs):
            return super().add_task(one_line(description), *args, **kwargs)

    return OneLineProgress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                           TextColumn("{task.fields[status]}", markup=False), TimeElapsedColumn(),
                           TimeRemainingColumn(), console=err, transient=transient)


class LineProgress:
    """rich Progress's add_task / advance / update for a stderr that is not a terminal: one line
    per task every `every` seconds ("train-gan: 120/1000 (12%) loss 0.41, 0.52 it/s, about 28 min
    left"), and a last one when a task that has spoken finishes; a task done sooner than `every`
    says nothing, so short commands keep a quiet log."""

    def __init__(self, every: float = 30.0, clock=None):
        import time

        self.every, self.clock, self.tasks = every, clock or time.monotonic, []

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        if kind is None:
            for t in self.tasks:
                if t["said"] and t["said"] != t["done"]:
                    self._say(t)

    def add_task(self, description: str, total=None, completed: int = 0, status: str = "", **_) -> int:
        now = self.clock()
        self.tasks.append({"description": description, "total": total, "done": completed, "start": completed,
                           "status": status, "began": now, "last": now, "said": None})
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, advance=None, completed=None, status=None, **_) -> None:
        t = self.tasks[task]
        t["done"] = completed if completed is not None else t["done"] + (advance or 0)
        if status is not None:
            t["status"] = status
        if self.clock() - t["last"] >= self.every:
            self._say(t)

    def _say(self, t: dict) -> None:
        now = self.clock()
        done, total, status = t["done"], t["total"], t["status"].strip()
        line = f"{t['description']}: {done:g}/{total:g} ({100 * done / total:.0f}%)" if total else \
            f"{t['description']}: {done:g} done"
        rate = (done - t["start"]) / max(now - t["began"], 1e-9)
        line += f" {status}" if status else ""
        if rate > 0:
            line += f", {rate:.3g}/s" if rate >= 0.1 else f", {1 / rate:.3g} s each"
            if total and done < total:
                left = (total - done) / rate
                line += f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"
        info(line)
        t["last"], t["said"] = now, done


@contextmanager
def step_progress(label: str, total: int):
    """A progress bar over `total` denoising steps. Yields `step`, which advances it by one:
    called plain, `step()`, or handed to a diffusers pipeline as `callback_on_step_end=step`
    (it takes the pipeline's (pipe, i, t, callback_kwargs) and gives the kwargs back unchanged)."""
    with progress() as p:
        task = p.add_task(label, total=total, status="")

        def step(pipe=None, i=None, t=None, callback_kwargs=None):
            p.advance(task)
            return callback_kwargs

        yield step

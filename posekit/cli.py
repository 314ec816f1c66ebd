"""The `posekit` command: a thin Typer shell over the library.

Start-up must stay fast: this module and posekit.commands.* import only typer and the standard
library at the top; torch, diffusers, mediapipe and cv2 are imported inside the command that
needs them. Every user mistake surfaces as a PosekitError: one line on stderr, exit 1 (2 for
usage), never a traceback.
"""

from __future__ import annotations

import sys

import typer
import typer.core

from posekit import __version__
from posekit.commands import animate, dreambooth, evaluate, extract, gan, poses, transfer

app = typer.Typer(
    name="posekit",
    help="Turn one photo of a person into an animation along a sequence of poses.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # click's plain help: whole flag names at any width, no <bool> metavars
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        from posekit.console import print_data

        print_data(f"posekit {__version__}")  # the data it is: a full stdout is named as such
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Turn one photo of a person into an animation along a sequence of poses."""


class _Command(typer.core.TyperCommand):
    """Every posekit command: its help names each value by what it is (`--out DIR`, `--frames N`,
    `PHOTO...`), never by Typer's type labels (`<path>`, `<list[int]>`, `<int range>`). A
    `metavar=` given where the option is defined wins; an option or argument without one is named
    after itself, as argparse does (`--batch-size BATCH_SIZE`, `SOURCE`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None and not getattr(param, "is_flag", False):
                long = max(param.opts, key=len) if param.param_type_name == "option" else param.name
                param.metavar = long.lstrip("-").replace("-", "_").upper()

    def collect_usage_pieces(self, ctx):
        """The usage line names arguments as click and argparse do (`animate [OPTIONS] PHOTO...`;
        Typer's plain usage writes a required one `{PHOTO}`, which reads as a set of choices)."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                pieces.extend(param.get_usage_pieces(ctx))
                continue
            name = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx, formatter):
        """click's plain Arguments and Options sections, an argument named by its metavar alone
        (Typer's plain help adds its type label to an argument's name even when it has one)."""
        args, opts = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append((param.metavar + ("..." if param.nargs != 1 else ""), record[1]))
            elif param.param_type_name == "option":
                opts.append(record)
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _every_command_is_a_command(typer_app: typer.Typer) -> None:
    """Every command of `typer_app` and of its sub-apps (`posekit poses ...`) built as `_Command`."""
    for info in typer_app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):  # Typer's default: no class of the command's own
            info.cls = _Command
    for group in typer_app.registered_groups:
        _every_command_is_a_command(group.typer_instance)


app.command("extract-pose")(extract.extract_pose)
app.add_typer(poses.app, name="poses")
app.command("animate")(animate.animate)
app.command("transfer")(transfer.transfer)
app.command("evaluate")(evaluate.evaluate)
app.command("prepare-dataset")(gan.prepare_dataset)
app.command("train-gan")(gan.train_gan)
app.command("evaluate-gan")(gan.evaluate_gan)
app.command("dreambooth")(dreambooth.dreambooth)
_every_command_is_a_command(app)


def _another_process_says_it() -> bool:
    """Under `accelerate launch` (or torchrun) every process meets the same flag or model error:
    only each machine's first process (LOCAL_RANK 0, or RANK 0 where that is unset) prints it, so
    a terminal shows it once, and a model missing from one machine's cache is still said there."""
    import os

    first = os.environ.get("LOCAL_RANK") or os.environ.get("RANK") or "0"
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and first.strip() not in ("", "0")


def end_cleanly_on_signals() -> None:
    """SIGTERM (`kill`, a job scheduler) and SIGHUP (the terminal closed) end any command as
    Ctrl-C does: by an exception, so that every `finally` runs (the file being written is
    removed, never left as a hidden temporary file; a staged output folder is removed). Exit
    status 128 + the signal, nothing printed. Installed once, by `main`, for every command; a
    signal the process was started ignoring (`nohup` ignores SIGHUP) stays ignored."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:  # one ignored (nohup) stays ignored
            signal.signal(sig, stop)


def main() -> None:
    try:
        from typer import _click as click  # recent Typer vendors its own click
    except ImportError:
        import click

    from posekit.console import err, error, keep_terminal_for_posekit
    from posekit.errors import PosekitError

    keep_terminal_for_posekit()  # from here on, stderr carries posekit's own lines only
    end_cleanly_on_signals()
    try:
        # standalone_mode=False: click's parsing errors come to us, so that they are one line
        # like every other error (Typer would draw a multi-line box), with exit status 2.
        code = app(standalone_mode=False)
        if code == 130:  # Typer turns Ctrl-C inside a command into a return code of 130
            raise KeyboardInterrupt
        from posekit import console

        code = code if isinstance(code, int) else 0
        sys.exit(1 if code == 0 and console.stdout_failed else code)  # its files written, its data not
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # `posekit`, `posekit poses` (click >= 8.2)
        err.file.write(e.ctx.get_help() + "\n")  # a usage error's help: on stderr, stdout is for data
        sys.exit(2)
    except click.exceptions.UsageError as e:
        where = e.ctx.command_path if e.ctx else "posekit"
        if not _another_process_says_it():
            error(f"{where}: {e.format_message()} (see '{where} --help')")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        error("interrupted")
        sys.exit(130)
    except PosekitError as e:
        if not (e.same_everywhere and _another_process_says_it()):
            error(str(e))
        sys.exit(e.exit_code)
    except BrokenPipeError:  # stdout's reader has gone (`posekit ... | head`): nothing to say
        from posekit.console import stdout_closed

        stdout_closed()
        sys.exit(1)
    except OSError as e:  # an output that cannot be written: full disk, a file where a folder must be, ...
        import errno

        if e.errno == errno.ENOSPC and not e.filename:  # (stdout's own: console.print_data)
            error("no space left on the disk being written (nothing half-written is left): free some space "
                  "or point --out at another disk")
        else:
            error(f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e))
        sys.exit(1)
    except Exception:  # a bug in posekit or a library: the traceback belongs on the terminal
        import traceback

        error("internal error (please report it with the lines below)")
        err.file.write(traceback.format_exc())
        sys.exit(1)


if __name__ == "__main__":
    main()

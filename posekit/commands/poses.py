"""Placeholder until the motions land: `posekit poses list|show`."""

import typer

app = typer.Typer(help="Built-in motions and pose sequences.", no_args_is_help=True)


@app.command("list")
def list_motions():
    """List the built-in motions."""
    from posekit.errors import PosekitError

    raise PosekitError("poses list is not available yet")

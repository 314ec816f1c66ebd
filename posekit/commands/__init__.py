"""CLI commands, one module per area. Only typer and the standard library at module top:
heavy imports go inside the command functions (posekit --help must start fast)."""

"""The `pastiche` command: stylize, info, and the training commands (cli.training)."""

from .commands import main

__all__ = ["main"]

"""CLI subcommands of the training side (train, add-style, optimize, evaluate)."""

from __future__ import annotations

import argparse


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the training subcommands to the ``pastiche`` parser."""

"""Sub-commands of the `distill` CLI, one module each (see `distill.cli`)."""

from __future__ import annotations

import argparse


def add_actions(parser: argparse.ArgumentParser, dest: str, *actions: tuple[str, str, str | None],
                required: bool = True) -> list[argparse.ArgumentParser]:
    """An `ACTION` argument stored in `dest`: one sub-parser per (name, help, description), in order. Each takes
    the hidden `--debug` as well, so `distill watermark detect ... --debug` works like `distill --debug ...`."""
    sub = parser.add_subparsers(dest=dest, metavar="ACTION", required=required)
    parsers = [sub.add_parser(name, help=text, description=description) for name, text, description in actions]
    for p in parsers:
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parsers

"""The `distill` command line. Each sub-command lives in its own module under `distill.commands`.

A command module defines `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`. New modules are
found automatically, so adding a command never touches this file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback

from distill import commands
from distill.errors import DistillError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="Language-model distillation toolkit.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors (the exit status is "
                        "the same as without it)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"distill.commands.{info.name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except DistillError as e:
        if args.debug:  # the traceback too, but the same exit status as without --debug
            traceback.print_exc()
        print(f"error: {e.paragraph()}", file=sys.stderr)
        return e.code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if args.debug:
            traceback.print_exc()
        print("error: out of memory. What to do: lower batch_size, seq_len or loss.chunk_size "
              "(see `distill train --help`), or use a smaller teacher.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

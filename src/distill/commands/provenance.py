"""`distill provenance`: the old name of `distill derivation`, kept for one release (a one-line notice on stderr).

"provenance" now means the licence gate, lineage and signing (`distill policy`, `distill lineage`, `distill keys`);
the statistical test of whether a model was derived from another is `distill derivation`.
"""

from __future__ import annotations

import argparse
import sys

from distill.commands import derivation

NAME = "provenance"
HELP = "old name of `distill derivation` (same options; removed in the next release)"
NOTICE = ("notice: `distill provenance` is now `distill derivation` (same options); the old name goes in the "
          "next release")

add_arguments = derivation.add_arguments


def run(args: argparse.Namespace) -> int:
    print(NOTICE, file=sys.stderr)
    return derivation.run(args)

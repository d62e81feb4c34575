"""`distill guard report`: accounts scored by the distillation-traffic guard, with the evidence behind each."""

from __future__ import annotations

import argparse
import json

from distill.commands import add_actions
from distill.errors import DistillError

NAME = "guard"
HELP = "distillation-traffic guard: list accounts with scores and evidence (report)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    (rp,) = add_actions(parser, "guard_action",
                        ("report", "list accounts with their scores, actions and evidence", None), required=False)
    rp.add_argument("--state", default="guard_state.json", help="guard state file (default guard_state.json)")
    rp.add_argument("--min-score", type=float, default=0.0, help="only accounts scoring at least this")
    rp.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from distill.protection.guard.report import format_table, load_state, rows

    if args.guard_action != "report":
        raise DistillError("choose an action: `distill guard report`", fix="see `distill guard --help`")
    state = load_state(args.state)
    state["accounts"] = {k: v for k, v in state.get("accounts", {}).items()
                         if v.get("score", 0.0) >= args.min_score}
    if args.json:
        print(json.dumps({"accounts": rows(state), "rules": state.get("rules", [])}))
    else:
        print(format_table(state))
    return 0

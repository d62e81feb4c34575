"""`distill policy check TEACHER`: the licence/terms gate's verdict for a teacher, without loading weights."""

from __future__ import annotations

import argparse
import json

from distill.commands import add_actions

NAME = "policy"
HELP = "check whether a teacher's licence or terms allow distillation (exit 0 allowed, 3 refused)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    check, _table = add_actions(
        parser, "policy_command",
        ("check", "print the gate's verdict for TEACHER",
         "Identify TEACHER from metadata only (GGUF metadata, config.json, README front matter, LICENSE files, hub id "
         "or API host) and print the policy verdict. Exit status: 0 allowed (possibly with obligations), 3 refused."),
        ("table", "list the policy table's rows and their verified status", None))
    check.add_argument("teacher", metavar="TEACHER",
                       help="a model spec ('default', a directory, a .gguf file, a hub id), or with --api-base "
                            "the API model name")
    check.add_argument("--api-base", metavar="URL", help="the teacher is served by this API (OpenAI-compatible)")
    check.add_argument("--local-model", metavar="SPEC",
                       help="with a local --api-base (localhost): the model the server runs, to identify it")
    check.add_argument("--authorization", metavar="FILE", help="authorization record (YAML/JSON) to apply")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")


def run(args: argparse.Namespace) -> int:
    from distill.provenance.policy import evaluate, identify_api, identify_spec, load_table

    if args.policy_command == "table":
        for row in load_table():
            print(f"{row.id:24} {row.verdict:26} verified={str(row.verified).lower():5} {row.source}")
        return 0
    if args.api_base:
        identity = identify_api(args.api_base, args.teacher, args.local_model)
    else:
        if args.local_model:
            from distill.errors import DistillError

            raise DistillError("--local-model only applies with --api-base", where="--local-model",
                               fix="drop it, or name the API with --api-base")
        identity = identify_spec(args.teacher)
    verdict = evaluate(identity, args.authorization)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(verdict.summary())
    return 3 if verdict.refused else 0

"""`distill train CONFIG.yaml [--set key=value ...]`"""

from __future__ import annotations

import argparse
import json
import os

NAME = "train"
HELP = "Distill a teacher into a student as a YAML config says (see examples/*.yaml)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config (omit to use every default: the demo setup)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.steps=20 --set loss.kind=jsd")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--signing-key", help="Ed25519 key for signing lineage.json (or $DISTILL_SIGNING_KEY)")
    p.add_argument("--authorization", help="authorization record permitting a teacher the policy gate refuses")
    p.add_argument("--help-config", action="store_true", help="list every config field with its meaning and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    import distill
    from distill.config import describe_fields

    if args.help_config:
        print("\n".join(describe_fields()))
        return 0
    overrides = list(args.overrides)
    if args.signing_key:
        overrides.append(f"signing_key={args.signing_key}")
    if args.authorization:
        overrides.append(f"teacher.authorization={args.authorization}")
    cfg = distill.load_config(args.config, overrides)
    if args.print_config:
        print(json.dumps(cfg.model_dump(mode="json"), indent=2))
        return 0
    result = distill.train(cfg, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    print(f"student written to {result.output_dir}")
    if result.final_eval:
        shown = {k: round(v, 4) for k, v in result.final_eval.items()
                 if k.startswith(("heldout", "top1")) and isinstance(v, float)}
        print("final held-out:", json.dumps(shown))
    return 0

"""`distill eval --teacher T --student S --data D [--json]`"""

from __future__ import annotations

import argparse
import json

NAME = "eval"
HELP = "Compare a student with its teacher: size, perplexity, KL, top-1 agreement, speed, retention."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default="default", help="teacher model (default: the bundled SmolLM2 teacher)")
    p.add_argument("--student", required=True, help="student model directory")
    p.add_argument("--data", default="shakespeare", help="evaluation data (its held-out split is used)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per evaluation sequence")
    p.add_argument("--sequences", type=int, default=32, help="held-out sequences to score")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    from distill.evaluation.report import evaluate, format_report

    report = evaluate(args.teacher, args.student, args.data, seq_len=args.seq_len, sequences=args.sequences)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0

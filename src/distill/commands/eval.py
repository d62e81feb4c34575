"""`distill eval --teacher T --student S --data D [--data D2 ...] [--tasks NAMES|FILE] [--teacher-endpoint URL] [--json]`"""

from __future__ import annotations

import argparse
import json

NAME = "eval"
HELP = "Compare a student with its teacher: size, perplexity, KL, top-1 agreement, speed, retention."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default="default", help="teacher model (default: the bundled SmolLM2 teacher)")
    p.add_argument("--student", "--exported", required=True, help="student model directory, or an export of one "
                   "(a .gguf file written by `distill export`, read dequantized; or an exported directory)")
    p.add_argument("--data", action="append", help="evaluation data (its held-out split is used; default "
                   "shakespeare). Repeat it to report several sets side by side, e.g. in-domain and out-of-domain")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per evaluation sequence")
    p.add_argument("--sequences", type=int, default=32, help="held-out sequences to score")
    p.add_argument("--teacher-endpoint", help="score against a teacher behind a server (vLLM or `distill serve`, "
                   "e.g. http://127.0.0.1:8000/v1); --teacher then names its tokenizer as a local spec")
    p.add_argument("--teacher-model", help="with --teacher-endpoint: the served model's name (default: --teacher)")
    p.add_argument("--top-k", type=int, default=20, help="with --teacher-endpoint: top-k asked per position")
    p.add_argument("--tasks", help="also run teacher and student through lm-evaluation-harness (pip install "
                   "'distill[eval]'): comma-separated task names, task YAML files or folders, e.g. "
                   "distill_shakespeare_next_line,distill_chatterbot_qa (bundled, offline) or hellaswag,arc_easy "
                   "(data from the Hugging Face hub on first use); adds accuracy ± stderr and retention per task")
    p.add_argument("--task-limit", type=int, help="with --tasks: at most this many documents per task")
    p.add_argument("--task-batch-size", type=int, default=8, help="with --tasks: lm-eval's batch size")
    p.add_argument("--teacher-precision", choices=["fp32", "bf16", "int8"], default="fp32",
                   help="score with the teacher at this precision (as teacher.precision in a run) and report its "
                   "KL(teacher_fp32 ‖ teacher_fast) per held-out token")
    p.add_argument("--draft", action="store_true", help="also run speculative decoding of the teacher with the "
                   "student as its draft model (transformers assisted generation, greedy and sampled) on held-out "
                   "prompts: mean accepted tokens per round, acceptance rate, wall-clock speed-up")
    p.add_argument("--draft-tokens", type=int, default=5, help="with --draft: tokens drafted per round (default 5)")
    p.add_argument("--draft-prompts", type=int, default=8, help="with --draft: held-out prompts per set (default 8)")
    p.add_argument("--draft-new-tokens", type=int, default=32, help="with --draft: tokens generated per prompt "
                   "(default 32)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    import distill
    from distill.evaluation.settings import EvalSettings

    fields = {k: getattr(args, k) for k in EvalSettings.model_fields if getattr(args, k, None) is not None}
    report = distill.evaluate(EvalSettings(**fields))
    print(json.dumps(dict(report), indent=2) if args.json else report.text())
    return 0

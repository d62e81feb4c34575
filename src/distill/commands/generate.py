"""`distill generate`: collect teacher answers (and top log-probabilities) from an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from distill.errors import DistillError

NAME = "generate"
HELP = "collect teacher answers and log-probabilities from an OpenAI-compatible API (resumable)"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", required=True, help="API base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="model name sent to the API")
    p.add_argument("--prompts", default=None,
                   help="prompt file: .jsonl (`prompt` or `messages` per line) or text (one prompt per line); "
                        "omitted or 'chatterbot': the English conversations of chatterbot-corpus")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N prompts (after de-duplication), e.g. to try a run on a subset")
    p.add_argument("--out", required=True, help="output folder (results.jsonl, failures.jsonl, accounting.json); "
                                                "re-running with the same folder resumes")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at most (default 8)")
    p.add_argument("--rpm", type=float, default=None, help="requests per minute at most (default: unlimited)")
    p.add_argument("--tpm", type=float, default=None, help="tokens per minute at most, prompt + completion "
                                                           "(default: unlimited)")
    p.add_argument("--top-logprobs", type=int, default=0,
                   help="top log-probabilities per token to request (0: none; OpenAI allows up to 20)")
    p.add_argument("--n", type=int, default=1, help="samples per prompt (default 1)")
    p.add_argument("--max-tokens", type=int, default=256, help="new tokens per sample (default 256)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0)")
    p.add_argument("--seed", type=int, default=None, help="sampling seed sent to the API (default: none)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key-env", default=None,
                     help="environment variable holding the API key (default: OPENAI_API_KEY when set)")
    key.add_argument("--api-key-file", default=None, help="file whose first line is the API key")
    p.add_argument("--tokenizer", default=None,
                   help="teacher tokenizer spec ('default', a model dir, a .gguf) to map log-prob tokens to ids")
    p.add_argument("--price-in", type=float, default=0.0, help="USD per million prompt tokens, for the cost")
    p.add_argument("--price-out", type=float, default=0.0, help="USD per million completion tokens, for the cost")
    p.add_argument("--max-tries", type=int, default=6, help="tries per prompt before giving up (default 6)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request, whole answer (default 120)")
    p.add_argument("--backoff", type=float, default=1.0,
                   help="first backoff step in seconds; doubles per retry with full jitter (default 1)")
    p.add_argument("--authorization", default=None,
                   help="authorization record permitting a teacher whose terms the policy gate refuses")
    p.add_argument("--teacher-spec", default=None,
                   help="for a local server: the model it serves ('default', a dir, a .gguf), so the policy "
                        "gate can identify it (default: --tokenizer)")
    p.add_argument("--tools", default=None,
                   help="a Python module whose public functions (type hints + Google-style docstrings) are tools "
                        "(or a JSON file of tool schemas with --tool-command): "
                        "they are sent as `tools`, each call the model makes runs locally (its own process, "
                        "--tool-timeout, --tool-max-chars; an error becomes the tool message) and the answer "
                        "goes back, up to --max-turns; each prompt is stored as a whole trajectory")
    p.add_argument("--tool-command", default=None,
                   help="with --tools tools.json (OpenAI tool schemas): the command that runs a call; it reads "
                        "{\"name\", \"arguments\"} as JSON on stdin and prints the result (a non-zero exit is "
                        "an error)")
    p.add_argument("--max-turns", type=int, default=8, help="with --tools: assistant turns per trajectory at most "
                                                            "(default 8)")
    p.add_argument("--tool-timeout", type=float, default=10.0, help="with --tools: seconds per tool call (default 10)")
    p.add_argument("--tool-max-chars", type=int, default=4000,
                   help="with --tools: characters of a tool's answer kept, the rest cut (default 4000)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _api_key(args: argparse.Namespace) -> str | None:
    from distill.keys.api import read_api_key

    return read_api_key(args.api_key_env, args.api_key_file, "--api-key-env / --api-key-file",
                        default_env="OPENAI_API_KEY")


def write_source(out: Path, endpoint: str, model: str, verdict) -> None:
    """Record where the set came from and the policy verdict (read by `distill train` for lineage)."""
    from distill.fileio import write_json_atomic

    write_json_atomic(out / "source.json", {"endpoint": endpoint, "model": model, "policy": verdict.to_dict()})


def run(args: argparse.Namespace) -> int:
    from distill.data.generated import RESULTS
    from distill.generate.client import GenerateConfig, run_generation
    from distill.generate.prompts import load_prompts

    logging.getLogger("httpx").setLevel(logging.WARNING)
    for opt in ("concurrency", "n", "max_tokens", "max_tries"):
        if getattr(args, opt) < 1:
            raise DistillError(f"--{opt.replace('_', '-')} must be at least 1", where="distill generate",
                               fix="pass a positive number")
    for opt in ("rpm", "tpm"):
        if getattr(args, opt) is not None and getattr(args, opt) <= 0:
            raise DistillError(f"--{opt} must be positive", where="distill generate", fix="pass a positive number "
                               "or leave it out for no limit")
    if args.top_logprobs < 0 or args.timeout <= 0 or args.backoff < 0 or args.price_in < 0 or args.price_out < 0:
        raise DistillError("--top-logprobs, --backoff and the prices must not be negative, --timeout positive",
                           where="distill generate", fix="fix the option values")
    from distill.provenance.policy import check_api_teacher

    # The licence/terms gate, before any request is sent.
    verdict = check_api_teacher(args.endpoint, args.model, args.authorization,
                                local_spec=args.teacher_spec or args.tokenizer)
    key = _api_key(args)
    prompts = load_prompts(args.prompts)
    if args.limit is not None:
        if args.limit < 1:
            raise DistillError("--limit must be at least 1", where="distill generate", fix="pass a positive number")
        prompts = prompts[: args.limit]
    tools = None
    if args.tool_command and not args.tools:
        raise DistillError("--tool-command runs the tools of --tools tools.json", where="distill generate",
                           fix="add --tools with the JSON schema file, or leave out --tool-command")
    if args.tools:
        from distill.generate.tools import load_tools

        tools = load_tools(args.tools, args.tool_command)
    tokenizer = None
    if args.tokenizer:
        from distill.models.loading import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    cfg = GenerateConfig(endpoint=args.endpoint, model=args.model, out_dir=args.out, prompts=prompts,
                         concurrency=args.concurrency, rpm=args.rpm, tpm=args.tpm, top_logprobs=args.top_logprobs,
                         n=args.n, max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                         seed=args.seed, api_key=key, tokenizer=tokenizer, price_in=args.price_in,
                         price_out=args.price_out, max_tries=args.max_tries, timeout=args.timeout,
                         backoff_base=args.backoff, progress=not args.no_progress, tools=tools,
                         max_turns=args.max_turns, tool_timeout=args.tool_timeout, tool_max_chars=args.tool_max_chars)
    acct = run_generation(cfg)
    write_source(Path(args.out), args.endpoint, args.model, verdict)
    print(acct.summary())
    print(f"results: {Path(args.out) / RESULTS}; accounting: {Path(args.out) / 'accounting.json'}")
    return 0 if acct.failed == 0 else 1

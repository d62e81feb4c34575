"""`distill generate`: collect teacher answers (and top log-probabilities) from an OpenAI-compatible API."""

from __future__ import annotations

import argparse
import logging

NAME = "generate"
HELP = "collect teacher answers and log-probabilities from an OpenAI-compatible API (resumable)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are GenerateSettings' (a flag left out is not passed); each flag sets the field of its name
    # (`--timeout`, `--backoff`, `--tool-timeout`: also as `--timeout-s` ..., the fields' names).
    p.add_argument("--endpoint", required=True, help="API base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", required=True, help="model name sent to the API")
    p.add_argument("--prompts", help="prompt file: .jsonl (`prompt` or `messages` per line) or text (one prompt per "
                   "line); omitted or 'chatterbot': the English conversations of chatterbot-corpus")
    p.add_argument("--limit", type=int,
                   help="use only the first N prompts (after de-duplication), e.g. to try a run on a subset")
    p.add_argument("--out", required=True, help="output folder (results.jsonl, failures.jsonl, accounting.json); "
                                                "re-running with the same folder resumes")
    p.add_argument("--concurrency", type=int, help="requests in flight at most (default 8)")
    p.add_argument("--rpm", type=float, help="requests per minute at most (default: unlimited)")
    p.add_argument("--tpm", type=float, help="tokens per minute at most, prompt + completion (default: unlimited)")
    p.add_argument("--top-logprobs", type=int,
                   help="top log-probabilities per token to request (0: none; OpenAI allows up to 20)")
    p.add_argument("--n", type=int, help="samples per prompt (default 1)")
    p.add_argument("--max-tokens", type=int, help="new tokens per sample (default 256)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    p.add_argument("--top-p", type=float, help="nucleus sampling mass (default 1.0)")
    p.add_argument("--seed", type=int, help="sampling seed sent to the API (default: none)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key-env", help="environment variable holding the API key (default: OPENAI_API_KEY when "
                     "set)")
    key.add_argument("--api-key-file", help="file whose first line is the API key")
    p.add_argument("--tokenizer",
                   help="teacher tokenizer spec ('default', a model dir, a .gguf) to map log-prob tokens to ids")
    p.add_argument("--price-in", type=float, help="USD per million prompt tokens, for the cost")
    p.add_argument("--price-out", type=float, help="USD per million completion tokens, for the cost")
    p.add_argument("--max-tries", type=int, help="tries per prompt before giving up (default 6)")
    p.add_argument("--timeout", "--timeout-s", dest="timeout_s", type=float, metavar="SECONDS",
                   help="seconds per request, whole answer (default 120)")
    p.add_argument("--backoff", "--backoff-s", dest="backoff_s", type=float, metavar="SECONDS",
                   help="first backoff step in seconds; doubles per retry with full jitter (default 1)")
    p.add_argument("--authorization",
                   help="authorization record permitting a teacher whose terms the policy gate refuses")
    p.add_argument("--teacher-spec", help="for a local server: the model it serves ('default', a dir, a .gguf), so "
                   "the policy gate can identify it (default: --tokenizer)")
    p.add_argument("--tools",
                   help="a Python module whose public functions (type hints + Google-style docstrings) are tools "
                        "(or a JSON file of tool schemas with --tool-command): "
                        "they are sent as `tools`, each call the model makes runs locally (its own process, "
                        "--tool-timeout, --tool-max-chars; an error becomes the tool message) and the answer "
                        "goes back, up to --max-turns; each prompt is stored as a whole trajectory")
    p.add_argument("--tool-command",
                   help="with --tools tools.json (OpenAI tool schemas): the command that runs a call; it reads "
                        "{\"name\", \"arguments\"} as JSON on stdin and prints the result (a non-zero exit is "
                        "an error)")
    p.add_argument("--max-turns", type=int, help="with --tools: assistant turns per trajectory at most (default 8)")
    p.add_argument("--tool-timeout", "--tool-timeout-s", dest="tool_timeout_s", type=float, metavar="SECONDS",
                   help="with --tools: seconds per tool call (default 10)")
    p.add_argument("--tool-max-chars", type=int,
                   help="with --tools: characters of a tool's answer kept, the rest cut (default 4000)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    import distill
    from distill.errors import invalid_settings
    from distill.generate.settings import GenerateSettings

    logging.getLogger("httpx").setLevel(logging.WARNING)
    fields = {k: getattr(args, k) for k in GenerateSettings.model_fields if getattr(args, k, None) is not None}
    try:
        settings = GenerateSettings(**fields)
    except ValidationError as e:
        raise invalid_settings(e, "generate settings", "distill generate", "fix the option values (see `distill "
                               "generate --help`)", flags=True) from None
    result = distill.collect(settings)
    print(result.accounting.summary())
    print(f"results: {result.results}; accounting: {result.out / 'accounting.json'}")
    return 0 if result.complete else 1

"""`distill trace`: radioactivity test - was a suspect model trained on our watermarked outputs?"""

from __future__ import annotations

import argparse
import json

from distill.errors import DistillError

NAME = "trace"
HELP = "test whether a suspect model was trained on watermarked outputs (radioactivity, exact p-value)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", required=True, help="watermark key file used when generating the data")
    parser.add_argument("--account", help="test with this API account's sub-key of --key (what `distill serve "
                        "--api-key-file` watermarked that account's answers with; `watermark detect --accounts` "
                        "names it)")
    parser.add_argument("--suspect-endpoint", help="closed mode: base URL of the suspect's OpenAI-compatible API")
    parser.add_argument("--model", help="closed mode: model name to request from the endpoint")
    parser.add_argument("--api-key-env", default=None,
                        help="closed mode: environment variable holding the endpoint's API key (never printed)")
    parser.add_argument("--suspect-model", help="open mode: the suspect's weights (directory, .gguf or hub id)")
    parser.add_argument("--watermarked-data", help="open mode: directory of JSONL rows with the watermarked text")
    parser.add_argument("--prompts", help="closed mode: prompts to send; open mode: text to feed instead of the "
                        "watermarked data (one per line or JSONL with prompt/text)")
    parser.add_argument("--filter-kgrams", action="store_true",
                        help="open mode: score only windows that occur in the watermarked data")
    parser.add_argument("--tokenizer", default="default", help="closed mode: tokenizer of the watermarked model")
    parser.add_argument("--max-tokens", type=int, default=200, help="closed mode: answer length requested")
    parser.add_argument("--alpha", type=float, default=1e-3, help="significance threshold for the verdict")
    parser.add_argument("--bare-text", action="store_true",
                        help="open mode: feed the watermarked answers alone, not after their chat prompts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from distill.keys.watermark import load_key
    from distill.protection.trace import (
        load_watermarked_rows,
        read_prompts,
        texts_and_prompts,
        trace_closed,
        trace_open,
    )

    closed, opened = bool(args.suspect_endpoint), bool(args.suspect_model)
    if closed == opened:
        raise DistillError("choose exactly one suspect: --suspect-endpoint URL --model NAME (closed mode) or "
                           "--suspect-model PATH (open mode)", fix="see `distill trace --help`")
    key = load_key(args.key)
    if args.account:
        key = key.for_account(args.account)
    if closed:
        if not args.model:
            raise DistillError("closed mode needs --model (the model name the endpoint serves)",
                               fix="add e.g. `--model student`")
        from distill.keys.api import read_api_key
        from distill.models.loading import load_tokenizer

        api_key = read_api_key(args.api_key_env, None, "--api-key-env")
        res = trace_closed(key, load_tokenizer(args.tokenizer), args.suspect_endpoint, args.model,
                           read_prompts(args.prompts), api_key=api_key, max_tokens=args.max_tokens)
    else:
        if not args.watermarked_data:
            raise DistillError("open mode needs --watermarked-data DIR (the JSONL the watermarked generator wrote)",
                               fix="add --watermarked-data")
        rows = load_watermarked_rows(args.watermarked_data)
        wm_texts, wm_prompts = texts_and_prompts(rows)
        texts = read_prompts(args.prompts) if args.prompts else wm_texts
        chats = None if args.prompts or args.bare_text else [msgs for msgs, _ in rows]
        res = trace_open(key, args.suspect_model, texts, wm_prompts, watermarked=wm_texts,
                         filter_kgrams=args.filter_kgrams, conversations=chats)
    from distill.protection.watermark.stats import min_tokens_needed

    need = min_tokens_needed(args.alpha, res["gamma"])
    if res["N"] < need:
        raise DistillError(f"too little to test: {res['N']} distinct units were scored, but at least {need} are "
                           f"needed before any p-value can fall below {args.alpha:g}", where=res["tested"],
                           fix="use more prompts or more watermarked text", code=4)
    res["alpha"] = args.alpha
    res["flagged"] = res["p_value"] < args.alpha
    if args.json:
        print(json.dumps(res))
    else:
        print(f"tested: {res['tested']}")
        print(f"N = {res['N']} distinct (window, token) units scored, S = {res['S']} green "
              f"(gamma = {res['gamma']:.2f}), z = {res['z']:.2f}, p = {res['p_value']:.3g} "
              f"(log10 p = {res['log10_p_value']:.2f}, exact binomial tail)")
        verdict = "FLAGGED: evidence of training on watermarked outputs" if res["flagged"] else "not flagged"
        print(f"{verdict} at alpha = {args.alpha:g}. {res['meaning']}")
    return 0

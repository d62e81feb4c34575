"""`distill watermark keygen|detect`: make a watermark key, or test text for the watermark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill.commands import add_actions
from distill.errors import DistillError

NAME = "watermark"
HELP = "create a watermark key (keygen) or test text for the watermark (detect)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kg, dt = add_actions(parser, "wm_action",
                         ("keygen", "write a new random 256-bit watermark key (mode 0600)", None),
                         ("detect", "test a text file for the watermark (exact binomial p-value)", None),
                         required=False)
    kg.add_argument("--out", required=True, help="key file to create (never overwritten)")
    kg.add_argument("--tokenizer", default="default", help="tokenizer the key is for (default: the default teacher)")
    kg.add_argument("--gamma", type=float, default=0.25, help="green-list fraction (default 0.25)")
    kg.add_argument("--delta", type=float, default=2.0, help="logit bias added to green tokens (default 2)")
    kg.add_argument("--context-width", type=int, default=None, help="h: context tokens hashed (default 4, or 1 "
                    "with --left-hash)")
    kg.add_argument("--left-hash", action="store_true", help="plain left-hash scheme instead of self-hash")
    dt.add_argument("text_file", help="text to test ('-' for stdin), or a results.jsonl / folder written by `distill generate`")
    dt.add_argument("--key", required=True, help="watermark key file")
    dt.add_argument("--tokenizer", default="default", help="tokenizer of the generating model")
    dt.add_argument("--prompt-file", help="the prompt the text answers; its text and windows are not scored")
    dt.add_argument("--accounts", help="file with one account name per line: test each account's sub-key")
    dt.add_argument("--alpha", type=float, default=1e-3, help="significance threshold (default 1e-3)")
    dt.add_argument("--json", action="store_true", help="print one JSON object")


def _read(path: str, what: str) -> str:
    """A text input as str; a binary file (NUL bytes, or not UTF-8) is refused rather than scored: the tokens of
    decoding noise would give a p-value that means nothing."""
    import sys

    where = "standard input" if path == "-" else path
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise DistillError(f"cannot read the {what} ({e.strerror})", where=where, fix="check the path") from e
    from distill.fileio import decode_text

    return decode_text(data, what, where, "pass UTF-8 text (convert other encodings first, e.g. `iconv -f latin1 -t "
                       "utf-8`)", refused="; it was not tested")


def _keygen(args: argparse.Namespace) -> int:
    from distill.models.loading import load_tokenizer
    from distill.protection.watermark.keys import new_key, save_key

    h = args.context_width if args.context_width is not None else (1 if args.left_hash else 4)
    key = new_key(load_tokenizer(args.tokenizer), gamma=args.gamma, delta=args.delta, context_width=h,
                  self_hash=not args.left_hash)
    path = save_key(key, args.out)
    scheme = "left-hash" if args.left_hash else "self-hash"
    print(f"wrote watermark key {key.key_id} to {path} (mode 0600; {scheme}, gamma={key.gamma:g}, "
          f"delta={key.delta:g}, h={key.context_width}, vocab {key.vocab_size}). Keep it secret.")
    return 0


def _meaning(p: float, alpha: float) -> str:
    if p < alpha:
        return (f"watermark detected: text written without this key would score this green a count with probability "
                f"{p:.3g} (< {alpha:g})")
    return (f"no evidence of the watermark at alpha={alpha:g}; this does not prove the text is unwatermarked "
            f"(it may be short, edited or paraphrased)")


def _detect(args: argparse.Namespace) -> int:
    from distill.models.loading import load_tokenizer
    from distill.protection.watermark.detect import detect_accounts, detect_text, require_enough
    from distill.protection.watermark.keys import load_key
    from distill.protection.watermark.stats import min_tokens_needed

    if not 0 < args.alpha < 1:
        raise DistillError(f"--alpha must be between 0 and 1 (got {args.alpha})", fix="use e.g. 1e-3")
    key = load_key(args.key)
    prompt = _read(args.prompt_file, "prompt file") if args.prompt_file else None
    if args.text_file.endswith(".jsonl") or Path(args.text_file).is_dir():
        # answers collected by `distill generate`: score every answer, excluding every prompt
        from distill.protection.trace import load_watermarked_data

        texts, prompts = load_watermarked_data(args.text_file)
        text = "\n\n".join(texts)
        prompt = "\n\n".join(([prompt] if prompt else []) + prompts) or None
    else:
        text = _read(args.text_file, "text file")
    tok = load_tokenizer(args.tokenizer)
    key.check_tokenizer(tok, where=f"{args.key} vs tokenizer {args.tokenizer}")
    if args.accounts:
        names = [n.strip() for n in _read(args.accounts, "accounts file").splitlines() if n.strip()]
        if not names:
            raise DistillError("the accounts file lists no account names", where=args.accounts,
                               fix="write one account name per line")
        res = detect_accounts(key, names, tok, text, prompt)
        best = res["best"]
        n = res["keys_tested"]
        from distill.protection.watermark.detect import Detection

        require_enough(Detection(**best), args.alpha, n)
        out = {"tokens_scored": best["tokens_scored"], "green": best["green"], "z": best["z"],
               "p_value": res["p_value_corrected"], "log10_p_value": res["log10_p_value_corrected"],
               "p_value_uncorrected": best["p_value"], "keys_tested": n, "correction": "bonferroni",
               "best_account": best["account"] or "(master key)", "gamma": best["gamma"],
               "detected": res["p_value_corrected"] < args.alpha, "alpha": args.alpha,
               "per_key": [{"account": r["account"] or "(master key)", "tokens_scored": r["tokens_scored"],
                            "green": r["green"], "z": r["z"], "p_value": r["p_value"]} for r in res["results"]]}
    else:
        det = detect_text(key, tok, text, prompt)
        require_enough(det, args.alpha)
        out = {"tokens_scored": det.tokens_scored, "green": det.green, "z": det.z, "p_value": det.p_value,
               "log10_p_value": det.log10_p_value, "gamma": det.gamma, "tokens_total": det.tokens_total,
               "repeats_skipped": det.repeats, "prompt_windows_skipped": det.dropped_prompt_windows,
               "detected": det.p_value < args.alpha, "alpha": args.alpha, "key_id": key.key_id}
    out["min_tokens_for_alpha"] = min_tokens_needed(args.alpha, out["gamma"], out.get("keys_tested", 1))
    out["meaning"] = _meaning(out["p_value"], args.alpha)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"tokens scored {out['tokens_scored']}, green {out['green']} (expected {out['gamma']:.2f} of them "
              f"without the watermark), z = {out['z']:.2f}, p = {out['p_value']:.3g} "
              f"(log10 p = {out['log10_p_value']:.2f}; exact binomial tail)")
        if "best_account" in out:
            print(f"best match: account {out['best_account']} (Bonferroni-corrected over {out['keys_tested']} keys)")
        print(out["meaning"])
    return 0


def run(args: argparse.Namespace) -> int:
    if args.wm_action == "keygen":
        return _keygen(args)
    if args.wm_action == "detect":
        return _detect(args)
    raise DistillError("choose an action: `distill watermark keygen` or `distill watermark detect`",
                       fix="see `distill watermark --help`")

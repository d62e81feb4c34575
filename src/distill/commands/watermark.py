"""`distill watermark keygen|calibrate|detect`: make a watermark key, calibrate it on ordinary text, or test text."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distill.commands import add_actions
from distill.errors import DistillError

NAME = "watermark"
HELP = "create a watermark key (keygen), calibrate it on a reference corpus (calibrate) or test text (detect)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kg, cb, dt = add_actions(
        parser, "wm_action",
        ("keygen", "write a new random 256-bit watermark key (mode 0600)", None),
        ("calibrate", "fit the key's null on ordinary text (stored next to the key; used by detect)",
         "Score passages of a reference corpus of ordinary text with the key, exclude units frequent in it and fit "
         "a beta-binomial null per key, so that detect's p-value holds for this one key on related texts "
         "(docs/protect.md)."),
        ("detect", "test a text file for the watermark (exact p-value; calibrated when the key has a calibration)",
         None),
        required=False)
    kg.add_argument("--out", required=True, help="key file to create (never overwritten)")
    kg.add_argument("--tokenizer", default="default", help="tokenizer the key is for (default: the default teacher)")
    kg.add_argument("--gamma", type=float, default=0.25, help="green-list fraction (default 0.25)")
    kg.add_argument("--delta", type=float, default=2.0, help="logit bias added to green tokens (default 2)")
    kg.add_argument("--context-width", type=int, default=None, help="h: context tokens hashed (default 4, or 1 "
                    "with --left-hash)")
    kg.add_argument("--left-hash", action="store_true", help="plain left-hash scheme instead of self-hash")
    cb.add_argument("--key", required=True, help="watermark key file")
    cb.add_argument("--corpus", nargs="+", required=True, help="reference text of the kind you will test: UTF-8 "
                    "text files, folders of .txt files, or `shakespeare` (the bundled corpus); each file is one "
                    "document")
    cb.add_argument("--tokenizer", default="default", help="tokenizer of the generating model")
    cb.add_argument("--accounts", help="file with one account name per line: calibrate each account's sub-key too")
    cb.add_argument("--passage-tokens", type=int, default=None, help="tokens per reference passage (default 114)")
    cb.add_argument("--max-unit-share", type=float, default=None, help="units in at least this share of reference "
                    "passages are not scored (default 0.002)")
    cb.add_argument("--out", help="calibration file (default: next to the key, KEY.calib.json)")
    cb.add_argument("--json", action="store_true", help="print one JSON object")
    dt.add_argument("text_file", help="text to test ('-' for stdin), or a results.jsonl / folder written by `distill generate`")
    dt.add_argument("--key", required=True, help="watermark key file")
    dt.add_argument("--tokenizer", default="default", help="tokenizer of the generating model")
    dt.add_argument("--prompt-file", help="the prompt the text answers; its text and windows are not scored")
    dt.add_argument("--accounts", help="file with one account name per line: test each account's sub-key")
    dt.add_argument("--alpha", type=float, default=1e-3, help="significance threshold (default 1e-3)")
    dt.add_argument("--calibration", help="calibration file (default: KEY.calib.json next to the key, if present)")
    dt.add_argument("--no-calibration", action="store_true", help="ignore any calibration: the exact binomial test, "
                    "which holds over random keys but not for one key on many related texts")
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
    from distill.keys.watermark import new_key, save_key
    from distill.models.loading import load_tokenizer

    h = args.context_width if args.context_width is not None else (1 if args.left_hash else 4)
    key = new_key(load_tokenizer(args.tokenizer), gamma=args.gamma, delta=args.delta, context_width=h,
                  self_hash=not args.left_hash)
    path = save_key(key, args.out)
    scheme = "left-hash" if args.left_hash else "self-hash"
    print(f"wrote watermark key {key.key_id} to {path} (mode 0600; {scheme}, gamma={key.gamma:g}, "
          f"delta={key.delta:g}, h={key.context_width}, vocab {key.vocab_size}). Keep it secret.")
    return 0


def _read_accounts(path: str) -> list[str]:
    names = [n.strip() for n in _read(path, "accounts file").splitlines() if n.strip()]
    if not names:
        raise DistillError("the accounts file lists no account names", where=path, fix="write one account name per line")
    return names


def _corpus_documents(paths: list[str]) -> tuple[list[str], str]:
    """The documents of `--corpus` (one per file) and a description naming the files (never their text)."""
    from distill.data.corpus import read_text, shakespeare_files

    docs, names = [], []
    for p in paths:
        if p == "shakespeare":
            files = shakespeare_files()
            docs += [read_text(f) for f in files]
            names.append(f"shakespeare ({len(files)} plays)")
            continue
        path = Path(p)
        files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise DistillError("the corpus folder holds no .txt files", where=p, fix="pass text files or a folder of them")
        docs += [_read(str(f), "corpus file") for f in files]
        names.append(p if len(files) == 1 else f"{p} ({len(files)} files)")
    return docs, ", ".join(names)


def _calibrate(args: argparse.Namespace) -> int:
    from distill.keys.watermark import load_key
    from distill.models.loading import load_tokenizer
    from distill.protection.watermark.calibrate import (
        MAX_UNIT_SHARE,
        PASSAGE_TOKENS,
        calibration_path,
        fit_calibration,
        reference_passages,
        save_calibration,
    )
    from distill.protection.watermark.detect import account_keys

    key = load_key(args.key)
    n_tok = args.passage_tokens or PASSAGE_TOKENS
    share = args.max_unit_share if args.max_unit_share is not None else MAX_UNIT_SHARE
    if not 16 <= n_tok <= 4096:
        raise DistillError(f"--passage-tokens must be between 16 and 4096 (got {n_tok})",
                           fix="use about the length of the texts you will test, e.g. 114")
    tok = load_tokenizer(args.tokenizer)
    key.check_tokenizer(tok, where=f"{args.key} vs tokenizer {args.tokenizer}")
    docs, described = _corpus_documents(args.corpus)
    passages, doc_of = reference_passages(tok, docs, n_tok)
    keys = account_keys(key, _read_accounts(args.accounts)) if args.accounts else [key]
    cals = [fit_calibration(k, passages, doc_of, share, described) for k in keys]
    out = save_calibration(cals, args.out or calibration_path(args.key))
    res = {"calibration_file": str(out), "corpus": described, "keys": [c.public_dict() for c in cals]}
    if args.json:
        print(json.dumps(res))
    else:
        for c in cals:
            d = c.public_dict()
            who = f"account {c.account}" if c.account else "master key"
            print(f"{who} {c.key_id}: {d['passages']} passages of {d['passage_tokens']} tokens from {d['documents']} "
                  f"documents; {d['excluded_units']} frequent units excluded ({100 * (1 - d['units_kept_share']):.0f}% "
                  f"of reference units); null green rate {c.mean:.4f} (fitted {d['green_rate_fitted']:.4f}), "
                  f"rho {c.rho:.4f}")
        print(f"wrote {out} (no key material: excluded units are stored as keyed tags). `distill watermark detect "
              f"--key {args.key}` uses it automatically.")
    return 0


def _meaning(p: float, alpha: float) -> str:
    if p < alpha:
        return (f"watermark detected: text written without this key would score this green a count with probability "
                f"{p:.3g} (< {alpha:g})")
    return (f"no evidence of the watermark at alpha={alpha:g}; this does not prove the text is unwatermarked "
            f"(it may be short, edited or paraphrased)")


def _detect(args: argparse.Namespace) -> int:
    from distill.keys.watermark import load_key
    from distill.models.loading import load_tokenizer
    from distill.protection.watermark.detect import account_keys, detect_accounts, detect_text, require_enough
    from distill.protection.watermark.stats import min_tokens_needed

    if not 0 < args.alpha < 1:
        raise DistillError(f"--alpha must be between 0 and 1 (got {args.alpha})", fix="use e.g. 1e-3")
    key = load_key(args.key)
    names = _read_accounts(args.accounts) if args.accounts else []
    cals, cal_file = _calibrations_for(args, key, names)
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
        res = detect_accounts(key, names, tok, text, prompt, cals)
        best = res["best"]
        n = res["keys_tested"]
        from distill.protection.watermark.detect import Detection

        shown = best_key = next(k for k in account_keys(key, names) if k.account == best["account"])
        require_enough(Detection(**best), args.alpha, n, cals[best_key.key_id] if cals else None)
        out = {"tokens_scored": best["tokens_scored"], "green": best["green"], "z": best["z"],
               "p_value": res["p_value_corrected"], "log10_p_value": res["log10_p_value_corrected"],
               "p_value_uncorrected": best["p_value"], "keys_tested": n, "correction": "bonferroni",
               "best_account": best["account"] or "(master key)", "gamma": best["gamma"],
               "detected": res["p_value_corrected"] < args.alpha, "alpha": args.alpha,
               "per_key": [{"account": r["account"] or "(master key)", "tokens_scored": r["tokens_scored"],
                            "green": r["green"], "z": r["z"], "p_value": r["p_value"]} for r in res["results"]]}
    else:
        shown, cal = key, cals[key.key_id] if cals else None
        det = detect_text(key, tok, text, prompt, cal)
        require_enough(det, args.alpha, 1, cal)
        out = {"tokens_scored": det.tokens_scored, "green": det.green, "z": det.z, "p_value": det.p_value,
               "log10_p_value": det.log10_p_value, "gamma": det.gamma, "tokens_total": det.tokens_total,
               "repeats_skipped": det.repeats, "prompt_windows_skipped": det.dropped_prompt_windows,
               "detected": det.p_value < args.alpha, "alpha": args.alpha, "key_id": key.key_id,
               "frequent_units_skipped": det.extra.get("frequent_units_skipped", 0)}
    n_keys = out.get("keys_tested", 1)
    out["calibrated"] = cals is not None
    out["calibration_file"] = cal_file
    out["min_tokens_for_alpha"] = (cals[shown.key_id].min_tokens(args.alpha, n_keys) if cals
                                   else min_tokens_needed(args.alpha, out["gamma"], n_keys))
    out["meaning"] = _meaning(out["p_value"], args.alpha)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"tokens scored {out['tokens_scored']}, green {out['green']} (expected {out['gamma']:.2f} of them "
              f"without the watermark), z = {out['z']:.2f}, p = {out['p_value']:.3g} "
              f"(log10 p = {out['log10_p_value']:.2f}; {_null_words(cals, shown)})")
        if "best_account" in out:
            print(f"best match: account {out['best_account']} (Bonferroni-corrected over {out['keys_tested']} keys)")
        print(out["meaning"])
    return 0


def _calibrations_for(args: argparse.Namespace, key, names: list[str]) -> tuple[dict | None, str | None]:
    """The calibrations of the key (and of each account's sub-key) to use, and their file; (None, None) when the
    exact binomial test is used (--no-calibration, or no calibration file next to the key)."""
    from distill.protection.watermark.calibrate import calibration_path, load_calibration
    from distill.protection.watermark.detect import account_keys

    if args.no_calibration:
        if args.calibration:
            raise DistillError("--calibration and --no-calibration contradict each other", fix="pass one of them")
        return None, None
    path = Path(args.calibration) if args.calibration else calibration_path(args.key)
    if not args.calibration and not path.exists():
        return None, None
    return load_calibration(path, account_keys(key, names)), str(path)


def _null_words(cals: dict | None, key) -> str:
    if not cals:
        return "exact binomial tail; no calibration for this key"
    c = cals[key.key_id]
    return f"calibrated null of this key: beta-binomial, mean {c.mean:.4f}, rho {c.rho:.4f}, frequent units skipped"


def run(args: argparse.Namespace) -> int:
    if args.wm_action == "keygen":
        return _keygen(args)
    if args.wm_action == "calibrate":
        return _calibrate(args)
    if args.wm_action == "detect":
        return _detect(args)
    raise DistillError("choose an action: `distill watermark keygen`, `calibrate` or `detect`",
                       fix="see `distill watermark --help`")

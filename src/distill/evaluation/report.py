"""The teacher-vs-student report: size, held-out perplexity, KL(teacher‖student), top-1 agreement,
greedy generation speed, and retention (student as a share of the teacher)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from distill.config import DataConfig
from distill.data.corpus import collate, load_corpus
from distill.errors import DistillError
from distill.loss.fused import evaluate_chunks
from distill.models.loading import check_compatible, load_model
from distill.models.students import param_count
from distill.signals import DenseSignal, LiveTeacher, scored_positions


def size_on_disk(info) -> int:
    p = Path(info.path if info.kind == "gguf" else info.local_dir)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.glob("*.safetensors")) if p.is_dir() else 0


@torch.no_grad()
def generation_speed(model, tokenizer, prompts: list[str], new_tokens: int = 32) -> float:
    """Greedy generation tokens/s with the KV cache, batch 1, averaged over the prompts."""
    total_tokens, total_time = 0, 0.0
    for text in prompts:
        ids = tokenizer(text, return_tensors="pt").input_ids[:, -64:]
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        total_time += time.perf_counter() - t0
        total_tokens += out.shape[1] - ids.shape[1]
    return total_tokens / max(total_time, 1e-9)


def evaluate(teacher: str = "default", student: str | None = None, data: str = "shakespeare",
             seq_len: int = 256, sequences: int = 32, batch_size: int = 4, gen_prompts: int = 3,
             chunk_size: int = 64) -> dict:
    """The report as a dict: {"teacher": {...}, "student": {...}, "retention": {...}, "data": ...}."""
    if not student:
        raise DistillError("no student given", fix="pass --student DIR (a directory written by `distill train`)")
    t, s = load_model(teacher), load_model(student)
    vocab = check_compatible(t.tokenizer, s.tokenizer, t.model, s.model)
    corpus = load_corpus(DataConfig(path=data, seq_len=seq_len), t.tokenizer)
    seqs = corpus.heldout[:sequences]
    live = LiveTeacher(t.model, vocab)
    sums = {"t_nll": 0.0, "s_nll": 0.0, "kl": 0.0, "agree": 0, "tokens": 0}
    for start in range(0, len(seqs), batch_size):
        ids = list(range(start, min(start + batch_size, len(seqs))))
        batch = collate([seqs[i] for i in ids], t.tokenizer.pad_token_id, ids)
        positions = scored_positions(batch)
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        signal = live.signal(batch, positions)
        h = s.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hs = h.last_hidden_state.reshape(-1, h.last_hidden_state.shape[-1]).index_select(0, positions)
        part = evaluate_chunks(hs, s.model.get_output_embeddings().weight[:vocab], signal, targets, chunk_size)
        tpart = evaluate_chunks(signal.hidden, signal.head, DenseSignal(signal.hidden, signal.head), targets,
                                chunk_size)
        sums["s_nll"] += part["nll_sum"]
        sums["t_nll"] += tpart["nll_sum"]
        sums["kl"] += part["kl_sum"]
        sums["agree"] += part["agree"]
        sums["tokens"] += part["tokens"]
    n = max(sums["tokens"], 1)
    prompts = [t.tokenizer.decode(seqs[i]["input_ids"][:48]) for i in range(min(gen_prompts, len(seqs)))]
    report = {"data": corpus.description, "tokens_scored": sums["tokens"]}
    for who, m, nll in (("teacher", t, sums["t_nll"]), ("student", s, sums["s_nll"])):
        report[who] = {
            "model": m.info.name,
            "parameters": param_count(m.model),
            "size_bytes": size_on_disk(m.info),
            "heldout_ppl": math.exp(min(nll / n, 50)),
            "gen_tokens_per_s": generation_speed(m.model, m.tokenizer, prompts),
        }
    report["student"]["kl_teacher_student"] = sums["kl"] / n
    report["student"]["top1_agreement"] = sums["agree"] / n
    T, S = report["teacher"], report["student"]
    report["retention"] = {
        "parameters": S["parameters"] / T["parameters"],
        "size": S["size_bytes"] / max(T["size_bytes"], 1),
        "ppl_ratio": S["heldout_ppl"] / T["heldout_ppl"],
        "speedup": S["gen_tokens_per_s"] / max(T["gen_tokens_per_s"], 1e-9),
        "top1_agreement": S["top1_agreement"],
    }
    return report


def format_report(r: dict) -> str:
    T, S, R = r["teacher"], r["student"], r["retention"]
    rows = [
        ("parameters", f"{T['parameters'] / 1e6:.1f} M", f"{S['parameters'] / 1e6:.1f} M", f"{R['parameters']:.1%}"),
        ("size on disk", f"{T['size_bytes'] / 2**20:.1f} MiB", f"{S['size_bytes'] / 2**20:.1f} MiB",
         f"{R['size']:.1%}"),
        ("held-out perplexity", f"{T['heldout_ppl']:.2f}", f"{S['heldout_ppl']:.2f}", f"×{R['ppl_ratio']:.2f}"),
        ("KL(teacher‖student)/token", "0", f"{S['kl_teacher_student']:.4f}", ""),
        ("top-1 agreement", "100%", f"{S['top1_agreement']:.1%}", ""),
        ("greedy tokens/s", f"{T['gen_tokens_per_s']:.1f}", f"{S['gen_tokens_per_s']:.1f}", f"×{R['speedup']:.2f}"),
    ]
    w = [max(len(str(row[i])) for row in rows + [("metric", "teacher", "student", "student/teacher")])
         for i in range(4)]
    head = ("metric", "teacher", "student", "student/teacher")
    lines = [" | ".join(h.ljust(w[i]) for i, h in enumerate(head)), "-+-".join("-" * x for x in w)]
    lines += [" | ".join(str(c).ljust(w[i]) for i, c in enumerate(row)) for row in rows]
    return f"Data: {r['data']} ({r['tokens_scored']} tokens scored)\n" + "\n".join(lines)

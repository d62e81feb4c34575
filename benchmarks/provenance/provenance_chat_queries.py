"""Open-mode provenance on chat-domain queries: the teacher's answers to chatterbot prompts that no model was trained on.

The black-box student of bench_provenance.py learned from the teacher's answers to the first 128 chatterbot prompts;
Shakespeare passages are outside its domain. Here the queries are the teacher's answers (rendered with its chat
template) to other prompts — the greedy answers and the T = 0.7 answers stored by bench_antidistill.py, one answer per
prompt — and agreement is counted on the answer tokens only (the chat template is the tokenizer's, not the parent's
signal). Both statistics (suspect- and parent-centred) against the references ce_s11, ce_s12, oth_s21, as in
provenance_statistics.py.

    .venv/bin/python -m benchmarks.provenance.provenance_chat_queries --work /tmp/provbench \
        --answers /tmp/antidistill/eval,/tmp/antidistill/calib,/tmp/antidistill/sets/plain_T=0.7

Writes benchmarks/results/provenance_chat_queries.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.provenance.bench_provenance import DERIVED, REFS, UNDERIVED
from benchmarks.provenance.provenance_statistics import MODELS, main_table


@torch.inference_mode()
def answer_predictions(spec: str, examples: list[dict]) -> list[torch.Tensor]:
    """The model's top-1 next token at every answer position (where the example's loss mask is set)."""
    from distill.models.loading import load_model

    model = load_model(spec).model.float().eval()
    out = []
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]])
        mask = torch.tensor(ex["loss_mask"][:-1], dtype=torch.bool)
        out.append(model(input_ids=ids).logits[0, :-1][mask].argmax(-1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/provbench")
    ap.add_argument("--answers", required=True, help="comma-separated `distill generate` folders of the teacher")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from distill.data.generated import load_generated
    from distill.models.loading import load_tokenizer

    tok = load_tokenizer("default")
    seen: set[str] = set()
    examples = []
    for folder in args.answers.split(","):
        for ex in load_generated(Path(folder), tok):
            key = tok.decode(ex["input_ids"][: max(1, ex["loss_mask"].index(1) if 1 in ex["loss_mask"] else 1)])
            if key not in seen and sum(ex["loss_mask"]) > 1:  # one answer per prompt
                seen.add(key)
                examples.append(ex)
    models = json.loads((RESULTS / "provenance" / "provenance.json").read_text())["models"]
    preds = {}
    for m in MODELS:
        t0 = time.perf_counter()
        preds[m] = answer_predictions(models[m], examples)
        print(f"# {m}: {time.perf_counter() - t0:.0f}s", flush=True)
    ag = {(a, b): np.array([float((x == y).float().mean()) for x, y in zip(preds[a], preds[b], strict=True)])
          for a in MODELS for b in MODELS if a != b}
    n = len(examples)
    res: dict = {"args": vars(args), "queries": n, "answer_tokens": int(sum(len(p) for p in preds["teacher"])),
                 "mean_agreement": {f"{a}|{b}": round(float(v.mean()), 4) for (a, b), v in ag.items() if a < b}}
    print(f"{n} queries (one answer per prompt), {res['answer_tokens']} answer tokens")
    for kind in ("suspect", "parent"):
        t = main_table(ag, kind, n)
        res[f"{kind}_centred"] = t
        print(f"\n## {kind}-centred: precision {t['precision']}, recall {t['recall']} at p < 0.01")
        print("| suspect | derived? | agreement with teacher | mean gap vs ce_s11 / ce_s12 / oth_s21 | p | queries for "
              "p<1e-5 |")
        print("|---|---|---|---|---|---|")
        for s in DERIVED + UNDERIVED:
            r, g = t["rows"][s], t["rows"][s]["mean_gap"]
            print(f"| {s} | {'yes' if r['derived_truth'] else 'no'} | {ag[s, 'teacher'].mean():.3f} | "
                  f"{g['ce_s11']:+.3f} / {g['ce_s12']:+.3f} / {g['oth_s21']:+.3f} | {r['p']:.2g} | "
                  f"{r['queries_for_1e-5'] or '-'} |")
    print("references' agreement with the teacher:", {r: round(float(ag[r, "teacher"].mean()), 3) for r in REFS})
    write_result(RESULTS / "provenance" / "provenance_chat_queries.json", res)


if __name__ == "__main__":
    main()

"""Exports of a trained student (issue 28): file size, KL to the student and top-1 per format, and the student as
its teacher's draft model.

Each export is `distill.export` exactly as `distill export` runs it (written, read back by transformers, measured on
held-out Shakespeare against the student, computed in fp32). With --draft, speculative decoding of the default
teacher with the student drafting (transformers assisted generation, `distill.evaluation.draft`) on held-out
Shakespeare and chatterbot prompts, greedy and sampled; with --ce-student, the same for a CE-only student of the same
shape trained the same steps (DistillSpec's comparison).

    make demo        # or: distill train examples/demo.yaml  -> runs/demo-student
    python -m benchmarks.deploy.bench_export --student runs/demo-student [--draft] [--ce-student DIR]

Results: benchmarks/results/deploy/export.json (with its provenance: commit, CPU, library versions, the command).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchmarks.common import RESULTS, chatterbot_text, write_result

EXPORTS = [("hf", "bf16", None), ("gguf", "f16", None), ("gguf", None, "q8_0"), ("gguf", None, "q5_0"),
           ("gguf", None, "q4_0")]


def llama_cpp_speed(path: Path, prompts: list[list[int]], new_tokens: int, threads: int) -> dict | None:
    """llama.cpp's greedy tokens/s on the GGUF file (batch 1, its KV cache, `threads` threads; the prompt's
    evaluation not counted; `torch_speed` is the same for the student); None where llama-cpp-python is not
    installed."""
    from distill.deploy.check import llama_cpp_available

    if not llama_cpp_available():
        return None
    import time

    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=max(len(p) for p in prompts) + new_tokens + 8, n_threads=threads,
                verbose=False)
    seconds, tokens = 0.0, 0
    for ids in prompts:
        llm.reset()
        llm.eval(ids)
        t = time.perf_counter()
        n = 0
        for tok in llm.generate([], temp=0.0, reset=False):
            n += 1
            if n >= new_tokens or tok == llm.token_eos():
                break
        seconds, tokens = seconds + time.perf_counter() - t, tokens + n
    return {"threads": threads, "prompts": len(prompts), "new_tokens": tokens,
            "tokens_per_s": tokens / max(seconds, 1e-9)}


def torch_speed(student: str, prompts: list[list[int]], new_tokens: int, threads: int) -> dict:
    """The student's own greedy tokens/s in torch (as saved, batch 1, KV cache), the prompt's forward not counted."""
    import time

    import torch

    from distill.models.loading import load_model

    torch.set_num_threads(threads)
    m = load_model(student).model.eval()
    seconds, tokens = 0.0, 0
    with torch.no_grad():
        for ids in prompts:
            out = m(torch.tensor([ids]), use_cache=True)
            past, nxt = out.past_key_values, out.logits[0, -1].argmax()
            t = time.perf_counter()
            for _ in range(new_tokens - 1):
                out = m(nxt.view(1, 1), past_key_values=past, use_cache=True)
                past, nxt = out.past_key_values, out.logits[0, -1].argmax()
            seconds, tokens = seconds + time.perf_counter() - t, tokens + new_tokens - 1
    return {"threads": threads, "prompts": len(prompts), "dtype": str(next(m.parameters()).dtype),
            "tokens_per_s": tokens / max(seconds, 1e-9)}


def exports(student: str, work: Path, sequences: int, seq_len: int, speed: dict | None = None) -> list[dict]:
    from distill.deploy.check import DEFAULT_MAX_KL
    from distill.deploy.export import ExportSettings, export

    rows = []
    for fmt, dtype, quant in EXPORTS:
        name = f"{quant or dtype}" + (".gguf" if fmt == "gguf" else "")
        # no limit: every figure recorded; `refused_at_default` says what the default does
        rec = export(ExportSettings(student=student, format=fmt, dtype=dtype, quant=quant, out=str(work / name),
                                    sequences=sequences, seq_len=seq_len, max_kl=float("inf")))
        fast = None
        if speed is not None and fmt == "gguf":
            fast = llama_cpp_speed(work / name, speed["prompts"], speed["new_tokens"], speed["threads"])
            if fast:
                print(f"     llama.cpp greedy {fast['tokens_per_s']:.1f} tokens/s", flush=True)
        rows.append({"format": fmt, "weights": rec["weights"], "size_bytes": rec["size_bytes"], "llama_cpp_speed": fast,
                     "kl_per_token": rec["check"]["kl_per_token"], "kl_max_token": rec["check"]["kl_max_token"],
                     "top1_agreement": rec["check"]["top1_agreement"], "tokens": rec["check"]["tokens"],
                     "tensors": rec["tensors"], "llama_cpp": rec.get("llama_cpp"), "seconds": rec["seconds"],
                     "refused_at_default": rec["check"]["kl_per_token"] > DEFAULT_MAX_KL[rec["weights"]]})
        print(f"{fmt:4} {rec['weights']:5} {rec['size_bytes'] / 2**20:8.1f} MiB  KL {rec['check']['kl_per_token']:.3g}"
              f"  top-1 {rec['check']['top1_agreement']:.2%}", flush=True)
    return rows


def control(student: str, work: Path, sequences: int, seq_len: int) -> dict:
    """What the check measures on a broken export: f16 with Llama's Q/K rows left in transformers' order (the
    permutation llama.cpp needs skipped), no limit, so the figure is recorded rather than refused."""
    from unittest import mock

    from distill.deploy import check, gguf_writer
    from distill.deploy.export import ExportSettings, export

    with mock.patch.object(gguf_writer, "_permute", lambda w, heads: w):
        rec = export(ExportSettings(student=student, format="gguf", out=str(work / "broken-f16.gguf"),
                                    sequences=sequences, seq_len=seq_len, max_kl=float("inf")))
    print(f"control (Q/K not permuted, f16): KL {rec['check']['kl_per_token']:.3g}  top-1 "
          f"{rec['check']['top1_agreement']:.2%}  (f16's default limit: {check.DEFAULT_MAX_KL['f16']:g})", flush=True)
    return {"kl_per_token": rec["check"]["kl_per_token"], "top1_agreement": rec["check"]["top1_agreement"]}


def drafts(students: dict[str, str], work: Path, prompts: int, new_tokens: int, draft_tokens: int) -> dict:

    from distill.config import DataConfig
    from distill.data.corpus import load_corpus
    from distill.evaluation.draft import check_draft_tokenizer, measure_draft
    from distill.models.loading import load_model

    teacher = load_model("default")
    sets = {"shakespeare": "shakespeare", "chatterbot": str(chatterbot_text(work / "chatterbot_en.txt"))}
    out: dict = {}
    for label, spec in students.items():
        s = load_model(spec)
        check_draft_tokenizer(teacher.tokenizer, s.tokenizer)
        for data, path in sets.items():
            held = load_corpus(DataConfig(path=path, seq_len=128), teacher.tokenizer).heldout[:prompts]
            ids = [list(map(int, q["input_ids"][:48])) for q in held]
            for sample in (False, True):
                r = measure_draft(teacher.model, s.model, ids, teacher.tokenizer.pad_token_id, new_tokens=new_tokens,
                                  draft_tokens=draft_tokens, sample=sample)
                out[f"{label}/{data}/{r['decoding']}"] = r
                print(f"{label:10} {data:11} {r['decoding']:13} accepted/round {r['mean_accepted_per_round']:.2f}  "
                      f"acceptance {r['acceptance_rate']:.1%}  speed-up ×{r['speedup']:.2f}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--student", default="runs/demo-student")
    ap.add_argument("--label", default="kd", help="the --student's name in the draft results (e.g. kd, or step0 "
                    "for an untrained pruned cut)")
    ap.add_argument("--ce-student", help="a CE-only student of the same shape and steps, for the draft comparison")
    ap.add_argument("--draft", action="store_true", help="also measure the student(s) as the teacher's draft")
    ap.add_argument("--draft-only", action="store_true", help="measure only the draft figures (no exports)")
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--draft-tokens", type=int, default=5)
    ap.add_argument("--speed-prompts", type=int, default=0, help="greedy tokens/s of each GGUF export in llama.cpp "
                    "(where llama-cpp-python is installed) and of the torch student, over this many held-out "
                    "Shakespeare prompts of 48 tokens, --new-tokens each (0: not measured)")
    ap.add_argument("--speed-threads", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "deploy" / "export.json"))
    args = ap.parse_args()
    if not (Path(args.student) / "config.json").is_file():
        sys.exit(f"no student at {args.student}: train the demo one first (`make demo`, or "
                 "`distill train examples/demo.yaml`), or pass --student DIR")
    from distill.evaluation.report import disk_format
    from distill.models.loading import load_model
    from distill.models.students import param_count

    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    src = load_model(args.student)
    results = {"student": args.student, "parameters": param_count(src.model),
               "student_bytes": sum(f.stat().st_size for f in Path(args.student).glob("*.safetensors")),
               "student_format": disk_format(src.info),
               "check": {"data": "shakespeare", "sequences": args.sequences, "seq_len": args.seq_len}}
    tok = src.tokenizer
    del src
    if not args.draft_only:
        speed = None
        if args.speed_prompts:
            from distill.config import DataConfig
            from distill.data.corpus import load_corpus

            held = load_corpus(DataConfig(path="shakespeare", seq_len=128), tok).heldout[:args.speed_prompts]
            speed = {"prompts": [list(map(int, q["input_ids"][:48])) for q in held], "new_tokens": args.new_tokens,
                     "threads": args.speed_threads}
            results["torch_speed"] = torch_speed(args.student, speed["prompts"], args.new_tokens, args.speed_threads)
            print(f"torch student greedy {results['torch_speed']['tokens_per_s']:.1f} tokens/s", flush=True)
        results["exports"] = exports(args.student, work, args.sequences, args.seq_len, speed)
        results["control_unpermuted_qk"] = control(args.student, work, args.sequences, args.seq_len)
    if args.draft or args.draft_only:
        students = {args.label: args.student, **({"ce": args.ce_student} if args.ce_student else {})}
        results["draft"] = {"prompts": args.prompts, "new_tokens": args.new_tokens,
                            "draft_tokens": args.draft_tokens,
                            "runs": drafts(students, work, args.prompts, args.new_tokens, args.draft_tokens)}
    write_result(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""`distill export STUDENT --format hf|gguf [--dtype bf16|f16|f32] [--quant q8_0|q4_0|...] --out PATH`"""

from __future__ import annotations

import argparse
import json

NAME = "export"
HELP = ("Write a student as a file a runtime serves: a Hugging Face directory in bf16/f16/f32 (vLLM, SGLang, "
        "transformers) or one GGUF file with the tokenizer and chat template embedded (llama.cpp, Ollama, LM "
        "Studio). The export is read back by transformers and compared with the student on held-out text; it is "
        "refused (exit 4, nothing left at --out) when KL(student ‖ export) per token is above --max-kl.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from distill.deploy.check import DEFAULT_MAX_KL
    from distill.deploy.gguf_writer import FLOAT_TYPES, QUANT_TYPES

    p.add_argument("student", metavar="STUDENT", help="student model directory (written by `distill train` or "
                   "`distill prune`; a LoRA student is already merged there)")
    p.add_argument("--format", choices=["hf", "gguf"], default="gguf", help="hf: safetensors directory; gguf: one "
                   "llama.cpp file (default)")
    p.add_argument("--dtype", choices=list(FLOAT_TYPES), help="float weight type (default: bf16 for hf, f16 for gguf)")
    p.add_argument("--quant", help=f"GGUF block quantization: {', '.join(QUANT_TYPES)} (the types the installed "
                   "gguf package writes; make K-quants with llama.cpp's llama-quantize from an f16 export)")
    p.add_argument("--out", required=True, help="the .gguf file or the directory to write")
    p.add_argument("--max-kl", type=float, help="refuse the export above this KL(student ‖ export) per held-out "
                   "token, in nats (default by weight type: " + ", ".join(f"{k} {v:g}" for k, v in
                                                                     DEFAULT_MAX_KL.items()) + ")")
    p.add_argument("--data", default="shakespeare", help="held-out data the check scores (default shakespeare)")
    p.add_argument("--sequences", type=int, default=8, help="held-out sequences the check scores (default 8)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per check sequence (default 128)")
    p.add_argument("--name", help="model name written in the GGUF metadata (default: the student's)")
    p.add_argument("--signing-key", help="Ed25519 private key signing the export record (default "
                   "$DISTILL_SIGNING_KEY; unsigned without either); `distill lineage verify` checks it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--json", action="store_true", help="print the export record as JSON")


def run(args: argparse.Namespace) -> int:
    import distill
    from distill.deploy.export import ExportSettings

    rec = distill.export(ExportSettings(**{k: getattr(args, k) for k in ExportSettings.model_fields}))
    if args.json:
        print(json.dumps(rec, indent=2, ensure_ascii=False))
        return 0
    c = rec["check"]
    print(f"wrote {args.out}: {rec['export_format']} {rec['weights']}, {rec['size_bytes'] / 2**20:.1f} MiB")
    print(f"checked by {c['reader']} on {c['tokens']} held-out tokens: KL(student ‖ export) "
          f"{c['kl_per_token']:.3g} nats/token (limit {c['max_kl']:g}), top-1 agreement {c['top1_agreement']:.2%}")
    if rec.get("llama_cpp"):
        lc = rec["llama_cpp"]
        print(f"checked by llama.cpp: KL {lc['kl_per_token']:.3g} nats/token, top-1 agreement "
              f"{lc['top1_agreement']:.2%}")
    elif rec["export_format"] == "gguf":
        print("llama.cpp check skipped (pip install llama-cpp-python to run it)")
    return 0

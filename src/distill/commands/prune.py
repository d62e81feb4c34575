"""`distill prune`: cut a smaller student from the teacher by importance (Minitron-style), without training."""

from __future__ import annotations

import argparse

NAME = "prune"
HELP = ("Cut a smaller model of the teacher's architecture from the teacher: the most important layers (block "
        "influence), MLP channels, attention heads and hidden channels (activation magnitude on calibration "
        "sequences of the data) are kept with their weights. Writes a Hugging Face model directory with "
        "importance.json next to the weights; no training (`student.init: prune` does the same inside `distill "
        "train`).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", default="default", help="teacher model: 'default', a GGUF file, a model folder or a "
                   "hub id (Llama-style architectures)")
    p.add_argument("--data", default="shakespeare", help="calibration data, as data.path in a config "
                   "('shakespeare', a text file or folder, JSONL, Parquet, a generated set)")
    p.add_argument("--out", required=True, help="output model directory (must not exist unless --overwrite)")
    p.add_argument("--layers", type=int, help="decoder layers to keep")
    p.add_argument("--hidden-size", type=int, help="hidden (embedding) channels to keep")
    p.add_argument("--intermediate-size", type=int, help="MLP channels to keep per layer")
    p.add_argument("--num-heads", type=int, help="query heads to keep per layer (grouped-query attention stays "
                   "valid)")
    p.add_argument("--target-params", type=float, help="solve the shape from a size: a share of the teacher's "
                   "parameters (≤ 1) or a count")
    p.add_argument("--calibration-sequences", type=int, default=64, help="training sequences the importance is "
                   "measured on (default 64)")
    p.add_argument("--seq-len", type=int, default=256, help="tokens per calibration sequence (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")


def run(args: argparse.Namespace) -> int:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from pydantic import ValidationError

    from distill.config import DataConfig, PruneConfig
    from distill.data.corpus import load_corpus
    from distill.errors import DistillError
    from distill.fileio import write_json_atomic
    from distill.models.loading import describe_model, load_model
    from distill.models.prune import prune_teacher
    from distill.provenance.policy import check_model_teacher

    out = Path(args.out).expanduser()
    if out.exists() and not args.overwrite:
        raise DistillError(f"output directory already exists: {out}", where="--out",
                           fix="choose another --out or pass --overwrite")
    fields = {k: getattr(args, k) for k in ("layers", "hidden_size", "intermediate_size", "num_heads",
                                            "target_params") if getattr(args, k) is not None}
    try:
        settings = PruneConfig(**fields, calibration_sequences=args.calibration_sequences)
        data = DataConfig(path=args.data, seq_len=args.seq_len)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'prune'}: {err['msg']}" for err in e.errors())
        raise DistillError(f"invalid prune settings: {msgs}", where="distill prune",
                           fix="pass --layers / --hidden-size / --intermediate-size / --num-heads (each ≥ 1) or "
                               "--target-params (> 0); --seq-len at least 8") from None
    check_model_teacher(describe_model(args.teacher), None)  # the licence gate, before any compute
    teacher = load_model(args.teacher)
    corpus = load_corpus(data, teacher.tokenizer)
    res = prune_teacher(teacher.model, settings, corpus.train, teacher.tokenizer.pad_token_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        res.student.save_pretrained(tmp, safe_serialization=True)
        teacher.tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "importance.json", {**res.report, "teacher": teacher.info.name, "data": args.data,
                                                    "seq_len": args.seq_len})
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    d = res.dims
    print(f"pruned {teacher.info.name} → {out}: {d.layers} layers (kept {res.selection.layers}), hidden "
          f"{d.hidden_size}, intermediate {d.intermediate_size}, {d.num_heads} heads / {d.num_kv_heads} kv; "
          f"{res.student_params / 1e6:.2f} M of {res.teacher_params / 1e6:.2f} M params "
          f"({res.student_params / res.teacher_params:.0%}); importance on {res.importance.sequences} sequences "
          f"({res.importance.tokens} tokens) in importance.json")
    return 0

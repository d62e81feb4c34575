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
    from pydantic import ValidationError

    import distill
    from distill.errors import invalid_settings
    from distill.models.pruned import PruneSettings

    fields = {k: getattr(args, k) for k in PruneSettings.model_fields if getattr(args, k, None) is not None}
    try:
        settings = PruneSettings(**fields)
    except ValidationError as e:
        raise invalid_settings(e, "prune settings", "distill prune", "pass --layers / --hidden-size / "
                               "--intermediate-size / --num-heads (each ≥ 1) or --target-params (> 0); --seq-len at "
                               "least 8", flags=True) from None
    res = distill.prune(settings)
    d, cal = res.dims, res.report["calibration"]
    print(f"pruned {res.teacher} → {res.path}: {d.layers} layers (kept {res.kept_layers}), hidden "
          f"{d.hidden_size}, intermediate {d.intermediate_size}, {d.num_heads} heads / {d.num_kv_heads} kv; "
          f"{res.student_params / 1e6:.2f} M of {res.teacher_params / 1e6:.2f} M params "
          f"({res.student_params / res.teacher_params:.0%}); importance on {cal['sequences']} sequences "
          f"({cal['tokens']} tokens) in importance.json")
    return 0

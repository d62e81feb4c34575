"""`distill capture`: run the teacher once and store its top-k log-probabilities for offline distillation."""

from __future__ import annotations

import argparse

NAME = "capture"
HELP = ("Run the teacher once over the training data and store its top-k log-probabilities (quantized, "
        "sharded, resumable), so training can read them from disk instead of running the teacher.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="training config (YAML): its teacher and data sections are used, so "
                        "capture and training agree; the flags below override them")
    parser.add_argument("--teacher", help="teacher model: 'default', a GGUF file, a model folder or a hub id")
    parser.add_argument("--data", help="training data, as data.path in the config ('shakespeare', a text file "
                        "or folder, JSONL, Parquet, a generated set)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (data.seq_len; default 256)")
    parser.add_argument("--out", required=True, help="store folder (created; an interrupted capture into the "
                        "same folder resumes)")
    parser.add_argument("--top-k", type=int, default=32, help="teacher tokens kept per position (default 32)")
    parser.add_argument("--shard-size", type=int, default=1024, help="sequences per shard (default 1024)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per teacher forward pass (default 8)")
    parser.add_argument("--chunk-size", type=int, default=256, help="positions per head matmul and top-k "
                        "(bounds memory: chunk × vocabulary floats; default 256)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="teacher weights dtype (default float32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda:$LOCAL_RANK if "
                        "available, else cpu)")
    parser.add_argument("--verify", action="store_true", help="after capturing, re-hash every file of the store")


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from distill.config import DataConfig, load_config
    from distill.errors import DistillError
    from distill.models.loading import DEFAULT_TEACHER
    from distill.store import CaptureSettings, run_capture, verify_store

    teacher, trust = args.teacher, False
    if args.config:
        cfg = load_config(args.config)
        data = cfg.data.model_dump()
        teacher = teacher or cfg.teacher.model
        trust = cfg.teacher.trust_remote_code
    elif args.data is None:
        raise DistillError("no training data given", where="distill capture",
                           fix="pass --data (e.g. --data shakespeare) or --config with the training config")
    else:
        data = {}
    if args.data is not None:
        data["path"] = args.data
    if args.seq_len is not None:
        data["seq_len"] = args.seq_len
    try:
        data_cfg = DataConfig.model_validate(data)
    except ValidationError as e:
        msgs = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise DistillError(f"invalid data settings: {msgs}", where="--data/--seq-len/--config",
                           fix="fix the value (data.seq_len must be at least 8)") from e
    settings = CaptureSettings(data=data_cfg, out=args.out, teacher=teacher or DEFAULT_TEACHER, top_k=args.top_k,
                               shard_size=args.shard_size, batch_size=args.batch_size, chunk_size=args.chunk_size,
                               dtype=args.dtype, device=args.device, trust_remote_code=trust)
    try:
        result = run_capture(settings)
    except OSError as e:
        raise DistillError(f"could not write the store: {e}", where=args.out,
                           fix="check free disk space and permissions, then re-run: finished shards are kept") from e
    m = result.manifest
    if m is None:
        print(f"captured shard(s) {result.computed} into {result.store}; the manifest is written when every "
              "shard exists (the other ranks, or a re-run of this command, will finish it)")
        return 0
    if args.verify:
        verify_store(result.store)
    rate = f", {result.positions / result.seconds:.0f} positions/s" if result.seconds else ""
    print(f"store {result.store}: {m['positions']} positions in {m['n_shards']} shard(s), "
          f"{m['bytes'] / max(m['positions'], 1):.1f} bytes/position, k={m['settings']['k']}, "
          f"top-k mass kept {m['mass_kept']['mean']:.3f} mean / {m['mass_kept']['min']:.3f} min, "
          f"max log-prob quantization error {m['max_logprob_error']:.4f} nats, top-k mass error "
          f"{m['max_mass_error']:.5f} "
          f"({len(result.computed)} shard(s) captured now{rate}, {len(result.skipped)} already done)")
    return 0

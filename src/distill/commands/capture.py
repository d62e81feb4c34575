"""`distill capture`: run the teacher once and store its top-k log-probabilities for offline distillation."""

from __future__ import annotations

import argparse

NAME = "capture"
HELP = ("Run the teacher once over the training data and store its top-k log-probabilities (quantized, "
        "sharded, resumable), so training can read them from disk instead of running the teacher. The teacher "
        "is a local model, or one behind a scoring server (--teacher-endpoint: vLLM or `distill serve`).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="training config (YAML): its teacher and data sections are used, so "
                        "capture and training agree; the flags below override them")
    parser.add_argument("--teacher", help="teacher model: 'default', a GGUF file, a model folder or a hub id")
    parser.add_argument("--data", help="training data, as data.path in the config ('shakespeare', a text file "
                        "or folder, JSONL, Parquet, a generated set)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (data.seq_len; default 256)")
    parser.add_argument("--max-sequences", type=int, help="use at most this many training sequences "
                        "(data.max_sequences; training must use the same value)")
    parser.add_argument("--out", required=True, help="store folder (created; an interrupted capture into the "
                        "same folder resumes)")
    parser.add_argument("--top-k", type=int, help="teacher tokens kept per position (default 32; with "
                        "--teacher-endpoint, the config's teacher.top_k or 20, vLLM's usual --max-logprobs)")
    parser.add_argument("--shard-size", type=int, default=1024, help="sequences per shard (default 1024)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per teacher forward pass (default 8)")
    parser.add_argument("--chunk-size", type=_chunk_size, default="auto", help="positions per head matmul and "
                        "top-k (bounds memory: chunk × vocabulary floats; default auto: as loss.chunk_size, 128 for "
                        "a 49k vocabulary on CPU)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="teacher weights dtype (default float32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda:$LOCAL_RANK if "
                        "available, else cpu)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the teacher's decoder (as "
                        "teacher.compile; the same results up to fp32 rounding, minutes of compiling first)")
    parser.add_argument("--verify", action="store_true", help="after capturing, re-hash every file of the store")
    served = parser.add_argument_group("a served teacher (see docs/served_teacher.md)")
    served.add_argument("--teacher-endpoint", help="score through a teacher server at this URL (e.g. "
                        "http://127.0.0.1:8000/v1) instead of loading the teacher; --teacher is then the served "
                        "model's name (as teacher.endpoint / teacher.model in a config)")
    served.add_argument("--tokenizer", help="with --teacher-endpoint: the served model's tokenizer, a local model "
                        "spec (default: the config's teacher.tokenizer, else 'default'); checked against the server")
    served.add_argument("--api-key-env", help="with --teacher-endpoint: environment variable holding the API key")
    served.add_argument("--api-key-file", help="with --teacher-endpoint: file holding the API key")
    served.add_argument("--concurrency", type=int, help="with --teacher-endpoint: requests in flight (default 2)")


def _chunk_size(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    import distill
    from distill.config import DataConfig, load_config
    from distill.errors import DistillError, invalid_settings
    from distill.models.loading import DEFAULT_TEACHER
    from distill.store import CaptureSettings, verify_store

    teacher, trust, served, compiled = args.teacher, False, None, args.compile
    if args.config:
        cfg = load_config(args.config)
        data = cfg.data.model_dump()
        teacher = teacher or cfg.teacher.model
        trust = cfg.teacher.trust_remote_code
        compiled = compiled or getattr(cfg.teacher, "compile", False)
        if cfg.teacher_kind.name == "served":
            served = cfg.teacher
    elif args.data is None:
        raise DistillError("no training data given", where="distill capture",
                           fix="pass --data (e.g. --data shakespeare) or --config with the training config")
    else:
        data = {}
    if args.data is not None:
        data["path"] = args.data
    if args.seq_len is not None:
        data["seq_len"] = args.seq_len
    if args.max_sequences is not None:
        data["max_sequences"] = args.max_sequences
    try:
        data_cfg = DataConfig.model_validate(data)
    except ValidationError as e:
        raise invalid_settings(e, "data settings", "--data/--seq-len/--config", "fix the value (data.seq_len must "
                               "be at least 8, data.max_sequences at least 1)") from e
    settings = CaptureSettings(data=data_cfg, out=args.out, teacher=teacher or DEFAULT_TEACHER,
                               top_k=args.top_k if args.top_k is not None else served.top_k if served else 32,
                               shard_size=args.shard_size,
                               batch_size=args.batch_size, chunk_size=args.chunk_size, dtype=args.dtype,
                               device=args.device, trust_remote_code=trust, compile=compiled)
    if args.teacher_endpoint or served:
        settings.served = _served_teacher(args, served)
        settings.top_k = args.top_k if args.top_k is not None else settings.served.top_k
    try:
        result = distill.capture(settings)
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


def _served_teacher(args: argparse.Namespace, served):
    """The served teacher of the capture: the flags over the config's `teacher` (kind: served), declared as in
    training (distill.teachers.served)."""
    from pydantic import ValidationError

    from distill.errors import DistillError, invalid_settings
    from distill.models.loading import DEFAULT_TEACHER
    from distill.teachers import ServedTeacherConfig

    if not args.teacher and not served:
        raise DistillError("--teacher-endpoint needs the served model's name", where="--teacher",
                           fix="pass --teacher NAME (the name the server lists at /v1/models)")
    fields = served.model_dump(exclude_unset=True) if served else {"kind": "served"}
    fields["tokenizer"] = args.tokenizer or (served.local_spec if served else DEFAULT_TEACHER)
    flags = {"endpoint": args.teacher_endpoint, "model": args.teacher, "top_k": args.top_k,
             "concurrency": args.concurrency}
    fields.update({k: v for k, v in flags.items() if v is not None})
    if args.api_key_env or args.api_key_file:  # a flag replaces the config's key source
        fields.update(api_key_env=args.api_key_env, api_key_file=args.api_key_file)
    try:
        return ServedTeacherConfig.model_validate(fields)
    except ValidationError as e:
        raise invalid_settings(e, "served-teacher settings", "--teacher-endpoint/--config", "fix the flag or the "
                               "config's teacher section", flags=True) from e

"""Peak memory per rank, measured vs `distill plan`: ddp and fsdp, on 1 and 2 CPU processes.

A random-weight Llama teacher of ≈170 M parameters (≈650 MiB in fp32, on the real SmolLM2 tokenizer) and a fresh
student of ≈123 M parameters (≈1.8 GiB with its gradients and AdamW moments) train for a few steps with
`distill train`, as a user runs it (under torchrun for 2 processes). Each rank logs its peak resident set at the end
beside the plan it was started with (`peak memory (rank r): ... RSS, planned ...`); this script collects those lines.
Memory figures do not depend on machine load (the time does).

Usage:  python -m benchmarks.engine.bench_memory [--steps 3] [--json benchmarks/results/engine/memory.json]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import RESULTS, write_result

LINE = re.compile(r"peak memory \(rank (\d+)\): (\d+) MiB RSS, planned (\d+) MiB")


def make_teacher(out: Path) -> Path:
    from distill.models.loading import load_tokenizer
    from distill.models.students import fresh_llama

    tok = load_tokenizer("default")
    model = fresh_llama(tok, hidden_size=768, num_layers=12, num_heads=12, intermediate_size=2048,
                        tie_embeddings=False, seed=1)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# random benchmark teacher\n")
    return out


def run(root: Path, teacher: Path, parallel: str, nproc: int, steps: int) -> list[tuple[int, int, int]]:
    cfg = {"teacher": {"model": str(teacher)},
           "student": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 2048},
           "data": {"path": "shakespeare", "seq_len": 128, "max_sequences": 64},
           "loss": {"chunk_size": 64},
           "train": {"steps": steps, "batch_size": 4, "eval_every": 1000, "eval_sequences": 2, "checkpoint_every": 1000,
                     "progress": False, "warmup_steps": 0, "parallel": parallel},
           "output_dir": str(root / f"{parallel}-{nproc}")}
    path = root / f"{parallel}-{nproc}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    launcher = ([str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", str(nproc)]
                if nproc > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // nproc)), "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([*launcher, "-m", "distill.cli", "train", str(path), "--overwrite"], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{parallel} × {nproc} failed:\n{res.stderr[-3000:]}")
    rows = sorted((int(r), int(m), int(p)) for r, m, p in LINE.findall(res.stderr))
    assert len(rows) == nproc, res.stderr[-2000:]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--json", default=str(RESULTS / "engine" / "memory.json"))
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        teacher = make_teacher(root / "teacher")
        print("| parallel | processes | rank | measured peak RSS (MiB) | planned (MiB) | measured / planned |")
        print("|---|---|---|---|---|---|")
        for parallel, nproc in (("ddp", 1), ("fsdp", 1), ("ddp", 2), ("fsdp", 2)):
            for rank, measured, planned in run(root, teacher, parallel, nproc, args.steps):
                results.append({"parallel": parallel, "processes": nproc, "rank": rank, "measured_mib": measured,
                                "planned_mib": planned})
                print(f"| {parallel} | {nproc} | {rank} | {measured} | {planned} | {measured / planned:.2f} |",
                      flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    write_result(args.json, {"rows": results})


if __name__ == "__main__":
    main()

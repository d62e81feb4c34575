"""Two processes under torchrun with a served teacher: each rank scores only its own rows, and the result matches one
process with the same global batch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

TORCHRUN = Path(sys.executable).parent / "torchrun"


def _config(path: Path, server, teacher_dir: Path, data: Path, out: Path) -> Path:
    cfg = {"teacher": {"endpoint": server.url + "/v1", "model": "tiny-teacher", "tokenizer": str(teacher_dir),
                       "top_k": 5, "prefetch": 2},
           "student": {"hidden_size": 32, "num_layers": 2, "num_heads": 2},
           "data": {"path": str(data), "seq_len": 32},
           "loss": {"kind": "jsd", "beta": 0.5, "chunk_size": 32, "ce_weight": 0.2},
           "train": {"steps": 3, "grad_accum": 2, "batch_size": 4, "eval_every": 100, "eval_sequences": 2,
                     "checkpoint_every": 100, "progress": False, "warmup_steps": 1, "threads": 1},
           "output_dir": str(out), "output": {"dtype": "fp32"}}  # compared weight for weight, unrounded
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rows_per_rank(log: str) -> dict[int, int]:
    return {int(r): int(n) for r, n in re.findall(r"teacher source \(train, rank (\d+)\): requests=\d+ retries=\d+ "
                                                    r"rows=(\d+)", log)}


@pytest.mark.skipif(shutil.which("torchrun") is None and not TORCHRUN.exists(), reason="torchrun not installed")
def test_two_ranks_score_their_own_rows_and_match_one_process(tmp_path, teacher_server, tiny_teacher_dir, text_file):
    env = {**__import__("os").environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    one = _config(tmp_path / "one.yaml", teacher_server, tiny_teacher_dir, text_file, tmp_path / "one")
    two = _config(tmp_path / "two.yaml", teacher_server, tiny_teacher_dir, text_file, tmp_path / "two")
    res1 = subprocess.run([sys.executable, "-m", "distill.cli", "train", str(one)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert res1.returncode == 0, res1.stderr[-3000:]
    res2 = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "distill.cli", "train",
                           str(two)], env=env, capture_output=True, text=True, timeout=300)
    assert res2.returncode == 0, res2.stderr[-3000:]
    # every row of every micro-batch once (+ the start-up identity probe); under torchrun each rank its own half
    assert _rows_per_rank(res1.stderr) == {0: 3 * 2 * 4 + 1}
    assert _rows_per_rank(res2.stderr) == {0: 3 * 2 * 2 + 1, 1: 3 * 2 * 2 + 1}
    a, b = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)

"""`train.parallel: fsdp` (PyTorch FSDP2 on gloo CPU processes): two ranks reach what one process reaches with the
same global batch; a SIGKILLed sharded run resumes exactly, on the same number of processes or on another."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

TORCHRUN = Path(sys.executable).parent / "torchrun"
pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")


def _config(path: Path, teacher: Path, data: Path, out: Path, parallel: str, **train) -> Path:
    cfg = {"teacher": {"model": str(teacher)},
           "student": {"hidden_size": 32, "num_layers": 2, "num_heads": 2},
           "data": {"path": str(data), "seq_len": 32},
           "loss": {"kind": "jsd", "beta": 0.5, "chunk_size": 32, "ce_weight": 0.2},
           "train": {"steps": 8, "grad_accum": 2, "batch_size": 4, "eval_every": 100, "eval_sequences": 2,
                     "checkpoint_every": 2, "progress": False, "warmup_steps": 1, "threads": 1,
                     "parallel": parallel, **train},
           "output_dir": str(out), "output": {"dtype": "fp32"}}  # compared weight for weight, unrounded
    path.write_text(yaml.safe_dump(cfg))
    return path


def _close(a: Path, b: Path, atol: float) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=atol, msg=k)


def _losses(out: Path) -> list[float]:
    import json

    return [json.loads(line)["loss"] for line in (Path(str(out) + ".ckpt") / "metrics.jsonl").read_text().splitlines()
            if '"loss"' in line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_teacher_dir, text_file, train_cli):
    """The same 8 steps on one process without sharding (the reference) and on two sharded ranks."""
    root = tmp_path_factory.mktemp("fsdp")
    train_cli(_config(root / "ref.yaml", tiny_teacher_dir, text_file, root / "ref", "ddp"), 1)
    train_cli(_config(root / "two.yaml", tiny_teacher_dir, text_file, root / "two", "fsdp"), 2)
    return root / "ref", root / "two"


def test_two_sharded_ranks_match_one_process(runs):
    ref, two = runs
    _close(ref, two, atol=2e-5)  # the same sums in another order
    for a, b in zip(_losses(ref), _losses(two), strict=True):  # the logged loss is the whole step's
        assert a == pytest.approx(b, rel=1e-5)


def test_sigkill_then_resume_is_exact_and_may_change_the_world_size(tmp_path, runs, tiny_teacher_dir, text_file,
                                                                    kill_when, train_cli):
    two = runs[1]
    cut = _config(tmp_path / "cut.yaml", tiny_teacher_dir, text_file, tmp_path / "cut", "fsdp")
    log = tmp_path / "cut.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "distill.cli", "train",
                                 str(cut)], env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    ckpt = Path(str(tmp_path / "cut") + ".ckpt")

    def step() -> int:
        try:
            name = (ckpt / "latest").read_text().strip()
        except OSError:
            return 0
        return int(name.removeprefix("step-")) if (ckpt / name / "state.json").is_file() else 0

    kill_when(proc, lambda: step() >= 2, "a sharded checkpoint at step >= 2", lambda: log.read_text(errors="replace"),
              group=True)
    assert not (tmp_path / "cut").exists() and 2 <= step() < 8
    resumed = train_cli(cut, 2, "--resume")
    assert "resumed from" in resumed.stderr
    _close(two, tmp_path / "cut", atol=1e-6)  # same ranks, same shards: exact
    # the last checkpoint (step 6) resumed on one process instead (DCP reshards): the same run within float tolerance
    assert (ckpt / "latest").read_text().strip() == "step-000006"
    shutil.rmtree(tmp_path / "cut")
    train_cli(cut, 1, "--resume")
    _close(two, tmp_path / "cut", atol=2e-5)

"""Checkpoint/resume exactness after SIGKILL, and a 2-process DDP run matching a 1-process run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file


def _write_config(path: Path, teacher: Path, data: Path, out: Path, **train) -> Path:
    cfg = {
        "teacher": {"model": str(teacher)},
        "student": {"hidden_size": 32, "num_layers": 2, "num_heads": 2},
        "data": {"path": str(data), "seq_len": 32},
        "loss": {"kind": "jsd", "beta": 0.5, "chunk_size": 32, "ce_weight": 0.2},
        "train": {"steps": 8, "batch_size": 4, "eval_every": 100, "eval_sequences": 2, "checkpoint_every": 2,
                  "progress": False, "warmup_steps": 2, "threads": 1, **train},
        "output_dir": str(out),
        "output": {"dtype": "fp32"},  # runs compared weight for weight: the trained fp32 values, unrounded
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _checkpointed_step(run_dir: Path) -> int:
    """The step of the newest complete checkpoint under `run_dir` (`latest` names it and its state.json is
    written), or 0 when there is none yet."""
    try:
        name = (run_dir / "latest").read_text().strip()
    except OSError:
        return 0
    if not name.startswith("step-") or not (run_dir / name / "state.json").is_file():
        return 0  # not written yet, or already pruned by a newer checkpoint: look again
    return int(name.removeprefix("step-"))


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, tiny_teacher_dir, text_file, kill_when):
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    # 12 steps, checkpoints every 2: the kill comes once step 4 is checkpointed, with 8 steps and the final
    # write still to do (seconds of work, against a 50 ms poll)
    ref_cfg = _write_config(tmp_path / "ref.yaml", tiny_teacher_dir, text_file, ref_out, steps=12)
    cut_cfg = _write_config(tmp_path / "cut.yaml", tiny_teacher_dir, text_file, cut_out, steps=12)
    cli = [sys.executable, "-m", "distill.cli", "train"]
    subprocess.run(cli + [str(ref_cfg)], check=True, env=_env(), capture_output=True, timeout=300)

    log = tmp_path / "cut.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cli + [str(cut_cfg)], env=_env(), stdout=subprocess.DEVNULL, stderr=err)
    ckpt = Path(str(cut_out) + ".ckpt")
    kill_when(proc, lambda: _checkpointed_step(ckpt) >= 4, "a complete checkpoint at step >= 4",
              lambda: log.read_text(errors="replace"))
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill: the kill must land mid-run"
    assert not cut_out.exists(), "a killed run must not leave a finished-looking student"
    killed_at = _checkpointed_step(ckpt)
    assert 4 <= killed_at < 12, killed_at
    done = subprocess.run(cli + [str(cut_cfg), "--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resumed from" in done.stderr, done.stderr[-2000:]  # from the checkpoint, not a fresh run
    a, b = _weights(ref_out), _weights(cut_out)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_ddp_matches_one_process(tmp_path, tiny_teacher_dir, text_file, train_cli):
    one, two = tmp_path / "one", tmp_path / "two"
    train_cli(_write_config(tmp_path / "one.yaml", tiny_teacher_dir, text_file, one, steps=3, grad_accum=2))
    train_cli(_write_config(tmp_path / "two.yaml", tiny_teacher_dir, text_file, two, steps=3, grad_accum=2), 2)
    a, b = _weights(one), _weights(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)

"""loss.hidden end to end on tiny models: refused without a live teacher, trains and logs its term, the projections
are checkpointed and resumed but left out of the written student, the auto mapping of a pruned student, and two
processes (DDP and FSDP) reaching what one reaches."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distill.config import load_config
from distill.errors import DistillError
from distill.training.loop import train

HIDDEN = "loss.hidden={weight: 0.5, kind: cosine}"


def _cfg(tmp_path: Path, teacher: Path, data: Path, *extra: str):
    base = [f"teacher.model={teacher}", f"data.path={data}", "data.seq_len=32", "student.hidden_size=32",
            "student.num_layers=2", "student.num_heads=2", "train.steps=4", "train.batch_size=4",
            "train.eval_every=4", "train.eval_sequences=4", "train.checkpoint_every=2", "train.progress=false",
            "train.warmup_steps=1", "loss.chunk_size=16", f"output_dir={tmp_path / 'student'}"]
    return load_config(None, base + list(extra))


@pytest.mark.parametrize(("extra", "why"), [
    (["teacher.store=/nonexistent/store"], "capture store"),
    (["teacher.endpoint=http://127.0.0.1:9/v1"], "log-probabilities only"),
    (["loss.cross_tokenizer=align", "student.tokenizer=default"], "other tokens"),
])
def test_refused_without_a_live_teacher(extra, why):
    with pytest.raises(DistillError, match="need a live teacher") as e:
        load_config(None, [HIDDEN, *extra])
    assert why in str(e.value) and e.value.where == "loss.hidden"


def test_trains_logs_checkpoints_and_drops_the_projections(tmp_path, tiny_teacher_dir, text_file):
    from distill.training.setup import setup

    cfg = _cfg(tmp_path, tiny_teacher_dir, text_file, HIDDEN)
    result = train(cfg)
    rows = [json.loads(x) for x in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["hidden"] > 0 for r in rows)
    assert rows[0]["loss"] == pytest.approx(rows[0]["kd"] + 0.5 * rows[0]["hidden"], rel=1e-6)
    # the written student is the student alone: exactly a fresh model's tensors, loadable strictly
    written = load_file(str(result.output_dir / "model.safetensors"))
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert set(written) <= set(plain.state_dict()) and not any("projection" in k or "maps" in k for k in written)
    assert "the projections it trained are not part of this model" in (result.output_dir / "README.md").read_text()
    # the checkpoint (step 2) holds the projections (32 → 48, one per pair), and resuming restores them
    ckpt = Path(str(result.output_dir) + ".ckpt") / "step-000002" / "model.safetensors"
    saved = load_file(str(ckpt))
    proj = {k: v for k, v in saved.items() if k.startswith("projections.")}
    assert [v.shape for v in proj.values()] == [torch.Size([48, 32])] * 2
    run = setup(cfg, resume=True)
    try:
        assert run.start_step == 2 and run.module.pairs == [(0, 1), (1, 2)]  # evenly spaced: ⌈(j+1)·3/2⌉ − 1
        for k, v in proj.items():
            assert torch.equal(run.module.state_dict()[k], v), k
        assert sum(p.numel() for g in run.optimizer.param_groups for p in g["params"]) == \
            sum(p.numel() for p in run.student.parameters()) + 2 * 48 * 32
    finally:
        run.close()


def test_pruned_student_maps_its_kept_layers(tmp_path, tiny_teacher_dir, text_file):
    """A student pruned to 2 of 3 layers and 32 of 48 hidden channels: pairs from its kept layers, projections that
    start as the kept channels' embedding (so the step-0 term is that of the pruned weights themselves)."""
    from distill.loss.hidden import auto_pairs
    from distill.training.setup import setup

    cfg = _cfg(tmp_path, tiny_teacher_dir, text_file, HIDDEN, "student.init=prune",
               "student.prune={layers: 2, hidden_size: 32, calibration_sequences: 8}")
    run = setup(cfg)
    try:
        origin = run.student.teacher_origin
        assert len(origin.layers) == 2 and len(origin.hidden) == 32
        assert run.module.pairs == auto_pairs(2, 3, origin.layers)
        w = run.module.projections.maps[0].weight
        assert torch.equal(w[list(origin.hidden), torch.arange(32)], torch.ones(32))
        assert float(w.detach().abs().sum()) == 32.0
    finally:
        run.close()


TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.mark.skipif(not TORCHRUN.exists() and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_ddp_and_fsdp_match_one(tmp_path, tiny_teacher_dir, text_file, train_cli):
    def write(name: str, parallel: str) -> Path:
        cfg = {"teacher": {"model": str(tiny_teacher_dir)},
               "student": {"hidden_size": 32, "num_layers": 2, "num_heads": 2},
               "data": {"path": str(text_file), "seq_len": 32},
               "loss": {"chunk_size": 32, "hidden": {"weight": 0.5, "kind": "mse", "layers": [[0, 0], [1, 2]]}},
               "train": {"steps": 2, "grad_accum": 2, "batch_size": 4, "eval_every": 100, "eval_sequences": 2,
                         "checkpoint_every": 100, "progress": False, "warmup_steps": 1, "threads": 1,
                         "parallel": parallel},
               "output_dir": str(tmp_path / name), "output": {"dtype": "fp32"}}  # compared unrounded
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    train_cli(write("one", "ddp"))
    train_cli(write("ddp", "ddp"), 2)
    train_cli(write("fsdp", "fsdp"), 2)
    ref = load_file(str(tmp_path / "one" / "model.safetensors"))
    for name in ("ddp", "fsdp"):
        got = load_file(str(tmp_path / name / "model.safetensors"))
        assert got.keys() == ref.keys(), name
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=2e-5, msg=f"{name}: {k}")
        hidden = [json.loads(x)["hidden"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        ref_hidden = [json.loads(x)["hidden"] for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
        assert hidden == pytest.approx(ref_hidden, rel=1e-5), name

"""`output.dtype`: the finished student is saved in bf16 by default, as the fp32 run's weights rounded (training,
and a LoRA student's merge, unchanged), with lineage over the saved bytes and the card saying so; the resumable
checkpoints stay fp32, so a resumed bf16 run writes exactly what an uninterrupted one does; `fp32` stays available."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from test_fileio import mode, umask_modes
from test_lora import StopAfter
from test_trainer import tiny_config

from distill.provenance import lineage
from distill.training.loop import train

LORA = ["student.lora.r=4", "student.lora.target_modules=all-linear", "student.lora.save_adapter=true"]


def _tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def _dtypes(tensors: dict[str, torch.Tensor]) -> set[torch.dtype]:
    return {t.dtype for t in tensors.values()}


@pytest.mark.parametrize("extra", [[], LORA], ids=["full", "lora"])
def test_bf16_by_default_is_the_fp32_run_rounded_and_its_lineage_verifies(tmp_path, tiny_teacher_dir, text_file,
                                                                          extra):
    default = tiny_config(tmp_path / "b", tiny_teacher_dir, text_file, "train.steps=2", *extra)
    assert default.output.dtype == "bf16"
    out = train(default).output_dir
    fp32_out = train(tiny_config(tmp_path / "a", tiny_teacher_dir, text_file, "train.steps=2", "output.dtype=fp32",
                                 *extra)).output_dir
    fp32, bf16 = _tensors(fp32_out / "model.safetensors"), _tensors(out / "model.safetensors")
    assert _dtypes(fp32) == {torch.float32} and _dtypes(bf16) == {torch.bfloat16}
    assert fp32.keys() == bf16.keys() and not [k for k in bf16 if "lora" in k]  # LoRA: written merged
    for k, t in bf16.items():
        assert torch.equal(t, fp32[k].to(torch.bfloat16)), k  # same training, only the saved type differs
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert "- Weights: bf16 safetensors" in (out / "README.md").read_text()
    assert "- Weights: fp32 safetensors" in (fp32_out / "README.md").read_text()
    assert lineage.verify(out).weights_ok
    folder, file = umask_modes()  # readable by a runtime run as another user, not mkdtemp's 0700
    assert mode(out) == folder and mode(out / "model.safetensors") == file
    if extra:  # the adapter and the base it applies to stay what was trained: fp32
        assert _dtypes(_tensors(out / "adapter" / "adapter_model.safetensors")) == {torch.float32}
        assert _dtypes(_tensors(out / "adapter" / "base" / "model.safetensors")) == {torch.float32}


def test_checkpoints_stay_fp32_and_a_resumed_bf16_run_writes_the_same_student(tmp_path, tiny_teacher_dir,
                                                                             text_file):
    fp32_run = train(tiny_config(tmp_path / "a", tiny_teacher_dir, text_file, "output.dtype=fp32"))
    ref = train(tiny_config(tmp_path / "b", tiny_teacher_dir, text_file))  # bf16, the default; 4 steps
    cfg = tiny_config(tmp_path / "c", tiny_teacher_dir, text_file)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAfter(3)])  # the step-2 checkpoint is on disk, no student
    assert not (tmp_path / "c" / "student").exists()
    cut = _tensors(tmp_path / "c" / "student.ckpt" / "step-000002" / "model.safetensors")
    full = _tensors(tmp_path / "a" / "student.ckpt" / "step-000002" / "model.safetensors")
    assert _dtypes(cut) == {torch.float32} and cut.keys() == full.keys()
    assert all(torch.equal(cut[k], full[k]) for k in cut)  # the checkpoint does not depend on output.dtype
    resumed = train(cfg, resume=True)
    keys = ("loss", "kd", "ce", "grad_norm")
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in ref.history]
    a, b = _tensors(ref.output_dir / "model.safetensors"), _tensors(resumed.output_dir / "model.safetensors")
    w32 = _tensors(fp32_run.output_dir / "model.safetensors")
    assert a.keys() == b.keys() == w32.keys()
    assert all(torch.equal(a[k], b[k]) and torch.equal(b[k], w32[k].to(torch.bfloat16)) for k in a)


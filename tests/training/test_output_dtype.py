"""`output.dtype`: the finished student saved in bf16 is the fp32 run's weights rounded (training itself unchanged),
with lineage over the saved bytes and the card saying so; fp32 stays the default."""

from __future__ import annotations

import torch
from safetensors import safe_open
from test_trainer import tiny_config

from distill.provenance import lineage
from distill.training.loop import train


def _tensors(out) -> dict[str, torch.Tensor]:
    with safe_open(out / "model.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def test_bf16_output_is_the_fp32_run_rounded_and_its_lineage_verifies(tmp_path, tiny_teacher_dir, text_file):
    base = tiny_config(tmp_path / "a", tiny_teacher_dir, text_file, "train.steps=2")
    assert base.output.dtype == "fp32"
    fp32 = _tensors(train(base).output_dir)
    out = train(tiny_config(tmp_path / "b", tiny_teacher_dir, text_file, "train.steps=2", "output.dtype=bf16")
                ).output_dir
    bf16 = _tensors(out)
    assert {t.dtype for t in fp32.values()} == {torch.float32} and {t.dtype for t in bf16.values()} == {torch.bfloat16}
    assert fp32.keys() == bf16.keys()
    for k, t in bf16.items():
        assert torch.equal(t, fp32[k].to(torch.bfloat16)), k  # same training, only the saved type differs
    assert "- Weights: bf16 safetensors" in (out / "README.md").read_text()
    assert lineage.verify(out).weights_ok

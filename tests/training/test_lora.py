"""LoRA students (`student.lora`): only the adapters train, the export is the merged model, the adapter alone loads
onto its base with peft, resume stays exact, DDP matches one process, and bad settings are refused in one paragraph.

Tiny random Llamas on the real tokenizer: the teacher is `tiny_teacher_dir` (3 layers), students are a subset of its
layers, `tiny_model_dir` (pretrained) or a fresh model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distill.config import DistillConfig, load_config
from distill.errors import DistillError
from distill.training.callbacks import Callback
from distill.training.loop import train

IDS = torch.tensor([[1, 504, 2873, 30, 1183, 281, 4407, 17, 2]])


def _overrides(teacher: Path, data: Path, out: Path, steps: int = 3) -> list[str]:
    return [f"teacher.model={teacher}", f"data.path={data}", "data.seq_len=32", f"train.steps={steps}",
            "train.batch_size=4", "train.eval_every=100", "train.eval_sequences=2", "train.checkpoint_every=2",
            "train.progress=false", "train.threads=1", "train.warmup_steps=1", "train.lr=5e-3", "loss.chunk_size=32",
            "loss.ce_weight=0.2", f"output_dir={out}",
            "output.dtype=fp32"]  # the written model is compared with the trained one to 1e-5: unrounded


def _cfg(tmp: Path, teacher: Path, data: Path, *extra: str, steps: int = 3) -> DistillConfig:
    return load_config(None, _overrides(teacher, data, tmp, steps) + list(extra))


class Capture(Callback):
    """Every parameter before the first step, and at the end (before the export merges the adapters): the
    parameters, the optimizer's state, and the trained peft model's logits on `IDS`."""

    def on_train_start(self, run) -> None:
        self.before = {n: p.detach().clone() for n, p in run.student.named_parameters()}

    def on_train_end(self, run) -> None:
        self.after = {n: p.detach().clone() for n, p in run.student.named_parameters()}
        self.trainable = {n for n, p in run.student.named_parameters() if p.requires_grad}
        params = dict(run.student.named_parameters())
        self.state_names = {n for n, p in params.items() if p in run.optimizer.state}
        self.group_names = {n for n, p in params.items() if any(p is q for g in run.optimizer.param_groups
                                                                 for q in g["params"])}
        run.student.eval()
        with torch.no_grad():
            self.logits = run.student(input_ids=IDS).logits
        run.student.train()


def _logits(model: torch.nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture(scope="module")
def layers_run(tmp_path_factory, tiny_teacher_dir, text_file):
    """A 3-step LoRA run on a layer-subset student (teacher layers 0 and 2), with what `Capture` saw."""
    out = tmp_path_factory.mktemp("lora_layers") / "student"
    cap = Capture()
    cfg = _cfg(out, tiny_teacher_dir, text_file, "student.init=layers", "student.layers=[0, 2]", "student.lora.r=4")
    train(cfg, callbacks=[cap])
    return out, cap


def test_only_the_adapters_train_and_hold_optimizer_state(layers_run):
    _, cap = layers_run
    adapters = {n for n in cap.before if ".lora_" in n}
    assert adapters and cap.trainable == adapters
    assert cap.state_names == adapters and cap.group_names == adapters  # no optimizer state for frozen weights
    for n in cap.before:
        if n in adapters:
            assert not torch.equal(cap.before[n], cap.after[n]), f"adapter {n} did not change"
        else:
            assert torch.equal(cap.before[n], cap.after[n]), f"frozen weight {n} changed"


def test_the_export_is_the_merged_model_with_the_trained_logits(layers_run):
    from transformers import AutoModelForCausalLM

    from distill.provenance import lineage

    out, cap = layers_run
    weights = load_file(str(out / "model.safetensors"))
    assert not [k for k in weights if "lora" in k or "base_layer" in k]
    assert not (out / "adapter").exists()  # save_adapter is off
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert merged.config.num_hidden_layers == 2
    torch.testing.assert_close(_logits(merged), cap.logits, rtol=0, atol=1e-5)
    record = json.loads((out / "lineage.json").read_text())
    assert record["extra"]["lora"]["merged"] is True and record["extra"]["lora"]["base"]["layers"] == [0, 2]
    assert lineage.verify(out).weights_ok


def test_save_adapter_loads_onto_the_pretrained_base(tmp_path, tiny_teacher_dir, tiny_model_dir, text_file):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from distill.models.loading import describe_model

    out, cap = tmp_path / "student", Capture()
    train(_cfg(out, tiny_teacher_dir, text_file, "student.init=pretrained", f"student.model={tiny_model_dir}",
               "student.lora.r=4", "student.lora.target_modules=all-linear", "student.lora.save_adapter=true"),
          callbacks=[cap])
    adapter = out / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not list(adapter.glob("*.bin"))
    assert not (adapter / "base").exists()  # the base is the pretrained directory itself
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == tiny_model_dir
    base = json.loads((out / "lineage.json").read_text())["extra"]["lora"]["base"]
    assert base["init"] == "pretrained" and Path(base["spec"]) == tiny_model_dir
    assert base["weights_sha256"] == describe_model(str(tiny_model_dir)).weights_sha256
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    torch.testing.assert_close(_logits(with_adapter), cap.logits, rtol=0, atol=1e-5)
    merged = AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(_logits(merged), cap.logits, rtol=0, atol=1e-5)


def test_save_adapter_writes_the_base_of_a_fresh_student(tmp_path, tiny_teacher_dir, text_file):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from distill.models.loading import weights_sha256

    out, cap = tmp_path / "student", Capture()
    train(_cfg(out, tiny_teacher_dir, text_file, "student.hidden_size=32", "student.num_layers=2",
               "student.num_heads=2", "student.lora.r=2", "student.lora.target_modules=[q_proj, v_proj]",
               "student.lora.save_adapter=true", steps=2), callbacks=[cap])
    base_dir = out / "adapter" / "base"
    base = json.loads((out / "lineage.json").read_text())["extra"]["lora"]["base"]
    assert base["init"] == "fresh" and base["path"] == "adapter/base"
    assert base["weights_sha256"] == weights_sha256(base_dir)
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == base_dir.resolve()
    base_model = AutoModelForCausalLM.from_pretrained(base_dir)
    frozen = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in cap.before.items()
              if ".lora_" not in n}
    for n, p in base_model.named_parameters():
        assert torch.equal(p, frozen[n]), n  # the base is the untrained weights, not the merged ones
    with_adapter = PeftModel.from_pretrained(base_model, out / "adapter")
    torch.testing.assert_close(_logits(with_adapter), cap.logits, rtol=0, atol=1e-5)


class StopAfter(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, run, row) -> None:
        if row["step"] == self.step:
            raise KeyboardInterrupt  # as a user's Ctrl-C would, after the step-2 checkpoint is on disk


def test_resume_after_an_interrupted_lora_run_is_exact(tmp_path, tiny_teacher_dir, tiny_model_dir, text_file):
    lora = ["student.init=pretrained", f"student.model={tiny_model_dir}", "student.lora.r=4",
            "student.lora.dropout=0.1"]  # dropout: the RNG state must be restored too
    ref = train(_cfg(tmp_path / "ref", tiny_teacher_dir, text_file, *lora, steps=5))
    cfg = _cfg(tmp_path / "cut", tiny_teacher_dir, text_file, *lora, steps=5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAfter(3)])
    ckpt = tmp_path / "cut.ckpt" / "step-000002"
    saved = load_file(str(ckpt / "model.safetensors"))
    assert saved and all(".lora_" in k for k in saved)  # only the trainable tensors are checkpointed
    assert not [p for p in ckpt.iterdir() if p.suffix in (".bin", ".pt", ".pkl")]
    without = _cfg(tmp_path / "cut", tiny_teacher_dir, text_file, "student.init=pretrained",
                   f"student.model={tiny_model_dir}", steps=5)
    with pytest.raises(DistillError, match="LoRA"):
        train(without, resume=True)  # a LoRA checkpoint does not resume a full-weight student
    resumed = train(cfg, resume=True)
    keys = ("loss", "kd", "ce", "grad_norm")
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in ref.history]
    a, b = load_file(str(ref.output_dir / "model.safetensors")), load_file(str(resumed.output_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_lora_settings_are_refused_in_one_paragraph(tmp_path, tiny_teacher_dir, text_file):
    with pytest.raises(DistillError) as e:
        _cfg(tmp_path / "s", tiny_teacher_dir, text_file, "student.lora.r=0")
    assert "student.lora.r" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DistillError) as e:
        _cfg(tmp_path / "s", tiny_teacher_dir, text_file, "student.lora.rank=4")
    assert "student.lora.rank" in str(e.value) and "valid keys here: r, alpha" in str(e.value)
    for target, said in (("nope_proj", "match no linear layer"), ("lm_head", "output head")):
        cfg = _cfg(tmp_path / "s", tiny_teacher_dir, text_file, f"student.lora.target_modules=[q_proj, {target}]")
        with pytest.raises(DistillError) as e:
            train(cfg)
        assert e.value.where == "student.lora.target_modules" and said in e.value.what and target in e.value.what
        assert "q_proj" in e.value.fix and "\n" not in str(e.value)
        assert not (tmp_path / "s").exists()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _yaml(path: Path, overrides: list[str]) -> Path:
    cfg = load_config(None, overrides).model_dump(mode="json")
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_names_the_bad_target_without_a_traceback(tmp_path, tiny_teacher_dir, text_file):
    cfg = _yaml(tmp_path / "bad.yaml", _overrides(tiny_teacher_dir, text_file, tmp_path / "s")
                + ["student.lora.target_modules=qq_proj"])
    res = subprocess.run([sys.executable, "-m", "distill.cli", "train", str(cfg)], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "student.lora.target_modules" in res.stderr and "qq_proj" in res.stderr


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_ddp_lora_matches_one_process(tmp_path, tiny_teacher_dir, text_file, train_cli):
    lora = ["student.init=layers", "student.every=2", "student.lora.r=4", "train.grad_accum=2"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_cli(_yaml(tmp_path / "one.yaml", _overrides(tiny_teacher_dir, text_file, one) + lora))
    train_cli(_yaml(tmp_path / "two.yaml", _overrides(tiny_teacher_dir, text_file, two) + lora), 2)
    a, b = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=k)


def test_two_sharded_ranks_train_lora_like_one_process(tmp_path, tiny_teacher_dir, text_file, train_cli):
    """LoRA under train.parallel: fsdp (frozen base and adapters sharded in the same FSDP2 units): the merged export
    and the adapter equal a one-process DDP run's with the same global batch."""
    lora = ["student.init=layers", "student.every=2", "student.lora.r=4", "student.lora.save_adapter=true",
            "train.grad_accum=2"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_cli(_yaml(tmp_path / "one.yaml", _overrides(tiny_teacher_dir, text_file, one) + lora))
    train_cli(_yaml(tmp_path / "two.yaml", _overrides(tiny_teacher_dir, text_file, two) + lora
                    + ["train.parallel=fsdp"]), 2)
    for name in ("model.safetensors", "adapter/adapter_model.safetensors"):
        a, b = load_file(str(one / name)), load_file(str(two / name))
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=2e-5, msg=f"{name}: {k}")
    lineage = json.loads((two / "lineage.json").read_text())
    assert lineage["extra"]["lora"]["merged"] is True and lineage["extra"]["lora"]["adapter"]

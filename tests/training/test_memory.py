"""The memory plan (`distill plan`, `train.memory_check`): sizes read without weights match the real models, the
terms follow their formulas, and a run that cannot fit is refused with advice before any weights load."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.config import load_config
from distill.models.lora import trainable_parameters
from distill.training import memory
from distill.training.setup import build_student


def _config(tmp_path: Path, teacher: Path, data: Path, **sections) -> Path:
    cfg = {"teacher": {"model": str(teacher)}, "data": {"path": str(data), "seq_len": 32},
           "student": {"hidden_size": 32, "num_layers": 2, "num_heads": 2},
           "train": {"steps": 1, "batch_size": 4, "progress": False}, "output_dir": str(tmp_path / "out")}
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("student", [
    {"init": "fresh", "hidden_size": 32, "num_layers": 2, "num_heads": 2},
    {"init": "layers", "layers": [0, 2]},
    {"init": "fresh", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "lora": {"r": 4}},
])
def test_sizes_read_without_weights_match_the_built_student(tmp_path, tiny_teacher_dir, text_file, student):
    from distill.models.loading import load_model

    cfg = load_config(_config(tmp_path, tiny_teacher_dir, text_file, student=student))
    w = memory.workload(cfg, world=1, device="cpu")
    teacher = load_model(str(tiny_teacher_dir))
    built = build_student(cfg, teacher, teacher.tokenizer)
    unique = {id(p): p for p in built.parameters()}.values()
    assert w.student.params == sum(p.numel() for p in unique)
    assert w.student.trainable == sum(p.numel() for p in trainable_parameters(built))
    assert w.teacher is not None and w.teacher.params == sum({id(p): p.numel()
                                                              for p in teacher.model.parameters()}.values())
    assert w.student.layers == (len(student["layers"]) if "layers" in student else student["num_layers"])
    assert (w.micro_batch, w.seq_len) == (4, 32)


def test_fsdp_shards_on_the_first_dimension_padded_to_the_world():
    # ceil(5/2)*3 + ceil(4/2) + ceil(1/2)*7 = 9 + 2 + 7
    assert memory.shard_numel(((5, 3), (4,), (1, 7)), 2) == 18
    assert memory.shard_numel(((5, 3), (4,), (1, 7)), 1) == 15 + 4 + 7


def _shape(params: int = 1000, layers: int = 2) -> memory.Shape:
    block = ((10, 40), (10,), (10, 10))  # 510 per block
    return memory.Shape(params=params, block_tensors=block * layers, rest_tensors=((params - 510 * layers,),),
                        largest_block=510, layers=layers, hidden=10, intermediate=40, kv_dim=10, vocab=100,
                        trainable=params)


def test_each_term_against_a_direct_computation():
    s, t = _shape(), _shape(4000, 6)
    w = memory.Workload(student=s, teacher=t, teacher_live=True, micro_batch=2, seq_len=8, chunk_size=4,
                        parallel="ddp", world=1, device="cpu", checkpointing=False)
    p = memory.plan(w)
    tokens, per_block = 16, 11 * 10 + 4 * 40 + 4 * 10
    assert p.parts == {
        "teacher weights": 4000 * 4, "student weights": 1000 * 4, "student gradients": 1000 * 4,
        "optimizer state": 1000 * 12, "activations": (tokens * 2 * per_block + tokens * 30) * 4,
        "teacher forward": tokens * (50 + 120) * 4, "loss chunk": 6 * 4 * 100 * 4 + 2 * tokens * 10 * 4,
        "runtime": memory.RUNTIME_BYTES["cpu"]}
    assert p.peak == sum(p.parts.values())

    f = memory.plan(replace(w, parallel="fsdp", world=2))
    held = memory.shard_numel(s.block_tensors + s.rest_tensors, 2)
    assert f.parts["student weights"] == held * 4 + 2 * (s.rest + 2 * 510) * 4
    assert f.parts["optimizer state"] == held * 12 < p.parts["optimizer state"]
    t_held = memory.shard_numel(t.block_tensors, 2) + t.rest + 2 * 2 * 510
    assert f.parts["teacher weights"] == t_held * 4
    # on CPU every rank first holds the whole teacher and student, before FSDP shards them
    assert f.load == (4000 + 1000) * 4 + memory.RUNTIME_BYTES["cpu"] and p.load == 0
    assert f.peak == max(f.load, sum(f.parts.values()))
    assert memory.plan(replace(w, parallel="fsdp", world=2, device="cuda")).load == 0
    assert memory.plan(replace(w, world=2)).parts["student gradients"] == 2 * 1000 * 4  # DDP's bucket copy
    c = memory.plan(replace(w, checkpointing=True))
    assert c.parts["activations"] == (tokens * (2 * 10 + per_block) + tokens * 30) * 4
    assert memory.plan(replace(w, teacher=None, teacher_live=False)).parts["teacher weights"] == 0
    # GPU: bf16 teacher and activations, fp32 master weights plus autocast's bf16 copy
    g = memory.plan(replace(w, device="cuda"))
    assert g.parts["teacher weights"] == 4000 * 2 and g.parts["student weights"] == 1000 * 6
    assert memory.plan(replace(w, world=3)).host_total() == 3 * memory.plan(replace(w, world=3)).peak
    assert g.host_total() == g.peak


def test_advice_offers_only_changes_that_fit():
    w = memory.Workload(student=_shape(10**8, 2), teacher=_shape(10**9, 6), teacher_live=True, micro_batch=8,
                        seq_len=1024, chunk_size=64, parallel="ddp", world=8, device="cuda", checkpointing=False)
    ddp = memory.plan(w)
    limit = math.ceil(ddp.peak / memory.MARGIN) - 1
    assert not memory.fits(ddp, limit)
    fixes = memory.advice(w, limit, grad_accum=1)
    assert fixes and fixes[0].change == "train.parallel: fsdp"
    assert all(memory.fits(a.plan, limit) for a in fixes)
    # tight enough that only a smaller micro-batch (a divisor of 8 per rank) or no teacher here fits
    tight = memory.plan(replace(w, parallel="fsdp", checkpointing=True, micro_batch=2))
    fixes = memory.advice(w, math.ceil(tight.peak / memory.MARGIN), grad_accum=3)
    smaller = [a for a in fixes if "train.batch_size" in a.change]
    assert smaller and smaller[0].change.endswith("train.batch_size: 16, train.grad_accum: 12")
    assert smaller[0].plan.workload.micro_batch * 12 == 8 * 3  # the same tokens per optimizer step
    assert memory.parse_bytes("80GiB") == 80 * 1024**3 and memory.parse_bytes("24GB") == 24 * 10**9
    assert memory.parse_bytes("512MiB") == 512 * 1024**2 and memory.parse_bytes("1000") == 1000


def test_plan_exits_nonzero_with_the_advice_when_ddp_cannot_fit(tmp_path, tiny_teacher_dir, text_file, capsys):
    cfg = _config(tmp_path, tiny_teacher_dir, text_file)
    args = ["plan", str(cfg), "--world", "2", "--device", "cuda"]
    assert main([*args, "--device-memory", "1TiB", "--json"]) == 0
    plans = json.loads(capsys.readouterr().out)["plans"]
    assert plans["fsdp"]["peak"] < plans["ddp"]["peak"]
    between = int((plans["fsdp"]["peak"] + plans["ddp"]["peak"]) / 2 / memory.MARGIN)
    assert main([*args, "--device-memory", str(between)]) == 2
    out = capsys.readouterr().out
    assert "does NOT fit with train.parallel: ddp" in out and "- train.parallel: fsdp:" in out
    assert main([*args, "--device-memory", str(between), "--set", "train.parallel=fsdp"]) == 0
    assert "verdict: fits with train.parallel: fsdp" in capsys.readouterr().out
    assert main([*args, "--device-memory", "lots"]) == 2
    assert "cannot read the memory size 'lots'" in capsys.readouterr().err


def test_train_refuses_a_run_that_cannot_fit_before_loading_weights(tmp_path, tiny_teacher_dir, text_file, capsys):
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    (teacher / "model.safetensors").write_bytes(b"not weights")  # loading these would fail
    huge = {"hidden_size": 8192, "num_layers": 48, "num_heads": 64}  # ~40 B parameters: ~1 TB with AdamW
    cfg = _config(tmp_path, teacher, text_file, student=huge)
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "this run would need" in err and "optimizer state" in err and "What to do:" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    # without the check, the same run gets as far as loading the (broken) teacher weights
    assert main(["train", str(cfg), "--set", "train.memory_check=false"]) == 2
    assert "could not load the model" in capsys.readouterr().err


def test_a_run_logs_its_measured_peak_beside_the_plan(tmp_path, tiny_teacher_dir, text_file, caplog):
    from distill.training.loop import train

    cfg = load_config(_config(tmp_path, tiny_teacher_dir, text_file))
    with caplog.at_level("INFO", logger="distill.training.callbacks"):
        train(cfg)
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("memory plan: ") for m in lines)
    assert any(m.startswith("peak memory (rank 0): ") and "RSS, planned" in m for m in lines)


def test_the_scale_examples_plan_as_docs_scale_says(capsys, monkeypatch):
    """docs/scale.md's headline rows: 70B → 8B on 8 × 80 GB fits only with fsdp and activation checkpointing."""
    root = Path(__file__).parents[2]
    monkeypatch.chdir(root)  # the example's model paths are relative to the repository, as its comment says
    cfg = str(root / "examples/scale/70b-to-8b.yaml")
    args = ["plan", cfg, "--world", "8", "--device", "cuda", "--device-memory", "80GiB", "--json"]
    assert main(args) == 0
    fits = json.loads(capsys.readouterr().out)
    assert round(fits["plans"]["fsdp"]["peak"] / 2**30, 1) == 63.8
    assert main([*args, "--set", "train.activation_checkpointing=false"]) == 2
    assert main([*args, "--set", "train.parallel=ddp"]) == 2


@pytest.mark.parametrize("kind", ["cosine", "mse"])
def test_hidden_loss_memory_against_a_direct_count(tmp_path, tiny_teacher_dir, text_file, kind):
    """loss.hidden's part of the plan against what the real code holds: the teacher's layer outputs in the signal,
    the student's hooked outputs, the projected states and what the loss saves for backward (storages counted once),
    and the projections' parameters (weights, gradients, AdamW state)."""
    import torch

    from distill.loss.hidden import capture, hidden_terms
    from distill.models.loading import load_model
    from distill.signals.sources import LiveTeacher
    from distill.training.module import hidden_parts

    cfg = load_config(_config(tmp_path, tiny_teacher_dir, text_file, loss={"hidden": {"kind": kind}}))
    w = memory.workload(cfg, world=1, device="cpu")
    assert w.hidden_pairs == 2  # auto: one pair per student layer
    teacher = load_model(str(tiny_teacher_dir))
    student = build_student(cfg, teacher, teacher.tokenizer)
    pairs, projections = hidden_parts(cfg.loss.hidden, student, teacher.model)
    assert len(pairs) == 2 and w.student.hidden == 32 != w.teacher.hidden == 48  # widths differ: projections

    ids = torch.randint(0, 1000, (4, 32), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    positions = torch.arange(ids.numel())  # every token scored: the plan's upper bound
    signal = LiveTeacher(teacher.model, 1000, [t for _, t in pairs]).signal(batch, positions)
    saved: list[torch.Tensor] = []
    params = {p.untyped_storage().data_ptr() for p in projections.parameters()}
    with capture([student.model.layers[s] for s, _ in pairs], positions) as states:
        student.model(**batch)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        projected = projections(states)
        hidden_terms(projected, signal.layers, kind).sum().backward()
    held = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for t in [*signal.layers, *states, *projected, *saved] if t.untyped_storage().data_ptr() not in params}
    direct = sum(held.values())
    planned = memory.plan(w).parts["hidden states"]
    assert planned == memory.hidden_states_bytes(2, 4 * 32, 32, 48)
    # cosine saves one [N, 48] product and two [N] norms per pair; mse saves only its difference
    assert planned == direct + (0 if kind == "cosine" else 2 * 4 * 32 * 2 * 4)

    numel = sum(p.numel() for p in projections.parameters())
    assert numel == 2 * 32 * 48
    assert memory.plan(w).parts["hidden projections"] == numel * (4 + 4 + 12)
    f = memory.plan(replace(w, parallel="fsdp", world=2))
    assert f.parts["hidden projections"] == numel // 2 * (4 + 4 + 12) + 2 * numel * (4 + 4)
    explicit = load_config(_config(tmp_path, tiny_teacher_dir, text_file, loss={"hidden": {"layers": [[1, 2]]}}))
    assert memory.workload(explicit, world=1, device="cpu").hidden_pairs == 1
    # no loss.hidden, or a teacher outside the process (a store carries no hidden states): no such parts
    assert "hidden states" not in memory.plan(replace(w, hidden_pairs=0)).parts
    assert "hidden projections" not in memory.plan(replace(w, teacher_live=False)).parts
    same = replace(w, student=replace(w.student, hidden=48))
    assert memory.plan(same).parts["hidden projections"] == 0


def test_advice_drops_loss_hidden_with_the_teacher():
    w = memory.Workload(student=_shape(10**8, 2), teacher=_shape(10**9, 6), teacher_live=True, micro_batch=1,
                        seq_len=1024, chunk_size=64, parallel="ddp", world=1, device="cuda", checkpointing=True,
                        hidden_pairs=2)
    without = memory.plan(replace(w, teacher=None, teacher_live=False, hidden_pairs=0))
    fixes = memory.advice(w, math.ceil(without.peak / memory.MARGIN))
    assert [a.change.split(" (")[0] for a in fixes] == ["loss.hidden: null, the teacher out of this process"]

"""`student.init` kinds (`distill.models.student_init`): each kind's shape for the memory plan, read from
configurations only, is the model it builds; only layers and prune are cut from the teacher (and refuse to build
without it); each says in the model card and lineage what the student started from; the config's rules are the
kinds' own."""

from __future__ import annotations

import typing

import pytest
import torch

from distill.config import StudentConfig, load_config
from distill.errors import DistillError
from distill.models.loading import describe_model, load_model, model_config
from distill.models.student_init import INITS, InitName, student_init
from distill.training.memory import shape_of

STUDENTS = {
    "fresh": {"init": "fresh", "hidden_size": 32, "num_layers": 2, "num_heads": 2},
    "layers": {"init": "layers", "layers": [0, 2]},
    "prune": {"init": "prune", "prune": {"layers": 2, "intermediate_size": 64, "calibration_sequences": 4}},
    "pretrained": {"init": "pretrained"},  # student.model: the tiny student directory
}


def _cfg(kind, tiny_teacher_dir, tiny_model_dir, text_file):
    student = dict(STUDENTS[kind])
    if kind == "pretrained":
        student["model"] = str(tiny_model_dir)
    return load_config(None, [f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32",
                              *(f"student.{k}={v}" for k, v in student.items())])


def test_the_declared_kinds_are_the_configs_choices():
    assert set(INITS) == set(typing.get_args(InitName))
    assert StudentConfig.model_fields["init"].annotation == InitName
    assert {k for k, init in INITS.items() if init.cut_from_teacher} == {"layers", "prune"}


@pytest.mark.parametrize("kind", list(STUDENTS))
def test_the_memory_plans_shape_is_the_built_student(kind, tiny_teacher_dir, tiny_model_dir, text_file):
    from transformers import AutoModelForCausalLM

    cfg = _cfg(kind, tiny_teacher_dir, tiny_model_dir, text_file)
    init = student_init(cfg)
    assert init.name == kind and cfg.student.cut_from_teacher == init.cut_from_teacher
    teacher = load_model(str(tiny_teacher_dir))
    with torch.device("meta"):
        planned = shape_of(AutoModelForCausalLM.from_config(init.shape(cfg, model_config(str(tiny_teacher_dir)))))
    built = init.build(cfg, teacher, init.tokenizer(cfg, teacher.tokenizer))
    assert planned.params == sum({id(p): p.numel() for p in built.parameters()}.values())
    assert (planned.layers, planned.hidden, planned.intermediate) == (
        built.config.num_hidden_layers, built.config.hidden_size, built.config.intermediate_size)
    info = describe_model(str(tiny_teacher_dir))
    entry, base = init.origin(cfg, info)
    assert entry["init"] == kind and (base is not None) == (kind == "pretrained")
    assert init.card_line(cfg, info).startswith("- Student: ")
    if init.cut_from_teacher:
        assert entry["teacher_weights_sha256"] == info.weights_sha256
        with pytest.raises(DistillError, match=f"student.init={kind} needs the teacher's weights"):
            init.build(cfg, None, teacher.tokenizer)


def test_each_kind_refuses_what_it_cannot_build():
    for overrides, said in ((["student.init=layers"], "needs student.layers or student.every"),
                            (["student.init=pretrained"], "needs student.model"),
                            (["student.init=prune"], "needs student.prune")):
        with pytest.raises(DistillError, match=said):
            load_config(None, overrides)

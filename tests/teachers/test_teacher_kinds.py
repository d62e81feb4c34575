"""The teacher kind is declared once: which kind each config resolves to, and every rule that refuses a mix."""

from __future__ import annotations

import pytest

from distill.config import load_config
from distill.errors import DistillError
from distill.signals import BatchTopK, NoTeacher
from distill.teachers import CLASSES, KINDS, TeacherBase, TeacherInputs
from distill.training.sources import make_source


@pytest.fixture
def generated_dir(tmp_path):
    d = tmp_path / "answers"
    d.mkdir()
    (d / "results.jsonl").write_text("")
    return d


def test_each_config_resolves_to_one_kind(tmp_path, generated_dir):
    assert load_config(None).teacher_kind.name == "live"
    assert load_config(None, [f"teacher.store={tmp_path}"]).teacher_kind.name == "store"
    assert load_config(None, [f"data.path={generated_dir}"]).teacher_kind.name == "api"  # detected by its contents
    assert load_config(None, [f"data.path={tmp_path}", "data.format=generated"]).teacher_kind.name == "api"
    assert load_config(None, ["loss.cross_tokenizer=uld"]).teacher_kind.name == "cross_tokenizer"
    assert load_config(None, ["teacher.endpoint=http://127.0.0.1:1/v1"]).teacher_kind.name == "served"
    assert {k.name for k in KINDS.values() if k.needs_weights} == {"live", "cross_tokenizer"}
    assert {k.name for k in KINDS.values() if k.on_policy} == {"live", "served"}


@pytest.mark.parametrize("overrides,needle,where", [
    (["teacher.store=S", "data.format=generated"], "both teacher.store and a generated data set", "teacher.store"),
    (["teacher.store=S", "train.on_policy_fraction=0.5"], "on-policy distillation needs a teacher that scores",
     "train.on_policy_fraction"),
    (["loss.cross_tokenizer=align", "train.on_policy_fraction=0.5"], "on-policy distillation needs a teacher that scores",
     "train.on_policy_fraction"),
    (["train.on_policy_fraction=0.5", "loss.kd_weight=0"], "loss.kd_weight is 0", "train.on_policy_fraction"),
    (["student.tokenizer=default"], "loss.cross_tokenizer is not set", "student.tokenizer"),
    (["loss.cross_tokenizer=align", "teacher.store=S"], "cannot be combined", "loss.cross_tokenizer"),
    (["loss.cross_tokenizer=uld", "student.init=layers", "student.every=2"], "cannot be combined",
     "loss.cross_tokenizer"),
    (["teacher.endpoint=http://127.0.0.1:1/v1", "teacher.store=S"], "cannot be combined", "teacher.endpoint"),
    (["teacher.endpoint=http://127.0.0.1:1/v1", "student.init=layers", "student.every=2"], "needs local weights",
     "teacher.endpoint"),
])
def test_impossible_combinations_are_refused_at_load(overrides, needle, where):
    with pytest.raises(DistillError, match=needle) as e:
        load_config(None, overrides)
    assert e.value.where.startswith(where) and e.value.fix


def test_make_source_is_a_lookup(generated_dir):
    cfg = load_config(None, [f"data.path={generated_dir}"])
    inputs = TeacherInputs(cfg, teacher=None, info=None, tokenizer=None, corpus=None, world=None)
    assert isinstance(make_source(cfg, inputs, "train"), BatchTopK)
    ce_only = load_config(None, [f"data.path={generated_dir}", "loss.kd_weight=0", "loss.ce_weight=1"])
    assert isinstance(make_source(ce_only, inputs, "train"), NoTeacher)  # no KD term: the data is the signal
    assert isinstance(make_source(ce_only, inputs, "heldout"), BatchTopK)  # held-out figures still use it


def test_every_kind_opens_its_own_source():
    assert set(CLASSES) == set(KINDS)
    assert all(c.open is not TeacherBase.open for c in CLASSES.values())

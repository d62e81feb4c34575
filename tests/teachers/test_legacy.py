"""Old flat teacher sections still load: the kind is inferred once, a one-line notice says how to write it, and the
declared form gives the same teacher."""

from __future__ import annotations

import logging

import pytest

from distill.config import load_config
from distill.errors import DistillError
from distill.teachers import ServedTeacherConfig, StoreTeacherConfig


def _notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "distill.config" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("flat,declared,cls", [
    (["teacher.store=S", "teacher.store_tail=bucket"], ["teacher.kind=store", "teacher.store=S",
                                                        "teacher.store_tail=bucket"], StoreTeacherConfig),
    (["teacher.endpoint=http://127.0.0.1:1/v1", "teacher.top_k=7", "teacher.timeout_s=3"],
     ["teacher.kind=served", "teacher.endpoint=http://127.0.0.1:1/v1", "teacher.top_k=7", "teacher.timeout_s=3"],
     ServedTeacherConfig),
])
def test_a_flat_section_loads_as_its_declared_kind_with_one_notice(caplog, flat, declared, cls):
    with caplog.at_level(logging.WARNING, logger="distill.config"):
        old = load_config(None, flat)
    [notice] = _notices(caplog)
    assert "\n" not in notice and f"kind: {cls.KIND.name}" in notice and "write it as teacher:" in notice
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="distill.config"):
        new = load_config(None, declared)
    assert _notices(caplog) == [] and isinstance(new.teacher, cls) and old.teacher == new.teacher


def test_a_plain_model_is_a_live_teacher_without_a_notice(caplog):
    with caplog.at_level(logging.WARNING, logger="distill.config"):
        cfg = load_config(None, ["teacher.model=default", "teacher.precision=int8"])
    assert cfg.teacher.kind == "live" and cfg.teacher.precision == "int8" and _notices(caplog) == []


def test_settings_of_another_kind_in_a_flat_section_are_named_as_ignored(caplog):
    with caplog.at_level(logging.WARNING, logger="distill.config"):
        cfg = load_config(None, ["teacher.store=S", "teacher.top_k=5"])  # top_k never applied to a store
    assert cfg.teacher.kind == "store" and "ignored, not settings of this kind: top_k" in _notices(caplog)[0]


def test_a_declared_kind_refuses_another_kinds_setting_and_names_its_kind():
    with pytest.raises(DistillError, match="'endpoint' is a setting of teacher kind served, not of kind 'live'"):
        load_config(None, ["teacher.kind=live", "teacher.endpoint=http://127.0.0.1:1/v1"])
    with pytest.raises(DistillError, match="'teacher.store': Field required"):
        load_config(None, ["teacher.kind=store"])
    with pytest.raises(DistillError, match="does not match any of the expected tags"):
        load_config(None, ["teacher.kind=oracle"])


@pytest.mark.parametrize("overrides,needle,where", [
    (["teacher.kind=live", "loss.cross_tokenizer=uld"], "declare teacher.kind: cross_tokenizer",
     "loss.cross_tokenizer"),
    (["teacher.kind=cross_tokenizer"], "needs loss.cross_tokenizer", "loss.cross_tokenizer"),
    (["teacher.kind=api"], "is not one", "data.path"),
    (["teacher.kind=served", "teacher.endpoint=http://127.0.0.1:1/v1", "teacher.endpoint_tail=server_prior",
      "teacher.tail_k=10"], "must exceed teacher.top_k", "teacher.tail_k"),
    (["teacher.kind=cross_tokenizer", "loss.cross_tokenizer=uld", "teacher.precision=int8"],
     "works for a live teacher", "teacher.precision"),
])
def test_declared_kinds_check_their_own_rules(overrides, needle, where):
    with pytest.raises(DistillError, match=needle) as e:
        load_config(None, overrides)
    assert e.value.where.startswith(where) and e.value.fix


def test_help_config_lists_each_kinds_settings_under_it():
    from distill.config import describe_fields

    text = "\n".join(describe_fields())
    for kind in ("live", "store", "served", "api", "cross_tokenizer"):
        assert f"# kind: {kind} —" in text
    served = text[text.index("# kind: served"):text.index("# kind: api")]
    assert "endpoint:" in served and "timeout_s:" in served and "store_tail" not in served

"""Config validation: defaults, overrides, unknown keys with suggestions, malformed YAML."""

from __future__ import annotations

import pytest

from distill.config import DistillConfig, describe_fields, load_config
from distill.errors import DistillError


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.steps=7", "loss.kind=jsd", "loss.beta=0.3", "student.layers=[0, 3]",
                             "student.init=layers"])
    assert cfg.train.steps == 7 and cfg.loss.kind == "jsd" and cfg.loss.beta == 0.3
    assert cfg.student.layers == [0, 3]
    assert load_config(None).teacher.trust_remote_code is False


@pytest.mark.parametrize("override,expected", [
    ("trian.steps=3", "did you mean 'train'"),
    ("loss.temprature=2", "did you mean 'temperature'"),
    ("train.stepz=3", "did you mean 'steps'"),
])
def test_unknown_keys_name_the_nearest_valid_one(override, expected):
    with pytest.raises(DistillError) as e:
        load_config(None, [override])
    assert expected in str(e.value)
    bad_key = override.split("=")[0]
    assert bad_key.split(".")[0] in str(e.value) or bad_key in str(e.value)
    assert "--set" in str(e.value)


def test_bad_values_say_which_field(tmp_path):
    with pytest.raises(DistillError, match="'loss.kind'"):
        load_config(None, ["loss.kind=kl"])
    with pytest.raises(DistillError, match="'train.steps'"):
        load_config(None, ["train.steps=0"])
    with pytest.raises(DistillError, match="student.model"):
        load_config(None, ["student.init=pretrained"])


def test_malformed_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 3\n loss: [unclosed\n")
    with pytest.raises(DistillError, match="line"):
        load_config(bad)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(DistillError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    lst = tmp_path / "list.yaml"
    lst.write_text("- a\n- b\n")
    with pytest.raises(DistillError, match="mapping"):
        load_config(lst)


def test_every_field_is_documented():
    lines = describe_fields()
    assert all("# " in line and not line.rstrip().endswith("# None") for line in lines)

    def walk(model):
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"
            ann = f.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                walk(ann)

    walk(DistillConfig)


def test_examples_are_valid():
    from pathlib import Path

    examples = sorted(Path(__file__).parents[1].joinpath("examples").rglob("*.yaml"))
    assert any(p.parent.name == "scale" for p in examples)
    for path in examples:
        load_config(path)

"""The CLI under bad input: one paragraph, non-zero exit, no traceback, nothing half-written."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from distill.cli import main
from distill.config import load_config
from distill.training.callbacks import ScaleWarning


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("setup,argv_tail,needle", [
    (None, ["train", "/nonexistent/config.yaml"], "config file not found"),
    ("bad.yaml:train: [unclosed", ["train", "{bad.yaml}"], "malformed YAML"),
    ("ok.yaml:trian:\n  steps: 3\n", ["train", "{ok.yaml}"], "did you mean 'train'"),
    (None, ["train", "--set", "teacher.model=/nonexistent/teacher", "--set", "output_dir={tmp}/o"],
     "does not exist"),
    ("empty.txt:", ["train", "--set", "data.path={empty.txt}", "--set", "output_dir={tmp}/o"], "empty"),
    (None, ["train", "--set", "data.path={tmp}/missing.txt", "--set", "output_dir={tmp}/o"], "not found"),
    (None, ["eval", "--student", "{tmp}/nope"], "does not exist"),
])
def test_bad_input_is_one_paragraph_and_nonzero(tmp_path, capsys, setup, argv_tail, needle):
    subs = {"tmp": str(tmp_path)}
    if setup:
        name, content = setup.split(":", 1)
        (tmp_path / name).write_text(content)
        subs[name] = str(tmp_path / name)
    argv = []
    for a in argv_tail:
        for key, value in subs.items():
            a = a.replace("{" + key + "}", value)
        argv.append(a)
    code, err = _run(capsys, argv)
    assert code != 0
    assert needle in err
    assert "Traceback" not in err
    assert err.count("\n") <= 2, err
    assert not (tmp_path / "o").exists()


def test_help_config_lists_fields(capsys):
    assert main(["train", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "chunk_size" in out and "on_policy_fraction" in out


def test_loss_scale_warning(caplog):
    cfg = load_config(None, ["loss.kd_weight=1", "loss.ce_weight=1", "loss.warn_ratio=100"])
    run = SimpleNamespace(cfg=cfg)
    balanced = ScaleWarning()
    balanced.on_step_end(run, {"kd": 1.0, "ce": 5.0})
    assert not balanced.warned
    lopsided = ScaleWarning()
    with caplog.at_level(logging.WARNING):
        lopsided.on_step_end(run, {"kd": 0.001, "ce": 5.0})
        lopsided.on_step_end(run, {"kd": 0.001, "ce": 5.0})
    assert lopsided.warned and caplog.text.count("barely affects") == 1  # once per run, not every step


def test_generate_from_a_refused_api_teacher_stops_before_any_request(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    code = main(["generate", "--endpoint", "https://api.openai.com/v1", "--model", "gpt-4o", "--prompts",
                 str(prompts), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 3 and "OpenAI" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()

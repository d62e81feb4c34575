"""The public Python API (`distill.train / evaluate / capture / prune / plan / export`): each verb on a tiny config,
taking the run's DistillConfig or its own settings object and giving back its documented result — the same as the
CLI command that calls it prints."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import distill
from distill.cli import main

VERBS = ("train", "evaluate", "capture", "prune", "plan", "export")


def test_import_distill_stays_torch_free():
    code = ("import sys, distill; s = distill.EvalSettings(student='x'); "
            "assert 'torch' not in sys.modules, 'import distill pulled in torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_resolves_and_is_listed():
    for name in distill.__all__:
        assert getattr(distill, name) is not None
    assert set(VERBS) <= set(distill.__all__) and all(callable(getattr(distill, v)) for v in VERBS)
    with pytest.raises(AttributeError):
        distill.nothing_here  # noqa: B018


def test_settings_objects_are_documented_and_strict():
    for cls in (distill.EvalSettings, distill.CaptureSettings, distill.PruneSettings, distill.ExportSettings):
        assert all(f.description for f in cls.model_fields.values()), cls.__name__
    with pytest.raises(ValueError, match="sequencess"):
        distill.EvalSettings(student="s", sequencess=3)  # a misspelt field is refused, not ignored


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_teacher_dir, text_file):
    out = tmp_path_factory.mktemp("api")
    cfg = distill.load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32", "student.hidden_size=32",
        "student.num_layers=1", "student.num_heads=2", "train.steps=2", "train.batch_size=2",
        "train.eval_sequences=2", "train.progress=false", "loss.chunk_size=16", f"output_dir={out / 's'}"])
    return cfg, distill.train(cfg)


def test_train_gives_the_written_student_and_its_figures(trained):
    cfg, result = trained
    assert isinstance(result, distill.TrainResult)
    assert (result.output_dir / "model.safetensors").is_file() and result.steps == 2 == len(result.history)
    assert result.final_eval == result.history[-1] and "heldout_kl" in result.final_eval


def test_evaluate_takes_one_settings_object_and_stays_the_function(trained, tiny_teacher_dir, text_file, capsys):
    cfg, result = trained
    settings = distill.EvalSettings(teacher=tiny_teacher_dir, student=result.output_dir, data=text_file, seq_len=32,
                                    sequences=2, batch_size=2, gen_prompts=1)
    first = distill.evaluate(settings)
    importlib.import_module("distill.evaluation.report")  # importing the module must not rebind the name

    second = distill.evaluate(settings)
    assert isinstance(first, distill.EvalReport)
    assert first.student["kl_teacher_student"] == second["student"]["kl_teacher_student"] > 0
    assert first.sets[0]["kl_teacher_student"] == first.student["kl_teacher_student"] and first.draft is None
    assert main(["eval", "--teacher", str(tiny_teacher_dir), "--student", str(result.output_dir), "--data",
                 str(text_file), "--seq-len", "32", "--sequences", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["student"]["kl_teacher_student"] == pytest.approx(first.student["kl_teacher_student"], rel=1e-6)


def test_plan_is_what_distill_plan_prints(trained, capsys):
    cfg, _ = trained
    plan = distill.plan(cfg, world=2, device="cpu", device_memory="1TiB")
    assert isinstance(plan, distill.RunPlan) and plan.fits and plan.advice == []
    assert plan.chosen is plan.plans[cfg.train.parallel] and plan.chosen.workload.world == 2
    tight = distill.plan(cfg, device_memory="1MiB")
    assert not tight.fits and tight.limit == 2**20
    path = cfg.output_dir + ".yaml"
    with open(path, "w") as f:
        json.dump(cfg.model_dump(mode="json"), f)  # JSON is YAML
    assert main(["plan", path, "--world", "2", "--device-memory", "1TiB", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(plan.to_dict()))


def test_prune_writes_a_smaller_model_of_the_teacher(tmp_path, tiny_teacher_dir, text_file):
    out = distill.prune(distill.PruneSettings(teacher=tiny_teacher_dir, data=text_file, out=tmp_path / "p", layers=2,
                                              calibration_sequences=4, seq_len=32))
    assert isinstance(out, distill.PruneOutput) and out.dims.layers == len(out.kept_layers) == 2
    assert out.student_params < out.teacher_params and (out.path / "importance.json").is_file()
    reread = json.loads((out.path / "importance.json").read_text())
    assert reread == json.loads(json.dumps(out.report))
    loaded = distill.load_model(str(out.path))
    assert sum(p.numel() for p in {id(p): p for p in loaded.model.parameters()}.values()) == out.student_params


def test_capture_writes_a_resumable_store(tmp_path, tiny_teacher_dir, trained):
    cfg, _ = trained
    settings = distill.CaptureSettings(data=cfg.data.model_copy(update={"max_sequences": 6}), out=str(tmp_path / "st"),
                                       teacher=str(tiny_teacher_dir), top_k=4, shard_size=4, batch_size=2,
                                       device="cpu")
    res = distill.capture(settings)
    shards = list(range(res.manifest["n_shards"]))
    assert isinstance(res, distill.CaptureResult) and res.computed == shards and len(shards) > 1 and res.skipped == []
    assert res.manifest["settings"]["k"] == 4 and res.positions == res.manifest["positions"] > 0
    again = distill.capture(settings)  # resumable: nothing left to do
    assert again.computed == [] and again.skipped == shards


def test_export_checks_and_records_the_export(tmp_path, trained, text_file):
    _, result = trained
    rec = distill.export(distill.ExportSettings(student=result.output_dir, format="hf", dtype="bf16",
                                                out=tmp_path / "hf", data=str(text_file), sequences=2, seq_len=32))
    assert rec["export_format"] == "hf" and rec["weights"] == "bf16"
    assert 0 <= rec["check"]["kl_per_token"] <= rec["check"]["max_kl"]
    assert json.loads((tmp_path / "hf" / "export.json").read_text())["check"] == rec["check"]

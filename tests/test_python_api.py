"""The public Python API (`distill.train / evaluate / capture / prune / plan / export / collect`): each verb on a tiny
config,
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

VERBS = ("train", "evaluate", "capture", "prune", "plan", "export", "collect")
KEY = "sk-python-api-3c9e"  # the tiny server's API key


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
    for cls in (distill.EvalSettings, distill.CaptureSettings, distill.PruneSettings, distill.ExportSettings,
                distill.GenerateSettings):
        assert all(f.description for f in cls.model_fields.values()), cls.__name__
    with pytest.raises(ValueError, match="sequencess"):
        distill.EvalSettings(student="s", sequencess=3)  # a misspelt field is refused, not ignored
    with pytest.raises(ValueError, match="timeout"):
        distill.GenerateSettings(endpoint="http://127.0.0.1:9/v1", model="m", out="o", timeout=5)  # now timeout_s


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


@pytest.fixture(scope="module")
def served(tiny_teacher_dir):
    """The tiny teacher behind `distill serve`'s app on 127.0.0.1 (a free port), with one API key."""
    from distill.models.loading import load_model
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    loaded = load_model(str(tiny_teacher_dir))
    engine = Engine(loaded.model, loaded.tokenizer, max_batch=4)
    with BackgroundServer(create_app(engine, "tiny", api_keys={KEY: "api-test"})) as srv:
        yield srv
    engine.close()


def test_collect_gathers_answers_resumably_as_distill_generate_does(served, tiny_teacher_dir, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setenv("DISTILL_API_TEST_KEY", KEY)
    prompts = [[{"role": "user", "content": f"Count to {i}."}] for i in range(3)]
    options = {"max_tokens": 4, "top_logprobs": 2, "temperature": 0.0, "api_key_env": "DISTILL_API_TEST_KEY",
               "teacher_spec": str(tiny_teacher_dir), "tokenizer": str(tiny_teacher_dir)}
    settings = distill.GenerateSettings(endpoint=served.url, model="tiny", out=tmp_path / "g", prompts=prompts,
                                        progress=False, **options)
    res = distill.collect(settings)
    assert isinstance(res, distill.GenerateResult) and res.complete and res.out == tmp_path / "g"
    assert (res.accounting.succeeded, res.accounting.failed, res.accounting.prompts) == (3, 0, 3)
    rows = [json.loads(line) for line in res.results.read_text().splitlines()]
    assert sorted(r["messages"][0]["content"] for r in rows) == sorted(p[0]["content"] for p in prompts)
    assert all(r["choices"][0]["token_ids"] and len(r["choices"][0]["logprobs"][0]["top_logprobs"]) == 2
               for r in rows)  # log-prob tokens mapped to ids with the tokenizer
    assert json.loads((res.out / "source.json").read_text())["policy"] == res.policy
    assert not [f for f in res.out.iterdir() if f.is_file() and KEY in f.read_text()]  # the key is never written
    again = distill.collect(settings)
    assert (again.accounting.skipped, again.accounting.requests) == (3, 0)
    # the command builds the same settings from its flags: the same rows, nothing left to ask
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"messages": p}) + "\n" for p in prompts))
    flags = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert main(["generate", "--endpoint", served.url, "--model", "tiny", "--prompts", str(tmp_path / "p.jsonl"),
                 "--out", str(tmp_path / "g"), "--no-progress", *flags]) == 0
    assert "0 rows written, 3 already done" in capsys.readouterr().out


@pytest.mark.parametrize("flags,needle", [(["--timeout", "0"], "--timeout-s: Input should be greater than 0"),
                                          (["--n", "2", "--tools", "t.py"], "--tools generates one trajectory")])
def test_generate_settings_errors_are_one_paragraph_naming_the_flag(tmp_path, capsys, flags, needle):
    code = main(["generate", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path / "o"),
                 *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: invalid generate settings: ") and err.count("\n") == 1
    assert needle in err and not (tmp_path / "o").exists()

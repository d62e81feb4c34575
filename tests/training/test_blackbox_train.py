"""Black-box workflow end to end on tiny models: serve → generate (with top log-probs) → train on the set."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.config import load_config
from distill.training.loop import train


@pytest.fixture(scope="module")
def teacher_server(tiny_teacher_dir):
    from distill.models.loading import load_model
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    loaded = load_model(str(tiny_teacher_dir))
    engine = Engine(loaded.model, loaded.tokenizer, max_batch=8)
    with BackgroundServer(create_app(engine, "tiny-teacher")) as srv:
        yield srv
    engine.close()


def _generate(tmp_path, server, teacher_dir, top_logprobs: int):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Tell me about the number {i}."}) + "\n" for i in range(8)))
    out = tmp_path / f"set-{top_logprobs}"
    rc = main(["generate", "--endpoint", server.url, "--model", "tiny-teacher", "--prompts", str(prompts),
               "--out", str(out), "--max-tokens", "12", "--top-logprobs", str(top_logprobs), "--seed", "1",
               "--tokenizer", str(teacher_dir), "--no-progress"])
    assert rc == 0
    return out


@pytest.mark.parametrize("top_logprobs", [5, 0])
def test_generate_then_train(tmp_path, teacher_server, tiny_teacher_dir, top_logprobs):
    data = _generate(tmp_path, teacher_server, tiny_teacher_dir, top_logprobs)
    source = json.loads((data / "source.json").read_text())
    assert source["model"] == "tiny-teacher" and source["policy"]["decision"].startswith("allowed")
    cfg = load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={data}", "data.seq_len=96", "data.heldout_fraction=0.25",
        "student.hidden_size=32", "student.num_layers=2", "student.num_heads=2", "train.steps=3",
        "train.batch_size=2", "train.progress=false", "train.eval_every=3", "loss.ce_weight=1.0",
        "loss.chunk_size=32", f"output_dir={tmp_path / 'student'}"])
    result = train(cfg)
    rows = result.history
    assert all(r["ce"] > 0 for r in rows)
    if top_logprobs:
        assert all(r["kd"] > 0 for r in rows), "the sparse top-k term must be active"
        assert "heldout_kl" in rows[-1]
    else:
        assert all(r["kd"] == 0 for r in rows), "no log-probs: sequence-level KD only"
    assert (result.output_dir / "lineage.json").is_file()

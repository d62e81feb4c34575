"""Radioactivity end to end, at small scale, through the real pieces: `distill serve`'s app with a watermark key
→ `distill generate` through the API → `distill train` on the generated set → `distill trace` (open and closed).

The tiny random teacher is nearly flat over 49k tokens, which no tiny student could learn from a few hundred
tokens; a test-only first logits processor restricts it to 32 whole-word tokens (sharpened), and the server's
own watermark processor acts after it. The key is left-hash h=1 with δ=8 so a 150-step, 2-layer student picks the
bias up (with one layer it learned some keys' green lists too weakly for the closed-mode test: p 0.08 at N 10).

Everything is fixed (the key, the sampling seed, the training seed, and the training order: `distill generate` writes
answers as they complete, but a generated set is read in key order), so every run computes the same p-values; the
sizes are chosen so each one clears its threshold by orders of magnitude (measured figures in the asserts). Before
the set was read in key order, the order the 8 concurrent requests completed in changed the student, and one CI run
measured closed-mode p = 3e-4 (N 64).
"""

from __future__ import annotations

import json

import pytest
import torch

from distill.cli import main
from distill.config import load_config
from distill.keys.watermark import save_key
from distill.training.loop import train


class Restrict:
    """The served distribution, replacing the teacher's nearly flat one: a fixed random bigram table over the
    `allowed` ids (HF logits-processor call form). The server's watermark processor acts after it."""

    def __init__(self, allowed: list[int]):
        self.allowed = torch.tensor(allowed)
        self.row = {a: i for i, a in enumerate(allowed)}
        self.table = torch.randn(len(allowed), len(allowed), generator=torch.Generator().manual_seed(0)) * 0.5

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(scores, float("-inf"))
        for b in range(scores.shape[0]):
            prev = int(input_ids[b, -1])  # after the prompt: a row picked by the prompt's token sum
            out[b, self.allowed] = self.table[self.row.get(prev, int(input_ids[b].sum()) % len(self.row))]
        return out


def _serve_and_generate(loaded, restrict, protection, prompts, out):
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    def procs(account: str) -> list:
        return [restrict] + (protection.processors_for(account) if protection else [])

    engine = Engine(loaded.model, loaded.tokenizer, max_batch=16)
    try:
        with BackgroundServer(create_app(engine, "teacher", processors_for=procs)) as srv:
            rc = main(["generate", "--endpoint", srv.url, "--model", "teacher", "--prompts", str(prompts),
                       "--out", str(out), "--max-tokens", "40", "--n", "6", "--seed", "3", "--tokenizer",
                       str(loaded.info.path), "--concurrency", "8", "--no-progress"])
    finally:
        engine.close()
    assert rc == 0
    return out


def _train(data, teacher_dir, out):
    cfg = load_config(None, [
        f"teacher.model={teacher_dir}", f"data.path={data}", "data.seq_len=96", "data.heldout_fraction=0.05",
        "student.hidden_size=32", "student.num_layers=2", "student.num_heads=2", "train.steps=150",
        "train.batch_size=16", "train.lr=2e-2", "train.warmup_steps=5", "train.progress=false",
        "train.eval_every=60", "train.checkpoint_every=1000", "loss.kd_weight=0", "loss.ce_weight=1.0",
        f"output_dir={out}"])
    return train(cfg).output_dir


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_teacher_dir, tokenizer, word_ids, fixed_key):
    from distill.models.loading import load_model
    from distill.serve.protection import load_protection

    root = tmp_path_factory.mktemp("radio_e2e")
    key_file = root / "wm.key"
    save_key(fixed_key(tokenizer, "radioactivity-e2e", delta=8.0, context_width=1, self_hash=False), key_file)
    prompts = root / "prompts.txt"
    prompts.write_text("".join(f"Say something about topic {i}.\n" for i in range(16)))
    loaded = load_model(str(tiny_teacher_dir))
    restrict = Restrict(word_ids)
    wm = _serve_and_generate(loaded, restrict, load_protection(str(key_file), None, loaded.tokenizer), prompts,
                             root / "wm")
    plain = _serve_and_generate(loaded, restrict, None, prompts, root / "plain")
    radio = _train(wm, tiny_teacher_dir, root / "radio")
    control = _train(plain, tiny_teacher_dir, root / "control")
    return key_file, wm, plain, radio, control


def _trace(capsys, *args: str) -> dict:
    assert main(["trace", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_served_answers_carry_the_watermark(pipeline, capsys, tmp_path):
    key_file, wm, plain, _, _ = pipeline
    for folder, expect in ((wm, True), (plain, False)):
        text = "\n".join(c["text"] for line in (folder / "results.jsonl").read_text().splitlines()
                         for c in json.loads(line)["choices"])
        f = tmp_path / f"{folder.name}.txt"
        f.write_text(text)
        main(["watermark", "detect", "--key", str(key_file), "--json", str(f)])
        res = json.loads(capsys.readouterr().out)
        assert (res["p_value"] < 1e-6) is expect, res


def test_open_mode_flags_the_student_trained_on_served_answers(pipeline, capsys):
    key_file, wm, _, radio, control = pipeline
    hot = _trace(capsys, "--key", str(key_file), "--suspect-model", str(radio), "--watermarked-data", str(wm))
    cold = _trace(capsys, "--key", str(key_file), "--suspect-model", str(control), "--watermarked-data", str(wm))
    assert hot["N"] >= 30 and cold["N"] >= 30, (hot, cold)
    assert hot["flagged"] and hot["p_value"] < 1e-5, hot  # measured: N ~140, p ~1e-31
    assert not cold["flagged"] and cold["p_value"] >= 1e-6, cold  # innocent: fails on 1e-6 of keys (measured 0.84)


def test_closed_mode_flags_the_served_student(pipeline, capsys, tmp_path):
    from distill.models.loading import load_model
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    key_file, _, _, radio, control = pipeline
    # the 16 prompts the teacher answered (an investigator knows them from the serving logs) and 16 new ones: the
    # greedy student answers new prompts much alike, so these alone score few units (N 36, p 1e-6 as measured)
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"Say something about topic {i}.\n" for i in [*range(16), *range(100, 116)]))
    found = {}
    for name, path in (("radio", radio), ("control", control)):
        loaded = load_model(str(path))
        engine = Engine(loaded.model, loaded.tokenizer, max_batch=16)
        try:
            with BackgroundServer(create_app(engine, "suspect")) as srv:
                found[name] = _trace(capsys, "--key", str(key_file), "--suspect-endpoint", srv.url, "--model",
                                     "suspect", "--prompts", str(prompts), "--tokenizer", str(path),
                                     "--max-tokens", "40")
        finally:
            engine.close()
    # measured: N 103, p 1e-21; over training seeds 1-6, N 40-137 and p 1e-32 to 1e-7
    assert found["radio"]["N"] >= 30 and found["radio"]["p_value"] < 1e-4, found["radio"]
    assert found["control"]["p_value"] >= 1e-6, found["control"]  # innocent: fails on 1e-6 of keys


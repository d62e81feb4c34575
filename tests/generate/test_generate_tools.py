"""`distill generate --tools` against `distill serve`: whole trajectories (calls run locally, results sent back),
the turn limit, accounting of every turn, the trajectories as training examples, and SIGKILL then resume.

A tiny random model never writes a valid call by chance, so the served model is scripted by a logits processor
(the server's own `processors_for` hook): a first turn that calls `add` and an unknown tool, and a final answer
once the prompt holds tool results ("loop" keeps calling)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from fastapi import FastAPI, Request
from gen_helpers import API_KEY, Gate

from distill.generate.client import run_generation
from distill.generate.settings import GenerateSettings
from distill.generate.tools import load_tools

LOOP_KEY = "sk-loop-generate-5d1e"
CALLS = ('<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>\n'
         '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>')
ANSWER = "The answer is 5."
TOOLS = '''
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    return a + b
'''


class Script:
    """Makes the model write CALLS on a turn whose prompt has no tool result yet (always, with `loop`), else
    ANSWER; then its end-of-turn token. Stateless: the turn starts after the prompt's last assistant header."""

    def __init__(self, tokenizer, loop: bool):
        self.tok, self.loop = tokenizer, loop
        self.header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        self.texts = {t: tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                      for t in (CALLS, ANSWER)}

    def __call__(self, input_ids, scores):
        ids, h = input_ids[0].tolist(), len(self.header)
        start = max(i + h for i in range(len(ids) - h + 1) if ids[i: i + h] == self.header)
        answered = "<tool_response>" in self.tok.decode(ids[:start])
        target = self.texts[ANSWER if answered and not self.loop else CALLS]
        out = torch.full_like(scores, -1e9)
        out[:, target[min(len(ids) - start, len(target) - 1)]] = 0
        return out


def _server(tiny_model_dir, open_for: int | None = None):
    from distill.models.loading import load_model
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    loaded = load_model(str(tiny_model_dir))
    engine = Engine(loaded.model, loaded.tokenizer, max_batch=8)
    scripts = {"agent": [Script(loaded.tokenizer, loop=False)], "loop": [Script(loaded.tokenizer, loop=True)]}
    app = create_app(engine, "tiny", api_keys={API_KEY: "agent", LOOP_KEY: "loop"}, processors_for=scripts.get)
    gate = Gate(app, open_for) if open_for is not None else None
    return engine, BackgroundServer(gate or app), gate, loaded.tokenizer


@pytest.fixture(scope="module")
def agent_server(tiny_model_dir):
    engine, srv, _, tok = _server(tiny_model_dir)
    with srv:
        srv.tokenizer = tok
        yield srv
    engine.close()


@pytest.fixture()
def tools(tmp_path):
    (tmp_path / "tools.py").write_text(TOOLS)
    return load_tools(tmp_path / "tools.py")


def _run(server, tools, out, prompts, key=API_KEY, **kw):
    return run_generation(GenerateSettings(endpoint=server.url, model="tiny", out=out, prompts=prompts,
                                           tools=tools.path, max_tokens=64, concurrency=2, progress=False,
                                           backoff_s=0.01, **kw), api_key=key)


PROMPTS = [[{"role": "user", "content": f"What is 2+3? (asked {i} times)"}] for i in range(3)]


def test_trajectories_are_stored_whole_and_counted_per_turn(agent_server, tools, tmp_path):
    from distill.data.generated import load_generated

    out = tmp_path / "out"
    acct = _run(agent_server, tools, out, PROMPTS)
    assert (acct.succeeded, acct.failed, acct.requests, acct.turns, acct.tool_calls, acct.tool_errors) == (
        3, 0, 6, 6, 6, 3)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["messages"][0]["content"] for r in rows) == sorted(p[0]["content"] for p in PROMPTS)
    for r in rows:
        conv = r["trajectory"]
        assert r["finish"] == "answer" and len(r["turns"]) == 2 and r["tools"] == list(tools.schemas)
        assert [m["role"] for m in conv] == ["user", "assistant", "tool", "tool", "assistant"]
        calls = conv[1]["tool_calls"]
        assert conv[1]["content"] is None and [c["function"]["name"] for c in calls] == ["add", "nope"]
        assert [(m["tool_call_id"], m["content"]) for m in conv[2:4]] == [
            (calls[0]["id"], "5"), (calls[1]["id"], "error: unknown tool 'nope'; the tools are add")]
        assert conv[4] == {"role": "assistant", "content": ANSWER}
        assert r["usage"]["prompt_tokens"] == sum(t["usage"]["prompt_tokens"] for t in r["turns"])
    assert acct.tokens_in == sum(r["usage"]["prompt_tokens"] for r in rows) > 0
    again = _run(agent_server, tools, out, PROMPTS)
    assert (again.skipped, again.requests, again.turns) == (3, 0, 0)
    # as training data: one example per trajectory; the assistant's calls and answer are the targets
    tok = agent_server.tokenizer
    examples = load_generated(out, tok)
    assert len(examples) == 3
    for ex in examples:
        ids, mask = ex["input_ids"], ex["loss_mask"]
        targets = tok.decode([ids[t + 1] for t in range(len(ids) - 1) if mask[t]])
        assert targets == f"{CALLS}<|im_end|>\n{ANSWER}<|im_end|>\n"


def test_max_turns_ends_a_trajectory_that_keeps_calling(agent_server, tools, tmp_path):
    acct = _run(agent_server, tools, tmp_path / "o", PROMPTS[:1], key=LOOP_KEY, max_turns=2)
    row = json.loads((tmp_path / "o" / "results.jsonl").read_text())
    assert row["finish"] == "max_turns" and acct.turns == 2 and acct.tool_calls == 4
    assert [m["role"] for m in row["trajectory"]] == ["user"] + ["assistant", "tool", "tool"] * 2


def test_sigkill_mid_trajectory_then_resume_stores_each_once(tiny_model_dir, tmp_path, kill_when):
    """One worker: the gate answers prompt 1's two turns and prompt 2's first, then holds; the kill lands with
    prompt 2 half done (nothing of it stored); the resumed run redoes it whole and stores every prompt once."""
    n = 4
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Add 2 and 3, take {i}."}) + "\n" for i in range(n)))
    (tmp_path / "tools.py").write_text(TOOLS)
    out = tmp_path / "out"
    results = out / "results.jsonl"
    engine, srv, gate, _ = _server(tiny_model_dir, open_for=3)
    env = {**os.environ, "DISTILL_TEST_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    try:
        with srv:
            cmd = [sys.executable, "-m", "distill.cli", "generate", "--endpoint", srv.url, "--model", "tiny",
                   "--teacher-spec", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(out),
                   "--tools", str(tmp_path / "tools.py"), "--max-turns", "4", "--concurrency", "1",
                   "--max-tokens", "64", "--api-key-env", "DISTILL_TEST_KEY", "--backoff", "0.05",
                   "--timeout", "30", "--no-progress"]
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            kill_when(proc, lambda: results.exists() and results.read_bytes().count(b"\n") >= 1, "1 row stored",
                      lambda: proc.stdout.read().decode(errors="replace"))
            assert proc.returncode == -signal.SIGKILL
            assert results.read_bytes().count(b"\n") == 1
            gate.release()
            second = subprocess.run(cmd, env=env, capture_output=True, timeout=240)
            assert second.returncode == 0, second.stderr.decode()[-2000:]
            gate.release()
    finally:
        engine.close()
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["messages"][0]["content"] for r in rows) == sorted(f"Add 2 and 3, take {i}." for i in range(n))
    assert len({r["key"] for r in rows}) == n and all(r["finish"] == "answer" for r in rows)
    acct = json.loads((out / "accounting.json").read_text())
    # the second run: 3 trajectories of 2 turns, each turn 1 calling `add` and the unknown `nope`
    assert (acct["skipped"], acct["succeeded"], acct["turns"], acct["tool_calls"], acct["tool_errors"]) == (
        1, n - 1, 2 * (n - 1), 2 * (n - 1), n - 1)
    assert f"{2 * (n - 1)} turns, {2 * (n - 1)} tool calls ({n - 1} errors)" in second.stdout.decode()


def test_tools_refuse_several_samples_and_log_probabilities(agent_server, tools, tmp_path):
    from pydantic import ValidationError

    for kw, needle in (({"n": 2}, "--tools generates one trajectory"), ({"top_logprobs": 2}, "--tools generates one "
                       "trajectory"), ({"max_turns": 0}, "max_turns")):
        with pytest.raises(ValidationError, match=needle):
            _run(agent_server, tools, tmp_path / "o", PROMPTS[:1], **kw)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("extra,match", [
    (["--tools", "{d}/notes.txt"], "neither a Python module nor a JSON schema file"),
    (["--tools", "{d}/t.py"], "cannot describe the tool 'f'"),
    (["--tool-command", "python run.py"], "--tool-command runs the tools of --tools tools.json"),
])
def test_bad_tool_options_are_one_paragraph(tiny_model_dir, tmp_path, capsys, extra, match):
    from distill.cli import main

    (tmp_path / "t.py").write_text("def f(x):\n    return x\n")
    (tmp_path / "p.txt").write_text("hello\n")
    code = main(["generate", "--endpoint", "http://127.0.0.1:9/v1", "--model", "tiny", "--teacher-spec",
                 str(tiny_model_dir), "--prompts", str(tmp_path / "p.txt"), "--out", str(tmp_path / "o"),
                 *[e.format(d=tmp_path) for e in extra]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert match in err and "What to do:" in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_any_api_tool_calls_and_reasoning_are_kept(tools, tmp_path, tokenizer):
    """An API that answers with `tool_calls` (object arguments) and `reasoning_content` (as vLLM's reasoning
    parsers and DeepSeek do): both land in the trajectory; data.reasoning keeps or drops the reasoning."""
    from distill.data.generated import load_generated
    from distill.serve.background import BackgroundServer

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        assert [t["function"]["name"] for t in body["tools"]] == ["add"]
        called = body["messages"][-1]["role"] == "tool"
        msg = {"role": "assistant", "content": "5." if called else None,
               "reasoning_content": "Done." if called else "Use add.",
               **({} if called else {"tool_calls": [{"id": "x1", "type": "function",
                                                     "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]})}
        return {"id": "r", "model": "m", "choices": [{"index": 0, "message": msg,
                                                      "finish_reason": "stop" if called else "tool_calls"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3}}

    out = tmp_path / "o"
    with BackgroundServer(app) as srv:
        acct = _run(srv, tools, out, PROMPTS[:2], key=None)
    assert (acct.succeeded, acct.turns, acct.tool_calls, acct.tool_errors, acct.tokens_in) == (2, 4, 2, 0, 40)
    conv = json.loads((out / "results.jsonl").read_text().splitlines()[0])["trajectory"]
    assert conv[1:] == [
        {"role": "assistant", "content": None, "reasoning_content": "Use add.", "tool_calls": [
            {"id": "x1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "x1", "content": "5"},
        {"role": "assistant", "content": "5.", "reasoning_content": "Done."}]
    for reasoning, expected in (("keep", "<think>\nUse add.\n</think>\n\n"), ("drop", "")):
        ex = load_generated(out, tokenizer, reasoning)[0]
        ids, mask = ex["input_ids"], ex["loss_mask"]
        targets = tokenizer.decode([ids[t + 1] for t in range(len(ids) - 1) if mask[t]])
        assert targets.startswith(expected + '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}')
        assert ("Done." in targets) == (reasoning == "keep")

"""`distill generate` as a subprocess: SIGKILL mid-run, a torn last line, a restart; and keys never leak."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gen_helpers import API_KEY, Gate


@pytest.fixture()
def gated_server(tiny_model_dir):
    """The tiny model behind a `Gate` that lets 3 chat requests through (then `gate.release()`)."""
    from distill.models.loading import load_model
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    loaded = load_model(str(tiny_model_dir))
    engine = Engine(loaded.model, loaded.tokenizer, max_batch=8)
    gate = Gate(create_app(engine, "tiny", api_keys={API_KEY: "tester"}), open_for=3)
    try:
        with BackgroundServer(gate) as srv:
            srv.gate, srv.spec = gate, str(tiny_model_dir)
            yield srv
            gate.release()
    finally:
        engine.close()


def _cmd(server, prompts_file, out, *extra):
    return [sys.executable, "-m", "distill.cli", "generate", "--endpoint", server.url, "--model", "tiny",
            "--teacher-spec", server.spec,
            "--prompts", str(prompts_file), "--out", str(out), "--concurrency", "3", "--max-tokens", "16",
            "--top-logprobs", "2", "--api-key-env", "DISTILL_TEST_KEY", "--backoff", "0.05", "--timeout", "30",
            "--price-in", "1.5", "--price-out", "6", *extra]


def test_sigkill_then_resume_stores_every_prompt_once(gated_server, tmp_path, kill_when):
    gen_server = gated_server
    n = 24
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": f"Tell me fact number {i}."}) + "\n" for i in range(n)))
    out = tmp_path / "out"
    env = {**os.environ, "DISTILL_TEST_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    results = out / "results.jsonl"
    proc = subprocess.Popen(_cmd(gen_server, prompts_file, out), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    # the gate answers 3 requests and holds the rest: kill once those 3 rows are on disk
    kill_when(proc, lambda: results.exists() and results.read_bytes().count(b"\n") >= 3, "3 rows stored",
              lambda: proc.stdout.read().decode(errors="replace"))
    first_out = proc.stdout.read().decode()
    assert proc.returncode == -signal.SIGKILL, "the kill must land on a running process"
    done_before = results.read_bytes().count(b"\n")
    assert done_before == 3  # the gate answered 3 requests; the other 21 prompts were still held
    gen_server.gate.release()
    with open(results, "ab") as f:  # what a kill in the middle of a write would leave
        f.write(b'{"key": "deadbeef", "choices": [{"text": "half a li')
    second = subprocess.run(_cmd(gen_server, prompts_file, out), env=env, capture_output=True, timeout=240)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    raw = results.read_bytes()
    assert raw.endswith(b"\n") and b"half a li" not in raw
    rows = [json.loads(line) for line in raw.splitlines()]
    contents = sorted(r["messages"][0]["content"] for r in rows)
    assert contents == sorted(f"Tell me fact number {i}." for i in range(n))
    assert len({r["key"] for r in rows}) == n
    acct = json.loads((out / "accounting.json").read_text())
    assert acct["skipped"] == done_before and acct["succeeded"] == n - done_before and acct["store"]["rows"] == n
    expected_cost = (acct["tokens_in"] * 1.5 + acct["tokens_out"] * 6) / 1e6
    assert abs(acct["cost_usd"] - expected_cost) < 1e-6 and acct["cost_usd"] > 0
    # the key appears nowhere: output files, stdout/stderr of both runs
    texts = [first_out, second.stdout.decode(), second.stderr.decode()]
    texts += [p.read_text(errors="replace") for p in Path(out).iterdir() if p.is_file()]
    assert all(API_KEY not in t for t in texts)
    assert "rows written" in second.stdout.decode()


def test_wrong_key_is_one_paragraph_error_without_the_key(gen_server, tmp_path):
    prompts_file = tmp_path / "p.txt"
    prompts_file.write_text("hello\nworld\n")
    wrong = "sk-wrong-key-0000"
    env = {**os.environ, "DISTILL_TEST_KEY": wrong}
    r = subprocess.run(_cmd(gen_server, prompts_file, tmp_path / "o", "--no-progress"), env=env,
                       capture_output=True, timeout=120)
    err = r.stderr.decode()
    assert r.returncode == 2 and "error: the API refused the key (HTTP 401)" in err
    assert "Traceback" not in err and wrong not in err + r.stdout.decode()
    r = subprocess.run(_cmd(gen_server, tmp_path / "missing.jsonl", tmp_path / "o2"), env=env,
                       capture_output=True, timeout=120)
    assert r.returncode == 2 and "prompt file not found" in r.stderr.decode() and "Traceback" not in r.stderr.decode()

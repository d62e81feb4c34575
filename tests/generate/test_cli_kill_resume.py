"""`distill generate` as a subprocess: SIGKILL mid-run, a torn last line, a restart; and keys never leak."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gen_helpers import API_KEY


def _cmd(server, prompts_file, out, *extra):
    return [sys.executable, "-m", "distill.cli", "generate", "--endpoint", server.url, "--model", "tiny",
            "--teacher-spec", server.spec,
            "--prompts", str(prompts_file), "--out", str(out), "--concurrency", "3", "--max-tokens", "16",
            "--top-logprobs", "2", "--api-key-env", "DISTILL_TEST_KEY", "--backoff", "0.05", "--timeout", "30",
            "--price-in", "1.5", "--price-out", "6", *extra]


def test_sigkill_then_resume_stores_every_prompt_once(gen_server, tmp_path):
    n = 24
    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text("".join(json.dumps({"prompt": f"Tell me fact number {i}."}) + "\n" for i in range(n)))
    out = tmp_path / "out"
    env = {**os.environ, "DISTILL_TEST_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    results = out / "results.jsonl"
    proc = subprocess.Popen(_cmd(gen_server, prompts_file, out), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    first_out = proc.communicate(timeout=30)[0].decode()
    done_before = results.read_bytes().count(b"\n")
    assert 3 <= done_before < n
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

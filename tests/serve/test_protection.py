"""The server with a watermark and a traffic guard plugged into its hooks, driven through the openai client."""

from __future__ import annotations

import openai
import pytest

from distill.serve.protection import Protection


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from distill.models.loading import load_model

    return load_model(str(tiny_model_dir))


def _serve(tiny, protection, api_keys=None):
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    engine = Engine(tiny.model, tiny.tokenizer, max_batch=4)
    app = create_app(engine, "tiny", api_keys=api_keys, **protection.hooks())
    return engine, BackgroundServer(app)


def _answers(url, key, n=4):
    client = openai.OpenAI(base_url=url + "/v1", api_key=key or "unused", max_retries=0)
    texts = []
    for i in range(n):
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": f"Say {i}"}],
                                           max_tokens=48, temperature=1.0, seed=i)
        texts.append(r.choices[0].message.content)
    return " ".join(texts)


def test_served_answers_carry_the_accounts_watermark(tiny, fixed_key):
    from distill.protection.watermark import detect_accounts, detect_text

    master = fixed_key(tiny.tokenizer, "serve-accounts", delta=6.0, context_width=1, self_hash=False)
    # the tiny random model is nearly flat over 49k tokens: the served top-64 bias would move almost no mass,
    # so this test biases the whole vocabulary (top-64 on a real, peaked model: docs/benchmarks.md)
    protection = Protection(watermark_key=master, watermark_top_k=None)
    engine, server = _serve(tiny, protection, api_keys={"sk-alice": "alice", "sk-bob": "bob"})
    with server as srv:
        text = _answers(srv.url, "sk-bob")
    engine.close()
    found = detect_accounts(master, ["alice", "bob", "carol"], tiny.tokenizer, text)
    assert found["best"]["account"] == "bob"
    assert found["p_value_corrected"] < 1e-4
    other = fixed_key(tiny.tokenizer, "serve-accounts-other", delta=6.0, context_width=1, self_hash=False)
    unmarked = detect_text(other, tiny.tokenizer, text)
    assert unmarked.p_value >= 1e-6, unmarked  # not this key's text: fails on 1e-6 of keys


def test_guard_observes_and_blocks(tiny, tmp_path):
    from distill.protection.guard import Guard, GuardConfig, Rule

    cfg = GuardConfig(min_requests=2, rules=[Rule(min_score=0.0, action="block")],
                      state_file=str(tmp_path / "guard.json"), traffic_log=str(tmp_path / "traffic.jsonl"))
    guard = Guard(cfg)
    engine, server = _serve(tiny, Protection(guard=guard))
    secret = [{"role": "user", "content": "tell me about the zebrafinch migration"}]
    with server as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(model="tiny", messages=secret, max_tokens=4)
        with pytest.raises(openai.PermissionDeniedError):
            for _ in range(5):
                client.chat.completions.create(model="tiny", messages=secret, max_tokens=4)
    engine.close()
    state = guard.evidence("anonymous")
    assert state["action"] == "block" and state["requests_in_window"] >= 2
    from distill.serve.protection import Protection as P

    P(guard=guard).close()
    assert (tmp_path / "guard.json").is_file()
    # the traffic log: one line per served request (refused ones are not traffic), no prompt text
    log = (tmp_path / "traffic.jsonl").read_text()
    assert len(log.splitlines()) == state["requests_total"] >= 2
    assert "zebrafinch" not in log and "migration" not in log and '"entry"' in log


def test_serve_saves_guard_state_on_sigterm(tmp_path, tiny_model_dir, fixed_key):
    """`distill serve` stopped with SIGTERM still writes the guard's final state (uvicorn re-raises SIGTERM)."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from distill.models.loading import load_tokenizer
    from distill.protection.watermark import save_key

    save_key(fixed_key(load_tokenizer(str(tiny_model_dir)), "serve-sigterm"), tmp_path / "wm.key")
    (tmp_path / "guard.yaml").write_text(f"state_file: {tmp_path / 'state.json'}\nwatermark_key: {tmp_path / 'wm.key'}\n"
                                         "persist_every_seconds: 3600\n")
    log = open(tmp_path / "serve.log", "wb")  # closed in the finally block, after the process
    proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "serve", str(tiny_model_dir), "--host", "127.0.0.1",
                             "--port", "0", "--guard-config", str(tmp_path / "guard.yaml")], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 300  # poll until it answers (a loaded machine can take long to start it)
        url = None
        while True:
            if proc.poll() is not None:
                pytest.fail(f"distill serve exited (rc {proc.returncode}) before answering: "
                            f"{(tmp_path / 'serve.log').read_text(errors='replace')[-2000:]}")
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", (tmp_path / "serve.log").read_text(
                errors="replace"))  # --port 0: the server binds a free port itself and reports it
            try:
                if found:
                    url = found.group(1) + "/v1"
                    httpx.get(url + "/models", timeout=5)
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("distill serve did not answer on 127.0.0.1 within 300 s")
            time.sleep(0.2)
        body = {"model": str(tiny_model_dir), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        for _ in range(3):
            assert httpx.post(url + "/chat/completions", json=body, timeout=60).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        log.close()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["accounts"]["anonymous"]["requests_in_window"] == 3


def test_served_watermark_biases_only_the_top_candidates_unless_told(tiny, fixed_key):
    """`distill serve` biases the 64 most likely candidates per step (the perplexity-friendly default);
    `--watermark-top-k 0` biases every green token. The green bits are the same either way."""
    import torch

    from distill.protection.watermark.greenlist import green_mask
    from distill.serve.protection import load_protection

    key = fixed_key(tiny.tokenizer, "serve-top-k")
    default = Protection(watermark_key=key).processors_for("anonymous")[0]
    whole = Protection(watermark_key=key, watermark_top_k=None).processors_for("anonymous")[0]
    ids = torch.tensor([[5, 6, 7, 8]])
    scores = torch.randn(1, key.vocab_size, generator=torch.Generator().manual_seed(0))
    green = green_mask(key, ids[:, -4:], key.vocab_size)[0]
    top = set(scores[0].topk(64).indices.tolist())
    moved_default = set(torch.nonzero(default(ids, scores)[0] != scores[0]).flatten().tolist())
    moved_whole = set(torch.nonzero(whole(ids, scores)[0] != scores[0]).flatten().tolist())
    assert moved_whole == set(torch.nonzero(green).flatten().tolist())
    assert moved_default == moved_whole & top and 0 < len(moved_default) < 64
    assert load_protection(None, None, tiny.tokenizer, None).watermark_top_k is None


def test_serve_rejects_a_negative_watermark_top_k(capsys):
    from distill.cli import main

    assert main(["serve", "--watermark-top-k", "-1"]) != 0
    assert "--watermark-top-k" in capsys.readouterr().err

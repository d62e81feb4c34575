"""The guard in the real server path: `distill serve`'s app, a tiny model, requests over HTTP on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from distill.protection.guard import Guard, GuardConfig, Rule
from distill.serve.protection import Protection

KEYS = {"sk-test-bot-0001": "bot", "sk-test-human-0002": "human"}


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from distill.models.loading import load_model

    return load_model(str(tiny_model_dir))


def serve(tiny, guard: Guard):
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    engine = Engine(tiny.model, tiny.tokenizer, max_batch=4)
    return engine, BackgroundServer(create_app(engine, "tiny", api_keys=KEYS, **Protection(guard=guard).hooks()))


def chat(client: httpx.Client, key: str, text: str) -> httpx.Response:
    return client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"model": "tiny", "messages": [{"role": "user", "content": text}], "max_tokens": 1})


def test_blocked_account_stays_blocked_through_the_server(tiny, feature_scorer):
    """Issue 17: a harvester that reached `block` had 41 of its next 280 requests served. Score = share of
    chain-of-thought prompts; refusals reported as empty traffic used to pull it under the rule after six."""
    guard = Guard(GuardConfig(min_requests=5, rules=[Rule(0.5, "block")]), feature_scorer("cot"))
    engine, server = serve(tiny, guard)
    with server as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        codes = [chat(client, "sk-test-bot-0001", f"Explain topic {i} step by step.").status_code for i in range(5)]
        assert codes == [200] * 5 and guard.decision("bot") == "block"
        later = [chat(client, "sk-test-bot-0001", f"Explain topic {i} step by step.") for i in range(5, 285)]
        human = chat(client, "sk-test-human-0002", "hello there")
    engine.close()
    assert [r.status_code for r in later] == [403] * 280
    assert {r.json()["error"]["code"] for r in later} == {"blocked"}
    assert human.status_code == 200
    st = guard.evidence("bot")
    assert st["action"] == "block" and st["refused_total"] == 280 and st["requests_in_window"] == 5
    assert st["changes_total"] == 1 and st["changes"][0]["to"] == "block"


def test_throttled_account_gets_429_with_retry_after(tiny, fixed_scorer):
    fixed_scorer.value = 0.9
    guard = Guard(GuardConfig(min_requests=2, throttle_interval_seconds=3600.0, rules=[Rule(0.5, "throttle")]),
                  fixed_scorer)
    engine, server = serve(tiny, guard)
    with server as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        first = [chat(client, "sk-test-bot-0001", f"hi {i}").status_code for i in range(2)]
        later = [chat(client, "sk-test-bot-0001", f"hi {i}") for i in range(30)]
    engine.close()
    assert first == [200, 200] and guard.decision("bot") == "throttle"
    assert [r.status_code for r in later] == [429] * 30 and later[0].headers["Retry-After"]
    assert guard.state["bot"]["refused"] == {"throttle": 30} and guard.state["bot"]["requests_in_window"] == 2

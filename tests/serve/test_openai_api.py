"""The HTTP API through the official openai client, against a real uvicorn server."""

from __future__ import annotations

import concurrent.futures as cf
import math

import httpx
import openai
import pytest
import torch

MSG = [{"role": "user", "content": "Tell me something"}]


def test_models_and_chat_with_logprobs(client, tiny_loaded):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=6, temperature=0, logprobs=True,
                                       top_logprobs=3)
    ch = r.choices[0]
    content = ch.logprobs.content
    assert len(content) == 6 == r.usage.completion_tokens and ch.finish_reason == "length"
    assert "".join(c.token for c in content) == ch.message.content
    for c in content:
        assert len(c.top_logprobs) == 3 and c.top_logprobs[0].logprob >= c.top_logprobs[-1].logprob
        assert bytes(c.bytes).decode() == c.token and c.logprob <= 0
        assert math.isclose(c.logprob, c.top_logprobs[0].logprob, abs_tol=1e-5)  # greedy = top-1
    tok = tiny_loaded.tokenizer
    from distill.tokens.chat import render_chat

    assert r.usage.prompt_tokens == len(render_chat(tok, MSG))


def test_completions_legacy_logprobs_and_n(client):
    r = client.completions.create(model="tiny", prompt=["Once upon", "A time"], max_tokens=5, logprobs=2, n=2,
                                  seed=11)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    for c in r.choices:
        lp = c.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
        assert "".join(lp.tokens) == c.text
        assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(5)]
        assert all(len(d) == 2 for d in lp.top_logprobs)
    assert r.usage.completion_tokens == 20


def test_stream_equals_non_stream_for_same_seed(client):
    kw = dict(model="tiny", messages=MSG, max_tokens=10, seed=7, temperature=0.8)
    plain = client.chat.completions.create(**kw).choices[0].message.content
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    assert chunks[-1].usage.completion_tokens == 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    again = client.chat.completions.create(**kw).choices[0].message.content
    assert again == plain


def test_concurrent_requests_do_not_corrupt_each_other(client):
    jobs = [dict(model="tiny", messages=[{"role": "user", "content": f"prompt number {i}" * (i % 3 + 1)}],
                 max_tokens=4 + i % 5, seed=i, temperature=1.0) for i in range(10)]
    solo = [client.chat.completions.create(**j).choices[0].message.content for j in jobs]
    with cf.ThreadPoolExecutor(10) as ex:
        together = list(ex.map(lambda j: client.chat.completions.create(**j).choices[0].message.content, jobs))
    assert together == solo


def test_auth_gate_observer_and_processors(server, hooks, tiny_loaded):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    assert httpx.get(server.url + "/v1/models").status_code == 401
    bob = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-bob-456", max_retries=0)
    forced = tiny_loaded.tokenizer.convert_tokens_to_ids("Ġyes")

    def force(input_ids, scores):
        out = torch.full_like(scores, -1e9)
        out[:, forced] = 0
        return out

    hooks.processors["bob"] = [force]
    try:
        r = bob.chat.completions.create(model="tiny", messages=MSG, max_tokens=3)
        assert r.choices[0].message.content == " yes yes yes"
        name, req, resp, ts = hooks.seen[-1]
        assert name == "bob" and req["messages"] == MSG and resp["choices"][0]["message"]["content"] == " yes yes yes"
        assert "sk-bob-456" not in repr(hooks.seen[-1]) and ts > 0
        hooks.decision["bob"] = "block"
        with pytest.raises(openai.PermissionDeniedError):
            bob.chat.completions.create(model="tiny", messages=MSG, max_tokens=3)
        hooks.decision["bob"] = "throttle"
        raw = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": "Bearer sk-bob-456"},
                         json={"model": "tiny", "messages": MSG})
        assert raw.status_code == 429 and raw.headers["retry-after"] == "1"
        assert raw.json()["error"]["code"] == "throttled" and hooks.seen[-1][2]["error"]["code"] == "throttled"
    finally:
        hooks.processors.pop("bob", None)
        hooks.decision.pop("bob", None)

"""Malformed requests get a 4xx with an OpenAI-style error body, never a 500; the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-alice-123"}
OK_MSGS = [{"role": "user", "content": "hi"}]

CASES = [
    ("wrong type messages", "/v1/chat/completions", b'{"model": "tiny", "messages": 3}', 400, "messages"),
    ("wrong type temperature", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "temperature": "hot"}', 400, "temperature"),
    ("wrong type max_tokens", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": "5"}', 400, "max_tokens"),
    ("bool as int", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "n": true}', 400, "n"),
    ("bad role", "/v1/chat/completions", b'{"model": "tiny", "messages": [{"role": "wizard", "content": "a"}]}',
     400, "messages.0.role"),
    ("missing messages", "/v1/chat/completions", b'{"model": "tiny"}', 400, "messages"),
    ("missing model", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "a"}]}', 400, "model"),
    ("empty messages", "/v1/chat/completions", b'{"model": "tiny", "messages": []}', 400, "messages"),
    ("unknown model", "/v1/chat/completions", b'{"model": "gpt-9", "messages": [{"role": "user", "content": "a"}]}',
     404, "model"),
    ("too many tokens", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "max_tokens": 100000}', 400, "max_tokens"),
    ("n too big", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "n": 50}', 400, "n"),
    ("negative top_p", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "top_p": -1}', 400, "top_p"),
    ("top_logprobs without logprobs", "/v1/chat/completions",
     b'{"model": "tiny", "messages": [{"role": "user", "content": "a"}], "top_logprobs": 3}', 400, "top_logprobs"),
    ("invalid utf-8", "/v1/chat/completions", b'{"model": "tiny", "messages": "\xff\xfe"}', 400, None),
    ("invalid json", "/v1/chat/completions", b'{"model": "tiny", ', 400, None),
    ("not an object", "/v1/chat/completions", b'[1, 2]', 400, None),
    ("empty body", "/v1/chat/completions", b'', 400, None),
    ("completion prompt type", "/v1/completions", b'{"model": "tiny", "prompt": {"a": 1}}', 400, "prompt"),
    ("completion out-of-vocab ids", "/v1/completions", b'{"model": "tiny", "prompt": [99999999]}', 400, "prompt"),
    ("completion echo", "/v1/completions", b'{"model": "tiny", "prompt": "a", "echo": true}', 400, "echo"),
    ("unknown route", "/v1/embeddings", b'{}', 404, None),
]


@pytest.mark.parametrize("name,path,body,status,param", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_a_clear_4xx(server, name, path, body, status, param):
    r = httpx.post(server.url + path, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param


def test_huge_body_is_413_and_server_survives(server):
    big = b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"x" * 200_000 + b'"}]}'
    r = httpx.post(server.url + "/v1/chat/completions", content=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(100):
            yield b"x" * 4096

    r = httpx.post(server.url + "/v1/chat/completions", content=chunks(), headers=AUTH)
    assert r.status_code == 413
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH,
                   json={"model": "tiny", "messages": OK_MSGS, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


def test_prompt_longer_than_context_is_400(server, tiny_loaded):
    n = tiny_loaded.model.config.max_position_embeddings
    r = httpx.post(server.url + "/v1/completions", headers=AUTH,
                   json={"model": "tiny", "prompt": [5] * n, "max_tokens": 4})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"

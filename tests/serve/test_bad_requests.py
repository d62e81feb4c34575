"""Malformed requests get a 4xx with an OpenAI-style error body, never a 500; the server keeps serving."""

from __future__ import annotations

import json
import math
import socket

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


def _exchange(sock, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP/1.1 request on `sock` and read one response (Content-Length framed)."""
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of a body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-alice-123\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def _ok_chat() -> bytes:
    return json.dumps({"model": "tiny", "messages": OK_MSGS, "max_tokens": 2}).encode()


def _assert_openai_error(body: bytes, code: str | None = None) -> dict:
    err = json.loads(body)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


@pytest.mark.parametrize("body", [
    b"[" * 60_000,  # a bare array bomb (no closing brackets)
    b"[" * 30_000 + b"]" * 30_000,
    b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "x": ' + b"{\"a\": " * 65 + b"1" + b"}" * 65
    + b"}",  # valid JSON, one level over the limit, in an ignored field
], ids=["open-brackets", "balanced", "just-over-the-limit"])
def test_deep_nesting_is_a_400_and_the_same_connection_keeps_serving(server, body):
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        status, headers, resp = _exchange(sock, _post("/v1/chat/completions", body))
        assert status == 400, resp
        _assert_openai_error(resp, "json_too_deep")
        assert headers.get("connection") != "close"
        status, _, resp = _exchange(sock, _post("/v1/chat/completions", _ok_chat()))  # same socket
        assert status == 200 and json.loads(resp)["usage"]["completion_tokens"] == 2


def test_nesting_within_the_limit_is_accepted_and_brackets_in_strings_do_not_count(server):
    deep_ok = {"model": "tiny", "messages": [{"role": "user", "content": "[" * 300 + "{" * 300}], "max_tokens": 2,
               "x": json.loads("[" * 60 + "]" * 60)}
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, json=deep_ok)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("header,body", [
    ("Content-Length: abc", ""), ("Content-Length: -5", ""), ("Content-Length: 3\r\nContent-Length: 4", ""),
    ("Bad Header Without Colon", ""),
    ("Transfer-Encoding: chunked", "zz\r\nabc\r\n0\r\n\r\n"),  # a bad chunk size, once the app is reading
], ids=["not-a-number", "negative", "conflicting", "no-colon", "bad-chunk"])
def test_malformed_http_gets_the_openai_error_shape(server, caplog, header, body):
    """h11 refuses these (before the app runs, or while it reads the body); JsonErrorH11Protocol answers them in
    the OpenAI shape and closes the connection; the app logs no internal error."""
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-alice-123\r\n"
               f"{header}\r\n\r\n{body}").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        status, headers, resp = _exchange(sock, request)
        assert status == 400 and headers["content-type"] == "application/json"
        _assert_openai_error(resp, "invalid_http_request")
        assert headers["connection"] == "close"
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, content=_ok_chat())  # also waits for the app
    assert r.status_code == 200
    assert not [rec for rec in caplog.records if rec.getMessage() == "internal error"]


@pytest.mark.parametrize("method,path,allow", [("GET", "/v1/chat/completions", "POST"),
                                               ("DELETE", "/v1/completions", "POST"),
                                               ("POST", "/v1/models", "GET"), ("PUT", "/openapi.json", "GET")])
def test_405_carries_allow_and_an_openai_error(server, method, path, allow):
    r = httpx.request(method, server.url + path, headers=AUTH)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    _assert_openai_error(r.content, "method_not_allowed")


INTEGER_SAMPLES = {  # a valid value of every integer field (the test fails when a new one is not listed here)
    "/v1/chat/completions": ({"model": "tiny", "messages": OK_MSGS, "logprobs": True, "max_tokens": 3},
                             {"n": 2, "seed": 3, "max_tokens": 3, "max_completion_tokens": 3, "top_logprobs": 2}),
    "/v1/completions": ({"model": "tiny", "prompt": "Once upon", "max_tokens": 3},
                        {"n": 2, "seed": 3, "max_tokens": 3, "logprobs": 2, "prompt_logprobs": 1, "prompt": [5, 6]}),
}


def _integer_fields(model) -> set[str]:
    def is_int(s: dict) -> bool:
        return (s.get("type") == "integer" or any(is_int(b) for b in s.get("anyOf", []))
                or ("items" in s and is_int(s["items"])))

    return {k for k, s in model.model_json_schema()["properties"].items() if is_int(s)}


@pytest.mark.parametrize("path", list(INTEGER_SAMPLES))
def test_integral_floats_count_as_integers_and_fractions_are_refused(server, path):
    from distill.serve.schemas import ChatCompletionRequest, CompletionRequest

    model = ChatCompletionRequest if path == "/v1/chat/completions" else CompletionRequest
    base, samples = INTEGER_SAMPLES[path]
    assert set(samples) == _integer_fields(model)
    for field, value in samples.items():
        as_int = httpx.post(server.url + path, headers=AUTH, json={**base, "seed": 1, field: value}, timeout=60)
        as_float = httpx.post(server.url + path, headers=AUTH, json={**base, "seed": 1, field: integral_float(value)},
                              timeout=60)
        assert as_int.status_code == 200 and as_float.status_code == 200, (field, as_float.text)
        assert [c.get("text", c.get("message")) for c in as_float.json()["choices"]] == \
               [c.get("text", c.get("message")) for c in as_int.json()["choices"]]
        bad = httpx.post(server.url + path, headers=AUTH, json={**base, field: fraction(value)}, timeout=60)
        assert bad.status_code == 400, (field, bad.text)
        assert _assert_openai_error(bad.content)["param"].split(".")[0] == field


def integral_float(value):
    return [float(v) for v in value] if isinstance(value, list) else float(value)


def fraction(value):
    return [v + 0.5 for v in value] if isinstance(value, list) else value + 0.5


def test_temperature_too_small_to_divide_by_is_greedy(server):
    def tokens(temperature):
        r = httpx.post(server.url + "/v1/completions", headers=AUTH,
                       json={"model": "tiny", "prompt": "Once upon a time", "max_tokens": 12, "seed": 5,
                             "temperature": temperature, "logprobs": 0}, timeout=60)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert all(math.isfinite(lp) for lp in choice["logprobs"]["token_logprobs"])
        return choice["logprobs"]["tokens"]

    greedy = tokens(0)
    for t in (1e-320, 5e-324, 1e-45):
        assert tokens(t) == greedy, t

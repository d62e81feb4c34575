"""Result store (torn lines, single writer, no duplicates) and the token buckets."""

from __future__ import annotations

import asyncio
import json

import pytest

from distill.errors import DistillError
from distill.generate.client import retry_after
from distill.generate.ratelimit import TokenBucket
from distill.generate.store import ResultStore, repair_tail, row_key
from distill.tokens.openai import chat_url


def test_torn_tail_is_cut_and_keys_never_written_twice(tmp_path):
    with ResultStore(tmp_path) as s:
        assert s.append({"key": "a", "v": 1}) and s.append({"key": "b", "v": 2})
        assert not s.append({"key": "a", "v": 3})
    with open(tmp_path / "results.jsonl", "ab") as f:
        f.write(b'{"key": "c", "v"')
    with ResultStore(tmp_path) as s:
        assert s.torn_bytes == len(b'{"key": "c", "v"') and s.keys == {"a", "b"}
        assert s.append({"key": "c", "v": 4})
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["key"] for x in lines] == ["a", "b", "c"]
    one = tmp_path / "one.jsonl"
    one.write_bytes(b"no newline at all")
    assert repair_tail(one) == 17 and one.read_bytes() == b""


def test_second_writer_is_refused(tmp_path):
    with ResultStore(tmp_path):
        with pytest.raises(DistillError, match="another `distill generate`"):
            ResultStore(tmp_path)


def test_row_key_depends_on_prompt_params_and_model():
    m = [{"role": "user", "content": "x"}]
    k = row_key(m, {"t": 1}, "a")
    assert k == row_key([{"content": "x", "role": "user"}], {"t": 1}, "a")
    assert len({k, row_key(m, {"t": 2}, "a"), row_key(m, {"t": 1}, "b"),
                row_key([{"role": "user", "content": "y"}], {"t": 1}, "a")}) == 4


def test_token_bucket_rate():
    clock = [0.0]
    bucket = TokenBucket(60, clock=lambda: clock[0])  # 1 per second, burst 60
    slept = []

    async def fake_sleep(d):
        slept.append(d)
        clock[0] += d

    async def go():
        orig = asyncio.sleep
        asyncio.sleep = fake_sleep
        try:
            for _ in range(60):
                assert await bucket.take(1) == 0.0
            w = await bucket.take(1)
            w2 = await bucket.take(3)
        finally:
            asyncio.sleep = orig
        return w, w2

    w, w2 = asyncio.run(go())
    assert w == pytest.approx(1.0) and w2 == pytest.approx(3.0)
    assert TokenBucket(None).rate is None


def test_retry_after_and_urls():
    import httpx

    assert retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert retry_after(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert 0 <= retry_after(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after(httpx.Headers({})) is None
    assert chat_url("http://h:1") == chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    with pytest.raises(DistillError):
        chat_url("h:1")

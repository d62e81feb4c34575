"""`distill guard simulate` writes a trace and keys; `distill guard replay` sends it to a real server (the app of
`distill serve` with its guard hooks, on 127.0.0.1) with each row's key, time-compressed, in order."""

from __future__ import annotations

import json
import stat

import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.keys.api import load_api_keys
from distill.protection.guard import Guard, GuardConfig, Rule
from distill.protection.guard.replay import read_trace, request_body
from distill.serve.protection import Protection


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from distill.models.loading import load_model

    return load_model(str(tiny_model_dir))


def test_simulate_writes_a_trace_and_private_keys(tmp_path, capsys):
    trace, keys = tmp_path / "t.jsonl", tmp_path / "k.txt"
    assert main(["guard", "simulate", "--seed", "4", "--n-benign", "3", "--days", "0.2", "--campaigns",
                 "templated,lp_harvest", "--out", str(trace), "--keys-out", str(keys)]) == 0
    rows = read_trace(trace)
    names = {r["key"] for r in rows}
    assert {r["label"] for r in rows} == {"benign", "templated", "lp_harvest"}
    assert set(load_api_keys(keys).values()) == names and stat.S_IMODE(keys.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert "lp_harvest 1" in out and not any(k in out for k in load_api_keys(keys))
    before = keys.read_text()  # never a second set of keys over the first
    assert main(["guard", "simulate", "--out", str(trace), "--keys-out", str(keys)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and keys.read_text() == before
    assert main(["guard", "simulate", "--out", str(trace), "--campaigns", "nope"]) == 2


def test_trace_rows_are_checked(tmp_path):
    bad = tmp_path / "bad.jsonl"
    cases = {"line 2": '{"key": "a", "ts": 1, "request": {}}\n{"key": "a", "ts": "x", "request": {}}\n',
             "time order": '{"key": "a", "ts": 2, "request": {}}\n{"key": "a", "ts": 1, "request": {}}\n'}
    for needle, text in cases.items():
        bad.write_text(text)
        with pytest.raises(DistillError, match=needle):
            read_trace(bad)
    path, body = request_body({"request": {"model": "m", "prompt": "hi", "max_tokens": 50}}, "tiny", 8)
    assert path == "/v1/completions" and body == {"model": "tiny", "prompt": "hi", "max_tokens": 8}
    path, body = request_body({"request": {"messages": [], "max_tokens": 1}}, "tiny", 8)
    assert path == "/v1/chat/completions" and body["max_tokens"] == 1
    # the recorded answer length, then the cap; a row without one keeps its own max_tokens
    row = {"request": {"messages": [], "max_completion_tokens": 900}, "completion_tokens": 700}
    assert request_body(row, "tiny", None, recorded_lengths=True)[1] == {"messages": [], "model": "tiny",
                                                                         "max_tokens": 700}
    assert request_body(row, "tiny", 512, recorded_lengths=True)[1]["max_tokens"] == 512
    assert request_body({"request": {"messages": [], "max_tokens": 3}}, "tiny", None, True)[1]["max_tokens"] == 3


def test_replay_through_the_real_server_keeps_keys_order_and_blocks(tiny, tmp_path, feature_scorer, capsys):
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    speed = 600.0
    rows = []
    for i in range(20):  # a chain-of-thought harvester, one request a minute; a person now and then
        rows.append({"key": "bot", "ts": 1000.0 + 60 * i, "label": "cot", "kind": "cot",
                     "request": {"model": "m", "max_tokens": 2,
                                 "messages": [{"role": "user", "content": f"Explain topic{i} step by step."}]}})
        if i % 4 == 0:
            rows.append({"key": "human", "ts": 1000.0 + 60 * i + 1, "label": "benign", "kind": "chat",
                         "request": {"model": "m", "max_tokens": 2,
                                     "messages": [{"role": "user", "content": f"hello {i}"}]}})
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys_file = tmp_path / "k.txt"
    keys_file.write_text("bot:sk-test-replay-bot-1\nhuman:sk-test-replay-human-2\n")
    keys = load_api_keys(keys_file)
    guard = Guard(GuardConfig(min_requests=5, time_scale=speed, rules=[Rule(0.5, "block")]), feature_scorer("cot"))
    seen: list[tuple[str, float]] = []

    def observe(name, request, response, ts):
        seen.append((name, request.get("messages", [{}])[0].get("content", "")))
        guard.observe(name, request, response, ts)

    hooks = Protection(guard=guard).hooks() | {"observer": observe}
    engine = Engine(tiny.model, tiny.tokenizer, max_batch=4)
    out = tmp_path / "replayed.jsonl"
    with BackgroundServer(create_app(engine, "tiny", api_keys=keys, **hooks)) as srv:
        assert main(["guard", "replay", str(trace), "--url", srv.url + "/v1", "--keys", str(keys_file), "--speed",
                     str(speed), "--model", "tiny", "--concurrency", "1", "--out", str(out), "--wait-ready", "30"]) == 0
    engine.close()
    printed = capsys.readouterr().out
    done = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["i"] for d in done] == list(range(len(rows))) and [d["key"] for d in done] == [r["key"] for r in rows]
    bot = [d["status"] for d in done if d["key"] == "bot"]
    assert bot == [200] * 5 + [403] * 15  # blocked at the fifth, and it stays blocked
    assert {d["status"] for d in done if d["key"] == "human"} == {200}
    # the server saw every request, in the trace's order, under each row's own account (a refused request is
    # reported before its body is read)
    assert [n for n, _ in seen] == [r["key"] for r in rows]
    assert [c for (_, c), d in zip(seen, done, strict=True) if d["status"] == 200] == [
        r["request"]["messages"][0]["content"] for r, d in zip(rows, done, strict=True) if d["status"] == 200]
    assert guard.state["bot"]["refused_total"] == 15 and guard.state["human"]["requests_total"] == 5
    text = out.read_text() + printed
    assert "sk-test-replay" not in text  # keys never reach the output
    assert json.loads(printed.strip().splitlines()[-1])["status"] == {"200": 10, "403": 15}


def test_replay_refuses_a_trace_with_accounts_that_have_no_key(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"key": "carol", "ts": 1, "request": {"messages": []}}\n')
    keys = tmp_path / "k.txt"
    keys.write_text("bob:sk-x\n")
    assert main(["guard", "replay", str(trace), "--url", "http://127.0.0.1:9", "--keys", str(keys)]) == 2
    assert "1 account(s) of the trace have no key" in capsys.readouterr().err

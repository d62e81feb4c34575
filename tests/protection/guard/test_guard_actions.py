"""Actions that hold: refused requests are attempts (never traffic), a cool-down and hysteresis before an action
is lifted, every change logged with its evidence, actions restored after a restart."""

from __future__ import annotations

import logging
import re

import pytest

from distill.errors import DistillError
from distill.protection.guard import Guard, GuardConfig, Rule, load_config

BLOCKED = {"error": {"message": "this API key is blocked", "type": "permission_error", "param": None,
                     "code": "blocked"}}
THROTTLED = {"error": {"message": "too many requests", "type": "rate_limit_error", "param": None,
                       "code": "throttled"}}
INVALID = {"error": {"message": "missing required parameter 'model'", "type": "invalid_request_error",
                     "param": "model", "code": "missing_required_parameter"}}


def cot_request(i: int) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": f"Explain topic{i} step by step."}]}


def served(n_out: int = 200) -> dict:
    return {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 10, "completion_tokens": n_out}}


def test_a_blocked_account_stays_blocked_under_continued_refused_traffic(feature_scorer):
    # score = share of chain-of-thought prompts: each refusal counted as an empty request used to dilute it
    g = Guard(GuardConfig(min_requests=5, rules=[Rule(0.5, "block")]), feature_scorer("cot"))
    for i in range(5):
        g.observe("bot", cot_request(i), served(), float(i))
    assert g.gate("bot") == "block"
    before = dict(g.state["bot"]["features"])
    for i in range(280):
        assert g.observe("bot", {}, BLOCKED, 10.0 + i) == "block"
        assert g.gate("bot") == "block"
    st = g.state["bot"]
    assert st["features"] == before and st["requests_in_window"] == 5 and st["requests_total"] == 5
    assert st["refused"] == {"block": 280} and st["refused_total"] == 280 and st["changes_total"] == 1


def test_invalid_and_throttled_requests_are_counted_not_scored(fixed_scorer):
    g = Guard(GuardConfig(min_requests=1, rules=[Rule(0.5, "throttle")]), fixed_scorer)
    g.observe("k", cot_request(0), served(), 0.0)
    g.observe("k", {"model": "m"}, INVALID, 1.0)
    g.observe("k", {}, THROTTLED, 2.0)
    st = g.state["k"]
    assert st["requests_in_window"] == 1 and st["invalid_requests"] == 1 and st["refused"] == {"throttle": 1}


def test_cool_down_and_hysteresis(fixed_scorer, caplog):
    cfg = GuardConfig(min_requests=3, cooldown_seconds=100.0, hysteresis=0.1,
                      rules=[Rule(0.5, "log"), Rule(0.8, "watermark"), Rule(0.97, "block")])
    g = Guard(cfg, fixed_scorer)
    t = 0.0

    def send(score: float, n: int = 1, dt: float = 1.0) -> str:
        nonlocal t
        fixed_scorer.value = score
        for _ in range(n):
            t += dt
            g.observe("k", cot_request(int(t)), served(), t)
        return g.decision("k")

    caplog.set_level(logging.INFO, logger="distill.protection.guard.core")
    assert send(0.9, 2) == "none"  # fewer than min_requests: no evidence yet
    assert send(0.9) == "watermark"
    # a score flapping around the rule, inside and long after the cool-down: no change (0.79 >= 0.8 - 0.1)
    for _ in range(200):
        send(0.79)
        send(0.81)
    assert g.decision("k") == "watermark" and g.state["k"]["changes_total"] == 1
    assert send(0.98) == "block"  # escalation is immediate, cool-down or not
    assert send(0.2, 50) == "block"  # within the cool-down (100 s) a block holds whatever the score
    assert send(0.2, 60) == "none"  # cool-down over, evidence far below every rule: lifted
    assert send(0.85) == "watermark"
    assert send(0.65, 120) == "log"  # under 0.8 - 0.1, but still over 0.5 - 0.1
    changes = g.state["k"]["changes"]
    assert [(c["from"], c["to"]) for c in changes] == [("none", "watermark"), ("watermark", "block"),
                                                       ("block", "none"), ("none", "watermark"),
                                                       ("watermark", "log")]
    assert all(c["evidence"] and c["reason"] for c in changes)
    assert changes[2]["ts"] - changes[1]["ts"] >= 100.0
    logged = [r.getMessage() for r in caplog.records if "->" in r.getMessage()]
    assert len(logged) == 5 and "watermark -> block" in logged[1] and "evidence: fixed +0.98" in logged[1]


def test_no_evidence_no_release(fixed_scorer):
    """When the window has emptied (requests aged out), nothing says the account changed: the action holds."""
    g = Guard(GuardConfig(min_requests=5, window_seconds=50.0, cooldown_seconds=10.0,
                          rules=[Rule(0.5, "watermark")]), fixed_scorer)
    fixed_scorer.value = 0.9
    for i in range(5):
        g.observe("k", cot_request(i), served(), float(i))
    fixed_scorer.value = 0.0
    for i in range(4):  # a request every 100 s: the window never holds more than one
        g.observe("k", cot_request(i), served(), 1000.0 + 100 * i)
    assert g.decision("k") == "watermark" and g.state["k"]["requests_in_window"] == 1


def test_actions_survive_a_restart_and_allow_lifts_them(tmp_path, fixed_scorer):
    state = tmp_path / "state.json"
    cfg = GuardConfig(min_requests=2, state_file=str(state), rules=[Rule(0.5, "block")])
    g = Guard(cfg, fixed_scorer)
    fixed_scorer.value = 0.9
    for i in range(3):
        g.observe("bot", cot_request(i), served(), float(i))
    g.observe("bot", {}, BLOCKED, 5.0)
    g.save()
    again = Guard(GuardConfig(min_requests=2, state_file=str(state), rules=[Rule(0.5, "block")]), fixed_scorer)
    assert again.gate("bot") == "block" and again.state["bot"]["refused_total"] == 1
    assert again.state["bot"]["changes"][0]["to"] == "block"
    allowed = Guard(GuardConfig(min_requests=2, state_file=str(state), rules=[Rule(0.5, "block")],
                                allow=["bot"]), fixed_scorer)
    assert allowed.gate("bot") is None


def test_an_action_is_lifted_only_on_requests_served_since_it(fixed_scorer):
    g = Guard(GuardConfig(min_requests=3, cooldown_seconds=10.0, rules=[Rule(0.5, "watermark")]), fixed_scorer)
    fixed_scorer.value = 0.9
    for i in range(3):
        g.observe("k", cot_request(i), served(), float(i))
    assert g.decision("k") == "watermark"  # taken at t=2
    fixed_scorer.value = 0.1
    for i, t in enumerate((100.0, 101.0)):  # cool-down over, score low, window of 4-5: but 1, then 2 served since
        g.observe("k", cot_request(10 + i), served(), t)
        assert g.decision("k") == "watermark"
    g.observe("k", cot_request(12), served(), 102.0)  # the third served since the action: lifted
    assert g.decision("k") == "none" and g.state["k"]["changes"][-1]["from"] == "watermark"


def test_throttle_serves_one_request_per_interval(fixed_scorer):
    g = Guard(GuardConfig(min_requests=1, throttle_interval_seconds=60.0, rules=[Rule(0.5, "throttle")]),
              fixed_scorer)
    fixed_scorer.value = 0.9
    g.observe("k", cot_request(0), served(), 1000.0)
    assert g.decision("k") == "throttle"
    assert g.gate("k", now=1030.0) == "throttle"
    assert g.gate("k", now=1061.0) is None  # one admitted ...
    assert g.gate("k", now=1062.0) == "throttle"  # ... and the next waits for the interval again
    assert g.gate("k", now=1122.0) is None


def test_throttle_is_a_token_bucket_that_counts_admitted_requests(fixed_scorer):
    g = Guard(GuardConfig(min_requests=1, throttle_interval_seconds=100.0, throttle_burst=2,
                          rules=[Rule(0.5, "throttle")]), fixed_scorer)
    fixed_scorer.value = 0.9
    g.observe("k", cot_request(0), served(), 1000.0)  # throttled at t=1000: the bucket starts empty
    # t=1150: 1.5 requests gained, one admitted (0.5 left); t=1160: 0.6, refused; t=1400: min(2, 0.6 + 2.4) = 2,
    # two admitted at once (no observe in between: requests still in flight count), the third refused
    got = [g.gate("k", now=t) for t in (1050.0, 1150.0, 1160.0, 1400.0, 1400.0, 1400.0)]
    assert got == ["throttle", None, "throttle", None, None, "throttle"]


def test_a_restart_gives_a_throttled_key_no_fresh_tokens(tmp_path, fixed_scorer):
    cfg = dict(min_requests=1, throttle_interval_seconds=100.0, state_file=str(tmp_path / "state.json"),
               rules=[Rule(0.5, "throttle")])
    g = Guard(GuardConfig(**cfg), fixed_scorer)
    fixed_scorer.value = 0.9
    g.observe("k", cot_request(0), served(), 1000.0)
    g.save()
    again = Guard(GuardConfig(**cfg), fixed_scorer)
    assert again.decision("k") == "throttle" and again.state["k"]["bucket"] == "k"
    assert again.gate("k", now=5000.0) == "throttle"  # the restored bucket starts empty at its first gate ...
    assert again.gate("k", now=5100.0) is None  # ... and gains one request per interval


def test_throttled_keys_on_one_frame_share_one_bucket(fixed_scorer):
    g = Guard(GuardConfig(min_requests=8, min_requests_shared=8, throttle_interval_seconds=100.0, allow=["crowd"],
                          rules=[Rule(0.5, "throttle")]), fixed_scorer)
    fixed_scorer.value = 0.9
    for i in range(60):  # other traffic (a frame word must be typical of its key: see test_guard_features)
        g.observe("crowd", {"messages": [{"role": "user", "content": f"weather forecast {i} for village{i}"}]},
                  served(), 0.5 * i)
    for key in ("a", "b", "solo"):
        for i in range(8):  # a and b: one frame, disjoint topics; solo: other words
            text = (f"Provide thorough lecture notes on {key}topic{i}" if key != "solo"
                    else f"Compose poetic verses regarding {key}thing{i} tonight")
            g.observe(key, {"messages": [{"role": "user", "content": text}]}, served(), 10.0 * i)
    assert [g.decision(k) for k in ("a", "b", "solo")] == ["throttle"] * 3
    assert g.state["b"]["bucket"] == "a" and g.state["solo"]["bucket"] == "solo"
    assert g.gate("a", now=170.0) is None  # a's bucket (empty at t=70) gained one request by t=170 ...
    assert g.gate("b", now=170.0) == "throttle"  # ... which b shares
    assert g.gate("solo", now=170.0) is None  # solo's own bucket (empty at t=70)
    alone = Guard(GuardConfig(min_requests=8, throttle_shared=False, throttle_interval_seconds=100.0,
                              rules=[Rule(0.5, "throttle")]), fixed_scorer)
    alone.word_prompts.update(g.word_prompts)  # the same other traffic
    for key in ("a", "b"):
        for i in range(8):
            alone.observe(key, {"messages": [{"role": "user", "content": f"Provide thorough lecture notes on "
                                              f"{key}topic{i}"}]}, served(), 10.0 * i)
    assert alone.state["b"]["bucket"] == "b"


def test_config_fields_are_checked(tmp_path):
    f = tmp_path / "g.yaml"
    rules = "rules:\n  - {min_score: 0.5, action: log}\n"
    f.write_text("cooldown_seconds: 600\nhysteresis: 0.05\nthrottle_interval_seconds: 30\n" + rules)
    cfg = load_config(f)
    assert (cfg.cooldown_seconds, cfg.hysteresis, cfg.throttle_interval_seconds) == (600.0, 0.05, 30.0)
    for bad, needle in (("cooldown_seconds: -1\n", "non-negative"), ("hysteresis: lots\n", "non-negative"),
                        ("allow: bot\n", "list of API-key names"), ("time_scale: 0\n", "positive"),
                        ("throttle_burst: 0.5\n", "at least 1"), ("throttle_shared: 1\n", "true or false")):
        f.write_text(bad + rules)
        with pytest.raises(DistillError, match=needle):
            load_config(f)
    (tmp_path / "state.json").write_text('{"format": "distill-guard-state/1", "accounts": {"a": 3}}')
    f.write_text(f"state_file: {tmp_path / 'state.json'}\n" + rules)
    with pytest.raises(DistillError, match="account 'a' is a number"):
        load_config(f)


def test_config_fields_are_documented_and_mistakes_named_in_one_paragraph(tmp_path, capsys):
    from distill.cli import main

    assert all(f.description for f in GuardConfig.model_fields.values())
    assert all(f.description for f in Rule.model_fields.values())
    assert Rule(0.5, "log") == Rule(min_score=0.5, action="log") and GuardConfig(rules=None).rules == []
    f = tmp_path / "g.yaml"
    for text, needle in (("windw_seconds: 3\n", "unknown key 'windw_seconds' (did you mean 'window_seconds'?)"),
                         ("rules:\n  - log\n", "rules[0]: a rule needs min_score and an action"),
                         ("rules:\n  - {min_score: 0.5, action: log, after: 3}\n", "unknown key 'rules[0].after'"),
                         ("rules:\n  - {min_score: high, action: log}\n", "rules[0].min_score"),
                         ("max_window_requests: 2.5\nrules: []\n", "max_window_requests: Input should be a valid "
                          "integer"),
                         ("scorer: 3\nrules: []\n", "scorer: must be a file path (got 3)")):
        f.write_text(text)
        with pytest.raises(DistillError, match=re.escape(needle)) as e:
            load_config(f)
        assert e.value.where == str(f) and e.value.what.startswith("invalid guard config: ")
        assert main(["serve", "--guard-config", str(f)]) == 2  # refused before any model is loaded
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and needle in err and "Traceback" not in err

"""The guard on simulated traffic: held-out campaigns flagged, benign users not; actions, state and report."""

from __future__ import annotations

import json

import pytest
import torch

from distill.cli import main
from distill.errors import DistillError
from distill.protection.guard import Guard, GuardConfig, load_config, simulate
from distill.protection.guard.simulate import Event

THRESHOLD = 0.5  # the default scorer's "log" rule


@pytest.fixture(scope="module")
def held_out():
    events = simulate(seed=7, n_benign=40, campaigns=("templated",))
    g = Guard(GuardConfig(min_requests=20))
    labels: dict[str, str] = {}
    best: dict[str, float] = {}
    for e in events:
        g.observe(e.key, e.request, e.response, e.ts)
        labels[e.key] = e.label
        if g.state[e.key]["requests_in_window"] >= 20:
            best[e.key] = max(best.get(e.key, 0.0), g.state[e.key]["score"])
    return g, labels, best


def test_simulator_is_seeded():
    a, b = simulate(seed=3, n_benign=3), simulate(seed=3, n_benign=3)
    assert [(e.key, e.ts, e.request) for e in a] == [(e.key, e.ts, e.request) for e in b]
    assert {e.label for e in a} == {"benign", "templated", "cot", "distributed", "slow"}


def test_templated_campaign_flagged_benign_not(held_out):
    g, labels, best = held_out
    campaign = [k for k, v in labels.items() if v == "templated"]
    benign = [k for k, v in labels.items() if v == "benign"]
    assert campaign and all(best[k] >= THRESHOLD for k in campaign)
    flagged = [k for k in benign if best.get(k, 0.0) >= THRESHOLD]
    assert len(flagged) <= 1, flagged  # at most one false alarm among 40 users
    assert g.decision(campaign[0]) in ("log", "watermark", "block")


def test_actions_hooks_and_report(tmp_path, tokenizer, capsys, fixed_key):
    from distill.protection.watermark.keys import save_key

    save_key(fixed_key(tokenizer, "guard-actions"), tmp_path / "wm.key")
    cfg_file = tmp_path / "guard.yaml"
    cfg_file.write_text("min_requests: 5\nstate_file: state.json\nwatermark_key: wm.key\nrules:\n"
                        "  - {min_score: 0.3, action: watermark}\n  - {min_score: 0.95, action: block}\n")
    cfg = load_config(cfg_file)
    cfg.state_file = str(tmp_path / "state.json")
    g = Guard(cfg)
    for i in range(30):
        g.observe("bot", {"messages": [{"role": "user", "content": f"Question {i}: Provide a detailed explanation "
                                        f"of topic{i}. Answer step by step and explain your reasoning."}],
                          "logprobs": True}, {"usage": {"prompt_tokens": 20, "completion_tokens": 400}}, 60.0 * i)
    g.observe("human", {"messages": [{"role": "user", "content": "hi"}]}, None, 5.0)
    assert g.decision("bot") in ("watermark", "block")
    assert g.gate("human") is None and g.processors_for("human") == []
    if g.decision("bot") == "watermark":
        (proc,) = g.processors_for("bot")
        scores = proc(torch.tensor([[1, 2, 3, 4, 5]]), torch.zeros(1, len(tokenizer)))
        assert proc.key.account == "bot" and scores.max() == proc.key.delta
    else:
        assert g.gate("bot") == "block"
    g.save()
    assert main(["guard", "report", "--state", cfg.state_file, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accounts"][0]["account"] == "bot" and "contributions" in out["accounts"][0]
    assert main(["guard", "report", "--state", cfg.state_file]) == 0
    assert "bot" in capsys.readouterr().out
    assert main(["guard", "report", "--state", str(tmp_path / "missing.json")]) == 2


def test_bad_config_is_a_distill_error(tmp_path):
    f = tmp_path / "g.yaml"
    f.write_text("rules:\n  - {min_score: 0.5, action: explode}\n")
    with pytest.raises(DistillError, match="action among"):
        load_config(f)
    f.write_text("rules:\n  - {min_score: 0.5, action: watermark}\n")
    with pytest.raises(DistillError, match="watermark_key"):
        load_config(f)


def test_observer_signature_matches_serve_hook():
    g = Guard(GuardConfig(min_requests=1))
    e = Event("k", 1.0, {"prompt": "hello there"}, {"choices": [{"text": "hi"}]}, "benign")
    g(e.key, e.request, e.response, e.ts)  # observer(api_key_name, request_dict, response_dict, timestamp)
    assert g.state["k"]["requests_total"] == 1

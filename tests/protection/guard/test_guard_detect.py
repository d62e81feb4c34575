"""The guard on simulated traffic: held-out campaigns flagged, benign users not; actions, state and report."""

from __future__ import annotations

import json

import pytest
import torch

from distill.cli import main
from distill.errors import DistillError
from distill.protection.guard import CAMPAIGNS, Guard, GuardConfig, load_config, simulate
from distill.protection.guard.scoring import DEFAULT_THRESHOLD
from distill.protection.guard.simulate import Event


@pytest.fixture(scope="module")
def held_out():
    """A held-out trace (profile and seed the default scorer was not fitted on): per key, its label and the highest
    score the guard had evidence for."""
    events = simulate(seed=7, n_benign=150, profile="heldout")
    g = Guard(GuardConfig(min_requests=20))
    labels: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for e in events:
        g.observe(e.key, e.request, e.response, e.ts)
        labels[e.key], kinds[e.key] = e.label, e.kind
    return g, labels, kinds, {k: st["max_score"] for k, st in g.state.items()}


def test_simulator_is_seeded_and_has_every_kind():
    a, b = simulate(seed=3, n_benign=6, days=0.5), simulate(seed=3, n_benign=6, days=0.5)
    assert [(e.key, e.ts, e.request) for e in a] == [(e.key, e.ts, e.request) for e in b]
    assert {e.label for e in a} == {"benign", *CAMPAIGNS}
    assert {e.kind for e in a if e.label == "benign"} <= {"chat", "developer", "tutorial", "app"}
    assert {e.kind for e in simulate(seed=3, n_benign=40, days=0.5, campaigns=()) if e.label == "benign"} == {
        "chat", "developer", "tutorial", "app"}
    h = simulate(seed=3, n_benign=6, days=0.5, profile="heldout")
    assert [e.request for e in h] != [e.request for e in a]
    # the held-out profile: a campaign over 50+ keys, one-token log-probability harvesting, short and long answers
    assert len({e.key for e in h if e.label == "distributed"}) >= 50
    harvest = [e.request for e in h if e.label == "lp_harvest"]
    assert all(r["max_tokens"] == 1 and r["top_logprobs"] >= 5 for r in harvest)
    prompts = [r["messages"][0]["content"] for r in harvest]
    assert len(set(prompts)) == len(prompts)
    mixed = [e for e in h if e.label == "mixed"]
    assert len({e.key for e in mixed}) == 1 and {e.request.get("max_tokens") for e in mixed} > {None}


def test_campaigns_flagged_benign_not(held_out):
    """Deterministic (fixed seed). The benign accounts that come near the threshold are the hard ones by design:
    a tutorial group sharing one template, developers running an evaluation with top log-probabilities, apps."""
    g, labels, kinds, best = held_out
    for kind in ("templated", "paraphrased", "cot", "lp_harvest", "mixed"):
        keys = [k for k, v in labels.items() if v == kind]
        assert keys and all(best[k] >= DEFAULT_THRESHOLD for k in keys), kind
    spread = [k for k, v in labels.items() if v == "distributed"]
    assert len(spread) >= 50 and sum(best[k] >= DEFAULT_THRESHOLD for k in spread) >= 0.95 * len(spread)
    benign = [k for k, v in labels.items() if v == "benign"]
    flagged = [k for k in benign if best[k] >= DEFAULT_THRESHOLD]
    assert len(benign) >= 150 and len(flagged) <= 0.1 * len(benign), flagged
    assert not [k for k in flagged if kinds[k] == "chat"]
    assert g.decision(next(k for k, v in labels.items() if v == "templated")) in ("log", "watermark", "block")


def test_actions_hooks_and_report(tmp_path, tokenizer, capsys, fixed_key):
    from distill.keys.watermark import save_key

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

"""Guard features against direct computations on small hand-made traces."""

from __future__ import annotations

import math
import statistics

import pytest

from distill.protection.guard import FEATURES, Guard, GuardConfig
from distill.protection.guard.features import KeyWindow, make_entry


def req(text: str, logprobs: bool = False) -> dict:
    r = {"model": "m", "messages": [{"role": "user", "content": text}]}
    if logprobs:
        r["logprobs"] = True
    return r


def resp(n_in: int, n_out: int) -> dict:
    return {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": n_in, "completion_tokens": n_out}}


TRACE = [  # (ts, prompt, logprobs, tokens in, tokens out)
    (0.0, "Explain photosynthesis step by step please", False, 10, 100),
    (10.0, "Explain gravity step by step please", True, 8, 120),
    (30.0, "what rhymes with orange", False, 5, 20),
    (31.0, "Explain magnetism step by step please", False, 9, 90),
    (91.0, "Explain photosynthesis again in detail", True, 7, 50),
]


def test_features_match_direct_computation():
    w = KeyWindow(1e9, 1000)
    for ts, text, lp, tin, tout in TRACE:
        w.add(make_entry(req(text, lp), resp(tin, tout), ts))
    f = w.features(shared_prefixes=2)
    assert set(f) == set(FEATURES)
    n = len(TRACE)
    assert f["volume"] == pytest.approx(math.log1p(n))
    assert f["cot"] == pytest.approx(3 / n)
    assert f["logprobs"] == pytest.approx(2 / n)
    assert f["out_in"] == pytest.approx(math.log((380 + 1) / (39 + 1)))
    gaps = [10.0, 20.0, 1.0, 60.0]
    assert f["timing_cv"] == pytest.approx(statistics.pstdev(gaps) / statistics.mean(gaps))
    # prefix skeleton "explain photosynthesis step" x1, "explain gravity step" ...; suffix "step by step please"
    # -> last 3 words "by step please" shared by 3 requests: (3 - 1) / (5 - 1)
    assert f["template"] == pytest.approx(2 / 4)
    # content words: >= 4 letters, not stop words ("explain", "please", "with" are stop words)
    content = ["photosynthesis", "step", "step", "gravity", "step", "step", "rhymes", "orange",
               "magnetism", "step", "step", "photosynthesis", "again", "detail"]
    assert f["coverage"] == pytest.approx(len(set(content)) / len(content))
    assert f["cross_key"] == pytest.approx(2 / n)


def test_sliding_window_evicts_and_counts_stay_exact():
    w = KeyWindow(window_seconds=50.0, max_requests=1000)
    for ts, text, lp, tin, tout in TRACE:
        w.add(make_entry(req(text, lp), resp(tin, tout), ts))
    kept = [t for t in TRACE if TRACE[-1][0] - t[0] <= 50.0]  # only the request at t=91 (91 - 31 > 50)
    assert len(w.entries) == len(kept) == 1
    f = w.features()
    assert f["cot"] == 0 and f["logprobs"] == 1 and f["timing_cv"] == 1.0 and f["template"] == 0.0
    assert f["out_in"] == pytest.approx(math.log(51 / 8))


def test_cross_key_sharing_and_evidence():
    g = Guard(GuardConfig(min_requests=1))
    for i in range(4):
        g.observe("alice", req(f"Topic: subject{i}. Task: write an answer"), resp(5, 50), float(i))
        g.observe("bob", req(f"Topic: thing{i}. Task: write an answer"), resp(5, 50), float(i) + 0.5)
    g.observe("carol", req("how are you today"), resp(4, 10), 9.0)
    assert g.state["alice"]["features"]["cross_key"] == 1.0
    assert g.state["carol"]["features"]["cross_key"] == 0.0
    ev = g.evidence("alice")
    assert ev["keys_sharing_templates"] == ["bob"]
    assert ev["top_suffix_skeletons"][0] == {"skeleton": "write an answer", "count": 4}

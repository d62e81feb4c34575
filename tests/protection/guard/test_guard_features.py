"""Guard features against values computed by hand on small hand-made traces; the scorer's caps and signs."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from distill.protection.guard import FEATURES, Guard, GuardConfig, Rule, fit_logistic
from distill.protection.guard.features import ALL_PROMPTS, COT, KeyWindow, logprob_demand, make_entry
from distill.protection.guard.scoring import CAP, DEFAULT, LogisticScorer


def req(text: str, top: int | None = None, max_tokens: int | None = None, logprobs: bool = False) -> dict:
    r = {"model": "m", "messages": [{"role": "user", "content": text}]}
    if logprobs or top:
        r["logprobs"] = True
    if top:
        r["top_logprobs"] = top
    if max_tokens is not None:
        r["max_tokens"] = max_tokens
    return r


def resp(n_in: int, n_out: int) -> dict:
    return {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": n_in, "completion_tokens": n_out}}


TOPICS = ["quasar", "lichen", "glacier", "tundra", "basalt", "plankton"]
TRACE = [  # (ts, prompt, top_logprobs, logprobs flag, max_tokens, tokens out)
    (0.0, "Provide thorough notes on quasar", None, False, None, 512),
    (10.0, "Provide thorough notes on lichen", None, False, None, 256),
    (30.0, "Provide thorough notes on glacier step by step", None, False, None, 1024),
    (31.0, "Provide thorough notes on tundra", None, False, None, 100),
    (91.0, "Provide thorough notes on basalt", None, True, None, 50),
    (91.02, "Provide thorough notes on plankton", 20, True, 1, 1),
    (600.0, "Provide thorough notes on quasar", 20, True, 1, 1),  # the first prompt again
]


def window() -> KeyWindow:
    w = KeyWindow(1e9, 1000)
    for ts, text, top, lp, mt, out in TRACE:
        w.add(make_entry(req(text, top, mt, lp), resp(6, out), ts))
    return w


def test_features_match_hand_computed_values():
    f = window().features(cross_keys=3)
    assert set(f) == set(FEATURES) and all(0.0 <= v <= 1.0 for v in f.values())
    n = len(TRACE)
    assert f["volume"] == pytest.approx(math.log1p(n) / math.log1p(1000))
    # content words of each prompt: provide, thorough, notes, its topic (+ "step" in the third). The first five
    # prompts come before the frame exists (5 prompts), so they score 0. Prompt 6: provide/thorough/notes are in
    # >= 2 earlier prompts (frame), plankton is not: template 3/4, and plankton is new to the key: coverage 1.
    # Prompt 7: frame 3/4 again; quasar was used before: coverage 0.
    assert f["template"] == pytest.approx((0.75 + 0.75) / n)
    assert f["coverage"] == pytest.approx(1 / n)
    # slot: prompt 6 fills the 3-word frame with one new topic; prompt 7's topic is not new
    assert f["slot"] == pytest.approx(1 / n)
    assert f["cot"] == pytest.approx(1 / n)
    # log-probability demand: basalt's bare logprobs=true 0.5; top_logprobs 20 -> 0.5 + 0.5 * min(1, 20/10) = 1
    assert f["logprobs"] == pytest.approx((0.5 + 1 + 1) / n)
    # harvesting: log-probs + at most 4 tokens + a prompt not sent before (the repeat of prompt 1 is not), 1 of 7,
    # times min(1, 1 / 300): one probe is no harvest yet
    assert f["lp_harvest"] == pytest.approx(1 / n * 1 / 300)
    assert f["long_out"] == pytest.approx((1 + 0.5 + 1 + 100 / 512 + 50 / 512 + 2 / 512) / n)
    logs = [math.log(g) for g in (10.0, 20.0, 1.0, 60.0, 0.05, 509.0)]  # 0.02 s is floored at 0.05 s
    med = statistics.median(logs)
    assert f["regular"] == pytest.approx(1 / (1 + 2 * statistics.median([abs(x - med) for x in logs])))
    assert f["steady"] == pytest.approx(2 / 36)  # two 10-minute bins active, horizon at least 36 bins
    assert f["cross_key"] == pytest.approx(math.log1p(3) / math.log1p(20))


def test_regular_and_steady_are_robust_to_bursts():
    w = KeyWindow(1e9, 10000)
    for i in range(500):  # a client sending as fast as it can: every gap floored, one activity bin
        w.add(make_entry(req(f"text {i}"), resp(3, 1), 1000.0 + 0.001 * i))
    assert w.steady() == pytest.approx(1 / 36) and w.regular() == pytest.approx(1.0)
    person = KeyWindow(1e9, 10000)
    rng = random.Random(0)
    t = 0.0
    for i in range(200):  # sessions: quick follow-ups, long breaks
        person.add(make_entry(req(f"text {i}"), resp(3, 1), t))
        t += rng.expovariate(1 / 30) if i % 8 else rng.expovariate(1 / 20000)
    script = KeyWindow(1e9, 10000)
    for i in range(200):
        script.add(make_entry(req(f"text {i}"), resp(3, 1), 300.0 * i + rng.uniform(-15, 15)))
    # a few bursts inside a scripted pace barely move the median-based spread
    for i in range(5):
        script.add(make_entry(req(f"burst {i}"), resp(3, 1), 300.0 * 200 + 0.1 * i))
    assert script.regular() > 0.9 > 0.5 > person.regular()
    assert script.steady() == 1.0 and person.steady() < 0.5


def test_logprob_demand_and_cot_phrasings():
    assert logprob_demand({}) == 0.0
    assert logprob_demand({"logprobs": True}) == 0.5
    assert logprob_demand({"logprobs": True, "top_logprobs": 5}) == 0.75
    assert logprob_demand({"prompt": "x", "logprobs": 20}) == 1.0  # the completions API's integer logprobs
    for text in ("Think step by step.", "walk me through each step of the reasoning", "Lay out your reasoning first",
                 "Go one step at a time", "think it through before giving the final answer",
                 "spell out the intermediate steps", "show your work"):
        assert COT.search(text.lower()), text
    for text in ("what is the next step for my garden", "how do i think about taxes", "reasonable prices"):
        assert not COT.search(text.lower()), text


def test_coverage_counts_only_words_rare_in_the_whole_traffic():
    g = Guard(GuardConfig(min_requests=1))
    for key in ("a", "b", "c"):  # three keys' windows hold "sunflower": a general word now, not a topic
        g.observe(key, req("sunflower seeds"), resp(3, 10), 0.0)
    for i in range(5):
        g.observe("d", req(f"Provide thorough notes on {TOPICS[i]}"), resp(6, 10), 1.0 + i)
    g.observe("d", req("Provide thorough notes on sunflower"), resp(6, 10), 10.0)
    assert g.windows["d"].entries[-1].coverage == 0.0
    g.observe("d", req("Provide thorough notes on zeppelin"), resp(6, 10), 11.0)
    assert g.windows["d"].entries[-1].coverage == 1.0


def test_novel_counts_new_words_rare_or_not_and_only_after_the_frame_fills():
    g = Guard(GuardConfig(min_requests=1))
    for key in ("a", "b", "c"):  # "sunflower" is in three keys' windows: not rare, so not coverage, still novel
        g.observe(key, req("sunflower seeds"), resp(3, 10), 0.0)
    for i in range(5):  # the window's first FRAME_AFTER prompts are never scored
        g.observe("d", req(f"Provide thorough notes on {TOPICS[i]}"), resp(6, 10), 1.0 + i)
    cases = [("Provide thorough notes on sunflower", True),  # new to the key, common in the traffic
             ("Provide thorough notes on zeppelin", True),  # new and rare
             ("Provide thorough notes on sunflower", False),  # back to a topic of the key's
             ("notes on zeppelin, thorough", False)]  # every word already in the window
    for i, (text, novel) in enumerate(cases):
        g.observe("d", req(text), resp(6, 10), 10.0 + i)
        assert g.windows["d"].entries[-1].novel is novel, text
    assert [e.novel for e in list(g.windows["d"].entries)[:5]] == [False] * 5
    assert g.windows["d"].statistics()["novel"] == pytest.approx(2 / 9)


def test_lp_harvest_counts_in_full_only_at_scale():
    w = KeyWindow(1e9, 1000)
    for i in range(400):  # unique prompts, top_logprobs 20, one-token answers: every request is a probe
        w.add(make_entry(req(f"probe text number {i}", top=20, max_tokens=1), resp(5, 1), float(i)))
        if i + 1 == 100:  # a developer's one-off evaluation of 100 prompts: share 1, scale 100 / 300
            assert w.features()["lp_harvest"] == pytest.approx(100 / 300)
    assert w.features()["lp_harvest"] == 1.0


def test_slot_needs_a_frame_few_other_words_and_a_new_topic():
    w = KeyWindow(1e9, 1000)
    for i, topic in enumerate(TOPICS[:5]):  # the frame: provide, thorough, notes (in >= 2 earlier prompts each)
        w.add(make_entry(req(f"Provide thorough notes on {topic}"), resp(6, 10), float(i)))
    cases = [  # (prompt, slot): 3 frame words + 1 new topic; + 2 new words; + 3 other words (a message, not a slot);
        # only 2 frame words; 3 frame words but no new word (a word already in the window)
        ("Provide thorough notes on zeppelin", True),
        ("Provide thorough notes on walrus migration", True),
        ("Provide thorough notes: my walrus ate seven oranges", False),
        ("Provide notes on narwhal", False),
        ("Provide thorough notes on basalt", False),
    ]
    for i, (text, slot) in enumerate(cases):
        e = make_entry(req(text), resp(6, 10), 10.0 + i)
        w.add(e)
        assert e.slot is slot, text
    assert w.features()["slot"] == pytest.approx(2 / 10)


def crowd(g: Guard, n: int = 60) -> None:
    """Other traffic (allow-listed: never acted on, so it always counts): a frame word must be typical of a key, in
    a share of its prompts >= 3 x its share of all."""
    for i in range(n):
        g.observe("crowd", req(f"weather forecast number {i} for village{i}"), resp(6, 30), 0.5 * i)


def test_keys_sharing_one_frame_are_coordinated_and_get_evidence_early():
    g = Guard(GuardConfig(min_requests=20, min_requests_shared=8, allow=["crowd"]))
    crowd(g)
    for key in ("a", "b", "c"):
        for i in range(8):  # disjoint topics (one coverage plan), one frame
            g.observe(key, req(f"Provide thorough lecture notes on {key}topic{i}"), resp(6, 300), 100.0 * i)
    g.observe("human", req("hello there, how are you"), resp(6, 30), 5.0)
    # frames are refreshed at each key's 8th request: a saw none yet, b saw a, c saw a and b
    assert [g.cross[k] for k in "abc"] == [0, 1, 2]
    assert g.state["c"]["features"]["cross_key"] == pytest.approx(math.log1p(2) / math.log1p(20), abs=1e-4)
    ev = g.evidence("c")
    assert ev["keys_sharing_frame"] == ["a", "b"] and ev["keys_sharing_frame_total"] == 2
    assert g.state["c"]["max_score"] > 0 and g.state["b"]["max_score"] == 0  # c has evidence at 8 requests, b not
    assert g.state["human"]["features"]["cross_key"] == 0.0


def test_a_frame_for_cross_key_is_typical_of_its_key():
    g = Guard(GuardConfig(min_requests=20, allow=["crowd"]))
    for key in ("a", "b"):  # "provide", "thorough", "notes" are in every prompt of both keys ...
        for i in range(8):
            g.observe(key, req(f"Provide thorough lecture notes on {key}topic{i}"), resp(6, 300), 10.0 * i)
    # ... and in 16 of the 16 prompts of all traffic: share 1 < 3 x 1, no frame, no overlap
    assert g.windows["b"].frame_words() == frozenset() and g.cross["b"] == 0
    crowd(g, 40)  # now 16 of 56 prompts hold them: 1 >= 3 x 16/56
    assert g.windows["b"].frame_words() == {"provide", "thorough", "lecture", "notes"}


def test_acted_on_windows_leave_the_shared_word_counts(fixed_scorer):
    fixed_scorer.value = 0.9
    g = Guard(GuardConfig(min_requests=2, rules=[Rule(0.5, "throttle")]), fixed_scorer)
    g.observe("human", req("sunflower seeds please"), resp(3, 10), 0.0)
    g.observe("bot", req("sunflower oil"), resp(3, 10), 1.0)
    assert g.word_keys["sunflower"] == 2 and g.word_prompts[ALL_PROMPTS] == 2
    g.observe("bot", req("sunflower butter"), resp(3, 10), 2.0)  # evidence: bot is throttled, its window detached
    assert g.decision("bot") == "throttle" and not g.windows["bot"].attached
    assert g.word_keys == {"sunflower": 1, "seeds": 1} and g.word_prompts == {ALL_PROMPTS: 1, "sunflower": 1,
                                                                              "seeds": 1}
    g.observe("bot", req("sunflower honey"), resp(3, 10), 3.0)  # its own window still counts its requests
    assert g.windows["bot"].words["sunflower"] == 3 and g.word_prompts["sunflower"] == 1
    g.windows["bot"].detach(attach=True)  # put back: everything it holds now
    assert g.word_keys["sunflower"] == 2 and g.word_prompts["sunflower"] == 4 and g.word_prompts[ALL_PROMPTS] == 4


def test_sliding_window_evicts_and_counts_stay_exact():
    w = KeyWindow(window_seconds=50.0, max_requests=1000)
    for ts, text, top, lp, mt, out in TRACE:
        w.add(make_entry(req(text, top, mt, lp), resp(6, out), ts))
    assert len(w.entries) == 1  # only the request at t=600
    f = w.features()
    # the first prompt's repeat is new again: its first sending aged out of the window
    assert f["cot"] == 0 and f["logprobs"] == 1 and f["lp_harvest"] == pytest.approx(1 / 300) and f["template"] == 0.0
    assert sum(w.words.values()) == 4 and w.word_keys == {"provide": 1, "thorough": 1, "notes": 1, "quasar": 1}


def test_scorer_caps_every_contribution_and_keeps_the_documented_signs():
    rng = random.Random(0)
    x, y = [], []
    for _ in range(400):
        label = rng.random() < 0.5
        row = [rng.random() for _ in FEATURES]
        row[0] = min(1.0, row[0] + 0.8) if label else row[0] * 0.2  # volume separates the classes perfectly
        row[1] = row[1] * 0.2 if label else min(1.0, row[1] + 0.5)  # steady points the other way here
        x.append(row)
        y.append(int(label))
    s = fit_logistic(x, y)
    assert s.weight[0] == pytest.approx(CAP)  # perfectly separating, yet capped
    assert s.weight[1] == 0.0  # a feature that points the other way gets no weight, never a negative one
    assert all(0.0 <= w <= CAP for w in s.weight)
    feats = dict(zip(FEATURES, x[0], strict=True))
    z = s.bias + sum(w * (feats[f] - m) for f, m, w in zip(FEATURES, s.mean, s.weight, strict=True))
    assert s.score(feats) == pytest.approx(1 / (1 + math.exp(-z)))
    # the shipped scorer: no feature alone moves the logit by more than CAP, and none carries more than a quarter
    # of the summed weights
    assert all(0.0 <= w <= CAP for w in DEFAULT.weight) and max(DEFAULT.weight) <= 0.25 * sum(DEFAULT.weight)
    loud = LogisticScorer(DEFAULT.mean, DEFAULT.scale, tuple(100.0 for _ in FEATURES), DEFAULT.bias)
    assert max(abs(v) for v in loud.contributions(dict.fromkeys(FEATURES, 1.0)).values()) == CAP


def test_a_fitted_scorer_is_read_from_the_config(tmp_path):
    import json

    from distill.errors import DistillError
    from distill.protection.guard import load_config

    custom = LogisticScorer(DEFAULT.mean, DEFAULT.scale, tuple(1.0 for _ in FEATURES), -1.0)
    (tmp_path / "scorer.json").write_text(json.dumps(custom.to_dict()))
    (tmp_path / "g.yaml").write_text("scorer: scorer.json\nrules:\n  - {min_score: 0.5, action: log}\n")
    g = Guard(load_config(tmp_path / "g.yaml"))
    assert g.scorer == custom
    (tmp_path / "scorer.json").write_text(json.dumps(custom.to_dict() | {"features": ["volume"]}))
    with pytest.raises(DistillError, match="other features"):
        load_config(tmp_path / "g.yaml")

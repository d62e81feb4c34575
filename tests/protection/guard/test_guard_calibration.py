"""The calibrated guard: tail probabilities and their combination against direct computations, the jackknife
calibration, the traffic log (no prompt text; calibrating from it equals calibrating from the trace), rules that
act and hold, and the command's bad input."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from distill.errors import DistillError
from distill.protection.guard import Guard, GuardConfig, Rule, load_config
from distill.protection.guard.calibration import (
    BANDS,
    COMPARED,
    RELATIONAL,
    Band,
    actors,
    band_of,
    conformal_p,
    departure,
    fit_calibration,
    load_calibration,
    nearness,
    save_calibration,
    tail_log_p,
)
from distill.protection.guard.simulate import simulate
from distill.protection.guard.traffic import benign_records, read_traffic


def test_tail_probability_is_the_conformal_rank_and_the_band_leaves_out_own_values():
    rng = random.Random(0)
    values = np.array([[rng.choice([0.0, 0.1, 0.25, 0.5, rng.random()]), float(rng.randint(0, 5))]
                       for _ in range(200)])
    band = Band(values)
    own_rows = values[rng.sample(range(200), 8)]
    own = [np.sort(c) for c in own_rows.T]
    for _ in range(60):
        x = np.array([rng.random() * 0.6, float(rng.randint(0, 5))])
        got, got_own = band.surprise(x), band.surprise(x, own)
        for j in range(2):
            ref = sorted(values[:, j])
            if x[j] > ref[-1]:
                continue
            direct = (1 + sum(r >= x[j] for r in ref)) / (1 + len(ref))
            assert math.exp(-got[j]) == pytest.approx(direct, rel=1e-12)
            assert math.exp(tail_log_p(ref, float(x[j]))) == pytest.approx(direct, rel=1e-12)
            rest = list(values[:, j])
            for v in own_rows[:, j]:
                rest.remove(v)
            direct_own = (1 + sum(r >= x[j] for r in rest)) / (1 + len(rest))
            assert math.exp(-got_own[j]) == pytest.approx(direct_own, rel=1e-12)


def test_beyond_every_reference_is_rarer_but_by_at_most_the_cap():
    ref = sorted(float(i) for i in range(100))
    floor = math.log(1 / 101)
    below, far = tail_log_p(ref, 99.5), tail_log_p(ref, 1e6)
    assert floor > below > far == pytest.approx(floor - math.log(10.0))
    assert tail_log_p([0.0] * 50, 1.0) == pytest.approx(math.log(1 / 51) - math.log(10.0))
    band = Band(np.array([[float(i)] for i in range(100)]))
    assert band.surprise(np.array([1e6]))[0] == pytest.approx(-far)


def test_departure_is_the_smallest_squared_excess_over_a_reference():
    rng = np.random.default_rng(1)
    for _ in range(20):
        refs = rng.exponential(1.0, size=(30, 5))
        s = rng.exponential(1.5, size=5)
        mask = rng.random(30) < 0.7
        direct = min(sum(max(0.0, s[j] - refs[r, j]) ** 2 for j in range(5)) for r in range(30) if mask[r])
        d, i = departure(s, refs, mask)
        assert d == pytest.approx(direct, rel=1e-12) and mask[i]
        assert sum(max(0.0, s[j] - refs[i, j]) ** 2 for j in range(5)) == pytest.approx(d)
    # a record at least as high on every statistic explains the account away
    assert departure(np.array([1.0, 2.0]), np.array([[5.0, 0.0], [1.0, 2.5]]))[0] == 0.0


def test_normal_scores_are_the_mid_rank_quantiles_and_leave_out_own_values():
    from statistics import NormalDist

    rng = random.Random(2)
    values = np.array([[rng.choice([0.0, 0.0, 0.1, rng.random()]), float(rng.randint(0, 4))] for _ in range(150)])
    band = Band(values)
    own_rows = values[rng.sample(range(150), 6)]
    own = [np.sort(c) for c in own_rows.T]
    inv = NormalDist().inv_cdf
    for _ in range(60):
        x = np.array([rng.random() * 0.9, float(rng.randint(0, 4))])
        got, got_own = band.normal(x), band.normal(x, own)
        for j in range(2):
            col = list(values[:, j])
            if not min(col) <= x[j] <= max(col):
                continue
            rest = list(col)
            for v in own_rows[:, j]:
                rest.remove(v)
            for ref, g in ((col, got[j]), (rest, got_own[j])):
                mid = (sum(r < x[j] for r in ref) + 0.5 * sum(r == x[j] for r in ref) + 0.5) / (len(ref) + 1)
                assert g == pytest.approx(inv(mid), rel=1e-9, abs=1e-12)
    # beyond the band's extremes: further, by at most SHIFT, in the right direction
    top, bottom = band.normal(np.array([1e6, 1e6])), band.normal(np.array([-1e6, -1e6]))
    edge = inv((150 + 0.5) / 151)  # the score of a value just above every reference
    assert np.allclose(top, edge + 1.0) and np.allclose(bottom, -edge - 1.0)
    assert np.all(band.normal(values.max(axis=0) + 1e-9) < edge + 1e-3)


def test_nearness_is_the_mean_of_the_nearest_squared_distances():
    rng = np.random.default_rng(3)
    for _ in range(20):
        refs = rng.normal(size=(40, 6))
        z = rng.normal(size=6) * 2
        mask = rng.random(40) < 0.6
        d = sorted(float(np.sum((z - refs[r]) ** 2)) for r in range(40) if mask[r])
        got, i = nearness(z, refs, mask, k=3)
        assert got == pytest.approx(sum(d[:3]) / 3, rel=1e-12) and mask[i]
        assert float(np.sum((z - refs[i]) ** 2)) == pytest.approx(d[0])
    assert nearness(np.zeros(2), np.ones((2, 2)), k=5)[0] == pytest.approx(2.0)  # fewer references than k: all
    assert nearness(np.zeros(2), np.ones((0, 2)))[0] == 0.0


def test_relational_statistics_are_not_compared_and_the_unit_is_checked(calibrated):
    _, cal = calibrated
    assert "cross_key" not in cal.statistics and "logistic" not in cal.statistics
    assert set(cal.statistics) == set(COMPARED) and not set(RELATIONAL) & set(COMPARED)
    with pytest.raises(DistillError, match="jackknife unit"):
        fit_calibration([], leave_out="key")


def test_actors_are_connected_components():
    got = actors([("a", "b"), ("c", "d"), ("b", "c"), ("x", "y")])
    assert len({got[k] for k in "abcd"}) == 1 and got["x"] == got["y"] != got["a"]


def test_bands():
    assert band_of(BANDS[0] - 1) is None
    assert [band_of(b) for b in BANDS] == list(range(len(BANDS)))
    assert band_of(10**6) == len(BANDS) - 1


@pytest.fixture(scope="module")
def benign():
    """Two days of the simulator's benign accounts (fixed seed), as trace rows."""
    return [e.row() for e in simulate(seed=5, n_benign=30, campaigns=(), days=2.0, repeats=0, profile="heldout")]


@pytest.fixture(scope="module")
def calibrated(benign):
    records, pool, links = benign_records(benign)
    return records, fit_calibration(records, {"test": True}, pool=pool, links=links, warmup=0.0)


@pytest.mark.parametrize("leave_out", ["account", "actor"])
def test_calibration_extremes_are_each_account_days_largest_jackknifed_departure(benign, leave_out):
    records, pool, links = benign_records(benign)
    cal = fit_calibration(records, {"test": True}, pool=pool, links=links, warmup=0.0, leave_out=leave_out)
    assert cal.meta["leave_out"] == leave_out
    # recompute some accounts' extremes by brute force: their own (or their actor's) reference records left out of
    # the columns and of the nearest-record search, D after each of their requests, the largest per day
    group = actors(links) if leave_out == "actor" else {}
    assert leave_out == "account" or len(set(group.values())) < len(group)  # the fixture has linked accounts
    t0 = records[0][1]
    accounts = sorted({a for a, _, _ in records})
    checked = 0
    for account in accounts[:: max(1, len(accounts) // 5)]:
        who = group.get(account, account)
        worst: dict[int, float] = {}
        for a, ts, st in records:
            b = band_of(int(st["requests"]))
            if a != account or b is None:
                continue
            band = cal.bands[b]
            keep = [i for i, o in enumerate(band.owners) if group.get(o, o) != who]
            x = cal.vector(st)
            s = []
            for j in range(len(x)):
                col = [band.values[i, j] for i in keep]
                p = (1 + sum(v >= x[j] for v in col)) / (1 + len(col))
                if x[j] > max(band.values[:, j]):  # beyond every reference: the capped extrapolation
                    p = math.exp(-band.surprise(x, [np.sort(band.values[[i for i in range(len(band.owners))
                                                                          if i not in keep], jj])
                                                     for jj in range(len(x))])[j])
                s.append(-math.log(p))
            d = min(sum(max(0.0, s[j] - band.surprises[i, j]) ** 2 for j in range(len(x))) for i in keep)
            own = [np.sort(band.values[[i for i in range(len(band.owners)) if i not in keep], j])
                   for j in range(len(x))]
            z = band.normal(x, own)  # the normal scores are checked against a direct computation above
            near = sorted(sum((z[j] - band.scores[i, j]) ** 2 for j in range(len(x))) for i in keep)[:3]
            day = int((ts - t0) // 86400)
            w = worst.setdefault(day, [0.0, 0.0])
            w[0], w[1] = max(w[0], d), max(w[1], sum(near) / len(near))
        for v, n in worst.values():
            assert any(abs(v - e) <= 1e-9 * max(1.0, v) for e in cal.extremes)
            assert any(abs(n - e) <= 1e-9 * max(1.0, n) for e in cal.near_extremes)
            checked += 1
    assert checked >= 5


def test_acting_at_rate_a_acts_on_at_most_a_of_the_calibration_account_days(calibrated):
    _, cal = calibrated
    n = len(cal.extremes)
    assert n >= 20 and len(cal.near_extremes) == n and cal.smallest_rate == pytest.approx(2 / (n + 1))
    for a in (0.02, 0.05, 0.1, 0.25):  # each departure alone, at half the rate: their union acts on at most a
        for ext, p in ((cal.extremes, lambda e: cal.p_value(e, 0.0)), (cal.near_extremes, lambda e: cal.p_value(0.0, e))):
            acted = sum(1 for e in ext if 1 - p(e) >= 1 - a)
            assert acted / n <= a / 2 + 1 / (n + 1)
            ties = len(ext) - len(set(ext))
            assert acted >= math.floor(a / 2 * (n + 1)) - 1 - ties  # and the rate is used, not wasted
    rng = random.Random(4)
    for _ in range(50):  # the combination rule against a direct computation
        d, near = rng.choice(cal.extremes) * rng.random() * 1.5, rng.choice(cal.near_extremes) * rng.random() * 1.5
        pd = (1 + sum(e >= d for e in cal.extremes)) / (n + 1) if d > 0 else 1.0
        pn = (1 + sum(e >= near for e in cal.near_extremes)) / (n + 1) if near > 0 else 1.0
        assert cal.p_value(d, near) == pytest.approx(min(1.0, 2 * min(pd, pn)))
        assert conformal_p(cal.extremes, d) == pytest.approx(pd)


def test_saved_calibration_round_trips(calibrated, tmp_path):
    _, cal = calibrated
    path = save_calibration(cal, tmp_path / "cal.json")
    back = load_calibration(path)
    assert back.statistics == cal.statistics and back.extremes == cal.extremes and back.pool == cal.pool
    assert back.near_extremes == cal.near_extremes
    for a, b in zip(back.bands, cal.bands, strict=True):  # exactly: a value at a band's top stays at its top
        assert (a is None and b is None) or np.array_equal(a.values, b.values)
    raw = json.loads(path.read_text())
    raw["statistics"][0] = "no_such_statistic"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(DistillError, match="does not compute"):
        load_calibration(tmp_path / "bad.json")


def test_traffic_log_keeps_no_prompt_text_and_calibrates_like_the_trace(benign, calibrated, tmp_path):
    _, cal = calibrated
    log = tmp_path / "traffic.jsonl"
    g = Guard(GuardConfig(traffic_log=str(log), rules=[]), restore=False)
    for r in benign:
        g.observe(r["key"], r["request"], {"usage": {"prompt_tokens": 0,
                                                     "completion_tokens": r["completion_tokens"]}}, r["ts"])
    g.save()
    text = log.read_text()
    words = {w for r in benign[:200] for w in r["request"]["messages"][0]["content"].lower().split() if len(w) >= 6}
    assert words and not any(f'"{w}"' in text for w in words)
    records, pool, links = benign_records(read_traffic(log))
    from_log = fit_calibration(records, {"test": True}, pool=pool, links=links, warmup=0.0)
    for a, b in zip(from_log.bands, cal.bands, strict=True):
        assert (a is None and b is None) or np.array_equal(a.values, b.values)
    assert from_log.extremes == pytest.approx(cal.extremes)
    assert from_log.near_extremes == pytest.approx(cal.near_extremes)


def test_a_calibrated_rule_acts_on_a_departure_and_the_action_holds(calibrated, tmp_path):
    _, cal = calibrated
    path = save_calibration(cal, tmp_path / "cal.json")
    g = Guard(GuardConfig(calibration=str(path), rules=[Rule(0.95, "throttle")], cooldown_seconds=3600), restore=False)
    t = 1_700_000_000.0
    for i in range(60):  # one fixed template over a sweep, long answers, log-probabilities, scripted pace
        req = {"messages": [{"role": "user", "content": f"Write a comprehensive textbook chapter about zeta{i}qu "
                                                        "with worked examples, step by step"}],
               "max_tokens": 2048, "logprobs": True, "top_logprobs": 20}
        g.observe("sweeper", req, {"usage": {"prompt_tokens": 20, "completion_tokens": 2048}}, t + 30 * i)
    st = g.state["sweeper"]
    assert st["action"] == "throttle" and st["changes"][0]["evidence"]
    change = st["changes"][0]
    assert {"cot", "logprobs"} <= set(change["evidence"])  # what exceeds the nearest benign record ...
    assert min(change["percentiles"][k] for k in ("cot", "logprobs")) > 95  # ... and its benign percentile
    # within the cool-down, ordinary requests do not lift it
    for i in range(30):
        req = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                            {"role": "user", "content": "thanks"}]}
        g.observe("sweeper", req, {"usage": {"prompt_tokens": 5, "completion_tokens": 5}}, t + 1800 + i)
    assert g.state["sweeper"]["action"] == "throttle"


def test_config_refuses_a_rate_the_calibration_cannot_state(calibrated, tmp_path):
    _, cal = calibrated
    save_calibration(cal, tmp_path / "cal.json")
    (tmp_path / "g.yaml").write_text("calibration: cal.json\nrules:\n  - {min_score: 0.99999, action: block}\n")
    with pytest.raises(DistillError, match="this calibration can state"):
        load_config(tmp_path / "g.yaml")
    (tmp_path / "ok.yaml").write_text("calibration: cal.json\nrules:\n  - {min_score: 0.9, action: throttle}\n")
    assert load_config(tmp_path / "ok.yaml").calibration == str(tmp_path / "cal.json")


def test_calibrate_command(benign, tmp_path, capsys):
    from distill.cli import main

    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in benign))
    assert main(["guard", "calibrate", "--traffic", str(trace), "--out", str(tmp_path / "c.json")]) == 0
    assert "calibration account-days" in capsys.readouterr().out
    assert load_calibration(tmp_path / "c.json").extremes
    (tmp_path / "bad.jsonl").write_text('{"key": "a"}\n')
    assert main(["guard", "calibrate", "--traffic", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "x.json")]) != 0
    assert "neither a key and an entry" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_warmup_observes_before_it_acts_and_the_report_explains(calibrated, tmp_path):
    from distill.protection.guard.report import format_table

    _, cal = calibrated
    path = save_calibration(cal, tmp_path / "cal.json")
    g = Guard(GuardConfig(calibration=str(path), rules=[Rule(0.95, "throttle")], warmup_seconds=3600,
                          state_file=str(tmp_path / "state.json")), restore=False)
    t = 1_700_000_000.0
    times = []
    for i in range(200):
        req = {"messages": [{"role": "user", "content": f"Write a comprehensive textbook chapter about zeta{i}qu "
                                                        "with worked examples, step by step"}],
               "max_tokens": 2048, "logprobs": True, "top_logprobs": 20}
        if g.observe("sweeper", req, {"usage": {"prompt_tokens": 20, "completion_tokens": 2048}},
                     t + 30 * i) != "none":
            times.append(30 * i)
    assert times and times[0] >= 3600  # scored all along, acted on only after the warm-up
    g.save()
    table = format_table(json.loads((tmp_path / "state.json").read_text()))
    assert "sweeper" in table and "departure" in table and "throttle" in table

"""Per-key calibration: the fitted null against direct computations, the file round trip, and bad input."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from scipy.stats import betabinom
from transformers import AutoModelForCausalLM, LogitsProcessorList

from distill.cli import main
from distill.errors import DistillError
from distill.keys.watermark import WatermarkKey, save_key
from distill.protection.watermark.calibrate import (
    calibration_path,
    fit_calibration,
    fit_null,
    load_calibration,
    make_calibration,
    reference_passages,
    save_calibration,
)
from distill.protection.watermark.detect import UnitCounter, detect_ids, tokens_needed
from distill.protection.watermark.greenlist import green_of
from distill.protection.watermark.processor import WatermarkLogitsProcessor
from distill.protection.watermark.stats import betabinom_log_sf, binom_log_sf


def _direct_betabinom_sf(g: int, n: int, m: float, rho: float) -> float:
    """P(X >= g), X ~ BetaBinomial: sum of C(n,k) B(k+a, n-k+b) / B(a, b) with math.lgamma, term by term."""
    a, b = m * (1 - rho) / rho, (1 - m) * (1 - rho) / rho

    def lbeta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return sum(math.comb(n, k) * math.exp(lbeta(k + a, n - k + b) - lbeta(a, b)) for k in range(g, n + 1))


def test_betabinom_tail_matches_direct_sum_and_scipy():
    for g, n, m, rho in [(30, 60, 0.25, 0.01), (5, 10, 0.3, 0.2), (60, 120, 0.251, 0.004), (0, 7, 0.25, 0.1)]:
        got = math.exp(betabinom_log_sf(g, n, m, rho))
        assert got == pytest.approx(_direct_betabinom_sf(g, n, m, rho), rel=1e-9)
        a, b = m * (1 - rho) / rho, (1 - m) * (1 - rho) / rho
        assert got == pytest.approx(betabinom.sf(g - 1, n, a, b), rel=1e-6)
    assert betabinom_log_sf(40, 100, 0.25, 0.0) == binom_log_sf(40, 100, 0.25)
    # overdispersion makes the same count less surprising
    assert betabinom_log_sf(40, 100, 0.25, 0.01) > binom_log_sf(40, 100, 0.25)


def test_fit_null_is_the_method_of_moments():
    counts = [(3, 10), (7, 12), (1, 9), (4, 10), (9, 15)]
    m, rho = fit_null(counts)
    m_ref = 24 / 56
    s2 = sum((g - n * m_ref) ** 2 for g, n in counts) - sum(n * m_ref * (1 - m_ref) for _, n in counts)
    assert m == pytest.approx(m_ref)
    assert rho == pytest.approx(max(0.0, s2 / (m_ref * (1 - m_ref) * sum(n * (n - 1) for _, n in counts))))
    assert fit_null([(5, 20)] * 8)[1] == 0.0  # no spread: clipped at 0, never negative


def test_calibrated_p_value_matches_a_direct_computation():
    key = WatermarkKey(b"\x05" * 32, 0.25, 2.0, 1, False, 100)  # left-hash h=1: a unit is (previous, token)
    ids = [3, 7, 9, 3, 7, 11, 40, 41, 42, 9, 3, 7, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61]
    excluded = {(3, 7), (41, 42)}
    cal = make_calibration(key, excluded, mean=0.3, rho=0.05)
    det = detect_ids(key, [ids], calibration=cal)
    units = list(dict.fromkeys(zip(ids[:-1], ids[1:], strict=True)))  # distinct, in order
    kept = [u for u in units if u not in excluded]
    green = green_of(key, torch.tensor([[u[0]] for u in kept]), torch.tensor([[u[1]] for u in kept]))[:, 0]
    g = int(green.sum())
    assert (det.tokens_scored, det.green) == (len(kept), g)
    assert det.extra["frequent_units_skipped"] == 2 and det.extra["calibrated"]
    assert det.p_value == pytest.approx(_direct_betabinom_sf(g, len(kept), 0.3, 0.05), rel=1e-9)
    # the running version: the first number of kept units at which the direct p falls below alpha
    alpha = det.p_value * 1.000001
    colour = dict(zip(kept, green.tolist(), strict=True))
    running = [_direct_betabinom_sf(sum(colour[u] for u in kept[:n]), n, 0.3, 0.05) for n in range(1, len(kept) + 1)]
    assert tokens_needed(key, ids, alpha, calibration=cal) == next(n + 1 for n, p in enumerate(running) if p < alpha)
    assert tokens_needed(key, ids, min(running) / 2, calibration=cal) is None


@pytest.fixture(scope="module")
def reference(tokenizer):
    from distill.data.corpus import read_text, shakespeare_files

    docs = [read_text(f)[3000:43000] for f in shakespeare_files()[:3]]
    passages, doc_of = reference_passages(tokenizer, docs, 114)
    assert len(passages) >= 250
    return docs, passages, doc_of


def test_fit_excludes_exactly_the_frequent_units(reference, tokenizer, fixed_key):
    _, passages, doc_of = reference
    key = fixed_key(tokenizer, "calib-fit")
    cal = fit_calibration(key, passages, doc_of, max_unit_share=0.01)
    df: Counter = Counter()
    for p in passages:  # the detector's own units, one passage at a time
        c = UnitCounter(key)
        c.add_sequence(p)
        df.update(list(c.units))
    need = max(2, math.ceil(0.01 * len(passages)))
    assert all(cal.excludes(u) == (n >= need) for u, n in df.items())
    assert len(cal.excluded) == sum(n >= need for n in df.values()) > 0
    assert cal.mean >= 0.25 and cal.rho >= 0.0 and cal.fit["passages"] == len(passages)


def test_round_trip_keeps_no_key_material_and_refuses_other_keys(reference, tokenizer, fixed_key, tmp_path):
    _, passages, doc_of = reference
    key = fixed_key(tokenizer, "calib-roundtrip")
    sub = key.for_account("acme")
    cals = [fit_calibration(k, passages, doc_of) for k in (key, sub)]
    path = save_calibration(cals, tmp_path / "k.calib.json")
    loaded = load_calibration(path, [key, sub])
    for c in cals:
        back = loaded[c.key_id]
        assert (back.excluded, back.mean, back.rho, back.scheme, back.account) == (
            c.excluded, c.mean, c.rho, c.scheme, c.account)
        assert back.fit == c.fit
    raw = path.read_text()
    assert key.secret.hex() not in raw and sub.secret.hex() not in raw and cals[0].tag_secret.hex() not in raw
    seq = passages[0] + passages[1]
    assert detect_ids(key, [seq], calibration=loaded[key.key_id]) == detect_ids(key, [seq], calibration=cals[0])
    with pytest.raises(DistillError, match="no calibration for key"):
        load_calibration(path, [fixed_key(tokenizer, "calib-other")])
    data = json.loads(raw)
    data["keys"][0]["null_rho"] = 0.0  # an edited null
    path.write_text(json.dumps(data))
    with pytest.raises(DistillError, match="does not match the key"):
        load_calibration(path, [key])
    with pytest.raises(DistillError, match="calibration is for key"):
        UnitCounter(sub, calibration=cals[0])
    with pytest.raises(DistillError, match="at least 200"):
        fit_calibration(key, passages[:50])


def test_cli_calibrate_then_detect(reference, tokenizer, tiny_model_dir, fixed_key, tmp_path, capsys):
    docs, _, _ = reference
    corpus = []
    for i, d in enumerate(docs):
        corpus.append(tmp_path / f"doc{i}.txt")
        corpus[-1].write_text(d)
    key = fixed_key(tokenizer, "calib-cli")
    kf = save_key(key, tmp_path / "wm.key")
    tiny = str(tiny_model_dir)
    assert main(["watermark", "calibrate", "--key", str(kf), "--corpus", *map(str, corpus), "--tokenizer", tiny,
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    side = calibration_path(kf)
    assert side == Path(str(kf) + ".calib.json") and side.exists() and res["calibration_file"] == str(side)
    assert key.secret.hex() not in json.dumps(res)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = tokenizer("The history of the city begins", return_tensors="pt")["input_ids"]
    torch.manual_seed(0)
    out = model.generate(ids, do_sample=True, max_new_tokens=80, pad_token_id=tokenizer.eos_token_id,
                         logits_processor=LogitsProcessorList([WatermarkLogitsProcessor(key, top_k=64)]))
    tf = tmp_path / "t.txt"
    tf.write_text(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert main(["watermark", "detect", "--key", str(kf), "--tokenizer", tiny, "--json", str(tf)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["calibrated"] and got["calibration_file"] == str(side) and got["p_value"] < 1e-6
    direct = detect_ids(key, [tokenizer(tf.read_bytes().decode(), add_special_tokens=False)["input_ids"]],
                        calibration=load_calibration(side, [key])[key.key_id])
    assert got["p_value"] == pytest.approx(direct.p_value, rel=1e-12)
    assert main(["watermark", "detect", "--key", str(kf), "--tokenizer", tiny, "--json", "--no-calibration",
                 str(tf)]) == 0
    assert not json.loads(capsys.readouterr().out)["calibrated"]
    # bad input: a missing calibration file, and one made for another key
    rc = main(["watermark", "detect", "--key", str(kf), "--tokenizer", tiny, "--calibration",
               str(tmp_path / "none.json"), str(tf)])
    err = capsys.readouterr().err
    assert rc == 2 and "calibration file not found" in err and "Traceback" not in err
    other = save_key(fixed_key(tokenizer, "calib-cli-other"), tmp_path / "other.key")
    rc = main(["watermark", "detect", "--key", str(other), "--tokenizer", tiny, "--calibration", str(side), str(tf)])
    err = capsys.readouterr().err
    assert rc == 2 and "made for another key" in err and "Traceback" not in err
    short = tmp_path / "short.txt"
    short.write_text(docs[0][:2000])
    rc = main(["watermark", "calibrate", "--key", str(kf), "--corpus", str(short), "--tokenizer", tiny])
    err = capsys.readouterr().err
    assert rc == 2 and "calibration needs at least 200" in err and "Traceback" not in err

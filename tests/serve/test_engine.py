"""The generation engine against direct reference computations with the same model."""

from __future__ import annotations

import pytest
import torch

from distill.serve.engine import SamplingParams, tempered


def _prompt(tok, text):
    return tok(text)["input_ids"]


def test_greedy_matches_hf_generate_and_logprobs_match_forward(engine, tiny_loaded):
    model, tok = tiny_loaded.model, tiny_loaded.tokenizer
    for text in ["Hello there, how are you today?", "Hi"]:
        ids = _prompt(tok, text)
        comp = engine.generate(ids, SamplingParams(max_tokens=12, temperature=0, top_logprobs=3))
        got = [t.id for t in comp.choices[0].tokens]
        ref = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        assert got == ref[: len(got)] and len(got) == 12
        with torch.no_grad():
            lp = torch.log_softmax(model(torch.tensor([ids + got])).logits[0].float(), -1)
        for j, t in enumerate(comp.choices[0].tokens):
            row = lp[len(ids) - 1 + j]
            assert abs(row[t.id].item() - t.logprob) < 1e-4
            top_v, top_i = torch.topk(row, 3)
            assert [i for i, _ in t.top] == top_i.tolist()
            assert max(abs(a - b) for (_, a), b in zip(t.top, top_v.tolist(), strict=True)) < 1e-4
        assert comp.prompt_tokens == len(ids) and comp.choices[0].finish_reason == "length"


def test_batched_requests_equal_solo_runs_and_seeds_reproduce(engine, tiny_loaded):
    tok = tiny_loaded.tokenizer
    reqs = [(_prompt(tok, "A long prompt with quite a few words in it"), SamplingParams(max_tokens=10, seed=3, n=2)),
            (_prompt(tok, "Short"), SamplingParams(max_tokens=6, seed=4, temperature=0.7, top_p=0.9)),
            (_prompt(tok, "Greedy one"), SamplingParams(max_tokens=8, temperature=0))]
    solo = [engine.generate(ids, p) for ids, p in reqs]
    futures = [engine.submit(ids, p) for ids, p in reqs]  # queued together: decoded in one batch
    together = [f.result(timeout=60) for f in futures]
    for a, b in zip(solo, together, strict=True):
        assert [[t.id for t in c.tokens] for c in a.choices] == [[t.id for t in c.tokens] for c in b.choices]
    c0, c1 = solo[0].choices
    assert [t.id for t in c0.tokens] != [t.id for t in c1.tokens]  # n=2 choices differ
    other = engine.generate(reqs[0][0], SamplingParams(max_tokens=10, seed=99, n=2))
    assert [t.id for t in other.choices[0].tokens] != [t.id for t in c0.tokens]


def test_logits_processor_is_applied_per_request(engine, tiny_loaded):
    tok = tiny_loaded.tokenizer
    forced = tok.convert_tokens_to_ids("Ġthe")
    calls = []

    def force(input_ids, scores):
        calls.append(input_ids.shape)
        out = torch.full_like(scores, -1e9)
        out[:, forced] = 0.0
        return out

    ids = _prompt(tok, "Anything")
    f_forced = engine.submit(ids, SamplingParams(max_tokens=5, seed=1), [force])
    f_plain = engine.submit(ids, SamplingParams(max_tokens=5, seed=1))
    forced_c, plain_c = f_forced.result(timeout=60), f_plain.result(timeout=60)
    assert [t.id for t in forced_c.choices[0].tokens] == [forced] * 5
    assert all(abs(t.logprob) < 1e-6 for t in forced_c.choices[0].tokens)
    assert [t.id for t in plain_c.choices[0].tokens] != [forced] * 5
    assert calls[0] == (1, len(ids)) and calls[-1] == (1, len(ids) + 4)  # the row's own ids, HF shape


def test_stop_string_truncates_text_and_tokens(engine, tiny_loaded):
    tok = tiny_loaded.tokenizer
    ids = _prompt(tok, "Hello there, how are you today?")
    full = engine.generate(ids, SamplingParams(max_tokens=12, temperature=0)).choices[0]
    stop = full.text[len(full.tokens[0].text) + 1: len(full.tokens[0].text) + 4]  # starts inside token 2
    cut = engine.generate(ids, SamplingParams(max_tokens=12, temperature=0, stop=[stop])).choices[0]
    assert cut.finish_reason == "stop" and cut.text == full.text[: full.text.index(stop)]
    assert stop not in cut.text and len(cut.tokens) < len(full.tokens)


@pytest.mark.parametrize("temperature", [1e-320, 5e-324, 1e-45, 1e-39])
def test_a_temperature_too_small_to_divide_by_means_greedy(engine, tiny_loaded, temperature):
    scores = torch.tensor([3.0, -1.0, 0.0, float("-inf")])
    assert tempered(scores, temperature) is None  # the quotient holds inf or NaN: never sampled from
    assert tempered(scores, 0.0) is None
    assert torch.equal(tempered(scores, 0.5), scores / 0.5)
    assert tempered(torch.full((4,), float("-inf")), 1.0) is None  # nothing finite to sample from
    ids = _prompt(tiny_loaded.tokenizer, "Tiny temperature")
    tiny = engine.generate(ids, SamplingParams(max_tokens=10, temperature=temperature, seed=3)).choices[0]
    greedy = engine.generate(ids, SamplingParams(max_tokens=10, temperature=0)).choices[0]
    assert [t.id for t in tiny.tokens] == [t.id for t in greedy.tokens]

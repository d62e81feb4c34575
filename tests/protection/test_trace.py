"""Radioactivity: a student distilled from watermarked text is flagged; a control student is not."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, LogitsProcessorList

from distill.cli import main
from distill.errors import DistillError
from distill.keys.watermark import WatermarkKey, save_key
from distill.protection.trace import load_watermarked_data, trace_closed, trace_open
from distill.protection.watermark.processor import WatermarkLogitsProcessor

STUDENT_VOCAB = 1024  # the students only model ids < 1024 (all the teacher emits): cheap full cross-entropy


@torch.no_grad()
def _generate(teacher, tokenizer, allowed, procs, n=32, length=40, seed=0) -> list[str]:
    """Sample from the tiny teacher restricted to a few whole-word tokens (sharpened: it is nearly flat)."""
    g = torch.Generator().manual_seed(seed)
    allowed_t = torch.tensor(allowed)
    seq = allowed_t[torch.randint(0, len(allowed), (n, 1), generator=g)]
    for _ in range(length):
        logits = teacher(seq, logits_to_keep=1).logits[:, -1]
        scores = torch.full_like(logits, float("-inf"))
        scores[:, allowed_t] = logits[:, allowed_t] * 20
        for p in procs:
            scores = p(seq, scores)
        idx = torch.multinomial(torch.softmax(scores[:, allowed_t], -1), 1, generator=g)
        seq = torch.cat([seq, allowed_t[idx]], dim=1)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in seq]


def _train_student(texts, tokenizer, out_dir, steps=60, seed=0):
    """A tiny Llama trained with plain next-token cross-entropy (AdamW) on `texts`."""
    config = LlamaConfig(vocab_size=STUDENT_VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    student = LlamaForCausalLM(config)
    data = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    m = min(len(d) for d in data)
    batch_all = torch.tensor([d[:m] for d in data])
    opt = torch.optim.AdamW(student.parameters(), lr=2e-2)
    g = torch.Generator().manual_seed(seed)
    student.train()
    for _ in range(steps):
        batch = batch_all[torch.randint(0, len(batch_all), (16,), generator=g)]
        logits = student(batch).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    student.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def setup(tiny_teacher_dir, tokenizer, tmp_path_factory, word_ids):
    teacher = AutoModelForCausalLM.from_pretrained(tiny_teacher_dir).eval()
    allowed = word_ids
    key = WatermarkKey(b"\x05" * 32, 0.25, 8.0, 1, False, len(tokenizer))  # left-hash h=1, strong delta
    wm = _generate(teacher, tokenizer, allowed, [WatermarkLogitsProcessor(key, top_k=len(allowed))], seed=0)
    plain = _generate(teacher, tokenizer, allowed, [], seed=1)
    root = tmp_path_factory.mktemp("trace")
    data = root / "wmdata"
    data.mkdir()
    with open(data / "generations.jsonl", "w") as f:
        for t in wm:
            f.write(json.dumps({"request": {"messages": [{"role": "user", "content": "go"}]},
                                "choices": [{"text": t}]}) + "\n")
    radio = _train_student(wm, tokenizer, root / "radio")
    control = _train_student(plain, tokenizer, root / "control")
    return key, data, radio, control, wm, root


def test_open_mode_flags_distilled_student_not_control(setup):
    key, data, radio, control, wm, root = setup
    texts, prompts = load_watermarked_data(data)
    assert texts == wm and prompts == ["go"] * len(wm)
    hot = trace_open(key, str(radio), texts, prompts)
    cold = trace_open(key, str(control), texts, prompts)
    assert hot["N"] >= 20 and cold["N"] >= 20, (hot, cold)
    assert hot["p_value"] < 1e-4, hot
    assert cold["p_value"] >= 1e-6, cold  # an innocent model: p is uniform, so this fails on 1e-6 of keys
    filtered = trace_open(key, str(radio), texts, prompts, filter_kgrams=True)
    assert filtered["N"] <= hot["N"] and filtered["p_value"] < 1e-4


def test_cli_open_mode_json(setup, capsys):
    key, data, radio, control, wm, root = setup
    kf = root / "key.json"
    if not kf.exists():
        save_key(key, kf)
    assert main(["trace", "--key", str(kf), "--suspect-model", str(radio), "--watermarked-data", str(data),
                 "--bare-text", "--json"]) == 0  # this student was trained on bare text, not chats
    res = json.loads(capsys.readouterr().out)
    assert res["flagged"] and res["p_value"] < 1e-4 and {"N", "S", "meaning", "tested"} <= set(res)


def _mock(answer_for, status=200):
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if status != 200:
            return httpx.Response(status, text="overloaded")
        content = answer_for(body["messages"][0]["content"])
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}]})
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_closed_mode(tiny_model_dir, tokenizer, fixed_key):
    key = fixed_key(tokenizer, "trace-closed")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = ["Tell me about rivers.", "Describe a mountain.", "What is rain?"]

    cache: dict[str, str] = {}

    def watermarked(prompt: str) -> str:
        if prompt in cache:
            return cache[prompt]
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        torch.manual_seed(len(prompt))
        out = model.generate(ids, do_sample=True, max_new_tokens=30, pad_token_id=tokenizer.eos_token_id,
                             logits_processor=LogitsProcessorList([WatermarkLogitsProcessor(key)]))
        cache[prompt] = prompt + tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)  # echoes it
        return cache[prompt]

    hot = trace_closed(key, tokenizer, "http://suspect", "s", prompts, client=_mock(watermarked))
    assert hot["p_value"] < 1e-6 and hot["prompt_windows_skipped"] > 0
    other = fixed_key(tokenizer, "trace-closed-other")
    cold = trace_closed(other, tokenizer, "http://suspect", "s", prompts, client=_mock(watermarked))
    assert cold["N"] >= 40 and cold["p_value"] >= 1e-6, cold
    with pytest.raises(DistillError, match="HTTP 500"):
        trace_closed(key, tokenizer, "http://suspect", "s", prompts, client=_mock(watermarked, status=500))


def test_cli_unreachable_endpoint_gives_no_p_value(tmp_path, tokenizer, capsys, fixed_key):
    kf = tmp_path / "k.json"
    save_key(fixed_key(tokenizer, "trace-unreachable"), kf)
    rc = main(["trace", "--key", str(kf), "--suspect-endpoint", "http://127.0.0.1:9", "--model", "x", "--json"])
    cap = capsys.readouterr()
    assert rc == 2 and "could not be reached" in cap.err and "p_value" not in cap.out and "Traceback" not in cap.err


def test_cli_account_uses_that_accounts_subkey(setup, capsys):
    """The radio student learned the master key's watermark; an account's sub-key is another key: no flag."""
    key, data, radio, control, wm, root = setup
    kf = root / "key.json"
    if not kf.exists():
        save_key(key, kf)
    assert main(["trace", "--key", str(kf), "--account", "bob", "--suspect-model", str(radio),
                 "--watermarked-data", str(data), "--bare-text", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert not res["flagged"] and res["p_value"] >= 1e-6 and res["key_id"] == key.for_account("bob").key_id, res


def _green(key: WatermarkKey, windows: torch.Tensor, cands: torch.Tensor) -> torch.Tensor:
    from distill.protection.watermark.greenlist import green_values, threshold

    return green_values(key, windows, cands)[0] < threshold(key.gamma)


class _ContextLM(torch.nn.Module):
    """A key-independent language model over the ids < `n`: logits = table[prev] + 0.7 * table[prev-prev]."""

    def __init__(self, n: int, vocab: int, seed: int = 0, tilt: WatermarkKey | None = None):
        super().__init__()
        self.n, self.vocab, self.tilt = n, vocab, tilt
        self.table = torch.randn(n, n, generator=torch.Generator().manual_seed(seed)) * 2.0
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def scores(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits [B, n] for the next token after each row of ids [B, T] (ids >= n are never predicted)."""
        out = self.table[ids[:, -1]] + (0.7 * self.table[ids[:, -2]] if ids.shape[1] > 1 else 0.0)
        if self.tilt is not None:
            out = out + self.tilt.delta * _green(self.tilt, ids[:, -self.tilt.context_width:], torch.arange(self.n)[None]).float()
        return out

    def forward(self, input_ids: torch.Tensor):
        from types import SimpleNamespace

        steps = [self.scores(input_ids[:, : t + 1]) for t in range(input_ids.shape[1])]
        return SimpleNamespace(logits=torch.stack(steps, 1))


@pytest.mark.parametrize("h,self_hash", [(1, False), (4, True)])
def test_open_mode_is_exact_for_a_strong_innocent_predictor(tokenizer, fixed_key, h, self_hash):
    """Text sampled from a model with a δ=2 watermark, fed to the same model *without* the watermark: it predicts
    many served tokens, and those hits are mostly green (the watermark pushed them); the test must still hold its
    level (hits are balanced by red misses), and flag the same model once it has the watermark's bias."""
    from distill.protection.trace import open_units

    key = fixed_key(tokenizer, f"trace-exact-{h}-{self_hash}", delta=2.0, context_width=h, self_hash=self_hash)
    lm = _ContextLM(400, key.vocab_size)
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(0, 400, (300, h + 1), generator=g)
    served = _ContextLM(400, key.vocab_size, tilt=key)  # what the watermarked server samples from
    for _ in range(30):
        probs = served.scores(seq).softmax(-1)
        seq = torch.cat([seq, torch.multinomial(probs, 1, generator=g)], 1)
    seqs = seq.tolist()

    preds = lm(seq).logits[:, :-1].argmax(-1)
    hit = preds[:, h:] == seq[:, h + 1:]
    windows = seq.unfold(1, h, 1)[:, 1:-1]  # windows[:, j] precedes seq[:, j + h + 1]
    hit_green = _green(key, windows[hit], seq[:, h + 1:][hit].view(-1, 1))
    assert hit.float().mean() > 0.15 and hit_green.float().mean() > 0.4  # the trap is there

    innocent = open_units(key, lm, seqs, set()).result()
    learned = open_units(key, served, seqs, set()).result()

    assert innocent.tokens_scored > 3000, innocent
    # the innocent count is Binomial(N, 0.25): both bounds below fail on fewer than 1e-6 of keys
    sd = (0.25 * 0.75 / innocent.tokens_scored) ** 0.5
    assert innocent.p_value >= 1e-6 and abs(innocent.green / innocent.tokens_scored - 0.25) < 5 * sd, innocent
    assert learned.p_value < 1e-10, learned


class _FixedPredictions(torch.nn.Module):
    """Predicts `preds[t]` after position t, whatever the input."""

    def __init__(self, preds: list[int], vocab: int):
        super().__init__()
        self.preds, self.vocab = preds, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor):
        from types import SimpleNamespace

        logits = torch.zeros(1, input_ids.shape[1], self.vocab)
        logits[0, torch.arange(len(self.preds)), torch.tensor(self.preds)] = 1.0
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("self_hash", [True, False])
def test_open_mode_drops_in_context_copies_under_a_shared_anchor(tokenizer, fixed_key, self_hash):
    """Self-hash colours hang on one token of the window: predicting, after a window that shares a token with an
    earlier one, the token that followed that earlier window copies its (key-chosen) colour, so the position is
    dropped. Left-hash colours hang on the whole window, so only a repeated window is dropped there."""
    from distill.protection.trace import open_units

    key = fixed_key(tokenizer, "trace-anchor", context_width=2, self_hash=self_hash)
    a, b, y, c, d, z = 11, 12, 13, 14, 15, 16
    seq = [a, b, y, c, a, d, b]  # (a, b) -> y at 2; window (c, a) at 5 shares `a`; window (a, d) at 6 too
    copy = _FixedPredictions([0, 0, 0, 0, y, y, 0], key.vocab_size)  # predicts y after (c, a) and after (a, d)
    other = _FixedPredictions([0, 0, 0, 0, z, z, 0], key.vocab_size)
    n_copy = open_units(key, copy, [seq], set()).result().tokens_total
    n_other = open_units(key, other, [seq], set()).result().tokens_total
    assert n_other == 5  # positions 2..6
    assert n_copy == (3 if self_hash else 5)

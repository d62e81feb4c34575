"""StoreTeacher: signals for batches, the fused loss on them, identity refusals, damaged stores, mmap reading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.config import LossConfig
from distill.data.corpus import collate, load_corpus
from distill.errors import DistillError
from distill.loss.fused import distill_loss
from distill.models.loading import load_tokenizer
from distill.signals import SparseSignal
from distill.store import StoreTeacher, expected_identity, verify_store


@pytest.fixture(scope="module")
def corpus(data_cfg, tokenizer):
    return load_corpus(data_cfg, tokenizer)


def _batch(corpus, rows: list[int], pad_id: int, split: str = "train"):
    examples = corpus.train if split == "train" else corpus.heldout
    return collate([examples[i] for i in rows], pad_id, example_ids=rows)


def test_signal_holds_the_batch_positions_in_order(store_dir, corpus, tokenizer):
    st = StoreTeacher(store_dir, split="train", expect=expected_identity(tokenizer=tokenizer, corpus=corpus),
                      tail="bucket")
    rows = [5, 0, 17, 9]  # out of order and across shards
    batch = _batch(corpus, rows, tokenizer.pad_token_id)
    positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(1)
    sig = st.signal(batch, positions)
    assert isinstance(sig, SparseSignal) and sig.ids.dtype == torch.long and sig.logprobs.dtype == torch.float32
    want = [st.example_topk(r) for r in rows]
    assert torch.equal(sig.ids, torch.cat([w[0] for w in want]))
    assert torch.equal(sig.logprobs, torch.cat([w[1] for w in want]))
    # a subset of the scored positions (any order) picks the matching rows
    pick = torch.tensor([len(positions) - 1, 0, 20])
    sub = st.signal(batch, positions[pick])
    assert torch.equal(sub.ids, sig.ids[pick]) and torch.equal(sub.logprobs, sig.logprobs[pick])
    held = StoreTeacher(store_dir, split="heldout", tail="bucket")
    hb = _batch(corpus, [1, 0], tokenizer.pad_token_id, split="heldout")
    hs = held.signal(hb, hb["loss_mask"].reshape(-1).nonzero().squeeze(1))
    assert torch.equal(hs.ids, torch.cat([held.example_topk(1)[0], held.example_topk(0)[0]]))


def test_signal_refuses_positions_and_rows_it_does_not_hold(store_dir, corpus, tokenizer):
    st = StoreTeacher(store_dir)
    batch = _batch(corpus, [0, 1], tokenizer.pad_token_id)
    not_scored = (~batch["loss_mask"].reshape(-1)).nonzero().squeeze(1)[:1]
    with pytest.raises(DistillError, match="does not score"):
        st.signal(batch, not_scored)
    batch["loss_mask"][0, 3] = False  # a row that is not the captured sequence
    with pytest.raises(DistillError, match="train example 0 has 14 scored positions in the batch but 15"):
        st.signal(batch, batch["loss_mask"].reshape(-1).nonzero().squeeze(1))
    batch = _batch(corpus, [0, 1], tokenizer.pad_token_id)
    batch["example_ids"] = torch.tensor([0, 999])
    with pytest.raises(DistillError, match="example 999 is outside"):
        st.signal(batch, batch["loss_mask"].reshape(-1).nonzero().squeeze(1))


def _reference_loss(hidden, weight, ids, t_lp, targets, kind: str, T: float, ce_weight: float, prior=None):
    """Direct float64 computation of the KD (+ CE) loss, written out by hand: over k + one residual bucket, or
    (with `prior`) over the whole vocabulary with the residual spread in proportion to the prior."""
    hidden, weight, t_lp = hidden.double(), weight.double(), t_lp.double()
    logits = hidden @ weight.T
    p_top = t_lp.exp()
    if prior is None:
        p = torch.cat([p_top, (1 - p_top.sum(-1, keepdim=True)).clamp(min=1e-6)], -1)  # k + residual bucket
        q_top = torch.softmax(logits, -1).gather(1, ids)
        q = torch.cat([q_top, 1 - q_top.sum(-1, keepdim=True)], -1)
    else:
        prior = torch.as_tensor(prior, dtype=torch.float64).clamp_min(1e-30)  # the documented floor
        p = torch.empty_like(logits)
        for r in range(len(ids)):
            outside = torch.ones(len(prior), dtype=torch.bool)
            outside[ids[r]] = False
            p[r] = prior * (1 - p_top[r].sum()).clamp(min=1e-12) / prior[outside].sum()
            p[r, ids[r]] = p_top[r]
        q = torch.softmax(logits, -1)
    if T != 1.0:  # re-temper both distributions
        p, q = torch.softmax(p.log() / T, -1), torch.softmax(q.log() / T, -1)
    if kind == "forward_kl":
        kd = (p * (p.log() - q.log())).sum(-1)
    else:  # jsd, beta 0.5
        m = 0.5 * p + 0.5 * q
        kd = 0.5 * (p * (p.log() - m.log())).sum(-1) + 0.5 * (q * (q.log() - m.log())).sum(-1)
    ce = -torch.log_softmax(logits, -1).gather(1, targets[:, None]).squeeze(1)
    return (kd * T * T + ce_weight * ce).mean()


@pytest.mark.parametrize("tail", ["bucket", "prior"])
@pytest.mark.parametrize("kind,T,ce_weight", [("forward_kl", 1.0, 0.0), ("forward_kl", 1.0, 0.5), ("jsd", 2.0, 0.5)])
def test_store_signal_through_fused_loss_matches_reference(store_dir, corpus, tokenizer, tiny_model_dir,
                                                           kind, T, ce_weight, tail):
    student = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    st = StoreTeacher(store_dir, tail=tail)
    batch = _batch(corpus, [2, 11, 7], tokenizer.pad_token_id)
    positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(1)
    sig = st.signal(batch, positions)
    with torch.no_grad():
        h = student.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    hidden = h.reshape(-1, h.shape[-1])[positions].clone().requires_grad_(True)
    weight = student.get_output_embeddings().weight[: len(tokenizer)].detach().clone().requires_grad_(True)
    targets = batch["targets"].reshape(-1)[positions]
    spec = LossConfig(kind=kind, temperature=T, ce_weight=ce_weight, chunk_size=5)
    loss, stats = distill_loss(hidden, weight, sig, targets, spec)
    loss.backward()
    h_ref = hidden.detach().clone().requires_grad_(True)
    w_ref = weight.detach().clone().requires_grad_(True)
    prior = np.load(store_dir / "tail-prior.npy") if tail == "prior" else None
    ref = _reference_loss(h_ref, w_ref, sig.ids, sig.logprobs, targets, kind, T, ce_weight, prior)
    ref.backward()
    assert float(loss.detach()) == pytest.approx(float(ref.detach()), rel=1e-4, abs=1e-6)
    assert torch.allclose(hidden.grad.double(), h_ref.grad.double(), rtol=1e-3, atol=1e-7)
    assert torch.allclose(weight.grad.double(), w_ref.grad.double(), rtol=1e-3, atol=1e-7)
    assert stats["kd_tokens"] == len(positions)


def test_refuses_store_from_another_teacher_tokenizer_or_dataset(store_dir, corpus, tokenizer, data_cfg,
                                                                 tiny_model_dir, sharp_teacher_dir):
    ok = expected_identity(teacher=str(sharp_teacher_dir), tokenizer=tokenizer, corpus=corpus)
    StoreTeacher(store_dir, expect=ok)
    with pytest.raises(DistillError, match=r"different setup: teacher weights \(sha256\): store [0-9a-f]+…, "
                                           r"this run [0-9a-f]+…") as e:
        StoreTeacher(store_dir, expect={**ok, **expected_identity(teacher=str(tiny_model_dir))})
    assert "re-capture" in str(e.value) and e.value.code == 2
    other_tok = load_tokenizer(str(tiny_model_dir))
    other_tok.add_tokens(["<extra-token>"])
    with pytest.raises(DistillError, match="tokenizer fingerprint: store") as e:
        StoreTeacher(store_dir, expect={**ok, **expected_identity(tokenizer=other_tok)})
    assert "teacher weights" not in str(e.value)
    other = load_corpus(data_cfg.model_copy(update={"seed": 1}), tokenizer)
    with pytest.raises(DistillError, match="dataset fingerprint"):
        StoreTeacher(store_dir, expect={**ok, "corpus_fingerprint": other.fingerprint})
    everything = expected_identity(teacher=str(tiny_model_dir), tokenizer=other_tok, corpus=other)
    with pytest.raises(DistillError) as e:
        StoreTeacher(store_dir, expect=everything)
    assert all(w in str(e.value) for w in ("teacher weights", "tokenizer fingerprint", "dataset fingerprint"))


def test_truncated_missing_and_corrupted_files(store_copy, tmp_path):
    verify_store(store_copy)
    shard = store_copy / "shard-00001.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[:-50])
    with pytest.raises(DistillError, match=r"shard-00001.npy is truncated or altered: \d+ bytes, the manifest says"):
        StoreTeacher(store_copy)
    shard.unlink()
    with pytest.raises(DistillError, match="missing its file shard-00001.npy"):
        StoreTeacher(store_copy)
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF
    shard.write_bytes(bytes(flipped))
    StoreTeacher(store_copy)  # same size: only the hash check sees it
    with pytest.raises(DistillError, match="does not match its sha256"):
        verify_store(store_copy)
    (store_copy / "manifest.json").unlink()
    with pytest.raises(DistillError, match="incomplete: it has no manifest.json"):
        StoreTeacher(store_copy)
    (store_copy / "plan.json").unlink()
    with pytest.raises(DistillError, match="not a teacher store"):
        StoreTeacher(store_copy)
    with pytest.raises(DistillError, match="teacher store not found"):
        StoreTeacher(tmp_path / "nowhere")
    (store_copy / "manifest.json").write_text("{not json")
    with pytest.raises(DistillError, match="not valid JSON"):
        StoreTeacher(store_copy)


def test_reading_is_memory_mapped(store_dir, corpus, tokenizer):
    st = StoreTeacher(store_dir)
    assert isinstance(st.index, np.memmap)
    assert st._shards == {}  # nothing opened before a batch asks for it
    batch = _batch(corpus, [0, 1], tokenizer.pad_token_id)
    st.signal(batch, batch["loss_mask"].reshape(-1).nonzero().squeeze(1))
    assert list(st._shards) == [0]
    shard = st.shard(0)
    assert isinstance(shard, np.memmap) and not shard.flags.writeable
    assert isinstance(st.records(0), np.memmap)
    m = json.loads((store_dir / "manifest.json").read_text())
    assert shard.dtype.itemsize == m["settings"]["bytes_per_position"] == 8 * 2 + 4 + 8
    assert math.isclose(shard.nbytes, m["shards"][0]["positions"] * 28)


def test_tail_prior_signal_against_a_direct_construction():
    """Stored ids keep their log-probs; every other id gets R · prior / Z; rows are distributions; padding
    (and a real id 0 next to it) is handled."""
    from distill.signals import TailPriorSignal

    V = 7
    prior = torch.tensor([0.3, 0.1, 0.05, 0.2, 0.15, 0.1, 0.1])
    ids = torch.tensor([[2, 5, -1], [0, 3, -1], [-1, -1, -1], [4, 1, 6]])
    lp = torch.tensor([[0.5, 0.2, 0.0], [0.6, 0.1, 0.0], [0.0, 0.0, 0.0], [0.4, 0.3, 0.2]]).log()
    lp = torch.where(ids >= 0, lp, torch.full_like(lp, -math.inf))
    sig = TailPriorSignal(ids=ids, logprobs=lp, log_prior=prior.log())
    got = sig.logits(slice(0, 4)).exp()
    for r in range(4):
        want = torch.zeros(V)
        kept = {int(i): float(v) for i, v in zip(ids[r], lp[r].exp(), strict=True) if i >= 0}
        rest = [v for v in range(V) if v not in kept]
        residual = 1 - sum(kept.values())
        z = float(prior[rest].sum())
        for v in range(V):
            want[v] = kept[v] if v in kept else residual * float(prior[v]) / z
        assert torch.allclose(got[r], want, atol=1e-6), (r, got[r], want)
        assert float(got[r].sum()) == pytest.approx(1.0, abs=1e-6)

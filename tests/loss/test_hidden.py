"""loss.hidden: the per-pair terms and their gradients against closed forms, the mapping, the projections, the
hooks, and StudentLoss's total against a direct computation from every layer's outputs."""

from __future__ import annotations

import pytest
import torch

from distill.config import HiddenLossConfig, LossConfig
from distill.errors import DistillError
from distill.loss.hidden import Projections, auto_pairs, capture, check_pairs, hidden_terms, layer_terms


def _pair(seed: int, n: int = 7, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_(True),
            torch.randn(n, d, generator=g, dtype=torch.float64))


def test_cosine_term_and_gradient_match_the_closed_form():
    s, t = _pair(0)
    loss = layer_terms(s, t, "cosine")
    ns, nt = s.detach().norm(dim=-1, keepdim=True), t.norm(dim=-1, keepdim=True)
    dot = (s.detach() * t).sum(-1, keepdim=True)
    assert torch.allclose(loss.double(), (1 - dot / (ns * nt)).squeeze(-1), atol=1e-6)
    loss.sum().backward()
    # d/ds (1 - s·t / (|s||t|)) = -(t / (|s||t|) - (s·t) s / (|s|³ |t|))
    ref = -(t / (ns * nt) - dot * s.detach() / (ns ** 3 * nt))
    assert torch.allclose(s.grad, ref, atol=1e-6)


def test_mse_term_and_gradient_match_the_closed_form():
    s, t = _pair(1)
    loss = layer_terms(s, t, "mse")
    assert torch.allclose(loss.double(), ((s.detach() - t) ** 2).mean(-1), atol=1e-6)
    loss.sum().backward()
    assert torch.allclose(s.grad, 2 * (s.detach() - t) / s.shape[-1], atol=1e-6)


def test_hidden_terms_average_the_pairs():
    (a, ta), (b, tb) = _pair(2), _pair(3)
    got = hidden_terms([a, b], [ta, tb], "cosine")
    assert torch.allclose(got, (layer_terms(a, ta, "cosine") + layer_terms(b, tb, "cosine")) / 2)
    with pytest.raises(ValueError):
        hidden_terms([a], [ta, tb], "cosine")


def test_auto_pairs():
    # a cut student: each layer paired with the teacher layer before the next kept one, the last with the last
    assert auto_pairs(4, 10, kept=[0, 1, 5, 9]) == [(0, 0), (1, 4), (2, 8), (3, 9)]
    assert auto_pairs(3, 10, kept=[2, 3, 4]) == [(0, 2), (1, 3), (2, 9)]
    # otherwise evenly spaced stretches, ending on the teacher's last layer
    assert auto_pairs(4, 30) == [(0, 7), (1, 14), (2, 22), (3, 29)]
    assert auto_pairs(3, 3) == [(0, 0), (1, 1), (2, 2)]
    assert auto_pairs(2, 10, kept=[1, 2, 3]) == [(0, 4), (1, 9)]  # kept of another depth: ignored


def test_explicit_pairs_are_checked():
    assert check_pairs([[0, 2], [1, 5]], 2, 6) == [(0, 2), (1, 5)]
    with pytest.raises(DistillError, match="out of range"):
        check_pairs([[0, 6]], 2, 6)
    with pytest.raises(DistillError, match="twice"):
        check_pairs([[0, 1], [0, 2]], 2, 6)


def test_projections():
    assert len(Projections(3, 8, 8).maps) == 0  # same width: none
    p = Projections(2, 3, 6, channels=[4, 0, 2])  # a width-pruned student: starts as the kept channels' embedding
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    y = p([x, x])
    assert len(p.maps) == 2 and y[0].shape == (5, 6)
    assert torch.equal(y[0][:, [4, 0, 2]], x) and torch.equal(y[0][:, [1, 3, 5]], torch.zeros(5, 3))


def test_hidden_config():
    assert LossConfig().hidden is None
    h = HiddenLossConfig(layers=[[0, 1], [1, 3]])
    assert h.layers == [[0, 1], [1, 3]] and h.kind == "cosine"
    for bad in ([[0]], [[0, 1, 2]], [[-1, 0]], [], "some"):
        with pytest.raises(ValueError):
            HiddenLossConfig(layers=bad)


@pytest.fixture(scope="module")
def tiny_pair(tokenizer):
    from distill.models.students import fresh_llama

    teacher = fresh_llama(tokenizer, hidden_size=48, num_layers=3, num_heads=2, seed=1).eval()
    student = fresh_llama(tokenizer, hidden_size=32, num_layers=2, num_heads=2, seed=2)
    return teacher, student


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 1000, (2, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    loss_mask = mask.bool().clone()
    loss_mask[:, -1] = False
    loss_mask[1, 8:] = False
    targets = torch.where(loss_mask, torch.roll(ids, -1, 1), torch.full_like(ids, -100))
    return {"input_ids": ids, "attention_mask": mask, "loss_mask": loss_mask, "targets": targets}


def _layer_outputs(model, batch) -> list[torch.Tensor]:
    """Every decoder layer's output [B, T, d], run block by block (the direct reference, no hooks)."""
    base = model.base_model
    h = base.embed_tokens(batch["input_ids"])
    pos = torch.arange(h.shape[1])[None]
    from transformers.masking_utils import create_causal_mask

    mask = create_causal_mask(config=model.config, inputs_embeds=h, attention_mask=batch["attention_mask"],
                              cache=None, position_ids=pos)
    emb = base.rotary_emb(h, pos)
    outs = []
    for layer in base.layers:
        h = layer(h, attention_mask=mask, position_ids=pos, position_embeddings=emb)
        h = h[0] if isinstance(h, tuple) else h
        outs.append(h)
    return outs


def test_capture_keeps_each_layers_output_at_the_positions(tiny_pair):
    teacher, _ = tiny_pair
    batch = _batch()
    positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(-1)
    with torch.no_grad(), capture([teacher.base_model.layers[2], teacher.base_model.layers[0]], positions) as got:
        teacher.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        ref = _layer_outputs(teacher, batch)
    assert len(teacher.base_model.layers[0]._forward_hooks) == 0  # removed on exit
    for state, i in zip(got, (2, 0), strict=True):
        assert torch.allclose(state, ref[i].reshape(-1, 48)[positions], atol=1e-5)


def test_student_loss_matches_a_direct_computation(tiny_pair, tokenizer):
    """StudentLoss with loss.hidden = fused KD + weight · mean over pairs of 1 − cos(P·s_j, t_i), per token / the
    normalizer; its gradients (student and projection) equal autograd on that direct formula."""
    from distill.signals import LiveTeacher
    from distill.training.module import StudentLoss, hidden_parts

    teacher, student = tiny_pair
    vocab = len(tokenizer)
    cfg = LossConfig(chunk_size=8, hidden=HiddenLossConfig(weight=0.7, kind="cosine", layers=[[0, 1], [1, 2]]))
    pairs, proj = hidden_parts(cfg.hidden, student, teacher)
    assert pairs == [(0, 1), (1, 2)] and len(proj.maps) == 2
    module = StudentLoss(student, vocab, cfg, pairs, proj)
    batch = _batch(3)
    positions = batch["loss_mask"].reshape(-1).nonzero().squeeze(-1)
    signal = LiveTeacher(teacher, vocab, [t for _, t in pairs]).signal(batch, positions)
    normalizer = 40.0
    loss, stats = module(batch, positions, signal, normalizer)
    loss.backward()
    got = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)

    with torch.no_grad():
        t_out = _layer_outputs(teacher, batch)
        t_logits = teacher(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    s_out = _layer_outputs(student, batch)
    s_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    flat = lambda x: x.reshape(-1, x.shape[-1])[positions]  # noqa: E731
    p, q = torch.log_softmax(flat(t_logits)[:, :vocab], -1), torch.log_softmax(flat(s_logits)[:, :vocab], -1)
    kd = (p.exp() * (p - q)).sum(-1)
    cos = [1 - torch.nn.functional.cosine_similarity(proj.maps[k](flat(s_out[j])), flat(t_out[i]), dim=-1)
           for k, (j, i) in enumerate(pairs)]
    per_token = (cos[0] + cos[1]) / 2
    ref = kd.sum() / normalizer + 0.7 * per_token.sum() / normalizer
    assert torch.allclose(loss, ref, rtol=1e-4, atol=1e-5)
    assert abs(stats["hidden_sum"] - float(per_token.detach().sum())) < 1e-4
    ref.backward()
    for name, param in module.named_parameters():
        if name in got:
            assert torch.allclose(got[name], param.grad, rtol=1e-3, atol=1e-6), name
    assert any(n.startswith("projections.") for n in got)
    module.zero_grad(set_to_none=True)

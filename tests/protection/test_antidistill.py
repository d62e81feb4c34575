"""Antidistillation sampling: the finite-difference Δ against the directional derivative computed with autograd,
the bias added to the scores exactly, λ = 0 as plain sampling, and its place among the server's processors."""

from __future__ import annotations

import pytest
import torch

from distill.errors import DistillError
from distill.models.loading import load_model
from distill.protection.antidistill import AntidistillProcessor
from distill.serve.protection import Protection


@pytest.fixture(scope="module")
def proxy(tiny_model_dir):
    return load_model(str(tiny_model_dir)).model.float()


@pytest.fixture(scope="module")
def calibration(word_ids):
    return [(word_ids * 2)[i:i + 24] for i in (0, 5, 11, 19)]


def test_delta_is_the_directional_derivative_of_the_log_probability(proxy, calibration):
    proc = AntidistillProcessor(proxy, calibration, lam=1.0, eps=1e-2)
    # reference: g by autograd on the mean NLL, then <g/|g|, d log p(v|x) / d theta> for a few tokens v
    params = list(proxy.parameters())
    with torch.enable_grad():
        for p in params:
            p.requires_grad_(True)
        loss = sum(torch.nn.functional.cross_entropy(proxy(input_ids=torch.tensor([s])).logits[0, :-1],
                                                     torch.tensor(s[1:])) for s in calibration) / len(calibration)
        g = torch.autograd.grad(loss, params)
        norm = torch.sqrt(sum((x.double() ** 2).sum() for x in g))
        x = torch.tensor([calibration[0][:10]])
        logp = torch.log_softmax(proxy(input_ids=x).logits[0, -1], -1)
        got = proc.delta(x)[0]
        for v in (int(logp.argmax()), 17, 504, 2873):
            grad_v = torch.autograd.grad(logp[v], params, retain_graph=True)
            want = float(sum((a.double() * b.double()).sum() for a, b in zip(g, grad_v, strict=True)) / norm)
            assert float(got[v]) == pytest.approx(want, rel=2e-2, abs=2e-3), v
    for p in params:
        p.requires_grad_(False)


def test_the_bias_is_lambda_times_delta_and_zero_lambda_is_plain(proxy, calibration):
    x = torch.tensor([calibration[1][:8]])
    scores = torch.randn(1, proxy.get_output_embeddings().weight.shape[0], generator=torch.Generator().manual_seed(0))
    plain = AntidistillProcessor(proxy, calibration, lam=0.0)
    assert torch.equal(plain(x, scores), scores)
    strong = AntidistillProcessor(proxy, calibration, lam=3.0)
    torch.testing.assert_close(strong(x, scores), scores + 3.0 * strong.delta(x))
    assert strong.delta(x).abs().max() > 0  # the proxy has a gradient: the bias is not trivially zero


def test_bad_settings_are_refused(proxy, calibration):
    with pytest.raises(DistillError, match="lambda"):
        AntidistillProcessor(proxy, calibration, lam=-1.0)
    with pytest.raises(DistillError, match="held-out text"):
        AntidistillProcessor(proxy, [], lam=1.0)


def test_the_server_applies_it_to_every_account_before_the_watermark(proxy, calibration):
    proc = AntidistillProcessor(proxy, calibration, lam=1.0)
    prot = Protection(antidistill=proc)
    assert prot.processors_for("anyone") == [proc] and prot.hooks()["processors_for"] is not None


def test_load_antidistill_reads_the_proxy_and_its_calibration_text(tiny_model_dir, text_file, tokenizer):
    from distill.protection.antidistill import load_antidistill

    proc = load_antidistill(str(tiny_model_dir), tokenizer, lam=0.5, data=str(text_file), sequences=2, seq_len=32)
    assert proc.lam == 0.5 and proc.vocab == len(tokenizer)
    x = torch.tensor([[1, 504, 2873]])
    assert torch.isfinite(proc.delta(x)).all()

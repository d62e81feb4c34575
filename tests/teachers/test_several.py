"""Several teachers: the mixture's loss and gradient against a direct computation, routing by the data's `teacher`
field, the ensemble of two live teachers, the config rules, and an exact resume."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch

from distill.config import LossConfig, load_config
from distill.errors import DistillError
from distill.loss.divergences import mixture_log_probs
from distill.loss.fused import distill_loss
from distill.signals import DenseSignal, LiveTeacher, MixtureSignal, SparseSignal, scored_positions
from distill.training.callbacks import Callback
from distill.training.loop import train
from distill.training.setup import setup


def test_mixture_log_probs_is_the_weighted_sum_of_probabilities():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(3, 5, 11, generator=g, dtype=torch.float64), -1)  # [M, C, V]
    weights = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0], [0.1, 0.1, 0.8]],
                           dtype=torch.float64)
    direct = torch.einsum("cm,mcv->cv", weights, log_probs.exp()).log()
    assert torch.allclose(mixture_log_probs(log_probs, weights), direct, atol=1e-12)
    log_probs[1, 1] = -math.inf  # a member that has nothing where its weight is 0 changes nothing
    assert torch.allclose(mixture_log_probs(log_probs, weights)[1], direct[1], atol=1e-12)


def _direct_mixture(dense_logits, sparse_ids, sparse_lp, weights, V):
    """The target built by hand: softmax of the dense member; the sparse member's top-k exactly and its remaining
    mass spread uniformly over the other V - k ids; mixed with the per-position weights."""
    p_dense = torch.softmax(dense_logits, -1)
    top = sparse_lp.exp()
    p_sparse = ((1 - top.sum(-1, keepdim=True)) / (V - sparse_ids.shape[1])).expand(-1, V).clone()
    p_sparse.scatter_(1, sparse_ids, top)
    return weights[:, :1] * p_dense + weights[:, 1:] * p_sparse


@pytest.mark.parametrize("kind,backward,T", [("forward_kl", "fused", 1.0), ("forward_kl", "recompute", 2.0),
                                             ("reverse_kl", "fused", 1.0), ("jsd", "fused", 1.0)])
def test_ensemble_loss_and_gradient_match_a_direct_computation(kind, backward, T):
    g = torch.Generator().manual_seed(1)
    N, V, d, dt, k = 37, 50, 8, 6, 4
    t_hidden, t_head = torch.randn(N, dt, generator=g, dtype=torch.float64), torch.randn(V, dt, generator=g,
                                                                                         dtype=torch.float64)
    sparse_logits = torch.randn(N, V, generator=g, dtype=torch.float64) * 2
    sparse_lp, sparse_ids = torch.log_softmax(sparse_logits, -1).topk(k, dim=-1)
    route = torch.randint(-1, 2, (N,), generator=g)  # -1: ensemble, 0 / 1: routed to that teacher
    ensemble = torch.tensor([0.25, 0.75], dtype=torch.float64)
    weights = torch.where((route >= 0)[:, None], torch.nn.functional.one_hot(route.clamp_min(0), 2).double(),
                          ensemble.expand(N, 2))
    f32 = dict(dtype=torch.float32)  # what training runs in; the reference below is float64
    signal = MixtureSignal(members=[DenseSignal(hidden=t_hidden.to(**f32), head=t_head.to(**f32)),
                                    SparseSignal(ids=sparse_ids, logprobs=sparse_lp.to(**f32))],
                           weights=weights.to(**f32), vocab=V)
    hidden = torch.randn(N, d, generator=g, dtype=torch.float64, requires_grad=True)
    head = torch.randn(V, d, generator=g, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, V, (N,), generator=g)
    cfg = LossConfig(kind=kind, temperature=T, chunk_size=16, backward=backward, ce_weight=0.5)
    h32, w32 = hidden.detach().float().requires_grad_(), head.detach().float().requires_grad_()
    loss, _ = distill_loss(h32, w32, signal, targets, cfg)
    loss.backward()

    p = _direct_mixture(t_hidden @ t_head.T, sparse_ids, sparse_lp, weights, V)
    log_p = torch.log_softmax(p.log() / T, -1)  # the mixture, tempered as one distribution
    s_logits = hidden @ head.T
    log_q = torch.log_softmax(s_logits / T, -1)
    if kind == "forward_kl":
        kd = (log_p.exp() * (log_p - log_q)).sum(-1)
    elif kind == "reverse_kl":
        kd = (log_q.exp() * (log_q - log_p)).sum(-1)
    else:
        m = 0.5 * (log_p.exp() + log_q.exp())
        kd = 0.5 * (log_p.exp() * (log_p - m.log())).sum(-1) + 0.5 * (log_q.exp() * (log_q - m.log())).sum(-1)
    ce = torch.nn.functional.cross_entropy(s_logits, targets, reduction="none")
    direct = ((kd * T * T) + 0.5 * ce).sum() / N
    direct.backward()
    assert float(loss.detach()) == pytest.approx(float(direct.detach()), rel=1e-6)
    scale = max(float(hidden.grad.abs().max()), float(head.grad.abs().max()))
    assert torch.allclose(h32.grad.double(), hidden.grad, rtol=0, atol=1e-5 * scale)
    assert torch.allclose(w32.grad.double(), head.grad, rtol=0, atol=1e-5 * scale)


@pytest.fixture
def routed_data(tmp_path, text_file):
    """JSONL text rows: the first third name teacher 'a', the next 'b', the rest none (the ensemble)."""
    lines = [ln for ln in text_file.read_text().splitlines() if ln.strip()]
    third = len(lines) // 3
    path = tmp_path / "routed.jsonl"
    with open(path, "w") as f:
        for i, ln in enumerate(lines):
            row = {"text": ln, **({"teacher": "a"} if i < third else {"teacher": "b"} if i < 2 * third else {})}
            f.write(json.dumps(row) + "\n")
    return path


def _cfg(tmp_path, data, a, b, *extra):
    return load_config(None, [
        f"teachers=[{{name: a, model: '{a}'}}, {{name: b, model: '{b}', weight: 3}}]", f"data.path={data}",
        "data.seq_len=32", "data.heldout_fraction=0.2", "student.hidden_size=32", "student.num_layers=1",
        "student.num_heads=2", "train.steps=4", "train.batch_size=2", "train.eval_every=2", "train.eval_sequences=4",
        "train.checkpoint_every=2", "train.progress=false", "loss.chunk_size=16", f"output_dir={tmp_path / 's'}",
        *extra])


def test_each_example_goes_to_its_teacher_and_the_rest_to_the_ensemble(tmp_path, routed_data, tiny_teacher_dir,
                                                                       tiny_model_dir):
    from distill.data.corpus import collate

    run = setup(_cfg(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir))
    try:
        names = [ex.get("teacher") for ex in run.corpus.train]
        assert {"a", "b", None} <= set(names)
        pick = [names.index("a"), names.index("b"), names.index(None)]
        batch = collate([run.corpus.train[i] for i in pick], run.tokenizer.pad_token_id, pick)
        positions = scored_positions(batch)
        mix = run.source.signal(batch, positions)
        got = mix.logits(slice(None))  # the target's log-probabilities at every scored position
        alone = [LiveTeacher(src.model, len(run.tokenizer)).signal(batch, positions) for src in run.source.sources]
        log_p = [torch.log_softmax(s.logits(slice(None)), -1) for s in alone]
        row = positions // batch["input_ids"].shape[1]
        expect = torch.where((row == 0)[:, None], log_p[0], torch.where(
            (row == 1)[:, None], log_p[1], torch.logaddexp(log_p[0] + math.log(0.25), log_p[1] + math.log(0.75))))
        assert torch.allclose(got, expect, atol=1e-5)
    finally:
        run.close()


class Counting:
    """A member source that records the example ids of every batch it is asked about."""

    def __init__(self, src):
        self.src, self.asked = src, []

    def signal(self, batch, positions):
        self.asked.append(batch["example_ids"].tolist())
        return self.src.signal(batch, positions)


def test_each_teacher_runs_only_on_the_rows_that_need_it(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir):
    """Routing costs one teacher forward per row; every chunk of the target equals each row's own teacher (or the
    ensemble) computed on the whole batch."""
    from distill.data.corpus import collate

    run = setup(_cfg(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir))
    try:
        names = [ex.get("teacher") for ex in run.corpus.train]
        pick = [names.index("b"), names.index("a"), names.index(None), len(names) - 1 - names[::-1].index("a")]
        batch = collate([run.corpus.train[i] for i in pick], run.tokenizer.pad_token_id, pick)
        positions = scored_positions(batch)
        whole = [LiveTeacher(src.model, len(run.tokenizer)).signal(batch, positions) for src in run.source.sources]
        log_p = [torch.log_softmax(s.logits(slice(None)), -1) for s in whole]
        run.source.sources = [Counting(s) for s in run.source.sources]
        mix = run.source.signal(batch, positions)
        assert [c.asked for c in run.source.sources] == [[[pick[1], pick[2], pick[3]]], [[pick[0], pick[2]]]]
        row = positions // batch["input_ids"].shape[1]
        expect = torch.where((row == 0)[:, None], log_p[1], torch.where(
            (row == 2)[:, None], torch.logaddexp(log_p[0] + math.log(0.25), log_p[1] + math.log(0.75)), log_p[0]))
        N = len(positions)
        two_routed = slice(2, int((row <= 1).sum()) - 1)  # rows 0 and 1 only: routed to b, then to a
        assert set(row[two_routed].tolist()) == {0, 1}
        for rows in (slice(None), slice(0, 5), two_routed, slice(3, N - 2), slice(N - 7, N)):  # across row ends
            assert torch.allclose(mix.logits(rows), expect[rows], atol=1e-5)
            top2 = expect[rows].topk(2, dim=-1).values
            clear = top2[:, 0] - top2[:, 1] > 1e-3  # no near-tie the rounding could flip
            assert torch.equal(mix.top1(rows)[clear], expect[rows].argmax(-1)[clear]) and bool(clear.any())
    finally:
        run.close()


def test_share_pool_gives_each_group_its_share():
    from distill.teachers.several import share_pool

    routed = [0] * 10 + [1] * 3 + [-1] * 2  # 10 rows of a, 3 of b, 2 that name none
    pool = share_pool(routed, ["a", "b"], {"a": 1, "b": 1, "ensemble": 0.5})
    counts = Counter("a" if routed[e] == 0 else "b" if routed[e] == 1 else "ens" for e in pool)
    assert counts == {"a": 10, "b": 10, "ens": 5}  # a appears once; b and the ensemble rows grow to their shares
    assert set(pool) == set(range(15))  # every row at least once per epoch
    assert Counter(pool)[10] == 4 and Counter(pool)[12] == 3  # b's 3 rows: whole three times, then the first again
    assert share_pool(routed, ["a", "b"], None) is None
    with pytest.raises(DistillError, match="rows for 'ensemble'.*no share"):
        share_pool(routed, ["a", "b"], {"a": 1, "b": 1})
    with pytest.raises(DistillError, match="gives 'c' a share but no training row"):
        share_pool(routed, ["a", "b", "c"], {"a": 1, "b": 1, "c": 1, "ensemble": 1})


def test_teacher_shares_set_how_often_each_teachers_rows_are_drawn(tmp_path, routed_data, tiny_teacher_dir,
                                                                   tiny_model_dir):
    run = setup(_cfg(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir,
                     "data.teacher_shares={a: 1, b: 3, ensemble: 1}"))
    try:
        group = [ex.get("teacher", "ensemble") for ex in run.corpus.train]
        n = run.sampler.n_train
        drawn = Counter(group[r] for step in range(n // 2) for r in run.sampler.rows(step, 0))  # one epoch
        assert sum(drawn.values()) == n and set(drawn) == {"a", "b", "ensemble"}
        assert abs(drawn["b"] / n - 3 / 5) < 1 / n + 1e-9 and abs(drawn["a"] - drawn["ensemble"]) <= 1
    finally:
        run.close()


@pytest.mark.parametrize("extra,needle", [
    (["teachers=[{name: a}, {name: b}]", "data.teacher_shares={a: 1, c: 1}"], "names 'c'"),
    (["teachers=[{name: a}, {name: b}]", "data.teacher_shares={a: 1, b: 0}"], "positive number"),
    (["data.teacher_shares={a: 1}"], "set `teachers`"),
])
def test_teacher_shares_rules(extra, needle):
    with pytest.raises(DistillError, match=needle):
        load_config(None, extra)


class StopAfter(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, run, row):
        if row["step"] == self.step:
            raise KeyboardInterrupt  # after the step-2 checkpoint is on disk


def test_two_teachers_train_and_resume_exactly(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir):
    keys = ("loss", "kd", "grad_norm")
    full = train(_cfg(tmp_path / "full", routed_data, tiny_teacher_dir, tiny_model_dir)).history
    assert all(r["kd"] > 0 for r in full) and "heldout_kl" in full[-1]
    cfg = _cfg(tmp_path / "cut", routed_data, tiny_teacher_dir, tiny_model_dir)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAfter(3)])
    resumed = train(cfg, resume=True).history
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in full]
    lineage = json.loads((tmp_path / "cut" / "s" / "lineage.json").read_text())
    assert [t["name"] for t in lineage["extra"]["teachers"]] == ["a", "b"]
    assert all(t["verdict"]["decision"] == "allowed" for t in lineage["extra"]["teachers"])


def test_a_row_naming_an_unknown_teacher_is_refused(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir):
    routed_data.write_text(routed_data.read_text() + json.dumps({"text": "x " * 50, "teacher": "c"}) + "\n")
    with pytest.raises(DistillError, match="names the teacher 'c'.*a, b"):
        setup(_cfg(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir))


@pytest.mark.parametrize("extra,needle,where", [
    (["teachers=[{name: a}, {name: a}]"], "share the name 'a'", "teachers"),
    (["teachers=[{name: a}, {name: g, kind: api}]"], "api teacher cannot be one of several", "teachers[1]"),
    (["teachers=[{name: a}, {name: s, kind: store, store: S}]", "train.on_policy_fraction=0.5"],
     "every teacher to score", "teachers[1]"),
    (["teachers=[{name: a}, {name: b}]", "loss.hidden={}"], "would not say whose", "loss.hidden"),
    (["teachers=[{name: a}, {name: b}]", "train.parallel=fsdp"], "use train.parallel ddp", "train.parallel"),
])
def test_several_teacher_rules(extra, needle, where):
    with pytest.raises(DistillError, match=needle) as e:
        load_config(None, extra)
    assert e.value.where.startswith(where)


def test_teachers_and_a_different_teacher_are_refused():
    with pytest.raises(DistillError, match="not both"):
        load_config(None, ["teachers=[{name: a}, {name: b}]", "teacher.model=other"])
    assert load_config(None, ["teachers=[{name: a, model: x}, {name: b}]"]).teacher.model == "x"  # the primary


def test_the_memory_plan_names_and_counts_every_live_teacher(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir):
    from distill.training import memory

    two = memory.workload(_cfg(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir), 1, "cpu")
    one = memory.workload(load_config(None, [f"teacher.model={tiny_teacher_dir}", "data.seq_len=32",
                                             "student.hidden_size=32", "student.num_layers=1", "student.num_heads=2",
                                             "train.batch_size=2", "loss.chunk_size=16"]), 1, "cpu")
    [(name, shape)] = two.other_teachers
    p2, p1 = memory.plan(two), memory.plan(one)
    assert name == "b" and p2.parts["teacher b"] == shape.params * 4 > 0
    assert p2.parts["teacher weights"] == p1.parts["teacher weights"] and "teacher b" not in p1.parts
    assert p2.parts["teacher forward"] == max(p1.parts["teacher forward"],
                                              two.tokens * (5 * shape.hidden + 3 * shape.intermediate) * 4)


def test_two_teachers_under_two_process_ddp_match_one_process(tmp_path, routed_data, tiny_teacher_dir,
                                                               tiny_model_dir, train_cli):
    """Each rank routes its own rows (example ids index the corpus on every rank alike)."""
    import yaml
    from safetensors.torch import load_file

    outs = {}
    for nproc in (1, 2):
        out = tmp_path / f"p{nproc}"
        cfg = {"teachers": [{"name": "a", "model": str(tiny_teacher_dir)},
                            {"name": "b", "model": str(tiny_model_dir), "weight": 3.0}],
               "student": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
               "data": {"path": str(routed_data), "seq_len": 32, "heldout_fraction": 0.2},
               "loss": {"kind": "forward_kl", "chunk_size": 16},
               "train": {"steps": 3, "batch_size": 4, "eval_every": 100, "eval_sequences": 2, "checkpoint_every": 100,
                         "progress": False, "warmup_steps": 1, "threads": 1},
               "output_dir": str(out), "output": {"dtype": "fp32"}}  # compared unrounded
        (tmp_path / f"p{nproc}.yaml").write_text(yaml.safe_dump(cfg))
        train_cli(tmp_path / f"p{nproc}.yaml", nproc)
        outs[nproc] = load_file(str(out / "model.safetensors"))
    for k in outs[1]:
        torch.testing.assert_close(outs[1][k], outs[2][k], rtol=1e-4, atol=2e-5, msg=k)


def test_on_policy_samples_are_scored_by_their_rows_teacher(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir):
    rows = train(_cfg(tmp_path, routed_data, tiny_teacher_dir, tiny_model_dir, "train.steps=2",
                      "train.on_policy_fraction=1.0", "train.sample_max_new_tokens=6")).history
    assert all(r["kd"] > 0 and 0 < r["sampling_share"] < 1 for r in rows)

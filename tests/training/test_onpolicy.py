"""On-policy (GKD-style) distillation: the λ share, the sampled batch layout, and a training run."""

from __future__ import annotations

import torch

from distill.config import load_config
from distill.models.students import fresh_llama
from distill.training.loop import train
from distill.training.onpolicy import is_on_policy, maybe_on_policy


def test_on_policy_share_follows_lambda():
    draws = [is_on_policy(0, step, 0, 0.3) for step in range(2000)]
    share = sum(draws) / len(draws)
    assert abs(share - 0.3) < 5 * (0.3 * 0.7 / 2000) ** 0.5  # 5 sd: a reseeding flips it on < 1e-6 of seeds
    assert draws == [is_on_policy(0, step, 0, 0.3) for step in range(2000)], "must be deterministic"
    assert not any(is_on_policy(0, s, 0, 0.0) for s in range(100))


def test_sampled_batch_scores_only_the_sampled_tokens(tokenizer):
    student = fresh_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2)
    cfg = load_config(None, ["train.on_policy_fraction=1.0", "train.sample_max_new_tokens=5"])
    ids = torch.randint(10, 1000, (2, 12), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "loss_mask": torch.ones_like(ids).bool(),
             "targets": ids, "example_ids": torch.tensor([0, 1])}
    out = maybe_on_policy(batch, student, cfg, step=0, micro=0, tokenizer=tokenizer)
    assert out["input_ids"].shape == (2, 12)
    assert torch.equal(out["input_ids"][:, :7], ids[:, :7])  # the prompt is the data's first T − new tokens
    assert out["loss_mask"].sum(1).tolist() == [5, 5]
    assert out["loss_mask"][:, 6:11].all() and not out["loss_mask"][:, :6].any()
    assert torch.equal(out["targets"][:, 6:11], out["input_ids"][:, 7:12])


def test_on_policy_training_run_reports_sampling_share(tmp_path, tiny_teacher_dir, text_file):
    cfg = load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32",
        "student.hidden_size=32", "student.num_layers=2", "student.num_heads=2", "train.steps=3",
        "train.batch_size=2", "train.progress=false", "train.eval_every=3", "train.eval_sequences=2",
        "train.on_policy_fraction=1.0", "train.sample_max_new_tokens=8", "loss.kind=reverse_kl",
        "loss.chunk_size=32", f"output_dir={tmp_path / 'student'}"])
    rows = train(cfg).history
    assert all(r["kd"] > 0 and 0 < r["sampling_share"] < 1 for r in rows)


def test_every_scored_token_of_a_step_weighs_the_same(tmp_path, tiny_teacher_dir, text_file, monkeypatch):
    """The step's normalizer is the number of tokens the step actually scores: an on-policy micro-batch
    (B × new sampled tokens) counts its own tokens, not those of the data rows it replaced."""
    from distill.training.module import StudentLoss

    calls: list[tuple[float, int]] = []
    real = StudentLoss.forward

    def spy(self, batch, positions, signal, normalizer):
        calls.append((normalizer, int(positions.numel())))
        return real(self, batch, positions, signal, normalizer)

    monkeypatch.setattr(StudentLoss, "forward", spy)
    steps, new = 4, 6
    cfg = load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32",
        "student.hidden_size=32", "student.num_layers=1", "student.num_heads=2", f"train.steps={steps}",
        "train.batch_size=2", "train.grad_accum=2", "train.progress=false", "train.eval_every=100",
        "train.eval_sequences=2", "train.on_policy_fraction=0.5", f"train.sample_max_new_tokens={new}",
        "loss.chunk_size=32", f"output_dir={tmp_path / 'student'}"])
    plan = [[is_on_policy(cfg.train.seed, s, m, 0.5) for m in range(2)] for s in range(steps)]
    assert any(a != b for a, b in plan), "the fixed seed must give a step that mixes data and samples"
    train(cfg)
    for s in range(steps):
        (norm_a, n_a), (norm_b, n_b) = calls[2 * s], calls[2 * s + 1]
        assert norm_a == norm_b == n_a + n_b
        for on, n in zip(plan[s], (n_a, n_b), strict=True):
            assert n == (2 * new if on else 2 * 31)

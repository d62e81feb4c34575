"""Structured pruning guided by importance (`student.init: prune`, `distill prune`) on tiny random Llamas."""

from __future__ import annotations

import json

import pytest
import torch
from test_fileio import mode, umask_modes
from transformers import AutoModelForCausalLM, LlamaConfig

from distill.config import PruneConfig, load_config
from distill.errors import DistillError
from distill.models.prune import (
    measure_importance,
    prune_model,
    prune_teacher,
    pruned_config,
    target_dims,
)
from distill.models.students import fresh_llama, param_count


@pytest.fixture(scope="module")
def gqa_teacher(tokenizer):
    """hidden 48, 3 layers, 6 query heads in 2 key/value groups of 3 (head_dim 8), MLP 96."""
    return fresh_llama(tokenizer, hidden_size=48, num_layers=3, num_heads=6, num_kv_heads=2, intermediate_size=96,
                       seed=3).eval()


@pytest.fixture(scope="module")
def calib():
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(0, 2000, (24,), generator=g), "loss_mask": torch.ones(24, dtype=torch.bool)}
            for _ in range(10)]


X = torch.randint(0, 2000, (2, 16), generator=torch.Generator().manual_seed(1))


def _prune(model, calib, tokenizer, **settings):
    return prune_teacher(model, PruneConfig(**settings), calib, tokenizer.pad_token_id)


@torch.no_grad()
def _logits(model):
    return model(X).logits


def test_pruned_model_runs_and_round_trips(tmp_path, gqa_teacher, calib, tokenizer):
    res = _prune(gqa_teacher, calib, tokenizer, layers=2, hidden_size=32, intermediate_size=40, num_heads=4)
    res.student.eval()
    out = _logits(res.student)
    assert out.shape == (2, 16, len(tokenizer)) and torch.isfinite(out).all()
    res.student.save_pretrained(tmp_path, safe_serialization=True)
    back = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    c = back.config
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_key_value_heads,
            c.head_dim) == (2, 32, 40, 4, 2, 8)
    assert torch.equal(_logits(back), out)
    assert back.lm_head.weight is back.model.embed_tokens.weight  # tied embeddings stay tied
    assert res.student_params == param_count(back) < res.teacher_params


def test_nothing_pruned_reproduces_the_teacher_exactly(gqa_teacher, calib, tokenizer):
    res = _prune(gqa_teacher, calib, tokenizer, layers=3, hidden_size=48, intermediate_size=96, num_heads=6)
    assert torch.equal(_logits(res.student.eval()), _logits(gqa_teacher))


def test_importance_is_deterministic(gqa_teacher, calib, tokenizer):
    a = measure_importance(gqa_teacher, calib, tokenizer.pad_token_id, n=6)
    b = measure_importance(gqa_teacher, calib, tokenizer.pad_token_id, n=6)
    assert a.layers == b.layers and a.tokens == b.tokens == 6 * 24 and a.sequences == 6
    assert torch.equal(a.hidden, b.hidden)
    assert all(torch.equal(x, y) for x, y in zip(a.mlp + a.heads, b.mlp + b.heads, strict=True))


def test_identity_layer_has_the_lowest_block_influence_and_is_dropped(gqa_teacher, calib, tokenizer):
    import copy

    teacher = copy.deepcopy(gqa_teacher)
    with torch.no_grad():  # layer 1 adds nothing to the residual stream: its output is its input
        teacher.model.layers[1].self_attn.o_proj.weight.zero_()
        teacher.model.layers[1].mlp.down_proj.weight.zero_()
    res = _prune(teacher, calib, tokenizer, layers=2)
    bi = res.importance.layers
    assert bi[1] < 1e-6 < min(bi[0], bi[2])
    assert res.selection.layers == [0, 2] and res.report["layers"]["kept"] == [0, 2]
    torch.testing.assert_close(_logits(res.student.eval()), _logits(teacher), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("heads, kv", [(4, 2), (3, 1)])  # 2 per group in both groups; 1 whole group of 3
def test_heads_and_mlp_channels_respect_gqa_and_keep_the_right_weights(gqa_teacher, calib, tokenizer, heads, kv):
    """Dropping heads and MLP channels equals zeroing their output columns in the teacher (hidden size kept)."""
    import copy

    res = _prune(gqa_teacher, calib, tokenizer, num_heads=heads, intermediate_size=50)
    c = res.student.config
    assert (c.num_attention_heads, c.num_key_value_heads) == (heads, kv)
    assert c.num_attention_heads % c.num_key_value_heads == 0
    masked = copy.deepcopy(gqa_teacher)
    with torch.no_grad():
        for j, layer in enumerate(masked.model.layers):
            drop_heads = sorted(set(range(6)) - set(res.selection.heads[j].tolist()))
            for h in drop_heads:
                layer.self_attn.o_proj.weight[:, h * 8:(h + 1) * 8] = 0
            drop = torch.ones(96, dtype=torch.bool)
            drop[res.selection.mlp[j]] = False
            layer.mlp.down_proj.weight[:, drop] = 0
    # each kept query head still reads its own key/value group
    for q, g in zip(res.selection.heads, res.selection.kv_heads, strict=True):
        assert set((q // 3).tolist()) == set(g.tolist())
    torch.testing.assert_close(_logits(res.student.eval()), _logits(masked), atol=1e-5, rtol=1e-5)


def test_target_params_is_solved_within_one_percent(gqa_teacher, calib, tokenizer):
    total = param_count(gqa_teacher)
    for target in (total - 30_000, 0.99):
        res = _prune(gqa_teacher, calib, tokenizer, target_params=target)
        want = target if target > 1 else target * total
        assert abs(res.student_params - want) / want < 0.01, (res.dims, res.student_params, want)
        assert res.student_params < total
    held = target_dims(PruneConfig(target_params=total - 30_000, layers=3), gqa_teacher.config)
    assert held.layers == 3 and held.intermediate_size < 96
    # a larger teacher: depth and width shrink together (SmolLM2-135M's shape, half its parameters)
    smol = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    d = target_dims(PruneConfig(target_params=0.5), smol)
    got = _count(pruned_config(smol, d))
    assert 1 <= d.layers < 30 and d.intermediate_size < 1536 and d.intermediate_size % 8 == 0
    assert abs(got - 0.5 * _count(smol)) / (0.5 * _count(smol)) < 0.01


def _count(config) -> int:
    from distill.models.prune import _param_count

    return _param_count(config)


@pytest.mark.parametrize("settings, match", [
    ({"layers": 4}, "between 1 and the teacher's 3"),
    ({"hidden_size": 64}, "between 1 and the teacher's 48"),
    ({"num_heads": 5}, "neither divisible"),
    ({"target_params": 0.5}, "below what one layer"),
    ({"target_params": 10**9}, "more than the teacher"),
    ({"target_params": 0.9, "layers": 2, "intermediate_size": 32}, "nothing to solve"),
])
def test_bad_settings_are_one_paragraph_errors(gqa_teacher, settings, match):
    with pytest.raises(DistillError, match=match) as e:
        target_dims(PruneConfig(**settings), gqa_teacher.config)
    assert "\n" not in str(e.value) and "What to do:" in str(e.value)


def test_other_architectures_and_empty_settings_are_refused(tokenizer):
    from transformers import GPT2Config

    with pytest.raises(DistillError, match="Llama-style"):
        target_dims(PruneConfig(layers=1), GPT2Config(n_layer=2, n_embd=16, n_head=2))
    with pytest.raises(DistillError, match="needs at least one"):
        load_config(None, ["student.init=prune", "student.prune={calibration_sequences: 8}"])
    with pytest.raises(DistillError, match="needs student.prune"):
        load_config(None, ["student.init=prune"])


def test_prune_model_slices_a_given_importance(gqa_teacher, calib, tokenizer):
    """With hand-made scores, exactly the highest-scoring channels are kept."""
    imp = measure_importance(gqa_teacher, calib, tokenizer.pad_token_id, n=2)
    imp.hidden = torch.arange(48, dtype=torch.float64)  # the last channels matter most
    dims = target_dims(PruneConfig(hidden_size=16), gqa_teacher.config)
    student, sel = prune_model(gqa_teacher, dims, imp)
    assert sel.hidden.tolist() == list(range(32, 48))
    assert torch.equal(student.model.embed_tokens.weight, gqa_teacher.model.embed_tokens.weight[:, 32:])
    assert torch.equal(student.model.layers[0].mlp.down_proj.weight,
                       gqa_teacher.model.layers[0].mlp.down_proj.weight[32:])


def test_train_with_prune_init_and_the_memory_plan(tmp_path, tiny_teacher_dir, text_file):
    from distill.training import memory
    from distill.training.loop import train

    cfg = load_config(None, [
        f"teacher.model={tiny_teacher_dir}", f"data.path={text_file}", "data.seq_len=32", "student.init=prune",
        "student.prune={layers: 2, hidden_size: 32, intermediate_size: 64, calibration_sequences: 8}",
        "train.steps=2", "train.batch_size=2", "train.eval_every=2", "train.eval_sequences=2",
        "train.checkpoint_every=2", "train.progress=false", "train.warmup_steps=0", "loss.chunk_size=16",
        f"output_dir={tmp_path / 'student'}"])
    planned = memory.workload(cfg, 1, "cpu").student
    result = train(cfg)
    student = AutoModelForCausalLM.from_pretrained(result.output_dir)
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size) == (2, 32, 64)
    assert planned.params == param_count(student) and planned.layers == 2 and planned.hidden == 32
    assert len(result.history) == 2 and all(torch.isfinite(torch.tensor(r["kd"])) for r in result.history)


def test_prune_cli_writes_model_and_importance(tmp_path, tiny_teacher_dir, text_file, capsys):
    from distill.cli import main

    out = tmp_path / "pruned"
    argv = ["prune", "--teacher", str(tiny_teacher_dir), "--data", str(text_file), "--out", str(out), "--layers", "2",
            "--intermediate-size", "96", "--calibration-sequences", "4", "--seq-len", "32"]
    assert main(argv) == 0
    assert "2 layers" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "importance.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "importance.json").read_text())
    assert len(report["layers"]["block_influence"]) == 3 and len(report["layers"]["kept"]) == 2
    assert report["calibration"]["sequences"] == 4 and report["dims"]["intermediate_size"] == 96
    assert report["mlp"][0]["kept"] == 96 and len(report["heads"]) == 2
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2 and model.num_parameters() == report["params"]["student"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary directory left behind"
    assert (mode(out), mode(out / "model.safetensors")) == umask_modes()  # not mkdtemp's 0700
    assert main(argv) == 2  # an existing output is not replaced without --overwrite
    assert main([*argv, "--overwrite", "--layers", "1"]) == 0
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 1


@pytest.mark.parametrize("kind", ["mistral", "qwen2", "qwen3"])
def test_other_llama_style_architectures(kind, calib, tokenizer):
    """Mistral, Qwen2 (q/k/v biases) and Qwen3 (per-head q/k norms): unpruned = the teacher, pruned runs."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(kind, vocab_size=2048, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    torch.manual_seed(0)
    teacher = AutoModelForCausalLM.from_config(config).eval()
    same = _prune(teacher, calib, tokenizer, layers=2)
    assert torch.equal(_logits(same.student.eval()), _logits(teacher))
    small = _prune(teacher, calib, tokenizer, layers=1, hidden_size=16, intermediate_size=24, num_heads=2)
    assert torch.isfinite(_logits(small.student.eval())).all()

"""`distill eval`: the report's figures against a direct computation, and several held-out sets side by side."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.cli import main
from distill.config import DataConfig
from distill.data.corpus import load_corpus
from distill.evaluation.report import evaluate
from distill.evaluation.settings import EvalSettings


@pytest.fixture(scope="module")
def other_domain(tmp_path_factory):
    """A second held-out set unlike the first (prose about machines, not verse)."""
    path = tmp_path_factory.mktemp("other") / "other.txt"
    path.write_text(" ".join(f"The machine number {i} reads the manual, turns the valve and logs the pressure."
                             for i in range(400)))
    return path


def _reference(teacher_dir, student_dir, data, tokenizer, seq_len: int, sequences: int) -> dict:
    t = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval()
    s = AutoModelForCausalLM.from_pretrained(student_dir, dtype=torch.float32).eval()
    corpus = load_corpus(DataConfig(path=str(data), seq_len=seq_len), tokenizer)
    kl = t_nll = s_nll = agree = n = 0.0
    for ex in corpus.heldout[:sequences]:
        with torch.no_grad():
            lt = torch.log_softmax(t(ex["input_ids"][None]).logits[0].double(), -1)[ex["loss_mask"]]
            ls = torch.log_softmax(s(ex["input_ids"][None]).logits[0].double(), -1)[ex["loss_mask"]]
        tgt = ex["input_ids"][1:][ex["loss_mask"][:-1]]
        kl += float((lt.exp() * (lt - ls)).sum())
        t_nll -= float(lt.gather(1, tgt[:, None]).sum())
        s_nll -= float(ls.gather(1, tgt[:, None]).sum())
        agree += float((lt.argmax(-1) == ls.argmax(-1)).sum())
        n += len(tgt)
    return {"kl": kl / n, "t_ppl": math.exp(t_nll / n), "s_ppl": math.exp(s_nll / n), "top1": agree / n, "n": n}


def test_each_set_matches_a_direct_computation(tiny_teacher_dir, tiny_model_dir, text_file, other_domain, tokenizer):
    rep = evaluate(EvalSettings(teacher=str(tiny_teacher_dir), student=str(tiny_model_dir),
                                data=[str(text_file), str(other_domain)], seq_len=32, sequences=4, gen_prompts=1))
    assert len(rep["sets"]) == 2 and rep["sets"][0]["data"] != rep["sets"][1]["data"]
    for got, data in zip(rep["sets"], (text_file, other_domain), strict=True):
        ref = _reference(tiny_teacher_dir, tiny_model_dir, data, tokenizer, 32, 4)
        assert got["tokens_scored"] == ref["n"]
        assert got["kl_teacher_student"] == pytest.approx(ref["kl"], rel=1e-4)
        assert got["teacher_ppl"] == pytest.approx(ref["t_ppl"], rel=1e-4)
        assert got["student_ppl"] == pytest.approx(ref["s_ppl"], rel=1e-4)
        assert got["top1_agreement"] == pytest.approx(ref["top1"], abs=2 / ref["n"])  # float ties at most
        assert got["ppl_ratio"] == pytest.approx(got["student_ppl"] / got["teacher_ppl"])
    first = rep["sets"][0]  # the top-level figures are the first set's
    assert rep["student"]["kl_teacher_student"] == first["kl_teacher_student"]
    assert rep["retention"]["ppl_ratio"] == first["ppl_ratio"] and rep["tokens_scored"] == first["tokens_scored"]


def test_cli_prints_one_block_per_set(tiny_teacher_dir, tiny_model_dir, text_file, other_domain, capsys):
    assert main(["eval", "--teacher", str(tiny_teacher_dir), "--student", str(tiny_model_dir), "--data",
                 str(text_file), "--data", str(other_domain), "--seq-len", "32", "--sequences", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("Data: ") == 2 and out.count("held-out perplexity") == 2
    assert "greedy tokens/s" in out.split("Data: ")[1] and "greedy tokens/s" not in out.split("Data: ")[2]


def test_size_lines_compare_like_with_like_and_draft_block(tiny_teacher_dir, tiny_model_dir, text_file, capsys):
    import json

    assert main(["eval", "--teacher", str(tiny_teacher_dir), "--student", str(tiny_model_dir), "--data",
                 str(text_file), "--seq-len", "32", "--sequences", "2", "--draft", "--draft-prompts", "1",
                 "--draft-new-tokens", "6", "--draft-tokens", "2", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    T, S = rep["teacher"], rep["student"]
    assert S["bf16_bytes"] == 2 * S["parameters"] and T["bf16_bytes"] == 2 * T["parameters"]
    assert rep["retention"]["size"] == pytest.approx(S["parameters"] / T["parameters"])
    assert S["disk_format"] == T["disk_format"] == "safetensors f32"
    assert rep["retention"]["size_on_disk"] == pytest.approx(S["size_bytes"] / T["size_bytes"])
    assert [b["decoding"] for b in rep["draft"]] == ["greedy", "sampled (T=1)"]
    for b in rep["draft"]:
        assert b["new_tokens"] == 6 and b["accepted"] == 6 - b["rounds"] and b["draft_tokens"] == 2
    assert rep["draft"][0]["identical_to_teacher"] == 1  # greedy assisted decoding is lossless
    main(["eval", "--teacher", str(tiny_teacher_dir), "--student", str(tiny_model_dir), "--data", str(text_file),
          "--seq-len", "32", "--sequences", "2", "--draft", "--draft-prompts", "1", "--draft-new-tokens", "4"])
    out = capsys.readouterr().out
    assert "size at bf16" in out and "MiB safetensors f32" in out and "Student as draft model" in out


def test_a_bf16_student_is_scored_as_its_saved_weights_and_its_file_is_not_compared_with_an_f32_one(
        tmp_path, tiny_teacher_dir, tiny_model_dir, text_file):
    """`distill train` saves bf16 by default: the report scores those weights (in fp32), exactly as the same values
    stored in f32, names the format and gives no file ratio against the f32 teacher (only like with like)."""
    from distill.models.loading import load_tokenizer
    from distill.training.finalize import save_weights

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())  # values every bf16 file can hold exactly
    reps = {}
    for dtype in ("fp32", "bf16"):
        out = tmp_path / dtype
        save_weights(model, out, dtype)
        load_tokenizer(str(tiny_model_dir)).save_pretrained(out)
        reps[dtype] = evaluate(EvalSettings(teacher=str(tiny_teacher_dir), student=str(out), data=str(text_file),
                                            seq_len=32, sequences=2, gen_prompts=1))
    f32, bf16 = reps["fp32"], reps["bf16"]
    for key in ("kl_teacher_student", "top1_agreement", "heldout_ppl", "parameters", "bf16_bytes"):
        assert bf16.student[key] == f32.student[key], key
    assert (f32.student["disk_format"], bf16.student["disk_format"]) == ("safetensors f32", "safetensors bf16")
    assert bf16.student["size_bytes"] < 0.51 * f32.student["size_bytes"]
    assert bf16.teacher["disk_format"] == "safetensors f32"
    assert bf16.retention["size_on_disk"] is None and f32.retention["size_on_disk"] is not None
    assert bf16.retention["size"] == f32.retention["size"]  # both at 2 bytes per parameter
    assert "MiB safetensors bf16" in bf16.text()

"""The GGUF writer on the other architectures Distill builds students of: Qwen2 (attention biases, no Q/K
permutation) and Qwen3 (per-head Q/K norms, head_dim written as key_length), written in f32 and read back by
transformers' GGUF loader with exactly the source's logits."""

from __future__ import annotations

import pytest
import torch

from distill.deploy.check import read_back
from distill.deploy.gguf_writer import write_gguf


def _configs(vocab: int) -> dict:
    from transformers import Qwen2Config, Qwen3Config

    shape = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, bos_token_id=1, eos_token_id=2)
    # transformers' qwen3 GGUF reader takes head_dim as 128 (the Qwen3 family's): the writer records it as
    # key_length, which llama.cpp reads
    return {"qwen2": Qwen2Config(**shape, tie_word_embeddings=True),
            "qwen3": Qwen3Config(**shape, head_dim=128, tie_word_embeddings=False)}


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_f32_gguf_of_a_qwen_student_reads_back_exactly(arch, tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_configs(len(tokenizer))[arch]).eval()
    with torch.no_grad():  # biases and norms away from their 0 / 1 initialization, so a lost one shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(1.0 if "norm" in name else 0.0, 0.3)
    path = tmp_path / f"{arch}.gguf"
    write_gguf(model, tokenizer, path, "f32", f"tiny {arch}")
    back = read_back(path, "gguf")
    assert type(back).__name__ == type(model).__name__
    ids = torch.tensor([tokenizer.encode("Shall I compare thee to a summer's day?")])
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)

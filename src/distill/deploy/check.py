"""Reading an export back with an independent reader and measuring how far it is from the student it came from.

`read_back` loads the written file the way a user's stack would: a GGUF file through transformers' own GGUF loader
(its dequantizer and llama.cpp-name mapping, not Distill's writer), a Hugging Face directory through
`from_pretrained` in its stored dtype. `compare` scores both models on the same held-out sequences:
KL(student ‖ exported) per token and top-1 agreement. `llama_cpp_compare` does the same with llama.cpp itself where
llama-cpp-python is installed (it returns None otherwise).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from distill.errors import DistillError

# The refusal threshold on KL(student ‖ export) per held-out token (nats), by weight type. f16, bf16 and q8_0 sit
# about 3x above what they cost the pruned SmolLM2 student measured in docs/benchmarks.md ("Exports"), where a
# broken export (Q/K rows in the wrong order) costs far more; q5/q4 mark where a 4/5-bit file stops agreeing with
# its student often enough to stand in for it (small models like that one exceed it: make K-quants with
# llama.cpp instead). `--max-kl` overrides it.
DEFAULT_MAX_KL = {"f32": 1e-4, "f16": 2e-3, "bf16": 3e-2, "q8_0": 5e-2, "q5_1": 0.1, "q5_0": 0.1, "q4_1": 0.2,
                  "q4_0": 0.2}


def read_back(path: Path, fmt: str, gguf_name: str | None = None) -> torch.nn.Module:
    """The export as its runtime-independent reader sees it: transformers' GGUF loader (dequantized to fp32), or
    `from_pretrained` of the directory in the dtype it was saved in."""
    from transformers import AutoModelForCausalLM

    try:
        if fmt == "gguf":
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=gguf_name or path.name,
                                                         dtype=torch.float32)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype="auto", use_safetensors=True)
    except Exception as e:  # noqa: BLE001 - any failure to read back means the export is unusable
        raise DistillError(f"the export could not be read back by transformers: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:300] if str(e) else ''}", where=str(path), code=4,
                           fix="report this as a bug in Distill's exporter, with the student's config.json") from e
    return model.eval()


def _log_probs(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """In float64: the KL of a float rounding is far below fp32's resolution of a sum over the vocabulary."""
    return model(input_ids=ids, attention_mask=mask).logits.double().log_softmax(-1)


@torch.no_grad()
def compare(student: torch.nn.Module, exported: torch.nn.Module, seqs: list[list[int]], pad_id: int,
            batch_size: int = 2) -> dict:
    """KL(student ‖ exported) per token, its largest single-token value, and top-1 agreement over every position of
    `seqs` (lists of token ids). Both models see the same batches; logits are compared in fp32."""
    kl_sum, kl_max, agree, tokens = 0.0, 0.0, 0, 0
    for start in range(0, len(seqs), batch_size):
        rows = seqs[start:start + batch_size]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        p, q = _log_probs(student, ids, mask), _log_probs(exported, ids, mask)
        keep = mask.bool()
        kl = (p.exp() * (p - q)).sum(-1)[keep]  # [N] per-token KL(student ‖ exported)
        kl_sum += float(kl.sum())
        kl_max = max(kl_max, float(kl.max()))
        agree += int((p.argmax(-1) == q.argmax(-1))[keep].sum())
        tokens += int(keep.sum())
    n = max(tokens, 1)
    return {"tokens": tokens, "kl_per_token": max(kl_sum / n, 0.0), "kl_max_token": max(kl_max, 0.0),
            "top1_agreement": agree / n}


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


@torch.no_grad()
def llama_cpp_compare(path: Path, student: torch.nn.Module, seqs: list[list[int]]) -> dict | None:
    """The same figures with llama.cpp computing the export's logits (its own kernels on the quantized weights);
    None where llama-cpp-python is not installed."""
    if not llama_cpp_available():
        return None
    import numpy as np
    from llama_cpp import Llama

    width = max(len(r) for r in seqs)
    llm = Llama(model_path=str(path), n_ctx=max(width, 64), logits_all=True, verbose=False)
    kl_sum, agree, tokens = 0.0, 0, 0
    for r in seqs:
        llm.reset()
        llm.eval(r)
        q = torch.from_numpy(np.array(llm.scores[:len(r)], dtype=np.float64)).log_softmax(-1)
        p = _log_probs(student, torch.tensor([r]), torch.ones(1, len(r), dtype=torch.long))[0]
        kl_sum += float((p.exp() * (p - q[:, :p.shape[-1]])).sum(-1).sum())
        agree += int((p.argmax(-1) == q.argmax(-1)).sum())
        tokens += len(r)
    return {"tokens": tokens, "kl_per_token": max(kl_sum / max(tokens, 1), 0.0),
            "top1_agreement": agree / max(tokens, 1)}


def check_tokenizer(path: Path, gguf_name: str, tokenizer, texts: list[str]) -> dict:
    """The tokenizer transformers rebuilds from the GGUF file: does it give the student's ids on `texts`, and does
    it carry the chat template?"""
    from transformers import AutoTokenizer

    try:
        rebuilt = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=gguf_name)
    except Exception as e:  # noqa: BLE001
        raise DistillError(f"transformers could not rebuild the tokenizer from the export: {type(e).__name__}",
                           where=str(path), code=4, fix="report this as a bug in Distill's exporter") from e
    same = sum(rebuilt.encode(t, add_special_tokens=False) == tokenizer.encode(t, add_special_tokens=False)
               for t in texts)
    return {"texts": len(texts), "identical_ids": same,
            "chat_template": bool(getattr(rebuilt, "chat_template", None))
            and rebuilt.chat_template == getattr(tokenizer, "chat_template", None)}

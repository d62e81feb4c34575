"""A transformers causal LM as one GGUF file that llama.cpp, Ollama and LM Studio run with nothing else.

The tensor names, metadata keys and the Q/K row order are llama.cpp's (`convert_hf_to_gguf.py`): token_embd,
blk.N.attn_{norm,q,k,v,output}, blk.N.ffn_{norm,gate,up,down}, output_norm, output (absent when the head is tied to
the embeddings); Llama's Q and K rows are permuted to llama.cpp's rotary layout (the inverse of what transformers'
GGUF loader undoes). The tokenizer (BPE tokens, merges, token types, special ids, llama.cpp's pre-tokenizer name) and
the chat template are embedded. Weights are quantized with the `gguf` package's own quantizers, so only the types it
can write are offered (`QUANT_TYPES`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distill.errors import DistillError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchSpec:
    """How one transformers architecture maps onto llama.cpp's."""

    gguf_arch: str  # llama.cpp's architecture name
    permute_qk: bool  # Llama's rotary layout: Q and K rows reordered for llama.cpp
    qk_norm: bool = False  # Qwen3: RMSNorm on each head's queries and keys


ARCHITECTURES = {
    "LlamaForCausalLM": ArchSpec("llama", permute_qk=True),
    "MistralForCausalLM": ArchSpec("llama", permute_qk=True),  # llama.cpp runs Mistral as llama
    "Qwen2ForCausalLM": ArchSpec("qwen2", permute_qk=False),
    "Qwen3ForCausalLM": ArchSpec("qwen3", permute_qk=False, qk_norm=True),
}

# Weight types a GGUF export can be written in: the float types, and the block quantizations the installed `gguf`
# package can quantize (K-quants such as q4_k_m and the i-quants it can only read; llama.cpp's `llama-quantize`
# makes those from the f16 export).
FLOAT_TYPES = ("f32", "f16", "bf16")
QUANT_TYPES = ("q8_0", "q5_1", "q5_0", "q4_1", "q4_0")

# llama.cpp's `general.file_type` (LlamaFileType) for each choice
_FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "bf16": 32}

# llama.cpp identifies a BPE pre-tokenizer by the sha256 of the ids its tokenizer gives this text
# (`get_vocab_base_pre` in convert_hf_to_gguf.py); the names below are the ones its runtime knows.
_PRE_CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\U0001f680 (normal) \U0001f636\u200d\U0001f32b\ufe0f (multiple emojis "
    "concatenated) \u2705 \U0001f999\U0001f999 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "\u1780\u17b6\u1793\u17cb\u178f\u17c2\u1796\u17b7\u179f\u17c1\u179f\u17a2\u17b6\u1785\U0001f601 "
    "?\u6211\u60f3\u5728apple\u5de5\u4f5c1314151\u5929\uff5e ------======= \u043d\u0435\u0449\u043e \u043d\u0430 "
    "\u0411\u044a\u043b\u0433\u0430\u0440\u0441\u043a\u0438 ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told "
    "he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL")
_PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM / SmolLM2
}

# GGUF token types (llama.cpp's llama_token_type)
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5


def arch_spec(config, where: str, class_name: str | None = None) -> ArchSpec:
    """The mapping for a model configuration's architecture (or, when the configuration names none, as for a
    model built in memory, its class `class_name`); an architecture without one is refused."""
    names = list(getattr(config, "architectures", None) or [class_name or type(config).__name__])
    for name in names:
        if name in ARCHITECTURES:
            return ARCHITECTURES[name]
    raise DistillError(f"GGUF export does not know the {names[0]} architecture", where=where,
                       fix=f"export it with --format hf (safetensors, any architecture) and convert that with "
                           f"llama.cpp's convert_hf_to_gguf.py; GGUF export covers {', '.join(ARCHITECTURES)}")


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    kind = params.get("rope_type", "default")
    if kind != "default":
        raise DistillError(f"GGUF export does not write rotary scaling of type {kind!r}", where="the student config",
                           fix="export it with --format hf and convert that with llama.cpp's convert_hf_to_gguf.py")
    theta = params.get("rope_theta", getattr(config, "rope_theta", None))
    return float(theta if theta is not None else 10000.0)


def _permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Reorder a Q or K projection's rows from transformers' rotary layout (halves) to llama.cpp's (pairs)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(model: torch.nn.Module, spec: ArchSpec) -> list[tuple[str, torch.Tensor]]:
    """(llama.cpp name, fp32 tensor) for every weight of `model`, in llama.cpp's order."""
    cfg = model.config
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    heads, kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
    out = [("token_embd.weight", sd["model.embed_tokens.weight"])]
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
    for i in range(cfg.num_hidden_layers):
        for hf, name in names.items():
            for suffix in ("weight", "bias"):
                t = sd.pop(f"model.layers.{i}.{hf}.{suffix}", None)
                if t is None:
                    continue
                if spec.permute_qk and hf == "self_attn.q_proj":
                    t = _permute(t, heads)
                elif spec.permute_qk and hf == "self_attn.k_proj":
                    t = _permute(t, kv_heads)
                out.append((f"blk.{i}.{name}.{suffix}", t))
    out.append(("output_norm.weight", sd["model.norm.weight"]))
    if not cfg.tie_word_embeddings:
        out.append(("output.weight", sd["lm_head.weight"]))
    left = [k for k in sd if k.startswith("model.layers.")]
    if left:
        raise DistillError(f"GGUF export found weights it has no llama.cpp name for: {', '.join(left[:4])}",
                           where="the student's weights", fix="export it with --format hf instead")
    return out


def tensor_type(name: str, t: torch.Tensor, weights: str):
    """The GGML type a tensor is stored in: 1-D tensors (norms, biases) in f32 as llama.cpp keeps them; the
    embeddings and output head in q8_0 under a 4/5-bit type (as llama.cpp's own quantizer keeps them higher); a
    matrix whose rows do not split into quantization blocks in f16."""
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as Q

    if t.ndim < 2:
        return Q.F32
    chosen = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q5_1": Q.Q5_1, "q5_0": Q.Q5_0,
              "q4_1": Q.Q4_1, "q4_0": Q.Q4_0}[weights]
    if weights.startswith(("q4", "q5")) and name in ("token_embd.weight", "output.weight"):
        chosen = Q.Q8_0
    if t.shape[-1] % GGML_QUANT_SIZES[chosen][0]:
        return Q.F16
    return chosen


def _encode(t: torch.Tensor, qtype) -> np.ndarray:
    from gguf import GGMLQuantizationType as Q
    from gguf import quants

    data = t.contiguous().numpy()
    if qtype == Q.F32:
        return data.astype(np.float32)
    if qtype == Q.F16:
        return data.astype(np.float16)
    return quants.quantize(data, qtype)


def pre_tokenizer(tokenizer) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer ("default" when it is not one Distill knows)."""
    digest = sha256(str(tokenizer.encode(_PRE_CHECK_TEXT)).encode()).hexdigest()
    name = _PRE_TOKENIZERS.get(digest)
    if name is None:
        log.warning("the tokenizer's pre-tokenizer is not one llama.cpp is known to name (check hash %s); "
                    "writing 'default'", digest)
    return name or "default"


def _bpe_tables(tokenizer, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """Tokens by id (padded to the model's rows), their GGUF types, and the BPE merges."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    if state["model"]["type"] != "BPE":
        raise DistillError(f"GGUF export writes byte-level BPE tokenizers, not {state['model']['type']}",
                           where="the student's tokenizer", fix="export it with --format hf instead")
    by_id = {i: tok for tok, i in tokenizer.get_vocab().items()}
    added = {i: t for i, t in tokenizer.added_tokens_decoder.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(_UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(_CONTROL if added[i].special else _USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(_NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    return tokens, types, merges


def add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    """Tokens, types, merges, special ids, pre-tokenizer and chat template: all a runtime needs to tokenize."""
    tokens, types, merges = _bpe_tables(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for attr, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                      ("unk_token_id", writer.add_unk_token_id), ("pad_token_id", writer.add_pad_token_id)):
        if (value := getattr(tokenizer, attr, None)) is not None:
            add(int(value))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model: torch.nn.Module, tokenizer, path: Path, weights: str, name: str,
               extra: dict[str, str] | None = None) -> dict[str, int]:
    """Write `model` to `path` (which must not be the final name: the caller renames it) with weights of type
    `weights` (FLOAT_TYPES + QUANT_TYPES); `extra` string fields (e.g. lineage) are added as metadata.
    Returns how many tensors went into each GGML type."""
    import gguf

    spec = arch_spec(model.config, "--format gguf", type(model).__name__)
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    tensors = gguf_tensors(model, spec)
    vocab = tensors[0][1].shape[0]
    logging.getLogger("gguf").setLevel(logging.WARNING)  # its per-file INFO lines name the temporary file
    w = gguf.GGUFWriter(str(path), spec.gguf_arch)
    w.add_type("model")
    w.add_name(name)
    w.add_context_length(int(cfg.max_position_embeddings))
    w.add_embedding_length(int(cfg.hidden_size))
    w.add_block_count(int(cfg.num_hidden_layers))
    w.add_feed_forward_length(int(cfg.intermediate_size))
    w.add_head_count(int(cfg.num_attention_heads))
    w.add_head_count_kv(int(cfg.num_key_value_heads))
    w.add_rope_freq_base(_rope_theta(cfg))
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_vocab_size(int(vocab))
    w.add_rope_dimension_count(int(head_dim))
    if head_dim != cfg.hidden_size // cfg.num_attention_heads:
        w.add_key_length(int(head_dim))
        w.add_value_length(int(head_dim))
    w.add_file_type(_FILE_TYPE[weights])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_tokenizer(w, tokenizer, vocab)
    for key, value in (extra or {}).items():
        w.add_string(key, value)
    counts: dict[str, int] = {}
    for tname, t in tensors:
        qtype = tensor_type(tname, t, weights)
        counts[qtype.name.lower()] = counts.get(qtype.name.lower(), 0) + 1
        w.add_tensor(tname, _encode(t, qtype), raw_dtype=None if qtype in (gguf.GGMLQuantizationType.F32,
                                                                          gguf.GGMLQuantizationType.F16) else qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return counts


def read_metadata(path: str | Path, prefix: str) -> dict[str, Any]:
    """The string fields of a GGUF file whose keys start with `prefix`."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if k.startswith(prefix)}

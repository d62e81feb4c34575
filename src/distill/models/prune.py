"""A student cut from the teacher by structured pruning guided by importance (NVIDIA Minitron; ShortGPT for depth).

Importance is measured once, on calibration sequences of the training data, with one deterministic forward pass
of the teacher's decoder (no output head) and hooks:

- depth: each decoder layer's *block influence*, the mean over tokens of 1 − cos(layer input, layer output); a
  layer that barely changes the residual stream scores near 0 and is dropped first;
- width (Minitron's activation-based scores, mean over calibration tokens): an MLP channel by the mean |input
  of down_proj| (act(gate)·up), an attention head by the mean L2 norm of its output (the input of o_proj), a
  hidden (embedding) channel by the mean |output| of every RMSNorm (each layer's two and the final one), summed.

The student is the teacher's architecture with smaller dimensions (`target_dims`), its weights the kept rows and
columns of the teacher's (`prune_model`). Grouped-query attention stays valid: with h query heads kept out of H in
K key/value groups, h divisible by K keeps every group and its h/K best heads, else h a multiple of the group size
H/K keeps the h/(H/K) best whole groups (scored by the sum of their heads). head_dim stays the teacher's.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from distill.errors import DistillError

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3")  # Llama-style decoders: q/k/v/o and gate/up/down projections
INTERMEDIATE_MULTIPLE = 8  # a solved intermediate_size is rounded down to a multiple of this
CALIBRATION_BATCH = 8  # sequences per calibration forward pass


@dataclass(frozen=True)
class Dims:
    """The pruned student's shape."""

    layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


def _teacher_dims(config) -> Dims:
    heads = config.num_attention_heads
    return Dims(config.num_hidden_layers, config.hidden_size, config.intermediate_size, heads,
                getattr(config, "num_key_value_heads", None) or heads,
                getattr(config, "head_dim", None) or config.hidden_size // heads)


def _check_architecture(config) -> None:
    kind = getattr(config, "model_type", "?")
    if kind not in SUPPORTED:
        raise DistillError(f"student.init=prune supports Llama-style teachers ({', '.join(SUPPORTED)}), not "
                           f"model_type '{kind}'", where="student.init",
                           fix="use student.init: layers or fresh with this teacher")


def _kv_heads(teacher: Dims, heads: int) -> int:
    """Key/value heads kept with `heads` query heads (the GQA rule in the module docstring)."""
    group = teacher.num_heads // teacher.num_kv_heads
    if heads % teacher.num_kv_heads == 0:
        return teacher.num_kv_heads
    if heads % group == 0:
        return heads // group
    raise DistillError(f"student.prune.num_heads ({heads}) is neither divisible by the teacher's "
                       f"{teacher.num_kv_heads} key/value heads nor a multiple of its query heads per key/value "
                       f"group ({group}), so grouped-query attention cannot stay valid",
                       where="student.prune.num_heads",
                       fix=f"use a multiple of {teacher.num_kv_heads} or of {group}, at most {teacher.num_heads}")


def _param_count(config) -> int:
    """Parameters of a model with `config` (tied tensors once), counted on the meta device."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def pruned_config(teacher_config, dims: Dims):
    """The teacher's configuration with the pruned dimensions (head_dim explicit; layer_types follow `keep`
    when given by `prune_model`, else the first `dims.layers`)."""
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = dims.layers
    config.hidden_size = dims.hidden_size
    config.intermediate_size = dims.intermediate_size
    config.num_attention_heads = dims.num_heads
    config.num_key_value_heads = dims.num_kv_heads
    config.head_dim = dims.head_dim
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types[: dims.layers])
    return config


def _solve(teacher_config, t: Dims, target: int, layers: int | None, inter: int | None, hidden: int,
           heads: int, kv: int) -> tuple[int, int]:
    """(layers, intermediate_size) with the parameter count at or just under `target`; the count is affine in the
    intermediate size for a given depth, and affine in the depth: P(L, f) = P0 + L·(a + m·f)."""
    def count(n: int, f: int) -> int:
        return _param_count(pruned_config(teacher_config, Dims(n, hidden, f, heads, kv, t.head_dim)))

    f2 = max(1, t.intermediate_size // 2)
    p1, p2, p1h = count(1, t.intermediate_size), count(2, t.intermediate_size), count(1, f2)
    per_layer = p2 - p1  # a + m·I
    p0 = p1 - per_layer
    m = (p1 - p1h) / (t.intermediate_size - f2) if t.intermediate_size > f2 else 0.0
    a = per_layer - m * t.intermediate_size
    if target <= p0 + a + m:
        raise DistillError(f"student.prune.target_params ({target:,}) is below what one layer with one MLP channel "
                           f"and the embeddings at hidden size {hidden} hold ({int(p0 + a + m):,})",
                           where="student.prune.target_params",
                           fix="ask for more parameters, or also set a smaller student.prune.hidden_size")
    if layers is None and inter is None:
        share = (target - p0) / (t.layers * per_layer)  # share of the teacher's decoder parameters
        layers = max(1, min(t.layers, round(math.sqrt(share) * t.layers)))
    if layers is None:
        layers = max(1, min(t.layers, round((target - p0) / (a + m * inter))))
    if inter is None:
        f = (target - p0 - layers * a) / (layers * m) if m else t.intermediate_size
        mult = INTERMEDIATE_MULTIPLE if t.intermediate_size >= 8 * INTERMEDIATE_MULTIPLE else 1
        inter = max(mult, min(t.intermediate_size, int(f // mult) * mult))
    return layers, inter


def target_dims(settings, teacher_config) -> Dims:
    """The pruned shape from `student.prune` settings (any object with layers, hidden_size, intermediate_size,
    num_heads, target_params) and the teacher's configuration, validated. Shared by `prune_model` and the memory
    plan (which needs no weights).

    Solving `target_params` (a share of the teacher's parameters when ≤ 1, else a count): hidden size and heads
    stay the teacher's unless given; depth and MLP width shrink together — layers = round(√s · L) where s is the
    share of the teacher's decoder parameters the target leaves after the embeddings, then the largest intermediate
    size (a multiple of 8) whose total stays within the target. A given `layers` or
    `intermediate_size` is held and only the other is solved.
    """
    _check_architecture(teacher_config)
    t = _teacher_dims(teacher_config)
    names = {"layers": t.layers, "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size,
             "num_heads": t.num_heads}
    for name, limit in names.items():
        v = getattr(settings, name)
        if v is not None and not 1 <= v <= limit:
            raise DistillError(f"student.prune.{name} ({v}) must be between 1 and the teacher's {limit}",
                               where=f"student.prune.{name}", fix=f"use at most {limit}")
    heads = settings.num_heads or t.num_heads
    kv = _kv_heads(t, heads)
    hidden = settings.hidden_size or t.hidden_size
    layers, inter = settings.layers, settings.intermediate_size
    if settings.target_params is not None:
        if layers is not None and inter is not None:
            raise DistillError("student.prune.target_params leaves nothing to solve when layers and "
                               "intermediate_size are both set", where="student.prune",
                               fix="drop target_params, or one of layers / intermediate_size")
        total = _param_count(teacher_config)
        target = round(settings.target_params * total) if settings.target_params <= 1 else int(settings.target_params)
        if target > total:
            raise DistillError(f"student.prune.target_params ({target:,}) is more than the teacher's {total:,} "
                               "parameters", where="student.prune.target_params",
                               fix="use a share ≤ 1 or a count below the teacher's")
        layers, inter = _solve(teacher_config, t, target, layers, inter, hidden, heads, kv)
    return Dims(layers or t.layers, hidden, inter or t.intermediate_size, heads, kv, t.head_dim)


@dataclass
class Importance:
    """Calibration scores of the teacher (see the module docstring)."""

    layers: list[float]  # block influence per decoder layer
    hidden: torch.Tensor  # [hidden_size]
    mlp: list[torch.Tensor]  # per layer [intermediate_size]
    heads: list[torch.Tensor]  # per layer [num_heads]
    sequences: int
    tokens: int


def _batches(sequences: list[dict], n: int, pad_id: int):
    from distill.data.corpus import collate

    step = max(1, len(sequences) / n)
    chosen = [sequences[int(i * step)] for i in range(min(n, len(sequences)))]  # spread over the whole set
    for i in range(0, len(chosen), CALIBRATION_BATCH):
        b = collate(chosen[i:i + CALIBRATION_BATCH], pad_id)
        yield b["input_ids"], b["attention_mask"]


@torch.no_grad()
def measure_importance(model: torch.nn.Module, sequences: list[dict], pad_id: int, n: int = 64) -> Importance:
    """Importance of every layer, head, MLP channel and hidden channel of `model` on `n` of `sequences` (corpus
    examples with `input_ids`, evenly spaced over them); deterministic for given inputs and thread count."""
    _check_architecture(model.config)
    if not sequences:
        raise DistillError("no calibration sequences for pruning", where="data.path", fix="add training data")
    base = model.base_model
    blocks = base.layers
    t = _teacher_dims(model.config)
    f64 = torch.float64
    state: dict[str, Any] = {}
    bi = torch.zeros(len(blocks), dtype=f64)
    hidden = torch.zeros(t.hidden_size, dtype=f64)
    mlp = [torch.zeros(t.intermediate_size, dtype=f64) for _ in blocks]
    heads = [torch.zeros(t.num_heads, dtype=f64) for _ in blocks]

    def weighted(x: torch.Tensor) -> torch.Tensor:  # [B, T, ...] → sum over valid tokens
        w = state["mask"].to(x.dtype).reshape(*state["mask"].shape, *([1] * (x.dim() - 2)))
        return (x * w).sum(dim=(0, 1)).to(f64)

    def block_hook(i):
        def hook(module, args, kwargs, output):
            inp = args[0] if args else kwargs["hidden_states"]
            out = output[0] if isinstance(output, tuple) else output
            cos = torch.nn.functional.cosine_similarity(inp.float(), out.float(), dim=-1)
            bi[i] += weighted((1 - cos).unsqueeze(-1)).sum()
        return hook

    def norm_hook(module, args, output):
        hidden.add_(weighted(output.float().abs()))

    def mlp_hook(i):
        def hook(module, args):
            mlp[i].add_(weighted(args[0].float().abs()))
        return hook

    def head_hook(i):
        def hook(module, args):
            x = args[0].float()
            heads[i].add_(weighted(x.reshape(*x.shape[:2], t.num_heads, t.head_dim).norm(dim=-1)))
        return hook

    handles = [base.norm.register_forward_hook(norm_hook)]
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(block_hook(i), with_kwargs=True))
        handles += [block.input_layernorm.register_forward_hook(norm_hook),
                    block.post_attention_layernorm.register_forward_hook(norm_hook),
                    block.mlp.down_proj.register_forward_pre_hook(mlp_hook(i)),
                    block.self_attn.o_proj.register_forward_pre_hook(head_hook(i))]
    was_training = model.training
    model.eval()
    tokens = count = 0
    device = next(model.parameters()).device
    try:
        for ids, mask in _batches(sequences, n, pad_id):
            state["mask"] = mask.to(device)
            base(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
            tokens += int(mask.sum())
            count += ids.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Importance(layers=(bi / tokens).tolist(), hidden=hidden / tokens, mlp=[s / tokens for s in mlp],
                      heads=[s / tokens for s in heads], sequences=count, tokens=tokens)


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k highest scores (ties: the lower index), in their original order."""
    return torch.argsort(-scores, stable=True)[:k].sort().values


@dataclass
class Selection:
    """What `prune_model` kept, as teacher indices."""

    layers: list[int]
    hidden: torch.Tensor
    mlp: list[torch.Tensor]  # per kept layer
    heads: list[torch.Tensor]  # query heads per kept layer
    kv_heads: list[torch.Tensor]  # key/value heads per kept layer


def select(imp: Importance, teacher: Dims, dims: Dims) -> Selection:
    """The kept layers, channels and heads: the most important of each (see the module docstring)."""
    order = sorted(range(teacher.layers), key=lambda i: (-imp.layers[i], i))
    layers = sorted(order[: dims.layers])
    group = teacher.num_heads // teacher.num_kv_heads
    heads, kv = [], []
    for i in layers:
        s = imp.heads[i]
        if dims.num_kv_heads == teacher.num_kv_heads:  # every group keeps its best num_heads / K heads
            per = dims.num_heads // teacher.num_kv_heads
            q = torch.cat([g * group + _top(s[g * group:(g + 1) * group], per) for g in range(teacher.num_kv_heads)])
            keep_kv = torch.arange(teacher.num_kv_heads)
        else:  # the best whole groups
            keep_kv = _top(s.reshape(teacher.num_kv_heads, group).sum(-1), dims.num_kv_heads)
            q = (keep_kv[:, None] * group + torch.arange(group)).reshape(-1)
        heads.append(q)
        kv.append(keep_kv)
    return Selection(layers, _top(imp.hidden, dims.hidden_size), [_top(imp.mlp[i], dims.intermediate_size)
                                                                  for i in layers], heads, kv)


def _rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)


_LAYER_KEY = re.compile(r"^(.*\.layers\.)(\d+)\.(.+)$")


def _slice(name: str, w: torch.Tensor, sel: Selection, j: int | None, head_dim: int) -> torch.Tensor:
    """Teacher tensor `w` (of parameter `name`, in kept layer j) cut to the student's shape."""
    hid = sel.hidden
    if j is None:
        if name.endswith("embed_tokens.weight") or name.endswith("lm_head.weight"):
            return w[:, hid]
        if name.endswith("norm.weight"):
            return w[hid]
        return w
    sub = name
    q, kv, mlp = _rows(sel.heads[j], head_dim), _rows(sel.kv_heads[j], head_dim), sel.mlp[j]
    rules = {"self_attn.q_proj": (q, hid), "self_attn.k_proj": (kv, hid), "self_attn.v_proj": (kv, hid),
             "self_attn.o_proj": (hid, q), "mlp.gate_proj": (mlp, hid), "mlp.up_proj": (mlp, hid),
             "mlp.down_proj": (hid, mlp)}
    for prefix, (rows, cols) in rules.items():
        if sub == prefix + ".weight":
            return w[rows][:, cols]
        if sub == prefix + ".bias":
            return w[rows]
    if sub.endswith("layernorm.weight"):
        return w[hid]
    return w  # e.g. Qwen3's per-head q_norm / k_norm (head_dim wide): unchanged


def prune_model(teacher: torch.nn.Module, dims: Dims, imp: Importance) -> tuple[torch.nn.Module, Selection]:
    """A new model of the teacher's architecture with `dims`, initialized from the kept teacher weights."""
    from transformers import AutoModelForCausalLM

    t = _teacher_dims(teacher.config)
    sel = select(imp, t, dims)
    config = pruned_config(teacher.config, dims)
    if getattr(teacher.config, "layer_types", None):
        config.layer_types = [teacher.config.layer_types[i] for i in sel.layers]
    dtype = next(teacher.parameters()).dtype
    student = AutoModelForCausalLM.from_config(config, dtype=dtype)
    source = teacher.state_dict()
    out = {}
    for name, target in student.state_dict().items():
        m = _LAYER_KEY.match(name)
        j = int(m.group(2)) if m else None
        key = f"{m.group(1)}{sel.layers[j]}.{m.group(3)}" if m else name
        if key not in source:
            raise DistillError(f"cannot prune this architecture: the student's {name} has no teacher counterpart",
                               where="student.init=prune", fix="use student.init: layers or fresh")
        w = _slice(m.group(3) if m else name, source[key], sel, j, t.head_dim)
        if w.shape != target.shape:
            raise DistillError(f"cannot prune this architecture: {name} is {tuple(source[key].shape)} in the "
                               f"teacher and would be {tuple(w.shape)}, not {tuple(target.shape)}",
                               where="student.init=prune", fix="use student.init: layers or fresh")
        out[name] = w.to(target.dtype)
    student.load_state_dict(out, strict=True)
    student.to(next(teacher.parameters()).device).requires_grad_(True)
    return student, sel


@dataclass
class PruneResult:
    student: torch.nn.Module
    dims: Dims
    importance: Importance
    selection: Selection
    teacher_params: int
    student_params: int
    report: dict = field(default_factory=dict)


def _summary(scores: torch.Tensor, kept: torch.Tensor) -> dict:
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[kept] = True
    total = float(scores.sum()) or 1.0
    return {"kept": int(mask.sum()), "of": len(scores), "score_share_kept": round(float(scores[mask].sum()) / total, 6),
            "min_kept": round(float(scores[mask].min()), 6) if mask.any() else None,
            "max_dropped": round(float(scores[~mask].max()), 6) if (~mask).any() else None}


def importance_report(res: PruneResult) -> dict:
    """What `importance.json` holds: every layer's score, and per dimension which ranks were kept."""
    imp, sel, d = res.importance, res.selection, res.dims
    return {
        "method": "block influence (1 - cos(layer input, output)) for depth; mean |activation| over calibration "
                  "tokens for hidden channels (RMSNorm outputs) and MLP channels (down_proj input); mean L2 norm "
                  "of each head's output for attention heads",
        "calibration": {"sequences": imp.sequences, "tokens": imp.tokens},
        "dims": vars(d), "params": {"teacher": res.teacher_params, "student": res.student_params,
                                    "share": round(res.student_params / res.teacher_params, 6)},
        "layers": {"block_influence": [round(x, 8) for x in imp.layers], "kept": sel.layers},
        "hidden": {**_summary(imp.hidden, sel.hidden), "kept_indices": sel.hidden.tolist()},
        "mlp": [{"layer": i, **_summary(imp.mlp[i], sel.mlp[j])} for j, i in enumerate(sel.layers)],
        "heads": [{"layer": i, "scores": [round(float(x), 6) for x in imp.heads[i]], "kept": sel.heads[j].tolist(),
                   "kv_kept": sel.kv_heads[j].tolist()} for j, i in enumerate(sel.layers)],
    }


def prune_teacher(teacher: torch.nn.Module, settings, sequences: list[dict], pad_id: int) -> PruneResult:
    """Measure importance on `settings.calibration_sequences` of `sequences` (evenly spaced), solve the target and
    cut the student."""
    from distill.models.students import param_count

    dims = target_dims(settings, teacher.config)
    imp = measure_importance(teacher, sequences, pad_id, settings.calibration_sequences)
    student, sel = prune_model(teacher, dims, imp)
    res = PruneResult(student, dims, imp, sel, param_count(teacher), param_count(student))
    res.report = importance_report(res)
    return res

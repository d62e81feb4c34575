"""The memory plan: a run's expected peak memory per rank, worked out before anything loads.

`workload(cfg, world, device)` reads the sizes it needs from the models' configurations (each model is built on
PyTorch's meta device: exact parameter shapes, no weights, no memory) and `plan(workload)` adds up, per rank:

| part | ddp | fsdp (world W) |
|---|---|---|
| teacher weights (live teacher or a layer-subset source) | all | blocks / W, embeddings + head whole, two blocks gathered (× 2 buffers) |
| student weights | all (+ a bf16 copy under GPU autocast) | all / W + the root (embeddings, head) and two blocks gathered (× 2 buffers) |
| student gradients | trainable (+ DDP's bucket copy when W > 1) | trainable / W + one block's and the root's unsharded (× 2 buffers) |
| optimizer state | AdamW: 2 moments + 1 step temporary × trainable | the same on the rank's shard |
| activations | tokens × layers × (11 H + 4 I + 4 KV) (with checkpointing: tokens × layers × H + one block) | same |
| teacher forward | one block's working set + the final hidden states | same |
| loss chunk | 6 × chunk_size × vocab (fp32), the student's hidden states and their gradient | same |
| hidden states (`loss.hidden`, P pairs) | P × tokens × (teacher layer output + student layer output + the projected state + the loss's saved term), see `hidden_states_bytes` | same |
| hidden projections (`loss.hidden`, widths differ) | P × d_s × d_t: weights, gradients, AdamW state, as the student's | sharded with the root (`StudentLoss`), gathered twice |
| runtime | Python, torch and the tokenizer (CPU) or the CUDA context (GPU) | same |
| setup (CPU only) | — | the whole teacher and student, read before sharding: peak = max(setup, training) |

Bytes: fp32 everywhere on CPU; on GPU the teacher and activations in bf16, master weights, gradients and
optimizer state in fp32. FSDP2 shards every tensor on its first dimension, padded to a multiple of W; the plan
counts exactly that. "tokens" = sequences per rank per micro-batch × `data.seq_len`.

`fits(plan, limit)` compares with 90% of the memory available: on CPU every rank of this host shares its RAM, on
GPU each rank has its own device. `advice` lists the changes that make a run fit. `distill plan` prints all this;
`distill train` refuses a run that cannot fit before loading any weights (`train.memory_check`). The formula is
checked against measured peak RSS in `benchmarks/engine/bench_memory.py` (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from distill.errors import DistillError
from distill.loss.fused import chunk_rows

if TYPE_CHECKING:
    import torch

    from distill.config import DistillConfig

GiB = 1024**3
MARGIN = 0.9  # a plan fits when it needs at most this share of the memory available (allocator slack)
RUNTIME_BYTES = {"cpu": int(0.6 * GiB), "cuda": int(0.75 * GiB)}  # interpreter + libraries / CUDA context


@dataclass(frozen=True)
class Shape:
    """A model's sizes as the plan needs them."""

    params: int  # unique parameters (tied embeddings counted once)
    block_tensors: tuple[tuple[int, ...], ...]  # shapes of the decoder blocks' parameters
    rest_tensors: tuple[tuple[int, ...], ...]  # embeddings, final norm, output head
    largest_block: int  # parameters of the largest decoder block
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int  # key/value width: kv heads × head dim
    vocab: int
    trainable: int  # parameters that get gradients (LoRA: the adapters only)

    @property
    def rest(self) -> int:
        return sum(math.prod(s) for s in self.rest_tensors)


@dataclass(frozen=True)
class Workload:
    """What one rank of a run holds and computes."""

    student: Shape
    teacher: Shape | None  # None: no teacher weights in this process (a store, a served teacher, API answers)
    teacher_live: bool  # the teacher runs a forward each step (False: loaded only to cut a layer-subset student)
    micro_batch: int  # sequences per rank per micro-batch
    seq_len: int
    chunk_size: int
    parallel: str  # "ddp" or "fsdp"
    world: int
    device: str  # "cpu" or "cuda"
    checkpointing: bool
    sample_tokens: int = 0  # on-policy: new tokens sampled per sequence (its KV cache), 0 when off
    host_ranks: int | None = None  # CPU: ranks sharing one host's RAM (default: all of them)
    hidden_pairs: int = 0  # loss.hidden: (student, teacher) layer pairs compared, 0 when off
    other_teachers: tuple[tuple[str, Shape], ...] = ()  # several teachers: each further live one, by name

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len


@dataclass
class Plan:
    """Expected peak bytes per rank, by part."""

    workload: Workload
    parts: dict[str, int] = field(default_factory=dict)

    load: int = 0  # CPU: what a rank holds while setting up, before sharding (the whole teacher and student)

    @property
    def peak(self) -> int:
        return max(sum(self.parts.values()), self.load)

    def host_total(self) -> int:
        """What the whole run needs of one machine's memory: on CPU every rank shares the host's RAM."""
        w = self.workload
        return self.peak * ((w.host_ranks or w.world) if w.device == "cpu" else 1)


def shard_numel(tensors: tuple[tuple[int, ...], ...], world: int) -> int:
    """Elements one rank holds when each tensor is sharded on dim 0 and padded to a multiple of `world` (FSDP2)."""
    return sum(math.ceil(s[0] / world) * math.prod(s[1:]) if s else 1 for s in tensors)


def hidden_states_bytes(pairs: int, tokens: int, student_width: int, teacher_width: int,
                        teacher_bytes: int = 4) -> int:
    """What `loss.hidden` holds at the end of a forward, per rank: for each of `pairs` pairs and each scored token
    (at most `tokens`), the teacher layer's output (`teacher_bytes` per value: the teacher's dtype, plus the fp32
    copy `layer_terms` makes of a bf16 one), the student layer's output kept by the hook, the projected state when
    the widths differ, and what the loss saves for backward (mse: the difference; cosine: one [N, d_t] product
    and two [N] norms). All fp32 but the teacher's. See `distill.loss.hidden`."""
    teacher = teacher_width * (teacher_bytes + (4 if teacher_bytes < 4 else 0))
    projected = teacher_width * 4 if student_width != teacher_width else 0
    return pairs * tokens * (teacher + student_width * 4 + projected + (teacher_width + 2) * 4)


def plan(w: Workload) -> Plan:
    """The peak bytes per rank of workload `w` (see the module docstring for every term)."""
    gpu = w.device == "cuda"
    low = 2 if gpu else 4  # teacher weights, activations (bf16 on GPU)
    fsdp = w.parallel == "fsdp"
    s, t, n = w.student, w.teacher, w.world
    parts: dict[str, int] = {}

    if t is None:
        parts["teacher weights"] = 0
    elif fsdp:  # a gathered block is held twice: FSDP2's all-gather output and the parameters copied out of it
        parts["teacher weights"] = (shard_numel(t.block_tensors, n) + t.rest + 2 * 2 * t.largest_block) * low
    else:
        parts["teacher weights"] = t.params * low

    all_tensors = s.block_tensors + s.rest_tensors
    held = shard_numel(all_tensors, n) if fsdp else s.params
    trained = math.ceil(s.trainable * held / s.params)  # the rank's share of the trainable parameters
    if fsdp:  # gathered units twice (all-gather output + copy-out; unsharded gradients + reduce-scatter input)
        parts["student weights"] = held * 4 + 2 * (s.rest + 2 * s.largest_block) * (2 if gpu else 4)
        parts["student gradients"] = trained * 4 + 2 * (s.rest + s.largest_block) * 4
    else:
        parts["student weights"] = held * 4 + (s.params * 2 if gpu else 0)  # autocast's bf16 weight cache
        parts["student gradients"] = trained * 4 * (2 if n > 1 else 1)  # DDP keeps a bucket copy
    parts["optimizer state"] = trained * 4 * 3  # AdamW's two moments + the foreach step's temporary

    per_block = 11 * s.hidden + 4 * s.intermediate + 4 * s.kv_dim
    if w.checkpointing:
        saved = w.tokens * (s.layers * s.hidden + per_block)
    else:
        saved = w.tokens * s.layers * per_block
    saved += w.tokens * 3 * s.hidden  # embeddings out, final norm in and out
    if w.sample_tokens:
        saved += 2 * s.layers * s.kv_dim * w.micro_batch * (w.seq_len + w.sample_tokens)  # the sampler's KV cache
    parts["activations"] = saved * low
    for name, other in w.other_teachers:  # several teachers: each live one's weights, its forward one at a time
        parts[f"teacher {name}"] = other.params * low
    forwards = [x for x in (t if w.teacher_live else None, *(o for _, o in w.other_teachers)) if x is not None]
    parts["teacher forward"] = max((w.tokens * (5 * x.hidden + 3 * x.intermediate) * low for x in forwards), default=0)
    vocab = max(s.vocab, t.vocab if t is not None and w.teacher_live else 0)
    parts["loss chunk"] = 6 * w.chunk_size * vocab * 4 + 2 * w.tokens * s.hidden * 4
    if w.hidden_pairs and t is not None and w.teacher_live:
        parts["hidden states"] = hidden_states_bytes(w.hidden_pairs, w.tokens, s.hidden, t.hidden, low)
        maps = ((t.hidden, s.hidden),) * w.hidden_pairs if s.hidden != t.hidden else ()
        whole = sum(math.prod(m) for m in maps)  # the projections (none when the widths are equal)
        if fsdp:  # sharded with the root unit (StudentLoss), gathered and reduced like the student's root
            mine = shard_numel(maps, n)
            parts["hidden projections"] = mine * (4 + 4 + 12) + 2 * whole * ((2 if gpu else 4) + 4)
        else:  # weights, gradients (+ DDP's bucket copy), AdamW's state
            parts["hidden projections"] = whole * (4 + 4 * (2 if n > 1 else 1) + 12)
    parts["runtime"] = RUNTIME_BYTES[w.device]
    # every rank reads the whole teacher and builds the whole student before FSDP shards them; on GPU that is host
    # memory (the blocks then reach the device one shard at a time), on CPU it is the same memory as training's
    load = ((t.params if t is not None else 0) + s.params) * 4 + parts["runtime"] if fsdp and not gpu else 0
    return Plan(w, parts, load)


def fits(p: Plan, limit: int) -> bool:
    return p.host_total() <= MARGIN * limit


@dataclass(frozen=True)
class Advice:
    change: str  # the config change, as a user writes it
    plan: Plan


def advice(w: Workload, limit: int, grad_accum: int = 1) -> list[Advice]:
    """Changes that make `w` fit in `limit`, cheapest first: FSDP, activation checkpointing, a smaller micro-batch
    (a divisor of the current one, with grad_accum raised to keep the tokens per step), a teacher outside the
    process. Each later change includes the earlier ones."""
    out: list[Advice] = []
    changes: list[str] = []

    def consider(cand: Workload, *extra: str) -> None:
        if fits(p := plan(cand), limit) and all(a.plan.workload != cand for a in out):
            out.append(Advice(", ".join([*changes, *extra]), p))

    if w.world > 1 and w.parallel != "fsdp":
        w = replace(w, parallel="fsdp")
        changes.append("train.parallel: fsdp")
        consider(w)
    if not w.checkpointing:
        w = replace(w, checkpointing=True)
        changes.append("train.activation_checkpointing: true")
        consider(w)
    for per_rank in sorted((d for d in range(1, w.micro_batch) if w.micro_batch % d == 0), reverse=True):
        cand = replace(w, micro_batch=per_rank)
        if fits(plan(cand), limit):
            consider(cand, f"train.batch_size: {per_rank * w.world}",
                     f"train.grad_accum: {grad_accum * w.micro_batch // per_rank}")
            break
    if w.teacher is not None and w.teacher_live:  # hidden states exist only from a live teacher
        consider(replace(w, teacher=None, teacher_live=False, hidden_pairs=0),
                 *(["loss.hidden: null"] if w.hidden_pairs else []), "the teacher out of this process (a capture "
                 "store: `distill capture` then teacher: {kind: store, store: DIR}; or a served teacher: teacher: {kind: "
                 "served, endpoint: URL})")
    return out


def parse_bytes(text: str) -> int:
    """'80GiB', '80GB', '512MiB', '1.5T', or a plain number of bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B?)\s*", text, re.IGNORECASE)
    if not m:
        raise DistillError(f"cannot read the memory size '{text}'", where="--device-memory",
                           fix="write it like 80GiB, 24GB or 512MiB")
    unit = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[m.group(2).upper()]
    base = 1000 if m.group(3).upper() == "B" else 1024
    return int(float(m.group(1)) * base**unit)


def available_memory(device: str) -> tuple[int, str]:
    """The memory a run may use here and where that figure comes from: the host's available RAM on CPU, the
    total memory of this process's GPU on CUDA."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DistillError("no GPU is visible to this process, so its memory is unknown", where="--device cuda",
                               fix="pass --device-memory (e.g. 80GiB) to plan for a GPU elsewhere")
        return torch.cuda.mem_get_info()[1], f"GPU {torch.cuda.current_device()} total memory"
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024, "this host's available RAM (MemAvailable)"
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this host's physical RAM"


def shape_of(model: torch.nn.Module, trainable: int | None = None) -> Shape:
    """The sizes of a transformers causal LM (built on the meta device, or a real one)."""
    from distill.training.sharding import decoder_layers

    blocks = decoder_layers(model)
    in_blocks = {id(p) for b in blocks for p in b.parameters()}
    seen: set[int] = set()
    rest = []
    for p in model.parameters():
        if id(p) not in in_blocks and id(p) not in seen:
            seen.add(id(p))
            rest.append(tuple(p.shape))
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    block_sizes = [sum(p.numel() for p in b.parameters()) for b in blocks]
    params = sum(block_sizes) + sum(math.prod(s) for s in rest)
    return Shape(params=params, block_tensors=tuple(tuple(p.shape) for b in blocks for p in b.parameters()),
                 rest_tensors=tuple(rest), largest_block=max(block_sizes, default=0), layers=len(blocks),
                 hidden=config.hidden_size, intermediate=getattr(config, "intermediate_size", 4 * config.hidden_size),
                 kv_dim=(getattr(config, "num_key_value_heads", None) or heads) * head_dim,
                 vocab=config.vocab_size, trainable=params if trainable is None else trainable)


def _meta_model(config) -> torch.nn.Module:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def workload(cfg: DistillConfig, world: int, device: str, parallel: str | None = None,
             host_ranks: int | None = None) -> Workload:
    """The workload of `cfg` on `world` ranks of `device`, read from the models' configurations only."""
    from distill.models.loading import model_config
    from distill.models.student_init import student_init

    kind = cfg.teacher_kind
    loads_teacher = kind.needs_weights or cfg.student.cut_from_teacher
    teacher_config = model_config(cfg.teacher.model, cfg.teacher.trust_remote_code) if loads_teacher else None
    student_model = _meta_model(student_init(cfg).shape(cfg, teacher_config))
    trainable = None
    if cfg.student.lora:
        from distill.models.lora import adapter_parameters

        trainable = adapter_parameters(student_model, cfg.student.lora)
    student = shape_of(student_model, trainable)
    if trainable is not None:  # the adapters are parameters too
        student = replace(student, params=student.params + trainable)
    teacher = shape_of(_meta_model(teacher_config)) if teacher_config is not None else None
    t = cfg.train
    hidden = cfg.loss.hidden
    pairs = (student.layers if hidden.layers == "auto" else len(hidden.layers)) if hidden and kind.needs_weights else 0
    others = tuple((m.name, shape_of(_meta_model(model_config(m.model, m.trust_remote_code))))
                   for m in (cfg.teachers or [])[1:] if m.KIND.needs_weights)
    return Workload(student=student, teacher=teacher, teacher_live=kind.needs_weights, other_teachers=others,
                    micro_batch=math.ceil(t.batch_size / world), seq_len=cfg.data.seq_len,
                    chunk_size=chunk_rows(cfg.loss.chunk_size, student.vocab, device),
                    parallel=parallel or t.parallel, world=world, device=device,
                    checkpointing=t.activation_checkpointing,
                    sample_tokens=t.sample_max_new_tokens if t.on_policy_fraction > 0 else 0, host_ranks=host_ranks,
                    hidden_pairs=pairs)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def mib(n: int) -> str:
    """Bytes as whole MiB (the precision the measured-vs-planned log line keeps)."""
    return f"{n / 2**20:.0f} MiB"


def refusal(p: Plan, limit: int, source: str, grad_accum: int = 1) -> DistillError:
    """The one-paragraph error for a run that cannot fit, with the changes that would make it fit."""
    w = p.workload
    fixes = advice(w, limit, grad_accum)
    where_total = (f"{w.world} rank(s) × {human(p.peak)} on one host" if w.device == "cpu" and w.world > 1
                   else f"{human(p.peak)} per rank")
    fix = ("; or ".join(f"{a.change} (→ {human(a.plan.host_total())})" for a in fixes[:4]) if fixes else
           "none of fsdp, activation checkpointing, a smaller batch or a teacher outside the process is enough: "
           "use a smaller student, a shorter data.seq_len, more ranks, or a machine with more memory")
    top = sorted(p.parts.items(), key=lambda kv: -kv[1])[:3]
    return DistillError(
        f"this run would need {human(p.host_total())} ({where_total}; largest parts: "
        + ", ".join(f"{k} {human(v)}" for k, v in top) + f"), more than {MARGIN:.0%} of the {human(limit)} "
        f"available ({source})", where=f"train.parallel: {w.parallel}, {w.world} rank(s), {w.device}",
        fix=fix + " — `distill plan CONFIG` shows the whole plan; train.memory_check: false starts anyway")


def check(cfg: DistillConfig, world: int, device: str) -> Plan:
    """The plan of the run `distill train` is starting (each rank computes it); a DistillError with the advice
    when it cannot fit here. Under torchrun the CPU ranks of one host are LOCAL_WORLD_SIZE."""
    host_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    p = plan(workload(cfg, world, device, host_ranks=host_ranks))
    limit, source = available_memory(device)
    if not fits(p, limit):
        raise refusal(p, limit, source, cfg.train.grad_accum)
    return p


@dataclass
class RunPlan:
    """What `distill.plan` (and `distill plan`) gives back: the memory plan of a training config, before any
    weights load."""

    plans: dict[str, Plan]  # the plan under each train.parallel mode: "ddp" and "fsdp"
    parallel: str  # the config's train.parallel: the plan that decides
    limit: int  # the memory planned against, in bytes (per GPU on cuda; the host's RAM on cpu)
    limit_source: str  # where `limit` came from ("--device-memory 80GiB", "MemAvailable", ...)
    world: int  # processes (torchrun ranks)
    device: str  # "cpu" or "cuda"
    fits: bool  # whether the configured run fits in MARGIN × limit
    advice: list[Advice] = field(default_factory=list)  # changes that fit, cheapest first (when it does not)

    @property
    def chosen(self) -> Plan:
        """The plan of the configured train.parallel."""
        return self.plans[self.parallel]

    def to_dict(self) -> dict[str, Any]:
        """The plan as `distill plan --json` prints it."""
        return {"limit_bytes": self.limit, "limit_source": self.limit_source, "parallel": self.parallel,
                "world": self.world, "device": self.device, "fits": self.fits,
                "plans": {m: {"parts": p.parts, "peak": p.peak, "host_total": p.host_total()}
                          for m, p in self.plans.items()},
                "advice": [{"change": a.change, "host_total": a.plan.host_total()} for a in self.advice]}


def plan_run(cfg: DistillConfig, *, world: int = 1, device: str = "cpu", device_memory: str | None = None) -> RunPlan:
    """The memory plan of `cfg` on `world` ranks of `device` ("cpu": all ranks share this host's RAM; "cuda": one
    GPU each) under ddp and fsdp, against `device_memory` ("80GiB"; default: what this machine has available)."""
    if world < 1:
        raise DistillError(f"--world must be at least 1 (got {world})", where="--world")
    if device_memory:
        limit, source = parse_bytes(device_memory), f"--device-memory {device_memory}"
    else:
        limit, source = available_memory(device)
    plans = {mode: plan(workload(cfg, world, device, mode)) for mode in ("ddp", "fsdp")}
    chosen = plans[cfg.train.parallel]
    ok = fits(chosen, limit)
    return RunPlan(plans, cfg.train.parallel, limit, source, world, device, ok,
                   [] if ok else advice(chosen.workload, limit, cfg.train.grad_accum))


def measured_peak(device: torch.device) -> tuple[int, str]:
    """This process's peak memory so far: the GPU allocator's peak on CUDA, the peak resident set on CPU."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "GPU allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "RSS"

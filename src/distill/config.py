"""The training configuration: one YAML file, validated. Every field is documented where it is declared.

Unknown keys are errors that name the key and suggest the nearest valid one. `--set a.b=value` overrides
any field from the command line (the value is parsed as YAML, so `--set train.steps=10` is an int).
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from distill.data.formats import data_format
from distill.errors import DistillError
from distill.fileio import decode_text
from distill.loss.divergences import LOSSES
from distill.models.student_init import INITS, InitName
from distill.teachers import CLASSES, LiveTeacherConfig, TeacherConfig, TeacherKind, check_teacher
from distill.teachers.legacy import declare
from distill.teachers.several import MEMBER_FIELDS, TeacherMember, as_teacher, check_members


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraConfig(_Section):
    r: int = Field(8, ge=1, description="LoRA rank: each adapted weight W (d_out × d_in) learns W + (alpha / r) · B A "
                   "with B d_out × r and A r × d_in.")
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator: the update is scaled by alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input during training (0 = none).")
    target_modules: Annotated[list[str], Field(min_length=1)] | Literal["all-linear"] = Field(
        list(LLAMA_PROJECTIONS), description="Layers that get an adapter, by name (a "
        "layer matches when its module path ends with the name): by default the attention and MLP projections of "
        "Llama-style models; 'all-linear' = every linear layer except the output head. The output head and the "
        "input embeddings cannot be targets (the fused loss reads the head's weight directly).")
    save_adapter: bool = Field(False, description="Also write the adapter alone (peft format, safetensors) to "
                               "`<output_dir>/adapter/`, with the base it applies to (for init=fresh or layers, "
                               "the base weights in `adapter/base/`); the student itself is always the merged "
                               "model.")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) and v != "all-linear" else v  # `target_modules: q_proj` = [q_proj]


class PruneConfig(_Section):
    layers: int | None = Field(None, ge=1, description="Decoder layers kept: the most important by block influence "
                               "(1 - cos(layer input, output) on the calibration data), in their order. null = the "
                               "teacher's (or solved from target_params).")
    hidden_size: int | None = Field(None, ge=1, description="Hidden (embedding) channels kept, ranked by mean "
                                    "|RMSNorm output|; head_dim stays the teacher's. null = the teacher's.")
    intermediate_size: int | None = Field(None, ge=1, description="MLP channels kept in every layer, ranked per "
                                          "layer by mean |down_proj input|. null = the teacher's (or solved from "
                                          "target_params).")
    num_heads: int | None = Field(None, ge=1, description="Query heads kept per layer, ranked by the mean norm of "
                                  "their output. Grouped-query attention stays valid: a multiple of the teacher's "
                                  "key/value heads keeps every group (fewer query heads in each); a multiple of the "
                                  "group size keeps the best whole groups. null = the teacher's.")
    target_params: float | None = Field(None, gt=0, description="Solve the shape from a size instead: a share of "
                                        "the teacher's parameters when ≤ 1 (0.5 = half), else a count. Depth and "
                                        "MLP width shrink together (layers = round(√s·L), s the share of decoder "
                                        "parameters left after the embeddings; then the largest intermediate size "
                                        "within the target); hidden_size and num_heads stay as given (else the teacher's); "
                                        "a given layers or intermediate_size is held.")
    calibration_sequences: int = Field(64, ge=1, description="Training sequences the teacher runs over to measure "
                                       "importance (evenly spaced over the training set: deterministic).")

    @model_validator(mode="after")
    def _has_target(self) -> PruneConfig:
        if self.target_params is None and all(getattr(self, k) is None for k in
                                              ("layers", "hidden_size", "intermediate_size", "num_heads")):
            raise ValueError("student.prune needs at least one of layers, hidden_size, intermediate_size, "
                             "num_heads or target_params")
        return self


class StudentConfig(_Section):
    init: InitName = Field(
        "fresh", description="How to build the student: 'fresh' = a new small Llama on the teacher's tokenizer; "
        "'layers' = a copy of the teacher keeping some of its layers; 'pretrained' = an existing model (`model`); "
        "'prune' = the teacher's architecture with fewer layers, channels and heads, the most important ones "
        "kept by activations on the training data (Minitron-style; `prune`).")
    model: str | None = Field(None, description="With init=pretrained: the student model (directory, GGUF or hub id).")
    hidden_size: int = Field(192, ge=8, description="init=fresh: hidden width.")
    num_layers: int = Field(4, ge=1, description="init=fresh: decoder layers.")
    num_heads: int = Field(4, ge=1, description="init=fresh: attention heads (must divide hidden_size).")
    intermediate_size: int | None = Field(None, description="init=fresh: MLP width (default 4 × hidden_size).")
    layers: list[int] | None = Field(None, description="init=layers: teacher layer indices to keep, e.g. [0, 10, 20].")
    tokenizer: str | None = Field(None, description="init=fresh: build the student on this model's tokenizer "
                                  "(a model spec) instead of the teacher's; needs loss.cross_tokenizer.")
    every: int | None = Field(None, ge=1, description="init=layers: keep every k-th teacher layer (0, k, 2k, ...).")
    name: str = Field("distill-student", description="Model name written into the model card and lineage.")
    lora: LoraConfig | None = Field(None, description="Train low-rank adapters (LoRA, with peft) instead of every "
                                    "weight: only the adapters get gradients and optimizer state; the written "
                                    "student is the merged model. Works with every init (most useful with "
                                    "pretrained and layers). null = train every weight.")
    prune: PruneConfig | None = Field(None, description="init=prune: the pruned shape (layers, hidden_size, "
                                      "intermediate_size, num_heads, or target_params) and the calibration data.")

    @model_validator(mode="after")
    def _init_rules(self) -> StudentConfig:
        INITS[self.init].check(self)  # each kind's rules live in distill.models.student_init
        return self

    @property
    def cut_from_teacher(self) -> bool:
        """Whether the student is cut from the teacher's weights (`init` layers or prune): the teacher is read."""
        return INITS[self.init].cut_from_teacher


class DataConfig(_Section):
    path: str = Field("shakespeare", description="Training data: 'shakespeare' (bundled public-domain corpus), a "
                      "text file or folder, a JSONL file (`text` or chat `messages`), a Parquet file, or a folder "
                      "written by `distill generate`.")
    format: Literal["auto", "text", "jsonl", "parquet", "generated"] = Field(
        "auto", description="How to read `path`; 'auto' decides from the file suffix / folder contents.")
    seq_len: int = Field(256, ge=8, description="Tokens per training sequence (plain text is packed to this length; "
                         "longer chat examples are truncated).")
    heldout_fraction: float = Field(0.05, gt=0, lt=0.5, description="Share of sequences kept out of training for "
                                    "evaluation (deterministic split by `seed`).")
    max_sequences: int | None = Field(None, ge=1, description="Use at most this many sequences (after the split).")
    seed: int = Field(0, description="Seed of the train/held-out split.")
    reasoning: Literal["keep", "drop"] = Field(
        "keep", description="Chat rows: an assistant's reasoning (`reasoning_content`, or `<think>...</think>` in its "
        "content) is kept as `<think>\\n...\\n</think>\\n\\n` before its answer and trained on ('keep'), or removed "
        "before rendering ('drop'). See docs/agents.md.")
    teacher_shares: dict[str, float] | None = Field(
        None, description="With several teachers: the share of training sequences drawn from the rows routed to "
        "each teacher (by name; `ensemble` for the rows that name none), e.g. {math: 1, chat: 1} for half each "
        "whatever the files' sizes. A smaller group's rows are repeated within an epoch (every row is still seen "
        "at least once per epoch). Every group the data holds needs a share, and only those. null = as the data holds "
        "them.")
    tools: str | None = Field(None, description="On-policy with tools: a Python module whose public functions (type "
                              "hints + Google-style docstrings) are the tools, or a JSON file of OpenAI tool schemas "
                              "(with tool_command). During on-policy sampling the student's tool calls run through "
                              "the tool runner of `distill generate --tools` and their results join its trajectory "
                              "(docs/agents.md). Needs chat data and train.on_policy_fraction > 0.")
    tool_command: str | None = Field(None, description="With `tools` a JSON schema file: the command that runs a "
                                     "call (it reads {\"name\", \"arguments\"} as JSON on stdin, prints the result).")
    tool_timeout_s: float = Field(10.0, gt=0, description="Seconds a tool call may run before its process group is "
                                  "killed (the tool message then says so).")
    tool_max_chars: int = Field(4000, ge=1, description="Characters of a tool's answer kept; the rest is cut and "
                                "marked.")


class HiddenLossConfig(_Section):
    weight: float = Field(1.0, gt=0, description="Weight of the intermediate-layer term, per scored token like the "
                          "KD and CE terms (the term is averaged over the layer pairs).")
    kind: Literal["cosine", "mse"] = Field("cosine", description="'cosine' = 1 − cos(projected student state, "
                                           "teacher state), scale-free; 'mse' = mean squared error per channel, in "
                                           "the teacher's units (large where its residual stream is: lower weight).")
    layers: Literal["auto"] | Annotated[list[Annotated[list[Annotated[int, Field(ge=0)]],
                                                       Field(min_length=2, max_length=2)]], Field(min_length=1)] \
        = Field("auto", description="Which decoder-layer outputs are compared, as [[student, teacher], ...] "
                "(0-based). 'auto' = every student layer, paired with the teacher layer ending the stretch it "
                "stands for: for a student cut from the teacher (init=prune or layers, or a directory written by "
                "`distill prune`) the kept teacher layers decide it, else the layers are spread evenly "
                "(distill.loss.hidden).")


class LossConfig(_Section):
    kind: Literal[LOSSES] = Field("forward_kl", description="Divergence between teacher and student: forward_kl, "  # type: ignore[valid-type]
                                  "reverse_kl, jsd (generalized, with beta), skew_forward_kl / skew_reverse_kl "
                                  "(with alpha), or tvd.")
    beta: float = Field(0.5, ge=0, le=1, description="jsd: 0 = forward KL, 1 = reverse KL, 0.5 = symmetric JS.")
    alpha: float = Field(0.1, ge=0, lt=1, description="skew losses: the teacher (or student) share in the mixture.")
    temperature: float = Field(1.0, gt=0, description="Softens both distributions; the KD term is scaled by T².")
    kd_weight: float = Field(1.0, ge=0, description="Weight of the distillation term.")
    ce_weight: float = Field(0.0, ge=0, description="Weight of cross-entropy on the data tokens (sequence-level KD "
                             "on generated answers uses this term).")
    chunk_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description="Tokens per loss chunk: peak loss memory grows with chunk_size × vocabulary, never with "
        "batch × sequence. 'auto' = the most rows whose [chunk, vocab] fp32 buffer fits 26 MiB on CPU (under "
        "glibc's pinned 32 MB mmap threshold, so buffers are reused, not faulted in: 128 rows for a 49k "
        "vocabulary, 48 for 128k) or 128 MiB on GPU, in multiples of 16 (distill.loss.fused.chunk_rows). "
        "An integer fixes it.")
    backward: Literal["fused", "recompute"] = Field(
        "fused", description="'fused' computes each chunk's gradient during the forward pass (Liger-style, "
        "fastest); 'recompute' recomputes chunk logits in backward (less code in the hot path, slower).")
    cross_tokenizer: Literal["align", "uld"] | None = Field(
        None, description="Teacher and student tokenizers differ: 'align' = teacher top-k translated into student "
        "ids at exactly aligned character boundaries; 'uld' = L1 between sorted probabilities (Universal Logit "
        "Distillation). null = same tokenizer (required by every other mode).")
    cross_top_k: int = Field(64, ge=1, description="cross_tokenizer: teacher entries kept per aligned position.")
    warn_ratio: float = Field(100.0, gt=1, description="Warn when one weighted loss term is this many times "
                              "larger than the other (the KD term would silently do nothing).")
    hidden: HiddenLossConfig | None = Field(
        None, description="Intermediate-layer loss: pull the outputs of mapped student decoder layers towards the "
        "teacher's (through a learned linear projection when the widths differ: trained with the student, not "
        "part of the written model). Needs a live teacher in this process (hidden states are not in a store, an "
        "API answer or a served teacher's log-probabilities). null = off.")


class TrainConfig(_Section):
    steps: int = Field(200, ge=1, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Sequences per micro-batch, across all data-parallel ranks.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW).")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Final learning rate of the cosine schedule, as a "
                                "fraction of lr.")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up steps before the cosine decay.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(0, description="Seed for initialization, data order and sampling.")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: torch's choice).")
    checkpoint_every: int = Field(50, ge=1, description="Save a resumable checkpoint every N steps.")
    eval_every: int = Field(50, ge=1, description="Held-out KL and loss every N steps (and at the end).")
    eval_sequences: int = Field(16, ge=1, description="Held-out sequences used for the periodic evaluation.")
    on_policy_fraction: float = Field(0.0, ge=0, le=1, description="GKD λ: share of batches where the student "
                                      "samples its own continuations and the teacher scores them.")
    sample_temperature: float = Field(1.0, gt=0, description="On-policy sampling temperature.")
    sample_max_new_tokens: int = Field(64, ge=1, description="On-policy: new tokens per sampled continuation.")
    sample_fast: bool = Field(True, description="On-policy: sample with a static KV cache and a minimal decode "
                              "loop (the same samples as transformers' `generate` for the same seed, less work per "
                              "token); false = `generate` itself.")
    sample_max_turns: int = Field(4, ge=1, description="On-policy with data.tools: assistant turns per sampled "
                                  "trajectory at most (each turn up to sample_max_new_tokens; the whole trajectory "
                                  "up to data.seq_len tokens).")
    progress: bool = Field(True, description="Show a progress bar.")
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="Under torchrun: 'ddp' = every rank holds the whole student, its gradients and optimizer "
        "state (and the whole teacher); 'fsdp' = PyTorch FSDP2 shards them across ranks per decoder block, and shards "
        "the live teacher's blocks too (gathered one at a time in its forward). Also valid on one process. "
        "Checkpoints are then torch.distributed.checkpoint shards. See docs/scale.md.")
    memory_check: bool = Field(True, description="Before loading any weights, work out the run's peak memory per "
                               "rank (as `distill plan` does) and refuse to start a run that cannot fit, with the "
                               "changes that would make it fit. false = start anyway.")
    activation_checkpointing: bool = Field(False, description="Recompute each student block's activations in the "
                                           "backward pass instead of keeping them (less memory, ~1/3 more compute).")


class OutputConfig(_Section):
    dtype: Literal["fp32", "bf16", "f16"] = Field(
        "bf16", description="Weight type the finished student is saved in (safetensors), recorded in its model "
        "card and lineage: 'bf16' (the default) halves the file and is what vLLM/SGLang serve; 'fp32' keeps the "
        "trained weights exactly (e.g. to continue training from the student, or to compare runs bit for bit); "
        "'f16' for runtimes without bf16. Training, its held-out figures and the resumable checkpoints in "
        "`<output_dir>.ckpt/` are always fp32, whatever this says. `distill export` writes other formats and types.")


class DistillConfig(_Section):
    teacher: TeacherConfig = Field(default_factory=LiveTeacherConfig, description="Where the teacher signal comes "
                                   "from: `kind` (live, store, served, api, cross_tokenizer; default live) and that "
                                   "kind's settings (distill.teachers).")
    teachers: list[TeacherMember] | None = Field(
        None, min_length=2, description="Several teachers instead of one: a list of {name, weight, kind, ...that "
        "kind's settings}. An example whose data row names a teacher (a `teacher` field in JSONL text or chat rows) "
        "is distilled from that teacher alone (routing); one that names none, from the weighted mixture of all "
        "the teachers' distributions in probability space (ensemble). The first is the primary (`teacher` is "
        "it): the student is built on its tokenizer, which the others must share. live, store and served teachers "
        "can be members (distill.teachers.several; docs/multi_teacher.md).")
    student: StudentConfig = Field(default_factory=StudentConfig, description="How the student is built.")
    data: DataConfig = Field(default_factory=DataConfig, description="Training and held-out data.")
    loss: LossConfig = Field(default_factory=LossConfig, description="The loss family and its memory bound.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimization and bookkeeping.")
    output_dir: str = Field("runs/student", description="Where the finished student is written (a Hugging Face "
                            "model directory); checkpoints live in `<output_dir>.ckpt/`.")
    signing_key: str | None = Field(None, description="Ed25519 private key for signing lineage.json (or set "
                                    "$DISTILL_SIGNING_KEY). Never stored in the output.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="How the finished student is saved "
                                 "(its folder is `output_dir`).")

    @property
    def teacher_kind(self) -> TeacherKind:
        """What this run's teacher kind can do (live, store, served, api, cross_tokenizer), its rules checked."""
        return check_teacher(self)

    @model_validator(mode="before")
    @classmethod
    def _declare_teacher(cls, raw: Any) -> Any:
        """An old flat teacher section (no `kind`) gets the kind its fields imply (distill.teachers.legacy); with
        `teachers`, a member without `kind` is live, and `teacher` is the first member."""
        if not isinstance(raw, dict):
            return raw
        if isinstance(raw.get("teachers"), list):
            raw = {**raw, "teachers": [{"kind": "live", **m} if isinstance(m, dict) else m for m in raw["teachers"]]}
            first = raw["teachers"][0] if raw["teachers"] else None
            if isinstance(first, dict) and raw.get("teacher") is None:  # the primary, as one teacher of its kind
                return {**raw, "teacher": {k: v for k, v in first.items() if k not in MEMBER_FIELDS}}
        if not isinstance(raw.get("teacher", {}), dict):
            return raw
        data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        loss = raw.get("loss") if isinstance(raw.get("loss"), dict) else {}
        fields = DataConfig.model_fields
        generated = data_format(str(data.get("path", fields["path"].default)),
                                str(data.get("format", fields["format"].default))) == "generated"
        return {**raw, "teacher": declare(raw.get("teacher", {}), CLASSES, generated=generated,
                                          cross=bool(loss.get("cross_tokenizer")))}

    @model_validator(mode="after")
    def _check(self) -> DistillConfig:
        if self.data.tools and self.train.on_policy_fraction == 0:
            raise ValueError("data.tools runs the student's tool calls during on-policy sampling: set "
                             "train.on_policy_fraction > 0, or remove data.tools (tool conversations train "
                             "off-policy without it)")
        if self.data.tool_command and not self.data.tools:
            raise ValueError("data.tool_command runs the tools of a JSON schema file: set data.tools to it, or "
                             "remove data.tool_command")
        if self.data.teacher_shares and not self.teachers:
            raise ValueError("data.teacher_shares says how often each of several teachers' rows are drawn: set "
                             "`teachers`, or remove data.teacher_shares")
        check_teacher(self)  # every rule about where the teacher signal comes from lives in distill.teachers
        if self.teachers:
            if self.teacher != as_teacher(self.teachers[0]):
                raise ValueError("give `teachers` (several) or `teacher` (one), not both: with `teachers` the first "
                                 "of them is the run's `teacher`")
            check_members(self)
        return self


def _suggest(bad: str, section: type[BaseModel] | None) -> str:
    names = list(section.model_fields) if section else []
    close = difflib.get_close_matches(bad, names, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(names)}"


def _section_types(ann: Any) -> list[type[BaseModel]]:
    """The config sections a field can hold: one (also an optional one, `Section | None`), or each member of a
    discriminated union (the teacher kinds); [] for a plain value."""
    def section(t: Any) -> bool:
        return isinstance(t, type) and typing.get_origin(t) is None and issubclass(t, BaseModel)

    return [ann] if section(ann) else [t for t in typing.get_args(ann) if section(t)]


def _section_at(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, tuple[Any, ...]]:
    """The section an error's location ends in, and the location as the user wrote it (a union's tag, such as the
    teacher kind pydantic inserts, left out)."""
    model: type[BaseModel] | None = DistillConfig
    written: list[Any] = []
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        written.append(part)
        if model is None or part not in model.model_fields:
            return model, (*written, *parts)
        types = _section_types(model.model_fields[part].annotation)
        if len(types) > 1 and parts:  # a discriminated union: the next part is the member's tag
            tags = {t.model_fields["kind"].annotation.__args__[0]: t for t in types}
            model = tags.get(parts.pop(0))
        else:
            model = types[0] if types else None
    return model, tuple(written)


def _suggest_key(bad: str, section: type[BaseModel] | None) -> str:
    """`_suggest`, and for a teacher kind's unknown key that another kind declares, which kind that is."""
    from distill.teachers import CLASSES

    if section in CLASSES.values() and bad not in section.model_fields:
        owners = [name for name, c in CLASSES.items() if bad in c.model_fields]
        if owners:
            return f"'{bad}' is a setting of teacher kind {' / '.join(owners)}, not of kind '{section.KIND.name}'"
    return _suggest(bad, section)


def _validation_error(e: ValidationError, source: str) -> DistillError:
    msgs = []
    for err in e.errors():
        section, loc = _section_at(tuple(err["loc"])[:-1]) if err["loc"] else (None, ())
        loc = (*loc, *tuple(err["loc"])[-1:])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            msgs.append(f"unknown key '{dotted}' ({_suggest_key(str(loc[-1]), section)})")
        else:
            msgs.append(f"'{dotted}': {err['msg']} (got {err.get('input')!r:.60})")
    return DistillError("invalid configuration: " + "; ".join(msgs), where=source,
                        fix="fix the key or value; `distill train --help-config` lists every field with its meaning")


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise DistillError(f"--set expects key=value, got '{item}'", where="--set", fix="write e.g. --set train.steps=20")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def read_yaml(path: str | Path, what: str, fix: str) -> Any:
    """The YAML document in `path`. A file that cannot be read, is binary or is malformed YAML raises a
    one-paragraph DistillError (what, where - with the line and column of a syntax error - and `fix`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DistillError(f"cannot read the {what} ({e.strerror or type(e).__name__})", where=str(path),
                           fix="check the path and its permissions") from None
    text = decode_text(data, what, str(path), f"{fix}, saved as UTF-8 text")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]  # a ReaderError has no `problem`
        raise DistillError(f"malformed YAML in the {what}: {problem}", where=where,
                           fix="fix the YAML syntax (indentation, colons, quotes)") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DistillConfig:
    """Read a YAML config (or the defaults when path is None) and apply `key=value` overrides."""
    raw: dict[str, Any] = {}
    source = str(path) if path else "(defaults)"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise DistillError(f"config file not found: {path}", fix="check the path; examples/ has working configs")
        raw = read_yaml(p, "config file", "pass a YAML config such as examples/demo.yaml") or {}
        if not isinstance(raw, dict):
            raise DistillError("the config must be a YAML mapping of sections (teacher, student, data, loss, train)",
                               where=str(path), fix="see examples/demo.yaml")
    for item in overrides or []:
        keys, value = _parse_override(item)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise DistillError(f"--set {item}: '{k}' is not a section", where="--set")
        node[keys[-1]] = value
    if overrides:
        source += " with --set " + " ".join(overrides)
    try:
        return DistillConfig.model_validate(raw)
    except ValidationError as e:
        raise _validation_error(e, source) from e


def describe_fields(model: type[BaseModel] = DistillConfig, prefix: str = "") -> list[str]:
    """Every config field with its default and documentation, for `distill train --help-config` (each teacher
    kind's fields under its own `kind:` line)."""
    lines = []
    for name, f in model.model_fields.items():
        sections = _section_types(f.annotation)
        if len(sections) == 1:
            lines.append(f"{prefix}{name}:  # {f.description}")
            lines.extend(describe_fields(sections[0], prefix + "  "))
        elif sections:
            lines.append(f"{prefix}{name}:  # {f.description}")
            for section in sections:
                lines.append(f"{prefix}  # kind: {section.KIND.name}"
                             f" — {section.__doc__.strip().splitlines()[0]}")
                lines.extend(describe_fields(section, prefix + "  "))
        else:
            lines.append(f"{prefix}{name}: {f.default!r}  # {f.description}")
    return lines

"""What every teacher kind has: its capabilities, the fields all kinds share, and what opening one is given.

A kind is a pydantic section with a `kind: Literal[...]` tag (the discriminator of `distill.teachers.TeacherConfig`),
a `KIND` record of what it can do, `check(cfg)` for its rules that involve other sections, and `open(inputs, split)`
that returns the teacher source the loss reads. Torch-free: `distill.config` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from distill.config import DistillConfig


@dataclass(frozen=True)
class TeacherKind:
    """What one kind of teacher can do (printed at the start of training, tabled in docs/architecture.md)."""

    name: str
    description: str  # printed at the start of training
    needs_weights: bool  # the teacher model is loaded into the training process
    on_policy: bool  # can score samples the student draws during training
    signal: str  # what reaches the loss: 'dense' (every token), 'sparse' (top-k + tail) or 'sorted' (ULD)
    tails: tuple[str, ...] = ()  # how the mass outside a sparse top-k can be handled (first = default)
    hidden_states: bool = False  # can feed loss.hidden (intermediate layers)


@dataclass(frozen=True)
class TeacherInputs:
    """What opening a teacher source may use. `tokenizer` is the student's (the data is tokenized with it).
    `cfg` is the run's config (None outside training: `distill eval` opens a teacher with no run)."""

    cfg: Any  # DistillConfig | None
    teacher: Any  # LoadedModel, or None when the kind needs no weights
    info: Any  # ModelInfo of the teacher's local spec
    tokenizer: Any
    corpus: Any  # distill.data.corpus.Corpus
    world: Any  # distill.training.distributed.World (rank, size, device), or None (CPU)
    sampler: Any = None  # distill.training.sampler.BatchSampler: the coming rows, for sources that prefetch
    start_step: int = 0  # the step training starts (or resumes) at
    hidden_layers: tuple[int, ...] = ()  # loss.hidden: the teacher layers whose outputs the training signal carries
    where: str | None = None  # how the user named this teacher, for errors (None: the config's teacher section)
    examples: frozenset[int] | None = None  # the train examples this source is asked about (a member of several
    # teachers: those routed to it or to the ensemble; sources that prefetch skip the others); None: every example

    @property
    def device(self):
        import torch

        return self.world.device if self.world is not None else torch.device("cpu")


class TeacherBase(BaseModel):
    """The fields every kind shares. A subclass adds `kind: Literal[name]`, its own fields and `KIND`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    KIND: ClassVar[TeacherKind]

    model: str = Field("default", description="Teacher model: 'default' (bundled SmolLM2-135M-Instruct), a GGUF "
                       "file, a local Hugging Face directory, or a hub id (needs network). For a served teacher, the "
                       "served model's name; for a store, the model it was captured from.")
    authorization: str | None = Field(None, description="Authorization record (YAML/JSON) that permits distilling "
                                      "from a teacher whose licence or terms the policy gate would refuse.")
    trust_remote_code: bool = Field(False, description="Allow model code from the teacher's repository to run. Off "
                                    "by default: only enable for repositories you trust.")

    @property
    def local_spec(self) -> str:
        """The model spec to read the teacher's tokenizer (and identity) from on this machine."""
        return self.model

    def check(self, cfg: DistillConfig) -> None:
        """This kind's rules about the other sections (a DistillError for a combination that cannot work)."""

    def open(self, inputs: TeacherInputs, split: str):
        """The teacher source for `split` ('train' | 'heldout'); the caller closes it (`close_source`)."""
        raise NotImplementedError

    def served_origin(self, cfg: DistillConfig) -> dict[str, Any] | None:
        """The server the signal comes from, as {"endpoint", "model", "tokenizer"}; None for a local teacher."""
        return None


"""A live teacher whose tokenizer differs from the student's: each model reads its own tokenization.

`CrossTokenizerTeacher.signal(batch, positions)` follows the `distill.signals.TeacherSource` interface. The
batch is in the student's tokenization; the teacher never sees a student id:

1. every student row is decoded to text with per-token character spans (`distill.crosstok.text`);
2. the text is tokenized by the teacher's tokenizer (with its own <bos>, spans kept) and the teacher runs
   once on the padded batch, in inference mode;
3. scored student positions are aligned to teacher positions by exact character boundaries
   (`distill.crosstok.align`); only aligned positions are projected through the teacher's head, in chunks,
   and reduced to the teacher's top-k at once — no [B, T, V] logits exist;
4. method "align": the top-k is translated into student ids (`distill.crosstok.vocabmap`) -> `SparseSignal`
   (untranslated mass falls into the residual bucket); method "uld": the sorted top-k probabilities ->
   `SortedSignal` for the ULD loss. Unaligned positions carry no teacher signal (ids -1 / valid False).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from distill.crosstok.align import align_positions, translate_topk
from distill.crosstok.text import RowText, TeacherTokens, special_prefix, student_row_text, teacher_tokens
from distill.crosstok.vocabmap import VocabMap, vocab_map
from distill.errors import DistillError
from distill.signals import DenseSignal, LiveTeacher, SortedSignal, SparseSignal

METHODS = ("align", "uld")


@dataclass
class CrossStats:
    """Running counts: how much of the student's scored positions and of the teacher's mass got through."""

    positions: int = 0  # scored student positions asked for
    aligned: int = 0  # of those, aligned to a teacher position
    topk_mass: float = 0.0  # Σ teacher top-k probability at aligned positions
    translated_mass: float = 0.0  # Σ of it that has a student id (method align)
    rows: int = 0
    roundtrip_fallbacks: int = 0  # rows whose spans came from prefix decoding (ids did not round-trip)
    student_tokens: int = 0
    teacher_tokens: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "positions": self.positions, "aligned": self.aligned,
            "aligned_share": self.aligned / max(self.positions, 1),
            "topk_mass": self.topk_mass / max(self.aligned, 1),
            "translated_mass": self.translated_mass / max(self.aligned, 1),
            "translated_share": self.translated_mass / max(self.topk_mass, 1e-12),
            "rows": self.rows, "roundtrip_fallbacks": self.roundtrip_fallbacks,
            "student_tokens": self.student_tokens, "teacher_tokens": self.teacher_tokens, **self.extra,
        }


@dataclass
class Encoded:
    """A batch seen from both sides: student rows as text, teacher tokens, and the position alignment."""

    rows: list[RowText]
    teacher: list[TeacherTokens]
    alignment: list[list[int]]  # per row: student position -> teacher position or -1


class CrossTokenizerTeacher:
    """A teacher model with its own tokenizer, distilled into a student with another tokenizer.

    Args:
        teacher_model: a causal LM (Hugging Face); used in inference mode only.
        teacher_tokenizer / student_tokenizer: fast (Rust) tokenizers; they must differ.
        method: "align" (top-k translated through shared vocabulary entries -> SparseSignal) or "uld"
            (sorted top-k probabilities -> SortedSignal).
        top_k: teacher entries kept per aligned position.
        chunk_size: aligned positions projected through the teacher's head at a time.
    """

    def __init__(self, teacher_model: torch.nn.Module, teacher_tokenizer, student_tokenizer, method: str = "align",
                 top_k: int = 64, chunk_size: int = 256):
        if method not in METHODS:
            raise DistillError(f"unknown cross-tokenizer method {method!r}", where="loss.cross_tokenizer",
                               fix="use 'align' (vocabulary-mapped top-k) or 'uld' (sorted-probability L1)")
        if top_k < 1 or chunk_size < 1:
            raise DistillError(f"top_k ({top_k}) and chunk_size ({chunk_size}) must be at least 1",
                               where="cross-tokenizer teacher", fix="pass positive values")
        for who, tok in (("teacher", teacher_tokenizer), ("student", student_tokenizer)):
            if not getattr(tok, "is_fast", False):
                raise DistillError(f"the {who} tokenizer ({type(tok).__name__}) has no character offsets",
                                   where=f"{who} tokenizer",
                                   fix="use a fast (Rust) tokenizer: AutoTokenizer.from_pretrained(..., use_fast=True)")
        self.live = LiveTeacher(teacher_model, len(teacher_tokenizer))
        self.teacher_tokenizer, self.student_tokenizer = teacher_tokenizer, student_tokenizer
        self.method, self.top_k, self.chunk_size = method, top_k, chunk_size
        self.prefix = special_prefix(teacher_tokenizer)
        self.special_ids = self._special_ids()
        self.vocab: VocabMap | None = vocab_map(teacher_tokenizer, student_tokenizer) if method == "align" else None
        self.stats = CrossStats()
        self.last_teacher_inputs: list[list[int]] = []  # what the teacher was given in the last call
        if self.vocab is not None:
            self.stats.extra["vocab_coverage"] = self.vocab.coverage

    def _special_ids(self) -> dict[int, int | None]:
        """Student special id -> teacher id standing for the same role (eos), or None (dropped)."""
        s, t = self.student_tokenizer, self.teacher_tokenizer
        out: dict[int, int | None] = {int(i): None for i in (s.all_special_ids or [])}
        if s.eos_token_id is not None:
            out[int(s.eos_token_id)] = t.eos_token_id
        return out

    # ------------------------------------------------------------------------------------------- encoding

    def encode(self, batch: dict[str, Tensor]) -> Encoded:
        """Student rows -> text -> teacher tokens, and the alignment of every student position."""
        ids, mask = batch["input_ids"].cpu(), batch["attention_mask"].cpu()
        rows, teacher, alignment = [], [], []
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            if n and not bool(mask[b, :n].all()):
                raise DistillError("cross-tokenizer distillation expects right-padded batches",
                                   where="batch attention_mask", fix="pad rows at the end (distill.data.collate)")
            row = student_row_text(self.student_tokenizer, ids[b, :n].tolist())
            tt = teacher_tokens(self.teacher_tokenizer, row, self.special_ids, self.prefix)
            rows.append(row)
            teacher.append(tt)
            alignment.append(align_positions(row.spans, tt.spans))
        return Encoded(rows, teacher, alignment)

    # ------------------------------------------------------------------------------------------- teacher

    def _device(self) -> torch.device:
        return next(self.live.model.parameters()).device

    def teacher_topk(self, batch: dict[str, Tensor], positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The teacher's top-k at the scored student positions, in teacher ids.

        Returns aligned [N] bool, ids [N, k] long (-1 where unaligned), logprobs [N, k] (-inf where unaligned).
        """
        enc = self.encode(batch)
        B, T = batch["input_ids"].shape
        N, k = int(positions.numel()), self.top_k
        pad = self.teacher_tokenizer.pad_token_id
        pad = 0 if pad is None else int(pad)
        L = max((len(t.ids) for t in enc.teacher), default=1) or 1
        t_ids = torch.full((B, L), pad, dtype=torch.long)
        t_mask = torch.zeros((B, L), dtype=torch.long)
        for b, tt in enumerate(enc.teacher):
            t_ids[b, : len(tt.ids)] = torch.tensor(tt.ids, dtype=torch.long)
            t_mask[b, : len(tt.ids)] = 1
        self.last_teacher_inputs = [list(t.ids) for t in enc.teacher]

        pos = positions.cpu()
        rows_b, cols_t = pos // T, pos % T
        where = torch.full((N,), -1, dtype=torch.long)  # flat teacher index (b * L + u) per scored position
        for i, (b, t) in enumerate(zip(rows_b.tolist(), cols_t.tolist(), strict=True)):
            al = enc.alignment[b]
            if t < len(al) and al[t] >= 0:
                where[i] = b * L + al[t]
        aligned = where >= 0
        out_ids = torch.full((N, k), -1, dtype=torch.long)
        out_lp = torch.full((N, k), -torch.inf)
        if aligned.any():
            device = self._device()
            ids_parts, lp_parts = [], []
            with torch.inference_mode():
                hidden = self.live.hidden_states(t_ids.to(device), t_mask.to(device))  # the one teacher pass
                sel = hidden.reshape(-1, hidden.shape[-1]).index_select(0, where[aligned].to(device))
                head = self.live.model.get_output_embeddings().weight[: self.live.vocab_size]
                dense = DenseSignal(hidden=sel, head=head, softcap=self.live.softcap)
                for start in range(0, sel.shape[0], self.chunk_size):
                    logp = torch.log_softmax(dense.logits(slice(start, start + self.chunk_size)).float(), dim=-1)
                    top = logp.topk(min(k, logp.shape[-1]), dim=-1)
                    ids_parts.append(top.indices.cpu())
                    lp_parts.append(top.values.cpu())
            kk = ids_parts[0].shape[-1]
            out_ids[aligned, :kk] = torch.cat(ids_parts).clone()
            out_lp[aligned, :kk] = torch.cat(lp_parts).clone()

        st = self.stats
        st.positions += N
        st.aligned += int(aligned.sum())
        st.rows += B
        st.roundtrip_fallbacks += sum(not r.roundtrip for r in enc.rows)
        st.student_tokens += sum(len(r.ids) for r in enc.rows)
        st.teacher_tokens += sum(len(t.ids) for t in enc.teacher)
        st.topk_mass += float(out_lp[aligned].exp().sum())
        return aligned, out_ids, out_lp

    # ------------------------------------------------------------------------------------------- signals

    def signal_from_topk(self, aligned: Tensor, t_ids: Tensor, t_lp: Tensor, device: torch.device | None = None
                         ) -> SparseSignal | SortedSignal:
        """Turn teacher top-k (teacher ids) into this method's signal over the student's positions."""
        if self.method == "uld":
            probs = torch.where(aligned.unsqueeze(-1), t_lp.exp(), torch.zeros_like(t_lp))
            return SortedSignal(probs=probs.to(device), valid=aligned.to(device))
        assert self.vocab is not None
        s_ids, s_lp = translate_topk(t_ids, t_lp, self.vocab.t2s)
        self.stats.translated_mass += float(s_lp[aligned].exp().sum())
        return SparseSignal(ids=s_ids.to(device), logprobs=s_lp.to(device))

    def signal(self, batch: dict[str, Tensor], positions: Tensor) -> SparseSignal | SortedSignal:
        aligned, t_ids, t_lp = self.teacher_topk(batch, positions)
        return self.signal_from_topk(aligned, t_ids, t_lp, batch["input_ids"].device)

"""Cross-tokenizer distillation: a teacher and a student that tokenize the same text differently.

- `CrossTokenizerTeacher` — a `TeacherSource` that decodes student rows to text, runs the teacher on its own
  tokenization and returns a signal for exactly the student's scored positions (method "align" or "uld").
- `align_positions`, `translate_topk` — exact character-boundary alignment and vocabulary translation.
- `SortedSignal`, `uld_loss` — the Universal Logit Distillation signal and loss (Boizard et al. 2024), declared
  with the other signal kinds in `distill.signals.sorted`.
- `vocab_map` — teacher id -> student id where both stand for the same bytes (cached per pair).

See docs/cross_tokenizer.md.
"""

from distill.crosstok.align import align_positions, merge_duplicates, translate_topk
from distill.crosstok.teacher import METHODS, CrossStats, CrossTokenizerTeacher
from distill.crosstok.text import RowText, clean_starts, student_row_text, teacher_tokens
from distill.crosstok.vocabmap import VocabMap, build_vocab_map, vocab_map
from distill.signals.sorted import SortedSignal, uld_loss

__all__ = [
    "METHODS", "CrossStats", "CrossTokenizerTeacher", "RowText", "SortedSignal", "VocabMap", "align_positions",
    "build_vocab_map", "clean_starts", "merge_duplicates", "student_row_text",
    "teacher_tokens", "translate_topk", "uld_loss", "vocab_map",
]

"""The teacher signal: one interface, whatever the teacher is.

A *source* (`TeacherSource`) turns a batch into a *signal*: the teacher's view of exactly the positions the loss
scores. Each signal kind is declared once, in its own module, and owns its loss math (`SignalKind` in
`distill.signals.base`): its per-chunk KD terms, its closed-form gradient where one exists, and its top-1 token.
The chunked loss (`distill.loss.fused`) only calls those methods, so it never asks which kind it holds.

| kind              | module     | from                                      | closed-form gradient            |
|-------------------|------------|-------------------------------------------|---------------------------------|
| `DenseSignal`     | `dense`    | a live teacher (factored: hidden @ head)  | forward/reverse KL, JSD(β)      |
| `TailPriorSignal` | `prior`    | a capture store (top-k + tail prior)      | forward KL at T=1, and as dense |
| `SparseSignal`    | `sparse`   | API top-k, a store's bucket mode, align   | forward KL at T=1               |
| `SortedSignal`    | `sorted`   | cross-tokenizer ULD                       | none (autograd)                 |
| `MixtureSignal`   | `mixture`  | several teachers (weighted, per position) | as dense                        |
| `None`            |            | no teacher distribution (CE only)         |                                 |

Batches are dicts of tensors (see `distill.data.corpus.collate`):
    input_ids       [B, T] long
    attention_mask  [B, T] long
    loss_mask       [B, T] bool   position t is scored (it predicts input_ids[t+1])
    targets         [B, T] long   input_ids shifted left, -100 where not scored
    example_ids     [B]    long   index of each row in its dataset (stores use it to find their records)
    topk_ids        [B, T, k] long  (optional) teacher top-k ids from an API or a store, -1 = padding
    topk_logprobs   [B, T, k] float (optional) their log-probabilities, -inf = padding

`positions` is `scored_positions(batch)`: a LongTensor [N] of indices into the B*T flattened positions.
Signals hold exactly those N positions, in that order.
"""

from distill.signals.base import ClosedForm, Signal, SignalKind, TeacherSource, scored_positions
from distill.signals.dense import DenseDistribution, DenseSignal
from distill.signals.mixture import MixtureSignal
from distill.signals.prior import TailPriorSignal
from distill.signals.sorted import SortedSignal, uld_loss
from distill.signals.sources import BatchTopK, LiveTeacher, NoTeacher
from distill.signals.sparse import SparseSignal

__all__ = [
    "BatchTopK", "ClosedForm", "DenseDistribution", "DenseSignal", "LiveTeacher", "MixtureSignal", "NoTeacher", "Signal",
    "SignalKind", "SortedSignal", "SparseSignal", "TailPriorSignal", "TeacherSource", "scored_positions", "uld_loss",
]

"""The client of a teacher behind an inference server (`teacher: {kind: served}`; the server itself, for any
model, is `distill.serve`): the trainer asks it to *score* token sequences.

The wire protocol is vLLM's (`protocol.py`): `POST /v1/completions` with `prompt` as lists of token ids,
`max_tokens: 1` and `prompt_logprobs: k`, answered per prompt position with the top-k next-token log-probabilities
keyed by token id. `distill serve` answers the same request for any model it loads. `client.py` sends it (retries,
start-up identity checks); `source.py` is the `TeacherSource` that keeps requests for the coming micro-batches in
flight while the student computes the current one.
"""

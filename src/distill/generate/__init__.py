"""Black-box distillation: collect answers and log-probabilities from OpenAI-compatible APIs.

`prompts` (prompt sets), `client` (async client with retries and rate limits), `ratelimit`, `store`
(resumable JSONL), `tokenmap` (log-prob token strings to ids), `accounting`, `chat` (prompt rendering) and
`dataset.load_generated` (training examples for the trainer). See docs/blackbox.md.
"""

"""Black-box distillation: collect answers and log-probabilities from OpenAI-compatible APIs.

`prompts` (prompt sets), `client` (async client with retries and rate limits), `ratelimit`, `store`
(resumable JSONL) and `accounting`. Shared with the rest of the package: `distill.tokens` (chat rendering,
log-prob token strings to ids, the chat-completions URL) and `distill.data.generated` (the results file and
the training examples read from it). See docs/blackbox.md.
"""

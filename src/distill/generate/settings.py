"""What `distill.collect` (and `distill generate`) takes: `GenerateSettings` (torch-free; what it gives back is
`distill.generate.collect.GenerateResult`)."""

from __future__ import annotations

from os import PathLike
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill.keys.api import KeySource


class Retries(BaseModel):
    """How a client retries a request that failed or stalled, declared once for every client of an endpoint (the
    served teacher's scoring client, `distill generate`'s client, the derivation test's queries)."""

    model_config = ConfigDict(extra="forbid")

    max_tries: int = Field(6, ge=1, description="Tries per request before giving up on it (`distill generate` records "
                           "the prompt in failures.jsonl for the next run; training stops with its last checkpoint "
                           "resumable).")
    timeout_s: float = Field(120.0, gt=0, description="Seconds per request, the whole answer included (so stalled "
                             "bodies count).")
    backoff_s: float = Field(1.0, ge=0, description="The first backoff step in seconds; it doubles per retry.")


class RequestLimits(Retries):
    """How hard a client of an OpenAI-compatible API may push it, and what its tokens cost: shared by
    `GenerateSettings` and the derivation test's `QueryOptions` (both query through the same client)."""

    model_config = ConfigDict(extra="forbid")

    rpm: float | None = Field(None, gt=0, description="Requests per minute at most (None: unlimited).")
    tpm: float | None = Field(None, gt=0, description="Tokens per minute at most, prompt + completion (None: "
                              "unlimited).")
    price_in: float = Field(0.0, ge=0, description="USD per million prompt tokens, for the cost.")
    price_out: float = Field(0.0, ge=0, description="USD per million completion tokens, for the cost.")


class GenerateSettings(RequestLimits, KeySource):
    """One black-box generation run against an OpenAI-compatible API; a field with a `distill generate` flag has
    its name (`--max-tokens`: max_tokens), except `timeout_s`, `backoff_s` and `tool_timeout_s` (`--timeout`,
    `--backoff`, `--tool-timeout`) and `progress` (`--no-progress`). Without a key source, the key is
    OPENAI_API_KEY's when that is set."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="The API's base URL (e.g. http://127.0.0.1:8000/v1; '/v1' is added when "
                          "missing) or its full .../chat/completions URL.")
    model: str = Field(description="The model name sent to the API.")
    out: str = Field(description="The output folder (results.jsonl, failures.jsonl, accounting.json, source.json); "
                     "running again with the same folder resumes.")
    prompts: str | list[list[dict[str, Any]]] | None = Field(
        None, description="The prompts: a .jsonl file (`prompt` or `messages` per line), a text file (one prompt per "
        "line), 'chatterbot' or None (the English conversations of chatterbot-corpus), or the chat-message lists "
        "themselves.")
    limit: int | None = Field(None, ge=1, description="Use only the first this many prompts (None: all).")
    concurrency: int = Field(8, ge=1, description="Requests in flight at most.")
    top_logprobs: int = Field(0, ge=0, description="Top log-probabilities asked per token (0: none; OpenAI allows up "
                              "to 20).")
    n: int = Field(1, ge=1, description="Samples per prompt.")
    max_tokens: int = Field(256, ge=1, description="New tokens per sample.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (0: greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    seed: int | None = Field(None, description="The sampling seed sent to the API (None: none sent).")
    tokenizer: str | None = Field(None, description="The teacher's tokenizer spec ('default', a model folder, a "
                                  ".gguf), to map the returned log-prob tokens to ids (None: not mapped).")
    backoff_cap_s: float = Field(60.0, ge=0, description="The longest backoff step in seconds.")
    authorization: str | None = Field(None, description="An authorization record permitting a teacher whose terms "
                                      "the policy gate refuses.")
    teacher_spec: str | None = Field(None, description="For a local server: the model it serves ('default', a "
                                     "folder, a .gguf), so the policy gate can identify it (default: tokenizer).")
    tools: str | None = Field(None, description="A Python module whose public functions (type hints + Google-style "
                              "docstrings) are the tools, or a JSON file of tool schemas run by tool_command: each "
                              "prompt becomes a whole tool-calling trajectory, every call run locally.")
    tool_command: str | None = Field(None, description="With tools as a JSON schema file: the command that runs a "
                                     "call (reads {\"name\", \"arguments\"} as JSON on stdin, prints the result).")
    max_turns: int = Field(8, ge=1, description="With tools: assistant turns per trajectory at most.")
    tool_timeout_s: float = Field(10.0, gt=0, description="With tools: seconds per tool call.")
    tool_max_chars: int = Field(4000, ge=1, description="With tools: characters of a tool's answer kept, the rest "
                                "cut.")
    progress: bool = Field(True, description="Show a progress bar.")

    @field_validator("out", "tokenizer", "api_key_file", "authorization", "teacher_spec", "tools",
                     mode="before")
    @classmethod
    def _paths_as_text(cls, v: Any) -> Any:  # a pathlib.Path is as good as its text
        return str(v) if isinstance(v, PathLike) else v

    @field_validator("prompts", mode="before")
    @classmethod
    def _prompt_lists(cls, v: Any) -> Any:
        if v is None or isinstance(v, str | PathLike):
            return v if v is None else str(v)
        if isinstance(v, list) and all(isinstance(p, list) and all(isinstance(m, dict) for m in p) for p in v):
            return v
        raise ValueError(f"must be a prompt file, 'chatterbot', or a list of chat-message lists such as "
                         f"[[{{'role': 'user', 'content': 'Hi'}}]] (got {v!r:.60})")

    @model_validator(mode="after")
    def _tool_rules(self) -> GenerateSettings:
        if self.tool_command and not self.tools:
            raise ValueError("--tool-command runs the tools of --tools tools.json; add --tools with the JSON schema "
                             "file, or leave out --tool-command")
        if self.tools and (self.n != 1 or self.top_logprobs):
            raise ValueError("--tools generates one trajectory per prompt, without log-probabilities; leave out --n "
                             "and --top-logprobs")
        return self

"""Request bodies of the OpenAI-compatible endpoints, validated strictly (wrong types are refused, not coerced).

Unknown fields are ignored, as OpenAI-compatible servers commonly do. Range checks that depend on the server's
configuration (max_tokens, n) are applied by the app, not here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def integral(value: Any) -> Any:
    """An integral float as an int (19.0 -> 19, also inside lists); any other value unchanged.

    The OpenAI API accepts `"max_tokens": 19.0` (JSON has one number type); 19.5 is still refused by the strict
    int check that follows, and so are booleans and strings."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    integer_fields: ClassVar[tuple[str, ...]] = ()  # fields where an integral float counts as an integer

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.integer_fields:
            return {k: integral(v) if k in cls.integer_fields else v for k, v in data.items()}
        return data


class ContentPart(_Strict):
    """A part of a message's content; only text parts are supported."""

    type: Literal["text"]
    text: str


class FunctionCall(_Strict):
    name: str = Field(min_length=1)  # the tool called
    arguments: str  # its arguments, a JSON object as a string (as OpenAI sends them)


class ToolCall(_Strict):
    """A tool call of an earlier assistant message."""

    id: str  # answered by the `tool` message with this tool_call_id
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Strict):
    """One chat message."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: the call this message answers
    reasoning_content: str | None = None  # assistant: its reasoning, rendered as <think>...</think> before the text

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class FunctionDefinition(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema of the arguments
    strict: bool | None = None  # accepted and ignored (no constrained decoding)


class Tool(_Strict):
    """A tool the model may call."""

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Strict):
    include_usage: bool = False  # send a last chunk with usage counts


class _Common(_Strict):
    integer_fields: ClassVar[tuple[str, ...]] = ("n", "seed")
    model: str = Field(min_length=1)  # a name from GET /v1/models
    temperature: float | None = Field(None, ge=0, le=2)  # 0 = greedy; default 1
    top_p: float | None = Field(None, gt=0, le=1)  # nucleus sampling mass; default 1
    n: int | None = Field(None, ge=1)  # choices per prompt; default 1
    stop: str | list[str] | None = None  # up to 4 strings that end a choice
    seed: int | None = None  # same seed + same request = same output
    stream: bool | None = False  # server-sent events
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted and ignored

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatCompletionRequest(_Common):
    """POST /v1/chat/completions."""

    integer_fields: ClassVar[tuple[str, ...]] = ("n", "seed", "max_tokens", "max_completion_tokens", "top_logprobs")

    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)  # new tokens per choice
    max_completion_tokens: int | None = Field(None, ge=1)  # newer name of max_tokens; wins when both are given
    logprobs: bool | None = False  # return log-probabilities of the sampled tokens
    top_logprobs: int | None = Field(None, ge=0, le=20)  # alternatives per token (needs logprobs=true)
    tools: list[Tool] | None = None  # rendered into the prompt; `<tool_call>` blocks come back as tool_calls
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None  # 'auto' (default with tools)
    # or 'none' (tools left out of the prompt); 'required' and a named tool need constrained decoding: refused
    parallel_tool_calls: bool | None = None  # false: only the first call of a choice is returned


class CompletionRequest(_Common):
    """POST /v1/completions (legacy)."""

    integer_fields: ClassVar[tuple[str, ...]] = ("n", "seed", "max_tokens", "logprobs", "prompt_logprobs", "prompt")

    prompt: str | list[str] | list[int] | list[list[int]]  # text(s) or token id list(s)
    max_tokens: int | None = Field(None, ge=1)  # new tokens per choice; default 16
    logprobs: int | None = Field(None, ge=0, le=20)  # alternatives per token in the legacy format
    echo: bool | None = False  # echoing the prompt is not supported (400 when true)
    prompt_logprobs: int | None = Field(None, ge=0)  # vLLM's extension: per prompt token, the top-k given the ones
    # before it, keyed by token id (scoring a sequence for distillation; capped by the server's max_logprobs)


class TokenizeRequest(_Strict):
    """POST /tokenize (vLLM's): the served tokenizer's ids for a text."""

    model: str = Field(min_length=1)
    prompt: str
    add_special_tokens: bool = True

"""Tool conversations: normalization, the template probe, and reasoning kept or dropped."""

from __future__ import annotations

import pytest
from chat_templates import LLAMA31, LLAMA_SPECIALS, QWEN25, with_template

from distill.tokens.toolcalls import (
    ToolFormatError,
    normalize,
    supports_tools,
    with_reasoning,
)


def test_the_probe_tells_tool_templates_from_others(tokenizer):
    assert not supports_tools(tokenizer)  # SmolLM2's ChatML template ignores tools
    assert supports_tools(with_template(tokenizer, QWEN25))
    assert supports_tools(with_template(tokenizer, LLAMA31, LLAMA_SPECIALS))
    assert not supports_tools(with_template(tokenizer, "{{ raise_exception('no') }}"))


def test_normalize_parses_string_arguments_and_checks_call_ids():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"k\": [1, 2]}"}}]},
            {"role": "tool", "tool_call_id": "x", "content": "ok"}]
    out, tools = normalize(msgs, None)
    assert out[0]["content"] == "ab" and tools == []
    assert out[1]["content"] == "" and out[1]["tool_calls"][0]["function"]["arguments"] == {"k": [1, 2]}
    with pytest.raises(ToolFormatError) as e:
        normalize(msgs + [{"role": "tool", "tool_call_id": "x", "content": "twice"}])
    assert e.value.field == "messages[3].tool_call_id"


def test_reasoning_is_kept_as_think_or_dropped():
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "<think>inline</think>\nanswer", "reasoning_content": "field"}]
    assert with_reasoning(msgs, keep=True)[1] == {"role": "assistant",
                                                  "content": "<think>\nfield\ninline\n</think>\n\nanswer"}
    assert with_reasoning(msgs, keep=False)[1] == {"role": "assistant", "content": "answer"}
    assert with_reasoning(msgs, keep=False)[0] is msgs[0]

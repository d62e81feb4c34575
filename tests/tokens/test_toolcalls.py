"""Tool conversations: normalization, the template probe, reasoning kept or dropped, and the `<tool_call>` parser."""

from __future__ import annotations

import json

import pytest
from chat_templates import LLAMA31, LLAMA_SPECIALS, QWEN25, with_template

from distill.tokens.toolcalls import (
    ToolFormatError,
    normalize,
    parse_tool_calls,
    supports_tools,
    tool_support,
    with_reasoning,
)


def test_the_probe_tells_tool_templates_from_others(tokenizer):
    assert not supports_tools(tokenizer)  # SmolLM2's ChatML template ignores tools
    assert supports_tools(with_template(tokenizer, QWEN25))
    assert supports_tools(with_template(tokenizer, LLAMA31, LLAMA_SPECIALS))
    assert not supports_tools(with_template(tokenizer, "{{ raise_exception('no') }}"))
    assert [tool_support(t) for t in (tokenizer, with_template(tokenizer, QWEN25),
                                      with_template(tokenizer, LLAMA31, LLAMA_SPECIALS))] == [
        "fallback", "template", "llama3_json"]
    other = QWEN25.replace("<tool_call>", "<fn>").replace("</tool_call>", "</fn>")
    assert tool_support(with_template(tokenizer, other)) == "unreadable"


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


def test_parser_reads_calls_and_content():
    text = ("Let me compute.\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2, \"b\": 3}}\n</tool_call>\n"
            "<tool_call>{\"name\": \"now\"}</tool_call>")
    content, calls = parse_tool_calls(text)
    assert content == "Let me compute."
    assert [c["function"]["name"] for c in calls] == ["add", "now"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"a": 2, "b": 3}, {}]
    assert all(c["type"] == "function" and c["id"].startswith("chatcmpl-tool-") for c in calls)
    assert len({c["id"] for c in calls}) == 2
    only, calls = parse_tool_calls("<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>")
    assert only is None and len(calls) == 1


@pytest.mark.parametrize("text", [
    "plain answer",
    "<tool_call>{not json}</tool_call>",
    "<tool_call>{\"arguments\": {}}</tool_call>",
    "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
    "<tool_call>{\"name\": \"f\", \"arguments\": {}}",  # cut off by max_tokens
    "<tool_call>{\"name\": \"f\"}</tool_call><tool_call>[1]</tool_call>",
])
def test_parser_leaves_anything_else_as_content(text):
    assert parse_tool_calls(text) == (text, [])


def test_llama_json_calls():
    content, calls = parse_tool_calls('<|python_tag|>{"name": "add", "parameters": {"a": 2}}; {"name": "now", '
                                      '"parameters": {}}', "llama3_json")
    assert content is None and [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("add", {"a": 2}), ("now", {})]
    for text in ("Sure: {\"name\": \"add\"}", '{"name": "add", "parameters": [1]}', '{"name": "add", "param',
                 '{"parameters": {}}', "plain"):
        assert parse_tool_calls(text, "llama3_json") == (text, [])

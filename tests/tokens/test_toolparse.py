"""Tool calls read back out of generated text: `<tool_call>` blocks and Llama 3.1's bare JSON, per template."""

from __future__ import annotations

import json

import pytest
from chat_templates import LLAMA31, LLAMA_SPECIALS, QWEN25, with_template

from distill.tokens.toolparse import parse_tool_calls, tool_support


def test_each_template_says_how_calls_come_back(tokenizer):
    assert [tool_support(t) for t in (tokenizer, with_template(tokenizer, QWEN25),
                                      with_template(tokenizer, LLAMA31, LLAMA_SPECIALS))] == [
        "fallback", "template", "llama3_json"]
    other = QWEN25.replace("<tool_call>", "<fn>").replace("</tool_call>", "</fn>")
    assert tool_support(with_template(tokenizer, other)) == "unreadable"


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

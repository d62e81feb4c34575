"""Reading tool calls back out of generated text, in the format the model was prompted with - what `distill serve`
answers as `tool_calls` (vLLM's `hermes` and `llama3_json` parsers do the same).

`tool_support` says which format a tokenizer's template uses; `parse_tool_calls` splits a text into content and
calls.
"""

from __future__ import annotations

import json
import re
import uuid

from distill.tokens.toolcalls import TOOL_CALL_OPEN, supports_tools

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)

TOOL_SUPPORT = {
    "template": "the chat template renders tools, and its calls are <tool_call> blocks",
    "llama3_json": "the chat template renders tools, and its calls are bare JSON objects (Llama 3.1 style)",
    "fallback": "the chat template has no tool support: tools use the <tool_call> fallback format",
    "unreadable": "the chat template renders tools, but writes calls in a format distill cannot read back",
}
LLAMA_CALL = '"parameters": '  # how Llama 3.1/3.2 templates write a call: {"name": ..., "parameters": {...}}
PYTHON_TAG = "<|python_tag|>"


def tool_support(tokenizer) -> str:
    """How a model does tools (a key of TOOL_SUPPORT): through its template with `<tool_call>` blocks (Qwen2.5,
    Hermes), with Llama 3.1's bare `{"name", "parameters"}` JSON, through the fallback format, or through a
    template whose calls `parse_tool_calls` cannot read back."""
    if not supports_tools(tokenizer):
        return "fallback"
    if TOOL_CALL_OPEN in tokenizer.chat_template:
        return "template"
    return "llama3_json" if LLAMA_CALL in tokenizer.chat_template else "unreadable"


def _call(name: str, args: dict) -> dict:
    return {"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}


def _llama_calls(text: str) -> tuple[str | None, list[dict]]:
    """Llama 3.1's calls: the whole answer is one or more `{"name", "parameters"}` objects (separated by `;`,
    optionally after `<|python_tag|>`), as vLLM's llama3_json parser reads them; anything else is content."""
    body = text.strip().removeprefix(PYTHON_TAG).strip()
    if not body.startswith("{"):
        return text, []
    decoder, calls, pos = json.JSONDecoder(), [], 0
    while pos < len(body):
        try:
            obj, end = decoder.raw_decode(body, pos)
        except json.JSONDecodeError:
            return text, []
        args = obj.get("parameters", obj.get("arguments", {})) if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(args, dict):
            return text, []
        calls.append(_call(obj["name"], args))
        pos = end
        while pos < len(body) and body[pos] in " \n\t;":
            pos += 1
    return None, calls


def parse_tool_calls(text: str, fmt: str = "template") -> tuple[str | None, list[dict]]:
    """Split generated text into its content and its tool calls, as an OpenAI assistant message has them.

    `fmt` is `tool_support`'s answer: 'llama3_json' reads Llama 3.1's bare JSON calls, any other the `<tool_call>`
    blocks. Returns (content, calls); calls are `{"id", "type": "function", "function": {"name", "arguments":
    JSON string}}` with fresh ids. Content is the text before the first call (None when empty). When any call is
    not a JSON object with a string `name` (and object arguments), nothing is parsed: the whole text is content,
    as vLLM's parsers do."""
    if fmt == "llama3_json":
        return _llama_calls(text)
    blocks = _CALL.findall(text)
    if not blocks:
        return text, []
    calls = []
    for b in blocks:
        try:
            obj = json.loads(b)
        except json.JSONDecodeError:
            return text, []
        args = obj.get("arguments", {}) if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(args, dict):
            return text, []
        calls.append(_call(obj["name"], args))
    content = text[: text.index(TOOL_CALL_OPEN)].strip()
    return content or None, calls

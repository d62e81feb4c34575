"""Tool-calling conversations in the OpenAI shape: checked, normalized, rendered where a template cannot, parsed back.

A conversation is `messages` plus an optional `tools` list:

    tools     [{"type": "function", "function": {"name", "description"?, "parameters"?: JSON schema}}]
    assistant {"role": "assistant", "content": str | null, "reasoning_content"?: str,
               "tool_calls"?: [{"id"?, "type": "function", "function": {"name", "arguments": JSON-object string
                                                                          or object}}]}
    tool      {"role": "tool", "tool_call_id"?: str, "content": str}

`normalize` checks every field (a `ToolFormatError` names the field, e.g. `messages[2].tool_calls[0].function.
arguments`) and returns copies with the arguments as objects (the convention of Hugging Face chat templates).

Templates that render tools themselves (Qwen2.5, Llama 3.1, Hermes, ...: `supports_tools` probes the template) get
the normalized messages and `tools=`. Every other template (SmolLM2's, the default teacher's) gets the **fallback
format**, which is Hermes/Qwen2.5's, made of plain role/content messages:

* the tools are described at the end of the system turn (one is added when the conversation has none) between
  `<tools></tools>`, one JSON schema a line, with the instruction to answer calls as below;
* each call of an assistant turn is `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`, on its own
  line after the turn's text;
* each tool result is a `tool` turn whose content is `<tool_response>\\n...\\n</tool_response>`.

`distill.tokens.toolparse` reads calls back out of generated text (what `distill serve` answers with).
Reasoning (`reasoning_content`, or `<think>...</think>` in the content) is kept as `<think>\\n...\\n</think>\\n\\n`
before the turn's text, or dropped: `with_reasoning`.
"""

from __future__ import annotations

import json
import re

ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
THINK = re.compile(r"<think>(.*?)</think>\s*", re.DOTALL)

FALLBACK_INSTRUCTIONS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within <tool_call></tool_call> "
    "XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>")


class ToolFormatError(ValueError):
    """A malformed tool conversation: `field` is the path of the bad value (e.g. `messages[2].tool_calls[0]`)."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


def _text(value, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise ToolFormatError(field, "must be a string, null or a list of {type: text, text} parts")


def _arguments(value, field: str) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as e:
            raise ToolFormatError(field, f"is not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(value, dict):
        raise ToolFormatError(field, f"must be a JSON object of the call's arguments, not {type(value).__name__}")
    return value


def _name(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ToolFormatError(field, "must be a non-empty string")
    return value


def normalize_tools(tools, field: str = "tools") -> list[dict]:
    """The tool list as `{"type": "function", "function": {"name", "description", "parameters"}}` entries."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ToolFormatError(field, "must be a list of {type: function, function: {name, parameters}} objects")
    out = []
    for i, t in enumerate(tools):
        f = f"{field}[{i}]"
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(t.get("function"),
                                                                                               dict):
            raise ToolFormatError(f, "must be {\"type\": \"function\", \"function\": {\"name\", \"parameters\"}}")
        fn = t["function"]
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise ToolFormatError(f"{f}.function.parameters", "must be a JSON schema object")
        desc = fn.get("description", "")
        if not isinstance(desc, str):
            raise ToolFormatError(f"{f}.function.description", "must be a string")
        out.append({"type": "function", "function": {"name": _name(fn.get("name"), f"{f}.function.name"),
                                                     "description": desc, "parameters": params}})
    return out


def _tool_calls(calls, field: str) -> list[dict]:
    if not isinstance(calls, list):
        raise ToolFormatError(field, "must be a list of {id, type: function, function: {name, arguments}}")
    out = []
    for j, c in enumerate(calls):
        f = f"{field}[{j}]"
        if not isinstance(c, dict) or not isinstance(c.get("function"), dict):
            raise ToolFormatError(f, "must be {\"id\", \"type\": \"function\", \"function\": {\"name\", "
                                  "\"arguments\"}}")
        if c.get("type", "function") != "function":
            raise ToolFormatError(f"{f}.type", "must be \"function\"")
        call_id = c.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise ToolFormatError(f"{f}.id", "must be a string")
        fn = c["function"]
        out.append({"id": call_id, "type": "function",
                    "function": {"name": _name(fn.get("name"), f"{f}.function.name"),
                                 "arguments": _arguments(fn.get("arguments"), f"{f}.function.arguments")}})
    return out


def normalize(messages, tools=None) -> tuple[list[dict], list[dict]]:
    """Checked copies of `messages` and `tools` (raises `ToolFormatError`).

    Assistant tool calls get their arguments as objects; a `tool` message must follow an assistant turn with
    calls, and its `tool_call_id`, when given, must name one of the calls still unanswered."""
    if not isinstance(messages, list) or not messages:
        raise ToolFormatError("messages", "must be a non-empty list of {role, content} objects")
    tools = normalize_tools(tools)
    out: list[dict] = []
    open_ids: set[str] = set()
    calls_open = False
    for i, m in enumerate(messages):
        f = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ToolFormatError(f"{f}.role", f"must be one of {', '.join(ROLES)}")
        role = m["role"]
        msg: dict = {"role": role, "content": _text(m.get("content"), f"{f}.content")}
        if role == "assistant":
            if m.get("reasoning_content") is not None:
                msg["reasoning_content"] = _text(m["reasoning_content"], f"{f}.reasoning_content")
            if m.get("tool_calls"):
                msg["tool_calls"] = _tool_calls(m["tool_calls"], f"{f}.tool_calls")
            elif "content" not in m:
                raise ToolFormatError(f"{f}.content", "an assistant message needs content or tool_calls")
            open_ids = {c["id"] for c in msg.get("tool_calls", []) if c["id"]}
            calls_open = bool(msg.get("tool_calls"))
        elif role == "tool":
            if not calls_open:
                raise ToolFormatError(f, "a tool message must follow an assistant message with tool_calls")
            call_id = m.get("tool_call_id")
            if call_id is not None:
                if call_id not in open_ids:
                    raise ToolFormatError(f"{f}.tool_call_id", f"{call_id!r} names no unanswered call of the "
                                          "assistant message before it")
                open_ids.discard(call_id)
                msg["tool_call_id"] = call_id
            if m.get("name") is not None:
                msg["name"] = _name(m["name"], f"{f}.name")
        else:
            calls_open = False
            if "content" not in m:
                raise ToolFormatError(f"{f}.content", "is missing")
        out.append(msg)
    return out, tools


def with_reasoning(messages: list[dict], keep: bool) -> list[dict]:
    """Assistant reasoning as `<think>\\n...\\n</think>\\n\\n` before the turn's text (keep), or removed (drop).

    Reasoning comes from `reasoning_content` or from `<think>...</think>` already in the content; the result has no
    `reasoning_content` field, so every template renders it the same way."""
    out = []
    for m in messages:
        if m["role"] != "assistant":
            out.append(m)
            continue
        m = dict(m)
        parts = [m.pop("reasoning_content", "")] + THINK.findall(m["content"])
        reasoning = "\n".join(p.strip() for p in parts if p.strip())
        body = THINK.sub("", m["content"])
        m["content"] = f"<think>\n{reasoning}\n</think>\n\n{body}" if keep and reasoning else body
        out.append(m)
    return out


def _call_json(call: dict) -> str:
    fn = call["function"]
    return json.dumps({"name": fn["name"], "arguments": fn["arguments"]}, ensure_ascii=False)


def fallback_messages(messages: list[dict], tools: list[dict]) -> list[dict]:
    """Normalized messages as plain {role, content} messages in the fallback format (see the module docstring)."""
    out = []
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            calls = "\n".join(f"{TOOL_CALL_OPEN}\n{_call_json(c)}\n{TOOL_CALL_CLOSE}" for c in m["tool_calls"])
            text = m["content"]
            sep = "" if not text or text.endswith("\n") else "\n"
            out.append({"role": "assistant", "content": f"{text}{sep}{calls}"})
        elif m["role"] == "tool":
            out.append({"role": "tool", "content": f"<tool_response>\n{m['content']}\n</tool_response>"})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if tools:
        block = FALLBACK_INSTRUCTIONS.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))
        if out and out[0]["role"] in ("system", "developer"):
            out[0] = {"role": out[0]["role"], "content": f"{out[0]['content']}\n\n{block}" if out[0]["content"]
                      else block}
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


_probe_cache: dict[str, bool] = {}  # template text -> supports_tools
_PROBE_TOOL = "probe_tool_zq"
_PROBE_ARG = "probe_value_zq"
_PROBE_RESULT = "probe_result_zq"


def supports_tools(tokenizer) -> bool:
    """Whether the tokenizer's chat template renders tools, tool calls and tool results itself.

    Probed, not guessed from the template's text: a conversation with one tool, one call and its result is
    rendered, and the template supports tools when the tool's schema, the call's arguments and the result all
    appear (a template that ignores `tools` or raises on a `tool_calls` message does not)."""
    template = getattr(tokenizer, "chat_template", None)
    if not template or not isinstance(template, str):
        return False
    cache = _probe_cache.get(template)
    if cache is not None:
        return cache
    tool = {"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe",
                                             "parameters": {"type": "object", "properties": {
                                                 "x": {"type": "string"}}, "required": ["x"]}}}
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call0", "type": "function",
                 "function": {"name": _PROBE_TOOL, "arguments": {"x": _PROBE_ARG}}}]},
            {"role": "tool", "tool_call_id": "call0", "content": _PROBE_RESULT}]
    try:
        text = tokenizer.apply_chat_template(msgs, tools=[tool], tokenize=False, add_generation_prompt=True)
        ok = isinstance(text, str) and text.count(_PROBE_TOOL) >= 2 and _PROBE_ARG in text and _PROBE_RESULT in text
    except Exception:  # noqa: BLE001 - any template failure means: not supported
        ok = False
    _probe_cache[template] = ok
    return ok

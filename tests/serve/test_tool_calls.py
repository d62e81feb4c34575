"""Tool calling through `distill serve`: tools rendered into the prompt (the fallback format of the default
template), `<tool_call>` blocks answered as `tool_calls` (vLLM's and OpenAI's shape), tool turns accepted, and the
requests it refuses. A tiny random model never writes a valid call by chance, so the calls are forced by a logits
processor that emits a fixed text (the server's own hook), and the reply to that fixed text is checked."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
import torch

AUTH = {"Authorization": "Bearer sk-alice-123"}
ADD = {"type": "function", "function": {"name": "add", "description": "Add two numbers", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}}
ASK = [{"role": "user", "content": "What is 2+3?"}]
CALL_TEXT = ('Adding.\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call>\n'
             '<tool_call>\n{"name": "add", "arguments": {}}\n</tool_call>')  # 57 tokens


class Emit:
    """A logits processor that makes the model write `text`, then its end-of-turn token; it keeps the prompt it
    was first called with."""

    def __init__(self, tokenizer, text: str):
        self.target = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        self.prompt: list[int] | None = None

    def __call__(self, input_ids, scores):
        if self.prompt is None:
            self.prompt = input_ids[0].tolist()
        step = input_ids.shape[-1] - len(self.prompt)
        out = torch.full_like(scores, -1e9)
        out[:, self.target[min(step, len(self.target) - 1)]] = 0
        return out


@pytest.fixture()
def emit(hooks, tiny_loaded):
    made = []

    def make(text: str) -> Emit:
        made.append(Emit(tiny_loaded.tokenizer, text))
        hooks.processors["alice"] = [made[-1]]
        return made[-1]

    yield make
    hooks.processors.pop("alice", None)


def test_tool_calls_come_back_in_the_openai_shape(client, emit, tiny_loaded, hooks):
    e = emit(CALL_TEXT)
    r = client.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], max_tokens=64)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Adding."
    calls = choice.message.tool_calls
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "add", {"a": 2, "b": 3}), ("function", "add", {})]
    assert all(c.id.startswith("chatcmpl-tool-") for c in calls) and calls[0].id != calls[1].id
    prompt = tiny_loaded.tokenizer.decode(e.prompt)  # the fallback format: the tools in a system turn
    assert prompt.startswith("<|im_start|>system\n# Tools\n\nYou may call one or more functions")
    assert f"<tools>\n{json.dumps(ADD)}\n</tools>" in prompt
    assert prompt.endswith("<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n")
    assert hooks.seen[-1][2]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "add"


def test_parallel_tool_calls_false_keeps_the_first(client, emit):
    emit(CALL_TEXT)
    r = client.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], max_tokens=64,
                                       parallel_tool_calls=False)
    assert [json.loads(c.function.arguments) for c in r.choices[0].message.tool_calls] == [{"a": 2, "b": 3}]


def test_text_without_calls_stays_content(client, emit):
    emit("Five.")
    r = client.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], max_tokens=16)
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content == "Five."
    assert not r.choices[0].message.tool_calls


def test_a_streamed_answer_carries_the_calls(client, emit):
    emit(CALL_TEXT)
    chunks = list(client.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], max_tokens=64,
                                                 stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Adding."
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [
        (0, "add", {"a": 2, "b": 3}), (1, "add", {})]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens > 0


def test_tool_turns_are_rendered_into_the_next_prompt(client, emit, tiny_loaded):
    e = emit("5.")
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5"}]
    r = client.chat.completions.create(model="tiny", messages=history, tools=[ADD], max_tokens=8)
    assert r.choices[0].message.content == "5." and r.choices[0].finish_reason == "stop"
    prompt = tiny_loaded.tokenizer.decode(e.prompt)
    assert prompt.endswith('<|im_start|>assistant\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n'
                           "</tool_call><|im_end|>\n<|im_start|>tool\n<tool_response>\n5\n</tool_response><|im_end|>\n"
                           "<|im_start|>assistant\n")


def test_tool_choice_none_leaves_the_tools_out(client, emit, tiny_loaded):
    e = emit(CALL_TEXT)
    r = client.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], tool_choice="none", max_tokens=64)
    assert r.choices[0].message.content == CALL_TEXT and not r.choices[0].message.tool_calls
    assert "<tools>" not in tiny_loaded.tokenizer.decode(e.prompt)


@pytest.mark.parametrize("change,param,code", [
    ({"tool_choice": "required"}, "tool_choice", "unsupported_value"),
    ({"tool_choice": {"type": "function", "function": {"name": "add"}}}, "tool_choice", "unsupported_value"),
    ({"tools": None, "tool_choice": "auto"}, "tool_choice", "invalid_value"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools.0.function.name",
     "missing_required_parameter"),
    ({"messages": ASK + [{"role": "tool", "tool_call_id": "x", "content": "5"}]}, "messages[1]", "invalid_value"),
    ({"messages": ASK + [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "add", "arguments": "{a: 2}"}}]}]}, "messages[1].tool_calls[0].function.arguments", "invalid_value"),
    ({"messages": ASK + [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {
        "name": "add", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "d", "content": "5"}]},
     "messages[2].tool_call_id", "invalid_value"),
])
def test_bad_tool_requests_are_400s_naming_the_field(server, change, param, code):
    body = {"model": "tiny", "messages": ASK, "tools": [ADD], "max_tokens": 4, **change}
    r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, json=body, timeout=60)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["param"], err["code"]) == (param, code), err


def test_templates_with_their_own_tool_formats(tiny_loaded):
    """Qwen2.5-style (`<tool_call>` blocks) and Llama-3.1-style (bare JSON) templates: calls read back in their
    format; a template writing calls some other way is refused with a 400."""
    from chat_templates import LLAMA31, QWEN25, with_template

    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    other = QWEN25.replace("<tool_call>", "<fn>").replace("</tool_call>", "</fn>")
    # the Llama headers stay plain text here: added special tokens would lie outside the tiny model's vocabulary
    cases = ((QWEN25, CALL_TEXT), (LLAMA31, '{"name": "add", "parameters": {"a": 2, "b": 3}}'), (other, None))
    for template, text in cases:
        tok = with_template(tiny_loaded.tokenizer, template)
        emit = Emit(tok, text or "")
        eng = Engine(tiny_loaded.model, tok, max_batch=2).start()
        try:
            with BackgroundServer(create_app(eng, "tiny", processors_for=lambda name, e=emit: [e])) as srv:
                cl = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=60)
                if text is None:
                    with pytest.raises(openai.BadRequestError, match="own format"):
                        cl.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], max_tokens=4)
                    continue
                r = cl.chat.completions.create(model="tiny", messages=ASK, tools=[ADD], max_tokens=64)
                assert r.choices[0].finish_reason == "tool_calls"
                assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"a": 2, "b": 3}
                assert ADD["function"]["description"] in tok.decode(emit.prompt)  # the tools reached the prompt
        finally:
            eng.close()

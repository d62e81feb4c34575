"""Rendering chat messages to token ids - shared by `distill serve` and the training-set loader, so the
teacher sees exactly the prompt the student is trained on.

Messages here are plain {role, content} dicts, or normalized tool conversations (`distill.tokens.toolcalls.
normalize`): with tools or tool calls, a template that renders tools itself gets them (`tools=`), any other gets
the fallback format of `distill.tokens.toolcalls`.
"""

from __future__ import annotations

from distill.tokens.toolcalls import fallback_messages, supports_tools


def _has_tools(messages: list[dict], tools: list[dict] | None) -> bool:
    return bool(tools) or any(m.get("tool_calls") or m["role"] == "tool" for m in messages)


def chat_text(tokenizer, messages: list[dict], tools: list[dict] | None = None,
              add_generation_prompt: bool = False) -> str:
    """The conversation as text: the chat template (with `tools=` where it supports them), or `role: text` lines.

    Without a chat template the text is `"<role>: <content>\\n"` per message, followed by `"assistant:"` with
    `add_generation_prompt`."""
    if _has_tools(messages, tools) and not supports_tools(tokenizer):
        messages, tools = fallback_messages(messages, tools or []), None
    if getattr(tokenizer, "chat_template", None):
        kwargs = {"tools": tools} if tools else {}
        return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False,
                                             **kwargs)
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return text + "assistant:" if add_generation_prompt else text


def encode_chat(tokenizer, text: str, offsets: bool = False):
    """Token ids of a rendered conversation (the template's own special tokens; BOS added only without a
    template); with `offsets`, the tokenizer's full encoding including `offset_mapping`."""
    templated = bool(getattr(tokenizer, "chat_template", None))
    enc = tokenizer(text, add_special_tokens=not templated, return_offsets_mapping=offsets)
    return enc if offsets else list(enc["input_ids"])


def chat_ids(tokenizer, messages: list[dict], tools: list[dict] | None = None,
             add_generation_prompt: bool = False) -> list[int]:
    """`chat_text` as token ids (`encode_chat`)."""
    return encode_chat(tokenizer, chat_text(tokenizer, messages, tools, add_generation_prompt))


def render_chat(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """Prompt ids: the conversation followed by the template's generation prompt (see `chat_text`)."""
    return chat_ids(tokenizer, messages, tools, add_generation_prompt=True)

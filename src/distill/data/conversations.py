"""Conversation rows - chat `messages`, optionally with `tools`, tool calls and tool results (the OpenAI shape,
`distill.tokens.toolcalls`) - as token ids and a loss mask (torch-free: the JSONL/Parquet loader and the
generated-set loader both use it)."""

from __future__ import annotations

from distill.errors import DistillError
from distill.tokens.chat import chat_text, encode_chat
from distill.tokens.toolcalls import ToolFormatError, normalize, with_reasoning


def conversation_tokens(row: dict, tokenizer, where: str, reasoning: str = "keep") -> tuple[list[int], list[bool]]:
    """A conversation row (`messages`, optional `tools`) as (ids, mask): mask[t] is True when ids[t+1] is a target.

    Only the assistant's tokens - its text, reasoning (when kept) and tool calls - are targets, never system,
    user or tool turns. The text is rendered once per assistant turn to find where each answer starts and ends
    (so the template must render incrementally), then tokenized once whole; a token is a target when its
    characters overlap an answer's."""
    try:
        messages, tools = normalize(row.get("messages"), row.get("tools"))
    except ToolFormatError as e:
        raise DistillError(f"malformed conversation: `{e.field}` {e.problem}", where=where,
                           fix="write rows like {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, "
                           "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", "
                           "\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]}, "
                           "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"...\"}], \"tools\": [...]} "
                           "(the OpenAI chat shape; docs/agents.md)") from None
    messages = with_reasoning(messages, keep=reasoning == "keep")
    text, spans = "", []  # the conversation up to its last assistant turn; each answer's [start, end) characters
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        try:
            prefix = chat_text(tokenizer, messages[:i], tools, add_generation_prompt=True)
            full = chat_text(tokenizer, messages[: i + 1], tools)
        except Exception as e:  # noqa: BLE001 - templates raise on what they cannot render
            raise DistillError(f"the chat template cannot render this conversation: {str(e).rstrip('.!')}", where=where,
                               fix="check the roles and order the template accepts (e.g. one tool call per turn "
                               "for Llama 3.1), or use a tokenizer whose template does") from None
        if not full.startswith(prefix) or not prefix.startswith(text):
            raise DistillError("the chat template does not render conversations incrementally (a later turn "
                               "changes how earlier turns are rendered)", where=where,
                               fix="use JSONL `text` rows instead of `messages` for this tokenizer")
        spans.append((len(prefix), len(full)))
        text = full
    # one tokenization of the whole text: the ids a server would see
    enc = encode_chat(tokenizer, text, offsets=True) if spans else {"input_ids": [], "offset_mapping": []}
    ids = list(enc["input_ids"])
    mask = [any(s < e_t and e > s_t for s, e in spans) for s_t, e_t in enc["offset_mapping"]]
    if not ids:
        raise DistillError("a conversation has no assistant message, so nothing would be learned", where=where,
                           fix="add an assistant turn or use a `text` row")
    return ids, mask[1:] + [False]  # shift: mask[t] says whether ids[t+1] is a target

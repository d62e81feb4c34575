"""Rendering chat messages to prompt token ids - shared by `distill serve` and the training-set loader, so the
teacher sees exactly the prompt the student is trained on."""

from __future__ import annotations


def render_chat(tokenizer, messages: list[dict]) -> list[int]:
    """Prompt ids: the tokenizer's chat template with add_generation_prompt=True, or `role: text` lines.

    Without a chat template the prompt is `"<role>: <content>\\n"` per message followed by `"assistant:"`,
    encoded with the tokenizer's special tokens (BOS where it has one).
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return list(tokenizer(text)["input_ids"])

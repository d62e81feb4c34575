"""Tool-calling conversations as training data: rendering with three templates, masks token by token against a
direct construction, reasoning kept or dropped, and clear errors for malformed rows."""

from __future__ import annotations

import json

import pytest
from chat_templates import LLAMA31, LLAMA_SPECIALS, QWEN25, with_template

from distill.config import DataConfig
from distill.data.corpus import conversation_example, load_corpus
from distill.errors import DistillError
from distill.tokens.toolcalls import FALLBACK_INSTRUCTIONS

ADD = {"type": "function", "function": {"name": "add", "description": "Add two numbers", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}}
ROW = {"tools": [ADD], "messages": [
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": None, "reasoning_content": "Use the tool.",
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "5"},
    {"role": "assistant", "content": "2+3 = 5."}]}
TOOLS_LINE = json.dumps(ADD)
CALL = '{"name": "add", "arguments": {"a": 2, "b": 3}}'


def expected(tokenizer, segments: list[tuple[str, bool]]) -> tuple[list[int], list[bool]]:
    """The direct construction: the segments' text tokenized whole; decoding token by token walks through the
    text, and token t is a target when any of its characters lies in a target segment (an assistant's text,
    reasoning or tool call). mask[t] is True when token t+1 is a target."""
    text = "".join(s for s, _ in segments)
    owner = [flag for s, flag in segments for _ in s]  # per character: in a target segment?
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    target, pos = [], 0
    for i in ids:
        piece = tokenizer.decode([i])
        assert text.startswith(piece, pos)
        target.append(any(owner[pos: pos + len(piece)]))
        pos += len(piece)
    assert pos == len(text)
    return ids, target[1:] + [False]


def check(tokenizer, row, segments, reasoning="keep"):
    ex = conversation_example(row, tokenizer, 4096, "test row", reasoning)
    ids, mask = expected(tokenizer, segments)
    assert ex["input_ids"].tolist() == ids
    assert ex["loss_mask"].tolist() == mask
    return ex


def test_fallback_format_on_the_default_template_masks_token_by_token(tokenizer):
    """SmolLM2's template has no tool support: tools go to a system turn, calls are `<tool_call>` blocks in the
    assistant turn (targets), results a `tool` turn (never a target)."""
    block = FALLBACK_INSTRUCTIONS.format(tools=TOOLS_LINE)
    check(tokenizer, ROW, [
        (f"<|im_start|>system\n{block}<|im_end|>\n", False),
        ("<|im_start|>user\nWhat is 2+3?<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        (f"<think>\nUse the tool.\n</think>\n\n<tool_call>\n{CALL}\n</tool_call><|im_end|>\n", True),
        ("<|im_start|>tool\n<tool_response>\n5\n</tool_response><|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("2+3 = 5.<|im_end|>\n", True)])


def test_fallback_keeps_a_system_turn_parallel_calls_and_drops_reasoning(tokenizer):
    row = {"tools": [ADD], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+3 and 4+5?"},
        {"role": "assistant", "content": "<think>two sums</think>Two calls.", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}},
            {"id": "b", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 4, \"b\": 5}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "5"},
        {"role": "tool", "tool_call_id": "b", "content": "9"},
        {"role": "assistant", "content": "5 and 9."}]}
    block = FALLBACK_INSTRUCTIONS.format(tools=TOOLS_LINE)
    check(tokenizer, row, [
        (f"<|im_start|>system\nBe brief.\n\n{block}<|im_end|>\n", False),
        ("<|im_start|>user\n2+3 and 4+5?<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("Two calls.\n<tool_call>\n" + CALL + "\n</tool_call>\n<tool_call>\n"
         '{"name": "add", "arguments": {"a": 4, "b": 5}}\n</tool_call><|im_end|>\n', True),
        ("<|im_start|>tool\n<tool_response>\n5\n</tool_response><|im_end|>\n", False),
        ("<|im_start|>tool\n<tool_response>\n9\n</tool_response><|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("5 and 9.<|im_end|>\n", True)], reasoning="drop")


def test_qwen_style_template_renders_tools_itself(tokenizer):
    tok = with_template(tokenizer, QWEN25)
    block = FALLBACK_INSTRUCTIONS.format(tools=TOOLS_LINE)
    check(tok, ROW, [
        (f"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n{block}"
         "<|im_end|>\n", False),
        ("<|im_start|>user\nWhat is 2+3?<|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        (f"<think>\nUse the tool.\n</think>\n\n\n<tool_call>\n{CALL}\n</tool_call><|im_end|>\n", True),
        ("<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n", False),
        ("<|im_start|>assistant\n", False),
        ("2+3 = 5.<|im_end|>\n", True)])


def test_llama31_style_template_renders_tools_itself(tokenizer):
    tok = with_template(tokenizer, LLAMA31, LLAMA_SPECIALS)
    tools = json.dumps(ADD, indent=4)
    check(tok, ROW, [
        ("<|im_start|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: "
         "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
         "Given the following functions, please respond with a JSON for a function call with its proper arguments "
         "that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
         f"dictionary of argument name and its value}}.Do not use variables.\n\n{tools}\n\nWhat is 2+3?<|eot_id|>"
         "<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ('{"name": "add", "parameters": {"a": 2, "b": 3}}<|eot_id|>', True),
        ("<|start_header_id|>ipython<|end_header_id|>\n\n5<|eot_id|>", False),
        ("<|start_header_id|>assistant<|end_header_id|>\n\n", False),
        ("2+3 = 5.<|eot_id|>", True)])


def test_a_template_limit_is_a_clear_error(tokenizer):
    """Llama 3.1's template takes one call per turn: a parallel-call row names the row and the template's refusal."""
    tok = with_template(tokenizer, LLAMA31, LLAMA_SPECIALS)
    row = json.loads(json.dumps(ROW))
    row["messages"][1]["tool_calls"].append({"id": "c2", "type": "function",
                                            "function": {"name": "add", "arguments": "{}"}})
    row["messages"].insert(3, {"role": "tool", "tool_call_id": "c2", "content": "0"})
    with pytest.raises(DistillError, match="single tool-calls at once. Where: data.jsonl row 7"):
        conversation_example(row, tok, 4096, "data.jsonl row 7")


def test_reasoning_setting_reaches_the_loaded_corpus(tokenizer, tmp_path):
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(ROW) + "\n")
    kept = load_corpus(DataConfig(path=str(path), seq_len=1024, heldout_fraction=0.4), tokenizer)
    dropped = load_corpus(DataConfig(path=str(path), seq_len=1024, heldout_fraction=0.4, reasoning="drop"),
                          tokenizer)
    assert kept.conversations and kept.fingerprint != dropped.fingerprint
    assert "Use the tool." in tokenizer.decode(kept.train[0]["input_ids"])
    assert "think" not in tokenizer.decode(dropped.train[0]["input_ids"])


@pytest.mark.parametrize("edit,field", [
    (lambda r: r["messages"][1]["tool_calls"][0]["function"].update(arguments="{a: 2"),
     "messages[1].tool_calls[0].function.arguments"),
    (lambda r: r["messages"][1]["tool_calls"][0]["function"].update(arguments="[2, 3]"),
     "messages[1].tool_calls[0].function.arguments"),
    (lambda r: r["messages"][1]["tool_calls"][0]["function"].pop("name"), "messages[1].tool_calls[0].function.name"),
    (lambda r: r["messages"][2].update(tool_call_id="c9"), "messages[2].tool_call_id"),
    (lambda r: r["messages"].insert(1, {"role": "tool", "content": "5"}), "messages[1]"),
    (lambda r: r["messages"][0].update(role="robot"), "messages[0].role"),
    (lambda r: r.update(tools={"add": ADD}), "tools"),
    (lambda r: r["tools"][0]["function"].update(parameters="a, b"), "tools[0].function.parameters"),
])
def test_malformed_tool_rows_name_the_row_and_field(tokenizer, tmp_path, edit, field):
    bad = json.loads(json.dumps(ROW))
    edit(bad)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DistillError) as e:
        load_corpus(DataConfig(path=str(path), seq_len=256), tokenizer)
    msg = str(e.value)
    assert f"`{field}`" in msg and "row 2" in msg and "What to do:" in msg


def test_parquet_tool_rows_equal_jsonl_ones(tokenizer, tmp_path):
    """Parquet unifies struct keys across rows (nulls for the missing ones): the rows read back as written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    rows = [ROW, {**ROW, "tools": [other, ADD]}, {"messages": [{"role": "user", "content": "Hi"},
                                                                {"role": "assistant", "content": "Hello."}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = (load_corpus(DataConfig(path=str(tmp_path / f"t.{s}"), seq_len=1024, heldout_fraction=0.3), tokenizer)
            for s in ("parquet", "jsonl"))
    assert [x["input_ids"].tolist() for x in a.train + a.heldout] == [x["input_ids"].tolist()
                                                                       for x in b.train + b.heldout]

"""On-policy distillation with tools: the student's calls executed, results appended, only its own tokens scored.

The student's turns are scripted through the documented seam (`ToolRollout.sample_turn`), so the trajectory is
known; everything else - prompt extraction, call parsing, the tool runner (a real process per call), the rendering
of tool turns, masks, the teacher's scoring and the loss - is the real code, checked against direct constructions
on SmolLM2's tokenizer (the fallback tool format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from chat_templates import LLAMA31, LLAMA_SPECIALS, QWEN25, with_template

from distill.config import load_config
from distill.data.corpus import collate, conversation_example
from distill.errors import DistillError
from distill.generate.tools import load_tools
from distill.training.toolrollout import ToolRollout

TOOLS = Path(__file__).resolve().parents[2] / "examples" / "agents" / "tools.py"
EOS = "<|im_end|>"
CALL = '<tool_call>\n{"name": "calculate", "arguments": {"a": 6, "op": "*", "b": 7}}\n</tool_call>'
BAD_CALL = '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>'
ANSWER = "6 times 7 is 42."


def _row(question: str) -> dict:
    return {"tools": list(load_tools(TOOLS).schemas),
            "messages": [{"role": "system", "content": "Use the tools."}, {"role": "user", "content": question},
                         {"role": "assistant", "content": "I do not know."}]}


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _tool_turn(result: str) -> str:
    """How SmolLM2's template closes a call turn and renders a result (the fallback format), written out."""
    return f"\n<|im_start|>tool\n<tool_response>\n{result}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"


def _run_config(tmp_path: Path, teacher: Path, *extra: str):
    """A tiny on-policy run with the example tools on six one-answer conversations."""
    data = tmp_path / "chats.jsonl"
    data.write_text("".join(json.dumps(_row(f"What is {i} times 7?")) + "\n" for i in range(6)))
    return load_config(None, [
        f"teacher.model={teacher}", f"data.path={data}", "data.heldout_fraction=0.2", f"data.tools={TOOLS}",
        "student.hidden_size=32", "student.num_layers=1", "student.num_heads=2", "train.progress=false",
        "train.on_policy_fraction=1.0", f"output_dir={tmp_path / 'student'}", *extra])


class Scripted:
    """A turn sampler playing fixed texts: script[row][turn]; records the prompts it was given."""

    def __init__(self, tokenizer, script: list[list[str]]):
        self.tokenizer, self.script, self.prompts = tokenizer, script, []
        self.rows: list[int] = []

    def __call__(self, student, prompts, max_new_tokens, temperature, stop_ids, pad_id, seed):
        self.prompts.append(prompts)
        turn = len(self.prompts) - 1
        live = [r for r in range(len(self.script)) if turn < len(self.script[r])]
        assert len(live) == len(prompts)
        return [(_ids(self.tokenizer, self.script[r][turn]) + [stop_ids[0]])[:max_new_tokens] for r in live]


def _batch(tokenizer, questions: list[str], seq_len: int = 512):
    rows = [conversation_example(_row(q), tokenizer, seq_len, "test") for q in questions]
    return collate(rows, tokenizer.pad_token_id, list(range(len(rows))))


def _rollout(tokenizer, script, overrides=()) -> tuple[ToolRollout, Scripted]:
    cfg = load_config(None, ["train.on_policy_fraction=1.0", f"data.tools={TOOLS}", "data.seq_len=512",
                             *overrides])
    from distill.models.students import fresh_llama

    student = fresh_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2)
    rollout = ToolRollout.from_config(cfg, tokenizer, student, conversations=True)
    rollout.sample_turn = Scripted(tokenizer, script)
    return rollout, rollout.sample_turn


def test_trajectory_with_tool_calls_masks_only_the_students_tokens(tokenizer):
    """Row 0 calls calculate (a real tool process answers 42) then answers; row 1 calls an unknown tool (the
    error becomes its tool message) then answers. Ids and masks equal a direct construction token by token."""
    batch = _batch(tokenizer, ["What is 6 times 7?", "What is 6 times 7, please?"])
    rollout, scripted = _rollout(tokenizer, [[CALL, ANSWER], [BAD_CALL, ANSWER]])
    out = rollout.batch(batch, None, max_new_tokens=64, temperature=1.0, seed=0)
    error = "error: unknown tool 'nope'; the tools are calculate, convert"
    eos = tokenizer.convert_tokens_to_ids(EOS)
    for b, (call, result, q) in enumerate([(CALL, "42", "What is 6 times 7?"),
                                           (BAD_CALL, error, "What is 6 times 7, please?")]):
        from distill.tokens.chat import render_chat
        from distill.tokens.toolcalls import normalize

        messages, tools = normalize(_row(q)["messages"][:2], _row(q)["tools"])
        prompt = render_chat(tokenizer, messages, tools)  # system (with the tools) + user + generation prompt
        assert scripted.prompts[0][b] == prompt
        parts = [(prompt, False), (_ids(tokenizer, call) + [eos], True), (_ids(tokenizer, _tool_turn(result)), False),
                 (_ids(tokenizer, ANSWER) + [eos], True)]
        ids = [t for p, _ in parts for t in p]
        own = [flag for p, flag in parts for _ in p]
        assert scripted.prompts[1][b] == ids[: len(ids) - len(_ids(tokenizer, ANSWER)) - 1]
        n = len(ids)
        assert out["input_ids"][b, :n].tolist() == ids
        assert out["attention_mask"][b].tolist() == [1] * n + [0] * (out["input_ids"].shape[1] - n)
        assert out["loss_mask"][b, : n - 1].tolist() == own[1:]
        assert not out["loss_mask"][b, n - 1:].any()
        scored = out["loss_mask"][b]
        assert torch.equal(out["targets"][b, scored], out["input_ids"][b, 1:][scored[:-1]])
        assert (out["targets"][b, ~scored] == -100).all()
    assert (rollout.calls, rollout.errors, rollout.turns) == (2, 1, 4)


def test_last_turn_calls_are_not_run_and_cut_turns_end_the_trajectory(tokenizer):
    """With sample_max_turns: 1 the call is the trajectory's end (no tool runs); a turn cut by the token limit
    (no end-of-turn token) ends its trajectory too, its calls unread."""
    batch = _batch(tokenizer, ["What is 6 times 7?"])
    rollout, scripted = _rollout(tokenizer, [[CALL]], ["train.sample_max_turns=1"])
    out = rollout.batch(batch, None, max_new_tokens=64, temperature=1.0, seed=0)
    assert rollout.calls == 0 and len(scripted.prompts) == 1
    assert int(out["loss_mask"].sum()) == len(_ids(tokenizer, CALL)) + 1
    rollout, scripted = _rollout(tokenizer, [[CALL, ANSWER]])
    short = len(_ids(tokenizer, CALL))  # the call's text without its end-of-turn token
    out = rollout.batch(batch, None, max_new_tokens=short, temperature=1.0, seed=0)
    assert rollout.calls == 0 and len(scripted.prompts) == 1 and int(out["loss_mask"].sum()) == short


def test_on_policy_step_with_a_tool_call_scores_the_trajectory(tmp_path, tiny_teacher_dir, tokenizer, monkeypatch):
    """A whole training step: the live teacher scores the scripted trajectory; the step's KD sum equals
    KL(teacher ‖ student) summed over exactly the student's tokens, computed directly from both models."""
    from transformers import AutoModelForCausalLM

    from distill.training.loop import train_step
    from distill.training.module import StudentLoss
    from distill.training.setup import setup

    cfg = _run_config(tmp_path, tiny_teacher_dir, "data.seq_len=512", "train.steps=1", "train.batch_size=1",
                      "train.eval_every=100", "loss.kind=forward_kl")
    seen = {}
    real = StudentLoss.forward

    def spy(self, batch, positions, signal, normalizer):
        with torch.no_grad():
            seen["student_logits"] = self.student(input_ids=batch["input_ids"],
                                                  attention_mask=batch["attention_mask"]).logits
        seen["batch"] = batch
        loss, stats = real(self, batch, positions, signal, normalizer)
        seen["stats"] = stats
        return loss, stats

    monkeypatch.setattr(StudentLoss, "forward", spy)
    run = setup(cfg)
    try:
        assert run.tools is not None
        run.tools.sample_turn = Scripted(tokenizer, [[CALL, ANSWER]])
        row = train_step(run, 0)
    finally:
        run.close()
    batch, stats = seen["batch"], seen["stats"]
    eos = tokenizer.convert_tokens_to_ids(EOS)
    assert int(batch["loss_mask"].sum()) == len(_ids(tokenizer, CALL)) + len(_ids(tokenizer, ANSWER)) + 2
    assert tokenizer.decode(batch["input_ids"][0]).count("<tool_response>\n42\n</tool_response>") == 1
    assert batch["input_ids"][0, -1] == eos
    teacher = AutoModelForCausalLM.from_pretrained(tiny_teacher_dir, dtype=torch.float32)
    with torch.no_grad():
        t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = batch["loss_mask"]
    p_t = torch.log_softmax(t_logits[mask].double(), -1)
    p_s = torch.log_softmax(seen["student_logits"][mask].double(), -1)
    kl = (p_t.exp() * (p_t - p_s)).sum()
    assert stats["kd_tokens"] == int(mask.sum())
    assert float(stats["kd_sum"]) == pytest.approx(float(kl), rel=1e-4)
    assert row["kd"] > 0


def test_tools_config_errors(tokenizer, tmp_path):
    with pytest.raises(DistillError, match="on_policy_fraction"):
        load_config(None, [f"data.tools={TOOLS}"])
    with pytest.raises(DistillError, match="tool_command"):
        load_config(None, ["data.tool_command=cat", "train.on_policy_fraction=0.5"])
    cfg = load_config(None, ["train.on_policy_fraction=1.0", f"data.tools={TOOLS}"])
    with pytest.raises(DistillError, match="conversation data"):
        ToolRollout.from_config(cfg, tokenizer, None, conversations=False)
    bad = tmp_path / "tools.py"
    bad.write_text("def f(x):\n    return x\n")
    cfg = load_config(None, ["train.on_policy_fraction=1.0", f"data.tools={bad}"])
    with pytest.raises(DistillError, match="cannot describe the tool"):
        ToolRollout.from_config(cfg, tokenizer, None, conversations=True)


def test_turn_sampler_left_pads_and_stops_each_row(tokenizer):
    """The default turn sampler: a row sampled beside a longer one (left-padded) gets the tokens it gets alone
    (near-greedy temperature, fixed seed), and each row ends at its first stop token."""
    from distill.models.students import fresh_llama
    from distill.training.toolrollout import cut_at_stop, sample_turn

    student = fresh_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=3)
    short, long = _ids(tokenizer, "Hello there"), _ids(tokenizer, "A much longer prompt than the other one")
    alone = sample_turn(student, [short], 12, 1e-4, [10**6], 2, seed=0)[0]
    both = sample_turn(student, [long, short], 12, 1e-4, [10**6], 2, seed=0)
    assert both[1] == alone and len(alone) == 12
    stop = alone[5]
    assert sample_turn(student, [short], 12, 1e-4, [stop], 2, seed=0)[0] == cut_at_stop(alone, [stop])
    assert cut_at_stop(alone, [stop])[-1] == stop and len(cut_at_stop(alone, [stop])) <= 6


def test_training_run_with_tools_logs_the_rollouts(tmp_path, tiny_teacher_dir):
    from distill.training.loop import train

    cfg = _run_config(tmp_path, tiny_teacher_dir, "data.seq_len=420", "train.steps=2", "train.batch_size=2",
                      "train.sample_max_new_tokens=8", "train.eval_every=2", "train.eval_sequences=1")
    rows = train(cfg).history
    assert [r["tool_turns"] for r in rows] == [2, 4]  # a random student writes no call: one turn per row
    assert all(r["kd"] > 0 and r["tool_calls"] == 0 for r in rows)


@pytest.mark.parametrize("style", ["qwen25", "llama31"])
def test_tool_turn_ids_follow_templates_with_tool_support(tokenizer, style):
    """With a template that renders tools itself, the appended ids are its own tool turn and generation prompt
    (written out here as Qwen2.5's and Llama 3.1's templates render them)."""
    from distill.tokens.toolparse import parse_tool_calls, tool_support
    from distill.training.toolrollout import tool_turn_ids

    if style == "qwen25":
        tok, text, stop = with_template(tokenizer, QWEN25), CALL, EOS
        expected = "\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    else:
        tok, stop = with_template(tokenizer, LLAMA31, LLAMA_SPECIALS), "<|eot_id|>"
        text = '{"name": "calculate", "parameters": {"a": 6, "op": "*", "b": 7}}'
        expected = "<|start_header_id|>ipython<|end_header_id|>\n\n42<|eot_id|><|start_header_id|>assistant" \
                   "<|end_header_id|>\n\n"
    content, calls = parse_tool_calls(text, tool_support(tok))
    assert len(calls) == 1
    calls[0]["id"] = "call_0_0"
    ids = tool_turn_ids(tok, content, calls, ["42"], list(load_tools(TOOLS).schemas), stop)
    assert ids == _ids(tok, expected)

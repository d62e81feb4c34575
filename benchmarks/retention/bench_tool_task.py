"""A tool-use task with a checked answer: teacher, off-policy student and on-policy-with-tools student (issue 27).

The task: integer arithmetic questions ("What is 37 times 48?", "What is 12 times 9 plus 431?") answered through a
`calculator(expression)` tool (`tool_task_tools.py`), in Distill's conversation format. A correct trajectory calls
the calculator with the question's expression, reads its result and answers "The answer is N."; the problems are
drawn with a fixed seed and split into disjoint train and held-out sets (no expression in both).

1. **Teacher.** The default teacher (SmolLM2-135M-Instruct) has no tool support in its chat template (Distill uses
   the fallback `<tool_call>` format, docs/agents.md) and calls no tool on its own, so the benchmark makes it
   competent: a short fine-tune with Distill's own training (`student.init: pretrained` from the default model,
   cross-entropy only, `loss.kd_weight: 0`) on the correct train trajectories.
2. **Warm-up.** A student half the teacher's size, pruned from it (`student.init: prune`, `target_params: 0.5`:
   the demo's construction, calibrated on the train trajectories) is distilled off-policy for a few steps on them, so that it already answers in the tool format (on-policy
   with tools pays off from such a student, docs/agents.md).
3. **Two arms from the warm-up**, the same steps, seed, learning rate and loss: *off-policy* (the teacher scores the
   data's correct trajectories: `train.on_policy_fraction: 0`) and *on-policy with tools* (the student plays the
   train prompts itself, its calls run through the tool runner, the teacher scores the whole trajectory:
   `train.on_policy_fraction: λ`, `data.tools`).
4. **Task success** on the held-out problems for the teacher, the warm-up and both arms: each model plays every
   held-out prompt through Distill's tool rollout (`distill.training.toolrollout.ToolRollout`, the same code the
   on-policy arm trains with) at a near-greedy temperature; a problem counts as solved when the calculator ran
   without error at least once and the final answer's last integer is the right one.

Usage:  python -m benchmarks.retention.bench_tool_task [--train-problems 200] [--heldout-problems 32]
            [--ft-steps 12] [--warmup-steps 12] [--steps 20] [--on-policy-fraction 1.0] [--threads 2]
        python -m benchmarks.retention.bench_tool_task --smoke     # every size at its smallest (benchmarks/smoke.py)
        python -m benchmarks.retention.bench_tool_task --workdir DIR --arms on_policy --tag rkl --loss-on-policy
            reverse_kl --json OUT.json   # one variant of one arm: the teacher and warm-up of DIR are reused
            (trained there on the first call), the arm is written to DIR/on_policy_rkl
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import RESULTS, write_result
from benchmarks.retention.tool_task_tools import calculator
from distill.config import load_config
from distill.data.conversations import conversation_tokens
from distill.generate.tools import load_tools
from distill.models.loading import load_model
from distill.tokens.toolparse import parse_tool_calls
from distill.training.loop import train
from distill.training.toolrollout import ToolRollout

TOOLS = Path(__file__).with_name("tool_task_tools.py")
SYSTEM = "Use the calculator for every calculation."
WORDS = {"+": "plus", "-": "minus", "*": "times"}
ASSISTANT = "<|im_start|>assistant\n"  # the next-turn header of the fallback format (SmolLM2's template)
NEAR_GREEDY = 1e-4  # evaluation temperature: the rollout's sampler at this temperature picks the top token
SMOKE = {"train_problems": 8, "heldout_problems": 4, "ft_steps": 2, "warmup_steps": 1, "steps": 1, "batch_size": 2,
         "eval_batch": 4, "prune_target": 0.3, "calibration": 2,
         "max_new_tokens": 32}


@dataclass(frozen=True)
class Problem:
    """One question, the calculator expression that answers it, and the answer."""

    question: str
    expression: str
    answer: int


def make_problem(rng: random.Random) -> Problem:
    """Two operands (`a op b`, a and b in 10..999) or three (`a * b ± c` or `a ± b ± c`), each op named in words."""
    a, b, c = rng.randint(10, 999), rng.randint(10, 999), rng.randint(10, 999)
    shape = rng.choice(["ab", "ab", "mul_add", "add_add"])
    if shape == "ab":
        ops = [rng.choice("+-*")]
        if ops[0] == "*":
            b = rng.randint(2, 99)
    elif shape == "mul_add":
        a, b, ops = rng.randint(2, 99), rng.randint(2, 99), ["*", rng.choice("+-")]
    else:
        ops = [rng.choice("+-"), rng.choice("+-")]
    numbers = [a, b, c][: len(ops) + 1]
    words = " ".join(f"{WORDS[o]} {n}" for o, n in zip(ops, numbers[1:], strict=True))
    expression = " ".join([str(numbers[0])] + [f"{o} {n}" for o, n in zip(ops, numbers[1:], strict=True)])
    return Problem(f"What is {numbers[0]} {words}?", expression, int(calculator(expression)))


def problems(n_train: int, n_heldout: int, seed: int) -> tuple[list[Problem], list[Problem]]:
    """Disjoint train and held-out problems (no expression in both), drawn with `seed`."""
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n_train + n_heldout:
        p = make_problem(rng)
        if p.expression not in seen:
            seen.add(p.expression)
            out.append(p)
    return out[:n_train], out[n_train:]


def conversation(p: Problem, tools: list[dict]) -> dict:
    """The correct trajectory of `p` as a conversation row: call the calculator, read its result, answer."""
    call = {"id": "call_0", "type": "function",
            "function": {"name": "calculator", "arguments": json.dumps({"expression": p.expression})}}
    return {"tools": tools, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": p.question},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "content": str(p.answer)},
        {"role": "assistant", "content": f"The answer is {p.answer}."}]}


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def add_licence(model_dir: Path) -> None:
    """A fine-tune of the Apache-2.0 default teacher carries its licence, so the policy gate admits it as a teacher."""
    card = model_dir / "README.md"
    card.write_text(card.read_text().replace("---\n", "---\nlicense: apache-2.0\n", 1))


# --- evaluation: each model plays the held-out prompts through Distill's tool rollout ---

def rollout_for(model_dir: str, data: str, a: argparse.Namespace) -> tuple[object, ToolRollout]:
    """The model of `model_dir` and a ToolRollout over the task's tools (the on-policy arm's settings)."""
    loaded = load_model(model_dir)
    cfg = load_config(None, [f"data.path={data}", f"data.tools={TOOLS}", "train.on_policy_fraction=1.0",
                             f"data.seq_len={a.seq_len}", f"train.sample_max_turns={a.max_turns}"])
    return loaded, ToolRollout.from_config(cfg, loaded.tokenizer, loaded.model, conversations=True)


def prompt_ids(row: dict, tokenizer) -> list[int]:
    """The row up to its first answer (system with the tools, user, generation prompt), as ToolRollout cuts it."""
    ids, mask = conversation_tokens(row, tokenizer, "held-out problem")
    return ids[: mask.index(True) + 1]


def judge(text: str, answer: int, fmt: str) -> dict:
    """One played trajectory (the text after its prompt): whether the calculator ran without error, whether the last
    turn is an answer (no call) whose last integer is `answer`."""
    responses = re.findall(r"<tool_response>\n(.*?)\n</tool_response>", text, flags=re.S)
    called = any(not r.startswith("error:") for r in responses)
    last = text.rsplit(ASSISTANT, 1)[-1] if responses else text
    content, calls = parse_tool_calls(last.split("<|im_end|>", 1)[0], fmt)
    numbers = re.findall(r"-?\d+", content or "")
    correct = not calls and bool(numbers) and int(numbers[-1]) == answer
    return {"called": called, "correct": correct, "success": called and correct}


def task_success(model_dir: str, held: list[Problem], rows: list[dict], data: str, a: argparse.Namespace) -> dict:
    """Share of held-out problems solved (tool called without error, right final answer) by the model of
    `model_dir`, played in batches of `a.eval_batch` at a near-greedy temperature."""
    loaded, rollout = rollout_for(model_dir, data, a)
    tok = loaded.tokenizer
    verdicts, examples, t0 = [], [], time.perf_counter()
    for start in range(0, len(held), a.eval_batch):
        prompts = [prompt_ids(r, tok) for r in rows[start:start + a.eval_batch]]
        played = rollout.trajectories(loaded.model, prompts, a.max_new_tokens, NEAR_GREEDY, seed=start)
        for p, prompt, (ids, _) in zip(held[start:], prompts, played, strict=False):
            text = tok.decode(ids[len(prompt):], skip_special_tokens=False)
            verdicts.append(judge(text, p.answer, rollout.fmt))
            if len(examples) < 3:
                examples.append({"question": p.question, "answer": p.answer, "played": text})
    n = len(verdicts)
    out = {k: sum(v[k] for v in verdicts) / n for k in ("success", "called", "correct")}
    return {**out, "n": n, "solved": sum(v["success"] for v in verdicts), "tool_calls": rollout.calls,
            "tool_errors": rollout.errors, "eval_s": round(time.perf_counter() - t0, 1), "examples": examples}


# --- the three trainings, all through distill.train ---

def run_train(overrides: list[str], common: list[str]) -> dict:
    """One `distill.train` run; its wall time, median step time, last row and KD per step."""
    t0 = time.perf_counter()
    history = train(load_config(None, common + overrides)).history
    steps = sorted(b["time"] - p["time"] for p, b in zip(history[:-1], history[1:], strict=True))
    return {"wall_s": round(time.perf_counter() - t0, 1), "median_step_s": steps[len(steps) // 2] if steps else None,
            "last": {k: history[-1].get(k) for k in ("kd", "ce", "tool_calls", "tool_errors") if k in history[-1]},
            "kd_per_step": [round(r["kd"], 4) for r in history]}


def done(model_dir: Path) -> bool:
    """A model directory written by an earlier call with the same --workdir (reused, not trained again)."""
    return (model_dir / "config.json").exists()


def fine_tune_teacher(out: Path, data: str, a: argparse.Namespace, common: list[str]) -> dict:
    """The default teacher fine-tuned with cross-entropy on the correct train trajectories."""
    info = run_train(["student.init=pretrained", "student.model=default", "loss.kd_weight=0", "loss.ce_weight=1",
                      f"train.steps={a.ft_steps}", f"train.lr={a.ft_lr}",
                      f"data.path={data}", f"output_dir={out}"], common)
    add_licence(out)
    return info


def student_runs(d: Path, teacher: Path, data: str, a: argparse.Namespace, common: list[str]) -> dict:
    """The warm-up (cut from the teacher, off-policy) and the arms of `a.arms` continued from it at equal steps
    (a warm-up already in `d` is reused)."""
    kd = [f"teacher.model={teacher}", f"data.path={data}", f"train.lr={a.lr}"]
    prune = f"student.prune={{target_params: {a.prune_target}, calibration_sequences: {a.calibration}}}"
    info = {}
    if not done(d / "warmup"):
        info["warmup"] = run_train(kd + [f"loss.kind={a.loss}", "student.init=prune", prune,
                                         f"train.steps={a.warmup_steps}", f"output_dir={d / 'warmup'}"], common)
    arm = kd + ["student.init=pretrained", f"student.model={d / 'warmup'}", f"train.steps={a.steps}"]
    if "off_policy" in a.arms:
        info["off_policy"] = run_train(arm + [f"loss.kind={a.loss}", "train.on_policy_fraction=0",
                                              f"output_dir={d / arm_dir('off_policy', a)}"], common)
    if "on_policy" in a.arms:
        on_lr = [f"train.lr={a.lr_on_policy}"] if a.lr_on_policy is not None else []
        on_lr += [f"train.sample_temperature={a.sample_temperature}"] if a.sample_temperature is not None else []
        info["on_policy"] = run_train(arm + on_lr + [
            f"loss.kind={a.loss_on_policy or a.loss}", f"train.on_policy_fraction={a.on_policy_fraction}",
            f"data.tools={TOOLS}", f"train.sample_max_new_tokens={a.max_new_tokens}",
            f"train.sample_max_turns={a.max_turns}", f"output_dir={d / arm_dir('on_policy', a)}"], common)
    return info


def arm_dir(name: str, a: argparse.Namespace) -> str:
    """The folder of an arm: its name, with `--tag` appended (variants of one arm side by side in a --workdir)."""
    return f"{name}_{a.tag}" if a.tag else name


def table(success: dict, a: argparse.Namespace) -> str:
    """The printed result: one row per model."""
    steps = {"teacher": f"{a.ft_steps} CE (fine-tune)", "warmup": f"{a.warmup_steps} off-policy",
             "off_policy": f"{a.warmup_steps} + {a.steps} off-policy",
             "on_policy": f"{a.warmup_steps} + {a.steps} on-policy (λ={a.on_policy_fraction}, "
                          f"{a.loss_on_policy or a.loss}, lr {a.lr_on_policy or a.lr}, "
                          f"T {a.sample_temperature or 1.0})"}
    lines = ["| model | steps | task success | tool called | answer right | n |", "|---|---|---|---|---|---|"]
    for name, s in success.items():
        lines.append(f"| {name} | {steps[name]} | {s['success']:.3f} ({s['solved']}/{s['n']}) | {s['called']:.3f} | "
                     f"{s['correct']:.3f} | {s['n']} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-problems", type=int, default=200)
    ap.add_argument("--heldout-problems", type=int, default=32)
    ap.add_argument("--ft-steps", type=int, default=12, help="teacher fine-tune steps (cross-entropy)")
    ap.add_argument("--ft-lr", type=float, default=1e-4)
    ap.add_argument("--warmup-steps", type=int, default=12, help="student off-policy warm-up steps")
    ap.add_argument("--steps", type=int, default=20, help="steps of each arm after the warm-up")
    ap.add_argument("--lr", type=float, default=3e-4, help="student learning rate (warm-up and both arms)")
    ap.add_argument("--loss", default="forward_kl", help="loss.kind of the warm-up and both arms")
    ap.add_argument("--on-policy-fraction", type=float, default=1.0, help="λ of the on-policy arm")
    ap.add_argument("--loss-on-policy", default=None, help="loss.kind of the on-policy arm (default: --loss)")
    ap.add_argument("--sample-temperature", type=float, default=None, help="train.sample_temperature of the "
                    "on-policy arm (default: the config's, 1.0)")
    ap.add_argument("--lr-on-policy", type=float, default=None, help="learning rate of the on-policy arm "
                    "(default: --lr)")
    ap.add_argument("--prune-target", type=float, default=0.5, help="the student's share of the teacher's params")
    ap.add_argument("--calibration", type=int, default=16, help="train sequences the pruning is calibrated on")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=352)
    ap.add_argument("--max-new-tokens", type=int, default=48, help="tokens per sampled turn (training and eval)")
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--eval-batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="every size at its smallest (checks it runs, not figures)")
    ap.add_argument("--workdir", default=None, help="keep the models in this folder instead of a temporary one; "
                    "a teacher and warm-up already there are reused (not trained or evaluated again)")
    ap.add_argument("--arms", default="off_policy,on_policy", help="the arms trained and evaluated (comma-separated: "
                    "off_policy, on_policy)")
    ap.add_argument("--tag", default="", help="suffix of the arms' folders (variants side by side in a --workdir)")
    ap.add_argument("--json", default=str(RESULTS / "retention" / "tool_task.json"))
    a = ap.parse_args()
    if a.smoke:
        vars(a).update(SMOKE)
    a.arms = [x.strip() for x in a.arms.split(",") if x.strip()]
    unknown = set(a.arms) - {"off_policy", "on_policy"}
    if unknown:
        ap.error(f"--arms: unknown {', '.join(sorted(unknown))} (off_policy, on_policy)")
    return a


def main() -> None:
    a = parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)  # the evaluations' threads (each training sets its own, to the same)
    tools = list(load_tools(TOOLS).schemas)
    train_set, held = problems(a.train_problems, a.heldout_problems, a.seed)
    common = [f"data.seq_len={a.seq_len}", f"train.batch_size={a.batch_size}", f"train.threads={a.threads}",
              "train.progress=false", "train.checkpoint_every=100000", f"train.seed={a.seed}", f"data.seed={a.seed}",
              "data.heldout_fraction=0.02", "train.eval_sequences=4", "train.eval_every=100000",
              "train.warmup_steps=3"]
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-tool-task-") as tmp:
        d = Path(a.workdir) if a.workdir else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        data = write_jsonl(d / "train.jsonl", [conversation(p, tools) for p in train_set])
        held_rows = [conversation(p, tools) for p in held]
        trainings, success, evaluate = {}, {}, []
        if not done(d / "teacher"):
            trainings["teacher"] = fine_tune_teacher(d / "teacher", data, a, common)
            evaluate.append("teacher")
        evaluate += [] if done(d / "warmup") else ["warmup"]
        trainings.update(student_runs(d, d / "teacher", data, a, common))
        for name in evaluate + a.arms:
            success[name] = task_success(str(d / (arm_dir(name, a) if name in a.arms else name)), held, held_rows,
                                         data, a)
            print(json.dumps({name: {k: v for k, v in success[name].items() if k != "examples"}}), flush=True)
    settings = {k: v for k, v in vars(a).items() if k not in ("json", "workdir")}
    record = {"settings": settings, "train_problems": len(train_set), "heldout_problems": len(held),
              "example_problem": conversation(held[0], tools)["messages"][1:], "trainings": trainings,
              "success": success, "wall_s": round(time.perf_counter() - t_all, 1),
              "evaluation": f"near-greedy (temperature {NEAR_GREEDY}) tool rollouts, at most {a.max_turns} turns of "
                            f"{a.max_new_tokens} tokens; success = the calculator ran without error and the last "
                            "turn's last integer is the answer",
              "off_policy_data": "the train set's correct trajectories (the data the teacher was fine-tuned on), "
                                 "scored by the teacher"}
    print(write_result(a.json, record))
    print(table(success, a))


if __name__ == "__main__":
    main()

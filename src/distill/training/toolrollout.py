"""On-policy distillation with tools: the student plays whole agent trajectories.

For each on-policy conversation the prompt is the data row up to its first assistant answer (system, user, the
tools and the generation prompt). The student answers; when its turn ends (its end-of-turn token) with tool calls
(`distill.tokens.toolparse`, in the format its template was prompted with), they run through the same
`distill.generate.tools.ToolRunner` as `distill generate --tools` (own process per call, time and size limits, an
error becomes the tool message), the results are appended as the template renders `tool` turns, followed by the
next generation prompt, and the student goes on - until an answer without calls, `train.sample_max_turns` turns,
or `data.seq_len` tokens. Only the student's own tokens (each turn's sampled text, calls and end-of-turn token)
are scored; prompt, tool results and headers never are.

Turns are sampled for all unfinished conversations at once (`sample_turn`: transformers' `generate`, left-padded,
stopping each row at its end-of-turn token). `ToolRollout.sample_turn` is the seam for another turn sampler (a
scripted one in tests, a faster engine): any callable `(student, prompts, max_new_tokens, temperature, stop_ids,
pad_id, seed) -> list of sampled id lists`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from distill.errors import DistillError
from distill.generate.tools import ToolRunner
from distill.models.lora import causal_lm
from distill.tokens.chat import chat_text
from distill.tokens.toolcalls import normalize
from distill.tokens.toolparse import TOOL_SUPPORT, parse_tool_calls, tool_support

TurnSampler = Callable[..., list[list[int]]]


@torch.no_grad()
def sample_turn(student: torch.nn.Module, prompts: list[list[int]], max_new_tokens: int, temperature: float,
                stop_ids: list[int], pad_id: int, seed: int) -> list[list[int]]:
    """One assistant turn for each prompt, batched (left padding, KV cache): each row's sampled ids, up to and
    including its first stop token, or `max_new_tokens` ids when it never stops."""
    model = causal_lm(student)
    was_training = model.training
    model.eval()
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[b, width - len(p):] = 1
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    out = model.generate(ids.to(device), attention_mask=mask.to(device), do_sample=True, temperature=temperature,
                         top_k=0, top_p=1.0, max_new_tokens=max_new_tokens, pad_token_id=pad_id,
                         eos_token_id=list(stop_ids))
    model.train(was_training)
    return [cut_at_stop(row.tolist(), stop_ids) for row in out[:, width:].cpu()]


def cut_at_stop(ids: list[int], stop_ids: list[int]) -> list[int]:
    """`ids` up to and including the first stop token (all of them when there is none)."""
    for i, t in enumerate(ids):
        if t in stop_ids:
            return ids[: i + 1]
    return ids


def tool_turn_ids(tokenizer, content: str | None, calls: list[dict], results: list[str], tools: list[dict],
                  stop_text: str) -> list[int]:
    """The ids that follow an assistant turn ending in `stop_text` with `calls`: the rest of that turn as the
    template closes it, the `tool` turns holding `results`, and the next generation prompt.

    Rendered by the chat template (or the fallback format) on a minimal conversation, as the difference between
    the conversation with and without the tool turns; a template that does not render incrementally is an error."""
    assistant = {"role": "assistant", "content": content or "", "tool_calls": calls}
    replies = [{"role": "tool", "tool_call_id": c["id"], "content": r} for c, r in zip(calls, results, strict=True)]
    messages, schemas = normalize([{"role": "user", "content": "."}, assistant, *replies], tools)
    before = chat_text(tokenizer, messages[:2], schemas)
    after = chat_text(tokenizer, messages, schemas, add_generation_prompt=True)
    if not after.startswith(before):
        raise DistillError("the chat template does not render tool turns incrementally (adding a tool result "
                           "changes how the assistant's call is rendered)", where="data.tools (on-policy sampling)",
                           fix="use a tokenizer whose template appends turns, or train with tools off-policy "
                           "(train.on_policy_fraction: 0)")
    end = before.rfind(stop_text) if stop_text else -1
    rest = before[end + len(stop_text):] if end >= 0 else ""
    return list(tokenizer(rest + after[len(before):], add_special_tokens=False)["input_ids"])


@dataclass
class ToolRollout:
    """Everything on-policy sampling with tools needs, built once per run (`from_config`); `batch` rolls out one
    micro-batch. `calls`, `errors` and `turns` count what the run's rollouts did (logged per step)."""

    tokenizer: object
    runner: ToolRunner
    fmt: str  # tool_support(tokenizer): the format calls are read in
    stop_ids: list[int]
    max_turns: int
    max_len: int  # tokens per trajectory (data.seq_len)
    sample_turn: TurnSampler = sample_turn
    calls: int = 0
    errors: int = 0
    turns: int = 0

    @classmethod
    def from_config(cls, cfg, tokenizer, student: torch.nn.Module, conversations: bool) -> ToolRollout:
        """Checks `data.tools` against the run (conversation data, a template whose calls can be read) and loads
        the tools (a DistillError names what is wrong); config.py checks that the run samples on-policy."""
        from distill.generate.tools import load_tools

        d, t = cfg.data, cfg.train
        if not conversations:
            raise DistillError("data.tools needs conversation data (chat `messages` rows, with their `tools`)",
                               where=f"data.path={d.path}", fix="point data.path at JSONL/Parquet chat rows or a "
                               "`distill generate --tools` set, or remove data.tools")
        fmt = tool_support(tokenizer)
        if fmt == "unreadable":
            raise DistillError(f"the student's chat template: {TOOL_SUPPORT[fmt]}", where="data.tools",
                               fix="use a tokenizer whose template writes <tool_call> blocks or Llama 3.1 JSON "
                               "calls, or one without tool support (the fallback format)")
        tools = load_tools(d.tools, d.tool_command)
        stop = {tokenizer.eos_token_id}
        eos = getattr(getattr(causal_lm(student), "generation_config", None), "eos_token_id", None)
        stop.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return cls(tokenizer, ToolRunner(tools, d.tool_timeout_s, d.tool_max_chars), fmt,
                   sorted(s for s in stop if s is not None), t.sample_max_turns, d.seq_len)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]

    def _run_calls(self, calls: list[dict]) -> list[str]:
        """Every call of a turn (all conversations), concurrently; each call's tool message."""
        if not calls:
            return []

        async def run_all():
            return await asyncio.gather(*[self.runner.call(c["function"]["name"], c["function"]["arguments"])
                                          for c in calls])

        answers = asyncio.run(run_all())
        self.calls += len(answers)
        self.errors += sum(not ok for _, ok in answers)
        return [text for text, _ in answers]

    def trajectories(self, student: torch.nn.Module, prompts: list[list[int]], max_new_tokens: int,
                     temperature: float, seed: int) -> list[tuple[list[int], list[bool]]]:
        """Each prompt played out: (ids, sampled) where sampled[t] says ids[t] is a student token."""
        seqs = [list(p) for p in prompts]
        sampled = [[False] * len(p) for p in prompts]
        active = [i for i in range(len(seqs)) if len(seqs[i]) < self.max_len]
        for turn in range(self.max_turns):
            if not active:
                break
            new = min(max_new_tokens, max(self.max_len - len(seqs[i]) for i in active))
            outs = self.sample_turn(student, [list(seqs[i]) for i in active], new, temperature, self.stop_ids,
                                    self.pad_id, seed + 7919 * turn)
            self.turns += len(active)
            pending: list[tuple[int, str | None, list[dict], str]] = []
            for i, out in zip(active, outs, strict=True):
                out = list(out)[: self.max_len - len(seqs[i])]
                seqs[i] += out
                sampled[i] += [True] * len(out)
                if turn + 1 == self.max_turns or not out or out[-1] not in self.stop_ids:
                    continue  # the last turn, or cut off: its calls are not run
                content, calls = parse_tool_calls(self.tokenizer.decode(out[:-1], skip_special_tokens=False),
                                                  self.fmt)
                for j, c in enumerate(calls):  # fixed ids: a template that renders them stays deterministic
                    c["id"] = f"call_{turn}_{j}"
                if calls:
                    pending.append((i, content, calls, self.tokenizer.decode(out[-1:], skip_special_tokens=False)))
            results = iter(self._run_calls([c for _, _, calls, _ in pending for c in calls]))
            active = []
            for i, content, calls, stop_text in pending:
                answers = [next(results) for _ in calls]
                follow = tool_turn_ids(self.tokenizer, content, calls, answers, list(self.runner.tools.schemas),
                                       stop_text)
                if len(seqs[i]) + len(follow) < self.max_len:  # room for the results and at least one more token
                    seqs[i] += follow
                    sampled[i] += [False] * len(follow)
                    active.append(i)
        return list(zip(seqs, sampled, strict=True))

    def batch(self, batch: dict[str, Tensor], student: torch.nn.Module, max_new_tokens: int, temperature: float,
              seed: int) -> dict[str, Tensor]:
        """A micro-batch of conversations replaced by the student's trajectories from their prompts (right-padded;
        loss_mask/targets on the student's tokens only)."""
        prompts = []
        for ids, mask, keep in zip(batch["input_ids"], batch["loss_mask"], batch["attention_mask"], strict=True):
            n = int(keep.sum())
            first = torch.nonzero(mask[:n]).flatten()
            prompts.append(ids[: int(first[0]) + 1 if len(first) else n].tolist())
        played = self.trajectories(student, prompts, max_new_tokens, temperature, seed)
        L = max(len(ids) for ids, _ in played)
        pad = self.pad_id
        device = batch["input_ids"].device
        input_ids = torch.full((len(played), L), pad, dtype=torch.long)
        attention = torch.zeros((len(played), L), dtype=torch.long)
        loss_mask = torch.zeros((len(played), L), dtype=torch.bool)
        for b, (ids, own) in enumerate(played):
            input_ids[b, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention[b, : len(ids)] = 1
            loss_mask[b, : len(ids) - 1] = torch.tensor(own[1:], dtype=torch.bool)  # mask[t]: ids[t+1] is sampled
        targets = torch.full((len(played), L), -100, dtype=torch.long)
        targets[:, :-1] = input_ids[:, 1:]
        targets[~loss_mask] = -100
        return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device),
                "loss_mask": loss_mask.to(device), "targets": targets.to(device), "example_ids": batch["example_ids"]}

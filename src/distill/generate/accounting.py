"""What a generation run cost: requests, tokens, retries, failures, time and money."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distill.fileio import write_text_atomic


@dataclass
class Accounting:
    """Counters of one `distill generate` run (saved as accounting.json; `store` sums the whole folder)."""

    prompts: int = 0  # distinct prompts asked for
    skipped: int = 0  # already in the store from an earlier run
    duplicates: int = 0  # repeated prompts in the input, generated once
    succeeded: int = 0  # rows written this run
    failed: int = 0  # rows given up on this run (see failures.jsonl)
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0  # requests that were retries
    rate_limited: int = 0  # 429 answers
    tokens_in: int = 0  # prompt tokens reported by the API this run
    tokens_out: int = 0  # completion tokens reported by the API this run
    turns: int = 0  # with tools: assistant turns answered this run (every request of a trajectory)
    tool_calls: int = 0  # with tools: tool calls run this run
    tool_errors: int = 0  # with tools: of those, the ones answered with an error (exception, timeout, bad call)
    wall_s: float = 0.0
    price_in: float = 0.0  # USD per million prompt tokens
    price_out: float = 0.0  # USD per million completion tokens
    token_map: dict[str, int] = field(default_factory=dict)  # mapped/ambiguous/unmapped token counts
    failure_reasons: dict[str, int] = field(default_factory=dict)
    store: dict[str, float] = field(default_factory=dict)  # rows and tokens/cost over the whole folder

    @property
    def cost_usd(self) -> float:
        return cost(self.tokens_in, self.tokens_out, self.price_in, self.price_out)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cost_usd"] = round(self.cost_usd, 6)
        d["requests_per_s"] = round(self.succeeded / self.wall_s, 3) if self.wall_s > 0 else 0.0
        return d

    def save(self, path: str | Path) -> None:
        """Write atomically (`distill.fileio.write_text_atomic`)."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    def summary(self) -> str:
        s = (f"{self.succeeded} rows written, {self.skipped} already done, {self.failed} failed; "
             f"{self.requests} requests ({self.retries} retries, {self.rate_limited} rate-limited); "
             f"tokens in {self.tokens_in}, out {self.tokens_out}; {self.wall_s:.1f} s")
        if self.turns:
            s += f"; {self.turns} turns, {self.tool_calls} tool calls ({self.tool_errors} errors)"
        if self.price_in or self.price_out:
            s += f"; cost ${self.cost_usd:.4f}"
        if self.token_map:
            s += "; logprob tokens " + ", ".join(f"{k} {v}" for k, v in self.token_map.items())
        return s


def cost(tokens_in: int, tokens_out: int, price_in: float, price_out: float) -> float:
    """USD for token counts at prices per million tokens."""
    return (tokens_in * price_in + tokens_out * price_out) / 1e6

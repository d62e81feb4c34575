"""The owner-side protections plugged into the server's hooks: the watermark (every account's outputs carry
its own sub-key's watermark) and the distillation-traffic guard (observe, gate, switch to watermarked or
degraded sampling). Both are optional; `hooks()` returns what `create_app` takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distill.protection.watermark.processor import SERVE_TOP_K


@dataclass
class Protection:
    watermark_key: Any = None  # a distill.protection.watermark WatermarkKey, or None
    guard: Any = None  # a distill.protection.guard.Guard, or None
    watermark_top_k: int | None = SERVE_TOP_K  # bias only the top-k candidates per step (None: the whole vocabulary)
    antidistill: Any = None  # a distill.protection.antidistill.AntidistillProcessor for every account, or None
    _processors: dict[str, Any] = field(default_factory=dict)

    def processors_for(self, account: str) -> list:
        """Antidistillation (when on), the watermark processor for this account (cached), then whatever the guard
        adds. Antidistillation first: the watermark then biases the perturbed scores, so detection is unchanged."""
        out = [self.antidistill] if self.antidistill is not None else []
        if self.watermark_key is not None:
            if account not in self._processors:
                from distill.protection.watermark import WatermarkLogitsProcessor

                # Without API keys every caller is "anonymous" and gets the master key itself.
                key = self.watermark_key if account == "anonymous" else self.watermark_key.for_account(account)
                self._processors[account] = WatermarkLogitsProcessor(key, top_k=self.watermark_top_k)
            out.append(self._processors[account])
        if self.guard is not None:
            out.extend(self.guard.processors_for(account))
        return out

    def hooks(self) -> dict[str, Any]:
        active = self.watermark_key is not None or self.guard is not None or self.antidistill is not None
        return {
            "processors_for": self.processors_for if active else None,
            "observer": self.guard.observe if self.guard is not None else None,
            "gate": self.guard.gate if self.guard is not None else None,
        }

    def close(self) -> None:
        if self.guard is not None:
            self.guard.save()


def load_protection(watermark_key_file: str | None, guard_config_file: str | None, tokenizer,
                    watermark_top_k: int | None = SERVE_TOP_K) -> Protection:
    """Read the watermark key (checked against the served tokenizer) and the guard config.

    `watermark_top_k`: bias only the k highest-scoring candidates per step (`SERVE_TOP_K`); None = all."""
    key = guard = None
    if watermark_key_file:
        from distill.protection.watermark import load_key

        key = load_key(watermark_key_file)
        key.check_tokenizer(tokenizer)
    if guard_config_file:
        from distill.protection.guard import Guard, load_config

        guard = Guard(load_config(guard_config_file), watermark_top_k=watermark_top_k)
    return Protection(key, guard, watermark_top_k)

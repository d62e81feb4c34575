"""What the guard does about a score: a YAML config maps score thresholds to actions.

Actions, mildest first: none, log, degrade, watermark, throttle, block. `watermark` switches the account to
watermarked sampling with its own sub-key (so leaked outputs name it); `degrade` adds Gumbel noise to its logits.

Example config:

    window_seconds: 86400      # sliding window per key
    max_window_requests: 2000
    min_requests: 20           # no action before a key has made this many requests
    state_file: guard_state.json
    persist_every_seconds: 5
    watermark_key: wm.key      # needed for the watermark action
    allow: [internal-eval]     # never acted on
    rules:                     # the highest rule whose min_score is reached applies
      - {min_score: 0.5, action: log}
      - {min_score: 0.8, action: watermark}
      - {min_score: 0.97, action: block}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distill.errors import DistillError

ACTIONS = ("none", "log", "degrade", "watermark", "throttle", "block")


@dataclass
class Rule:
    min_score: float
    action: str


@dataclass
class GuardConfig:
    window_seconds: float = 86400.0
    max_window_requests: int = 2000
    min_requests: int = 20
    state_file: str | None = None
    persist_every_seconds: float = 5.0
    watermark_key: str | None = None
    degrade_noise: float = 1.0
    allow: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=lambda: [Rule(0.5, "log"), Rule(0.8, "watermark"), Rule(0.97, "block")])

    def action_for(self, score: float) -> str:
        best = "none"
        for r in sorted(self.rules, key=lambda r: r.min_score):
            if score >= r.min_score:
                best = r.action
        return best


def load_config(path: str | Path) -> GuardConfig:
    """Read and check a guard YAML config (unknown keys and actions are refused)."""
    from distill.config import read_yaml

    if not Path(path).is_file():
        raise DistillError("guard config not found", where=str(path), fix="check --guard-config")
    raw = read_yaml(path, "guard config", "pass the guard's YAML config (see docs/protect.md)") or {}
    if not isinstance(raw, dict):
        raise DistillError("the guard config must be a YAML mapping", where=str(path))
    cfg = GuardConfig()
    known = set(cfg.__dataclass_fields__)
    for k, v in raw.items():
        if k not in known:
            raise DistillError(f"unknown guard config key {k!r}", where=str(path),
                               fix="valid keys: " + ", ".join(sorted(known)))
        if k == "rules":
            rules = []
            for i, r in enumerate(v or []):
                if not isinstance(r, dict) or r.get("action") not in ACTIONS or "min_score" not in r:
                    raise DistillError(f"rule {i + 1} needs min_score and an action among {', '.join(ACTIONS)}",
                                       where=f"{path}: rules[{i}]")
                rules.append(Rule(float(r["min_score"]), str(r["action"])))
            cfg.rules = rules
        else:
            setattr(cfg, k, v)
    if cfg.watermark_key is None and any(r.action == "watermark" for r in cfg.rules):
        raise DistillError("a rule uses the watermark action but no watermark_key is configured", where=str(path),
                           fix="add `watermark_key: FILE` (from `distill watermark keygen`) or drop that rule")
    if cfg.watermark_key and not Path(cfg.watermark_key).is_absolute():
        cfg.watermark_key = str(Path(path).parent / cfg.watermark_key)
    return cfg


class DegradeLogitsProcessor:
    """Adds Gumbel noise of the given scale to the logits: lower-quality answers for suspected extraction."""

    def __init__(self, noise: float = 1.0, seed: int | None = None):
        self.noise = noise
        self.gen = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        u = torch.rand(scores.shape, generator=self.gen).clamp_(1e-9, 1 - 1e-9).to(scores.device, scores.dtype)
        return scores - self.noise * torch.log(-torch.log(u))


def describe(cfg: GuardConfig) -> dict[str, Any]:
    return {"rules": [{"min_score": r.min_score, "action": r.action} for r in cfg.rules],
            "window_seconds": cfg.window_seconds, "min_requests": cfg.min_requests}

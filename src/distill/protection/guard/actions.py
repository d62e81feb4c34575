"""What the guard does about a score: a YAML config maps score thresholds to actions.

Actions, mildest first: none, log, degrade, watermark, throttle, block. `watermark` switches the account to
watermarked sampling with its own sub-key (so leaked outputs name it); `degrade` adds Gumbel noise to its logits;
`throttle` puts the account on a token bucket: one request per `throttle_interval_seconds`, at most
`throttle_burst` at once, the bucket empty when the throttle starts and a request counted when it is admitted
(so requests still in flight count); throttled keys whose frame words overlap (one campaign spread over many
keys) share one bucket when `throttle_shared` is on; the others get 429. `block` refuses all (403).

Actions hold: a rule's action is taken as soon as the score reaches its `min_score` (escalation is immediate),
but it is lifted only by evidence - at least `cooldown_seconds` after it was taken, on a window of at least
`min_requests` served requests whose score is below `min_score - hysteresis`. Refused requests are attempts
by a flagged account, not traffic: they never enter the window, so they cannot dilute its features.

Example config:

    window_seconds: 86400      # sliding window per key
    max_window_requests: 2000
    min_requests: 20           # no action before a key has made this many requests
    min_requests_shared: 8     # ... or this many, when its frame words overlap two other keys' (spread campaigns)
    state_file: guard_state.json
    persist_every_seconds: 5
    watermark_key: wm.key      # needed for the watermark action
    scorer: scorer.json        # optional: weights fitted on your own traffic (default: the shipped ones)
    allow: [internal-eval]     # never acted on
    cooldown_seconds: 3600     # an action holds at least this long after it was taken
    hysteresis: 0.1            # ... and is lifted only once the score is this far below its rule's min_score
    throttle_interval_seconds: 3600 # a throttled account is served one request per interval ...
    throttle_burst: 1          # ... at most this many at once
    throttle_shared: true      # throttled keys whose frames overlap share one bucket
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
    min_requests_shared: int = 8  # ... or this many, for a key whose frame words overlap two other keys' (a campaign
    # spread over many low-rate keys: the group has made the requests)
    state_file: str | None = None
    persist_every_seconds: float = 5.0
    watermark_key: str | None = None
    scorer: str | None = None  # a fitted scorer's JSON (LogisticScorer.to_dict); None: the shipped DEFAULT
    degrade_noise: float = 1.0
    allow: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=lambda: [Rule(0.5, "log"), Rule(0.8, "watermark"), Rule(0.97, "block")])
    cooldown_seconds: float = 3600.0  # an action holds at least this long after it was taken
    hysteresis: float = 0.1  # an action is lifted only when the score is this far below its rule's min_score
    throttle_interval_seconds: float = 3600.0  # a throttled account's bucket gains one request per interval ...
    throttle_burst: float = 1.0  # ... and holds at most this many (it is empty when the throttle starts)
    throttle_shared: bool = True  # throttled keys whose frame words overlap draw on one bucket (a spread campaign)
    time_scale: float = 1.0  # replays only: guard time runs this many times faster than the wall clock
    max_logged_changes: int = 20  # action changes kept per account in the state file (all are logged)
    calibration: str | None = None  # `distill guard calibrate`'s JSON: scores become 1 - a calibrated tail
    # probability, so a rule's min_score 1 - a acts on at most a fraction a of benign account-days (docs/protect.md)
    warmup_seconds: float = 0.0  # after a cold start the guard observes this long before it acts (actions restored
    # from state_file hold): its windows and shared word counts fill up first, as the calibration's first day did. A
    # day matches the calibration; 0 acts at once, on statistics a cold guard inflates (every topic looks rare)
    traffic_log: str | None = None  # append one JSON line per served request (hashed words, numbers; no prompt text):
    # what `distill guard calibrate --traffic` reads

    def ordered(self) -> list[Rule]:
        """The rules by min_score; a rule's *level* is its position here plus one (0: no rule)."""
        return sorted(self.rules, key=lambda r: r.min_score)

    def level_for(self, score: float, margin: float = 0.0) -> int:
        """The highest level whose rule `score` reaches, each threshold lowered by `margin`."""
        level = 0
        for i, r in enumerate(self.ordered()):
            if score >= r.min_score - margin:
                level = i + 1
        return level

    def action_of(self, level: int) -> str:
        return self.ordered()[level - 1].action if level > 0 else "none"

    def action_for(self, score: float) -> str:
        return self.action_of(self.level_for(score))

    def level_of(self, action: str) -> int:
        """The highest level taking `action` (0 when no rule takes it)."""
        return max((i + 1 for i, r in enumerate(self.ordered()) if r.action == action), default=0)


NUMBERS = ("window_seconds", "max_window_requests", "min_requests", "min_requests_shared", "persist_every_seconds",
           "degrade_noise", "cooldown_seconds", "hysteresis", "throttle_interval_seconds", "throttle_burst",
           "time_scale", "max_logged_changes", "warmup_seconds")
FLAGS = ("throttle_shared",)


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
        elif k in NUMBERS:
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise DistillError(f"{k} must be a non-negative number (got {v!r})", where=f"{path}: {k}")
            setattr(cfg, k, type(getattr(cfg, k))(v))
        elif k in FLAGS:
            if not isinstance(v, bool):
                raise DistillError(f"{k} must be true or false (got {v!r})", where=f"{path}: {k}")
            setattr(cfg, k, v)
        elif k == "allow":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise DistillError("allow must be a list of API-key names", where=f"{path}: allow")
            cfg.allow = list(v)
        else:
            if v is not None and not isinstance(v, str):
                raise DistillError(f"{k} must be a file path (got {v!r})", where=f"{path}: {k}")
            setattr(cfg, k, v)
    if cfg.time_scale <= 0:
        raise DistillError("time_scale must be positive", where=f"{path}: time_scale")
    if cfg.throttle_burst < 1:
        raise DistillError(f"throttle_burst must be at least 1 (got {cfg.throttle_burst:g})",
                           where=f"{path}: throttle_burst", fix="1 lets one request through at a time")
    if cfg.watermark_key is None and any(r.action == "watermark" for r in cfg.rules):
        raise DistillError("a rule uses the watermark action but no watermark_key is configured", where=str(path),
                           fix="add `watermark_key: FILE` (from `distill watermark keygen`) or drop that rule")
    for k in ("watermark_key", "scorer", "calibration", "traffic_log"):
        v = getattr(cfg, k)
        if v and not Path(v).is_absolute():
            setattr(cfg, k, str(Path(path).parent / v))
    if cfg.scorer:  # read and check it now, not at the first request
        from distill.protection.guard.scoring import load_scorer

        load_scorer(cfg.scorer)
    if cfg.calibration:
        from distill.protection.guard.calibration import load_calibration

        cal = load_calibration(cfg.calibration)
        for r in cfg.rules:
            if r.action != "none" and 1.0 - r.min_score < cal.smallest_rate:
                raise DistillError(f"rule min_score {r.min_score:g} asks for a benign rate of {1 - r.min_score:.2g}, "
                                   f"below the {cal.smallest_rate:.2g} this calibration can state", where=str(path),
                                   fix="raise min_score to at most 1 - smallest rate, or calibrate on more days of "
                                       "benign traffic")
    if cfg.state_file and Path(cfg.state_file).is_file():  # the guard restores actions from it: check it now
        from distill.protection.guard.state import load_state

        load_state(cfg.state_file)
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
    return {"rules": [{"min_score": r.min_score, "action": r.action} for r in cfg.ordered()],
            "window_seconds": cfg.window_seconds, "min_requests": cfg.min_requests,
            "cooldown_seconds": cfg.cooldown_seconds, "hysteresis": cfg.hysteresis,
            "throttle_interval_seconds": cfg.throttle_interval_seconds, "throttle_burst": cfg.throttle_burst,
            "throttle_shared": cfg.throttle_shared}

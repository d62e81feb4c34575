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

from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import torch
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from distill.errors import DistillError, invalid_settings

Action = Literal["none", "log", "degrade", "watermark", "throttle", "block"]
ACTIONS: tuple[str, ...] = get_args(Action)  # mildest first


def _at_least(low: float, inclusive: bool, words: str) -> BeforeValidator:
    """A number (never a boolean) of at least `low` (above it when not `inclusive`), else "must be WORDS"."""
    def check(v: Any) -> Any:
        number = not isinstance(v, bool) and isinstance(v, int | float)
        if not number or not (v >= low if inclusive else v > low):
            raise ValueError(f"must be {words} (got {v!r})")
        return v
    return BeforeValidator(check)


def _flag(v: Any) -> Any:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false (got {v!r})")
    return v


def _names(v: Any) -> Any:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"must be a list of API-key names (got {v!r})")
    return v


def _path(v: Any) -> Any:
    if isinstance(v, PathLike):
        return str(v)
    if v is not None and not isinstance(v, str):
        raise ValueError(f"must be a file path (got {v!r})")
    return v


NonNegative = Annotated[float, _at_least(0, True, "a non-negative number")]
Count = Annotated[int, _at_least(0, True, "a non-negative number")]
Flag = Annotated[bool, BeforeValidator(_flag)]
File = Annotated[str | None, BeforeValidator(_path)]


class Rule(BaseModel):
    """One row of `rules`: the action an account gets once its score reaches `min_score`. Also written
    positionally, `Rule(0.8, "watermark")`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: float = Field(strict=True, description="The score from which the rule applies (with a calibration: "
                             "1 - the share of benign account-days it may act on).")
    action: Action = Field(description="What is done: none, log, degrade (Gumbel noise on the logits), watermark "
                           "(the account's own sub-key), throttle (a token bucket) or block (403).")

    def __init__(self, *args: Any, **data: Any) -> None:
        super().__init__(**dict(zip(("min_score", "action"), args, strict=False)), **data)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        if not isinstance(v, dict | Rule):
            raise ValueError(f"a rule needs min_score and an action, as {{min_score: 0.9, action: throttle}} (got {v!r})")
        return v

    @field_validator("action", mode="before")
    @classmethod
    def _known(cls, v: Any) -> Any:
        if v not in ACTIONS:
            raise ValueError(f"a rule needs an action among {', '.join(ACTIONS)} (got {v!r})")
        return v


def _default_rules() -> list[Rule]:
    return [Rule(0.5, "log"), Rule(0.8, "watermark"), Rule(0.97, "block")]


class GuardConfig(BaseModel):
    """The guard's YAML config (`distill serve --guard-config`): windows, when to act, the rules and the files it
    reads and writes; `load_config` reads one. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    window_seconds: NonNegative = Field(86400.0, description="The sliding window of requests kept per key, in "
                                        "seconds.")
    max_window_requests: Count = Field(2000, description="Requests kept per key's window at most (the oldest "
                                       "dropped first).")
    min_requests: Count = Field(20, description="No action before a key has made this many requests in its "
                                "window.")
    min_requests_shared: Count = Field(8, description="... or this many, for a key whose frame words overlap two "
                                       "other keys' (a campaign spread over many low-rate keys: the group has made "
                                       "the requests).")
    state_file: File = Field(None, description="Where accounts, scores, evidence and actions are kept (written "
                             "atomically; a guard started on it restores every account's action). A relative path is "
                             "taken from the working directory.")
    persist_every_seconds: NonNegative = Field(5.0, description="How often the state file is written, in seconds.")
    watermark_key: File = Field(None, description="The watermark key file (`distill watermark keygen`): needed by "
                                "the watermark action. Relative to the config's folder.")
    scorer: File = Field(None, description="A fitted scorer's JSON (`LogisticScorer.to_dict`), weights fitted on "
                         "your own traffic (default: the shipped ones). Relative to the config's folder.")
    degrade_noise: NonNegative = Field(1.0, description="The scale of the Gumbel noise the degrade action adds to the "
                                       "logits.")
    allow: Annotated[list[str], BeforeValidator(_names)] = Field(
        default_factory=list, description="API-key names never acted on (nor restored from the state file: how an "
        "operator lifts a block).")
    rules: list[Rule] = Field(default_factory=_default_rules, description="Score thresholds and their actions: the "
                              "highest rule whose min_score is reached applies.")
    cooldown_seconds: NonNegative = Field(3600.0, description="An action holds at least this long after it was "
                                          "taken, in seconds.")
    hysteresis: NonNegative = Field(0.1, description="An action is lifted only once the score is this far below its "
                                    "rule's min_score.")
    throttle_interval_seconds: NonNegative = Field(3600.0, description="A throttled account's bucket gains one "
                                                   "request per this many seconds ...")
    throttle_burst: Annotated[float, _at_least(1, True, "at least 1 (1 lets one request through at a time)")] = Field(
        1.0, description="... and holds at most this many (it is empty when the throttle starts).")
    throttle_shared: Flag = Field(True, description="Throttled keys whose frame words overlap draw on one bucket (a "
                                  "spread campaign is throttled as one account).")
    time_scale: Annotated[float, _at_least(0, False, "positive")] = Field(
        1.0, description="Replays only: guard time runs this many times faster than the wall clock.")
    max_logged_changes: Count = Field(20, description="Action changes kept per account in the state file (all are "
                                      "logged).")
    calibration: File = Field(None, description="`distill guard calibrate`'s JSON: scores become 1 - a calibrated "
                              "tail probability, so a rule's min_score 1 - a acts on at most a fraction a of benign "
                              "account-days (docs/protect.md). Relative to the config's folder.")
    warmup_seconds: NonNegative = Field(0.0, description="After a cold start the guard observes this long before it "
                                        "acts (actions restored from state_file hold), so its windows and shared word "
                                        "counts fill up first, as the calibration's first day did; a day matches the "
                                        "calibration, 0 acts at once on statistics a cold guard inflates.")
    traffic_log: File = Field(None, description="Append one JSON line per served request (hashed words, numbers; no "
                              "prompt text): what `distill guard calibrate --traffic` reads. Relative to the "
                              "config's folder.")

    @field_validator("rules", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v

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


FILES = ("watermark_key", "scorer", "calibration", "traffic_log")  # relative paths: from the config's folder


def load_config(path: str | Path) -> GuardConfig:
    """Read and check a guard YAML config: its fields (unknown keys and actions refused), then the files it names
    (scorer, calibration, state), so a bad one fails at start, not at the first request."""
    from distill.config import read_yaml

    if not Path(path).is_file():
        raise DistillError("guard config not found", where=str(path), fix="check --guard-config")
    raw = read_yaml(path, "guard config", "pass the guard's YAML config (see docs/protect.md)") or {}
    if not isinstance(raw, dict):
        raise DistillError("the guard config must be a YAML mapping", where=str(path),
                           fix="write one `key: value` per line (see docs/protect.md)")
    try:
        cfg = GuardConfig.model_validate(raw)
    except ValidationError as e:
        raise invalid_settings(e, "guard config", str(path), "fix the value; docs/protect.md lists every field "
                               "with its meaning", known=tuple(GuardConfig.model_fields)) from None
    if cfg.watermark_key is None and any(r.action == "watermark" for r in cfg.rules):
        raise DistillError("a rule uses the watermark action but no watermark_key is configured", where=str(path),
                           fix="add `watermark_key: FILE` (from `distill watermark keygen`) or drop that rule")
    for k in FILES:
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

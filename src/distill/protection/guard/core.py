"""The Guard: observes every request, scores each API key, decides an action, and keeps evidence on disk.

Plugs into `distill serve`: `observe` is the observer hook, `gate` the gate hook, `processors_for` the
per-request logits-processor hook. State (scores, features and evidence per key; never prompts or secrets) is
written atomically to a JSON file at most every `persist_every_seconds`, and on `save()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from distill.fileio import write_json_atomic
from distill.protection.guard.actions import DegradeLogitsProcessor, GuardConfig
from distill.protection.guard.features import KeyWindow, make_entry
from distill.protection.guard.scoring import DEFAULT, LogisticScorer
from distill.protection.watermark.processor import SERVE_TOP_K

log = logging.getLogger(__name__)
STATE_FORMAT = "distill-guard-state/1"


class Guard:
    """Per-key sliding-window features -> logistic score -> configured action."""

    def __init__(self, config: GuardConfig | None = None, scorer: LogisticScorer | None = None,
                 watermark_top_k: int | None = SERVE_TOP_K):
        self.config = config or GuardConfig()
        self.watermark_top_k = watermark_top_k  # the watermark action's processor: see distill.serve.protection
        self.scorer = scorer or DEFAULT
        self.windows: dict[str, KeyWindow] = {}
        self.skeleton_keys: dict[str, Counter[str]] = defaultdict(Counter)  # 'p:'/'s:' skeleton -> key -> count
        self.state: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._last_save = 0.0
        self._wm_master = None

    def _window(self, key: str) -> KeyWindow:
        w = self.windows.get(key)
        if w is None:
            w = self.windows[key] = KeyWindow(self.config.window_seconds, self.config.max_window_requests)
        return w

    def _shared(self, key: str, w: KeyWindow) -> tuple[int, set[str]]:
        """Requests of `key` whose prefix (or suffix) skeleton another key also uses, and some of those keys."""
        best, others = 0, set()
        for tag, counter in (("p", w.prefixes), ("s", w.suffixes)):
            shared = 0
            for skel, count in counter.items():
                users = self.skeleton_keys.get(f"{tag}:{skel}")
                if users and len(users) > 1:
                    shared += count
                    if len(others) < 10:
                        others.update(k for k in list(users)[:10] if k != key)
            best = max(best, shared)
        return best, others

    def observe(self, key: str, request: dict[str, Any], response: dict[str, Any] | None, ts: float | None = None
                ) -> str:
        """Record one request of `key` and return the key's action after it."""
        ts = time.time() if ts is None else float(ts)
        e = make_entry(request or {}, response, ts)
        with self._lock:
            w = self._window(key)
            for old in w.add(e):
                for skel in (f"p:{old.prefix}", f"s:{old.suffix}"):
                    users = self.skeleton_keys.get(skel)
                    if users is not None:
                        users[key] -= 1
                        if users[key] <= 0:
                            del users[key]
                        if not users:
                            del self.skeleton_keys[skel]
            self.skeleton_keys[f"p:{e.prefix}"][key] += 1
            self.skeleton_keys[f"s:{e.suffix}"][key] += 1
            shared, others = self._shared(key, w)
            feats = w.features(shared)
            score = self.scorer.score(feats)
            n = len(w.entries)
            action = "none"
            if key not in self.config.allow and n >= self.config.min_requests:
                action = self.config.action_for(score)
            prev = self.state.get(key, {})
            st = {"score": round(score, 4), "action": action, "requests_in_window": n,
                  "requests_total": w.total_seen, "last_seen": ts, "max_score": max(score, prev.get("max_score", 0.0)),
                  "features": {k: round(v, 4) for k, v in feats.items()}}
            self.state[key] = st
            if action != prev.get("action", "none") and action != "none":
                log.info("guard: account %s -> %s (score %.3f)", key, action, score)
        if self.config.state_file and ts - self._last_save >= self.config.persist_every_seconds:
            self.save()
            self._last_save = ts
        return action

    __call__ = observe  # the serve observer hook: observer(api_key_name, request, response, timestamp)

    def evidence(self, key: str) -> dict[str, Any]:
        """Why a key scored as it did: feature contributions, its commonest skeletons, keys sharing them."""
        w = self.windows.get(key)
        st = dict(self.state.get(key, {}))
        if w is None:
            return st
        shared, others = self._shared(key, w)
        st["contributions"] = self.scorer.contributions(w.features(shared))
        st["top_prefix_skeletons"] = [{"skeleton": s, "count": c} for s, c in w.prefixes.most_common(3)]
        st["top_suffix_skeletons"] = [{"skeleton": s, "count": c} for s, c in w.suffixes.most_common(3)]
        st["keys_sharing_templates"] = sorted(others)
        st["cot_requests"], st["logprob_requests"] = w.n_cot, w.n_lp
        return st

    def decision(self, key: str) -> str:
        """The current action for `key` ("none" for unknown keys)."""
        return self.state.get(key, {}).get("action", "none")

    def gate(self, key: str) -> str | None:
        """The serve gate hook: "block", "throttle" or None."""
        a = self.decision(key)
        return a if a in ("block", "throttle") else None

    def processors_for(self, key: str) -> list:
        """The serve per-request processors: the account's watermark sub-key, or degrading noise."""
        a = self.decision(key)
        if a == "degrade":
            return [DegradeLogitsProcessor(self.config.degrade_noise)]
        if a == "watermark" and self.config.watermark_key:
            from distill.protection.watermark.keys import load_key
            from distill.protection.watermark.processor import WatermarkLogitsProcessor

            if self._wm_master is None:
                self._wm_master = load_key(self.config.watermark_key)
            return [WatermarkLogitsProcessor(self._wm_master.for_account(key), top_k=self.watermark_top_k)]
        return []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            accounts = {k: self.evidence(k) for k in self.state}
        return {"format": STATE_FORMAT, "saved": time.time(), "scorer": self.scorer.to_dict(),
                "rules": [{"min_score": r.min_score, "action": r.action} for r in self.config.rules],
                "accounts": accounts}

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the state file atomically."""
        path = path or self.config.state_file
        if not path:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.snapshot(), indent=1)
        return path

"""The Guard: observes every request, scores each API key, decides an action, and keeps evidence on disk.

Plugs into `distill serve`: `observe` is the observer hook, `gate` the gate hook, `processors_for` the
per-request logits-processor hook. State (scores, features, evidence and action history per key; never prompts
or secrets) is written atomically to a JSON file at most every `persist_every_seconds`, and on `save()`; a
guard started on an existing state file restores every account's action from it, so a restart lifts nothing.

What the server reports is told apart by its response: an answer is *served* traffic and enters the key's
window; a refusal by the gate (error code `blocked` or `throttled`) is an *attempt* by a flagged account and is
only counted (`refused`, `refused_total`), and so is an invalid request (`invalid_requests`). Neither touches
the window, so a blocked account cannot dilute its features back under a rule by sending more requests.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from distill.fileio import write_json_atomic
from distill.protection.guard.actions import DegradeLogitsProcessor, GuardConfig
from distill.protection.guard.calibration import band_of
from distill.protection.guard.features import DIM, RARE_MIN, RARE_SHARE, Entry, KeyWindow, make_entry
from distill.protection.guard.scoring import DEFAULT, LogisticScorer
from distill.protection.guard.state import STATE_FORMAT, load_state
from distill.protection.watermark.processor import SERVE_TOP_K

log = logging.getLogger(__name__)
FRAME_EVERY = 8  # served requests between refreshes of a key's frame words in the cross-key index
CROSS_MIN_FRAME = 4  # two frames overlap when they share at least this many words (a few common words say nothing)
CROSS_JACCARD = 0.5  # two keys' frames overlap when |A & B| / |A | B| reaches this
CROSS_EVIDENCE = 2  # a key whose frame overlaps this many others' has evidence from min_requests_shared requests
UNACTED = ("none", "log")  # an account with another action is served differently (or not at all)
REFUSALS = {"blocked": "block", "throttled": "throttle"}  # the server's error codes for the gate's refusals
RESTORED = ("action", "action_since", "hold_until", "changes", "changes_total", "refused", "refused_total",
            "invalid_requests", "max_score", "score", "requests_total", "bucket")

__all__ = ["REFUSALS", "STATE_FORMAT", "Guard", "response_kind"]


def response_kind(response: dict[str, Any] | None) -> str:
    """"served", "invalid", or the action whose refusal this is ("block", "throttle")."""
    err = response.get("error") if isinstance(response, dict) else None
    if err is None:
        return "served"
    code = err.get("code") if isinstance(err, dict) else None
    return REFUSALS.get(code, "invalid") if isinstance(code, str) else "invalid"


def new_account() -> dict[str, Any]:
    return {"score": 0.0, "max_score": 0.0, "action": "none", "level": 0, "action_since": None,
            "hold_until": 0.0, "requests_in_window": 0, "requests_total": 0, "refused": {}, "refused_total": 0,
            "invalid_requests": 0, "last_seen": None, "last_served": None, "features": {}, "changes": [],
            "changes_total": 0, "bucket": None, "served_since_change": 0}


class Guard:
    """Per-key sliding-window features -> logistic score -> configured action, held with a cool-down."""

    def __init__(self, config: GuardConfig | None = None, scorer: LogisticScorer | None = None,
                 watermark_top_k: int | None = SERVE_TOP_K, restore: bool = True):
        self.config = config or GuardConfig()
        self.watermark_top_k = watermark_top_k  # the watermark action's processor: see distill.serve.protection
        if scorer is None and self.config.scorer:
            from distill.protection.guard.scoring import load_scorer

            scorer = load_scorer(self.config.scorer)
        self.scorer = scorer or DEFAULT
        self.overhead_s, self.overhead_n = 0.0, 0  # time spent in observe (without saving) and gate
        self.windows: dict[str, KeyWindow] = {}
        self.skeleton_keys: dict[str, Counter[str]] = defaultdict(Counter)  # 'p:'/'s:' skeleton -> key -> count
        self.word_keys: Counter[str] = Counter()  # content word -> keys whose window holds it (coverage)
        self.word_prompts: Counter[str] = Counter()  # content word -> prompts of all windows holding it (frames)
        self.frames: dict[str, frozenset[str]] = {}  # key -> its frame words (refreshed every FRAME_EVERY requests)
        self.frame_index: dict[str, set[str]] = defaultdict(set)  # frame word -> keys whose frame holds it
        self.cross: dict[str, int] = {}  # key -> other keys whose frame overlaps its own
        self.buckets: dict[str, list[float]] = {}  # throttle bucket name -> [requests it holds, guard time of that]
        self.state: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._last_save = 0.0
        self._wm_master = None
        self.calibration = None
        if self.config.calibration:
            from distill.protection.guard.calibration import load_calibration

            self.calibration = load_calibration(self.config.calibration)
        self.started: float | None = None  # guard time of the first request observed (warmup_seconds)
        self.recorder = None  # callable(key, guard time, statistics) after every served request (calibration)
        self.means: dict[str, np.ndarray] = {}  # key -> mean prompt vector of its window (keys in good standing)
        self.pool_sum = np.zeros(DIM)  # ... their sum
        self._pool: np.ndarray | None = None  # the calibration's benign mean prompt vector, as an array
        self._log = open(self.config.traffic_log, "a", encoding="utf-8") if self.config.traffic_log else None  # noqa: SIM115
        if restore and self.config.state_file and Path(self.config.state_file).is_file():
            self.restore(self.config.state_file)

    # ---- time -------------------------------------------------------------------------------------------------
    def _now(self, ts: float | None) -> float:
        """Guard time: the wall clock (or `ts`) times `time_scale` (1 except for compressed replays)."""
        return (time.time() if ts is None else float(ts)) * self.config.time_scale

    # ---- state ------------------------------------------------------------------------------------------------
    def restore(self, path: str | Path) -> int:
        """Take every account's action, hold and history from a state file; returns how many were acted on."""
        state = load_state(path)
        n = 0
        for name, acc in state.get("accounts", {}).items():
            st = new_account()
            st.update({k: acc[k] for k in RESTORED if k in acc and acc[k] is not None})
            level = self.config.level_of(st["action"])
            if st["action"] != "none" and (level == 0 or name in self.config.allow):
                log.info("guard: account %s: %s from the state file not restored (%s)", name, st["action"],
                         "allow-listed" if name in self.config.allow else "no rule takes that action now")
                st["action"], level = "none", 0
            st["level"] = level
            n += level > 0
            self.state[name] = st
        if n:
            log.info("guard: restored the actions of %d account(s) from %s", n, path)
        return n

    def _account(self, key: str) -> dict[str, Any]:
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = new_account()
        return st

    def _window(self, key: str) -> KeyWindow:
        w = self.windows.get(key)
        if w is None:
            w = self.windows[key] = KeyWindow(self.config.window_seconds, self.config.max_window_requests,
                                              self.word_keys, self.word_prompts)
            if self._account(key)["action"] not in UNACTED:  # restored with an action
                w.detach()
        return w

    def _shared(self, key: str, w: KeyWindow) -> tuple[int, set[str]]:
        """Requests of `key` whose prefix (or suffix) skeleton another key also uses, and some of those keys (evidence
        only: common openings such as "what is the" are shared by many people, so this is not scored)."""
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

    def _frame_overlap(self, key: str, w: KeyWindow) -> int:
        """Refresh `key`'s frame words in the cross-key index (every FRAME_EVERY served requests) and return how many
        other keys' frames overlap it with Jaccard >= CROSS_JACCARD."""
        if w.total_seen % FRAME_EVERY and key in self.cross:
            return self.cross[key]
        new = w.frame_words()
        old = self.frames.get(key, frozenset())
        for word in old - new:
            users = self.frame_index.get(word)
            if users is not None:
                users.discard(key)
                if not users:
                    del self.frame_index[word]
        for word in new - old:
            self.frame_index[word].add(key)
        self.frames[key] = new
        self.cross[key] = count = len(self.overlapping(key))
        return count

    def overlapping(self, key: str) -> list[str]:
        """The other keys whose frame words overlap `key`'s with Jaccard >= CROSS_JACCARD (via the index)."""
        frame = self.frames.get(key, frozenset())
        if len(frame) < CROSS_MIN_FRAME:
            return []
        overlap: Counter[str] = Counter()
        for word in frame:
            overlap.update(self.frame_index.get(word, ()))
        return [k for k, ov in overlap.items() if k != key and ov >= CROSS_MIN_FRAME
                and ov / (len(frame) + len(self.frames[k]) - ov) >= CROSS_JACCARD]

    # ---- the observer hook ------------------------------------------------------------------------------------
    def observe(self, key: str, request: dict[str, Any], response: dict[str, Any] | None, ts: float | None = None
                ) -> str:
        """Record one request of `key` and return the key's action after it.

        Served requests enter the key's window and may change its action; refused and invalid ones are counted
        as such (see the module docstring) and change nothing else."""
        t0 = time.perf_counter()
        now = self._now(ts)
        kind = response_kind(response)
        if self.started is None:
            self.started = now
        with self._lock:
            st = self._account(key)
            st["last_seen"] = now
            if kind == "served":
                self._served(key, st, request or {}, response, now)
            elif kind == "invalid":
                st["invalid_requests"] += 1
            else:
                st["refused"][kind] = st["refused"].get(kind, 0) + 1
                st["refused_total"] += 1
                st["last_refused"] = now
            action = st["action"]
            self.overhead_s += time.perf_counter() - t0
            self.overhead_n += 1
        if self.config.state_file and now - self._last_save >= self.config.persist_every_seconds:
            self.save()
            self._last_save = now
        return action

    __call__ = observe  # the serve observer hook: observer(api_key_name, request_dict, response_dict, timestamp)

    def _served(self, key: str, st: dict[str, Any], request: dict[str, Any], response: dict[str, Any] | None,
                now: float) -> None:
        self.served_entry(key, make_entry(request, response, now), now, st)

    def served_entry(self, key: str, e: Entry, now: float, st: dict[str, Any] | None = None) -> None:
        """Account for one served request already reduced to an `Entry` (a live request, or a traffic-log record)."""
        st = self._account(key) if st is None else st
        if self._log is not None:
            self._log.write(json.dumps({"key": key, "entry": e.to_log()}) + "\n")
        w = self._window(key)
        for old in w.add(e, max(RARE_MIN, RARE_SHARE * len(self.windows))):
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
        self._pool_update(key, w)
        stats = w.statistics(self._frame_overlap(key, w), self._others_mean(key))
        feats = {k: stats[k] for k in stats if k != "requests"}
        stats["logistic"] = self.scorer.score(feats)
        n = len(w.entries)
        if self.calibration is not None:
            score, pct = self.calibration.assess(stats)
            evidence = band_of(n) is not None
            st["percentiles"] = pct
        else:
            score = stats["logistic"]
            evidence = n >= self.config.min_requests or (
                n >= self.config.min_requests_shared and self.cross.get(key, 0) >= CROSS_EVIDENCE)
        if self.recorder is not None:
            self.recorder(key, now, stats)
        st.update(score=round(score, 6), requests_in_window=n, last_served=now,
                  features={k: round(v, 4) for k, v in stats.items()})
        if evidence:  # the highest score the guard could act on
            st["max_score"] = max(round(score, 6), st["max_score"])
        st["requests_total"] += 1
        st["served_since_change"] = st.get("served_since_change", 0) + 1
        self._decide(key, st, score, feats, evidence, now)

    def _pool_update(self, key: str, w: KeyWindow) -> None:
        """Keep `key`'s mean prompt vector in the pool of keys in good standing (pool_distance)."""
        old = self.means.pop(key, None)
        if old is not None:
            self.pool_sum -= old
        mean = w.mean_vector() if w.attached else None
        if mean is not None:
            self.means[key] = mean
            self.pool_sum += mean

    def _others_mean(self, key: str) -> np.ndarray | None:
        """The calibration's benign mean prompt vector, else that of the other keys in good standing (None when there
        are none)."""
        if self.calibration is not None and self.calibration.pool:
            if self._pool is None:
                self._pool = np.asarray(self.calibration.pool)
            return self._pool
        own = self.means.get(key)
        n = len(self.means) - (own is not None)
        if n <= 0:
            return None
        return (self.pool_sum - (own if own is not None else 0.0)) / n

    # ---- actions: escalate at once, lift only on evidence after the cool-down -----------------------------------
    def _decide(self, key: str, st: dict[str, Any], score: float, feats: dict[str, float], evidence: bool,
                now: float) -> None:
        cfg = self.config
        cur = st["level"]
        if key in cfg.allow:
            if cur:
                self._change(key, st, 0, "allow-listed", score, feats, now)
            return
        if not evidence:  # too few served requests in the window to say anything: the action holds
            return
        if self.started is not None and now < self.started + cfg.warmup_seconds:
            return  # still warming up: observed, not acted on
        up = cfg.level_for(score)
        if up > cur:
            rule = cfg.ordered()[up - 1]
            self._change(key, st, up, f"score {score:.3f} >= {rule.min_score:g}", score, feats, now)
        elif up < cur and now >= st["hold_until"] and st.get("served_since_change", 0) >= cfg.min_requests:
            # lifted only on evidence gathered since the action: min_requests served requests scoring low (a
            # throttled window that merely thinned out as old requests aged says nothing new)
            down = cfg.level_for(score, cfg.hysteresis)
            if down < cur:
                rule = cfg.ordered()[cur - 1]
                held = now - (st["action_since"] if st["action_since"] is not None else now)
                self._change(key, st, down, f"score {score:.3f} < {rule.min_score:g} - hysteresis {cfg.hysteresis:g}"
                             f" after {held:.0f} s held", score, feats, now)

    def _change(self, key: str, st: dict[str, Any], level: int, reason: str, score: float,
                feats: dict[str, float], now: float) -> None:
        before, after = st["action"], self.config.action_of(level)
        if self.calibration is not None:  # how far each statistic exceeds the nearest benign record's (surprise),
            pct = st.get("percentiles", {})  # or, where nothing does, differs from the most alike one's (normal score)
            top = dict(sorted(pct.get("over_nearest", {}).items(), key=lambda kv: -kv[1])[:5]) or dict(
                pct.get("unlike_nearest", {}))
        else:
            contrib = self.scorer.contributions(feats)
            top = dict(sorted(((k, v) for k, v in contrib.items() if v > 0), key=lambda kv: -kv[1])[:4])
        cluster = sorted(self.overlapping(key))
        change = {"ts": now, "from": before, "to": after, "score": round(score, 6), "reason": reason,
                  "requests_in_window": st["requests_in_window"], "refused_total": st["refused_total"],
                  "evidence": top, "cluster": cluster[:20], "cluster_size": len(cluster)}
        if self.calibration is not None:  # each evidence statistic's percentile among benign accounts of its band
            change["percentiles"] = {k: pct[k] for k in top if k in pct}
            change["departure"] = pct.get("departure")
            change["nearest_benign_account"] = pct.get("nearest_account")
            change["unlikeness"] = pct.get("unlikeness")
            change["unlike_nearest"] = pct.get("unlike_nearest", {})
            change["most_alike_benign_account"] = pct.get("most_alike_account")
        st["changes"] = (st["changes"] + [change])[-max(1, self.config.max_logged_changes):]
        st["changes_total"] += 1
        st.update(action=after, level=level, action_since=now, hold_until=now + self.config.cooldown_seconds,
                  served_since_change=0)
        w = self.windows.get(key)
        if w is not None:  # acted-on accounts leave the traffic others are compared to (KeyWindow.detach)
            w.detach(attach=after in UNACTED)
            self._pool_update(key, w)
        if after == "throttle":
            st["bucket"] = self._bucket_for(key, now)
            change["bucket"] = st["bucket"]
        ev = ", ".join(f"{k} {v:+.2f}" for k, v in top.items()) or "none"
        if cluster:
            ev += f"; clustered with {len(cluster)} key(s): {', '.join(cluster[:5])}"
        log.info("guard: account %s: %s -> %s (%s; %d served in window, %d refused; evidence: %s)", key, before,
                 after, reason, st["requests_in_window"], st["refused_total"], ev)

    # ---- what the server asks -----------------------------------------------------------------------------------
    def evidence(self, key: str) -> dict[str, Any]:
        """Why a key scored as it did: feature contributions, its commonest skeletons, keys sharing them, and the
        history of its actions."""
        w = self.windows.get(key)
        st = dict(self.state.get(key, {}))
        st.pop("level", None)
        if w is None:
            return st
        _, others = self._shared(key, w)
        st["contributions"] = self.scorer.contributions(w.features(self.cross.get(key, 0)))
        st["top_prefix_skeletons"] = [{"skeleton": s, "count": c} for s, c in w.prefixes.most_common(3)]
        st["top_suffix_skeletons"] = [{"skeleton": s, "count": c} for s, c in w.suffixes.most_common(3)]
        st["keys_sharing_templates"] = sorted(others)
        sharing = sorted(self.overlapping(key))
        st["keys_sharing_frame"], st["keys_sharing_frame_total"] = sharing[:10], len(sharing)
        st["cot_requests"], st["logprob_requests"] = w.n_cot, w.n_lp
        return st

    def decision(self, key: str) -> str:
        """The current action for `key` ("none" for unknown keys)."""
        return self.state.get(key, {}).get("action", "none")

    def gate(self, key: str, now: float | None = None) -> str | None:
        """The serve gate hook: "block", "throttle" or None. A throttled key draws on its token bucket (shared with
        the throttled keys whose frames overlap its own when `throttle_shared`): one request per
        `throttle_interval_seconds`, at most `throttle_burst` at once, taken when the request is admitted - so
        requests still being answered count (`now`: the wall clock when None)."""
        t0 = time.perf_counter()
        with self._lock:
            try:
                st = self.state.get(key)
                a = st["action"] if st else "none"
                if a == "block":
                    return "block"
                if a != "throttle":
                    return None
                t = self._now(now)
                bucket = self.buckets.setdefault(st.get("bucket") or key, [0.0, t])  # [requests in it, as of]
                cfg = self.config
                interval = cfg.throttle_interval_seconds
                gained = (t - bucket[1]) / interval if interval > 0 else math.inf
                bucket[0], bucket[1] = min(cfg.throttle_burst, bucket[0] + max(0.0, gained)), max(bucket[1], t)
                if bucket[0] < 1.0:
                    return "throttle"
                bucket[0] -= 1.0
                return None
            finally:
                self.overhead_s += time.perf_counter() - t0

    def _bucket_for(self, key: str, now: float) -> str:
        """The bucket a newly throttled key draws on: that of a throttled key whose frame overlaps its own (one
        campaign over many keys is throttled as one), else its own, which starts empty."""
        group = key
        if self.config.throttle_shared:
            for other in sorted(self.overlapping(key)):
                ost = self.state.get(other)
                if ost and ost["action"] == "throttle" and ost.get("bucket"):
                    group = ost["bucket"]
                    break
        if group == key:
            self.buckets[key] = [0.0, now]
        return group

    def processors_for(self, key: str) -> list:
        """The serve per-request processors: the account's watermark sub-key, or degrading noise."""
        a = self.decision(key)
        if a == "degrade":
            return [DegradeLogitsProcessor(self.config.degrade_noise)]
        if a == "watermark" and self.config.watermark_key:
            from distill.keys.watermark import load_key
            from distill.protection.watermark.processor import WatermarkLogitsProcessor

            if self._wm_master is None:
                self._wm_master = load_key(self.config.watermark_key)
            return [WatermarkLogitsProcessor(self._wm_master.for_account(key), top_k=self.watermark_top_k)]
        return []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            accounts = {k: self.evidence(k) for k in self.state}
        return {"format": STATE_FORMAT, "saved": time.time(), "scorer": self.scorer.to_dict(),
                "rules": [{"min_score": r.min_score, "action": r.action} for r in self.config.ordered()],
                "cooldown_seconds": self.config.cooldown_seconds, "hysteresis": self.config.hysteresis,
                "overhead": {"requests": self.overhead_n, "ms_per_request":
                             round(1e3 * self.overhead_s / self.overhead_n, 4) if self.overhead_n else None},
                "accounts": accounts}

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the state file atomically (and flush the traffic log)."""
        if self._log is not None:
            self._log.flush()
        path = path or self.config.state_file
        if not path:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.snapshot(), indent=1)
        return path

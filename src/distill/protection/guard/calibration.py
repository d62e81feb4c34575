"""The guard calibrated on the owner's own benign traffic: conformal tail probabilities, not a fitted attack model.

Attacks are rare, varied and adaptive; the owner's benign traffic is plentiful and specific to them. So the guard
never learns what an attack looks like. It learns how the owner's accounts behave, and scores an account by how far
it departs from all of them, as a probability with a stated error rate:

1. **Surprise per statistic.** Every statistic of `KeyWindow.statistics` (and the shipped logistic score, as one
   statistic among them) is compared with the same statistic of benign accounts *in the same volume band*
   (requests in the window: a window of 10 requests is compared with others of 8-19): the tail probability
   p_j = (1 + #{benign reference values >= x}) / (1 + m), and its surprise s_j = -log p_j. Beyond the largest
   reference value p_j shrinks further, by at most EXTRAPOLATE, so departures beyond every benign value stay ordered.
   Every statistic is oriented so that higher is further from conversation (features.py says what benign use drives
   each one up).
2. **Departure from the nearest benign profile** (the stated combination rule). The references are whole benign
   records (each a vector of statistics, PER_BAND per account and band, evenly spaced over its records there), and
   the account's departure is
       D = min over benign reference records r of  sum_j max(0, s_j(account) - s_j(r))^2,
   how far the account exceeds, statistic by statistic, the benign record that comes closest to being at least as
   extreme in every one. D = 0 whenever some benign account was at least as high on every statistic at once: a
   templated app, an eval harness or a power user explains away what it also does; what no benign account does *all
   together* (single-turn prompts and a topic sweep and long answers and a steady pace) is what D measures.
   **A second, two-sided departure: unlike every benign profile.** D misses an account that does *less* of
   something than the benign accounts of its volume do (a conversation-shaped user at an app's volume: every
   statistic inside benign ranges, no benign account of that volume like it). So each statistic is also turned
   into its two-sided normal score within the band, z_j = Phi^-1((#{ref < x} + #{ref <= x} + 1) / (2 (m + 1)))
   (the mid-rank; beyond every benign value, at most SHIFT further), and
       N = mean over the NEIGHBOURS nearest benign reference records r of  sum_j (z_j - z_j(r))^2,
   the classic nearest-neighbour novelty distance: small when some benign records look like the account in every
   statistic at once, in either direction.
3. **Calibrated on account-days.** Every benign account is also judged as a newcomer: against the *other* actors'
   reference records and values (its own actor left out of both: the accounts linked to it by shared frames, such
   as a tutorial's users or one company's keys, leave together - a jackknife over actors), and the largest D and
   the largest N of each of its days (over every request of the day) are recorded. An account's final probability is the conformal
   p-value p_D = (1 + #{calibration account-days with max D >= D}) / (1 + #days), p_N likewise for N, and the
   account's p = min(1, 2 * min(p_D, p_N)) (Bonferroni: each departure is judged at half the rate, so their union
   keeps the stated rate whatever their dependence); its score is 1 - p. Acting at
   `score >= 1 - a` therefore acts on about a fraction a of benign account-days (at most a + 2 / (#days + 1) for
   an exact conformal split; the jackknife reuses the accounts, so the benchmark measures it on fresh benign traffic)
   for benign traffic like the calibration's. The smallest rate a calibration can state is 2 / (#days + 1): more
   days of benign traffic buy lower rates. The first `warmup` of the traffic (a day) is left out: a guard's windows and
   shared word counts fill up then.
   `leave_out="account"` leaves out only the account itself (linked accounts vouch for it): more power, but a fresh
   population of ordinary accounts departs more than any leave-one-account-out of the log shows (measured on four
   development sources, docs/benchmarks.md: 0.97% of fresh benign account-days acted on at a stated 0.5%, against
   0.65% with actors left out). Use it only where the log holds every kind of customer many times over.

Relational statistics are not compared: `cross_key` (how many other keys share this key's frame) depends on which
other customers happen to be there - two unrelated apps with overlapping templates in one week, none in the
next - so a fresh population of ordinary accounts departs on it in ways no leave-one-out of the log can show
(measured: fresh benign apps at D 75-128 on it alone, against a calibrated threshold of 28). Coordination is acted
on through the clusters instead (the shared throttle bucket, `min_requests_shared`, the report's clusters). The
earlier fitted logistic score carries `cross_key` with the largest weight and was fitted on the simulator's
campaigns, so it is not compared either.

What this cannot promise: attacks that some benign account matches or exceeds in every statistic at once are not
flagged (a natural-looking user at a power user's volume); attacks *inside* the calibration traffic make the guard
more lenient (the rate still holds, the power drops); benign traffic unlike the calibration's (a new product
launch) is acted on more often than stated until it is recalibrated.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtri

from distill.errors import DistillError
from distill.fileio import read_json_object, write_json_atomic
from distill.protection.guard.features import STATISTICS

FORMAT = "distill-guard-calibration/4"
BANDS = (3, 8, 20, 50, 150, 500)  # lower edges of the volume bands (requests in the window); none below the first
RELATIONAL = ("cross_key",)  # statistics that depend on which other accounts are there (see the module doc)
COMPARED = tuple(s for s in STATISTICS if s not in RELATIONAL)
KNOWN = STATISTICS + ("logistic",)  # what the guard computes for every request (`logistic`: the fallback score)
LEAVE_OUT = ("actor", "account")  # the jackknife's unit: an account with its actor (linked accounts), or alone
PER_BAND = 8  # reference records kept per account and band (evenly spaced over its records there)
DAY = 86400.0
EXTRAPOLATE = 10.0  # a value beyond every reference is at most this much rarer than the rarest reference
NEIGHBOURS = 3  # the two-sided departure N averages the squared distances to this many nearest benign records
SHIFT = 1.0  # a normal score beyond every reference moves by at most this much (in standard deviations)

__all__ = ["BANDS", "COMPARED", "LEAVE_OUT", "NEIGHBOURS", "RELATIONAL", "Calibration", "band_of", "conformal_p",
           "fit_calibration", "load_calibration", "nearness", "save_calibration", "tail_log_p"]


def band_of(n: int) -> int | None:
    """The volume band of an account with `n` requests in its window (None below the first)."""
    i = bisect_right(BANDS, n) - 1
    return i if i >= 0 else None


def tail_log_p(sorted_ref: list[float] | np.ndarray, x: float) -> float:
    """log of (1 + #{ref >= x}) / (1 + m) for ascending `sorted_ref`; beyond the largest value, that divided by up to
    EXTRAPOLATE, growing with (x - max) / (the references' 10-90% spread), so departures beyond every benign value
    stay ordered without claiming more than the references can show."""
    m = len(sorted_ref)
    if m == 0:
        return 0.0
    above = m - bisect_left(sorted_ref, x)
    logp = math.log((1 + above) / (1 + m))
    top = sorted_ref[-1]
    if above == 0 and x > top:
        spread = max(float(sorted_ref[min(m - 1, int(0.9 * m))] - sorted_ref[int(0.1 * m)]), 1e-3)
        logp -= math.log(EXTRAPOLATE) * min(1.0, (x - top) / spread)
    return logp


def departure(s: np.ndarray, refs: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, int]:
    """(D, index of the nearest reference): min over reference rows r (those `mask` keeps) of
    sum_j max(0, s_j - refs[r, j])^2; (0, -1) without references.

    s: [J] surprises of the account; refs: [R, J] surprises of the benign reference records."""
    if mask is not None:
        idx = np.flatnonzero(mask)
        refs = refs[idx]
    else:
        idx = None
    if not len(refs):
        return 0.0, -1
    d = np.square(np.maximum(0.0, s[None, :] - refs)).sum(axis=1)
    i = int(np.argmin(d))
    return float(d[i]), int(idx[i]) if idx is not None else i


def nearness(z: np.ndarray, refs: np.ndarray, mask: np.ndarray | None = None, k: int = NEIGHBOURS
             ) -> tuple[float, int]:
    """(N, index of the nearest reference): the mean of the k smallest sum_j (z_j - refs[r, j])^2 over reference
    rows r (those `mask` keeps; all of them when fewer than k); (0, -1) without references.

    z: [J] normal scores of the account; refs: [R, J] normal scores of the benign reference records."""
    idx = np.flatnonzero(mask) if mask is not None else np.arange(len(refs))
    if not len(idx):
        return 0.0, -1
    d = np.square(z[None, :] - refs[idx]).sum(axis=1)
    kk = min(k, len(d))
    part = np.partition(d, kk - 1)[:kk]
    return float(part.mean()), int(idx[int(np.argmin(d))])


def conformal_p(extremes: list[float], d: float) -> float:
    """(1 + #{extremes >= d}) / (1 + len(extremes)) for ascending `extremes`; 1 for d <= 0."""
    if d <= 0:
        return 1.0
    return (1 + len(extremes) - bisect_left(extremes, d)) / (1 + len(extremes))


def _count(columns: list[np.ndarray], x2: np.ndarray, side: str) -> np.ndarray:
    """[N, J]: how many of each ascending column's values are < x (side "left") or <= x ("right")."""
    return np.stack([np.searchsorted(c, x2[:, j], side=side) for j, c in enumerate(columns)], axis=1)


@dataclass
class Band:
    """One volume band's benign reference records: values [R, J], each column sorted, their surprises [R, J] and
    their normal scores [R, J]."""

    values: np.ndarray
    owners: list[str] | None = None  # the account each record came from (the explanation names the nearest one)
    columns: list[np.ndarray] = field(init=False)
    surprises: np.ndarray = field(init=False)
    scores: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.columns = [np.sort(self.values[:, j]) for j in range(self.values.shape[1])]
        m = len(self.values)
        self.top = np.array([c[-1] for c in self.columns])
        self.bottom = np.array([c[0] for c in self.columns])
        self.spread = np.maximum(np.array([c[min(m - 1, int(0.9 * m))] - c[int(0.1 * m)] for c in self.columns]),
                                 1e-3)
        self.surprises = self.surprise(self.values)
        self.scores = self.normal(self.values)

    def surprise(self, x: np.ndarray, own: list[np.ndarray] | None = None) -> np.ndarray:
        """-log p_j (`tail_log_p`, vectorised) of statistics x [J] or [N, J] against this band's columns; `own`: per
        column, the ascending values to leave out (an account's actor's own records, when calibrating)."""
        x2 = np.atleast_2d(x)
        m = np.full(x2.shape[1], len(self.values))
        above = len(self.values) - _count(self.columns, x2, "left")
        top, spread = self.top, self.spread
        if own is not None and len(own[0]):
            above = above - (len(own[0]) - _count(own, x2, "left"))
            m = m - len(own[0])
        s = np.log1p(m) - np.log1p(above)
        beyond = (above == 0) & (x2 > top)
        s += np.where(beyond, math.log(EXTRAPOLATE) * np.minimum(1.0, (x2 - top) / spread), 0.0)
        return s if x.ndim == 2 else s[0]

    def normal(self, x: np.ndarray, own: list[np.ndarray] | None = None) -> np.ndarray:
        """Two-sided normal scores of statistics x [J] or [N, J] in this band: Phi^-1 of the mid-rank
        (#{ref < x} + #{ref <= x} + 1) / (2 (m + 1)) - ties share one score, so the many accounts at 0 on a
        statistic are alike there - moved by up to SHIFT beyond the band's extremes (growing with the distance in
        units of the references' 10-90% spread); `own` as in `surprise`."""
        x2 = np.atleast_2d(x)
        below, upto, m = _count(self.columns, x2, "left"), _count(self.columns, x2, "right"), len(self.values)
        if own is not None and len(own[0]):
            below, upto, m = below - _count(own, x2, "left"), upto - _count(own, x2, "right"), m - len(own[0])
        z = ndtri((below + upto + 1.0) / (2.0 * (m + 1)))
        z += np.where(x2 > self.top, SHIFT * np.minimum(1.0, (x2 - self.top) / self.spread), 0.0)
        z -= np.where(x2 < self.bottom, SHIFT * np.minimum(1.0, (self.bottom - x2) / self.spread), 0.0)
        return z if x.ndim == 2 else z[0]


@dataclass
class Calibration:
    """Benign reference records per volume band, and the benign account-days' largest departures (D and N)."""

    statistics: tuple[str, ...]  # the compared statistics, in the columns' order
    bands: list[Band | None]  # per BANDS entry (None: no benign account reached it; the nearest lower band is used)
    extremes: list[float]  # ascending largest D, one per calibration account-day
    meta: dict[str, Any] = field(default_factory=dict)
    pool: list[float] | None = None  # the benign accounts' mean prompt vector (pool_distance compares with it, so
    # many keys of one campaign cannot move what "ordinary" means)
    near_extremes: list[float] = field(default_factory=list)  # ascending largest N, one per calibration account-day

    @property
    def smallest_rate(self) -> float:
        """The smallest action rate this calibration can state: 2 / (#account-days + 1) (each departure is judged at
        half the rate)."""
        return 2.0 / (len(self.extremes) + 1)

    def band_index(self, stats: dict[str, float]) -> int | None:
        """The band whose references an account is compared with: its own, or the nearest lower one with any."""
        b = band_of(int(stats.get("requests", 0)))
        if b is None:
            return None
        return next((i for i in range(b, -1, -1) if self.bands[i] is not None), None)

    def band(self, stats: dict[str, float]) -> Band | None:
        i = self.band_index(stats)
        return None if i is None else self.bands[i]

    def vector(self, stats: dict[str, float]) -> np.ndarray:
        return np.array([float(stats.get(k, 0.0)) for k in self.statistics])

    def p_value(self, d: float, near: float = 0.0) -> float:
        """The account's p-value from its departures D and N: min(1, 2 * min(p_D, p_N)), each the conformal p-value
        against the calibration account-days' largest (`conformal_p`)."""
        p = min(conformal_p(self.extremes, d), conformal_p(self.near_extremes, near))
        return min(1.0, 2.0 * p)

    def departures(self, stats: list[dict[str, float]], chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(D [n], N [n]) of many windows' statistics at once, each as `assess` computes it (0 below the first
        band): for replaying a log or a benchmark's records."""
        X = np.array([self.vector(st) for st in stats]).reshape(len(stats), len(self.statistics))
        where = np.array([-1 if (i := self.band_index(st)) is None else i for st in stats])
        D, N = np.zeros(len(stats)), np.zeros(len(stats))
        for i in set(where.tolist()) - {-1}:
            band, rows = self.bands[i], np.flatnonzero(where == i)
            for c in range(0, len(rows), chunk):
                r = rows[c:c + chunk]
                S, Z = band.surprise(X[r]), band.normal(X[r])
                D[r] = np.square(np.maximum(0.0, S[:, None, :] - band.surprises[None])).sum(axis=2).min(axis=1)
                d = np.square(Z[:, None, :] - band.scores[None]).sum(axis=2)
                k = min(NEIGHBOURS, d.shape[1])
                N[r] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
        return D, N

    def assess(self, stats: dict[str, float]) -> tuple[float, dict[str, Any]]:
        """(score = 1 - p, explanation): each statistic's benign percentile in the account's band (100 * (1 - p_j));
        D (`departure`) and how much each statistic exceeds the nearest dominating benign record's surprise
        (`over_nearest`, only where it does); N (`unlikeness`) and the statistics that differ most, in normal
        scores, from the most alike benign record (`unlike_nearest`, signed: + the account is higher)."""
        band = self.band(stats)
        if band is None:
            return 0.0, {}
        x = self.vector(stats)
        s = band.surprise(x)
        d, i = departure(s, band.surprises)
        z = band.normal(x)
        near, j = nearness(z, band.scores)
        pct: dict[str, Any] = {k: round(100.0 * (1.0 - math.exp(-v)), 2) for k, v in zip(self.statistics, s,
                                                                                          strict=True)}
        if d > 0 and i >= 0:
            over = s - band.surprises[i]
            pct["over_nearest"] = {k: round(float(v), 2) for k, v in zip(self.statistics, over, strict=True) if v > 0}
            if band.owners:
                pct["nearest_account"] = band.owners[i]
        if near > 0 and j >= 0:
            diff = z - band.scores[j]
            top = sorted(zip(self.statistics, diff, strict=True), key=lambda kv: -abs(kv[1]))[:5]
            pct["unlike_nearest"] = {k: round(float(v), 2) for k, v in top if abs(v) > 0}
            if band.owners:
                pct["most_alike_account"] = band.owners[j]
        pct["departure"] = round(d, 3)
        pct["unlikeness"] = round(near, 3)
        return 1.0 - self.p_value(d, near), pct

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "bands": list(BANDS), "statistics": list(self.statistics),
                "references": [None if b is None else b.values.tolist() for b in self.bands],
                "owners": [None if b is None else b.owners for b in self.bands],
                "extremes": self.extremes, "near_extremes": self.near_extremes, "meta": self.meta, "pool": self.pool}


def load_calibration(path: str | Path) -> Calibration:
    """A calibration written by `distill guard calibrate`, checked against this guard's statistics and bands."""
    fix = "write one with `distill guard calibrate --traffic LOG --out FILE` (docs/protect.md)"
    raw = read_json_object(path, "guard calibration file", fix)
    if raw.get("format") != FORMAT or raw.get("bands") != list(BANDS):
        raise DistillError(f"not a guard calibration of this version (format {raw.get('format')!r})",
                           where=str(path), fix=fix)
    names, refs, extremes = raw.get("statistics"), raw.get("references"), raw.get("extremes")
    near = raw.get("near_extremes")
    if not isinstance(refs, list) or len(refs) != len(BANDS) or not isinstance(extremes, list) or not extremes \
            or not isinstance(near, list) or len(near) != len(extremes) or not isinstance(names, list):
        raise DistillError("the calibration has no references or no calibration account-days", where=str(path),
                           fix=fix)
    unknown = sorted(set(names) - set(KNOWN))
    if unknown:
        raise DistillError(f"the calibration compares statistics this guard does not compute ({unknown[0]!r})",
                           where=str(path), fix="recalibrate with this version of Distill")
    try:
        owners = raw.get("owners") or [None] * len(refs)
        bands = [None if b is None else Band(np.asarray(b, dtype=np.float64).reshape(-1, len(names)), o)
                 for b, o in zip(refs, owners, strict=True)]
    except ValueError:
        raise DistillError("the calibration's reference records do not match its statistics", where=str(path),
                           fix=fix) from None
    return Calibration(tuple(names), bands, sorted(map(float, extremes)), raw.get("meta") or {},
                       [float(x) for x in raw["pool"]] if isinstance(raw.get("pool"), list) else None,
                       sorted(map(float, near)))


def _spaced(values: list, k: int) -> list:
    """At most k of `values`, evenly spaced (all of them when there are at most k)."""
    if len(values) <= k:
        return list(values)
    return [values[round(i * (len(values) - 1) / (k - 1))] for i in range(k)]


def actors(links: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Account -> the name of its actor: connected components of the links (union-find); unlinked accounts are
    their own actor (absent from the result)."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {a: find(a) for a in parent}


def fit_calibration(records: Iterable[tuple[str, float, dict[str, float]]], meta: dict[str, Any] | None = None,
                    statistics: Iterable[str] = COMPARED, pool: list[float] | None = None,
                    links: Iterable[tuple[str, str]] = (), warmup: float = DAY,
                    leave_out: str = "actor") -> Calibration:
    """A calibration from (account, guard time, statistics) records of benign traffic, in time order: every served
    request of every account, as `Guard.observe` computes them (see `benign_records`); `statistics`: the statistics
    compared (default COMPARED; any of KNOWN, for ablations); `pool`, `links`: the benign mean prompt vector and
    the pairs of accounts whose frames overlapped (`benign_records` returns both); `warmup`: seconds at the start of the traffic left out (the guard's
    windows and shared word counts fill up then: a guard started cold sees every topic as rare); `leave_out`: the
    jackknife's unit, "actor" (the default: the account with every account linked to it) or "account" (see the
    module doc for what each null assumes).

    Every account gives both: reference records (PER_BAND per band, evenly spaced) and its account-days' largest
    departure, computed with its actor's reference records left out (the accounts linked to it by shared frames
    leave together; with `leave_out="account"`, its own only); it is judged by the others, as a new account will be."""
    if leave_out not in LEAVE_OUT:
        raise DistillError(f"unknown jackknife unit {leave_out!r}", where="distill guard calibrate --leave-out",
                           fix="use 'actor' (the default) or 'account' (docs/protect.md)")
    records = list(records)
    t0 = records[0][1] if records else 0.0
    records = [r for r in records if r[1] >= t0 + warmup]
    t0 = t0 + warmup
    names = tuple(statistics)
    if not names or set(names) - set(KNOWN):
        raise DistillError(f"cannot compare statistics {sorted(set(names) - set(KNOWN)) or '(none)'}",
                           where="fit_calibration", fix=f"choose among {', '.join(KNOWN)}")
    by_band: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    for account, _, stats in records:
        b = band_of(int(stats.get("requests", 0)))
        if b is not None:
            by_band[(account, b)].append(stats)
    rows: list[list[list[float]]] = [[] for _ in BANDS]
    owners: list[list[str]] = [[] for _ in BANDS]
    for (account, b), recs in by_band.items():
        for r in _spaced(recs, PER_BAND):
            rows[b].append([float(r.get(k, 0.0)) for k in names])
            owners[b].append(account)
    bands = [Band(np.asarray(r), owners[b]) if r else None for b, r in enumerate(rows)]
    cal = Calibration(names, bands, [], dict(meta or {}), pool)
    actor = actors(links)
    judged_as = actor if leave_out == "actor" else {}
    owner_arr = [np.asarray([judged_as.get(o, o) for o in own]) for own in owners]
    worst: dict[tuple[str, int], list[float]] = {}  # (account, day) -> [largest D, largest N]
    own_cols: dict[tuple[int, str], list[np.ndarray]] = {}  # (band, actor) -> its own records' sorted columns
    for account, ts, stats in records:
        b = band_of(int(stats.get("requests", 0)))
        i = None if b is None else next((i for i in range(b, -1, -1) if bands[i] is not None), None)
        if i is None:
            continue
        who = judged_as.get(account, account)
        mine = owner_arr[i] == who
        if (i, who) not in own_cols:
            own_cols[(i, who)] = [np.sort(c) for c in bands[i].values[mine].T]
        x, own = cal.vector(stats), own_cols[(i, who)]
        d, _ = departure(bands[i].surprise(x, own), bands[i].surprises, ~mine)
        near, _ = nearness(bands[i].normal(x, own), bands[i].scores, ~mine)
        w = worst.setdefault((account, int((ts - t0) // DAY)), [0.0, 0.0])
        w[0], w[1] = max(w[0], d), max(w[1], near)
    if len(worst) < 20:
        raise DistillError(f"too little benign traffic to calibrate: {len(worst)} account-days with enough requests "
                           f"after the first {warmup / 3600:g} h (the guard's warm-up; at least 20 needed)",
                           where="distill guard calibrate",
                           fix="log more days or more accounts of ordinary traffic (`traffic_log` in the guard config)")
    cal.extremes = sorted(v[0] for v in worst.values())
    cal.near_extremes = sorted(v[1] for v in worst.values())
    top = sorted(worst.items(), key=lambda kv: cal.p_value(*kv[1]))[:20]
    cal.meta["highest_account_days"] = [{"account": a, "day": d, "departure": round(v[0], 3),
                                         "unlikeness": round(v[1], 3)} for (a, d), v in top]
    empty = [BANDS[i] for i, b in enumerate(bands) if b is None]
    cal.meta.update(accounts=len({a for a, _, _ in records}), leave_out=leave_out, linked_accounts=len(actor),
                    actors_of_several=len(set(actor.values())), calibration_account_days=len(worst),
                    records=len(records), reference_records=sum(len(r) for r in rows), empty_bands=empty,
                    smallest_rate=round(cal.smallest_rate, 6))
    return cal


def save_calibration(cal: Calibration, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, cal.to_dict())
    return path


def summary(cal: Calibration) -> str:
    m = cal.meta
    return (f"{m.get('accounts')} accounts, "
            f"{m.get('calibration_account_days')} calibration account-days, {m.get('records')} requests; smallest "
            f"statable rate {cal.smallest_rate:.4g} of benign account-days" +
            (f"; bands without references: {m['empty_bands']}" if m.get("empty_bands") else "") +
            "\nrule min_score for a stated benign rate: " +
            "; ".join(f"1 in {round(1 / a)} account-days: {1 - a:g}" for a in (0.01, 0.005, 0.001)
                      if a >= cal.smallest_rate))

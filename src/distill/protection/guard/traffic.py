"""The guard's traffic log: reading it (or a trace) and replaying it through a guard that takes no action, which is
what `distill guard calibrate` fits the benign reference on (`calibration.fit_calibration`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.fileio import iter_jsonl
from distill.protection.guard.actions import GuardConfig
from distill.protection.guard.calibration import DAY
from distill.protection.guard.core import Guard
from distill.protection.guard.features import Entry, make_entry

__all__ = ["benign_records", "read_traffic"]


def read_traffic(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a traffic log (`traffic_log`: {"key", "entry"}) or of a trace (`distill guard simulate`: {"key",
    "ts", "request", "completion_tokens"}), checked; rows of other accounts than benign ones are the caller's
    business (a trace's `label` is kept)."""
    p = Path(path)
    if not p.is_file():
        raise DistillError("traffic log not found", where=str(p),
                           fix="set `traffic_log: FILE` in the guard config and serve ordinary traffic first")
    rows = []
    for n, row in iter_jsonl(p.read_text(encoding="utf-8").splitlines(), str(p)):
        ok = isinstance(row.get("key"), str) and (
            isinstance(row.get("entry"), dict) or (isinstance(row.get("request"), dict)
                                                   and isinstance(row.get("ts"), int | float)))
        if not ok:
            raise DistillError("traffic row has neither a key and an entry (traffic log) nor a key, ts and request "
                               "(trace)", where=f"{p} line {n}",
                               fix="pass the file the guard's traffic_log wrote, or a trace")
        rows.append(row)
    return rows


def benign_records(rows: list[dict[str, Any]], window_seconds: float = DAY, max_window_requests: int = 2000
                   ) -> tuple[list[tuple[str, float, dict[str, float]]], list[float], set[tuple[str, str]]]:
    """Replay benign traffic rows (see `read_traffic`) through a guard that takes no action; returns its
    (account, time, statistics) after every request, in time order, the benign mean prompt vector (the mean
    over the accounts of their windows' mean vectors, averaged over every 1000th request), and the pairs of
    accounts whose frames overlapped at some point (the guard's cross-key links)."""
    guard = Guard(GuardConfig(window_seconds=window_seconds, max_window_requests=max_window_requests, rules=[]),
                  restore=False)
    records: list[tuple[str, float, dict[str, float]]] = []
    links: set[tuple[str, str]] = set()

    def record(key: str, now: float, stats: dict[str, float]) -> None:
        records.append((key, now, stats))
        if stats.get("cross_key", 0.0) > 0:
            links.update((min(key, o), max(key, o)) for o in guard.overlapping(key))

    guard.recorder = record
    pool, looks = None, 0
    for i, row in enumerate(rows):
        if "entry" in row:
            try:
                e = Entry.from_log(row["entry"])
            except (KeyError, TypeError, ValueError):
                raise DistillError("a traffic-log entry lacks fields this version logs", where=f"account {row['key']}",
                                   fix="recalibrate on a log written by this version of Distill") from None
        else:
            tokens = row.get("completion_tokens")
            response = {"usage": {"prompt_tokens": 0, "completion_tokens": int(tokens)}} if isinstance(
                tokens, int) else None
            e = make_entry(row["request"], response, float(row["ts"]))
        guard.served_entry(row["key"], e, e.ts)
        if i % 1000 == 999 or i == len(rows) - 1:
            mean = guard.pool_sum / max(1, len(guard.means))
            pool, looks = (mean if pool is None else pool + mean), looks + 1
    return records, [round(float(x), 6) for x in (pool / looks)] if pool is not None else [], links

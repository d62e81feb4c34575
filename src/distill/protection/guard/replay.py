"""Traces of simulated traffic: written by `distill guard simulate`, sent to a running `distill serve` by
`distill guard replay`, so the guard's figures come from the real server path (HTTP, keys, gate, observer).

A trace is JSONL, one request per line in time order: {"key": NAME, "ts": SECONDS, "label", "kind", "request":
{...}}. The replay sends each row with the API key of its account (from a `name:key` file, the format of
`distill serve --api-key-file`), compressed in time by `speed` (a row at ts is sent (ts - ts0) / speed seconds
after the start), in the trace's order: rows are handed to the senders in order, and a row is never sent
before the one above it. The server stamps each request with its arrival time; run it with the guard's
`time_scale` equal to `speed` so that guard time runs as fast as the replay. Keys never reach the output.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.fileio import atomic_write, iter_jsonl

ROW_FIELDS = {"key": str, "ts": (int, float), "request": dict}


def write_trace(events, path: str | Path) -> int:
    """Write `Event`s as a trace; returns the number of rows."""
    rows = [json.dumps(e.row()) for e in events]
    atomic_write(path, lambda f: f.write("\n".join(rows) + ("\n" if rows else "")))
    return len(rows)


def write_keys(names, path: str | Path) -> int:
    """A fresh random API key for every account name, as `name:key` lines with mode 0600 (never overwrites)."""
    path = Path(path)
    if path.exists():
        raise DistillError("refusing to overwrite an existing key file", where=str(path),
                           fix="choose another --keys-out path or delete the old file deliberately")
    names = sorted(set(names))
    bad = [n for n in names if ":" in n or not n.strip()]
    if bad:
        raise DistillError(f"account name {bad[0]!r} cannot go in a name:key file", where=str(path))
    lines = [f"{n}:sk-sim-{secrets.token_urlsafe(18)}" for n in names]
    atomic_write(path, lambda f: f.write("\n".join(lines) + "\n"), mode=0o600)
    return len(lines)


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a trace, checked (a missing field or a wrong type names its line)."""
    p = Path(path)
    if not p.is_file():
        raise DistillError("trace not found", where=str(p), fix="write one with `distill guard simulate --out FILE`")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DistillError(f"cannot read the trace ({type(e).__name__})", where=str(p),
                           fix="pass the JSONL file `distill guard simulate` wrote") from None
    rows = []
    for n, row in iter_jsonl(lines, str(p)):
        for field, kind in ROW_FIELDS.items():
            v = row.get(field)
            if not isinstance(v, kind) or isinstance(v, bool):
                raise DistillError(f"trace row has no valid {field!r}", where=f"{p} line {n}",
                                   fix='each line: {"key": NAME, "ts": SECONDS, "request": {...}} (see '
                                       '`distill guard simulate`)')
        rows.append(row)
    if any(b["ts"] < a["ts"] for a, b in zip(rows, rows[1:], strict=False)):
        raise DistillError("trace rows are not in time order", where=str(p), fix="sort the rows by ts")
    return rows


def request_body(row: dict[str, Any], model: str, max_tokens: int | None, recorded_lengths: bool = False
                 ) -> tuple[str, dict[str, Any]]:
    """(endpoint path, JSON body) for one row: the served model's name; with `recorded_lengths`, max_tokens set to
    the answer length the trace recorded for the row (`completion_tokens`, when it has one); then max_tokens capped
    when asked."""
    body = dict(row["request"])
    body["model"] = model
    recorded = row.get("completion_tokens")
    if recorded_lengths and isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
        body["max_tokens"] = recorded
        body.pop("max_completion_tokens", None)
    if max_tokens is not None:
        asked = body.get("max_tokens")
        body["max_tokens"] = min(asked, max_tokens) if isinstance(asked, int) and asked > 0 else max_tokens
    return ("/v1/chat/completions" if "messages" in body else "/v1/completions"), body


def replay(rows: list[dict[str, Any]], url: str, keys: dict[str, str], *, speed: float = 1.0, model: str = "m",
           concurrency: int = 8, max_tokens: int | None = None, recorded_lengths: bool = False, timeout: float = 120.0,
           out: str | Path | None = None, progress=None) -> dict[str, Any]:
    """Send `rows` to the server at `url` (keys: account name -> API key); returns a summary (`max_tokens`,
    `recorded_lengths`: see `request_body`). With `out`, one
    JSONL line per row: its index, account name, label, kind, HTTP status, error code, when it was sent (seconds
    after the start), how late that was against the compressed schedule, and its latency."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    missing = sorted({r["key"] for r in rows} - set(keys))
    if missing:
        raise DistillError(f"{len(missing)} account(s) of the trace have no key, e.g. {missing[0]!r}",
                           where="--keys", fix="pass the name:key file written with the trace (--keys-out)")
    if speed <= 0 or concurrency < 1:
        raise DistillError("--speed must be positive and --concurrency at least 1", where="distill guard replay")
    results: list[dict[str, Any] | None] = [None] * len(rows)
    work: queue.Queue = queue.Queue(maxsize=concurrency)
    base = url.rstrip("/")
    base = base[:-3] if base.endswith("/v1") else base
    refused = threading.Event()

    def sender() -> None:
        with httpx.Client(base_url=base, timeout=timeout) as client:
            while (item := work.get()) is not None:
                i, due = item
                row = rows[i]
                path, body = request_body(row, model, max_tokens, recorded_lengths)
                sent = time.monotonic()
                status, code = 0, "connect_error"
                try:
                    r = client.post(path, json=body, headers={"Authorization": f"Bearer {keys[row['key']]}"})
                    status = r.status_code
                    code = None
                    if status != 200:
                        try:
                            code = (r.json().get("error") or {}).get("code")
                        except ValueError:
                            code = "not_json"
                except httpx.ConnectError:
                    refused.set()
                except httpx.HTTPError as e:
                    code = type(e).__name__
                results[i] = {"i": i, "key": row["key"], "label": row.get("label"), "kind": row.get("kind"),
                              "status": status, "code": code, "sent_s": round(sent - start, 4),
                              "late_s": round(sent - due, 4),
                              "latency_s": round(time.monotonic() - sent, 4)}

    start, ts0 = time.monotonic(), (rows[0]["ts"] if rows else 0.0)
    threads = [threading.Thread(target=sender, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        for i, row in enumerate(rows):
            if refused.is_set():
                break
            due = start + (row["ts"] - ts0) / speed
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            work.put((i, due))  # in order: blocks while every sender is busy
            if progress is not None and i and i % 2000 == 0:
                progress(i, len(rows))
    finally:
        for _ in threads:
            work.put(None)
        for t in threads:
            t.join()
    if refused.is_set():
        raise DistillError("nothing listens at the server's address", where=url,
                           fix="start `distill serve` (with --api-key-file and --guard-config) and check --url")
    done = [r for r in results if r is not None]
    if out is not None:
        atomic_write(out, lambda f: f.writelines(json.dumps(r) + "\n" for r in done))
    late = sorted(r["late_s"] for r in done)
    return {"rows": len(done), "seconds": round(time.monotonic() - start, 1),
            "status": dict(Counter(str(r["status"]) for r in done)),
            "codes": dict(Counter(r["code"] for r in done if r["code"])),
            "late_s_p50": late[len(late) // 2] if late else 0.0, "late_s_max": late[-1] if late else 0.0}

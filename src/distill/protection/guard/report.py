"""`distill guard report`: read a guard state file and list accounts with their scores and evidence."""

from __future__ import annotations

from typing import Any

from distill.protection.guard.state import EXPECTED, STATE_FORMAT, check_state, load_state

__all__ = ["EXPECTED", "STATE_FORMAT", "check_state", "format_table", "load_state", "rows"]


def rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Accounts, highest score first."""
    out = [{"account": k, **v} for k, v in state.get("accounts", {}).items()]
    return sorted(out, key=lambda r: -r.get("score", 0.0))


def format_table(state: dict[str, Any]) -> str:
    lines = [f"{'account':<24} {'score':>6} {'max':>6} {'action':<10} {'reqs':>6} {'refused':>7}  evidence"]
    for r in rows(state):
        pct = r.get("percentiles") or {}
        if pct:  # a calibrated guard: what exceeds the nearest benign record, with its benign percentile
            over = sorted((pct.get("over_nearest") or {}).items(), key=lambda kv: -kv[1])[:3]
            ev = ", ".join(f"{k} (p{pct.get(k, 0):.1f})" for k, _ in over)
            ev = f"departure {pct.get('departure', 0):.1f}" + (f": {ev}" if ev else "")
            if pct.get("nearest_account") and over:
                ev += f" (nearest benign: {pct['nearest_account']})"
            unlike = list((pct.get("unlike_nearest") or {}).items())[:3]
            ev += f"; unlikeness {pct.get('unlikeness', 0):.1f}" + (
                ": " + ", ".join(f"{k} {v:+.1f}" for k, v in unlike) if unlike else "")
        else:
            contrib = r.get("contributions", {})
            top = sorted(contrib.items(), key=lambda kv: -kv[1])[:3]
            ev = ", ".join(f"{k} {v:+.1f}" for k, v in top if v > 0)
        skel = r.get("top_prefix_skeletons") or []
        if skel and skel[0]["count"] > 1:
            ev += f"; template '{skel[0]['skeleton']}' x{skel[0]['count']}"
        if r.get("keys_sharing_frame_total"):
            ev += (f"; frame shared with {r['keys_sharing_frame_total']} keys "
                   f"({', '.join(r.get('keys_sharing_frame', [])[:3])}, ...)")
        elif r.get("keys_sharing_templates"):
            ev += f"; shares templates with {', '.join(r['keys_sharing_templates'][:3])}"
        changes = r.get("changes") or []
        if changes:
            c = changes[-1]
            ev += f"; last change {c['from']} -> {c['to']} ({c.get('reason', '')})"
        lines.append(f"{r['account'][:24]:<24} {r.get('score', 0):>6.3f} {r.get('max_score', 0):>6.3f} "
                     f"{r.get('action', 'none'):<10} {r.get('requests_in_window', 0):>6} "
                     f"{r.get('refused_total', 0):>7}  {ev}")
    return "\n".join(lines)

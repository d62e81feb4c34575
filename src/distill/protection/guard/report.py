"""`distill guard report`: read a guard state file and list accounts with their scores and evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.fileio import read_json_object
from distill.protection.guard.core import STATE_FORMAT

EXPECTED = (f'pass the state_file the guard writes (a JSON object {{"format": "{STATE_FORMAT}", "accounts": {{NAME: '
            '{"score": NUMBER, "action": TEXT, ...}}, "rules": [...]}, saved by `distill serve --guard-config`)')


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    """The JSON name of a value's type."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return names.get(type(v), "null")


def _skeletons(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, dict) and isinstance(s.get("skeleton"), str)
                                       and isinstance(s.get("count"), int) for s in v)


# the account fields `rows` and `format_table` read, and what each must be
ACCOUNT_FIELDS = {
    "score": (_number, "a number"), "max_score": (_number, "a number"), "requests_in_window": (_number, "a number"),
    "action": (lambda v: isinstance(v, str), "a string"),
    "contributions": (lambda v: isinstance(v, dict) and all(_number(x) for x in v.values()),
                      "an object of numbers"),
    "top_prefix_skeletons": (_skeletons, 'a list of {"skeleton", "count"}'),
    "keys_sharing_templates": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                               "a list of strings"),
}


def check_state(state: dict[str, Any], where: str) -> None:
    """Refuse a state whose accounts the report cannot read, naming the first bad field and what was expected."""
    def bad(what: str, at: str) -> DistillError:
        return DistillError(f"the guard state file is damaged or not a guard state: {what}", where=f"{where}: {at}",
                            fix=EXPECTED)

    accounts = state.get("accounts", {})
    if not isinstance(accounts, dict):
        raise bad(f"'accounts' is a {_kind(accounts)}, not an object of accounts", "accounts")
    if not isinstance(state.get("rules", []), list):
        raise bad("'rules' is not a list", "rules")
    for name, acc in accounts.items():
        if not isinstance(acc, dict):
            raise bad(f"account {name!r} is a {_kind(acc)}, not an object", f"accounts.{name}")
        for field, (ok, expected) in ACCOUNT_FIELDS.items():
            if field in acc and not ok(acc[field]):
                raise bad(f"{field} of account {name!r} is not {expected}", f"accounts.{name}.{field}")


def load_state(path: str | Path) -> dict[str, Any]:
    state = read_json_object(path, "guard state file", EXPECTED,
                             fix_missing="pass --state FILE (the state_file of the guard config)", fmt=STATE_FORMAT)
    check_state(state, str(path))
    return state


def rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Accounts, highest score first."""
    out = [{"account": k, **v} for k, v in state.get("accounts", {}).items()]
    return sorted(out, key=lambda r: -r.get("score", 0.0))


def format_table(state: dict[str, Any]) -> str:
    lines = [f"{'account':<24} {'score':>6} {'max':>6} {'action':<10} {'reqs':>6}  evidence"]
    for r in rows(state):
        contrib = r.get("contributions", {})
        top = sorted(contrib.items(), key=lambda kv: -kv[1])[:3]
        ev = ", ".join(f"{k} {v:+.1f}" for k, v in top if v > 0)
        skel = r.get("top_prefix_skeletons") or []
        if skel and skel[0]["count"] > 1:
            ev += f"; template '{skel[0]['skeleton']}' x{skel[0]['count']}"
        if r.get("keys_sharing_templates"):
            ev += f"; shares templates with {', '.join(r['keys_sharing_templates'][:3])}"
        lines.append(f"{r['account'][:24]:<24} {r.get('score', 0):>6.3f} {r.get('max_score', 0):>6.3f} "
                     f"{r.get('action', 'none'):<10} {r.get('requests_in_window', 0):>6}  {ev}")
    return "\n".join(lines)

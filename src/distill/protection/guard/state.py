"""The guard's state file: its format, and the check that a file is one (for `distill guard report` and for the
guard itself, which restores each account's action from it on start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.fileio import read_json_object

STATE_FORMAT = "distill-guard-state/1"
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


def _changes(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(c, dict) and isinstance(c.get("to"), str)
                                       and isinstance(c.get("from"), str) and _number(c.get("ts")) for c in v)


# the account fields `rows`, `format_table` and the guard's restore read, and what each must be
ACCOUNT_FIELDS = {
    "score": (_number, "a number"), "max_score": (_number, "a number"), "requests_in_window": (_number, "a number"),
    "action": (lambda v: isinstance(v, str), "a string"),
    "hold_until": (_number, "a number"), "action_since": (lambda v: v is None or _number(v), "a number or null"),
    "refused_total": (_number, "a number"),
    "refused": (lambda v: isinstance(v, dict) and all(_number(x) for x in v.values()), "an object of numbers"),
    "changes": (_changes, 'a list of {"ts", "from", "to", ...}'),
    "contributions": (lambda v: isinstance(v, dict) and all(_number(x) for x in v.values()),
                      "an object of numbers"),
    "top_prefix_skeletons": (_skeletons, 'a list of {"skeleton", "count"}'),
    "keys_sharing_templates": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                               "a list of strings"),
    "keys_sharing_frame": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "keys_sharing_frame_total": (_number, "a number"),
    "bucket": (lambda v: v is None or isinstance(v, str), "an account name or null"),
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

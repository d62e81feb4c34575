"""The policy table: rows of licences and terms, loaded from `distill/provenance/policy.yaml` and validated."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from distill.errors import DistillError

VERDICTS = ("allowed", "allowed_with_obligations", "prohibited", "unknown")
# Higher is more restrictive: when several rows match, the most restrictive decides.
SEVERITY = {"allowed": 0, "allowed_with_obligations": 1, "unknown": 2, "prohibited": 3}
OBLIGATION_KINDS = ("name_prefix", "model_card_notice", "attribution", "carry_use_restrictions",
                    "include_license", "notice_file", "condition")
MATCH_KINDS = ("license", "name", "model_type", "license_text", "api_host")
_REQUIRED = ("id", "name", "match", "verdict", "clause", "obligations", "source", "checked", "verified")


def normalize_license(value: str) -> str:
    """Lower-case a licence id and collapse whitespace ("Apache 2.0" -> "apache 2.0")."""
    return " ".join(str(value).strip().lower().split())


@dataclass(frozen=True)
class Row:
    """One licence or set of terms and what it says about distillation."""

    id: str
    name: str
    verdict: str
    clause: str
    source: str
    checked: str
    verified: bool
    note: str = ""
    obligations: tuple[tuple[str, str], ...] = ()
    licenses: tuple[str, ...] = ()
    names: tuple[re.Pattern, ...] = ()
    model_types: tuple[re.Pattern, ...] = ()
    license_texts: tuple[re.Pattern, ...] = ()
    api_hosts: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def matches(self, kind: str, value: str) -> bool:
        """Whether one piece of evidence (`kind`, `value`) satisfies this row's match rules."""
        if kind == "license":
            return normalize_license(value) in self.licenses
        if kind == "api_host":
            host = value.lower().rstrip(".")
            return any(host == h or host.endswith("." + h) for h in self.api_hosts)
        patterns = {"name": self.names, "model_type": self.model_types, "license_text": self.license_texts}[kind]
        return any(p.search(value) for p in patterns)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "verdict": self.verdict, "clause": self.clause,
                "source": self.source, "checked": self.checked, "verified": self.verified, "note": self.note,
                "obligations": [{k: v} for k, v in self.obligations]}


def _bad(what: str, where: str) -> DistillError:
    return DistillError(what, where=where, fix="correct the policy table (see docs/policy.md for the row format)")


def _compile(patterns: Any, where: str) -> tuple[re.Pattern, ...]:
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise _bad("a match rule must be a list of strings", where)
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p, re.IGNORECASE | re.MULTILINE))
        except re.error as e:
            raise _bad(f"invalid regular expression {p!r}: {e}", where) from e
    return tuple(out)


def _row(raw: Any, where: str) -> Row:
    if not isinstance(raw, dict):
        raise _bad("each row must be a mapping", where)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise _bad(f"row is missing {', '.join(missing)}", where)
    where = f"{where} (id {raw['id']})"
    if raw["verdict"] not in VERDICTS:
        raise _bad(f"verdict {raw['verdict']!r} is not one of {', '.join(VERDICTS)}", where)
    if not isinstance(raw["verified"], bool):
        raise _bad("verified must be true or false", where)
    match = raw["match"]
    if not isinstance(match, dict) or not match or set(match) - set(MATCH_KINDS):
        raise _bad(f"match must be a non-empty mapping with keys among {', '.join(MATCH_KINDS)}", where)
    obligations = []
    if not isinstance(raw["obligations"], list):
        raise _bad("obligations must be a list", where)
    for ob in raw["obligations"]:
        if not isinstance(ob, dict) or len(ob) != 1:
            raise _bad("each obligation must be a one-key mapping, e.g. {name_prefix: Llama}", where)
        (kind, text), = ob.items()
        if kind not in OBLIGATION_KINDS:
            raise _bad(f"unknown obligation {kind!r} (known: {', '.join(OBLIGATION_KINDS)})", where)
        obligations.append((kind, str(text)))
    if raw["verdict"] == "allowed_with_obligations" and not obligations:
        raise _bad("verdict allowed_with_obligations needs at least one obligation", where)
    return Row(
        id=str(raw["id"]), name=str(raw["name"]), verdict=raw["verdict"], clause=" ".join(str(raw["clause"]).split()),
        source=str(raw["source"]), checked=str(raw["checked"]), verified=raw["verified"],
        note=" ".join(str(raw.get("note", "")).split()), obligations=tuple(obligations),
        licenses=tuple(normalize_license(v) for v in match.get("license", [])),
        names=_compile(match.get("name", []), where), model_types=_compile(match.get("model_type", []), where),
        license_texts=_compile(match.get("license_text", []), where),
        api_hosts=tuple(str(h).lower() for h in match.get("api_host", [])), raw=raw)


def parse_table(data: Any, where: str = "policy table") -> tuple[Row, ...]:
    """Validate a parsed policy table (the YAML document) and return its rows."""
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or not data["rows"]:
        raise _bad("the policy table must be a mapping with a non-empty `rows` list", where)
    rows = tuple(_row(r, f"{where}, row {i + 1}") for i, r in enumerate(data["rows"]))
    ids = [r.id for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise _bad(f"duplicate row ids: {', '.join(dupes)}", where)
    return rows


def load_table(path: str | Path | None = None) -> tuple[Row, ...]:
    """The policy table: the packaged `distill/provenance/policy.yaml`, or another file with the same format."""
    if path is None:
        return _packaged()
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise _bad(f"cannot read the policy table: {e}", str(p)) from e
    return parse_table(data, str(p))


@functools.lru_cache(maxsize=1)
def _packaged() -> tuple[Row, ...]:
    text = resources.files("distill").joinpath("provenance/policy.yaml").read_text(encoding="utf-8")
    return parse_table(yaml.safe_load(text), "distill/provenance/policy.yaml")

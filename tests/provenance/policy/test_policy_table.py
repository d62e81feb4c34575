"""The packaged policy table: complete, well-formed, and its validator rejects malformed rows."""

from __future__ import annotations

import copy

import pytest
import yaml

from distill.errors import DistillError
from distill.provenance.policy.table import VERDICTS, load_table, parse_table


def _raw():
    from importlib import resources

    return yaml.safe_load(resources.files("distill").joinpath("provenance/policy.yaml").read_text())


def test_table_has_the_required_rows_with_expected_verdicts():
    rows = {r.id: r for r in load_table()}
    expected = {
        "apache-2.0": "allowed", "open-permissive": "allowed", "deepseek-r1": "allowed",
        "llama3": "prohibited", "llama3.1": "allowed_with_obligations", "llama3.2": "allowed_with_obligations",
        "llama3.3": "allowed_with_obligations", "gemma": "allowed_with_obligations",
        "qwen": "allowed_with_obligations", "openai": "prohibited", "anthropic": "prohibited",
        "google-gemini-api": "prohibited", "cc-by-nc": "allowed_with_obligations",
    }
    for rid, verdict in expected.items():
        assert rows[rid].verdict == verdict, rid
    for row in rows.values():
        assert row.verdict in VERDICTS
        assert row.source.startswith("http"), row.id
        assert row.clause and row.checked
        assert isinstance(row.verified, bool)
        if not row.verified:
            assert row.note, f"{row.id}: unverified rows must say why"
    assert ("name_prefix", "Llama") in rows["llama3.1"].obligations
    assert ("model_card_notice", "Built with Llama") in rows["llama3.1"].obligations
    assert any(k == "carry_use_restrictions" for k, _ in rows["gemma"].obligations)
    assert rows["open-permissive"].matches("license", "MIT")
    assert rows["open-permissive"].matches("license", "bsd-3-clause")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.__setitem__("verdict", "maybe"), "verdict"),
    (lambda r: r.__setitem__("obligations", [{"tattoo": "x"}]), "unknown obligation"),
    (lambda r: r["match"].__setitem__("name", ["(unclosed"]), "regular expression"),
    (lambda r: r.pop("source"), "missing source"),
    (lambda r: r.__setitem__("verified", "yes"), "verified"),
])
def test_validator_rejects_malformed_rows(mutate, message):
    data = copy.deepcopy(_raw())
    mutate(next(r for r in data["rows"] if r["id"] == "llama3.1"))
    with pytest.raises(DistillError) as e:
        parse_table(data)
    assert message in str(e.value)


def test_obligation_verdict_needs_obligations_and_ids_are_unique():
    data = copy.deepcopy(_raw())
    next(r for r in data["rows"] if r["id"] == "gemma")["obligations"] = []
    with pytest.raises(DistillError, match="at least one obligation"):
        parse_table(data)
    data = copy.deepcopy(_raw())
    data["rows"].append(copy.deepcopy(data["rows"][0]))
    with pytest.raises(DistillError, match="duplicate"):
        parse_table(data)

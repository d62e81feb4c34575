"""Signed lineage: sign/verify round trip, tampering, unsigned records, chains and the card section."""

from __future__ import annotations

import json
import shutil

import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.keys import signing
from distill.models.loading import ModelInfo, resolve
from distill.provenance import lineage
from distill.provenance.policy import check_model_teacher
from distill.provenance.policy.identify import cached_gguf_metadata


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    a, fa = signing.new_key(d / "a.pem")
    b, fb = signing.new_key(d / "b.pem")
    return {"a": a, "b": b, "fa": fa, "fb": fb}


@pytest.fixture(scope="module")
def default_teacher():
    kind, path = resolve("default")
    meta = cached_gguf_metadata(path)
    info = ModelInfo(spec="default", kind=kind, path=path, weights_sha256="0" * 64, name=meta["general.name"],
                     gguf_metadata=meta)
    return info, check_model_teacher(info)


@pytest.fixture
def student(tmp_path, tiny_model_dir):
    return shutil.copytree(tiny_model_dir, tmp_path / "student")


def _record(default_teacher, **kw):
    info, verdict = default_teacher
    return lineage.build_record(teacher=info, verdict=verdict, config={"train": {"steps": 3}, "seed": 0},
                                data=[{"name": "shakespeare", "sha256": "ab" * 32}],
                                evaluation={"perplexity": 42.5, "nan_is_dropped": float("nan")},
                                student_name="tiny-student", **kw)


def test_sign_and_verify_round_trip(student, keys, default_teacher, capsys):
    path = lineage.write_lineage(student, _record(default_teacher), keys["a"])
    rec = json.loads(path.read_text())
    assert rec["signature"]["fingerprint"] == keys["fa"]
    assert rec["student"]["artifact"] == "model" and len(rec["student"]["weights_sha256"]) == 64
    assert rec["policy"]["decision"] == "allowed" and rec["teacher"]["identity"]["licenses"] == ["apache-2.0"]
    assert rec["evaluation"] == {"perplexity": 42.5, "nan_is_dropped": None}
    assert rec["code"]["distill_version"]
    assert "PRIVATE KEY" not in path.read_text()
    result = lineage.verify(student, trusted_key=keys["a"].with_name("a.pem.pub"))
    assert result.ok and result.status == "VALID" and result.trusted and result.weights_ok
    assert main(["lineage", "verify", str(student), "--trusted-key", keys["fa"]]) == 0
    assert "status: VALID" in capsys.readouterr().out
    # a valid signature by someone else is not good enough when a signer is required
    assert main(["lineage", "verify", str(student), "--trusted-key", str(keys["b"].with_name("b.pem.pub"))]) == 4
    assert "not signed by the trusted key" in capsys.readouterr().err


def test_tampered_lineage_json_fails_verify(student, keys, default_teacher, capsys):
    path = lineage.write_lineage(student, _record(default_teacher), keys["a"])
    rec = json.loads(path.read_text())
    rec["evaluation"]["perplexity"] = 1.0
    path.write_text(json.dumps(rec, indent=2))
    assert main(["lineage", "verify", str(student)]) == 4
    err = capsys.readouterr().err
    assert "lineage verification failed" in err and "changed after signing" in err
    path.write_text("{not json")
    assert main(["lineage", "verify", str(student)]) == 4


def test_tampered_weights_fail_verify(student, keys, default_teacher, capsys):
    lineage.write_lineage(student, _record(default_teacher), keys["a"])
    weights = next(student.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert main(["lineage", "verify", str(student)]) == 4
    assert "weights do not match" in capsys.readouterr().err


def test_unsigned_lineage_passes_as_unsigned_unless_a_signature_is_required(student, default_teacher, capsys):
    lineage.write_lineage(student, _record(default_teacher), None)
    assert main(["lineage", "verify", str(student)]) == 0
    assert "status: UNSIGNED" in capsys.readouterr().out
    assert main(["lineage", "verify", str(student), "--require-signature"]) == 4


def test_missing_or_misplaced_keys_are_clear_errors(student, tmp_path, default_teacher, monkeypatch, keys):
    with pytest.raises(DistillError, match="signing key file not found"):
        signing.resolve_signing_key(str(tmp_path / "nope.pem"))
    monkeypatch.setenv(signing.ENV_VAR, str(tmp_path / "gone.pem"))
    with pytest.raises(DistillError) as e:
        signing.resolve_signing_key(None)
    assert "DISTILL_SIGNING_KEY" in str(e.value)
    monkeypatch.setenv(signing.ENV_VAR, str(keys["a"]))
    assert signing.resolve_signing_key(None) == keys["a"]
    assert signing.resolve_signing_key(str(keys["b"])) == keys["b"]  # the flag wins over the environment
    monkeypatch.delenv(signing.ENV_VAR)
    assert signing.resolve_signing_key(None) is None
    with pytest.raises(DistillError, match="signing key file not found"):
        lineage.write_lineage(student, _record(default_teacher), tmp_path / "nope.pem")
    inside = student / "keys" / "k.pem"
    inside.parent.mkdir()
    shutil.copy(keys["a"], inside)
    with pytest.raises(DistillError, match="inside the student directory"):
        lineage.write_lineage(student, _record(default_teacher), inside)
    assert not (student / "lineage.json").exists()  # nothing half-written
    not_a_key = tmp_path / "junk.pem"
    not_a_key.write_text("hello")
    with pytest.raises(DistillError, match="not a PEM private key"):
        lineage.write_lineage(student, _record(default_teacher), not_a_key)
    assert main(["lineage", "verify", str(student)]) == 4  # no lineage.json at all


def test_chain_embeds_and_renders_the_teachers_lineage(tmp_path, tiny_teacher_dir, tiny_model_dir, keys,
                                                       default_teacher, capsys):
    teacher_dir = shutil.copytree(tiny_teacher_dir, tmp_path / "gen1")
    lineage.write_lineage(teacher_dir, _record(default_teacher), keys["a"])
    teacher_info = ModelInfo(spec=str(teacher_dir), kind="dir", path=str(teacher_dir), weights_sha256="1" * 64,
                             name="gen1-student", local_dir=str(teacher_dir))
    gen2 = shutil.copytree(tiny_model_dir, tmp_path / "gen2")
    rec = lineage.build_record(teacher=teacher_info, verdict=None, config={}, student_name="gen2-student")
    assert rec["teacher_lineage"]["student"]["name"] == "tiny-student"
    lineage.write_lineage(gen2, rec, keys["b"])
    result = lineage.verify(gen2)
    assert result.ok and [c.student for c in result.chain] == ["gen2-student", "gen1-student"]
    assert result.chain[1].teacher == "Smollm2 135M 8k Lc100K Mix1 Ep2" and result.chain[1].signature == "valid"
    assert main(["lineage", "verify", str(gen2)]) == 0
    out = capsys.readouterr().out
    assert "gen2-student <- gen1-student" in out and "gen1-student <- Smollm2" in out
    card = lineage.card_section(result.record)
    assert "### Ancestry" in card and "gen1-student ← Smollm2 135M" in card


def test_card_section_carries_gemma_obligations(student, keys):
    info = ModelInfo(spec="gemma.gguf", kind="gguf", path="/nonexistent/gemma.gguf", weights_sha256="2" * 64,
                     name="Gemma 3 270m", gguf_metadata={"general.name": "Gemma 3 270m"})
    verdict = check_model_teacher(info)
    rec = lineage.build_record(teacher=info, verdict=verdict, config={}, student_name="gemma-student",
                               evaluation={"perplexity": 10.0})
    lineage.write_lineage(student, rec, keys["a"])
    card = lineage.card_section(lineage.read_lineage(student))
    assert "allowed_with_obligations under Gemma Terms of Use" in card
    assert "Prohibited Use Policy" in card and "Gemma is provided under and subject to" in card
    assert "| perplexity | 10.0 |" in card and keys["fa"] in card
    assert main(["lineage", "show", str(student)]) == 0


def test_api_teacher_and_file_artifacts(tmp_path, keys, capsys):
    from distill.provenance.policy import check_api_teacher

    out = tmp_path / "generated"
    out.mkdir()
    (out / "data.jsonl").write_text('{"text": "hello"}\n')
    verdict = check_api_teacher("http://127.0.0.1:9/v1", "default")
    rec = lineage.build_record(api={"base_url": "http://127.0.0.1:9/v1", "model": "default"}, verdict=verdict)
    lineage.write_lineage(out, rec, keys["a"])
    assert lineage.verify(out).ok
    assert "served by http://127.0.0.1:9/v1" in lineage.card_section(lineage.read_lineage(out))
    (out / "data.jsonl").write_text('{"text": "HELLO"}\n')
    assert main(["lineage", "verify", str(out)]) == 4
    assert "data.jsonl" in capsys.readouterr().err

"""The gate: identification from metadata, decisions, authorizations, obligations and the CLI."""

from __future__ import annotations

import json

import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.models.loading import ModelInfo, resolve
from distill.provenance.policy import (
    apply_obligations,
    check_api_teacher,
    check_model_teacher,
    evaluate,
    identify_api,
    identify_model,
    identify_spec,
    notice_text,
)
from distill.provenance.policy.identify import (
    cached_gguf_metadata,  # distill.models.gguf_metadata, parsed once
)


def _dir_info(d) -> ModelInfo:
    return ModelInfo(spec=str(d), kind="dir", path=str(d), weights_sha256="", name=str(d), local_dir=str(d))


def test_default_teacher_passes_from_its_real_gguf_metadata():
    kind, path = resolve("default")
    meta = cached_gguf_metadata(path)
    assert meta["general.license"] == "apache-2.0"
    info = ModelInfo(spec="default", kind=kind, path=path, weights_sha256="", name=meta["general.name"],
                     gguf_metadata=meta)
    verdict = check_model_teacher(info, None)
    assert verdict.decision == "allowed" and verdict.row.id == "apache-2.0"
    origins = {(rid, ev.origin) for rid, ev in verdict.identity.matches}
    assert ("apache-2.0", "GGUF general.license") in origins
    assert verdict.to_dict()["teacher"]["licenses"] == ["apache-2.0"]


def test_gemma_from_gguf_metadata_passes_with_obligations():
    info = ModelInfo(spec="gemma-3-270m-q4_k_m.gguf", kind="gguf", path="/nonexistent/gemma.gguf",
                     weights_sha256="", name="Gemma 3 270m",
                     gguf_metadata={"general.name": "Gemma 3 270m", "general.organization": "Google"})
    verdict = check_model_teacher(info)
    assert verdict.decision == "allowed_with_obligations" and verdict.row.id == "gemma"
    kinds = [k for k, _ in verdict.obligations]
    assert "carry_use_restrictions" in kinds and "notice_file" in kinds
    name, notices = apply_obligations(verdict, "tiny-student")
    assert name == "tiny-student"
    assert any("Prohibited Use Policy" in n for n in notices)
    assert "Gemma Terms of Use" in notice_text(verdict)


def test_gemma_from_directory_config_and_licence_file(gemma_dir):
    identity = identify_model(_dir_info(gemma_dir))
    origins = {ev.origin for rid, ev in identity.matches if rid == "gemma"}
    assert {"config.json model_type", "LICENSE"} <= origins
    assert evaluate(identity).decision == "allowed_with_obligations"


def test_llama3_refused_without_authorization_and_accepted_with_one(llama3_dir, tmp_path, auth_file):
    with pytest.raises(DistillError) as e:
        check_model_teacher(_dir_info(llama3_dir), None)
    assert e.value.code == 3
    assert "improve any other large language model" in str(e.value)
    assert "llama.meta.com/llama3/license" in str(e.value)
    auth = auth_file(tmp_path / "auth.yaml", "meta-llama/Meta-Llama-3-*", expires="2999-01-01")
    verdict = check_model_teacher(_dir_info(llama3_dir), auth)
    assert verdict.decision == "allowed" and verdict.basis == "authorization"
    assert verdict.table_verdict == "prohibited"
    recorded = verdict.to_dict()["authorization"]
    assert recorded["granted_by"].startswith("Rights Holder") and recorded["reference"] == "agreement 2026-117"
    assert recorded["matched"] == "meta-llama/Meta-Llama-3-8B" and len(recorded["sha256"]) == 64


def test_openai_api_refused_without_authorization_and_accepted_with_one(tmp_path):
    with pytest.raises(DistillError) as e:
        check_api_teacher("https://api.openai.com/v1", "gpt-4o-mini")
    assert e.value.code == 3 and "compete with OpenAI" in str(e.value) and "openai.com/policies" in str(e.value)
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"granted_by": "OpenAI (partnerships)", "covers": "gpt-4o*",
                                "reference": "contract 42"}))
    verdict = check_api_teacher("https://api.openai.com/v1", "gpt-4o-mini", auth)
    assert verdict.decision == "allowed" and verdict.authorization["covers"]["teacher"] == "gpt-4o*"


@pytest.mark.parametrize("host, row", [("https://api.anthropic.com/v1", "anthropic"),
                                       ("https://generativelanguage.googleapis.com/v1beta/openai", "google-gemini-api")])
def test_other_providers_are_identified_by_host(host, row):
    verdict = evaluate(identify_api(host, "some-model"))
    assert verdict.refused and verdict.row.id == row


def test_local_api_is_identified_by_model_name_or_local_spec():
    assert evaluate(identify_api("http://127.0.0.1:8000/v1", "default")).decision == "allowed"
    assert evaluate(identify_api("http://localhost:8000/v1", "x", local_spec="default")).decision == "allowed"
    assert evaluate(identify_api("http://localhost:8000/v1", "meta-llama/Llama-3.1-8B-Instruct")).decision == \
        "allowed_with_obligations"
    assert evaluate(identify_api("http://localhost:8000/v1", "my-private-model")).refused


def test_contradictory_authorizations_are_rejected(llama3_dir, tmp_path, auth_file):
    info = _dir_info(llama3_dir)
    other = auth_file(tmp_path / "other.yaml", "google/gemma-*")
    with pytest.raises(DistillError) as e:
        check_model_teacher(info, other)
    assert e.value.code == 3 and "does not match this teacher" in str(e.value)
    expired = auth_file(tmp_path / "expired.yaml", "llama3", expires="2020-01-01")
    with pytest.raises(DistillError, match="expired on 2020-01-01"):
        check_model_teacher(info, expired)
    incomplete = tmp_path / "incomplete.yaml"
    incomplete.write_text("covers: {teacher: llama3}\n")
    with pytest.raises(DistillError) as e:
        check_model_teacher(info, incomplete)
    assert e.value.code == 2 and "granted_by" in str(e.value) and "reference" in str(e.value)
    wrong_use = tmp_path / "use.yaml"
    wrong_use.write_text("granted_by: x\nreference: y\ncovers: {teacher: llama3, use: inference}\n")
    with pytest.raises(DistillError, match="not distillation"):
        check_model_teacher(info, wrong_use)
    with pytest.raises(DistillError, match="not found"):
        check_model_teacher(info, tmp_path / "missing.yaml")


def test_unknown_licence_is_refused(tmp_path, make_dir):
    d = make_dir(tmp_path, "mystery", readme="---\nlicense: acme-proprietary-1.0\n---\n")
    verdict = evaluate(identify_model(_dir_info(d)))
    assert verdict.refused and verdict.row is None and "No licence or terms" in verdict.clause
    with pytest.raises(DistillError) as e:
        check_model_teacher(_dir_info(d))
    assert e.value.code == 3


def test_most_restrictive_row_wins(tmp_path, make_dir):
    d = make_dir(tmp_path, "mislabelled", config={"_name_or_path": "NousResearch/Hermes-2-Pro-Llama-3-8B"},
                       readme="---\nlicense: apache-2.0\n---\n")
    verdict = evaluate(identify_model(_dir_info(d)))
    assert {r.id for r in verdict.identity.rows} == {"apache-2.0", "llama3"}
    assert verdict.refused and verdict.row.id == "llama3"


def test_llama31_obligations_rename_the_student(tmp_path, make_dir):
    d = make_dir(tmp_path, "l31", readme="---\nlicense: llama3.1\nbase_model: meta-llama/Llama-3.1-8B\n---\n")
    verdict = check_model_teacher(_dir_info(d))
    assert verdict.decision == "allowed_with_obligations" and verdict.row.id == "llama3.1"
    name, notices = apply_obligations(verdict, "tiny-student")
    assert name == "Llama-tiny-student"
    assert "Built with Llama" in notices and any("700 million" in n for n in notices)
    assert apply_obligations(verdict.to_dict(), "Llama-x")[0] == "Llama-x"


def test_hub_ids_are_identified_by_name_without_network():
    assert evaluate(identify_spec("meta-llama/Meta-Llama-3-8B-Instruct")).row.id == "llama3"
    assert evaluate(identify_spec("google/gemma-3-270m")).row.id == "gemma"
    assert evaluate(identify_spec("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")).decision == "allowed"


def test_cli_policy_check_exit_codes(llama3_dir, tmp_path, capsys, auth_file):
    assert main(["policy", "check", "default"]) == 0
    assert "ALLOWED" in capsys.readouterr().out
    assert main(["policy", "check", str(llama3_dir)]) == 3
    out = capsys.readouterr().out
    assert "REFUSED" in out and "source: https://llama.meta.com/llama3/license/" in out
    auth = auth_file(tmp_path / "auth.yaml", "llama3")
    assert main(["policy", "check", str(llama3_dir), "--authorization", str(auth)]) == 0
    out = capsys.readouterr().out
    assert "ALLOWED" in out and "authorization: granted by Rights Holder" in out
    assert "teacher: meta-llama/Meta-Llama-3-8B" in out
    assert main(["policy", "check", "gpt-4o", "--api-base", "https://api.openai.com/v1", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["decision"] == "refused" and data["row"] == "openai"
    bad = auth_file(tmp_path / "bad.yaml", "gemma*")
    assert main(["policy", "check", str(llama3_dir), "--authorization", str(bad)]) == 3
    assert "does not match this teacher" in capsys.readouterr().err

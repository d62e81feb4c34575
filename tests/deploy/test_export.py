"""`distill export`: a tiny random student on the real tokenizer exported to each format, read back by transformers'
own loaders and compared with the source; the refusal paths leave nothing under the final name.

Reading a GGUF file with transformers parses the 49k-token vocabulary in Python (seconds each time), so each format
is exported once per module and every test reads the same files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_fileio import mode, umask_modes

from distill.cli import main
from distill.deploy import check
from distill.deploy.export import ExportSettings, export
from distill.models.loading import weights_sha256


def _save(model, tokenizer, out: Path) -> Path:
    model.save_pretrained(out, safe_serialization=True)
    return _save_tokenizer_and_card(tokenizer, out)


def _save_tokenizer_and_card(tokenizer, out: Path) -> Path:
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny student\n")
    return out


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    from distill.keys import signing

    return signing.new_key(tmp_path_factory.mktemp("keys") / "k.pem")  # (private key path, fingerprint)


@pytest.fixture(scope="module")
def gqa_student(tmp_path_factory, tokenizer, key) -> Path:
    """Grouped-query attention (4 query heads, 2 KV heads) and an untied output head: both paths of the writer
    that the shared tied, full-attention fixture does not take. It has a signed lineage.json, as a trained
    student does."""
    from distill.models.students import fresh_llama
    from distill.provenance import lineage

    model = fresh_llama(tokenizer, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, tie_embeddings=False,
                        seed=3)
    out = _save(model, tokenizer, tmp_path_factory.mktemp("gqa"))
    record = lineage.build_record(student_name="gqa-student", api={"base_url": "http://127.0.0.1:1/v1", "model": "t"},
                                  config={"seed": 3})
    lineage.write_lineage(out, record, key[0])
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_model_dir, gqa_student, key) -> dict:
    """The f16 and q8_0 files written by the GGUF writer alone (the export's reading back is then the test's own),
    q4_0 and bf16 by the whole `export` (written, read back, tokenizer rebuilt, measured, recorded)."""
    from transformers import AutoModelForCausalLM

    from distill.deploy.gguf_writer import write_gguf
    from distill.models.loading import load_tokenizer

    out = tmp_path_factory.mktemp("exports")
    made = {}
    for kind, src in (("f16", tiny_model_dir), ("q8_0", gqa_student)):
        path = out / f"{kind}.gguf"
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
        made[kind] = (src, path, {"tensors": write_gguf(model, load_tokenizer(str(src)), path, kind, "tiny")})
    for kind, kw in (("q4_0", dict(format="gguf", quant="q4_0", out=out / "g-q4_0.gguf", signing_key=key[0])),
                     ("bf16", dict(format="hf", out=out / "g-bf16"))):
        made[kind] = (gqa_student, Path(kw["out"]), export(ExportSettings(student=str(gqa_student), sequences=2,
                                                                         seq_len=64, **kw)))
    return made


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_gguf_f16_read_back_by_transformers_matches_the_student_to_fp16_rounding(exports, tokenizer):
    from transformers import AutoModelForCausalLM

    src, path, rec = exports["f16"]
    student = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    rounded = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    with torch.no_grad():  # the reference: the student with every matrix rounded to fp16, norms kept fp32
        for p in rounded.parameters():
            if p.ndim == 2:
                p.copy_(p.half().float())
    back = check.read_back(path, "gguf")
    ids = torch.tensor([tokenizer.encode("To be, or not to be, that is the question: whether 'tis nobler")])
    got, want = _logits(back, ids), _logits(rounded, ids)
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()
    assert not torch.allclose(got, _logits(student, ids), atol=1e-6, rtol=0)  # it really is f16, not the fp32 source
    assert rec["tensors"] == {"f16": 15, "f32": 5}  # 2 layers × 7 matrices + token_embd; no output (tied head)


def test_q8_0_untied_gqa_read_back_is_close_to_the_student(exports, tokenizer):
    from transformers import AutoModelForCausalLM

    src, path, _ = exports["q8_0"]
    student = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    seqs = [tokenizer.encode("Now is the winter of our discontent made glorious summer by this sun of York")]
    got = check.compare(student, check.read_back(path, "gguf"), seqs, tokenizer.pad_token_id)
    assert 0 < got["kl_per_token"] < check.DEFAULT_MAX_KL["q8_0"] and got["tokens"] == len(seqs[0])


def test_the_whole_export_checks_and_records_the_gguf_file(exports):
    from distill.models.loading import file_sha256

    src, path, rec = exports["q4_0"]
    assert rec["tokenizer"] == {"texts": 2, "identical_ids": 2, "chat_template": True}
    assert 0 < rec["check"]["kl_per_token"] < check.DEFAULT_MAX_KL["q4_0"] and rec["check"]["tokens"] == 128
    side = json.loads(path.with_name(path.name + ".export.json").read_text())
    assert side["sha256"] == file_sha256(path) and side["size_bytes"] == path.stat().st_size
    assert side["student_weights_sha256"] == weights_sha256(src)
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_q4_0_gguf_is_quantized_as_asked(exports):
    import gguf

    _, path, rec = exports["q4_0"]
    types = {t.name: t.tensor_type.name.lower() for t in gguf.GGUFReader(str(path)).tensors}
    assert types["blk.0.ffn_up.weight"] == types["blk.1.attn_k.weight"] == "q4_0"
    assert types["blk.0.attn_norm.weight"] == "f32"
    # the untied head is written, and under a 4-bit type it and the embeddings stay q8_0 as llama.cpp keeps them
    assert types["output.weight"] == types["token_embd.weight"] == "q8_0"
    assert rec["tensors"] == {"q8_0": 2, "q4_0": 14, "f32": 5}


def test_hf_bf16_directory_is_bf16_with_tokenizer_chat_template_and_card(exports, tokenizer):
    from safetensors import safe_open

    _, path, rec = exports["bf16"]
    with safe_open(path / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    assert "im_start" in json.loads((path / "tokenizer_config.json").read_text()).get("chat_template", "") or \
        (path / "chat_template.jinja").is_file()
    card = (path / "README.md").read_text()
    assert "license: apache-2.0" in card and "**bf16** weights" in card
    assert json.loads((path / "export.json").read_text())["weights"] == "bf16" == rec["weights"]
    assert 0 < rec["check"]["kl_per_token"] < check.DEFAULT_MAX_KL["bf16"]


def test_a_bf16_student_exports_without_a_second_rounding(tmp_path, tiny_model_dir, tokenizer):
    """A student as `distill train` now writes it (bf16): the hf bf16 export holds its very tensors, and an f16 GGUF
    read back by transformers gives its logits (every bf16 value is an f16 one in the weights' range)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from distill.deploy.gguf_writer import write_gguf
    from distill.training.finalize import save_weights

    student = _save_tokenizer_and_card(tokenizer, tmp_path / "student")
    save_weights(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), student, "bf16")
    rec = export(ExportSettings(student=str(student), format="hf", out=tmp_path / "hf", sequences=2, seq_len=64))
    want = load_file(str(student / "model.safetensors"))
    got = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert {t.dtype for t in want.values()} == {torch.bfloat16} and got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert (mode(tmp_path / "hf"), mode(tmp_path / "hf" / "model.safetensors")) == umask_modes()  # not 0700
    assert rec["student_weights_sha256"] == weights_sha256(student)
    model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32).eval()
    write_gguf(model, tokenizer, tmp_path / "s.gguf", "f16", "bf16 student")
    ids = torch.tensor([tokenizer.encode("To be, or not to be, that is the question: whether 'tis nobler")])
    back = _logits(check.read_back(tmp_path / "s.gguf", "gguf"), ids)
    assert torch.allclose(back, _logits(model, ids), atol=1e-4, rtol=0), (back - _logits(model, ids)).abs().max()


def _one_paragraph(capsys, code: int) -> str:
    """The error line (progress bars from the libraries may come before it on stderr)."""
    err = capsys.readouterr().err
    assert code != 0, err
    assert "Traceback" not in err, err
    line = err.rstrip("\n").rsplit("\r", 1)[-1].splitlines()[-1]
    assert line.startswith("error: ") and err.count("error: ") == 1, err
    return line


def test_a_quant_type_the_gguf_package_cannot_write_is_refused_naming_those_it_can(tmp_path, capsys,
                                                                                  tiny_model_dir):
    out = tmp_path / "m.gguf"
    err = _one_paragraph(capsys, main(["export", str(tiny_model_dir), "--quant", "q4_k_m", "--out", str(out)]))
    assert "q4_k_m" in err and "q8_0, q5_1, q5_0, q4_1, q4_0" in err and "llama-quantize" in err
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_path_is_refused_before_any_work(tmp_path, capsys, tiny_model_dir):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    err = _one_paragraph(capsys, main(["export", str(tiny_model_dir), "--out", str(blocker / "m.gguf")]))
    assert "cannot write the export" in err and "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_architecture_without_a_llama_cpp_mapping_is_refused(tmp_path, capsys, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    src = _save(GPT2LMHeadModel(config), tokenizer, tmp_path / "gpt2")
    out = tmp_path / "out" / "m.gguf"
    err = _one_paragraph(capsys, main(["export", str(src), "--out", str(out)]))
    assert "GPT2LMHeadModel" in err and "--format hf" in err and "LlamaForCausalLM" in err
    assert list(out.parent.iterdir()) == []


def test_an_export_above_max_kl_is_refused_with_the_figure_and_nothing_is_left(tmp_path, capsys, gqa_student):
    out = tmp_path / "m-bf16"
    code = main(["export", str(gqa_student), "--format", "hf", "--max-kl", "1e-12", "--sequences", "1",
                 "--seq-len", "32", "--out", str(out)])
    err = _one_paragraph(capsys, code)
    assert code == 4 and "KL(student ‖ export) is" in err and "above the limit 1e-12" in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_not_replaced_without_overwrite(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "m.gguf"
    out.write_bytes(b"old")
    err = _one_paragraph(capsys, main(["export", str(tiny_model_dir), "--out", str(out)]))
    assert "already exists" in err and out.read_bytes() == b"old"


@pytest.mark.skipif(not check.llama_cpp_available(), reason="llama-cpp-python is not installed")
def test_llama_cpp_reads_the_gguf_export_and_agrees_with_the_student(exports):
    _, _, rec = exports["q4_0"]
    assert rec["llama_cpp"] is not None and rec["llama_cpp"]["kl_per_token"] < check.DEFAULT_MAX_KL["q4_0"]


def test_lineage_verify_accepts_a_signed_gguf_export_and_catches_a_changed_byte(exports, gqa_student, key, capsys,
                                                                               tmp_path):
    import shutil

    from distill.deploy.gguf_writer import read_metadata
    from distill.provenance.lineage import read_lineage

    _, path, rec = exports["q4_0"]
    meta = read_metadata(path, "distill.")
    assert json.loads(meta["distill.lineage"]) == read_lineage(gqa_student)  # the student's lineage travels inside
    assert meta["distill.lineage_sha256"] == rec["lineage_sha256"]
    assert main(["lineage", "verify", str(path), "--trusted-key", key[1]]) == 0
    out = capsys.readouterr().out
    assert "status: VALID" in out and "exported weights: match" in out and "student lineage carried: valid" in out
    bad = tmp_path / path.name
    shutil.copy(path, bad)
    shutil.copy(path.with_name(path.name + ".export.json"), tmp_path)
    with open(bad, "r+b") as f:  # one byte of the last tensor's data
        f.seek(-3, 2)
        byte = f.read(1)
        f.seek(-3, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert main(["lineage", "verify", str(bad)]) == 4
    assert "do not match the hash recorded at export" in capsys.readouterr().err


def test_lineage_verify_of_an_unsigned_directory_export(exports, capsys):
    _, path, _ = exports["bf16"]
    assert main(["lineage", "verify", str(path)]) == 0
    assert "status: UNSIGNED" in capsys.readouterr().out
    assert main(["lineage", "verify", str(path), "--require-signature"]) == 4


def test_the_student_itself_is_not_an_output(capsys, tiny_model_dir):
    err = _one_paragraph(capsys, main(["export", str(tiny_model_dir), "--format", "hf", "--out", str(tiny_model_dir),
                                       "--overwrite"]))
    assert "--out is the student itself" in err and (tiny_model_dir / "config.json").is_file()

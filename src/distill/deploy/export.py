"""`distill export` / `distill.export`: a student as a file a runtime serves, checked before it is called done.

A Hugging Face directory in bf16 / f16 / f32 (vLLM, SGLang, TGI, transformers) or one GGUF file (llama.cpp, Ollama,
LM Studio) in a float type or a block quantization. Every export is written under a temporary name, read back by
an independent reader (`check.read_back`), and measured against the student (its saved weights, computed in
fp32) on held-out sequences (KL(student ‖ export) per token, top-1 agreement); above `max_kl` it is refused and
nothing is left under the final name. The figures, the file's sha256 and the student's lineage go in
`<export>.export.json` beside a GGUF file (`export.json` inside a directory); a GGUF file also carries the lineage in
its own metadata (`distill.lineage`, `distill.lineage_sha256`), so a copy that travels alone still says where it came
from.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import time
from hashlib import sha256
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from distill.deploy import check
from distill.deploy import record as export_record
from distill.deploy.gguf_writer import FLOAT_TYPES, QUANT_TYPES, arch_spec, write_gguf
from distill.errors import DistillError
from distill.fileio import shareable, write_json_atomic
from distill.models.loading import file_sha256, load_model, model_config, weights_sha256

log = logging.getLogger(__name__)

FORMATS = ("hf", "gguf")
DEFAULT_DTYPE = {"hf": "bf16", "gguf": "f16"}
_TORCH_DTYPE = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def _weights(fmt: str, dtype: str | None, quant: str | None) -> str:
    """The weight type the export is written in, every option combination checked."""
    if fmt not in FORMATS:
        raise DistillError(f"unknown export format {fmt!r}", where="--format", fix="use hf or gguf")
    if dtype is not None and dtype not in FLOAT_TYPES:
        raise DistillError(f"unknown dtype {dtype!r}", where="--dtype", fix=f"use one of {', '.join(FLOAT_TYPES)}")
    if quant is None:
        return dtype or DEFAULT_DTYPE[fmt]
    if fmt == "hf":
        raise DistillError("--quant applies to GGUF exports", where="--quant with --format hf",
                           fix="drop --quant (the directory is written in --dtype), or use --format gguf")
    q = quant.lower()
    if q not in QUANT_TYPES:
        raise DistillError(f"GGUF quantization type {quant!r} cannot be written by the installed gguf package",
                           where="--quant",
                           fix=f"use one of {', '.join(QUANT_TYPES)}; for K-quants (e.g. q4_k_m) export f16 and run "
                               f"llama.cpp's `llama-quantize FILE.gguf OUT.gguf Q4_K_M`")
    return q


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse an existing target (unless `overwrite`) and a folder the export cannot be written in, before any
    work."""
    if out.exists() and not overwrite:
        raise DistillError(f"{out} already exists", where="--out", fix="choose another path or pass --overwrite")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DistillError(f"cannot write the export in {parent} ({e.strerror or type(e).__name__})",
                           where="--out", fix="choose a folder you can write to") from None


def _heldout(data: str, tokenizer, sequences: int, seq_len: int) -> list[list[int]]:
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus

    corpus = load_corpus(DataConfig(path=data, seq_len=seq_len), tokenizer)
    seqs = [list(map(int, s["input_ids"])) for s in corpus.heldout[:sequences]]
    if not seqs:
        raise DistillError("the check data has no held-out sequences", where=f"--data {data}",
                           fix="use a larger data set (e.g. --data shakespeare)")
    return seqs


def _lineage(student_dir: Path) -> tuple[dict | None, str | None]:
    """The student's lineage record and the sha256 of its lineage.json bytes (None, None without one)."""
    from distill.provenance.lineage import FILENAME, read_lineage

    path = student_dir / FILENAME
    if not path.is_file():
        return None, None
    return read_lineage(student_dir), sha256(path.read_bytes()).hexdigest()


def _write_hf(tmp: Path, model, tokenizer, weights: str, student_dir: Path) -> None:
    """Weights in `weights` (a copy: the student as loaded stays the reference), tokenizer with its chat template, and
    the student's licence files (a policy notice must travel with the model)."""
    copy.deepcopy(model).to(_TORCH_DTYPE[weights]).save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for name in ("NOTICE", "LICENSE", "LICENSE.txt"):
        if (student_dir / name).is_file():
            shutil.copy2(student_dir / name, tmp / name)


def _write_card(tmp: Path, student_dir: Path, note: str) -> None:
    """The student's model card with an Export section (the dtype and the measured figures) added."""
    card = (student_dir / "README.md").read_text() if (student_dir / "README.md").is_file() else ""
    (tmp / "README.md").write_text(card.rstrip() + "\n\n" + note)


def _card_note(fmt: str, weights: str, figures: dict, student: str) -> str:
    return (f"## Export\n\nWritten by `distill export` from `{student}` as {fmt.upper()} with **{weights}** weights. "
            f"Read back by transformers and compared with the student on {figures['tokens']} held-out tokens: "
            f"KL(student ‖ export) {figures['kl_per_token']:.3g} nats/token, top-1 agreement "
            f"{figures['top1_agreement']:.2%}.\n")


class ExportSettings(BaseModel):
    """What `distill.export` (and `distill export`) writes and how it is checked; each field is the flag of its name."""

    model_config = ConfigDict(extra="forbid")

    student: str | Path = Field(description="The student directory (written by `distill train`): the reference the "
                         "export is checked against, its saved weights computed in fp32.")
    out: str | Path = Field(description="Where to write: a .gguf file, or a folder for `hf`.")
    format: str = Field("gguf", description="'gguf' (one file: llama.cpp, Ollama, LM Studio) or 'hf' (a Hugging Face "
                        "directory: vLLM, SGLang, TGI, transformers).")
    dtype: str | None = Field(None, description="Float type of the weights: f32, f16 or bf16 (default: bf16 for hf, "
                              "f16 for gguf).")
    quant: str | None = Field(None, description="gguf only: a block quantization instead (`gguf_writer.QUANT_TYPES`, "
                              "e.g. q8_0, q4_0).")
    max_kl: float | None = Field(None, description="Refuse the export above this KL(student ‖ export) per token "
                                 "(default: `check.DEFAULT_MAX_KL` for the weight type).")
    data: str = Field("shakespeare", description="Held-out data the check scores.")
    sequences: int = Field(8, description="Held-out sequences the check scores.")
    seq_len: int = Field(128, description="Tokens per check sequence.")
    overwrite: bool = Field(False, description="Replace an existing `out`.")
    name: str | None = Field(None, description="Model name written in the GGUF metadata (default: the student's).")
    signing_key: str | Path | None = Field(None, description="Ed25519 private key signing the export record (default "
                                    "$DISTILL_SIGNING_KEY; unsigned without either).")


def export(settings: ExportSettings) -> dict:
    """Export and check `settings.student`; returns the export record written beside the export (format, weights,
    size_bytes, sha256, `check`: the reader, tokens, KL per token and its maximum, top-1 agreement and the limit;
    `llama_cpp` where llama.cpp checked it too; the student's lineage; the signature)."""
    return _export(**settings.model_dump())


def _export(student: str, format: str = "gguf", out: str | Path | None = None, dtype: str | None = None,
           quant: str | None = None, max_kl: float | None = None, data: str = "shakespeare", sequences: int = 8,
           seq_len: int = 128, overwrite: bool = False, name: str | None = None,
           signing_key: str | Path | None = None) -> dict:
    """Export the student directory `student` to `out` and check it; returns the record written beside it.

    `format` "hf" writes a Hugging Face directory in `dtype` (default bf16); "gguf" one GGUF file in `dtype`
    (default f16) or the block quantization `quant` (`gguf_writer.QUANT_TYPES`). The export is read back by
    transformers and compared with the student (computed in fp32) on `sequences` held-out sequences of `seq_len`
    tokens of `data`; KL(student ‖ export) per token above `max_kl` (default `check.DEFAULT_MAX_KL` for the weight
    type) refuses it (DistillError, exit 4) and removes what was written. The record is signed with `signing_key` (else
    $DISTILL_SIGNING_KEY; unsigned without either), as lineage is."""
    from distill.keys.signing import resolve_signing_key

    weights = _weights(format, dtype, quant)
    limit = check.DEFAULT_MAX_KL[weights] if max_kl is None else float(max_kl)
    if not out:
        raise DistillError("no output path given", where="--out", fix="pass --out PATH (a .gguf file or a folder)")
    out = Path(out).expanduser()
    if format == "gguf" and out.suffix.lower() != ".gguf":
        raise DistillError(f"a GGUF export is one file whose name ends in .gguf, not {out.name}", where="--out",
                           fix=f"pass e.g. --out {out.with_suffix('.gguf')}")
    if out.resolve() == Path(student).expanduser().resolve():
        raise DistillError("--out is the student itself", where="--out",
                           fix="write the export to another path; the student is the reference it is checked "
                               "against")
    _check_target(out, overwrite)
    key = resolve_signing_key(signing_key)
    if format == "gguf":  # before any weights load
        arch_spec(model_config(student), f"--format gguf for {student}")
    loaded = load_model(student)
    model, tokenizer = loaded.model, loaded.tokenizer
    student_dir = Path(loaded.info.local_dir or loaded.info.path)
    record_lineage, lineage_sha = _lineage(student_dir)
    title = name or str(model.config.name_or_path or student_dir.name)
    seqs = _heldout(data, tokenizer, sequences, seq_len)
    t0 = time.perf_counter()
    if format == "gguf":
        tmp = Path(tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.tmp-", suffix=".gguf")[1])
    else:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        if format == "gguf":
            extra = {"distill.source_weights_sha256": loaded.info.weights_sha256}
            if record_lineage is not None:
                extra["distill.lineage"] = json.dumps(record_lineage, sort_keys=True, ensure_ascii=False)
                extra["distill.lineage_sha256"] = lineage_sha
            tensors = write_gguf(model, tokenizer, tmp, weights, title, extra)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the model from a runtime run as another user
            exported = check.read_back(tmp, "gguf")
        else:
            _write_hf(tmp, model, tokenizer, weights, student_dir)
            tensors = {weights: sum(1 for _ in model.state_dict())}
            exported = check.read_back(tmp, "hf")
        figures = check.compare(model, exported, seqs, tokenizer.pad_token_id)
        del exported
        figures["max_kl"] = limit
        if figures["kl_per_token"] > limit:
            raise DistillError(
                f"the {weights} export is too far from the student: KL(student ‖ export) is "
                f"{figures['kl_per_token']:.4g} nats per held-out token (top-1 agreement "
                f"{figures['top1_agreement']:.1%} over {figures['tokens']} tokens), above the limit {limit:g}",
                where=f"{out} (not written)", code=4,
                fix="export a higher-precision type (e.g. --quant q8_0 or --dtype f16), or raise --max-kl if this "
                    "loss is acceptable for your use")
        record = {"format": export_record.FORMAT, "export_format": format, "weights": weights, "tensors": tensors,
                  "file": out.name, "student": str(student), "student_weights_sha256": loaded.info.weights_sha256,
                  "lineage_sha256": lineage_sha, "check": {"reader": "transformers", "data": data, **figures}}
        if format == "gguf":
            record["tokenizer"] = check.check_tokenizer(tmp, tmp.name, tokenizer,
                                                        [tokenizer.decode(s) for s in seqs[:4]])
            if record["tokenizer"]["identical_ids"] < record["tokenizer"]["texts"]:
                raise DistillError("the tokenizer rebuilt from the GGUF file tokenizes held-out text differently "
                                   "from the student's", where=f"{out} (not written)", code=4,
                                   fix="report this as a bug in Distill's exporter, with the student's tokenizer")
            record["llama_cpp"] = check.llama_cpp_compare(tmp, model, seqs)
            record["size_bytes"] = tmp.stat().st_size
            record["sha256"] = file_sha256(tmp)
        else:
            _write_card(tmp, student_dir, _card_note(format, weights, figures, str(student)))
            record["size_bytes"] = sum(f.stat().st_size for f in tmp.glob("*.safetensors"))
            record["weights_sha256"] = weights_sha256(tmp)
            record["source_lineage"] = record_lineage
        record["seconds"] = round(time.perf_counter() - t0, 2)
        record = export_record.sign(record, key)
        if format == "hf":
            write_json_atomic(tmp / export_record.DIR_RECORD, record)
            shareable(tmp)
        _replace(tmp, out, overwrite)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    if format == "gguf":
        write_json_atomic(export_record.record_path(out), record)
    log.info("exported %s (%s, %s): KL %.3g, top-1 %.1f%%", out, format, weights, figures["kl_per_token"],
             100 * figures["top1_agreement"])
    return record


def _replace(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished export into place (an existing one only with `overwrite`)."""
    if out.exists():
        if not overwrite:
            raise DistillError(f"{out} already exists", where="--out", fix="choose another path or pass --overwrite")
        if out.is_dir():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
            return
    os.replace(tmp, out)


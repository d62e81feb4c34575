"""The store's manifest: what was captured, from which teacher, tokenizer and data, and which files hold it.

`manifest.json` is written last, after every shard and both index files exist, so a store with a manifest is
complete. Its `identity` section is what a training run checks before it trusts the store:

    teacher_sha256         ModelInfo.weights_sha256 (GGUF file hash, or the hash of the safetensors files)
    served_model           instead, for a store captured from a served teacher: the served model's name
    tokenizer_fingerprint  distill.models.tokenizer_fingerprint(tokenizer)
    corpus_fingerprint     Corpus.fingerprint (token ids, loss masks, path, seq_len, seed, split, max_sequences)

`plan.json` holds the same identity plus the capture settings; it is written when a capture starts, so that a
resumed capture can refuse to mix shards of two different captures in one directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill import fileio
from distill.errors import DistillError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PLAN = "plan.json"
IDENTITY_FIELDS = ("teacher_sha256", "served_model", "tokenizer_fingerprint", "corpus_fingerprint")
_WHAT = {"teacher_sha256": "teacher weights (sha256)", "served_model": "served teacher model (teacher.model)",
         "tokenizer_fingerprint": "tokenizer fingerprint",
         "corpus_fingerprint": "dataset fingerprint (data path, seq_len, seed, split and token ids)"}


def read_json(path: Path, what: str) -> dict[str, Any]:
    """One of the store's JSON files (manifest, plan, shard marker); a damaged one is a DistillError."""
    return fileio.read_json_object(path, f"store's {what}", "re-run the same `distill capture` to rewrite it, or "
                                   "capture into a new folder")


def read_manifest(store: str | Path) -> dict[str, Any]:
    """The manifest of a finished store, or a DistillError saying why there is none."""
    store = Path(store)
    if not store.is_dir():
        raise DistillError(f"teacher store not found: {store}", where="teacher.store",
                           fix="run `distill capture --out STORE ...` first, or check the path")
    path = store / MANIFEST
    if not path.is_file():
        if (store / PLAN).is_file():
            done = len(list(store.glob("shard-*.json")))
            total = read_json(store / PLAN, "capture plan").get("settings", {}).get("n_shards", "?")
            raise DistillError(f"the teacher store is incomplete: it has no manifest.json ({done} of {total} "
                               "shards finished)", where=str(store),
                               fix="re-run the same `distill capture` command: finished shards are kept and the "
                                   "manifest is written when all shards exist")
        raise DistillError("the folder has no manifest.json, so it is not a teacher store written by "
                           "`distill capture`", where=str(store),
                           fix="point teacher.store at a capture store, or run `distill capture --out` into it")
    manifest = read_json(path, "manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DistillError(f"unsupported store format version {manifest.get('format_version')!r} "
                           f"(this Distill reads version {FORMAT_VERSION})", where=str(path),
                           fix="re-capture the store with this version of Distill")
    return manifest


def identity_mismatches(stored: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Human descriptions of each expected identity field that differs from the stored one."""
    unknown = sorted(set(expected) - set(IDENTITY_FIELDS))
    if unknown:
        raise ValueError(f"unknown store identity field(s) {unknown}; valid: {IDENTITY_FIELDS}")
    out = []
    for key, want in expected.items():
        if want is None:
            continue
        have = stored.get(key)
        if have != want:
            out.append(f"{_WHAT[key]}: store {_short(have)}, this run {_short(want)}")
    return out


def _short(value: Any) -> str:
    text = str(value)
    return text[:16] + "…" if len(text) > 16 else text


def check_identity(stored: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Refuse a store whose teacher, tokenizer or dataset differs from the run's, naming each difference."""
    problems = identity_mismatches(stored, expected)
    if problems:
        raise DistillError("the teacher store was captured from a different setup: " + "; ".join(problems),
                           where=where,
                           fix="re-capture with the same teacher and data settings as this run (`distill capture "
                               "--config` with this run's config file), or point teacher.store at the store "
                               "captured for them")


def teacher_sha256(spec: str | None) -> str:
    """The weights hash `load_model(spec).info.weights_sha256` would report, without loading the model.

    Hub ids have no local weights to hash here and give "" (the store check then skips the teacher field)."""
    from distill.models.loading import file_sha256, resolve, weights_sha256

    kind, path = resolve(spec)
    if kind == "gguf":
        return file_sha256(path)
    if kind == "dir":
        return weights_sha256(path)
    return ""


def served_store(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The served teacher a store was captured from (`{"kind", "model", "endpoint", "tokenizer"}`), or None."""
    teacher = manifest.get("teacher")
    return teacher if isinstance(teacher, dict) and teacher.get("kind") == "served" else None


def expected_identity(*, teacher: Any = None, served_model: str | None = None, tokenizer: Any = None,
                      corpus: Any = None) -> dict[str, Any]:
    """The identity a run expects of its store: teacher is a ModelInfo or a model spec string; a store captured
    from a served teacher is expected to name `served_model` instead."""
    from distill.models.loading import tokenizer_fingerprint

    out: dict[str, Any] = {}
    if served_model is not None:
        out["served_model"] = served_model
    elif teacher is not None:
        sha = teacher_sha256(teacher) if isinstance(teacher, str) else teacher.weights_sha256
        out["teacher_sha256"] = sha or None  # hub ids: nothing local to hash, the field is not checked
    if tokenizer is not None:
        out["tokenizer_fingerprint"] = tokenizer_fingerprint(tokenizer)
    if corpus is not None:
        out["corpus_fingerprint"] = corpus.fingerprint
    return out

"""Who is the teacher? Collect evidence from metadata only (never the weights) and match it to policy rows.

Evidence comes from a `ModelInfo`, a model spec (path, GGUF file, "default", hub id) or an API endpoint:

* GGUF metadata: general.license, general.name, general.basename, general.organization
* a model directory: config.json (model_type, _name_or_path), README.md front matter (license, license_name,
  base_model, model_name), LICENSE / LICENSE.txt / LICENSE.md / LICENCE / USE_POLICY.md / NOTICE files
* a hub id (and, when present, its README/config in the local Hugging Face cache; never the network)
* an API base URL (api.openai.com, api.anthropic.com, generativelanguage.googleapis.com) and model name;
  a local server (localhost, 127.0.0.1, ...) is identified by its model name or by a given local model spec.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import yaml

from distill.errors import DistillError
from distill.provenance.policy.table import Row, load_table, normalize_license

if TYPE_CHECKING:
    from distill.models.loading import ModelInfo

_TEXT_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE", "LICENCE.txt", "LICENSE_GEMMA.md",
               "USE_POLICY.md", "USE_POLICY.txt", "NOTICE", "NOTICE.txt", "Notice", "Notice.txt")
_TEXT_LIMIT = 16_000  # licence headings are at the top; never read whole files
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]")
_GGUF_FIELDS = {"general.license": "license", "general.license.name": "license", "general.name": "name",
                "general.basename": "name", "general.organization": "name", "general.base_model.0.name": "name",
                "general.base_model.0.repo_url": "name"}


@dataclass(frozen=True)
class Evidence:
    """One fact about the teacher: `kind` (license/name/model_type/license_text/api_host), value, where from."""

    kind: str
    value: str
    origin: str

    def to_dict(self) -> dict[str, str]:
        value = self.value if self.kind != "license_text" else self.value.strip().splitlines()[0][:120]
        return {"kind": self.kind, "value": value, "origin": self.origin}


@dataclass
class TeacherIdentity:
    """What the teacher was identified as, and from which evidence.

    `matches` lists (row id, evidence) pairs; `rows` the matched policy rows in table order.
    """

    spec: str
    kind: str  # "gguf", "dir", "hub" or "api"
    evidence: list[Evidence] = field(default_factory=list)
    matches: list[tuple[str, Evidence]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list, repr=False)
    base_url: str = ""
    api_model: str = ""

    @property
    def names(self) -> list[str]:
        return _unique(e.value for e in self.evidence if e.kind == "name")

    @property
    def licenses(self) -> list[str]:
        return _unique(normalize_license(e.value) for e in self.evidence if e.kind == "license")

    @property
    def display_name(self) -> str:
        """A short human name: the API model, the first name found, or the spec."""
        if self.api_model:
            return self.api_model
        return next(iter(self.names), self.spec)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec, "kind": self.kind, "name": self.display_name,
            "base_url": self.base_url or None, "api_model": self.api_model or None,
            "licenses": self.licenses, "names": self.names,
            "evidence": [e.to_dict() for e in self.evidence],
            "matched_rows": [r.id for r in self.rows],
            "matches": [{"row": rid, **ev.to_dict()} for rid, ev in self.matches],
        }


def _unique(values) -> list[str]:
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def _match(identity: TeacherIdentity, table: tuple[Row, ...] | None) -> TeacherIdentity:
    rows = table or load_table()
    for row in rows:
        hits = [ev for ev in identity.evidence if row.matches(ev.kind, ev.value)]
        if hits:
            identity.rows.append(row)
            identity.matches.extend((row.id, ev) for ev in hits)
    return identity


def _read_head(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(_TEXT_LIMIT)
    except OSError:
        return ""


def front_matter(readme_text: str) -> dict[str, Any]:
    """The YAML front matter of a model card (between the leading `---` lines), or {}."""
    m = re.match(r"\A\ufeff?---\s*\n(.*?)\n---\s*(\n|\Z)", readme_text, re.DOTALL)
    if not m:
        return {}
    try:
        data = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _gguf_evidence(meta: dict[str, Any], origin: str) -> list[Evidence]:
    out = []
    for key, kind in _GGUF_FIELDS.items():
        for v in _as_list(meta.get(key)):
            out.append(Evidence(kind, v, f"{origin} {key}"))
    return out


def _dir_evidence(folder: Path) -> list[Evidence]:
    """Evidence from the small text files of a model directory (no weights are opened)."""
    out: list[Evidence] = []
    cfg_path = folder / "config.json"
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cfg = {}
        if isinstance(cfg, dict):
            for v in _as_list(cfg.get("model_type")):
                out.append(Evidence("model_type", v, "config.json model_type"))
            for v in _as_list(cfg.get("_name_or_path")):
                out.append(Evidence("name", v, "config.json _name_or_path"))
    readme = folder / "README.md"
    if readme.is_file():
        fm = front_matter(_read_head(readme))
        for key in ("license", "license_name"):
            for v in _as_list(fm.get(key)):
                if normalize_license(v) != "other":
                    out.append(Evidence("license", v, f"README.md front matter {key}"))
        for key in ("base_model", "model_name"):
            for v in _as_list(fm.get(key)):
                out.append(Evidence("name", v, f"README.md front matter {key}"))
    meta_path = folder / "gguf_metadata.json"  # the GGUF cache keeps the file's general.* fields here
    if meta_path.is_file():
        try:
            out.extend(_gguf_evidence(json.loads(meta_path.read_text(encoding="utf-8")), "gguf_metadata.json"))
        except (OSError, ValueError):
            pass
    for name in _TEXT_FILES:
        p = folder / name
        if p.is_file():
            text = _read_head(p)
            if text.strip():
                out.append(Evidence("license_text", text, name))
    return out


def _hub_cache_evidence(repo_id: str) -> list[Evidence]:
    """README/config of a hub model already in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return []
    folders = set()
    for fname in ("README.md", "config.json", "LICENSE"):
        try:
            hit = try_to_load_from_cache(repo_id, fname)
        except Exception:  # noqa: BLE001 - an odd repo id is simply not in the cache
            hit = None
        if isinstance(hit, str):
            folders.add(Path(hit).parent)
    out: list[Evidence] = []
    for folder in folders:
        out.extend(_dir_evidence(folder))
    return out


def _dedupe(evidence: list[Evidence]) -> list[Evidence]:
    seen, out = set(), []
    for e in evidence:
        key = (e.kind, e.value.strip().lower() if e.kind != "license_text" else e.value[:200])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def identify_model(info: ModelInfo, table: tuple[Row, ...] | None = None) -> TeacherIdentity:
    """Identify a loaded (or described) teacher from its `ModelInfo`: GGUF metadata and local files."""
    evidence: list[Evidence] = []
    evidence += _gguf_evidence(info.gguf_metadata or {}, "GGUF")
    if info.kind == "hub":
        evidence.append(Evidence("name", info.path or info.spec, "hub id"))
    if info.kind == "dir" and info.name and info.name != info.path:
        evidence.append(Evidence("name", info.name, "model name"))
    folders = []
    if info.local_dir:
        folders.append(Path(info.local_dir))
    if info.kind == "dir" and info.path:
        folders.append(Path(info.path))
    if info.kind == "gguf" and info.path:
        folders.append(Path(info.path).parent)  # a LICENSE/README shipped next to the .gguf file
    for folder in dict.fromkeys(folders):
        if folder.is_dir():
            evidence += _dir_evidence(folder)
    if info.kind == "hub":
        evidence += _hub_cache_evidence(info.path or info.spec)
    if info.kind == "dir" and info.path:  # last: names from the files come first
        evidence.append(Evidence("name", Path(info.path).name, "directory name"))
    identity = TeacherIdentity(spec=info.spec, kind=info.kind, evidence=_dedupe(evidence))
    return _match(identity, table)


@functools.lru_cache(maxsize=16)
def _gguf_metadata(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    from distill.models.loading import gguf_metadata

    return gguf_metadata(path)


def cached_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """`distill.models.gguf_metadata`, remembered per file (path, mtime, size): parsing takes seconds."""
    st = os.stat(path)
    try:
        return dict(_gguf_metadata(str(path), st.st_mtime_ns, st.st_size))
    except Exception as e:  # noqa: BLE001 - a corrupt file is the user's to fix
        raise DistillError(f"cannot read the GGUF metadata: {e}", where=str(path),
                           fix="check that the file is a complete GGUF model") from e


def identify_spec(spec: str, table: tuple[Row, ...] | None = None) -> TeacherIdentity:
    """Identify a teacher from a model spec without loading it: reads GGUF metadata and small files only."""
    from distill.models.loading import ModelInfo, resolve

    kind, path = resolve(spec)
    meta: dict[str, Any] = {}
    if kind == "gguf":
        meta = cached_gguf_metadata(path)
    info = ModelInfo(spec=spec, kind=kind, path=path, weights_sha256="",
                     name=str(meta.get("general.name") or (path if kind != "gguf" else Path(path).stem)),
                     gguf_metadata=meta, local_dir=path if kind == "dir" else "")
    return identify_model(info, table)


def api_host(base_url: str) -> str:
    """The host of an API base URL ("https://api.openai.com/v1" -> "api.openai.com")."""
    url = base_url if "://" in base_url else f"http://{base_url}"
    host = urlparse(url).hostname or ""
    if not host:
        raise DistillError(f"cannot read a host name from the API base URL {base_url!r}", where="--api-base",
                           fix="give a URL such as https://api.openai.com/v1 or http://127.0.0.1:8000/v1")
    return host.lower()


def is_local_host(host: str) -> bool:
    return host in _LOCAL_HOSTS or host.startswith("127.")


def identify_api(base_url: str, model: str, local_spec: str | None = None,
                 table: tuple[Row, ...] | None = None) -> TeacherIdentity:
    """Identify a teacher served over an OpenAI-compatible API.

    Known providers are identified by host. A local server (localhost, 127.0.0.1) is identified by
    `local_spec` when given (the model it serves), else by its model name when that is itself a local model
    spec ("default", a path, a .gguf file), else by the model name alone.
    """
    host = api_host(base_url)
    evidence = [Evidence("api_host", host, "API base URL")]
    if model:
        evidence.append(Evidence("name", model, "API model name"))
    if is_local_host(host):
        spec = local_spec or (model if _looks_local_spec(model) else None)
        if spec:
            local = identify_spec(spec, table)
            evidence += [Evidence(e.kind, e.value, f"local model {spec}: {e.origin}") for e in local.evidence]
    elif local_spec:
        raise DistillError(f"a local model spec was given for the remote API {host}", where=local_spec,
                           fix="only name the served model for a local server (localhost / 127.0.0.1)")
    identity = TeacherIdentity(spec=f"{base_url} {model}".strip(), kind="api", evidence=_dedupe(evidence),
                               base_url=base_url, api_model=model)
    return _match(identity, table)


def _looks_local_spec(model: str) -> bool:
    if model in ("", "default"):
        return model == "default"
    p = Path(model).expanduser()
    return p.suffix.lower() == ".gguf" or p.is_dir()

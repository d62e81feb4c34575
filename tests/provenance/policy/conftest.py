"""Synthetic teachers for the policy tests: tiny directories whose metadata names a licence (no weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

AUTH_TEMPLATE = """granted_by: "{granted_by}"
covers:
  teacher: "{teacher}"
  use: distillation
reference: "{reference}"
{expires}"""


def make_model_dir(root: Path, name: str, *, config: dict | None = None, readme: str | None = None,
                   files: dict[str, str] | None = None) -> Path:
    """A model directory with only the small metadata files the gate reads."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    if readme is not None:
        (d / "README.md").write_text(readme)
    for fname, text in (files or {}).items():
        (d / fname).write_text(text)
    return d


def write_auth(path: Path, teacher: str, *, granted_by: str = "Rights Holder Inc. (legal@example.com)",
               reference: str = "agreement 2026-117", expires: str | None = None) -> Path:
    path.write_text(AUTH_TEMPLATE.format(granted_by=granted_by, teacher=teacher, reference=reference,
                                         expires=f"expires: {expires}\n" if expires else ""))
    return path


@pytest.fixture
def llama3_dir(tmp_path) -> Path:
    return make_model_dir(tmp_path, "teacher-a",
                          config={"model_type": "llama", "_name_or_path": "meta-llama/Meta-Llama-3-8B"},
                          readme="---\nlicense: llama3\ntags: [text-generation]\n---\n# A model\n")


@pytest.fixture
def gemma_dir(tmp_path) -> Path:
    return make_model_dir(tmp_path, "teacher-g", config={"model_type": "gemma3_text"},
                          files={"LICENSE": "Gemma Terms of Use\n\nLast modified: April 1, 2024\n\nBy using..."})


@pytest.fixture
def make_dir():
    """make_model_dir(root, name, config=..., readme=..., files=...)."""
    return make_model_dir


@pytest.fixture
def auth_file():
    """write_auth(path, teacher_pattern, granted_by=..., reference=..., expires=...)."""
    return write_auth

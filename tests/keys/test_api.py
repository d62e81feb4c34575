"""API keys: the key a client sends (from a file's first line or an environment variable, errors that never show it)
and the server's key file (`name:key` lines, bearer checks)."""

from __future__ import annotations

import pytest

from distill.errors import DistillError
from distill.keys.api import check_bearer, load_api_keys, read_api_key


def test_the_client_key_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    f = tmp_path / "key.txt"
    f.write_text("sk-file-1\nignored second line\n")
    monkeypatch.setenv("P26_KEY", "  sk-env-2 ")
    assert read_api_key(None, str(f), "--api-key-file") == "sk-file-1"
    assert read_api_key("P26_KEY", None, "--api-key-env") == "sk-env-2"
    assert read_api_key(None, None, "--api-key-env") is None
    assert read_api_key(None, None, "--api-key-env", default_env="P26_KEY") == "sk-env-2"
    monkeypatch.delenv("P26_KEY")
    assert read_api_key(None, None, "--api-key-env", default_env="P26_KEY") is None  # the default may be unset


def test_a_named_key_source_that_is_missing_is_an_error_not_a_request_without_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("P26_EMPTY", "")
    with pytest.raises(DistillError, match="P26_EMPTY holding the API key is not set or empty") as e:
        read_api_key("P26_EMPTY", None, "teacher.api_key_env")
    assert e.value.where == "teacher.api_key_env"
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DistillError, match="the API key file is empty"):
        read_api_key(None, str(tmp_path / "empty.txt"), "--api-key-file")
    with pytest.raises(DistillError, match="cannot read the API key file"):
        read_api_key(None, str(tmp_path / "absent.txt"), "--api-key-file")


def test_the_server_key_file_names_keys_and_bearer_checks_them(tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text("# comment\nalice:sk-a\n\nsk-bare\n")
    keys = load_api_keys(f)
    assert keys == {"sk-a": "alice", "sk-bare": "key4"}  # a bare key is named by its line, never by itself
    assert check_bearer("Bearer sk-a", keys) == "alice" and check_bearer("bearer sk-bare", keys) == "key4"
    assert check_bearer("Bearer sk-other", keys) is None and check_bearer(None, keys) is None
    (tmp_path / "bad.txt").write_text("alice:\n")
    with pytest.raises(DistillError, match="empty name or key"):
        load_api_keys(tmp_path / "bad.txt")

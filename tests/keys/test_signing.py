"""Signing keys (`distill keys`): written mode 0600 with their public half, never into a model directory."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.keys import signing


def test_keys_new_cli_writes_private_key_0600_and_prints_fingerprint(tmp_path, capsys):
    out = tmp_path / "k" / "signing.pem"
    assert main(["keys", "new", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert out.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    fp = signing.fingerprint(signing.load_public_key(out.with_name("signing.pem.pub")))
    assert fp in printed and fp.startswith("sha256:")
    assert main(["keys", "new", "--out", str(out)]) == 2  # never overwrites silently
    assert "already exists" in capsys.readouterr().err


def test_keys_are_not_written_into_a_model_directory(tmp_path, tiny_model_dir):
    student = shutil.copytree(tiny_model_dir, tmp_path / "student")
    with pytest.raises(DistillError, match="model directory"):
        signing.new_key(student / "key.pem")

"""The CLI under bad files: binary YAML, an unwritable key folder, binary text to test, a JSON file that is not a
guard state, and `--debug` not changing the exit status. Each: one paragraph, non-zero exit, no traceback."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path

import pytest

from distill.cli import main

BINARY = {"nul.bin": b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)),  # an executable's first bytes
          "latin1.yaml": "train:\n  name: caf\xe9\n".encode("latin-1"),  # not UTF-8
          "control.yaml": b"train:\n  steps: \x01\n"}  # UTF-8, but a character YAML forbids


def _one_paragraph(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code != 0, err
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("command", [["train"], ["serve", "--guard-config"]], ids=["train", "serve-guard-config"])
def test_a_binary_file_given_as_yaml_is_one_paragraph(tmp_path, capsys, name, command):
    f = tmp_path / name
    f.write_bytes(BINARY[name])
    err = _one_paragraph(capsys, main([*command, str(f)]))  # `serve` refuses before loading any model
    assert str(f) in err and "What to do:" in err
    assert ("binary" in err or "not text" in err or "malformed YAML" in err), err


class _ReadOnly:
    """os.open refusing to create files under one folder, as the kernel does for a non-root user in a 0555 folder
    (root ignores the mode bits, so the test would otherwise pass without exercising anything)."""

    def __init__(self, folder: Path, real=os.open):
        self.folder, self.real = str(folder), real

    def __call__(self, path, flags, *args, **kw):
        if str(path).startswith(self.folder) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return self.real(path, flags, *args, **kw)


def test_keygen_into_a_read_only_folder_writes_nothing(tmp_path, capsys, monkeypatch, tiny_model_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:
        monkeypatch.setattr(os, "open", _ReadOnly(ro))
    try:
        code = main(["watermark", "keygen", "--out", str(ro / "wm.key"), "--tokenizer", str(tiny_model_dir)])
        err = _one_paragraph(capsys, code)
        assert "cannot write the watermark key file" in err and "Permission denied" in err and str(ro) in err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_keygen_failing_mid_write_leaves_no_half_written_key(tmp_path, capsys, monkeypatch, tiny_model_dir):
    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    out = tmp_path / "keys" / "wm.key"
    err = _one_paragraph(capsys, main(["watermark", "keygen", "--out", str(out), "--tokenizer", str(tiny_model_dir)]))
    assert "No space left on device" in err and "nothing was written" in err
    assert not out.exists()
    monkeypatch.undo()
    assert main(["watermark", "keygen", "--out", str(out), "--tokenizer", str(tiny_model_dir)]) == 0  # not refused
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.fixture()
def key_file(tmp_path, tiny_model_dir, fixed_key):
    from distill.keys.watermark import save_key
    from distill.models.loading import load_tokenizer

    return save_key(fixed_key(load_tokenizer(str(tiny_model_dir)), "cli-binary"), tmp_path / "wm.key")


@pytest.mark.parametrize("name", ["nul.bin", "latin1.yaml"])
def test_detect_refuses_a_binary_file_instead_of_reporting_a_p_value(tmp_path, capsys, key_file, tiny_model_dir,
                                                                     name):
    f = tmp_path / name
    f.write_bytes(BINARY[name] * 50)
    code = main(["watermark", "detect", "--key", str(key_file), "--tokenizer", str(tiny_model_dir), str(f)])
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and "p =" not in out.err, out
    assert "not tested" in out.err and str(f) in out.err and "Traceback" not in out.err


def test_detect_refuses_binary_stdin(capsys, monkeypatch, key_file, tiny_model_dir):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(BINARY["nul.bin"] * 50)))
    err = _one_paragraph(capsys, main(["watermark", "detect", "--key", str(key_file), "--tokenizer",
                                       str(tiny_model_dir), "-"]))
    assert "binary" in err and "standard input" in err


@pytest.mark.parametrize("content,needle", [
    ({"hello": "world"}, "not a Distill guard state file"),
    ([1, 2, 3], "not a Distill guard state file"),
    ({"format": "distill-guard-state/1", "accounts": [1]}, "'accounts' is a list"),
    ({"format": "distill-guard-state/1", "accounts": {"alice": 3}}, "account 'alice' is a number"),
    ({"format": "distill-guard-state/1", "accounts": {"alice": {"score": "high"}}}, "score of account 'alice'"),
    ({"format": "distill-guard-state/1", "accounts": {"a": {"contributions": {"x": "y"}}}}, "contributions"),
    ({"format": "distill-guard-state/1", "accounts": {}, "rules": "block"}, "'rules' is not a list"),
])
def test_guard_report_on_a_file_that_is_not_a_guard_state(tmp_path, capsys, content, needle):
    f = tmp_path / "state.json"
    f.write_text(json.dumps(content))
    err = _one_paragraph(capsys, main(["guard", "report", "--state", str(f)]))
    assert needle in err and '"format": "distill-guard-state/1"' in err  # says what was expected


def test_guard_report_on_a_binary_file(tmp_path, capsys):
    f = tmp_path / "state.json"
    f.write_bytes(BINARY["nul.bin"])
    err = _one_paragraph(capsys, main(["guard", "report", "--state", str(f)]))
    assert str(f) in err


@pytest.mark.parametrize("argv,code", [
    (["generate", "--endpoint", "https://api.openai.com/v1", "--model", "gpt-4o", "--prompts", "{p}", "--out",
      "{tmp}/out"], 3),  # refused by the policy gate
    (["train", "/nonexistent/config.yaml"], 2),
    (["watermark", "detect", "--key", "{tmp}/missing.key", "{p}"], 2),
])
def test_debug_shows_the_traceback_but_keeps_the_exit_status(tmp_path, capsys, argv, code):
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    argv = [a.replace("{p}", str(prompts)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == code
    plain = _one_paragraph(capsys, code)
    for debug in (["--debug", *argv], [*argv, "--debug"]):
        assert main(debug) == code
        err = capsys.readouterr().err
        assert "Traceback" in err and "DistillError" in err and plain in err

"""`distill generate` against a port where nothing listens stops at once with one clear error, instead of backing
off through every try of every prompt."""

from __future__ import annotations

import json
import socket

import pytest

from distill.cli import main
from distill.errors import DistillError
from distill.generate.client import REFUSED_BEFORE_STOP, run_generation
from distill.generate.settings import GenerateSettings


@pytest.fixture()
def dead_port():
    """A 127.0.0.1 port that is bound but not listening: every connection to it is refused, and no other process
    can take it while the test runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _prompts(n):
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


@pytest.mark.parametrize("concurrency", [1, 8])
def test_refused_connections_stop_the_run_naming_the_endpoint(dead_port, tmp_path, concurrency):
    url = f"http://127.0.0.1:{dead_port}/v1"
    cfg = GenerateSettings(endpoint=url, model="m", out=tmp_path / "out", prompts=_prompts(40),
                           concurrency=concurrency, max_tries=6, backoff_s=0.001, progress=False)
    with pytest.raises(DistillError) as e:
        run_generation(cfg)
    assert "nothing is listening" in e.value.what and e.value.where == url + "/chat/completions"
    acct = json.loads((tmp_path / "out" / "accounting.json").read_text())
    assert REFUSED_BEFORE_STOP <= acct["requests"] < REFUSED_BEFORE_STOP + concurrency  # not 40 x 6 = 240
    assert acct["failed"] <= 1  # one worker: its first prompt may use all 6 tries first (the next run retries it)


def test_a_run_with_fewer_tries_than_the_limit_stops_on_its_last_try(dead_port, tmp_path):
    cfg = GenerateSettings(endpoint=f"http://127.0.0.1:{dead_port}", model="m", out=tmp_path / "out",
                           prompts=_prompts(1), max_tries=3, backoff_s=0.001, progress=False)
    with pytest.raises(DistillError, match="the first 3 connection attempts were all refused"):
        run_generation(cfg)


def test_cli_prints_one_paragraph_and_exits_non_zero(dead_port, tmp_path, tiny_model_dir, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(30)))
    code = main(["generate", "--endpoint", f"http://127.0.0.1:{dead_port}/v1", "--model", "tiny", "--teacher-spec",
                 str(tiny_model_dir), "--prompts", str(prompts), "--out", str(tmp_path / "out"), "--backoff", "0.001",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"127.0.0.1:{dead_port}" in errors[0] and "nothing is listening" in errors[0]

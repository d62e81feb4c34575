"""`distill serve` as the teacher: the scoring endpoint against the model's own log-softmax, the start-up identity
checks, training through it against a local top-k reference, prefetch and resume, and server faults."""

from __future__ import annotations

import math

import httpx
import pytest
import torch

from distill.config import load_config
from distill.errors import DistillError
from distill.remote.client import ScoringClient
from distill.signals import SparseSignal
from distill.teachers import ServedTeacherConfig
from distill.training.callbacks import Callback
from distill.training.loop import train

K = 5


def _client(server, **kw) -> ScoringClient:
    return ScoringClient(server.url + "/v1", "tiny-teacher", K, **kw)


def test_scores_are_the_models_own_top_k(teacher_server, teacher_loaded):
    tok = teacher_loaded.tokenizer
    rows = [tok("ROMEO: But soft, what light", add_special_tokens=False)["input_ids"],
            tok("To be, or not", add_special_tokens=False)["input_ids"]]
    got = _client(teacher_server).score(rows)
    for row, s in zip(rows, got, strict=True):
        with torch.no_grad():
            ref = torch.log_softmax(teacher_loaded.model(torch.tensor([row])).logits[0].float(), -1)
        vals, idx = ref[: len(row) - 1].topk(K, dim=-1)
        assert torch.equal(s.ids[: len(row) - 1], idx)
        torch.testing.assert_close(s.logprobs[: len(row) - 1], vals, atol=1e-5, rtol=0)
        assert (s.ids[-1] == -1).all() and (s.logprobs[-1] == -math.inf).all()  # nothing predicts past the row


def test_bad_scoring_requests_are_openai_shaped_4xx(teacher_server):
    url = teacher_server.url + "/v1/completions"
    r = httpx.post(url, json={"model": "tiny-teacher", "prompt": [1, 2, 3], "max_tokens": 1, "prompt_logprobs": 21})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt_logprobs"
    r = httpx.post(url, json={"model": "tiny-teacher", "prompt": [1, 2], "max_tokens": 1, "prompt_logprobs": 2,
                              "stream": True})
    assert r.status_code == 400
    r = httpx.post(teacher_server.url + "/tokenize", json={"model": "nope", "prompt": "hi"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_identity_checks(teacher_server, teacher_loaded):
    tok = teacher_loaded.tokenizer
    assert _client(teacher_server).check_identity(tok)["tokenizer_checked"] == "tokenize"
    with pytest.raises(DistillError, match="does not serve 'other'.*tiny-teacher"):
        ScoringClient(teacher_server.url, "other", K).check_identity(tok)

    class Shifted:  # a local tokenizer that disagrees with the served one
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [i + 1 for i in tok(text, add_special_tokens=False)["input_ids"]]}

        def __len__(self):
            return len(tok)

    with pytest.raises(DistillError, match="tokenizes differently"):
        _client(teacher_server).check_identity(Shifted())
    with pytest.raises(DistillError, match="cannot reach"):
        ScoringClient("http://127.0.0.1:9/v1", "tiny-teacher", K, max_tries=1).check_identity(tok)


def _cfg(tmp_path, server, text_file, teacher_dir, *extra):
    return load_config(None, [
        f"teacher.endpoint={server.url}/v1", "teacher.model=tiny-teacher", f"teacher.tokenizer={teacher_dir}",
        f"teacher.top_k={K}", f"data.path={text_file}", "data.seq_len=32", "student.hidden_size=32",
        "student.num_layers=1", "student.num_heads=2", "train.steps=4", "train.batch_size=2",
        "train.eval_every=2", "train.eval_sequences=2", "train.checkpoint_every=2", "train.progress=false",
        "loss.chunk_size=16", f"output_dir={tmp_path / 'student'}", *extra])


class LocalTopK:
    """The reference: the same model's top-k computed in-process (what the server should send)."""

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def signal(self, batch, positions):
        logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        vals, idx = torch.log_softmax(logits, -1).topk(K, dim=-1)
        flat = lambda x: x.reshape(-1, K).index_select(0, positions)  # noqa: E731
        return SparseSignal(ids=flat(idx), logprobs=flat(vals))


def test_training_through_the_server_matches_the_local_top_k(tmp_path, teacher_server, teacher_loaded, text_file,
                                                             tiny_teacher_dir, monkeypatch):
    served = train(_cfg(tmp_path / "a", teacher_server, text_file, tiny_teacher_dir)).history
    monkeypatch.setattr(ServedTeacherConfig, "open", lambda self, x, split: LocalTopK(teacher_loaded.model))
    local = train(_cfg(tmp_path / "b", teacher_server, text_file, tiny_teacher_dir)).history
    assert [sorted(r) for r in served] == [sorted(r) for r in local]
    for a, b in zip(served, local, strict=True):
        assert a["kd"] > 0
        for k in ("loss", "kd", "heldout_kl", "top1_agreement"):
            if k in a:
                assert a[k] == pytest.approx(b[k], rel=1e-4), k


class StopAfter(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, run, row):
        if row["step"] == self.step:
            raise KeyboardInterrupt  # as a user's Ctrl-C would, after the step-2 checkpoint is on disk


def test_prefetch_and_resume_keep_the_run_exact(tmp_path, teacher_server, text_file, tiny_teacher_dir):
    keys = ("loss", "kd", "grad_norm")
    ahead = train(_cfg(tmp_path / "a", teacher_server, text_file, tiny_teacher_dir, "teacher.prefetch=3")).history
    asked = train(_cfg(tmp_path / "b", teacher_server, text_file, tiny_teacher_dir, "teacher.prefetch=0")).history
    assert [[r[k] for k in keys] for r in ahead] == [[r[k] for k in keys] for r in asked]
    cfg = _cfg(tmp_path / "c", teacher_server, text_file, tiny_teacher_dir, "teacher.prefetch=3")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAfter(3)])
    resumed = train(cfg, resume=True).history
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in ahead]


def test_server_faults_are_retried_then_refused(teacher_server, teacher_loaded, monkeypatch):
    rows = [teacher_loaded.tokenizer("Once more unto the breach", add_special_tokens=False)["input_ids"]]
    clean = _client(teacher_server).score(rows)[0]
    client = _client(teacher_server, backoff_s=0.01)
    real = client.http.post
    faults = [httpx.ConnectError("refused"), 503, httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")]

    def flaky(url, **kw):
        if faults:
            f = faults.pop(0)
            if isinstance(f, int):
                return httpx.Response(f, json={"error": {"message": "overloaded"}})
            raise f
        return real(url, **kw)

    monkeypatch.setattr(client.http, "post", flaky)
    got = client.score(rows)[0]
    assert client.stats.retries == 4 and torch.equal(got.ids, clean.ids) and torch.equal(got.logprobs, clean.logprobs)
    dead = _client(teacher_server, backoff_s=0.01, max_tries=3)
    monkeypatch.setattr(dead.http, "post", lambda url, **kw: httpx.Response(502))
    with pytest.raises(DistillError, match="failed 3 times in a row.*HTTP 502") as e:
        dead.score(rows)
    assert "--resume" in e.value.fix


def test_the_teachers_retry_and_key_settings_reach_its_client(teacher_server, teacher_loaded, tmp_path):
    key = tmp_path / "key.txt"
    key.write_text("sk-served-test\n")
    spec = ServedTeacherConfig(kind="served", endpoint=teacher_server.url, model="tiny-teacher", top_k=K,
                               max_tries=2, timeout_s=7.5, backoff_s=0.02, api_key_file=str(key))
    client = spec.client(teacher_loaded.tokenizer)
    try:
        assert (client.max_tries, client.backoff_s, client.http.timeout.read) == (2, 0.02, 7.5)
        assert client.http.headers["authorization"] == "Bearer sk-served-test"
    finally:
        client.close()
    with pytest.raises(ValueError, match="not both"):
        ServedTeacherConfig(kind="served", endpoint=teacher_server.url, model="m", api_key_env="K",
                            api_key_file=str(key))
    assert "sk-served-test" not in spec.model_dump_json()


def test_eval_against_the_served_teacher(teacher_server, tiny_teacher_dir, tiny_model_dir, text_file):
    from distill.evaluation.report import evaluate, format_report
    from distill.evaluation.settings import EvalSettings

    kw = dict(teacher=str(tiny_teacher_dir), student=str(tiny_model_dir), data=str(text_file), seq_len=32,
              sequences=4, batch_size=2, gen_prompts=1)
    live = evaluate(EvalSettings(**kw))
    served = evaluate(EvalSettings(teacher_endpoint=teacher_server.url, teacher_model="tiny-teacher", top_k=K, **kw))
    # the teacher's perplexity from the served log-probability of each actual token equals its own
    assert served["teacher"]["heldout_ppl"] == pytest.approx(live["teacher"]["heldout_ppl"], rel=1e-4)
    assert served["student"]["heldout_ppl"] == live["student"]["heldout_ppl"]
    assert 0 < served["student"]["kl_teacher_student"] < live["student"]["kl_teacher_student"]  # k+1 outcomes
    assert served["teacher"]["parameters"] is None and served["retention"]["speedup"] is None
    assert "served top-5" in format_report(served) and "—" in format_report(served)


def test_on_policy_samples_are_scored_by_the_server(tmp_path, teacher_server, text_file, tiny_teacher_dir):
    cfg = _cfg(tmp_path, teacher_server, text_file, tiny_teacher_dir, "train.steps=2", "train.on_policy_fraction=1.0",
               "train.sample_max_new_tokens=6")
    rows = train(cfg).history
    assert all(r["kd"] > 0 and 0 < r["sampling_share"] < 1 for r in rows)


def test_a_server_that_dies_mid_run_leaves_a_resumable_checkpoint(tmp_path, teacher_server, text_file,
                                                                  tiny_teacher_dir, monkeypatch):
    from distill.training.checkpoint import latest_checkpoint

    keys = ("loss", "kd", "grad_norm")
    full = train(_cfg(tmp_path / "full", teacher_server, text_file, tiny_teacher_dir, "teacher.prefetch=0")).history
    cfg = _cfg(tmp_path / "cut", teacher_server, text_file, tiny_teacher_dir, "teacher.prefetch=0",
               "train.checkpoint_every=100")  # no periodic checkpoint: only the one written on failure
    real, calls = ScoringClient.score, []

    def dying(self, rows):  # calls 1-2: the identity probes of the train and held-out sources; 3: step 1
        calls.append(len(rows))
        if len(calls) > 3:
            raise DistillError("the teacher server failed 6 times in a row", where="test")
        return real(self, rows)

    monkeypatch.setattr(ScoringClient, "score", dying)
    with pytest.raises(DistillError, match="failed 6 times"):
        train(cfg)
    assert latest_checkpoint(tmp_path / "cut" / "student.ckpt").name.endswith("1")
    assert not (tmp_path / "cut" / "student").exists()
    monkeypatch.setattr(ScoringClient, "score", real)
    resumed = train(cfg, resume=True).history
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in full]


def test_server_prior_is_the_teachers_tail_below_the_top_k(teacher_server, teacher_loaded, text_file):
    """`server_log_prior` against the model's own full distribution: entries ranked k..tail_k summed per token over
    the scored positions, the mass beyond tail_k spread by the fallback."""
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus
    from distill.remote.source import data_log_prior, server_log_prior

    tok = teacher_loaded.tokenizer
    corpus = load_corpus(DataConfig(path=str(text_file), seq_len=32), tok)
    vocab = len(tok)
    fallback = data_log_prior(corpus, vocab)
    got = server_log_prior(_client(teacher_server), corpus, vocab, rows=6, tail_k=20, fallback=fallback)
    ref = torch.zeros(vocab, dtype=torch.float64)
    for ex in corpus.train[:6]:
        with torch.no_grad():
            p = torch.softmax(teacher_loaded.model(ex["input_ids"][None]).logits[0].double(), -1)[ex["loss_mask"]]
        top, ids = p.topk(20, dim=-1)
        ref.index_add_(0, ids[:, K:].reshape(-1), top[:, K:].reshape(-1))
        ref += (1 - top.sum(1)).sum() * fallback.double().exp()
    ref /= ref.sum()
    torch.testing.assert_close(got.double().exp(), ref, atol=1e-6, rtol=1e-3)
    assert got.exp().sum() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(DistillError, match="--max-logprobs >= 50"):  # the server caps prompt_logprobs at 20
        server_log_prior(_client(teacher_server), corpus, vocab, rows=2, tail_k=50, fallback=fallback)


def test_server_prior_needs_tail_k_above_top_k(tmp_path, teacher_server, text_file, tiny_teacher_dir):
    with pytest.raises(DistillError, match="tail_k .5. must exceed teacher.top_k .5."):
        _cfg(tmp_path, teacher_server, text_file, tiny_teacher_dir, "teacher.endpoint_tail=server_prior",
             "teacher.tail_k=5")
    cfg = _cfg(tmp_path, teacher_server, text_file, tiny_teacher_dir, "teacher.endpoint_tail=server_prior",
               "teacher.tail_k=20", "train.steps=2")
    assert train(cfg).history[-1]["kd"] > 0


def test_eval_closes_the_served_teacher_it_opens(teacher_server, tiny_teacher_dir, tiny_model_dir, text_file,
                                                 monkeypatch):
    from distill.evaluation.report import evaluate
    from distill.evaluation.settings import EvalSettings
    from distill.remote.source import ServedTeacher

    closed, close = [], ServedTeacher.close
    monkeypatch.setattr(ServedTeacher, "close", lambda self: (closed.append(self), close(self)))
    evaluate(EvalSettings(teacher=str(tiny_teacher_dir), student=str(tiny_model_dir), data=str(text_file), seq_len=32,
                          sequences=2, batch_size=2, gen_prompts=1, teacher_endpoint=teacher_server.url,
                          teacher_model="tiny-teacher", top_k=K))
    assert len(closed) == 1 and closed[0].pool._shutdown and closed[0].client.http.is_closed


def test_a_live_and_a_served_teacher_mix_and_both_are_closed(tmp_path, teacher_server, text_file, tiny_teacher_dir,
                                                            tiny_model_dir, monkeypatch):
    """A live teacher beside a served one: the ensemble trains, the served member is asked through its server and
    closed with the run."""
    from distill.remote.source import ServedTeacher

    closed, close = [], ServedTeacher.close
    monkeypatch.setattr(ServedTeacher, "close", lambda self: (closed.append(self), close(self)))
    cfg = _cfg(tmp_path, teacher_server, text_file, tiny_teacher_dir, "teacher=null",
               f"teachers=[{{name: local, model: '{tiny_model_dir}'}}, {{name: remote, kind: served, endpoint: "
               f"'{teacher_server.url}/v1', model: tiny-teacher, tokenizer: '{tiny_teacher_dir}', top_k: {K}}}]")
    rows = train(cfg).history
    assert all(r["kd"] > 0 for r in rows) and "heldout_kl" in rows[-1]
    assert len(closed) == 2 and all(s.client.stats.requests > 0 for s in closed)  # train and held-out sources


def test_a_served_member_is_asked_only_for_the_rows_routed_to_it(tmp_path, teacher_server, text_file,
                                                                 tiny_teacher_dir, tiny_model_dir, monkeypatch):
    """Routed rows go to their own teacher only: the served member's prefetch and its on-demand requests hold the
    rows routed to it and none routed to the live member."""
    import json

    from distill.remote.source import ServedTeacher
    from distill.training.setup import setup

    lines = [ln for ln in text_file.read_text().splitlines() if ln.strip()]
    data = tmp_path / "routed.jsonl"
    data.write_text("".join(json.dumps({"text": ln, "teacher": "local" if i % 2 else "remote"}) + "\n"
                            for i, ln in enumerate(lines)))
    submitted, submit = [], ServedTeacher._submit
    monkeypatch.setattr(ServedTeacher, "_submit", lambda self, rows: (submitted.extend(rows), submit(self, rows)))
    cfg = _cfg(tmp_path, teacher_server, data, tiny_teacher_dir, "teacher=null",
               f"teachers=[{{name: local, model: '{tiny_model_dir}'}}, {{name: remote, kind: served, endpoint: "
               f"'{teacher_server.url}/v1', model: tiny-teacher, tokenizer: '{tiny_teacher_dir}', top_k: {K}}}]")
    run = setup(cfg)
    try:
        owner = {tuple(ex["input_ids"].tolist()): ex["teacher"] for ex in run.corpus.train + run.corpus.heldout}
    finally:
        run.close()
    assert set(owner.values()) == {"local", "remote"}
    assert all(r["kd"] > 0 for r in train(cfg).history)
    assert submitted and {owner[tuple(r)] for r in submitted} == {"remote"}

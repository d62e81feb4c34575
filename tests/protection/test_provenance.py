"""`distill provenance` (no watermark): the sign test against a direct binomial sum, the agreement measures by hand, and
end to end on tiny models — a student distilled from a parent is flagged; a model trained on the same data without
the parent is not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from distill.cli import main
from distill.config import load_config
from distill.errors import DistillError
from distill.protection import provenance
from distill.training.loop import train


def test_sign_test_matches_a_direct_binomial_sum():
    diffs = [0.2, 0.1, -0.3, 0.0, 0.5, 0.4, 0.1, -0.1, 0.2, 0.3]  # 7 positive, 2 negative, 1 tie (dropped)
    p, pos, n = provenance.sign_test(diffs)
    assert (pos, n) == (7, 9)
    assert p == pytest.approx(sum(math.comb(9, k) for k in range(7, 10)) / 2**9, rel=1e-9)
    assert provenance.sign_test([0.0, 0.0]) == (1.0, 0, 0)
    assert provenance.min_queries(0.01) == 7 and 2.0**-7 < 0.01 < 2.0**-6


def test_word_agreement_counts_positions_and_missing_words():
    assert provenance.word_agreement("the cat sat on", "the dog sat", 4) == 0.5  # the, sat; 'on' has no partner
    assert provenance.word_agreement("", "anything", 3) == 0.0
    same = torch.tensor([1, 2, 3, 4])
    assert provenance.open_agreements([same], [torch.tensor([1, 0, 3, 0])]) == [0.5]


def test_the_verdict_needs_every_reference_beaten_and_enough_queries():
    parent = [0.9] * 10
    rep = provenance.judge({"parent": parent, "a": [0.1] * 10, "b": [0.95] * 10}, "parent")
    assert rep["references"]["a"]["p"] == pytest.approx(2.0**-10)
    assert rep["references"]["b"]["p"] == 1.0 and rep["p"] == 1.0 and not rep["derived"]
    assert rep["closest_reference"] == "b"
    with pytest.raises(DistillError, match="cannot reach p < 0.01"):
        provenance.judge({"parent": [1.0] * 5, "a": [0.0] * 5}, "parent")
    with pytest.raises(DistillError, match="at least one reference"):
        provenance.judge({"parent": [1.0] * 10}, "parent")


def test_the_parent_centred_statistic_matches_a_direct_computation():
    # suspect-parent agreement against each reference's own agreement with the parent, query by query
    s_parent = [0.6, 0.5, 0.7, 0.4, 0.6, 0.5, 0.6, 0.8, 0.5, 0.6]
    s_ref = [0.9] * 10  # the suspect is closer to the reference: the suspect-centred test says nothing
    r_parent = [0.5, 0.5, 0.6, 0.5, 0.4, 0.3, 0.5, 0.6, 0.5, 0.4]  # 7 queries below, 1 above, 2 ties
    rep = provenance.judge({"parent": s_parent, "r": s_ref}, "parent", parent_agreement={"r": r_parent},
                           statistic="parent")
    pos, n = 7, 8
    assert rep["references"]["r"]["parent_wins"] == pos and rep["references"]["r"]["decided"] == n
    assert rep["p"] == pytest.approx(sum(math.comb(n, k) for k in range(pos, n + 1)) / 2**n, rel=1e-9)
    assert rep["p_by_statistic"]["suspect"] == 1.0 and rep["statistic"] == "parent"
    assert rep["reference_agreement_with_parent"]["r"] == pytest.approx(0.48)
    with pytest.raises(DistillError, match="needs every reference's agreement with the parent"):
        provenance.judge({"parent": s_parent, "r": s_ref}, "parent", statistic="parent")
    with pytest.raises(DistillError, match="unknown provenance statistic"):
        provenance.judge({"parent": s_parent, "r": s_ref}, "parent", statistic="both")


def _sharp_parent(root: Path, tokenizer) -> Path:
    """A random tiny Llama with large output weights, so its next-token choices are sharp and its own."""
    from distill.models.students import fresh_llama

    model = fresh_llama(tokenizer, hidden_size=48, num_layers=2, num_heads=2, seed=11)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(40)  # tied: the head too
    out = root / "parent"
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# sharp random parent\n")
    return out


def _train(root: Path, name: str, teacher: Path, data: Path, seed: int, kd: bool, steps: int) -> str:
    cfg = load_config(None, [f"teacher.model={teacher}", f"data.path={data}", "data.seq_len=32",
                             "student.hidden_size=64", "student.num_layers=2", "student.num_heads=2",
                             f"train.steps={steps}", "train.batch_size=4", "train.lr=1e-2", "train.warmup_steps=2",
                             "train.eval_every=1000", "train.eval_sequences=2", "train.checkpoint_every=1000", "train.progress=false",
                             f"train.seed={seed}", "loss.chunk_size=32",
                             f"loss.kd_weight={1.0 if kd else 0.0}", f"loss.ce_weight={0.0 if kd else 1.0}",
                             f"output_dir={root / name}"])
    return str(train(cfg).output_dir)


@pytest.fixture(scope="module")
def family(tmp_path_factory, tokenizer, text_file):
    root = tmp_path_factory.mktemp("provenance")
    parent = _sharp_parent(root, tokenizer)
    return {"parent": str(parent),
            "distilled": _train(root, "distilled", parent, text_file, seed=1, kd=True, steps=100),
            "same_data": _train(root, "same_data", parent, text_file, seed=2, kd=False, steps=40),
            "same_data_ref": _train(root, "same_data_ref", parent, text_file, seed=3, kd=False, steps=40),
            "data": str(text_file)}


def _run(capsys, suspect: str, f: dict, *extra: str) -> tuple[int, dict]:
    code = main(["provenance", "--suspect", suspect, "--parent", f["parent"], "--reference", f["same_data_ref"],
                 "--data", f["data"], "--queries", "24", "--seq-len", "32", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_distilled_student_is_flagged_open_mode(family, capsys):
    code, rep = _run(capsys, family["distilled"], family)
    assert code == 0 and rep["derived"] and rep["mode"] == "open"
    assert rep["p"] < 1e-5  # 24 queries: the best possible p is 2^-24 = 6e-8
    assert rep["agreement"]["parent"]["mean"] > 0.5 and rep["gap_ci95"][0] > 0


def test_the_report_records_the_models_and_queries_it_compared(family, capsys):
    from distill.models.loading import weights_sha256

    _, rep = _run(capsys, family["distilled"], family)
    ev = rep["evidence"]
    assert ev["models"]["parent"]["weights_sha256"] == weights_sha256(family["parent"])
    assert ev["models"]["suspect"]["weights_sha256"] == weights_sha256(family["distilled"])
    assert ev["settings"] == {"mode": "open", "data": family["data"], "queries": 24, "seq_len": 32, "alpha": 0.01,
                              "statistic": "parent"}
    _, again = _run(capsys, family["distilled"], family)
    _, fewer = _run(capsys, family["distilled"], family, "--queries", "20")
    assert again["evidence"]["queries_sha256"] == ev["queries_sha256"] != fewer["evidence"]["queries_sha256"]
    main(["provenance", "--suspect", family["distilled"], "--parent", family["parent"], "--reference",
          family["same_data_ref"], "--data", family["data"], "--queries", "24", "--seq-len", "32"])
    text = capsys.readouterr().out
    assert f"parent: weights sha256 {ev['models']['parent']['weights_sha256']}" in text
    assert f"queries and settings sha256 {ev['queries_sha256']}" in text


def test_a_model_trained_on_the_same_data_is_not_flagged(family, capsys):
    code, rep = _run(capsys, family["same_data"], family)
    assert code == 1 and not rep["derived"] and rep["p"] > 0.01


def test_the_parent_centred_statistic_flags_the_student_and_not_the_same_data_model(family, capsys):
    code, rep = _run(capsys, family["distilled"], family)  # the default statistic
    assert code == 0 and rep["statistic"] == "parent" and rep["p"] < 1e-5
    assert set(rep["p_by_statistic"]) == {"suspect", "parent"}
    assert len(rep["cautions"]) == 1 and "only 1 reference model" in rep["cautions"][0]  # fewer than 3
    code, rep = _run(capsys, family["same_data"], family, "--statistic", "parent")
    assert code == 1 and not rep["derived"] and rep["p"] > 0.01
    code, rep = _run(capsys, family["distilled"], family, "--statistic", "suspect")
    assert rep["statistic"] == "suspect" and rep["p"] == rep["p_by_statistic"]["suspect"]


def _answers_folder(root: Path, n: int) -> Path:
    """A `distill generate` output folder (the parent's API answers, say) of n one-turn conversations."""
    folder = root / "answers"
    folder.mkdir(exist_ok=True)
    rows = [{"key": f"k{i:02d}", "messages": [{"role": "user", "content": f"Tell me about thing number {i}."}],
             "choices": [{"text": f"Thing {i} is a thing of many parts, and every part of it has a name."}]}
            for i in range(n)]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_open_mode_on_conversations_compares_the_answer_tokens_only(family, tokenizer, tmp_path, capsys):
    from distill.models.loading import load_model

    folder = _answers_folder(tmp_path, 12)
    queries = provenance.open_queries(tokenizer, str(folder), 10, 96)
    assert len(queries) == 10
    for q in queries:  # the compared positions predict exactly the answer's tokens and its end
        picked = [q.ids[t + 1] for t, on in enumerate(q.compared) if on]
        text = tokenizer.decode(picked[:-1])
        assert text.startswith("Thing ") and text.endswith("has a name.") and picked[-1] == tokenizer.eos_token_id
    code, rep = _run(capsys, family["distilled"], {**family, "data": str(folder)}, "--queries", "10",
                     "--seq-len", "96")
    assert rep["mode"] == "open" and "answer tokens only" in rep["unit"] and rep["queries"] == 10

    def top1(spec):  # a direct computation: argmax at every answer position
        model = load_model(spec).model
        out = []
        for q in queries:
            pos = [t for t, on in enumerate(q.compared) if on]
            out.append(model(input_ids=torch.tensor([q.ids])).logits[0, pos].argmax(-1))
        return out

    mine, theirs = top1(family["distilled"]), top1(family["parent"])
    direct = sum(float((a == b).float().mean()) for a, b in zip(mine, theirs, strict=True)) / len(queries)
    assert rep["agreement"]["parent"]["mean"] == pytest.approx(direct, abs=1e-6)
    with pytest.raises(DistillError, match="only 12 conversations with an answer, 20 asked"):
        provenance.open_queries(tokenizer, str(folder), 20, 96)


def test_three_references_carry_no_caution():
    parent = [1.0] * 12
    rep = provenance.judge({"parent": parent, "a": [0.0] * 12, "b": [0.0] * 12, "c": [0.0] * 12}, "parent")
    assert rep["cautions"] == [] and rep["p"] == pytest.approx(2.0**-12)


def test_too_few_queries_and_a_missing_parent_are_refused(family, capsys):
    assert main(["provenance", "--suspect", family["distilled"], "--reference", family["same_data_ref"]]) == 2
    assert "give the parent once" in capsys.readouterr().err
    code = main(["provenance", "--suspect", family["distilled"], "--parent", family["parent"], "--reference",
                 family["same_data_ref"], "--data", family["data"], "--queries", "5", "--seq-len", "32"])
    assert code == 2 and "use at least 7 queries" in capsys.readouterr().err


def test_blackbox_mode_compares_answers_word_by_word(monkeypatch):
    """The black-box path on fixed answers (the endpoints' side is `trace.query_suspect`, tested with the trace
    command): a suspect that copies the parent's phrasing beats a reference that answers otherwise."""
    prompts = [f"question {i}" for i in range(12)]
    said = {"suspect": [f"answer {i} is the parent's own way {i}" for i in range(12)],
            "parent": [f"answer {i} is the parent's usual way" for i in range(12)],
            "ref": [f"well, answer {i} could be put otherwise" for i in range(12)]}
    monkeypatch.setattr(provenance, "answers", lambda c, prompts, max_tokens, opts=None: (said[c.label], None))
    rep = provenance.provenance_blackbox(provenance.Candidate("suspect", "s"), provenance.Candidate("parent", "p"),
                                         [provenance.Candidate("ref", "r")], prompts, max_tokens=16, words=8)
    assert rep["mode"] == "blackbox"
    assert rep["agreement"]["parent"]["mean"] == pytest.approx(6 / 8)  # all but the last two words
    assert rep["agreement"]["ref"]["mean"] == 0.0
    assert rep["p"] == pytest.approx(2.0**-12) and rep["derived"]
    assert not any("distinct answers" in c for c in rep["cautions"])
    import hashlib

    assert rep["evidence"]["answers_sha256"]["parent"] == hashlib.sha256("\n\x00".join(said["parent"]).encode()
                                                                         ).hexdigest()
    assert set(rep["evidence"]["answers_sha256"]) == {"suspect", "parent", "ref"}


def test_a_reference_that_gives_the_same_few_answers_carries_a_caution(monkeypatch):
    prompts = [f"question {i}" for i in range(12)]
    said = {"suspect": [f"answer {i} is the parent's own way {i}" for i in range(12)],
            "parent": [f"answer {i} is the parent's usual way" for i in range(12)],
            "ref": ["I am a lot." if i % 3 else "The resources." for i in range(12)]}  # 2 distinct of 12
    monkeypatch.setattr(provenance, "answers", lambda c, prompts, max_tokens, opts=None: (said[c.label], None))
    rep = provenance.provenance_blackbox(provenance.Candidate("suspect", "s"), provenance.Candidate("parent", "p"),
                                         [provenance.Candidate("ref", "r")], prompts, max_tokens=16, words=8)
    degenerate = [c for c in rep["cautions"] if "distinct answers" in c]
    assert len(degenerate) == 1 and degenerate[0].startswith("ref gave only 2 distinct answers (first 8 words) to 12")
    assert provenance.degenerate_answers({"m": ["a b"] * 5 + ["c"] * 5 + [str(i) for i in range(10)]}, 4) == []
    assert len(provenance.degenerate_answers({"m": ["a b"] * 12 + [str(i) for i in range(8)]}, 4)) == 1  # 9 of 20


class _FakeChat:
    """An OpenAI-style chat endpoint on 127.0.0.1 with canned answers: `answer(prompt)`; `mode` 'ok', '429' (every
    request rate-limited, with retry-after-ms) or 'half' (prompts whose number is odd get HTTP 503)."""

    def __init__(self, answer):
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        self.mode, self.requests = "ok", 0

        async def chat(request):
            self.requests += 1
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            if self.mode == "429":
                return JSONResponse({"error": "slow down"}, status_code=429, headers={"retry-after-ms": "1"})
            if self.mode == "half" and int(prompt.split()[-1]) % 2:
                return JSONResponse({"error": "overloaded"}, status_code=503)
            text = answer(prompt)
            return JSONResponse({"id": "x", "model": body["model"],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": len(text.split())},
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}]})

        self.app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture()
def fake_endpoint():
    from distill.serve.background import BackgroundServer

    fake = _FakeChat(lambda p: f"the answer to {p} is plain")
    with BackgroundServer(fake.app) as srv:
        fake.url = f"{srv.url}/v1"
        yield fake


def test_endpoints_are_queried_through_the_generate_client_and_resume(fake_endpoint, tmp_path):
    """Answers go through `distill generate`'s store: a run cut short by failures stops with no p-value, names
    how many are missing, and the next run asks only for the missing ones."""
    prompts = [f"question {i}" for i in range(10)]
    c = provenance.Candidate("suspect", endpoint=fake_endpoint.url, model="their-model")
    opts = provenance.QueryOptions(out_dir=str(tmp_path / "q"), max_tries=2, backoff=0.0, price_in=1.0,
                                   price_out=2.0)
    fake_endpoint.mode = "half"
    with pytest.raises(DistillError) as e:
        provenance.endpoint_answers(c, prompts, 16, opts)
    assert "left 5 of 10 prompts unanswered after 2 tries" in e.value.what and "server error" in e.value.what
    assert "run the same command again" in e.value.fix and fake_endpoint.requests == 5 + 5 * 2
    fake_endpoint.mode = "ok"
    texts, spent = provenance.endpoint_answers(c, prompts, 16, opts)
    assert texts == [f"the answer to {p} is plain" for p in prompts]
    assert (spent["skipped"], spent["succeeded"], spent["requests"]) == (5, 5, 5)  # only the missing five
    assert spent["tokens_out"] == 5 * 7 and spent["cost_usd"] == pytest.approx((5 * 5 * 1.0 + 35 * 2.0) / 1e6)
    assert spent["total"]["rows"] == 10


def test_a_rate_limited_or_dead_suspect_endpoint_is_a_clear_error(fake_endpoint, tmp_path, family, capsys):
    fake_endpoint.mode = "429"
    base = ["provenance", "--suspect-endpoint", fake_endpoint.url, "their-model", "--parent", family["parent"],
            "--reference", family["same_data_ref"], "--mode", "blackbox", "--max-tries", "2", "--backoff", "0",
            "--queries", "8", "--queries-dir", str(tmp_path / "q")]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "left 8 of 8 prompts unanswered" in err and "rate limited (429)" in err and "Traceback" not in err
    import socket

    with socket.socket() as s:  # bound, not listening: every connection is refused
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        assert main([*base[:2], dead, *base[3:]]) == 2
    err = capsys.readouterr().err
    assert "querying suspect failed: nothing is listening" in err and "Traceback" not in err


def test_incomparable_answers_and_too_few_prompts_are_refused(monkeypatch):
    said = {"suspect": ["un deux trois"] * 10, "parent": ["one two three"] * 10, "ref": ["four five six"] * 10,
            "mute": [""] * 10}
    monkeypatch.setattr(provenance, "answers", lambda c, prompts, max_tokens, opts=None: (said[c.label], None))
    cand = provenance.Candidate
    with pytest.raises(DistillError, match="cannot be compared"):
        provenance.provenance_blackbox(cand("suspect", "s"), cand("parent", "p"), [cand("ref", "r")],
                                       [f"q{i}" for i in range(10)], words=3)
    with pytest.raises(DistillError, match="mute answered no prompt"):
        provenance.provenance_blackbox(cand("suspect", "s"), cand("mute", "p"), [cand("ref", "r")],
                                       [f"q{i}" for i in range(10)], words=3)
    with pytest.raises(DistillError, match="use at least 7 queries"):
        provenance.provenance_blackbox(cand("suspect", "s"), cand("parent", "p"), [cand("ref", "r")],
                                       ["q1", "q2", "q3"], words=3)

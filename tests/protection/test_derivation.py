"""`distill derivation` (no watermark): the sign test against a direct binomial sum, the agreement and departure
measures by hand, the inconclusive verdicts on constructed inputs, and end to end on tiny models — a student distilled
from a parent is flagged; a model trained on the same data without the parent is not; references of another domain
make the test inconclusive (exit 3), never an accusation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from distill.cli import main
from distill.commands.provenance import NOTICE
from distill.config import load_config
from distill.errors import DistillError
from distill.protection import derivation
from distill.training.loop import train


def test_sign_test_matches_a_direct_binomial_sum():
    diffs = [0.2, 0.1, -0.3, 0.0, 0.5, 0.4, 0.1, -0.1, 0.2, 0.3]  # 7 positive, 2 negative, 1 tie (dropped)
    p, pos, n = derivation.sign_test(diffs)
    assert (pos, n) == (7, 9)
    assert p == pytest.approx(sum(math.comb(9, k) for k in range(7, 10)) / 2**9, rel=1e-9)
    assert derivation.sign_test([0.0, 0.0]) == (1.0, 0, 0)
    assert derivation.min_queries(0.01) == 7 and 2.0**-7 < 0.01 < 2.0**-6


def test_word_agreement_counts_positions_and_missing_words():
    assert derivation.word_agreement("the cat sat on", "the dog sat", 4) == 0.5  # the, sat; 'on' has no partner
    assert derivation.word_agreement("", "anything", 3) == 0.0
    same = torch.tensor([1, 2, 3, 4])
    assert derivation.open_agreements([same], [torch.tensor([1, 0, 3, 0])]) == [0.5]


def test_the_verdict_needs_every_reference_beaten_and_enough_queries():
    parent = [0.9] * 40
    rep = derivation.judge({"parent": parent, "a": [0.1] * 40, "b": [0.95] * 40, "c": [0.1] * 40}, "parent",
                           parent_agreement={"a": [0.2] * 40, "b": [0.3] * 40, "c": [0.25] * 40})
    assert rep["references"]["a"]["p"] == pytest.approx(2.0**-40)
    assert rep["references"]["b"]["p"] == 1.0 and rep["p"] == 1.0 and not rep["derived"]
    assert rep["closest_reference"] == "b" and rep["verdict"] == "not_derived" and rep["inconclusive"] == []
    with pytest.raises(DistillError, match="cannot reach p < 0.01"):
        derivation.judge({"parent": [1.0] * 5, "a": [0.0] * 5}, "parent", parent_agreement={"a": [0.0] * 5})
    with pytest.raises(DistillError, match="model-level test of the suspect statistic needs"):
        derivation.judge({"parent": parent, "a": [0.1] * 40}, "parent")
    with pytest.raises(DistillError, match="at least one reference"):
        derivation.judge({"parent": [1.0] * 10}, "parent")


def test_the_parent_centred_statistic_matches_a_direct_computation():
    # suspect-parent agreement against each reference's own agreement with the parent, query by query
    s_parent = [0.6, 0.5, 0.7, 0.4, 0.6, 0.5, 0.6, 0.8, 0.5, 0.6]
    s_ref = [0.9] * 10  # the suspect is closer to the reference: the suspect-centred test says nothing
    r_parent = [0.5, 0.5, 0.6, 0.5, 0.4, 0.3, 0.5, 0.6, 0.5, 0.4]  # 7 queries below, 1 above, 2 ties
    # (one reference and 10 queries: inconclusive whatever p says; the p is still computed and reported)
    rep = derivation.judge({"parent": s_parent, "r": s_ref}, "parent", parent_agreement={"r": r_parent},
                           statistic="parent")
    pos, n = 7, 8
    assert rep["references"]["r"]["parent_wins"] == pos and rep["references"]["r"]["decided"] == n
    assert rep["p_query"] == pytest.approx(sum(math.comb(n, k) for k in range(pos, n + 1)) / 2**n, rel=1e-9)
    assert rep["p_model"] is None and rep["p"] == 1.0  # one reference: no spread to compare with
    assert rep["p_by_statistic"]["suspect"] == 1.0 and rep["statistic"] == "parent"
    assert rep["reference_agreement_with_parent"]["r"] == pytest.approx(0.48)
    assert rep["verdict"] == "inconclusive" and not rep["derived"] and len(rep["inconclusive"]) == 2
    with pytest.raises(DistillError, match="needs every reference's agreement with the parent"):
        derivation.judge({"parent": s_parent, "r": s_ref}, "parent", statistic="parent")
    with pytest.raises(DistillError, match="unknown derivation statistic"):
        derivation.judge({"parent": s_parent, "r": s_ref}, "parent", statistic="both")


def test_the_departure_statistic_matches_a_direct_computation():
    t = torch.tensor
    y = [t([1, 2, 3, 4, 5, 6, 7, 8]), t([1, 1, 1, 1]), t([5, 6])]  # the text's next tokens
    parent = [t([1, 9, 9, 9, 9, 9, 8, 7]), t([1, 1, 1, 1]), t([4, 4])]  # departs at 1-7; never in query 2
    suspect = [t([1, 9, 9, 0, 9, 6, 0, 7]), t([2, 2, 2, 2]), t([5, 4])]
    ref = [t([0, 2, 9, 0, 0, 0, 0, 0]), t([0, 0, 0, 0]), t([4, 4])]
    # query 1: positions where the parent, the suspect and the reference all miss: 2, 3, 4, 6, 7 (1: ref right,
    # 5: suspect right, 0: parent right). The suspect picks the parent's token at 2, 4, 7 (3/5), the ref at 2 (1/5)
    # query 2: the parent never departs: a tie. Query 3: the suspect is right at 0, so only position 1: 1 - 1 = 0
    d = derivation.departure_differences(suspect, ref, parent, y)
    assert d == pytest.approx([3 / 5 - 1 / 5, 0.0, 0.0])

    def direct(m, p, yy):  # share of positions where the parent and m both miss at which m picks the parent's token
        pairs = [(a, b) for mm, pp, ty in zip(m, p, yy, strict=True) for a, b, c in zip(mm.tolist(), pp.tolist(),
                 ty.tolist(), strict=True) if b != c and a != c]
        return sum(a == b for a, b in pairs) / len(pairs)

    assert derivation.departure_agreement(suspect, parent, y) == pytest.approx(direct(suspect, parent, y))
    assert derivation.fit_to_text(suspect, y) == pytest.approx(3 / 14)  # positions 0 and 5 of q1, 0 of q3
    # the statistic is blind to fit: a reference that knows the text better (right where the suspect is wrong)
    # loses those positions from the comparison instead of winning them
    knows = [t([1, 2, 3, 4, 5, 6, 7, 8]), t([1, 1, 1, 1]), t([5, 6])]
    assert derivation.departure_differences(suspect, knows, parent, y) == [0.0, 0.0, 0.0]


def test_the_alternatives_statistic_matches_a_direct_computation(tokenizer):
    """`open_outputs` reads the parent's k most likely tokens other than the text's, and every other model's
    log-probabilities of exactly those; `alternatives_agreement` is Spearman's rank correlation between the two."""
    from distill.models.students import fresh_llama

    parent = fresh_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=3).eval()
    other = fresh_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=4).eval()
    ids = [[5, 17, 300, 42, 42, 9, 1000, 7], [12, 13, 14, 15, 16]]
    queries = [derivation.OpenQuery(ids[0]), derivation.OpenQuery(ids[1], [False, True, True, False, False])]
    k = 4
    top1, p_lp, at = derivation.open_outputs(parent, queries, k=k)
    _, o_lp, o_at = derivation.open_outputs(other, queries, at)
    assert o_at is not at and all(torch.equal(a, b) for a, b in zip(o_at, at, strict=True))
    for q, t1, lp_p, lp_o, alt in zip(queries, top1, p_lp, o_lp, at, strict=True):
        pos = [i for i, on in enumerate(q.mask().tolist()) if on]
        y = q.targets()
        with torch.no_grad():
            full_p = torch.log_softmax(parent(input_ids=torch.tensor([q.ids])).logits[0, pos].double(), -1)
            full_o = torch.log_softmax(other(input_ids=torch.tensor([q.ids])).logits[0, pos].double(), -1)
        assert torch.equal(t1, full_p.argmax(-1)) and alt.shape == (len(pos), k)
        for row in range(len(pos)):
            ranked = [v for v in full_p[row].argsort(descending=True).tolist() if v != int(y[row])][:k]
            assert alt[row].tolist() == ranked  # the parent's own top-k, the text's token skipped
            assert lp_p[row].tolist() == pytest.approx(full_p[row, ranked].tolist(), abs=1e-5)
            assert lp_o[row].tolist() == pytest.approx(full_o[row, ranked].tolist(), abs=1e-5)
    from scipy.stats import spearmanr

    got = derivation.alternatives_agreement(o_lp, p_lp)
    for g, lp_p, lp_o in zip(got, p_lp, o_lp, strict=True):  # Spearman's rho, position by position, by scipy
        rhos = [spearmanr(a, b).statistic for a, b in zip(lp_p.tolist(), lp_o.tolist(), strict=True)]
        assert g == pytest.approx(sum(rhos) / len(rhos), rel=1e-5)
    assert derivation.alternatives_agreement(p_lp, p_lp) == pytest.approx([1.0, 1.0])
    ties = torch.tensor([[0.0, 0.0, 1.0, 2.0], [3.0, 3.0, 3.0, 3.0]])  # mid-ranks; a row all equal counts 0
    assert derivation.mid_ranks(ties[0]).tolist() == [0.5, 0.5, 2.0, 3.0]
    want = spearmanr([4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 1.0, 2.0]).statistic / 2
    assert derivation.alternatives_agreement([ties], [torch.tensor([[4.0, 3, 2, 1], [4.0, 3, 2, 1]])]) == \
        pytest.approx([want])
    # judged as a measured statistic: its per-query differences and model-level values are what decide
    refs = {"a": [0.25] * 30, "b": [0.15] * 30, "c": [0.2] * 30}
    measured = {"alternatives": derivation.Measured({r: [0.65 - v[0]] * 30 for r, v in refs.items()}, 0.65,
                                                    {r: v[0] for r, v in refs.items()})}
    rep = derivation.judge({"parent": [0.5] * 30, "a": [0.5] * 30, "b": [0.5] * 30, "c": [0.5] * 30}, "parent",
                           statistic="alternatives", measured=measured)
    t = (0.65 - 0.2) / (0.05 * math.sqrt(4 / 3))
    assert rep["p_query"] == pytest.approx(2.0**-30) and rep["p_model"] == pytest.approx(
        0.5 - t / (2 * math.sqrt(t * t + 2)), rel=1e-6) and rep["verdict"] == "derived"
    with pytest.raises(DistillError, match="alternatives statistic needs"):
        derivation.judge({"parent": [0.5] * 30, "a": [0.5] * 30}, "parent", statistic="alternatives")


def test_minimum_detectable_effect_matches_the_binomial():
    def sf(k, n, q):
        return sum(math.comb(n, j) * q**j * (1 - q) ** (n - j) for j in range(k, n + 1))

    for n in (12, 32, 64):
        need = next(k for k in range(n + 1) if sf(k, n, 0.5) < 0.01)
        q = derivation.min_detectable_win_rate(n, 0.01)
        assert sf(need, n, q) >= 0.8 > sf(need, n, q - 1e-6)
    assert derivation.min_detectable_win_rate(32, 0.01) <= derivation.MAX_MDE < derivation.min_detectable_win_rate(
        24, 0.01)
    assert derivation.min_detectable_win_rate(5, 0.01) == 1.0  # 2^-5 > 0.01: never


def test_coverage_and_degenerate_models_are_reasons_not_to_conclude():
    fit = {"suspect": 0.30, "a": 0.20, "b": 0.29, "c": 0.10}
    assert derivation.coverage_reasons(fit, "suspect", ["a", "b", "c"], margin=0.02) == []
    why = derivation.coverage_reasons(fit, "suspect", ["a", "c"], margin=0.02)
    assert len(why) == 1 and "do not cover the queries' domain" in why[0] and "a: 0.200" in why[0]
    t = torch.tensor
    preds = {"ok": [t([1, 2, 3, 1]), t([4, 5, 1, 6])], "stuck": [t([7, 7, 7, 1]), t([7, 7, 2, 7])]}  # 6 of 8
    assert derivation.degenerate_predictions(preds) == []  # 75%: not more than MAX_TOP_TOKEN_SHARE
    preds["stuck"][1][2] = 7  # 7 of 8
    out = derivation.degenerate_predictions(preds)
    assert len(out) == 1 and out[0].startswith("stuck predicts one same token at 88%")


def test_the_alternatives_statistic_needs_references_of_the_suspects_kind():
    """`kind_reasons`: the suspect's fit inside the references' two-sided 99% prediction interval (Student's t,
    k - 1 df, in closed form for 2 df), in either direction."""
    refs = {"a": 0.20, "b": 0.22, "c": 0.21}

    def two_sided(x):  # 2 df: sf(t) = 1/2 - t / (2 sqrt(t^2 + 2))
        t = abs(x - 0.21) / (0.01 * math.sqrt(4 / 3))
        return 2 * (0.5 - t / (2 * math.sqrt(t * t + 2)))

    outside = 0
    for x in (0.205, 0.25, 0.3, 0.4, 0.1, 0.0):
        why = derivation.kind_reasons({"s": x, **refs}, "s", list(refs), 0.01)
        assert bool(why) == (two_sided(x) < 0.01), x
        outside += bool(why)
        if why:
            assert "not of the suspect's kind" in why[0] and f"{two_sided(x):.2g}" in why[0]
    assert outside == 2  # 0.4 and 0.0: beyond 9.9 prediction standard errors, above and below (0.1: 9.5)
    flat = {"a": 0.1, "b": 0.1, "c": 0.1}
    assert derivation.kind_reasons({"s": 0.1, **flat}, "s", list(flat), 0.01) == []
    assert derivation.kind_reasons({"s": 0.2, **flat}, "s", list(flat), 0.01) != []


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
                             f"train.steps={steps}", "train.batch_size=4", f"train.lr={1e-2 if kd else 5e-3}", "train.warmup_steps=2",
                             "train.eval_every=1000", "train.eval_sequences=2", "train.checkpoint_every=1000", "train.progress=false",
                             f"train.seed={seed}", "loss.chunk_size=32",
                             f"loss.kd_weight={1.0 if kd else 0.0}", f"loss.ce_weight={0.0 if kd else 1.0}",
                             f"output_dir={root / name}"])
    return str(train(cfg).output_dir)


def _other_domain_text(root: Path) -> Path:
    """Text of another domain than the Shakespeare fixture: a few Python standard-library modules' source."""
    import sysconfig

    lib = Path(sysconfig.get_paths()["stdlib"])
    out = root / "python_source.txt"
    out.write_text("\n".join((lib / f).read_text(encoding="utf-8") for f in ("textwrap.py", "shlex.py", "fnmatch.py")))
    return out


@pytest.fixture(scope="module")
def family(tmp_path_factory, tokenizer, text_file):
    root = tmp_path_factory.mktemp("derivation")
    parent = _sharp_parent(root, tokenizer)
    other = _other_domain_text(root)
    return {"parent": str(parent),
            "distilled": _train(root, "distilled", parent, text_file, seed=1, kd=True, steps=100),
            "same_data": _train(root, "same_data", parent, text_file, seed=2, kd=False, steps=80),
            "refs": [_train(root, f"same_data_ref{i}", parent, text_file, seed=3 + i, kd=False, steps=80)
                     for i in range(3)],
            "other_refs": [_train(root, f"other_ref{i}", parent, other, seed=6 + i, kd=False, steps=80)
                           for i in range(3)],
            "data": str(text_file)}


def _refs(paths: list[str]) -> list[str]:
    return [a for path in paths for a in ("--reference", path)]


def _run(capsys, suspect: str, f: dict, *extra: str, refs: list[str] | None = None) -> tuple[int, dict]:
    code = main(["derivation", "--suspect", suspect, "--parent", f["parent"], *_refs(refs or f["refs"]),
                 "--data", f["data"], "--queries", "40", "--seq-len", "32", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_distilled_student_is_flagged_open_mode(family, capsys):
    code, rep = _run(capsys, family["distilled"], family)
    assert code == 0 and rep["derived"] and rep["mode"] == "open" and rep["verdict"] == "derived"
    assert rep["statistic"] == "departure" and rep["p"] < 1e-5  # 40 queries: the best possible p is 2^-40
    assert rep["agreement"]["parent"]["mean"] > 0.5 and rep["gap_ci95"][0] > 0 and rep["inconclusive"] == []
    assert set(rep["p_by_statistic"]) == {"departure", "alternatives", "parent", "suspect"}
    # the alternatives statistic decides when asked; this parent is a sharp random model (nearly all its mass on
    # its top-1), so its alternatives carry little weight in distillation: only the structure is asserted here
    # (its power is measured on a real parent in docs/benchmarks.md)
    # without the user's statement that a reference is of the suspect's data: inconclusive whatever its p
    code, unvouched = _run(capsys, family["distilled"], family, "--statistic", "alternatives")
    assert code == 3 and unvouched["verdict"] == "inconclusive" and not unvouched["derived"]
    assert derivation.UNVOUCHED_ALTERNATIVES in unvouched["inconclusive"]
    assert unvouched["evidence"]["settings"]["references_vouched_for"] is False
    code, alt = _run(capsys, family["distilled"], family, "--statistic", "alternatives", "--vouch-references")
    assert alt["statistic"] == "alternatives" and code == {"derived": 0, "not_derived": 1, "inconclusive": 3}[alt["verdict"]]
    assert derivation.UNVOUCHED_ALTERNATIVES not in alt["inconclusive"]
    assert alt["evidence"]["settings"]["references_vouched_for"] is True
    assert set(alt["alternatives_agreement"]) == {"suspect", *alt["references"]}
    assert derivation.ALTERNATIVES_CAUTION in alt["cautions"] and derivation.ALTERNATIVES_CAUTION not in rep["cautions"]
    assert alt["model_level"]["suspect"] == pytest.approx(alt["alternatives_agreement"]["suspect"], abs=1e-4)
    assert alt["p"] == max(alt["p_query"], alt["p_model"]) == pytest.approx(
        max(alt["p_by_statistic"]["alternatives"], alt["p_model"]))


def test_the_report_records_the_models_and_queries_it_compared(family, capsys):
    from distill.models.loading import weights_sha256

    _, rep = _run(capsys, family["distilled"], family)
    ev = rep["evidence"]
    assert ev["models"]["parent"]["weights_sha256"] == weights_sha256(family["parent"])
    assert ev["models"]["suspect"]["weights_sha256"] == weights_sha256(family["distilled"])
    assert ev["settings"] == {"mode": "open", "data": family["data"], "queries": 40, "seq_len": 32, "alpha": 0.01,
                              "statistic": "departure"}
    _, again = _run(capsys, family["distilled"], family)
    _, fewer = _run(capsys, family["distilled"], family, "--queries", "36")
    assert again["evidence"]["queries_sha256"] == ev["queries_sha256"] != fewer["evidence"]["queries_sha256"]
    main(["derivation", "--suspect", family["distilled"], "--parent", family["parent"], *_refs(family["refs"]),
          "--data", family["data"], "--queries", "40", "--seq-len", "32"])
    text = capsys.readouterr().out
    assert "DERIVED at alpha 0.01" in text and "minimum detectable effect" in text and "model level: the suspect" in text
    assert f"parent: weights sha256 {ev['models']['parent']['weights_sha256']}" in text
    assert f"queries and settings sha256 {ev['queries_sha256']}" in text


def test_a_model_trained_on_the_same_data_is_not_accused(family, capsys):
    # fixed seeds: deterministic. Not derived (1) or, if it happens to fit the text better than all three
    # references, inconclusive (3): never an accusation
    for statistic in ("departure", "alternatives", "parent"):
        code, rep = _run(capsys, family["same_data"], family, "--statistic", statistic, "--vouch-references")
        assert code in (1, 3) and not rep["derived"] and rep["statistic"] == statistic


def test_references_of_another_domain_make_the_test_inconclusive(family, capsys):
    """The issue's false accusation: references that never saw the queries' domain. The suspect (CE only, never
    saw the parent) fits the text better than every reference: exit 3, never 'derived', whatever p says."""
    code, rep = _run(capsys, family["same_data"], family, refs=family["other_refs"])
    assert code == 3 and rep["verdict"] == "inconclusive" and not rep["derived"]
    assert any("do not cover the queries' domain" in r for r in rep["inconclusive"])
    assert rep["fit_top1"]["suspect"] > max(rep["fit_top1"][k] for k in rep["references"])
    main(["derivation", "--suspect", family["same_data"], "--parent", family["parent"],
          *_refs(family["other_refs"]), "--data", family["data"], "--queries", "40", "--seq-len", "32"])
    text = capsys.readouterr().out
    assert "INCONCLUSIVE" in text and "inconclusive: the references do not cover" in text and "DERIVED" not in text
    code, rep = _run(capsys, family["distilled"], family, refs=family["refs"][:2])  # too few references
    assert code == 3 and any("only 2 reference model(s)" in r for r in rep["inconclusive"]) and rep["p_query"] < 1e-5


def test_a_text_corpus_is_compared_on_its_held_out_passages_only(family, tokenizer, capsys):
    """A plain-text --data is packed text (its packing sets a loss mask too): held-out passages only, every
    position with a next token compared, and the report calls the unit a passage, not a conversation."""
    from distill.config import DataConfig
    from distill.data.corpus import load_corpus

    corpus = load_corpus(DataConfig(path=family["data"], seq_len=32, heldout_fraction=0.2, seed=0), tokenizer)
    assert not corpus.conversations and len(corpus.heldout) == 44
    queries = derivation.open_queries(tokenizer, family["data"], 44, 32)
    assert [q.ids for q in queries] == [ex["input_ids"].tolist() for ex in corpus.heldout]
    assert all(q.compared is None and int(q.mask().sum()) == 31 for q in queries)
    assert queries[0].targets().tolist() == queries[0].ids[1:]
    with pytest.raises(DistillError, match="only 44 held-out passages of 32 tokens, 45 asked"):
        derivation.open_queries(tokenizer, family["data"], 45, 32)  # never a training passage
    _, rep = _run(capsys, family["distilled"], family)
    assert rep["unit"] == f"a held-out passage of 32 tokens of {family['data']}" and "conversation" not in rep["unit"]
    assert "answer" not in rep["measure"]


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
    queries = derivation.open_queries(tokenizer, str(folder), 10, 96)
    assert len(queries) == 10
    for q in queries:  # the compared positions predict exactly the answer's tokens and its end
        picked = [q.ids[t + 1] for t, on in enumerate(q.compared) if on]
        text = tokenizer.decode(picked[:-1])
        assert text.startswith("Thing ") and text.endswith("has a name.") and picked[-1] == tokenizer.eos_token_id
    code, rep = _run(capsys, family["distilled"], {**family, "data": str(folder)}, "--queries", "10",
                     "--seq-len", "96")
    assert rep["mode"] == "open" and "answer tokens only" in rep["unit"] and rep["queries"] == 10
    assert code == 3 and "10 queries are too few" in " ".join(rep["inconclusive"])

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
        derivation.open_queries(tokenizer, str(folder), 20, 96)


def test_three_references_and_enough_queries_can_conclude():
    parent = [1.0] * 40
    own = {"a": [0.10] * 40, "b": [0.12] * 40, "c": [0.11] * 40}  # the references' own agreement with the parent
    rep = derivation.judge({"parent": parent, "a": [0.0] * 40, "b": [0.0] * 40, "c": [0.0] * 40}, "parent",
                           parent_agreement=own)
    assert rep["cautions"] == [] and rep["inconclusive"] == [] and rep["p_query"] == pytest.approx(2.0**-40)
    # the model-level test: t = (1.0 - 0.11) / (0.01 * sqrt(4/3)) with 2 degrees of freedom, in closed form
    t = 0.89 / (0.01 * math.sqrt(4 / 3))
    assert rep["p_model"] == pytest.approx(0.5 - t / (2 * math.sqrt(t * t + 2)), rel=1e-6)
    assert rep["p"] == rep["p_model"] and rep["verdict"] == "derived" and rep["derived"]
    two = derivation.judge({"parent": parent, "a": [0.0] * 40, "b": [0.0] * 40}, "parent", parent_agreement=own)
    assert two["verdict"] == "inconclusive" and "only 2 reference model(s)" in two["inconclusive"][0]
    few = derivation.judge({"parent": [1.0] * 12, "a": [0.0] * 12, "b": [0.0] * 12, "c": [0.0] * 12}, "parent",
                           parent_agreement={r: v[:12] for r, v in own.items()})
    assert few["p_query"] == pytest.approx(2.0**-12) and few["verdict"] == "inconclusive"
    assert "12 queries are too few for the stated power" in few["inconclusive"][0]
    given = derivation.judge({"parent": parent, "a": [0.0] * 40, "b": [0.0] * 40, "c": [0.0] * 40}, "parent",
                             parent_agreement=own, inconclusive=["the references do not cover the queries' domain"])
    assert given["verdict"] == "inconclusive" and not given["derived"] and given["p_query"] == pytest.approx(2.0**-40)
    flat = derivation.judge({"parent": parent, "a": [0.0] * 40, "b": [0.0] * 40, "c": [0.0] * 40}, "parent",
                            parent_agreement={r: [0.1] * 40 for r in own})
    assert flat["verdict"] == "inconclusive" and flat["p_model"] is None and "do not vary" in flat["inconclusive"][0]


def test_the_model_level_test_matches_students_t_in_closed_form():
    # one degree of freedom (2 references): Cauchy, sf(t) = 1/2 - atan(t)/pi
    rep = derivation.model_level_test(0.5, [0.1, 0.3])
    t = (0.5 - 0.2) / (math.sqrt(0.02) * math.sqrt(1.5))
    assert rep["t"] == pytest.approx(t) and rep["df"] == 1
    assert rep["p"] == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-9)
    assert derivation.model_level_test(0.0, [0.1, 0.3])["p"] > 0.5  # below the references: no evidence
    assert derivation.model_level_test(0.9, [0.2, 0.2, 0.2])["p"] is None  # no spread: cannot be estimated


def test_a_seed_difference_is_not_called_derived_however_many_queries():
    # The suspect agrees with the parent a little more than each of three references on every one of 400 queries:
    # the query-level sign test gives 2^-400, but the references themselves differ by more than that (model to
    # model), so the suspect is one more model of their kind and the verdict must not be 'derived'.
    n = 400
    own = {"a": [0.20] * n, "b": [0.30] * n, "c": [0.25] * n}
    rep = derivation.judge({"parent": [0.31] * n, "a": [0.0] * n, "b": [0.0] * n, "c": [0.0] * n}, "parent",
                           parent_agreement=own, statistic="parent")
    assert rep["p_query"] == pytest.approx(2.0**-n) and rep["p_model"] > 0.05
    assert rep["p"] == rep["p_model"] and rep["verdict"] == "not_derived"


def test_too_few_queries_and_a_missing_parent_are_refused(family, capsys):
    assert main(["derivation", "--suspect", family["distilled"], *_refs(family["refs"])]) == 2
    assert "give the parent once" in capsys.readouterr().err
    code = main(["derivation", "--suspect", family["distilled"], "--parent", family["parent"],
                 *_refs(family["refs"]), "--data", family["data"], "--queries", "5", "--seq-len", "32"])
    assert code == 2 and "use at least 7 queries" in capsys.readouterr().err


def test_the_old_command_name_runs_the_same_test_with_a_notice(family, capsys):
    assert main(["provenance", "--suspect", family["distilled"], *_refs(family["refs"])]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == NOTICE and "give the parent once" in err[1]


def _blackbox(monkeypatch, said: dict[str, list[str]], words: int = 8) -> dict:
    """The black-box test on fixed answers (`said`, by label: suspect, parent, then the references)."""
    monkeypatch.setattr(derivation, "answers", lambda c, prompts, max_tokens, opts=None: (said[c.label], None))
    cand = derivation.Candidate
    refs = [cand(k, k) for k in said if k not in ("suspect", "parent")]
    return derivation.derivation_blackbox(cand("suspect", "s"), cand("parent", "p"), refs,
                                          [f"question {i}" for i in range(len(said["suspect"]))], max_tokens=16,
                                          words=words)


def test_blackbox_mode_compares_answers_word_by_word(monkeypatch):
    """The black-box path on fixed answers (the endpoints' side is `trace.query_suspect`, tested with the trace
    command): a suspect that copies the parent's phrasing beats references that answer otherwise."""
    n = 40
    said = {"suspect": [f"answer {i} is the parent's own way {i}" for i in range(n)],
            "parent": [f"answer {i} is the parent's usual way" for i in range(n)],
            # the references share the parent's first word: always (ref0, ref1) or on even prompts (ref2)
            **{f"ref{k}": [("answer" if k < 2 or i % 2 == 0 else "well,") + f" {i}{'xyz'[k]} could be put otherwise"
                           for i in range(n)] for k in range(3)}}
    rep = _blackbox(monkeypatch, said)
    assert rep["mode"] == "blackbox" and rep["statistic"] == "parent"
    assert rep["agreement"]["parent"]["mean"] == pytest.approx(6 / 8)  # all but the last two words
    assert rep["agreement"]["ref0"]["mean"] == 1 / 8  # the first word
    assert rep["reference_agreement_with_parent"] == pytest.approx({"ref0": 1 / 8, "ref1": 1 / 8, "ref2": 1 / 16})
    assert rep["p_query"] == pytest.approx(2.0**-n) and rep["p"] == rep["p_model"] < 0.01
    assert rep["derived"] and rep["verdict"] == "derived"
    assert not any("distinct answers" in c for c in rep["cautions"])
    assert rep["cautions"] == [derivation.BLACKBOX_COVERAGE]  # the limitation is always stated
    import hashlib

    assert rep["evidence"]["answers_sha256"]["parent"] == hashlib.sha256("\n\x00".join(said["parent"]).encode()
                                                                         ).hexdigest()
    assert set(rep["evidence"]["answers_sha256"]) == {"suspect", "parent", "ref0", "ref1", "ref2"}
    with pytest.raises(DistillError, match="departure statistic needs the text's next tokens"):
        derivation.derivation_blackbox(derivation.Candidate("suspect", "s"), derivation.Candidate("parent", "p"),
                                       [], ["q"] * n, statistic="departure")


def test_a_reference_that_gives_the_same_few_answers_makes_it_inconclusive(monkeypatch):
    n = 40
    said = {"suspect": [f"answer {i} is the parent's own way {i}" for i in range(n)],
            "parent": [f"answer {i} is the parent's usual way" for i in range(n)],
            **{f"ref{k}": [f"well, answer {i} could be put otherwise {'xyz'[k]}" for i in range(n)] for k in range(2)},
            "ref2": ["I am a lot." if i % 3 else "The resources." for i in range(n)]}  # 2 distinct of 40
    rep = _blackbox(monkeypatch, said)
    assert rep["verdict"] == "inconclusive" and not rep["derived"] and rep["p_query"] == pytest.approx(2.0**-n)
    degenerate = [c for c in rep["inconclusive"] if "distinct answers" in c]
    assert len(degenerate) == 1 and degenerate[0].startswith("ref2 gave only 2 distinct answers (first 8 words) to 40")
    assert derivation.degenerate_answers({"m": ["a b"] * 5 + ["c"] * 5 + [str(i) for i in range(10)]}, 4) == []
    assert len(derivation.degenerate_answers({"m": ["a b"] * 12 + [str(i) for i in range(8)]}, 4)) == 1  # 9 of 20


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
    c = derivation.Candidate("suspect", endpoint=fake_endpoint.url, model="their-model")
    opts = derivation.QueryOptions(out_dir=str(tmp_path / "q"), max_tries=2, backoff_s=0.0, price_in=1.0,
                                   price_out=2.0)
    fake_endpoint.mode = "half"
    with pytest.raises(DistillError) as e:
        derivation.endpoint_answers(c, prompts, 16, opts)
    assert "left 5 of 10 prompts unanswered after 2 tries" in e.value.what and "server error" in e.value.what
    assert "run the same command again" in e.value.fix and fake_endpoint.requests == 5 + 5 * 2
    fake_endpoint.mode = "ok"
    texts, spent = derivation.endpoint_answers(c, prompts, 16, opts)
    assert texts == [f"the answer to {p} is plain" for p in prompts]
    assert (spent["skipped"], spent["succeeded"], spent["requests"]) == (5, 5, 5)  # only the missing five
    assert spent["tokens_out"] == 5 * 7 and spent["cost_usd"] == pytest.approx((5 * 5 * 1.0 + 35 * 2.0) / 1e6)
    assert spent["total"]["rows"] == 10


def test_a_rate_limited_or_dead_suspect_endpoint_is_a_clear_error(fake_endpoint, tmp_path, family, capsys):
    fake_endpoint.mode = "429"
    base = ["derivation", "--suspect-endpoint", fake_endpoint.url, "their-model", "--parent", family["parent"],
            *_refs(family["refs"]), "--mode", "blackbox", "--max-tries", "2", "--backoff", "0",
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
    asked = fake_endpoint.requests
    assert main([*base, "--concurrency", "0", "--timeout", "-1"]) == 2  # refused before anything is queried
    err = capsys.readouterr().err
    assert "invalid query options" in err and "concurrency" in err and "timeout_s" in err
    assert "Traceback" not in err and fake_endpoint.requests == asked


def test_incomparable_answers_and_too_few_prompts_are_refused(monkeypatch):
    said = {"suspect": ["un deux trois"] * 10, "parent": ["one two three"] * 10, "ref": ["four five six"] * 10,
            "mute": [""] * 10}
    monkeypatch.setattr(derivation, "answers", lambda c, prompts, max_tokens, opts=None: (said[c.label], None))
    cand = derivation.Candidate
    with pytest.raises(DistillError, match="cannot be compared"):
        derivation.derivation_blackbox(cand("suspect", "s"), cand("parent", "p"), [cand("ref", "r")],
                                       [f"q{i}" for i in range(10)], words=3)
    with pytest.raises(DistillError, match="mute answered no prompt"):
        derivation.derivation_blackbox(cand("suspect", "s"), cand("mute", "p"), [cand("ref", "r")],
                                       [f"q{i}" for i in range(10)], words=3)
    with pytest.raises(DistillError, match="use at least 7 queries"):
        derivation.derivation_blackbox(cand("suspect", "s"), cand("parent", "p"), [cand("ref", "r")],
                                       ["q1", "q2", "q3"], words=3)

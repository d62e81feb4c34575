"""`distill eval --tasks`: lm-evaluation-harness on the loaded teacher and student, against a direct computation."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from distill.cli import main
from distill.errors import DistillError

pytest.importorskip("lm_eval")  # the `eval` extra; `make venv` installs it, so `make test` runs these

from distill.evaluation import build_tasks  # noqa: E402
from distill.evaluation.report import evaluate, format_report  # noqa: E402
from distill.evaluation.settings import EvalSettings  # noqa: E402
from distill.evaluation.tasks import BUNDLED, BUNDLED_TAG, plan_tasks, run_tasks  # noqa: E402

CONTEXTS = ["The king came back to the castle and", "In the morning the old man went out to",
            "She opened the letter and read that her", "When the ship reached the harbour the",
            "The children ran down the hill towards", "After the long war the people wanted"]
CHOICES = [["found the", "saw a", "told his"], ["the town", "his house", "a field"],
           ["father was", "brother had", "mother is"], ["men were", "sea was", "wind came"],
           ["the river", "their home", "a small"], ["to live", "more food", "no king"]]
LABELS = [0, 2, 1, 1, 0, 2]


@pytest.fixture(scope="module")
def tiny_task(tmp_path_factory):
    """A local lm-eval task (YAML + JSONL with an absolute data_files path): 6 documents, 3 choices each."""
    folder = tmp_path_factory.mktemp("task")
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps({"context": c, "choices": ch, "label": lab}) + "\n"
                            for c, ch, lab in zip(CONTEXTS, CHOICES, LABELS, strict=True)))
    (folder / "tiny.yaml").write_text(f"""task: tiny_next_words
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
  - metric: acc_norm
""")
    return folder


def _model(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _reference(model, tokenizer) -> dict:
    """Accuracy by hand: each choice's summed log-probability after its context (the context tokenized alone, the
    continuation as the rest of the whole string's tokens), argmax against the label; acc_norm divides by the
    choice's length in characters; the standard error is the sample standard deviation over sqrt(n)."""
    hits, hits_norm = [], []
    for ctx, choices, label in zip(CONTEXTS, CHOICES, LABELS, strict=True):
        ctx_ids = tokenizer(ctx, add_special_tokens=False)["input_ids"]
        lls = []
        for choice in choices:
            whole = tokenizer(ctx + " " + choice, add_special_tokens=False)["input_ids"]
            assert whole[: len(ctx_ids)] == ctx_ids and len(whole) - len(ctx_ids) == 2  # equal-length choices
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), -1)
            lls.append(sum(float(logp[t - 1, whole[t]]) for t in range(len(ctx_ids), len(whole))))
        lls_sorted = sorted(lls)
        assert lls_sorted[-1] - lls_sorted[-2] > 1e-4  # no near-tie a float32/float64 difference could flip
        hits.append(float(int(np.argmax(lls)) == label))
        hits_norm.append(float(int(np.argmax(np.array(lls) / [len(c) for c in choices])) == label))
    stderr = lambda h: math.sqrt(sum((x - np.mean(h)) ** 2 for x in h) / (len(h) - 1)) / math.sqrt(len(h))  # noqa: E731
    return {"acc": np.mean(hits), "acc_stderr": stderr(hits), "acc_norm": np.mean(hits_norm),
            "acc_norm_stderr": stderr(hits_norm)}


def test_lm_eval_accuracy_matches_a_direct_loglikelihood(tiny_task, tiny_teacher_dir, tiny_model_dir, tokenizer):
    teacher, student = _model(tiny_teacher_dir), _model(tiny_model_dir)
    plan = plan_tasks(str(tiny_task / "tiny.yaml"))
    assert plan.names == ["tiny_next_words"]
    block = run_tasks(plan, teacher, tokenizer, student, tokenizer)
    (row,) = block["results"]
    assert row["task"] == "tiny_next_words" and row["docs"] == len(CONTEXTS)
    refs = {"teacher": _reference(teacher, tokenizer), "student": _reference(student, tokenizer)}
    assert any(0 < r["acc"] < 1 for r in refs.values())  # the data separates right from wrong answers
    for name in ("acc", "acc_norm"):
        m = row["metrics"][name]
        for side, ref in refs.items():
            assert m[side] == pytest.approx(ref[name], abs=1e-12)
            assert m[f"{side}_stderr"] == pytest.approx(ref[f"{name}_stderr"], rel=1e-9, abs=1e-12)
        assert m["retention"] == (None if m["teacher"] == 0 else pytest.approx(m["student"] / m["teacher"]))


def test_report_has_tasks_and_every_set_in_json_and_table(tiny_task, tiny_teacher_dir, tiny_model_dir, text_file,
                                                          tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(" ".join(f"Valve {i} is open and the pressure reads {i * 7} bar." for i in range(300)))
    rep = evaluate(EvalSettings(teacher=str(tiny_teacher_dir), student=str(tiny_model_dir),
                                data=[str(text_file), str(other)], seq_len=32, sequences=2, gen_prompts=1,
                                tasks=str(tiny_task), task_limit=4))
    rep = json.loads(json.dumps(dict(rep)))  # what `--json` prints
    assert [s["data"].split(":")[0] for s in rep["sets"]] == [f"1 text file(s) from {text_file}",
                                                              f"1 text file(s) from {other}"]
    (row,) = rep["tasks"]["results"]
    assert row["task"] == "tiny_next_words" and row["docs"] == 4 and rep["tasks"]["limit"] == 4
    assert rep["retention"]["tasks"] == {"tiny_next_words": row["metrics"]["acc_norm"]["retention"]}
    table = format_report(rep)  # one block per held-out set, then the tasks
    assert table.count("Data: ") == 2 and "Tasks (lm-eval 0.4.13, at most 4 documents each" in table
    assert "tiny_next_words acc " in table and "tiny_next_words acc_norm" in table


def test_bundled_tasks_rebuild_identically_from_the_heldout_split(tokenizer):
    """The shipped JSONL is the builder's output, every Shakespeare document sits inside one held-out sequence of
    the default split, and lm-eval finds both tasks under their tag."""
    texts = build_tasks.heldout_texts(tokenizer)
    built = {"shakespeare_next_line.jsonl": build_tasks.shakespeare_next_line(texts),
             "chatterbot_qa.jsonl": build_tasks.chatterbot_qa()}
    for name, docs in built.items():
        assert (build_tasks.BUNDLED_DIR / name).read_text() == build_tasks.to_jsonl(docs)
        assert len(docs) == build_tasks.DOCS
        assert all(len(set(d["choices"])) == 4 and 0 <= d["label"] < 4 for d in docs)
    for d in built["shakespeare_next_line.jsonl"]:  # the context, then the right line (stripped)
        line = re.escape(d["context"] + "\n") + r"[ \t]*" + re.escape(d["choices"][d["label"]]) + r"[ \t]*\n"
        assert any(re.search(line, t) for t in texts)
    plan = plan_tasks(BUNDLED_TAG)
    assert plan.names == [BUNDLED_TAG] and sorted(plan.manager.load(plan.names)["tasks"]) == sorted(BUNDLED)


def test_bad_task_input_is_one_paragraph(tmp_path, tiny_model_dir, monkeypatch, capsys):
    with pytest.raises(DistillError, match="task file or folder not found"):
        plan_tasks(str(tmp_path / "missing.yaml"))
    (tmp_path / "notes.yaml").write_text("just: a note\n")
    with pytest.raises(DistillError, match="no lm-eval task found"):
        plan_tasks(str(tmp_path))
    assert main(["eval", "--student", str(tiny_model_dir), "--tasks", BUNDLED_TAG, "--task-limit", "0"]) == 2
    assert "--task-limit must be at least 1" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if the `eval` extra were not installed
    assert main(["eval", "--student", str(tiny_model_dir), "--tasks", BUNDLED_TAG]) == 2
    err = capsys.readouterr().err
    assert "needs lm-evaluation-harness" in err and "distill[eval]" in err and "Traceback" not in err

"""The teacher-vs-student report: size, held-out perplexity, KL(teacher‖student), top-1 agreement,
greedy generation speed, and retention (student as a share of the teacher)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from distill.config import DataConfig
from distill.data.corpus import collate, load_corpus
from distill.errors import DistillError
from distill.evaluation.settings import EvalSettings
from distill.loss.fused import evaluate_chunks
from distill.models.fast import scoring_teacher
from distill.models.loading import check_compatible, load_model
from distill.models.precision import Fidelity, fidelity
from distill.models.students import param_count
from distill.signals import DenseSignal, LiveTeacher, scored_positions
from distill.teachers import (
    LiveTeacherConfig,
    ServedTeacherConfig,
    TeacherBase,
    TeacherInputs,
    close_source,
    open_source,
)


def size_on_disk(info) -> int:
    p = Path(info.path if info.kind == "gguf" else info.local_dir)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.glob("*.safetensors")) if p.is_dir() else 0


def disk_format(info) -> str | None:
    """What the weights on disk are: "gguf q4_1", "safetensors f32"... (None when unknown, e.g. a hub model)."""
    if info.kind == "gguf":
        import gguf

        ftype = info.gguf_metadata.get("general.file_type")
        try:
            name = gguf.LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()
        except (TypeError, ValueError):
            name = "?"
        return f"gguf {name}"
    files = sorted(Path(info.local_dir).glob("*.safetensors")) if info.local_dir else []
    if not files:
        return None
    from safetensors import safe_open

    with safe_open(files[0], "pt") as f:
        keys = list(f.keys())
        dtype = f.get_slice(keys[0]).get_dtype() if keys else "?"
    return "safetensors " + {"F32": "f32", "BF16": "bf16", "F16": "f16"}.get(dtype, dtype.lower())


@torch.no_grad()
def generation_speed(model, tokenizer, prompts: list[str], new_tokens: int = 32) -> float:
    """Greedy generation tokens/s with the KV cache, batch 1, averaged over the prompts."""
    total_tokens, total_time = 0, 0.0
    for text in prompts:
        ids = tokenizer(text, return_tensors="pt").input_ids[:, -64:]
        t0 = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        total_time += time.perf_counter() - t0
        total_tokens += out.shape[1] - ids.shape[1]
    return total_tokens / max(total_time, 1e-9)


class EvalReport(Mapping):
    """The report of one comparison, read as a mapping (`report["student"]["kl_teacher_student"]`, `dict(report)`
    is what `distill eval --json` prints) or through its documented parts:

    * `teacher`, `student`: model name, parameters, size in bf16 and on disk (with its format), held-out perplexity,
      generation tokens/s; the student also `kl_teacher_student` (nats per token) and `top1_agreement`;
    * `retention`: the student as a share of the teacher (parameters, size, size on disk, perplexity ratio,
      speed-up, top-1 agreement, and the headline metric per task with `tasks`);
    * `sets`: one block per data set (data, tokens scored, both perplexities, KL, top-1, perplexity ratio);
    * `draft` and `tasks`: present when asked for, else None.
    """

    def __init__(self, report: dict[str, Any]):
        self._report = report

    def __getitem__(self, key: str) -> Any:
        return self._report[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._report)

    def __len__(self) -> int:
        return len(self._report)

    @property
    def teacher(self) -> dict[str, Any]:
        return self._report["teacher"]

    @property
    def student(self) -> dict[str, Any]:
        return self._report["student"]

    @property
    def retention(self) -> dict[str, Any]:
        return self._report["retention"]

    @property
    def sets(self) -> list[dict[str, Any]]:
        return self._report["sets"]

    @property
    def draft(self) -> list[dict[str, Any]] | None:
        return self._report.get("draft")

    @property
    def tasks(self) -> dict[str, Any] | None:
        return self._report.get("tasks")

    def text(self) -> str:
        """The report as `distill eval` prints it."""
        return format_report(self._report)


def evaluate(settings: EvalSettings) -> EvalReport:
    """Compare `settings.student` with its teacher (`distill eval`): the report described in `EvalReport`."""
    return EvalReport(_report(**settings.model_dump()))


def _report(teacher: str = "default", student: str | None = None, data: str | list[str] = "shakespeare",
             seq_len: int = 256, sequences: int = 32, batch_size: int = 4, gen_prompts: int = 3,
             chunk_size: int = 64, teacher_endpoint: str | None = None, teacher_model: str | None = None,
             top_k: int = 20, tasks: str | None = None, task_limit: int | None = None,
             task_batch_size: int = 8, teacher_precision: str = "fp32", draft: bool = False,
             draft_tokens: int = 5, draft_prompts: int = 8, draft_new_tokens: int = 32) -> dict:
    """The report as a dict: {"teacher": {...}, "student": {...}, "retention": {...}, "data": ..., "sets": [...]}
    (and "tasks" with `tasks`).

    `data` is one held-out set or several (e.g. in-domain and out-of-domain): each is scored on its own held-out
    split and has its block in `sets` (data, tokens, both perplexities, KL, top-1, perplexity ratio); the top-level
    figures are those of the first set, and size and speed are measured once.

    With `teacher_endpoint` the teacher is a server (vLLM or `distill serve`, serving `teacher_model`) and `teacher`
    is only its tokenizer, as a local spec: KL and top-1 are then against the served top-k (the rest of the
    teacher's mass as one outcome), the teacher's perplexity from its log-probability of each actual token, and its
    size and speed are not known.

    `tasks` (names, task YAML files or folders, comma-separated: see `distill.evaluation.tasks`) also runs both
    models through lm-evaluation-harness, at most `task_limit` documents per task: each metric ± its standard error
    and retention (student / teacher) in "tasks", the headline metric's retention per task in "retention"
    (acc_norm where reported, else acc).

    `teacher_precision` bf16 / int8 scores with that lower-precision teacher (`distill.models.precision`) and puts its
    measured KL(teacher_fp32 ‖ teacher_fast) per token on the first set's held-out sequences in teacher.precision.

    `draft` runs speculative decoding of the teacher with the student drafting `draft_tokens` tokens per round
    (`distill.evaluation.draft`), greedy and sampled, on the first 48 tokens of `draft_prompts` held-out sequences
    of each set, `draft_new_tokens` new tokens each: "draft" holds one block per set and decoding."""
    if not student:
        raise DistillError("no student given", fix="pass --student DIR (a directory written by `distill train`)")
    datasets = [data] if isinstance(data, str) else list(data)
    if not datasets:
        raise DistillError("no evaluation data given", where="--data", fix="pass --data (e.g. --data shakespeare)")
    plan = None
    if task_limit is not None and task_limit < 1:
        raise DistillError(f"--task-limit must be at least 1, not {task_limit}", where="--task-limit",
                           fix="give a positive number of documents per task, or leave it out for all of them")
    if tasks:  # resolved (lm-eval present, every name known, its data loaded) before any model loads
        if teacher_endpoint:
            raise DistillError("--tasks needs the teacher's weights, which --teacher-endpoint does not give",
                               where="--tasks with --teacher-endpoint",
                               fix="drop --teacher-endpoint and pass the teacher as --teacher (a directory, GGUF "
                                   "file or hub id), or run lm-eval's local-completions model against the server")
        from distill.evaluation.tasks import plan_tasks

        plan = plan_tasks(tasks)
    for flag, value in (("--draft-tokens", draft_tokens), ("--draft-prompts", draft_prompts),
                        ("--draft-new-tokens", draft_new_tokens)):
        if draft and value < 1:
            raise DistillError(f"{flag} must be at least 1, not {value}", where=flag, fix="give a positive number")
    if draft and teacher_endpoint:
        raise DistillError("--draft runs the teacher locally, which --teacher-endpoint does not",
                           where="--draft with --teacher-endpoint",
                           fix="pass the teacher as --teacher (a directory, GGUF file or hub id)")
    s = load_model(student)
    if teacher_endpoint:  # --teacher is then the served model's tokenizer, as a local spec
        from distill.models.loading import load_tokenizer

        spec: TeacherBase = ServedTeacherConfig(kind="served", endpoint=teacher_endpoint, tokenizer=teacher,
                                                model=teacher_model or teacher, top_k=top_k)
        t, t_tok = None, load_tokenizer(spec.local_spec)
        vocab = check_compatible(t_tok, s.tokenizer, None, s.model)
    else:
        spec = LiveTeacherConfig(model=teacher)
        t = load_model(teacher)
        t_tok = t.tokenizer
        if draft:  # before the (slower) compatibility figures: a draft needs the very same tokenizer
            from distill.evaluation.draft import check_draft_tokenizer

            check_draft_tokenizer(t.tokenizer, s.tokenizer)
        vocab = check_compatible(t.tokenizer, s.tokenizer, t.model, s.model)
    if teacher_precision != "fp32" and teacher_endpoint:
        raise DistillError("--teacher-precision applies to a local teacher", where="--teacher-precision",
                           fix="drop --teacher-precision with --teacher-endpoint")
    exact = open_source(spec, TeacherInputs(None, t, None, t_tok, None, None, where="--teacher-endpoint"), "heldout")
    try:
        source, precision = exact, None
        if teacher_precision != "fp32":
            source = LiveTeacher(scoring_teacher(t.model, precision=teacher_precision), vocab)
        sets, prompts, draft_sets = [], [], []
        for path in datasets:
            corpus = load_corpus(DataConfig(path=path, seq_len=seq_len), t_tok)
            seqs = corpus.heldout[:sequences]
            if source is not exact and precision is None:
                precision = fidelity(exact, source, seqs, t_tok.pad_token_id, teacher_precision, batch_size,
                                     chunk_size)
            sets.append(_score_set(corpus.description, seqs, s.model, source, vocab, t_tok.pad_token_id, batch_size,
                                   chunk_size))
            prompts = prompts or [t_tok.decode(seqs[i]["input_ids"][:48]) for i in range(min(gen_prompts, len(seqs)))]
            draft_sets.append((corpus.description, [list(map(int, q["input_ids"][:48])) for q in seqs[:draft_prompts]]))
    finally:
        close_source(exact)  # a served teacher's thread pool and HTTP client
    first = sets[0]
    report = {"data": first["data"], "tokens_scored": first["tokens_scored"]}
    report["student"] = _side(s, first["student_ppl"], prompts)
    if t is not None:
        report["teacher"] = _side(t, first["teacher_ppl"], prompts)
        report["teacher"]["precision"] = precision.to_dict() if precision else {"precision": "fp32"}
    else:
        report["teacher"] = {"model": f"{exact.client.base} {exact.client.model}", "parameters": None,
                             "size_bytes": None, "disk_format": None, "bf16_bytes": None,
                             "heldout_ppl": first["teacher_ppl"], "gen_tokens_per_s": None,
                             "signal": f"served top-{top_k} + one bucket for the rest"}
    report["student"]["kl_teacher_student"] = first["kl_teacher_student"]
    report["student"]["top1_agreement"] = first["top1_agreement"]
    T, S = report["teacher"], report["student"]
    ratio = lambda a, b: None if a is None or b is None else a / max(b, 1e-9)  # noqa: E731
    report["retention"] = {
        "parameters": ratio(S["parameters"], T["parameters"]),
        "size": ratio(S["bf16_bytes"], T["bf16_bytes"]),  # like with like: both at 2 bytes per parameter
        "size_on_disk": ratio(S["size_bytes"], T["size_bytes"]) if S["disk_format"] == T["disk_format"] else None,
        "ppl_ratio": first["ppl_ratio"],
        "speedup": ratio(S["gen_tokens_per_s"], T["gen_tokens_per_s"]),
        "top1_agreement": S["top1_agreement"],
    }
    report["sets"] = sets
    if draft:
        from distill.evaluation.draft import measure_draft

        report["draft"] = [{"data": desc, **measure_draft(t.model, s.model, ids, t_tok.pad_token_id,
                                                          new_tokens=draft_new_tokens, draft_tokens=draft_tokens,
                                                          sample=sample)}
                           for desc, ids in draft_sets for sample in (False, True)]
    if plan is not None:
        from distill.evaluation.tasks import primary_metric, run_tasks

        report["tasks"] = run_tasks(plan, t.model, t.tokenizer, s.model, s.tokenizer, limit=task_limit,
                                    batch_size=task_batch_size)
        report["retention"]["tasks"] = {
            row["task"]: row["metrics"][m]["retention"] if (m := primary_metric(row)) else None
            for row in report["tasks"]["results"]}
    return report


@torch.no_grad()
def _score_set(description: str, seqs: list, student, source, vocab: int, pad_id: int, batch_size: int,
               chunk_size: int) -> dict:
    """One held-out set's figures: both perplexities, KL(teacher‖student), top-1 agreement, tokens scored."""
    sums = {"t_nll": 0.0, "s_nll": 0.0, "kl": 0.0, "agree": 0, "tokens": 0}
    for start in range(0, len(seqs), batch_size):
        ids = list(range(start, min(start + batch_size, len(seqs))))
        batch = collate([seqs[i] for i in ids], pad_id, ids)
        positions = scored_positions(batch)
        targets = batch["targets"].reshape(-1).index_select(0, positions)
        signal = source.signal(batch, positions)
        h = student.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hs = h.last_hidden_state.reshape(-1, h.last_hidden_state.shape[-1]).index_select(0, positions)
        part = evaluate_chunks(hs, student.get_output_embeddings().weight[:vocab], signal, targets, chunk_size)
        sums["t_nll"] += _teacher_nll(source, signal, batch, positions, targets, chunk_size)
        sums["s_nll"] += part["nll_sum"]
        sums["kl"] += part["kl_sum"]
        sums["agree"] += part["agree"]
        sums["tokens"] += part["tokens"]
    n = max(sums["tokens"], 1)
    t_ppl, s_ppl = math.exp(min(sums["t_nll"] / n, 50)), math.exp(min(sums["s_nll"] / n, 50))
    return {"data": description, "tokens_scored": sums["tokens"], "teacher_ppl": t_ppl, "student_ppl": s_ppl,
            "kl_teacher_student": sums["kl"] / n, "top1_agreement": sums["agree"] / n, "ppl_ratio": s_ppl / t_ppl}


def _side(m, ppl: float, prompts: list[str]) -> dict:
    params = param_count(m.model)
    return {"model": m.info.name, "parameters": params, "size_bytes": size_on_disk(m.info),
            "disk_format": disk_format(m.info), "bf16_bytes": 2 * params,
            "heldout_ppl": ppl, "gen_tokens_per_s": generation_speed(m.model, m.tokenizer, prompts)}


def _teacher_nll(source, signal, batch, positions, targets, chunk_size: int) -> float:
    """The teacher's summed NLL of the actual next tokens: from its own logits (live), or the log-probability the
    server sent for each of them (served)."""
    if isinstance(signal, DenseSignal):
        return evaluate_chunks(signal.hidden, signal.head, DenseSignal(signal.hidden, signal.head), targets,
                               chunk_size)["nll_sum"]
    lengths = batch["attention_mask"].sum(1).tolist()
    rows = [tuple(batch["input_ids"][b, :n].tolist()) for b, n in enumerate(lengths)]
    B, T = batch["input_ids"].shape
    flat = torch.full((B, T), math.nan)
    for b, (n, sc) in enumerate(zip(lengths, source.scores(rows), strict=True)):
        flat[b, :n] = sc.target_logprobs
    got = flat.reshape(-1).index_select(0, positions)
    if torch.isnan(got).any():
        raise DistillError("the teacher server did not send the log-probability of the actual prompt tokens",
                           where="--teacher-endpoint", fix="serve the teacher with vLLM or `distill serve`")
    return float(-got.sum())


def format_report(r: Mapping[str, Any]) -> str:
    T, S, R = r["teacher"], r["student"], r["retention"]
    rows = [
        ("parameters", _fmt(T["parameters"], "{:.1f} M", 1e6), _fmt(S["parameters"], "{:.1f} M", 1e6),
         _fmt(R["parameters"], "{:.1%}")),
        ("size at bf16", _fmt(T["bf16_bytes"], "{:.1f} MiB", 2**20), _fmt(S["bf16_bytes"], "{:.1f} MiB", 2**20),
         _fmt(R["size"], "{:.1%}")),
        ("file on disk", _on_disk(T), _on_disk(S), _fmt(R.get("size_on_disk"), "{:.1%}")),
        ("held-out perplexity", f"{T['heldout_ppl']:.2f}", f"{S['heldout_ppl']:.2f}", f"×{R['ppl_ratio']:.2f}"),
        ("KL(teacher‖student)/token", "0", f"{S['kl_teacher_student']:.4f}", ""),
        ("top-1 agreement", "100%", f"{S['top1_agreement']:.1%}", ""),
        ("greedy tokens/s", _fmt(T["gen_tokens_per_s"], "{:.1f}"), _fmt(S["gen_tokens_per_s"], "{:.1f}"),
         _fmt(R["speedup"], "×{:.2f}")),
    ]
    note = f"\nTeacher: {T['model']} ({T['signal']})" if T.get("signal") else ""
    if T.get("precision", {}).get("precision", "fp32") != "fp32":
        note += "\n" + Fidelity(**T["precision"]).describe()
    out = f"Data: {r['data']} ({r['tokens_scored']} tokens scored){note}\n" + _table(rows)
    for extra in r.get("sets", [])[1:]:
        out += "\n\n" + _format_set(extra)
    if r.get("draft"):
        out += "\n\n" + _format_draft(r["draft"])
    if r.get("tasks"):
        out += "\n\n" + _format_tasks(r["tasks"])
    return out


def _format_draft(blocks: list[dict]) -> str:
    """The speculative-decoding block: per set and decoding, accepted tokens per round, rate and speed-up."""
    rows = [(b["data"][:40], b["decoding"], f"{b['mean_accepted_per_round']:.2f}", f"{b['acceptance_rate']:.1%}",
             f"×{b['speedup']:.2f}", "—" if "identical_to_teacher" not in b else
             f"{b['identical_to_teacher']}/{b['prompts']}") for b in blocks]
    k = blocks[0]["draft_tokens"]
    return (f"Student as draft model (speculative decoding of the teacher, {k} drafted tokens per round, "
            f"{blocks[0]['new_tokens'] // max(blocks[0]['prompts'], 1)} new tokens per prompt)\n"
            + _table(rows, ("data", "decoding", "accepted/round", "acceptance", "speed-up", "= teacher output")))


def _format_tasks(block: dict) -> str:
    """The lm-eval block: one row per task and metric, value ± standard error, and retention."""
    rows = [(f"{row['task']} {name}", "—" if row["docs"] is None else str(row["docs"]),
             _score(m["teacher"], m["teacher_stderr"]), _score(m["student"], m["student_stderr"]),
             _fmt(m["retention"], "{:.1%}"))
            for row in block["results"] for name, m in row["metrics"].items()]
    limit = f", at most {block['limit']} documents each" if block.get("limit") else ""
    sec = block.get("seconds") or {}
    took = f"; {sec['teacher']:.0f} s teacher, {sec['student']:.0f} s student" if sec else ""
    return (f"Tasks ({block['harness']}{limit}{took}; score ± standard error)\n"
            + _table(rows, ("task metric", "docs", "teacher", "student", "student/teacher")))


def _score(value: float | None, stderr: float | None) -> str:
    """A share (accuracy, exact match) as a percentage, anything else (a perplexity) as a number; ± its error."""
    if value is None:
        return "—"
    if 0 <= value <= 1:
        return f"{value:.1%}" + ("" if stderr is None else f" ± {stderr:.1%}")
    return f"{value:.4g}" + ("" if stderr is None else f" ± {stderr:.2g}")


def _format_set(x: dict) -> str:
    """One more held-out set's block (the first set is the main table)."""
    rows = [("held-out perplexity", f"{x['teacher_ppl']:.2f}", f"{x['student_ppl']:.2f}", f"×{x['ppl_ratio']:.2f}"),
            ("KL(teacher‖student)/token", "0", f"{x['kl_teacher_student']:.4f}", ""),
            ("top-1 agreement", "100%", f"{x['top1_agreement']:.1%}", "")]
    return f"Data: {x['data']} ({x['tokens_scored']} tokens scored)\n" + _table(rows)


def _table(rows: list[tuple], head: tuple = ("metric", "teacher", "student", "student/teacher")) -> str:
    w = [max(len(str(row[i])) for row in [*rows, head]) for i in range(len(head))]
    lines = [" | ".join(h.ljust(w[i]) for i, h in enumerate(head)), "-+-".join("-" * v for v in w)]
    lines += [" | ".join(str(c).ljust(w[i]) for i, c in enumerate(row)) for row in rows]
    return "\n".join(lines)


def _on_disk(side: dict) -> str:
    """The file size with its format: "93.8 MiB gguf q4_1" (sizes of different formats are not compared)."""
    if side.get("size_bytes") is None:
        return "—"
    return f"{side['size_bytes'] / 2**20:.1f} MiB" + (f" {side['disk_format']}" if side.get("disk_format") else "")


def _fmt(value, spec: str, scale: float = 1.0) -> str:
    return "—" if value is None else spec.format(value / scale)

"""Retention on tasks: the teacher and the student through lm-evaluation-harness (`distill eval --tasks`).

Both already-loaded models go to `lm_eval.simple_evaluate` as `HFLM(pretrained=model, tokenizer=...)`, one after
the other, on the same tasks, limit and seeds; the report keeps each metric ± its standard error and the student's
share of the teacher's (retention). `--tasks` takes comma-separated task names (lm-eval's own, which download their
data from the Hugging Face hub on first use, and the bundled offline `distill_*` tasks), task YAML files and
folders of them (lm-eval's format; a relative `data_files` path is read from the working directory, as lm-eval
does). lm-eval is the optional extra `distill[eval]`.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distill.errors import DistillError

LM_EVAL_VERSION = "0.4.13"  # the version `distill[eval]` pins
BUNDLED_DIR = Path(__file__).with_name("bundled_tasks")
BUNDLED = ("distill_shakespeare_next_line", "distill_chatterbot_qa")
BUNDLED_TAG = "distill_bundled"  # both bundled tasks, as one lm-eval tag
_LEAF_KINDS = {"TASK", "PY_TASK"}
_INSTALL = "run `pip install 'distill[eval]'` (lm-eval==0.4.13) or `make venv`"


@dataclass
class TaskPlan:
    """What `--tasks` resolved to: lm-eval task (or group) names, in the order asked, and the manager that knows
    them (the bundled folder, the folders given, and lm-eval's own tasks only when a name needs them)."""

    names: list[str]
    manager: Any = field(repr=False)
    spec: str = ""


def require_lm_eval():
    """The `lm_eval` module, or a one-paragraph error saying how to install it."""
    try:
        import lm_eval
    except ImportError as e:
        raise DistillError("`distill eval --tasks` needs lm-evaluation-harness, which is not installed",
                           where="--tasks", fix=_INSTALL) from e
    if getattr(lm_eval, "__version__", LM_EVAL_VERSION) != LM_EVAL_VERSION:
        logging.getLogger(__name__).warning("lm-eval %s is installed; Distill is tested with %s",
                                            lm_eval.__version__, LM_EVAL_VERSION)
    return lm_eval


def plan_tasks(spec: str) -> TaskPlan:
    """Resolve `--tasks` before any model loads: unknown names and missing files are refused here."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

    items = [x.strip() for x in spec.split(",") if x.strip()]
    if not items:
        raise DistillError("--tasks names no task", where="--tasks",
                           fix=f"give task names, e.g. --tasks {BUNDLED_TAG} (the bundled tasks), or a task YAML "
                               "file or folder")
    folders: list[Path] = [BUNDLED_DIR]
    wanted: list[tuple[str, Path | None]] = []  # (name, or the file/folder to take names from)
    for item in items:
        p = Path(item).expanduser()
        if p.exists() or p.suffix.lower() in (".yaml", ".yml") or "/" in item:
            if not p.exists():
                raise DistillError(f"task file or folder not found: {item}", where="--tasks",
                                   fix="check the path (an lm-eval task YAML file, or a folder of them)")
            p = p.resolve()
            folders.append(p if p.is_dir() else p.parent)
            wanted.append(("", p))
        else:
            wanted.append((item, None))
    manager = TaskManager(include_path=[str(f) for f in dict.fromkeys(folders)], include_defaults=False)
    if any(name and name not in manager.all_tasks for name, _ in wanted):
        with _quiet():  # lm-eval's own task index: every YAML it ships (some seconds)
            manager = TaskManager(include_path=[str(f) for f in dict.fromkeys(folders)])
    names: list[str] = []
    for name, path in wanted:
        names += [name] if name else _defined_in(manager, path)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        near = [m for n in unknown for m in difflib.get_close_matches(n, manager.all_tasks, n=3, cutoff=0.75)]
        raise DistillError(f"unknown task(s): {', '.join(unknown)}" + (f" (did you mean {', '.join(near)}?)"
                                                                        if near else ""), where="--tasks",
                           fix=f"use a name that `lm-eval ls tasks` lists, a bundled task ({', '.join(BUNDLED)}, or "
                               f"{BUNDLED_TAG} for both), "
                               "or the path of an lm-eval task YAML file or folder")
    plan = TaskPlan(list(dict.fromkeys(names)), manager, spec)
    _check_loads(plan)
    return plan


def _check_loads(plan: TaskPlan) -> None:
    """Build the tasks once (their data loaded, and cached by `datasets`), so a task that cannot load fails before
    any model does."""
    try:
        with _quiet():
            plan.manager.load(plan.names)
    except Exception as e:  # noqa: BLE001 - any failure of a task's data or YAML is the user's to fix
        raise DistillError(f"lm-eval could not load the task(s) {', '.join(plan.names)}: {type(e).__name__}: "
                           f"{(str(e).splitlines() or [''])[0][:300]}", where=f"--tasks {plan.spec}",
                           fix="tasks such as hellaswag and arc_easy download their data from the Hugging Face hub "
                               "on first use: run once with network (it is cached), or use local task YAML files "
                               "(the bundled ones work offline); a relative data_files path is read from the "
                               "working directory") from e


def _defined_in(manager, path: Path) -> list[str]:
    """The tasks a YAML file defines (its task or group), or every leaf task of the YAML files in a folder."""
    entries = [(n, e) for n, e in manager.task_index.items() if e.yaml_path is not None]
    if path.is_dir():
        got = [n for n, e in entries
               if e.kind.name in _LEAF_KINDS and Path(e.yaml_path).resolve().is_relative_to(path)]
    else:
        got = [n for n, e in entries if Path(e.yaml_path).resolve() == path]
    if not got:
        raise DistillError(f"no lm-eval task found in {path}", where="--tasks",
                           fix="give YAML files with a `task:` (or `group:`) key in lm-eval's task format")
    return sorted(got)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """lm-eval's INFO and WARNING lines (one per task and model, e.g. about passing a loaded model) hidden."""
    log = logging.getLogger("lm_eval")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def evaluate_model(plan: TaskPlan, model, tokenizer, *, limit: int | None = None, batch_size: int = 8) -> dict:
    """One model's lm-eval results (`results`, `n-samples`, ...) on the plan's tasks, through `simple_evaluate`."""
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    with _quiet():
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        return lm_eval.simple_evaluate(lm, tasks=list(plan.names), task_manager=plan.manager, limit=limit,
                                       log_samples=False)


def metrics(result: dict) -> dict[str, float | None]:
    """One task's entry of lm-eval's `results` as {metric: value, metric_stderr: value} (filter `none` only;
    another filter's metrics get it as a suffix, e.g. `exact_match/strict-match`)."""
    out: dict[str, float | None] = {}
    for key, value in result.items():
        metric, sep, filt = key.partition(",")
        if not sep or isinstance(value, (list, dict)):
            continue
        name = metric if filt in ("none", "") else f"{metric}/{filt}"
        if metric.endswith("_stderr"):
            base = metric[: -len("_stderr")]
            name = (base if filt in ("none", "") else f"{base}/{filt}") + "_stderr"
        out[name] = float(value) if isinstance(value, (int, float)) else None
    return out


def compare(teacher: dict, student: dict) -> list[dict]:
    """The teacher's and the student's lm-eval results side by side: for each task (in lm-eval's order), every
    metric with both values, their standard errors, and retention = student / teacher (None if the teacher
    scores 0)."""
    rows = []
    for task, t_res in teacher["results"].items():
        s_res = student["results"].get(task, {})
        t_m, s_m = metrics(t_res), metrics(s_res)
        per_metric = {}
        for name, t_val in t_m.items():
            if name.endswith("_stderr") or t_val is None:
                continue
            s_val = s_m.get(name)
            per_metric[name] = {"teacher": t_val, "teacher_stderr": t_m.get(f"{name}_stderr"), "student": s_val,
                                "student_stderr": s_m.get(f"{name}_stderr"),
                                "retention": None if s_val is None or t_val == 0 else s_val / t_val}
        docs = (teacher.get("n-samples") or {}).get(task, {}).get("effective")
        rows.append({"task": task, "docs": docs, "metrics": per_metric})
    return rows


def run_tasks(plan: TaskPlan, teacher, teacher_tokenizer, student, student_tokenizer, *, limit: int | None = None,
              batch_size: int = 8) -> dict:
    """The report's `tasks` block: lm-eval's version, the limit, each model's wall-clock seconds, and `compare`'s
    rows."""
    t0 = time.perf_counter()
    t = evaluate_model(plan, teacher, teacher_tokenizer, limit=limit, batch_size=batch_size)
    t1 = time.perf_counter()
    s = evaluate_model(plan, student, student_tokenizer, limit=limit, batch_size=batch_size)
    seconds = {"teacher": t1 - t0, "student": time.perf_counter() - t1}
    return {"harness": f"lm-eval {t.get('lm_eval_version') or LM_EVAL_VERSION}", "limit": limit,
            "n_shot": t.get("n-shot", {}), "seconds": seconds, "results": compare(t, s)}


def primary_metric(row: dict) -> str | None:
    """The metric a task is summed up by: acc_norm where lm-eval reports it (the length-normalized choice, the
    headline figure of hellaswag, arc and the bundled tasks, whose wrong answers differ in length), else acc, else
    the first one reported."""
    names = list(row["metrics"])
    return next((m for m in ("acc_norm", "acc") if m in names), names[0] if names else None)

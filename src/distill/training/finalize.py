"""Writing the finished student: a normal Hugging Face model directory with a model card, loss plot,
metrics and signed lineage. Everything is written to a temporary directory and renamed when complete.

The weights are written in `output.dtype` (bf16 by default) from a converted copy; the model in memory stays fp32,
and so do the resumable checkpoints (`checkpoint.py`), whatever `output.dtype` says.

A LoRA student is written merged (its adapters folded into the weights); with `student.lora.save_adapter` the
adapter is also written alone in `adapter/` (with the base it applies to in `adapter/base/` when that base
exists nowhere else: a fresh or layer-subset student, or a GGUF one), and lineage records both."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
import yaml

from distill.config import DistillConfig
from distill.data.corpus import Corpus
from distill.fileio import shareable
from distill.models import lora
from distill.models.loading import ModelInfo, weights_sha256
from distill.models.student_init import student_init
from distill.models.students import param_count

log = logging.getLogger(__name__)


def plot_history(history: list[dict], path: Path) -> bool:
    """PNG of the loss terms and held-out KL over steps."""
    if not history:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["step"] for r in history]
    for key, label in (("loss", "total"), ("kd", "KD term"), ("ce", "CE term")):
        if any(r.get(key) for r in history):
            ax[0].plot(steps, [r[key] for r in history], label=label)
    ax[0].set_xlabel("step")
    ax[0].set_title("training loss")
    ax[0].legend()
    ev = [r for r in history if "heldout_kl" in r or "heldout_nll" in r]
    key = "heldout_kl" if any("heldout_kl" in r for r in ev) else "heldout_nll"
    ax[1].plot([r["step"] for r in ev], [r.get(key) for r in ev], marker="o")
    ax[1].set_xlabel("step")
    ax[1].set_title("held-out KL(teacher‖student)" if key == "heldout_kl" else "held-out NLL")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def model_card(name: str, cfg: DistillConfig, teacher: ModelInfo, corpus: Corpus, final: dict, params: int,
               lineage_md: str, notices: list[str], has_plot: bool) -> str:
    figures = "\n".join(f"| {k} | {v:.4g} |" for k, v in final.items()
                        if isinstance(v, float) and k not in ("time", "lr"))
    notice_md = "\n".join(f"> {n}" for n in notices)
    plot = "![loss curves](loss.png)\n" if has_plot else ""
    return f"""---
library_name: transformers
tags: [distill, knowledge-distillation]
base_model_relation: distillation
---
# {name}

{notice_md}

A {params / 1e6:.1f} M-parameter student distilled with [Distill](https://pypi.org/project/distill/) from
**{teacher.name}** ({teacher.kind}: `{teacher.path}`).

- Data: {corpus.description}
- Loss: {cfg.loss.kind} (T={cfg.loss.temperature}, KD weight {cfg.loss.kd_weight}, CE weight {cfg.loss.ce_weight})
- Steps: {cfg.train.steps} × {cfg.train.batch_size * cfg.train.grad_accum} sequences of {cfg.data.seq_len} tokens
- Weights: {cfg.output.dtype} safetensors (`output.dtype`)
{student_init(cfg).card_line(cfg, teacher)}
{lora_line(cfg)}{hidden_line(cfg)}
## Held-out figures (final step)

| metric | value |
|---|---|
{figures}

{plot}
## Lineage

{lineage_md}

## Configuration

```yaml
{yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).strip()}
```
"""


def lora_line(cfg: DistillConfig) -> str:
    """The model card's LoRA bullet (empty without LoRA)."""
    s = cfg.student.lora
    if s is None:
        return ""
    targets = s.target_modules if isinstance(s.target_modules, str) else ", ".join(s.target_modules)
    adapter = "; the adapter alone is in `adapter/`" if s.save_adapter else ""
    return f"- LoRA: r={s.r}, alpha={s.alpha} on {targets}, merged into these weights{adapter}\n"


def hidden_line(cfg: DistillConfig) -> str:
    """The model card's loss.hidden bullet (empty without it). Its projections are not in the written model:
    they live beside the student in the training module (`StudentLoss`), and only the student is saved."""
    h = cfg.loss.hidden
    if h is None:
        return ""
    layers = "auto" if h.layers == "auto" else ", ".join(f"{s}→{t}" for s, t in h.layers)
    return (f"- Intermediate-layer loss: {h.kind} (weight {h.weight}) between student and teacher layers ({layers}); "
            "the projections it trained are not part of this model\n")


def write_lora(tmp: Path, final: Path, student, cfg: DistillConfig, teacher: ModelInfo) -> dict:
    """Write `adapter/` (and `adapter/base/` when needed) for `save_adapter`; return the lineage entry."""
    s = cfg.student.lora
    entry: dict = {"r": s.r, "alpha": s.alpha, "dropout": s.dropout, "target_modules": s.target_modules,
                   "merged": True, "adapter": None}
    entry["base"], base_spec = student_init(cfg).origin(cfg, teacher)
    if not s.save_adapter:
        return entry
    if base_spec is None:  # the base exists nowhere else: write it next to the adapter
        lora.save_base(student, tmp / "adapter" / "base")
        entry["base"].update(path="adapter/base", weights_sha256=weights_sha256(tmp / "adapter" / "base"))
        base_spec = str((final / "adapter" / "base").resolve())
    lora.save_adapter(student, tmp / "adapter", base_spec)
    entry["adapter"] = {"path": "adapter", "weights_sha256": weights_sha256(tmp / "adapter"),
                        "base_model_name_or_path": base_spec}
    return entry


_DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16}


def save_weights(student, directory: Path, dtype: str) -> None:
    """The student's safetensors in `output.dtype`: a converted copy for bf16/f16, so the fp32 model in memory
    (held-out figures, callers of `train`) is untouched."""
    if dtype == "fp32":
        student.save_pretrained(directory, safe_serialization=True)
        return
    copy.deepcopy(student).to(_DTYPES[dtype]).save_pretrained(directory, safe_serialization=True)


def write_student(out_dir: Path, student, tokenizer, cfg: DistillConfig, teacher: ModelInfo, corpus: Corpus,
                  history: list[dict], verdict, replace: bool, api: dict[str, str] | None = None,
                  members: list[dict] | None = None, member_verdicts: list | None = None) -> Path:
    """Save the student as a Hugging Face directory (atomically) with card, plot, metrics and lineage.

    Several teachers: `members` (each one's name, kind, weight, model and identity) go into lineage.json with the
    policy verdict of each; the obligations of every teacher's verdict apply (`member_verdicts`: those after the
    first, whose verdict is `verdict`)."""
    from distill.provenance import lineage, policy
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    name, notices = policy.apply_obligations(verdict, cfg.student.name) if verdict else (cfg.student.name, [])
    for other in member_verdicts or []:
        name, more = policy.apply_obligations(other, name)
        notices += [n for n in more if n not in notices]
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        extra = {"lora": write_lora(tmp, out_dir, student, cfg, teacher)} if lora.is_lora(student) else None
        if members:
            verdicts = [verdict, *(member_verdicts or [])]
            extra = {**(extra or {}), "teachers": [{**m, "verdict": v.to_dict()}
                                                   for m, v in zip(members, verdicts, strict=True)]}
        student = lora.merged(student)  # in place: the adapters are folded into the weights
        student.config.name_or_path = name
        save_weights(student, tmp, cfg.output.dtype)
        tokenizer.save_pretrained(tmp)
        with open(tmp / "metrics.jsonl", "w") as f:
            for row in history:
                f.write(json.dumps(row) + "\n")
        has_plot = plot_history(history, tmp / "loss.png")
        final = {k: v for k, v in (history[-1] if history else {}).items() if k != "time"}
        record = lineage.build_record(
            student_name=name, teacher=None if api else teacher, api=api, verdict=verdict, config=cfg.model_dump(mode="json"),
            data={"name": cfg.data.path, "description": corpus.description, "sha256": corpus.fingerprint,
                  **corpus.stats},
            evaluation=final, extra=extra)
        card = model_card(name, cfg, teacher, corpus, final, param_count(student), lineage.card_section(record),
                          notices, has_plot)
        (tmp / "README.md").write_text(card)
        texts = [policy.notice_text(v) for v in [verdict, *(member_verdicts or [])] if v is not None]
        if notice := "\n\n".join(dict.fromkeys(t for t in texts if t)):
            (tmp / "NOTICE").write_text(notice)
        from distill.keys.signing import resolve_signing_key

        lineage.write_lineage(tmp, record, resolve_signing_key(cfg.signing_key))
        shareable(tmp)
        if out_dir.exists():
            if not replace:
                raise FileExistsError(out_dir)
            old = out_dir.with_name(out_dir.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("student written to %s", out_dir)
    return out_dir

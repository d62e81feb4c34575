"""Distill: language-model distillation, white-box and black-box, with accountability built in.

The Python API is what the CLI calls: seven verbs, each taking the run's `DistillConfig` or one small settings object
(pydantic, every field documented) and returning a documented result::

    import distill
    cfg = distill.load_config("examples/demo.yaml")
    plan = distill.plan(cfg)                                    # RunPlan: memory per rank, fits, advice
    result = distill.train(cfg)                                 # TrainResult: output_dir, final_eval, history
    report = distill.evaluate(distill.EvalSettings(student=result.output_dir))            # EvalReport
    record = distill.export(distill.ExportSettings(student=result.output_dir, quant="q8_0", out="s-q8_0.gguf"))
    pruned = distill.prune(distill.PruneSettings(out="runs/pruned", target_params=0.5))  # PruneOutput
    store = distill.capture(distill.CaptureSettings(data=cfg.data, out="runs/store"))    # CaptureResult
    answers = distill.collect(distill.GenerateSettings(endpoint="http://127.0.0.1:8000/v1", model="default",
                                                       out="runs/gen1", prompts="prompts.jsonl"))  # GenerateResult

| verb | takes | gives | CLI |
|---|---|---|---|
| `train` | `DistillConfig` (+ `resume`, `overwrite`, `callbacks`) | `TrainResult` | `distill train` |
| `evaluate` | `EvalSettings` | `EvalReport` | `distill eval` |
| `capture` | `CaptureSettings` | `CaptureResult` | `distill capture` |
| `prune` | `PruneSettings` | `PruneOutput` | `distill prune` |
| `plan` | `DistillConfig` (+ `world`, `device`, `device_memory`) | `RunPlan` | `distill plan` |
| `export` | `ExportSettings` | the export record (dict) | `distill export` |
| `collect` | `GenerateSettings` | `GenerateResult` | `distill generate` (not named `generate`: that is the package) |
"""

from __future__ import annotations

__version__ = "0.1.0"

# The public API, imported lazily so `import distill` stays fast and torch-free until a name is used:
# name → (module, attribute). No module is named like the name it provides, so importing a module never rebinds it.
_API = {
    "load_config": ("distill.config", "load_config"),
    "DistillConfig": ("distill.config", "DistillConfig"),
    "load_model": ("distill.models.loading", "load_model"),
    "train": ("distill.training.loop", "train"),
    "TrainResult": ("distill.training.loop", "TrainResult"),
    "evaluate": ("distill.evaluation.report", "evaluate"),
    "EvalSettings": ("distill.evaluation.settings", "EvalSettings"),
    "EvalReport": ("distill.evaluation.report", "EvalReport"),
    "capture": ("distill.store.capture", "run_capture"),
    "CaptureSettings": ("distill.store.capture", "CaptureSettings"),
    "CaptureResult": ("distill.store.capture", "CaptureResult"),
    "prune": ("distill.models.pruned", "prune"),
    "PruneSettings": ("distill.models.pruned", "PruneSettings"),
    "PruneOutput": ("distill.models.pruned", "PruneOutput"),
    "plan": ("distill.training.memory", "plan_run"),
    "RunPlan": ("distill.training.memory", "RunPlan"),
    "export": ("distill.deploy.export", "export"),
    "ExportSettings": ("distill.deploy.export", "ExportSettings"),
    "collect": ("distill.generate.collect", "collect"),
    "GenerateSettings": ("distill.generate.settings", "GenerateSettings"),
    "GenerateResult": ("distill.generate.collect", "GenerateResult"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'distill' has no attribute {name!r}")
    import importlib

    module, attribute = _API[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip __getattr__
    return value

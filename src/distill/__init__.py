"""Distill: language-model distillation, white-box and black-box, with accountability built in.

The Python API mirrors the CLI::

    import distill
    cfg = distill.load_config("examples/demo.yaml")
    result = distill.train(cfg)
    report = distill.evaluate(teacher="default", student=result.output_dir, data="shakespeare")
    record = distill.export(result.output_dir, format="gguf", quant="q8_0", out="student-q8_0.gguf")
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_config", "train", "evaluate", "load_model", "export"]


# The public API, imported lazily so `import distill` stays fast and torch-free until a name is used. Each
# name lives in a module whose own name differs from it, so importing that module never rebinds the name.
_API = {
    "load_config": "distill.config",
    "train": "distill.training.loop",
    "evaluate": "distill.evaluation.report",
    "load_model": "distill.models.loading",
    "export": "distill.deploy.export",
}


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'distill' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value

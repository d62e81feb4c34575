"""Distill: language-model distillation, white-box and black-box, with accountability built in.

The Python API mirrors the CLI::

    import distill
    cfg = distill.load_config("examples/demo.yaml")
    result = distill.train(cfg)
    report = distill.evaluate(teacher="default", student=result.output_dir, data="shakespeare")
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_config", "train", "evaluate", "load_model"]


def __getattr__(name: str):  # lazy: `import distill` stays fast and torch-free until needed
    if name == "load_config":
        from distill.config import load_config

        return load_config
    if name == "train":
        from distill.trainer import train

        return train
    if name == "evaluate":
        from distill.evaluate import evaluate

        return evaluate
    if name == "load_model":
        from distill.models import load_model

        return load_model
    raise AttributeError(name)

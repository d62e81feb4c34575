"""The bundled tasks' loader: their JSONL next to this file, found from wherever lm-eval runs.

The task YAMLs name it as `custom_dataset: !function data.load` (lm-eval imports this file by its path), so the
bundled tasks work from any working directory, with `distill eval --tasks` or with plain `lm-eval --include_path`.
"""

from __future__ import annotations

from pathlib import Path


def load(data_file: str, **_: object):
    """The task's documents as a `datasets.DatasetDict` with one `test` split."""
    import datasets

    return datasets.load_dataset("json", data_files={"test": str(Path(__file__).with_name(data_file))})

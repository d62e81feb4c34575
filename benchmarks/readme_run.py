"""Run README.md's shell blocks in order, in a fresh clone, and record each command and its exit code.

    python -m benchmarks.readme_run                    # as written: `make demo` builds the clone's own .venv
    python -m benchmarks.readme_run --smoke            # smallest sizes, with this checkout's environment

The clone is made with `git clone` from this repository's HEAD (commit what you want run). Each ```bash block runs in
its own bash process in the clone (with the environment's bin/ first on PATH, as after `. .venv/bin/activate`); its
statements (a line, its continuation lines, or a whole for/until/if compound) run one after the other and each one's
exit status and seconds are recorded; a failing statement ends its block and the run. Whatever a block left running
(a server) is stopped with its process group when the block ends.

--smoke keeps every command but makes it small: `distill train` gets `--set train.steps=2 --set train.eval_every=2`
(documented config fields), and the options named in SMOKE below are lowered (eval/export sequences, generated
tokens and prompts, pruning calibration). `make demo` runs the Makefile's demo recipe with those overrides against
the existing environment (--venv), and `make test` is not run (it is the test suite; run it on its own).

Writes benchmarks/results/readme/readme_run[_smoke].json and .md (the commands as written and as run, exit codes,
seconds; the machine's provenance).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, provenance, write_result

# option -> value in --smoke, per distill subcommand (only lowered where the command already gives it, or added)
SMOKE = {
    "train": {"--set": ["train.steps=2", "train.eval_every=2"]},
    "eval": {"--sequences": "2", "--task-limit": "4"},
    "export": {"--sequences": "2"},
    "prune": {"--calibration-sequences": "4"},
    "generate": {"--limit": "3", "--max-tokens": "48", "--n": "2", "--max-turns": "2"},
}
SMOKE_ADD = {"eval": ["--sequences"], "export": ["--sequences"], "prune": ["--calibration-sequences"]}
OPENERS, CLOSERS = {"for", "while", "until", "if", "case"}, {"done", "fi", "esac"}


def bash_blocks(markdown: str) -> list[str]:
    """The bodies of the ```bash fenced blocks, in order."""
    return re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.S | re.M)


def statements(block: str) -> list[str]:
    """Split a block into statements: continuation lines joined to their line, comment and blank lines dropped, a
    compound command (for ... done) kept whole."""
    out, cur, depth = [], [], 0
    for line in block.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        cur.append(line)
        if line.rstrip().endswith("\\"):
            continue
        try:
            words = shlex.split(" ".join(cur), comments=True)
        except ValueError:  # an unclosed quote: read on
            continue
        words = [w.strip(";") for w in words]
        depth = sum(w in OPENERS for w in words) - sum(w in CLOSERS for w in words)
        if depth <= 0:
            out.append("\n".join(cur))
            cur = []
    if cur:
        out.append("\n".join(cur))
    return out


def _set_option(words: list[str], opt: str, value: str, add: bool) -> list[str]:
    for i, w in enumerate(words[:-1]):
        if w == opt:
            return [*words[: i + 1], value, *words[i + 2:]]
    return [*words, opt, value] if add else words


def smoke(statement: str, demo_recipe: list[str]) -> str | None:
    """The statement as --smoke runs it (None: not run). Each line of a `distill SUB ...` command is rewritten on its
    own words, so pipes, `&` and comments around it stay as written."""
    if re.fullmatch(r"\s*make test\b.*", statement, flags=re.S):
        return None
    if re.fullmatch(r"\s*make demo\b.*", statement, flags=re.S):
        statement = "\n".join(demo_recipe)
    joined = statement.replace("\\\n", " ")
    out = []
    for line in joined.split("\n"):
        out.append(_smoke_line(line))
    return "\n".join(out)


def _smoke_line(line: str) -> str:
    m = re.search(r"\bdistill (train|eval|export|prune|generate)\b", line)
    if not m:
        return line
    code, comment = line, ""
    if " #" in line:  # trailing comment: keep it apart
        code, comment = line.split(" #", 1)
        comment = " #" + comment
    tail = ""
    if "--help" in code or "--help-config" in code:
        return line
    for sep in (" & ", " && ", " || ", " | ", "; "):
        if sep in code[m.end():]:
            k = code.index(sep, m.end())
            code, tail = code[:k], code[k:]
            break
    if code.rstrip().endswith("&"):
        code, tail = code.rstrip()[:-1], " &" + tail
    head, words = code[: m.start()], shlex.split(code[m.start():])
    sub = m.group(1)
    for opt, value in SMOKE[sub].items():
        if opt == "--set":
            for kv in value:
                words += ["--set", kv]
        else:
            words = _set_option(words, opt, value, opt in SMOKE_ADD.get(sub, []))
    return head + shlex.join(words) + tail + comment


def demo_recipe(makefile: str) -> list[str]:
    """The Makefile's `demo:` recipe, `$(BIN)/` dropped (the environment's bin/ is first on PATH)."""
    lines = makefile.split("\ndemo:", 1)[1].splitlines()[1:]
    recipe = []
    for line in lines:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(BIN)/", ""))
    return recipe


def run_block(index: int, stmts: list[tuple[str, str | None]], clone: Path, env: dict, timeout: float) -> dict:
    """Run one block's statements in one bash process; return what each did."""
    rc_file = clone.parent / f"rc-{index}.txt"
    script = ["set -o pipefail", f"__rec() {{ printf '%s %s %s\\n' \"$1\" \"$2\" \"$3\" >> {shlex.quote(str(rc_file))}; }}"]
    for k, (_, as_run) in enumerate(stmts):
        if as_run is None:
            continue
        script += ["__t=$EPOCHREALTIME", "{ " + as_run, "}", f"__rc=$?; __rec {k} $__rc $__t",
                   "[ $__rc -eq 0 ] || exit $__rc"]
    log = clone.parent / f"block-{index}.log"
    t0 = time.time()
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=clone, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = "timeout"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # whatever the block left running: only its own group
            except ProcessLookupError:
                pass
            proc.wait()
    seconds = time.time() - t0
    done = {}
    if rc_file.exists():
        for line in rc_file.read_text().splitlines():
            k, code, start = line.split()
            done[int(k)] = (int(code), float(start.replace(",", ".")))
    rows, starts = [], sorted(v[1] for v in done.values()) + [t0 + seconds]
    for k, (written, as_run) in enumerate(stmts):
        row = {"command": written}
        if as_run is None:
            row["skipped"] = "make test is the test suite: run it on its own"
        elif k in done:
            row["rc"], start = done[k]
            later = [s for s in starts if s > start]
            row["seconds"] = round((later[0] if later else t0 + seconds) - start, 1)
            if as_run != written:
                row["as_run"] = as_run
        else:
            row["rc"] = None  # not reached: an earlier statement failed or the block timed out
            if as_run != written:
                row["as_run"] = as_run
        rows.append(row)
    tail = log.read_text(errors="replace")[-3000:] if rc not in (0,) else ""
    return {"block": index, "rc": rc, "seconds": round(seconds, 1), "statements": rows, "log_tail": tail}


def markdown(record: dict) -> str:
    p = record["provenance"]
    lines = [f"# README run ({'smoke' if record['smoke'] else 'as written'})", "",
             f"Commit {p['commit']}, {p['date']}, {p['cpu']} ({p['cpu_count']} CPUs, load at start "
             f"{p['load_average_at_start']}), torch {p['versions']['torch']}. Total {record['seconds']:.0f} s; "
             f"result: {'every block exited 0' if record['ok'] else 'FAILED'}. Command: `{p['command']}`.", "",
             "| block | command (as written in README.md) | exit | seconds |", "|---|---|---|---|"]
    for b in record["blocks"]:
        for s in b["statements"]:
            cmd = s["command"].replace("\\\n", " ").replace("\n", "; ").replace("|", "\\|")
            cmd = re.sub(r"\s+", " ", cmd)
            ex = s.get("skipped") and "skipped" or ("not reached" if s.get("rc") is None else s["rc"])
            lines.append(f"| {b['block']} | `{cmd}` | {ex} | {s.get('seconds', '')} |")
    if record["smoke"]:
        lines += ["", "Smoke sizes: each `distill` command ran with the overrides in `benchmarks/readme_run.py` "
                  "(SMOKE); the JSON beside this file has every command as run."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="smallest sizes (see the module docstring)")
    ap.add_argument("--venv", default=str(ROOT / ".venv"), help="--smoke: the environment to use (default .venv)")
    ap.add_argument("--block-timeout", type=float, default=3600, help="seconds one block may run")
    ap.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    ap.add_argument("--dry-run", action="store_true", help="print the statements as they would run, run nothing")
    ap.add_argument("--out", default=None, help="result JSON (default results/readme/readme_run[_smoke].json)")
    args = ap.parse_args()
    started = provenance()
    if args.dry_run:
        recipe = demo_recipe((ROOT / "Makefile").read_text())
        for i, block in enumerate(bash_blocks((ROOT / "README.md").read_text())):
            for s in statements(block):
                print(f"[{i}] {smoke(s, recipe) if args.smoke else s}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="readme-run-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    readme = (clone / "README.md").read_text()
    recipe = demo_recipe((clone / "Makefile").read_text())
    env = dict(os.environ, HOME=str(work / "home"), PYTHONUNBUFFERED="1")
    (work / "home").mkdir()
    env.setdefault("DISTILL_CACHE", str(Path.home() / ".cache" / "distill"))  # the dequantized teacher, not re-made
    if args.smoke:
        venv = Path(args.venv).resolve()
        if not (venv / "bin" / "distill").exists():
            raise SystemExit(f"--smoke needs an environment with Distill installed: {venv} has no bin/distill")
        (clone / ".venv").symlink_to(venv)
        env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", VIRTUAL_ENV=str(venv), PYTHONPATH=str(clone / "src"))
    blocks, t0, ok = [], time.time(), True
    for i, block in enumerate(bash_blocks(readme)):
        stmts = [(s, smoke(s, recipe) if args.smoke else s) for s in statements(block)]
        res = run_block(i, stmts, clone, env, args.block_timeout)
        blocks.append(res)
        print(f"block {i}: rc {res['rc']} in {res['seconds']:.0f} s", flush=True)
        if res["rc"] != 0:
            ok = False
            print(res["log_tail"], file=sys.stderr)
            break
    record = {"smoke": args.smoke, "ok": ok, "seconds": round(time.time() - t0, 1), "blocks": blocks,
              "blocks_in_readme": len(bash_blocks(readme))}
    out = Path(args.out or RESULTS / "readme" / f"readme_run{'_smoke' if args.smoke else ''}.json")
    write_result(out, record)
    out.with_suffix(".md").write_text(markdown({**record, "provenance": started}))
    print(f"wrote {out} and {out.with_suffix('.md')}; clone: {clone if args.keep else 'removed'}")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(work)])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

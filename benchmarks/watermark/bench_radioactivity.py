"""Radioactivity end to end with the real commands: serve -> generate -> distill on mixes -> trace.

1. `distill watermark keygen` (defaults: gamma 0.25, delta 2, self-hash h 4, unless overridden).
2. `distill serve default --watermark-key K`, then `distill generate` answers to N chatterbot prompts;
   the same N prompts again from `distill serve default` without the key (the "other sources" of the mixes).
3. For X in --mixes: a generated set where X% of the prompts (a fixed random subset) carry the watermarked
   answer and the rest the plain one; X = 0 is the control. `distill train examples/blackbox.yaml` on each
   (same seed, steps, student).
4. `distill trace` on every student:
   * open, supervised: feeding exactly the watermarked answers in that student's mix (for the control: all N);
   * open, all: feeding all N watermarked answers the owner served (it need not know which were used);
   * closed: `distill serve STUDENT` and `distill trace --suspect-endpoint` with the training prompts.

    .venv/bin/python -m benchmarks.watermark.bench_radioactivity --prompts 200 --steps 150

Before the students, the teacher itself (whose weights never saw the watermark, yet predict its answers best of
all) is traced in open mode on every served answer: the check that open mode holds its level.

Writes benchmarks/results/watermark/<work folder name>.json. The work folder (default runs/radioactivity) is reused: the
generated sets resume, finished students are kept (delete the folder for a clean run).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, distill_server, write_result

DISTILL = [sys.executable, "-m", "distill.cli"]


def run(args: list[str], ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    res = subprocess.run(DISTILL + args, cwd=ROOT, text=True, capture_output=True)
    if res.returncode not in ok:
        sys.exit(f"command failed ({res.returncode}): distill {' '.join(args)}\n{res.stderr[-3000:]}")
    print(f"# distill {args[0]} {args[1] if len(args) > 1 else ''}: {time.perf_counter() - t0:.0f}s", flush=True)
    return res


def generate(url: str, prompts: Path, out: Path, max_tokens: int, temperature: float) -> list[dict]:
    run(["generate", "--endpoint", url, "--model", "default", "--prompts", str(prompts), "--out", str(out),
         "--max-tokens", str(max_tokens), "--top-logprobs", "5", "--seed", "7", "--tokenizer", "default",
         "--concurrency", "8", "--timeout", "600", "--temperature", str(temperature), "--no-progress"],
        ok=(0, 1))  # 1: some prompts gave up; the comparison uses the prompts answered in both sets
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines() if x.strip()]


def write_set(folder: Path, rows: list[dict], source: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "source.json").write_text(source.read_text())


def prompt_text(row: dict) -> str:
    return row["messages"][-1]["content"]


def trace(key: Path, extra: list[str]) -> dict:
    """`distill trace --json`; a refusal (e.g. too few units to test) is recorded, not fatal."""
    res = subprocess.run(DISTILL + ["trace", "--key", str(key), "--json", *extra], cwd=ROOT, text=True,
                         capture_output=True)
    if res.returncode != 0:
        return {"refused": res.stderr.strip().splitlines()[-1][:300]}
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=200, help="chatterbot prompts (answers per set)")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the teacher's answers")
    ap.add_argument("--steps", type=int, default=150, help="training steps per student (batch 8)")
    ap.add_argument("--mixes", default="100,25,5,0", help="watermarked percentages; 0 is the control")
    ap.add_argument("--keygen", default="", help="extra keygen flags, e.g. '--left-hash --context-width 1'")
    ap.add_argument("--closed-prompts", type=int, default=100, help="training prompts sent in closed mode")
    ap.add_argument("--student-set", default="", help="extra `distill train --set` overrides for every student, "
                    "e.g. 'student.init=layers student.every=6 train.lr=1e-3'")
    ap.add_argument("--no-innocent-teacher", action="store_true",
                    help="skip tracing the teacher itself (never trained on watermarked text) fed all answers")
    ap.add_argument("--work", default="runs/radioactivity")
    args = ap.parse_args()
    work = (ROOT / args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    key = work / "wm.key"
    if not key.exists():
        run(["watermark", "keygen", "--out", str(key), "--tokenizer", "default", *args.keygen.split()])
    from distill.protection.watermark import load_key

    scheme = load_key(key).public_dict()

    from distill.generate.prompts import chatterbot_prompts

    prompts = chatterbot_prompts()[: args.prompts]
    pfile = work / "prompts.jsonl"
    pfile.write_text("".join(json.dumps({"messages": m}) + "\n" for m in prompts))
    t0 = time.perf_counter()
    with distill_server("default", "--watermark-key", str(key)) as srv:
        wm_rows = generate(srv.api, pfile, work / "wm", args.max_tokens, args.temperature)
    with distill_server("default") as srv:
        plain_rows = generate(srv.api, pfile, work / "plain", args.max_tokens, args.temperature)
    gen_s = time.perf_counter() - t0
    wm_by = {prompt_text(r): r for r in wm_rows}
    plain_by = {prompt_text(r): r for r in plain_rows}
    common = [prompt_text({"messages": m}) for m in prompts]
    common = [p for p in common if p in wm_by and p in plain_by]
    wm_tokens = sum(r["usage"]["completion_tokens"] for r in wm_rows if "usage" in r)
    print(f"# {len(common)} prompts with both answers; {wm_tokens} watermarked answer tokens; "
          f"generation {gen_s:.0f}s", flush=True)
    order = common[:]
    random.Random(0).shuffle(order)
    all_wm = work / "wm-all"
    write_set(all_wm, [wm_by[p] for p in common], work / "wm" / "source.json")
    results: dict = {"scheme": scheme, "prompts": len(common), "watermarked_answer_tokens": wm_tokens,
                     "generation_s": round(gen_s), "steps": args.steps, "student_set": args.student_set,
                     "students": {}}
    if not args.no_innocent_teacher:
        # the strongest innocent predictor of the served answers: the teacher's own weights (no watermark in them)
        r = trace(key, ["--suspect-model", "default", "--watermarked-data", str(all_wm)])
        results["innocent_teacher"] = {k: r.get(k) for k in ("N", "S", "p_value", "log10_p_value", "refused")}
        print(json.dumps({"innocent_teacher": results["innocent_teacher"]}), flush=True)
    for x in [int(v) for v in args.mixes.split(",")]:
        chosen = set(order[: round(len(order) * x / 100)])
        mix = work / f"mix-{x}"
        write_set(mix, [wm_by[p] if p in chosen else plain_by[p] for p in common], work / "wm" / "source.json")
        used = work / f"mix-{x}-wm"
        if chosen:
            write_set(used, [wm_by[p] for p in common if p in chosen], work / "wm" / "source.json")
        student = work / f"student-{x}"
        if not (student / "model.safetensors").exists():
            run(["train", "examples/blackbox.yaml", "--overwrite", "--set", f"data.path={mix}", "--set",
                 f"output_dir={student}", "--set", f"train.steps={args.steps}", "--set", "train.progress=false",
                 "--set", "data.heldout_fraction=0.02",
                 *[a for kv in args.student_set.split() for a in ("--set", kv)]])
        res = {"watermarked_rows": len(chosen)}
        res["open_supervised"] = trace(key, ["--suspect-model", str(student), "--watermarked-data",
                                             str(used if chosen else all_wm)])
        res["open_all"] = trace(key, ["--suspect-model", str(student), "--watermarked-data", str(all_wm)])
        closed_prompts = work / "closed_prompts.txt"
        closed_prompts.write_text("\n".join(p.replace("\n", " ") for p in common[: args.closed_prompts]) + "\n")
        with distill_server(str(student), "--served-name", "suspect") as srv:
            res["closed"] = trace(key, ["--suspect-endpoint", srv.api, "--model", "suspect", "--prompts",
                                        str(closed_prompts), "--tokenizer", "default",
                                        "--max-tokens", str(args.max_tokens)])
        for mode in ("open_supervised", "open_all", "closed"):
            r = res[mode]
            res[mode] = {k: r.get(k) for k in ("N", "S", "p_value", "log10_p_value", "tested", "refused")}
            print(json.dumps({"X": x, "mode": mode, **{k: r.get(k) for k in ("N", "S", "p_value")}}), flush=True)
        results["students"][str(x)] = res
    out = RESULTS / "watermark" / f"{work.name}.json"
    write_result(out, results)
    print("\n| X (% watermarked answers) | open, supervised: N / p | open, all answers: N / p | closed: N / p |")
    print("|---|---|---|---|")
    for x, r in results["students"].items():
        cells = [f"{r[m]['N']} / {r[m]['p_value']:.2g}" if r[m]["p_value"] is not None else "refused"
                 for m in ("open_supervised", "open_all", "closed")]
        print(f"| {x}{' (control)' if x == '0' else ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

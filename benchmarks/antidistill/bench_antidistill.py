"""Antidistillation sampling: the teacher's own answer quality against how much a student distilled from them learns.

The teacher (SmolLM2-135M-Instruct) is served in process by the `distill serve` app with the server's processors
(`Protection(antidistill=AntidistillProcessor(...))`, what `distill serve --antidistill PROXY --antidistill-lambda L`
builds) and asked chatterbot prompts through `distill generate`'s client, once per sampling setting:

* plain temperature sampling at several temperatures (the baseline: a higher temperature also makes the answers
  worse to learn from, and worse for users);
* antidistillation at one temperature (`--antidistill-temperature`, inside the plain range) with several lambdas.

The proxy student is a small student of the teacher (default: the black-box student of bench_provenance.py); its
loss gradient g is taken on the teacher's greedy answers to calibration prompts. For each setting:

* teacher quality: the mean negative log-likelihood per token of the served answers under the exact teacher (T = 1,
  no bias): how far the answers are from what the teacher itself would say;
* the distilled students (`--students`): `distill train examples/blackbox.yaml` on the answers, the same steps and
  seed for every setting, starting from the proxy itself (`proxy`, student.init=pretrained: the most favourable
  case for the method, the proxy *is* the student) and/or from a fresh random init with another seed (`fresh`: a
  student unlike the proxy); then each one's KL(teacher || student) and NLL on the teacher's greedy answers to
  held-out prompts (answer tokens only), against the same model before training;
* at equal teacher quality: for each antidistillation setting, the student's KL after plain temperature sampling
  at the same teacher NLL, read off the plain-temperature curve by linear interpolation (None outside its range).

    .venv/bin/python -m benchmarks.antidistill.bench_antidistill --work /tmp/antidistill

Writes benchmarks/results/antidistill/antidistill.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import RESULTS, ROOT, write_result

DISTILL = [sys.executable, "-m", "distill.cli"]


class Switch:
    """The server's processors_for hook, switched between settings."""

    def __init__(self) -> None:
        self.procs: list = []

    def __call__(self, account: str) -> list:
        return self.procs


def collect(url: str, folder: Path, prompts: list[list[dict]], temperature: float, max_tokens: int) -> None:
    from distill.generate.client import run_generation
    from distill.generate.settings import GenerateSettings

    acct = run_generation(GenerateSettings(endpoint=url, model="default", out=str(folder), prompts=prompts,
                                           concurrency=16, max_tokens=max_tokens, temperature=temperature, seed=7,
                                           timeout_s=1200, progress=False))
    if acct.failed:
        sys.exit(f"{acct.failed} prompts failed in {folder}")


def at_equal_quality(plain: list[tuple[float, float]], nll: float) -> float | None:
    """The student KL of plain sampling at teacher NLL `nll`: linear interpolation on the (teacher NLL, student KL)
    points of the plain-temperature curve; None outside its range (no extrapolation)."""
    pts = sorted(plain)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
        if x0 <= nll <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (nll - x0) / (x1 - x0)
    return None


def train_student(kind: str, data: Path, out: Path, args: argparse.Namespace) -> None:
    """`distill train examples/blackbox.yaml` on one answer set: from the proxy, or from a fresh init."""
    start = {"proxy": args.proxy, "sibling": args.sibling}.get(kind)
    init = (["student.init=pretrained", f"student.model={start}", f"train.lr={args.lr}"] if start
            else ["student.init=fresh", f"train.seed={args.fresh_seed}", f"train.lr={args.fresh_lr}"])
    argv = ["train", "examples/blackbox.yaml", "--overwrite"]
    for kv in [f"data.path={data}", *init, f"train.steps={args.steps}", "train.warmup_steps=3",
               "train.eval_every=100000", "train.eval_sequences=2", "train.checkpoint_every=100000",
               "train.progress=false", "data.heldout_fraction=0.05", f"train.threads={args.threads}",
               f"output_dir={out}"]:
        argv += ["--set", kv]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    res = subprocess.run(DISTILL + argv, cwd=ROOT, text=True, capture_output=True, env=env)
    if res.returncode:
        sys.exit(f"distill train failed:\n{res.stderr[-3000:]}")


@torch.inference_mode()
def scores(teacher, student, examples: list[dict]) -> dict[str, float]:
    """Answer tokens only: the teacher's NLL, and (with a student) its NLL and KL(teacher || student)."""
    n = t_nll = s_nll = kl = 0.0
    for ex in examples:
        ids = torch.tensor([ex["input_ids"]])
        mask = torch.tensor(ex["loss_mask"][:-1])
        tgt = ids[0, 1:][mask]
        lt = torch.log_softmax(teacher(input_ids=ids).logits[0, :-1][mask].float(), -1)
        t_nll += float(-lt.gather(1, tgt[:, None]).sum())
        if student is not None:
            ls = torch.log_softmax(student(input_ids=ids).logits[0, :-1][mask].float(), -1)
            s_nll += float(-ls.gather(1, tgt[:, None]).sum())
            kl += float((lt.exp() * (lt - ls)).sum())
        n += len(tgt)
    out = {"tokens": int(n), "teacher_nll": t_nll / n}
    if student is not None:
        out |= {"student_nll": s_nll / n, "kl_teacher_student": kl / n}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/antidistill")
    ap.add_argument("--proxy", default="/tmp/provbench/models/bb_student")
    ap.add_argument("--prompts", type=int, default=48, help="prompts answered per setting (the student's data)")
    ap.add_argument("--eval-prompts", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--temperatures", default="0.5,0.7,1.0,1.2,1.5", help="plain sampling temperatures")
    ap.add_argument("--antidistill-temperature", type=float, default=0.7,
                    help="the temperature of every antidistillation setting (inside the plain range, so that the "
                    "equal-quality comparison interpolates)")
    ap.add_argument("--lambdas", default="1,4", help="antidistillation strengths, at --antidistill-temperature")
    ap.add_argument("--bias-std", default=None, help="instead of --lambdas: the bias's standard deviation in "
                    "logits, e.g. '1,2' (lambda = value / std of delta, measured on the calibration prefixes)")
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=20, help="student training steps (batch 8)")
    ap.add_argument("--lr", type=float, default=5e-4, help="learning rate of the student started from the proxy")
    ap.add_argument("--students", default="proxy,fresh", help="which students are distilled from every answer set: "
                    "proxy (started from the proxy itself), sibling (started from --sibling: a model like the proxy "
                    "but not it), fresh (a fresh random init, --fresh-seed)")
    ap.add_argument("--out", default=str(RESULTS / "antidistill" / "antidistill.json"))
    ap.add_argument("--sibling", default=None, help="the sibling student's starting model (e.g. another seed of the "
                    "proxy's recipe)")
    ap.add_argument("--fresh-seed", type=int, default=99)
    ap.add_argument("--fresh-lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (here and in each distill train)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    kinds = args.students.split(",")
    if not kinds or any(k not in ("proxy", "sibling", "fresh") for k in kinds):
        sys.exit(f"--students takes proxy, sibling and/or fresh (comma-separated), not {args.students!r}")
    if "sibling" in kinds and not args.sibling:
        sys.exit("--students sibling needs --sibling PATH (the sibling's starting model)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from distill.data.generated import load_generated
    from distill.generate.prompts import chatterbot_prompts
    from distill.models.loading import load_model
    from distill.protection.antidistill import AntidistillProcessor
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine
    from distill.serve.protection import Protection

    chat = chatterbot_prompts()
    train_p = chat[-args.prompts:]  # the other end from bench_provenance's prompts
    eval_p = chat[-args.prompts - args.eval_prompts:-args.prompts]
    calib_p = chat[-args.prompts - args.eval_prompts - 8:-args.prompts - args.eval_prompts]
    teacher = load_model("default")
    tmodel, tok = teacher.model.float().eval(), teacher.tokenizer
    proxy = load_model(args.proxy).model.float().eval()
    temps = [float(t) for t in args.temperatures.split(",")]
    settings = [(f"plain T={t:g}", t, 0.0) for t in temps]
    switch = Switch()
    engine = Engine(tmodel, tok, max_batch=16)
    results: dict = {"args": vars(args), "settings": {}}
    t0 = time.perf_counter()
    with BackgroundServer(create_app(engine, "default", processors_for=switch)) as srv:
        url = srv.url + "/v1"
        collect(url, work / "eval", eval_p, 0.0, args.max_tokens)
        collect(url, work / "calib", calib_p, 0.0, args.max_tokens)
        calibration = [ex["input_ids"] for ex in load_generated(work / "calib", tok)]
        probe = AntidistillProcessor(proxy, calibration, 1.0, args.eps)
        d = torch.cat([probe.delta(torch.tensor([c[: len(c) // 2]]))[0] for c in calibration[:4]])
        results["delta_std"] = float(d.std())  # the bias in logits per unit lambda, for choosing --lambdas
        print(f"# delta: std {results['delta_std']:.3g} over the vocabulary at 4 prefixes", flush=True)
        lams = ([float(c) / results["delta_std"] for c in args.bias_std.split(",")] if args.bias_std
                else [float(lam) for lam in args.lambdas.split(",")])
        lams = [lam for lam in lams if lam > 0]  # lambda 0 is plain sampling: among the temperatures
        ta = args.antidistill_temperature
        settings += [(f"antidistill T={ta:g} lambda={lam:.3g}", ta, lam) for lam in lams]
        for name, t, lam in settings:
            folder = work / "sets" / name.replace(" ", "_")
            if lam:
                switch.procs = Protection(antidistill=AntidistillProcessor(proxy, calibration, lam, args.eps)
                                          ).processors_for("anyone")
            else:
                switch.procs = []
            t1 = time.perf_counter()
            collect(url, folder, train_p, t, args.max_tokens)
            print(f"# {name}: answers in {time.perf_counter() - t1:.0f}s", flush=True)
    engine.close()
    results["generation_s"] = round(time.perf_counter() - t0)
    evalset = load_generated(work / "eval", tok)
    from distill.models.students import fresh_llama

    results["before"] = {"proxy": scores(tmodel, proxy, evalset)}
    if "sibling" in kinds:
        results["before"]["sibling"] = scores(tmodel, load_model(args.sibling).model.float().eval(), evalset)
    if "fresh" in kinds:  # a random init (the default fresh shape) before any training
        results["before"]["fresh"] = scores(tmodel, fresh_llama(tok, seed=args.fresh_seed).eval(), evalset)
    print(json.dumps({"before": results["before"]}), flush=True)
    for name, t, lam in settings:
        folder = work / "sets" / name.replace(" ", "_")
        own = scores(tmodel, None, load_generated(folder, tok))
        row = {"temperature": t, "lambda": lam, "teacher_nll_of_answers": own["teacher_nll"],
               "answer_tokens": own["tokens"], "students": {}}
        for kind in kinds:
            student = work / "students" / kind / name.replace(" ", "_")
            if not (student / "model.safetensors").exists():
                t1 = time.perf_counter()
                train_student(kind, folder, student, args)
                print(f"# train {kind} on {name}: {time.perf_counter() - t1:.0f}s", flush=True)
            got = scores(tmodel, load_model(str(student)).model.float().eval(), evalset)
            row["students"][kind] = {"kl": got["kl_teacher_student"], "nll": got["student_nll"]}
        results["settings"][name] = row
        print(json.dumps({name: row}), flush=True)
    plain = {k: [(r["teacher_nll_of_answers"], r["students"][k]["kl"]) for r in results["settings"].values()
                 if not r["lambda"]] for k in kinds}
    for r in results["settings"].values():
        for k in kinds:
            ref = at_equal_quality(plain[k], r["teacher_nll_of_answers"]) if r["lambda"] else None
            r["students"][k]["plain_kl_at_equal_quality"] = ref
            r["students"][k]["kl_gain_over_plain"] = None if ref is None else r["students"][k]["kl"] - ref
    write_result(args.out, results)
    for k, b in results["before"].items():
        print(f"\n{k} before distillation: KL {b['kl_teacher_student']:.3f}, NLL {b['student_nll']:.3f} on "
              f"{b['tokens']} held-out answer tokens (teacher's own NLL {b['teacher_nll']:.3f})")
    head = " | ".join(f"{k}: KL / NLL / KL of plain at equal teacher NLL" for k in kinds)
    print(f"\n| setting | teacher NLL of its answers (nats/token) | {head} |")
    print("|---|---|" + "---|" * len(kinds))
    for name, r in results["settings"].items():
        cells = []
        for k in kinds:
            v = r["students"][k]
            ref = "-" if v["plain_kl_at_equal_quality"] is None else f"{v['plain_kl_at_equal_quality']:.3f}"
            cells.append(f"{v['kl']:.3f} / {v['nll']:.3f} / {ref}")
        print(f"| {name} | {r['teacher_nll_of_answers']:.3f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()

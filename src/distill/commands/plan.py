"""`distill plan CONFIG [--world N] [--device cpu|cuda] [--device-memory 80GiB]`: the memory plan of a run."""

from __future__ import annotations

import argparse
import json

NAME = "plan"
HELP = ("Before any compute: the expected peak memory per rank of a training config under ddp and fsdp (teacher "
        "and student weights, gradients, optimizer state, activations, the loss chunk), whether it fits, and what "
        "to change when it does not. Exits 0 when the configured run fits, 2 when it does not.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML training config (omit for the defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, as for `distill train`")
    p.add_argument("--world", type=int, default=1, help="number of processes (torchrun ranks; default 1)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the ranks run (default cpu: all "
                   "ranks share this host's RAM; cuda: one GPU per rank)")
    p.add_argument("--device-memory", help="memory to plan against: per GPU with --device cuda (e.g. 80GiB), the "
                   "host's RAM with cpu (default: what this machine has available)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args: argparse.Namespace) -> int:
    import distill
    from distill.training import memory

    cfg = distill.load_config(args.config, args.overrides)
    result = distill.plan(cfg, world=args.world, device=args.device, device_memory=args.device_memory)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0 if result.fits else 2
    plans, chosen, limit, source, ok, fixes = (result.plans, result.chosen, result.limit, result.limit_source,
                                               result.fits, result.advice)
    w = chosen.workload
    print(f"memory plan: {args.config or '(defaults)'} on {args.world} {args.device} rank(s), "
          f"{w.micro_batch} × {w.seq_len} tokens per rank per micro-batch; "
          f"student {w.student.params / 1e6:.1f} M params ({w.student.trainable / 1e6:.1f} M trained), teacher "
          + (f"{w.teacher.params / 1e6:.1f} M params" if w.teacher else "not in this process"))
    if cfg.teachers:  # several: each by name (the first is the one above)
        live = dict(w.other_teachers)
        print("teachers: " + ", ".join(
            f"{m.name} ({m.kind}, " + (f"{live[m.name].params / 1e6:.1f} M params)" if m.name in live else
                                       "the primary)" if i == 0 else "not in this process)")
            for i, m in enumerate(cfg.teachers)))
    print(f"{'per rank':<20}{'ddp':>12}{'fsdp':>12}")
    for part in chosen.parts:
        print(f"{part:<20}" + "".join(f"{memory.human(plans[m].parts[part]):>12}" for m in ("ddp", "fsdp")))
    if any(p.load for p in plans.values()):
        print(f"{'setup (unsharded)':<20}" + "".join(f"{memory.human(plans[m].load):>12}" for m in ("ddp", "fsdp")))
    print(f"{'peak per rank':<20}" + "".join(f"{memory.human(plans[m].peak):>12}" for m in ("ddp", "fsdp")))
    if args.device == "cpu" and args.world > 1:
        print(f"{'all ranks (host)':<20}" + "".join(f"{memory.human(plans[m].host_total()):>12}"
                                                     for m in ("ddp", "fsdp")))
    print(f"available: {memory.human(limit)} ({source}); a run fits in {memory.MARGIN:.0%} of it")
    if ok:
        print(f"verdict: fits with train.parallel: {cfg.train.parallel} "
              f"({memory.human(chosen.host_total())} of {memory.human(limit)})")
        return 0
    print(f"verdict: does NOT fit with train.parallel: {cfg.train.parallel} "
          f"({memory.human(chosen.host_total())} needed)")
    if fixes:
        print("changes that fit:")
        for a in fixes:
            print(f"  - {a.change}: {memory.human(a.plan.host_total())}")
    else:
        print("no single change here fits: use a smaller student, a shorter data.seq_len, more ranks or more memory")
    return 2

"""Resumable checkpoints, without pickle: weights and optimizer tensors in safetensors, the rest in JSON.

Layout of `<run>.ckpt/step-000050/`: model.safetensors, optimizer.safetensors, state.json (step, scheduler,
optimizer hyper-parameters, RNG states). Under `train.parallel: fsdp` the model and optimizer are instead one
`torch.distributed.checkpoint` folder `dcp/` written by every rank (its shards; DCP reshards on load, so the number of
processes may change between save and resume), with `rng-<rank>.safetensors` per rank. A student with frozen weights (LoRA) saves only its trainable tensors:
the frozen ones are rebuilt identically from the config at resume. A checkpoint directory is complete once `latest` names it: it is
written under a temporary name and renamed, so a SIGKILL mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from distill.errors import DistillError
from distill.fileio import atomic_write

KEEP = 2


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler, extra: dict | None = None) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".tmp-step-"))
    weights = save_weights(model, tmp / "model.safetensors")
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in opt["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{name}"] = value.contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    state = {
        "step": step,
        "weights": weights,
        "param_groups": opt["param_groups"],
        "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict(),
        "python_random": _jsonable(random.getstate()),
        "extra": extra or {},
    }
    (tmp / "state.json").write_text(json.dumps(state))
    return _commit(run_dir, tmp, step)


def _commit(run_dir: Path, tmp: Path, step: int) -> Path:
    """Rename a finished temporary folder into place, point `latest` at it, keep the newest KEEP."""
    final = run_dir / f"step-{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write(run_dir / "latest", lambda f: f.write(final.name))
    for old in sorted(run_dir.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_sharded_checkpoint(run_dir: Path, step: int, root: torch.nn.Module, optimizer: torch.optim.Optimizer,
                            scheduler, world, extra: dict | None = None) -> Path:
    """The FSDP checkpoint: collective, every rank calls it (see the module docstring)."""
    from distill.training.sharding import save_sharded

    tmp = run_dir / f".tmp-step-{step:06d}"
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    world.barrier()
    save_sharded(tmp / "dcp", root, optimizer)
    save_file({"rng.torch": torch.get_rng_state()}, str(tmp / f"rng-{world.rank}.safetensors"))
    world.barrier()
    final = run_dir / f"step-{step:06d}"
    if world.main:
        state = {"step": step, "format": "dcp", "world_size": world.size, "scheduler": scheduler.state_dict(),
                 "python_random": _jsonable(random.getstate()), "extra": extra or {}}
        (tmp / "state.json").write_text(json.dumps(state))
        _commit(run_dir, tmp, step)
    world.barrier()
    return final


def has_frozen(model: torch.nn.Module) -> bool:
    return any(not p.requires_grad for p in model.parameters())


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Every weight ("all"), or only the trainable ones when some are frozen ("trainable")."""
    if not has_frozen(model):
        save_model(model, str(path))
        return "all"
    save_file({name: p.detach().contiguous() for name, p in trainable_tensors(model).items()}, str(path))
    return "trainable"


def load_weights(model: torch.nn.Module, path: Path, saved: str) -> None:
    """Restore what `save_weights` wrote; a checkpoint of another kind of student is refused."""
    mine = "trainable" if has_frozen(model) else "all"
    if saved != mine:
        kinds = {"trainable": "a student with frozen weights (LoRA)", "all": "a student training every weight"}
        raise DistillError(f"the checkpoint was written by {kinds.get(saved, saved)}, but this run's student is "
                           f"{kinds[mine]}", where=str(path.parent),
                           fix="resume with the same student settings (student.lora included), or start afresh "
                               "without --resume")
    if saved == "all":
        load_model(model, str(path))
        return
    tensors, params = load_file(str(path)), trainable_tensors(model)
    if tensors.keys() != params.keys() or any(tensors[k].shape != p.shape for k, p in params.items()):
        raise DistillError("the checkpoint's adapter tensors do not match this run's LoRA student (another rank, "
                           "other target modules or another base)", where=str(path.parent),
                           fix="resume with the same student.lora settings, or start afresh without --resume")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[name])


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "latest"
    if not pointer.is_file():
        return None
    path = run_dir / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, *,
                    sharded_root: torch.nn.Module | None = None, rank: int = 0) -> dict:
    """Restore model, optimizer, scheduler and RNG in place; return the saved state (step, extra). With
    `sharded_root` (an FSDP run; collective) the checkpoint must be a sharded one, and the other way round."""
    state = json.loads((path / "state.json").read_text())
    sharded = state.get("format") == "dcp"
    if sharded != (sharded_root is not None):
        have, want = ("train.parallel: fsdp", "ddp") if sharded else ("train.parallel: ddp", "fsdp")
        raise DistillError(f"the checkpoint was written by a run with {have}, this run uses {want}", where=str(path),
                           fix=f"resume with the same train.parallel ({have.split(': ')[1]}), or start afresh "
                               "without --resume")
    if sharded:
        from distill.training.sharding import load_sharded

        load_sharded(path / "dcp", sharded_root, optimizer)
        rng = path / f"rng-{rank}.safetensors"
        torch.set_rng_state(load_file(str(rng if rng.is_file() else path / "rng-0.safetensors"))["rng.torch"])
    else:
        _load_local(path, state, model, optimizer)
    scheduler.load_state_dict(state["scheduler"])
    random.setstate(_tuplify(state["python_random"]))
    return state


def _load_local(path: Path, state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    load_weights(model, path / "model.safetensors", state.get("weights", "all"))
    tensors = load_file(str(path / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    for key, value in state["optimizer_scalars"].items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})


def _jsonable(obj):
    return [_jsonable(x) for x in obj] if isinstance(obj, (tuple, list)) else obj


def _tuplify(obj):
    return tuple(_tuplify(x) for x in obj) if isinstance(obj, list) else obj

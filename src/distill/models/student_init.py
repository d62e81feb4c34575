"""The kinds of `student.init`, one class each and nowhere else: its config rules, whether the student is cut from
the teacher's weights, its tokenizer, its shape for the memory plan (from configurations only), how it is built, and
what the model card and lineage say it started from.

| init | cut from the teacher | tokenizer | built by |
|---|---|---|---|
| `fresh` | no | the teacher's (or `student.tokenizer`) | `models.students.fresh_llama` |
| `layers` | yes | the teacher's | `models.students.layer_subset` |
| `prune` | yes | the teacher's | `models.prune.prune_teacher` on the training sequences |
| `pretrained` | no | its own | `models.loading.load_model` (a `distill prune` output keeps its `importance.json`) |

Torch-free at import (`distill.config` imports it for `InitName` and `check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from distill.errors import DistillError

if TYPE_CHECKING:
    import torch

    from distill.config import DistillConfig, StudentConfig
    from distill.loss.hidden import Origin
    from distill.models.loading import LoadedModel, ModelInfo

InitName = Literal["fresh", "layers", "pretrained", "prune"]


class StudentInit:
    """One `student.init` kind. Subclasses set `name` and `cut_from_teacher` and implement the methods."""

    name: ClassVar[str]
    cut_from_teacher: ClassVar[bool] = False  # built from the teacher's weights: the teacher is loaded (in fp32)

    def check(self, s: StudentConfig) -> None:
        """Refuse a student section this kind cannot build (a ValueError, reported by pydantic with its field)."""

    def tokenizer(self, cfg: DistillConfig, teacher_tokenizer):
        """The student's tokenizer (the data is tokenized with it): the teacher's, unless the kind says otherwise."""
        return teacher_tokenizer

    def shape(self, cfg: DistillConfig, teacher_config) -> Any:
        """The student's transformers configuration, for the memory plan (`teacher_config` is None when the run
        does not read the teacher's weights)."""
        raise NotImplementedError

    def build(self, cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
        """The student model, in training mode (before any LoRA wrapper)."""
        raise NotImplementedError

    def origin(self, cfg: DistillConfig, teacher: ModelInfo) -> tuple[dict[str, Any], str | None]:
        """What the student started from, for lineage (the base a LoRA adapter applies to), and where peft can load
        that base from (None: nowhere else, so it is written beside the adapter)."""
        raise NotImplementedError

    def card_line(self, cfg: DistillConfig, teacher: ModelInfo) -> str:
        """The model card's bullet saying how the student was made."""
        raise NotImplementedError

    def _teacher_needed(self, teacher) -> None:
        if teacher is None:
            raise DistillError(f"student.init={self.name} needs the teacher's weights", where="student.init",
                               fix="use a live teacher (a local model), or student.init: fresh or pretrained")


class Fresh(StudentInit):
    name = "fresh"

    def tokenizer(self, cfg: DistillConfig, teacher_tokenizer):
        if cfg.student.tokenizer:
            from distill.models.loading import load_tokenizer

            return load_tokenizer(cfg.student.tokenizer)
        return teacher_tokenizer

    def shape(self, cfg: DistillConfig, teacher_config) -> Any:
        from distill.models.loading import load_tokenizer
        from distill.models.students import fresh_config

        s = cfg.student
        tok = load_tokenizer(s.tokenizer or cfg.teacher.local_spec, cfg.teacher.trust_remote_code)
        return fresh_config(len(tok), hidden_size=s.hidden_size, num_layers=s.num_layers, num_heads=s.num_heads,
                            intermediate_size=s.intermediate_size)

    def build(self, cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
        from distill.models.students import fresh_llama

        s = cfg.student
        return fresh_llama(tokenizer, hidden_size=s.hidden_size, num_layers=s.num_layers, num_heads=s.num_heads,
                           intermediate_size=s.intermediate_size, seed=cfg.train.seed)

    def origin(self, cfg: DistillConfig, teacher: ModelInfo) -> tuple[dict[str, Any], str | None]:
        s = cfg.student
        return {"init": "fresh", "seed": cfg.train.seed, "hidden_size": s.hidden_size, "num_layers": s.num_layers}, None

    def card_line(self, cfg: DistillConfig, teacher: ModelInfo) -> str:
        s = cfg.student
        return (f"- Student: a new Llama (hidden {s.hidden_size}, {s.num_layers} layers, {s.num_heads} heads), "
                f"seed {cfg.train.seed}")


class Layers(StudentInit):
    name = "layers"
    cut_from_teacher = True

    def check(self, s: StudentConfig) -> None:
        if not (s.layers or s.every):
            raise ValueError("student.init=layers needs student.layers or student.every")

    @staticmethod
    def kept(cfg: DistillConfig, num_layers: int) -> list[int]:
        """The teacher layers the student keeps, in order."""
        s = cfg.student
        return list(s.layers) if s.layers else list(range(0, num_layers, s.every or 1))

    def shape(self, cfg: DistillConfig, teacher_config) -> Any:
        import copy

        self._teacher_needed(teacher_config)
        config = copy.deepcopy(teacher_config)
        keep = self.kept(cfg, config.num_hidden_layers)
        config.num_hidden_layers = len(keep)
        if getattr(config, "layer_types", None):
            config.layer_types = [config.layer_types[i] for i in keep if i < len(config.layer_types)]
        return config

    def build(self, cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
        from distill.loss.hidden import Origin
        from distill.models.students import layer_subset

        self._teacher_needed(teacher)
        student = layer_subset(teacher.model, layers=cfg.student.layers, every=cfg.student.every)
        n = len(teacher.model.base_model.layers)
        student.teacher_origin = Origin(tuple(self.kept(cfg, n)))  # for loss.hidden: auto
        return student

    def origin(self, cfg: DistillConfig, teacher: ModelInfo) -> tuple[dict[str, Any], str | None]:
        return {"init": "layers", "teacher": teacher.name, "teacher_weights_sha256": teacher.weights_sha256 or None,
                "layers": cfg.student.layers, "every": cfg.student.every}, None

    def card_line(self, cfg: DistillConfig, teacher: ModelInfo) -> str:
        s = cfg.student
        kept = f"layers {', '.join(map(str, s.layers))}" if s.layers else f"every {s.every}-th layer"
        return f"- Student: {kept} of {teacher.name}, copied with their weights"


class Prune(StudentInit):
    name = "prune"
    cut_from_teacher = True

    def check(self, s: StudentConfig) -> None:
        if s.prune is None:
            raise ValueError("student.init=prune needs student.prune, e.g. {target_params: 0.5} or {layers: 20, "
                             "intermediate_size: 1024}")

    def shape(self, cfg: DistillConfig, teacher_config) -> Any:
        from distill.models.loading import model_config
        from distill.models.prune import pruned_config, target_dims

        teacher_config = teacher_config or model_config(cfg.teacher.model, cfg.teacher.trust_remote_code)
        return pruned_config(teacher_config, target_dims(cfg.student.prune, teacher_config))

    def build(self, cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
        import logging

        from distill.data.corpus import load_corpus
        from distill.loss.hidden import Origin
        from distill.models.prune import prune_teacher

        self._teacher_needed(teacher)
        calibration = load_corpus(cfg.data, tokenizer).train  # the run's training sequences (deterministic)
        res = prune_teacher(teacher.model, cfg.student.prune, calibration, tokenizer.pad_token_id)
        logging.getLogger(__name__).info("pruned student: %s, %.1f M of the teacher's %.1f M params", res.dims,
                                         res.student_params / 1e6, res.teacher_params / 1e6)
        width_cut = res.dims.hidden_size < teacher.model.config.hidden_size
        res.student.teacher_origin = Origin(tuple(res.selection.layers),
                                            tuple(res.selection.hidden.tolist()) if width_cut else None)
        return res.student.train()

    def origin(self, cfg: DistillConfig, teacher: ModelInfo) -> tuple[dict[str, Any], str | None]:
        return {"init": "prune", "teacher": teacher.name, "teacher_weights_sha256": teacher.weights_sha256 or None,
                "prune": cfg.student.prune.model_dump(mode="json")}, None

    def card_line(self, cfg: DistillConfig, teacher: ModelInfo) -> str:
        target = {k: v for k, v in cfg.student.prune.model_dump().items()
                  if v is not None and k != "calibration_sequences"}
        shape = ", ".join(f"{k} {v}" for k, v in target.items())
        return f"- Student: {teacher.name} pruned ({shape}), the most important layers, channels and heads kept"


class Pretrained(StudentInit):
    name = "pretrained"

    def check(self, s: StudentConfig) -> None:
        if not s.model:
            raise ValueError("student.init=pretrained needs student.model")

    def tokenizer(self, cfg: DistillConfig, teacher_tokenizer):
        from distill.models.loading import load_tokenizer

        return load_tokenizer(cfg.student.model)

    def shape(self, cfg: DistillConfig, teacher_config) -> Any:
        from distill.models.loading import model_config

        return model_config(cfg.student.model)

    def build(self, cfg: DistillConfig, teacher: LoadedModel | None, tokenizer) -> torch.nn.Module:
        from distill.models.loading import load_model

        loaded = load_model(cfg.student.model)
        origin = pruned_origin(loaded.info)
        if origin is not None:
            loaded.model.teacher_origin = origin
        return loaded.model.train()

    def origin(self, cfg: DistillConfig, teacher: ModelInfo) -> tuple[dict[str, Any], str | None]:
        from distill.models.loading import describe_model

        info = describe_model(cfg.student.model)
        entry = {"init": "pretrained", "spec": info.spec, "model_kind": info.kind, "name": info.name,
                 "weights_sha256": info.weights_sha256 or None}
        return entry, (info.path if info.kind in ("dir", "hub") else None)

    def card_line(self, cfg: DistillConfig, teacher: ModelInfo) -> str:
        return f"- Student: started from `{cfg.student.model}`"


def pruned_origin(info: ModelInfo) -> Origin | None:
    """What a student written by `distill prune` kept of its teacher (its importance.json), else None."""
    from distill.fileio import read_json_object
    from distill.loss.hidden import Origin

    path = Path(info.local_dir) / "importance.json" if info.local_dir else None
    if path is None or not path.is_file():
        return None
    report = read_json_object(path, "pruning report (importance.json)", "write it again with `distill prune`")
    try:
        hidden = report["hidden"]
        width_cut = hidden["kept"] < hidden["of"]
        return Origin(tuple(report["layers"]["kept"]), tuple(hidden["kept_indices"]) if width_cut else None)
    except (KeyError, TypeError):
        raise DistillError("importance.json next to the student is not a `distill prune` report", where=str(path),
                           fix="write it again with `distill prune`, or remove it") from None


INITS: dict[str, StudentInit] = {k.name: k() for k in (Fresh, Layers, Pretrained, Prune)}


def student_init(cfg: DistillConfig) -> StudentInit:
    """The declared `student.init` kind of `cfg`."""
    return INITS[cfg.student.init]

"""What `distill.evaluate` (and `distill eval`) takes: `EvalSettings` (torch-free; what it gives back is
`distill.evaluation.report.EvalReport`)."""

from __future__ import annotations

from os import PathLike
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EvalSettings(BaseModel):
    """A teacher-vs-student comparison; a field with a `distill eval` flag has its name (`--seq-len`: seq_len)."""

    model_config = ConfigDict(extra="forbid")

    student: str = Field(description="The student: a directory written by `distill train`, or an export of one (a "
                         ".gguf written by `distill export`, read dequantized, or an exported directory).")
    teacher: str = Field("default", description="The teacher (directory, .gguf or hub id; 'default' = the bundled "
                         "SmolLM2 teacher). With `teacher_endpoint`: only its tokenizer, as a local spec.")
    data: list[str] = Field(["shakespeare"], description="Evaluation data, one or several sets, each scored on its "
                            "own held-out split (e.g. in-domain and out-of-domain); the top-level figures are the "
                            "first set's. A single string is one set.")
    seq_len: int = Field(256, description="Tokens per evaluation sequence.")
    sequences: int = Field(32, description="Held-out sequences scored per set.")
    batch_size: int = Field(4, description="Sequences per forward pass.")
    chunk_size: int = Field(64, description="Positions per chunk of the KL computation (memory, not results).")
    gen_prompts: int = Field(3, description="Held-out prompts the generation speed is timed on (0 = not timed).")
    teacher_endpoint: str | None = Field(None, description="A teacher behind a server (vLLM or `distill serve`, "
                                         "e.g. http://127.0.0.1:8000/v1): KL and top-1 against its top-k, the rest "
                                         "of its mass as one outcome; its size and speed are then unknown.")
    teacher_model: str | None = Field(None, description="With teacher_endpoint: the served model's name (default: "
                                      "`teacher`).")
    top_k: int = Field(20, description="With teacher_endpoint: top-k log-probabilities asked per position.")
    tasks: str | None = Field(None, description="Also run both models through lm-evaluation-harness (the `eval` "
                              "extra): comma-separated task names, task YAML files or folders; adds accuracy ± "
                              "stderr and retention per task.")
    task_limit: int | None = Field(None, description="With tasks: at most this many documents per task.")
    task_batch_size: int = Field(8, description="With tasks: lm-eval's batch size.")
    teacher_precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", description="Score with the teacher at this precision (as teacher.precision in a run) and report its "
        "KL(teacher_fp32 ‖ teacher_fast) per held-out token.")
    draft: bool = Field(False, description="Also run speculative decoding of the teacher with the student as its "
                        "draft (transformers assisted generation, greedy and sampled): accepted tokens per round, "
                        "acceptance rate, speed-up.")
    draft_tokens: int = Field(5, description="With draft: tokens drafted per round.")
    draft_prompts: int = Field(8, description="With draft: held-out prompts per set.")
    draft_new_tokens: int = Field(32, description="With draft: tokens generated per prompt.")

    @field_validator("data", mode="before")
    @classmethod
    def _one_set(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | PathLike) else v

    @field_validator("student", "teacher", "data", "tasks", mode="before")
    @classmethod
    def _paths_as_text(cls, v: Any) -> Any:  # a pathlib.Path is as good as its text
        return [str(p) for p in v] if isinstance(v, list) else str(v) if isinstance(v, PathLike) else v

"""`kind: served` — a teacher behind an inference server (vLLM, or `distill serve`): each micro-batch is scored
through vLLM's prompt_logprobs (top-k per position), prefetched while the student computes; never loaded here.

These are the only declarations of the served-endpoint settings: training, `distill eval` and `distill capture` all
open their client through `ServedTeacherConfig.client`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from distill.errors import DistillError
from distill.generate.settings import Retries
from distill.keys.api import KeySource
from distill.teachers.base import TeacherBase, TeacherInputs, TeacherKind

if TYPE_CHECKING:
    from distill.config import DistillConfig


class ServedTeacherConfig(KeySource, Retries, TeacherBase):
    """`teacher: {kind: served, endpoint: URL, model: NAME, ...}`; `model` is the served model's name. How requests
    are retried (`max_tries`, `timeout_s`, `backoff_s`) and where the server's key comes from (`api_key_env`,
    `api_key_file`) are declared once, in `Retries` and `KeySource`, for every client of an endpoint."""

    kind: Literal["served"] = Field(description="A teacher behind an inference server.")
    KIND = TeacherKind("served", "a teacher behind an inference server, scoring each micro-batch (top-k "
                       "log-probabilities per position, prefetched)", needs_weights=False, on_policy=True,
                       signal="sparse", tails=("bucket", "data_prior", "server_prior"))

    endpoint: str = Field(description="The server's URL (e.g. http://127.0.0.1:8000/v1): vLLM, or `distill serve`.")
    tokenizer: str | None = Field(None, description="The served teacher's tokenizer, as a local model spec (default: "
                                  "`model`, when that is also a local spec such as 'default'). Checked against the "
                                  "server at start.")
    top_k: int = Field(20, ge=1, description="Top-k log-probabilities per position asked of the server (vLLM caps it "
                       "with --max-logprobs, 20 by default).")
    endpoint_tail: Literal["bucket", "data_prior", "server_prior"] = Field(
        "bucket", description="The mass outside the served top-k. 'bucket' = one outcome; 'data_prior' = spread over "
        "the other tokens in proportion to the training data's token frequencies; 'server_prior' = in proportion to "
        "the teacher's own average tail, asked of the server once at start (`tail_rows` sequences scored with "
        "`tail_k` entries per position; the server must allow that many).")
    tail_rows: int = Field(32, ge=1, description="With endpoint_tail: server_prior: training sequences scored once "
                           "to estimate the teacher's tail.")
    tail_k: int = Field(200, ge=2, description="With endpoint_tail: server_prior: log-probabilities per position "
                        "asked for that estimate (start vLLM or `distill serve` with --max-logprobs at least this).")
    prefetch: int = Field(2, ge=0, description="Micro-batches scored ahead while the student computes (0 = score "
                          "each when asked).")
    concurrency: int = Field(2, ge=1, description="Scoring requests in flight at once.")

    @property
    def local_spec(self) -> str:
        return self.tokenizer or self.model

    def check(self, cfg: DistillConfig) -> None:
        from distill.teachers.api import is_generated_set

        if is_generated_set(cfg) or cfg.loss.cross_tokenizer or cfg.student.cut_from_teacher:
            raise DistillError("teacher.endpoint scores with a served teacher; it cannot be combined with generated "
                               "data, loss.cross_tokenizer or student.init=layers / prune (each needs local weights)",
                               where="teacher.endpoint", fix="drop teacher.endpoint or the conflicting setting")
        if self.endpoint_tail == "server_prior" and self.tail_k <= self.top_k:
            raise DistillError(f"teacher.tail_k ({self.tail_k}) must exceed teacher.top_k ({self.top_k}): the tail "
                               "prior is made of the entries ranked below the top-k", where="teacher.tail_k",
                               fix=f"set teacher.tail_k above {self.top_k} (e.g. 200) and start the server with "
                                   "--max-logprobs at least that")

    def served_origin(self, cfg: DistillConfig) -> dict[str, Any] | None:
        return {"endpoint": self.endpoint, "model": self.model, "tokenizer": self.tokenizer}

    def client(self, tokenizer, *, where: str = "teacher.endpoint"):
        """A scoring client of this server, after the server proved to serve `model` with `tokenizer`."""
        from distill.remote.client import ScoringClient

        key = self.api_key("teacher.api_key_env / teacher.api_key_file")
        client = ScoringClient(self.endpoint, self.model, self.top_k, api_key=key, timeout_s=self.timeout_s,
                               max_tries=self.max_tries, backoff_s=self.backoff_s, where=where)
        try:
            client.check_identity(tokenizer)
        except BaseException:
            client.close()
            raise
        return client

    def open(self, inputs: TeacherInputs, split: str):
        """For 'train' with a sampler, prefetching the schedule; a tail prior from the data or the server."""
        from distill.remote.source import ServedTeacher, data_log_prior, server_log_prior, training_schedule

        client = self.client(inputs.tokenizer, where=inputs.where or "teacher.endpoint")
        try:
            schedule = None
            if split == "train" and inputs.sampler:
                schedule = training_schedule(inputs.cfg, inputs.corpus, inputs.world, inputs.sampler,
                                             inputs.start_step, inputs.examples)
            vocab = len(inputs.tokenizer)
            prior = data_log_prior(inputs.corpus, vocab) if self.endpoint_tail != "bucket" else None
            if self.endpoint_tail == "server_prior":
                prior = server_log_prior(client, inputs.corpus, vocab, rows=self.tail_rows, tail_k=self.tail_k,
                                         fallback=prior)
        except BaseException:
            client.close()
            raise
        return ServedTeacher(client, schedule=schedule, prefetch=self.prefetch, concurrency=self.concurrency,
                             log_prior=prior, device=inputs.device).start()

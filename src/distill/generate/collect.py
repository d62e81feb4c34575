"""`distill.collect(GenerateSettings) -> GenerateResult`: the verb behind `distill generate` — the licence/terms
gate, the API key, the run (`client.run_generation`) and `source.json`, which `distill train` reads for lineage.

(The verb is not called `generate`: `distill.generate` is this package, and importing any of its modules would
rebind that name.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.generate.accounting import Accounting
from distill.generate.settings import GenerateSettings

SOURCE = "source.json"  # where the set came from and the policy verdict


@dataclass
class GenerateResult:
    """What `distill.collect` gives back."""

    out: Path  # the output folder
    results: Path  # results.jsonl in it: one row per prompt (answers, or trajectories with tools)
    accounting: Accounting  # this run's counters (also saved as accounting.json)
    policy: dict[str, Any]  # the licence/terms gate's verdict (also in source.json)

    @property
    def complete(self) -> bool:
        """Whether every prompt is stored (none was given up on in this run)."""
        return self.accounting.failed == 0


def collect(settings: GenerateSettings) -> GenerateResult:
    """Collect the teacher's answers (and top log-probabilities) from an OpenAI-compatible API into a resumable
    folder. The teacher is gated by the licence/terms policy before any request; the key is read from
    `api_key_env` / `api_key_file` (else OPENAI_API_KEY when set) and never written anywhere."""
    from distill.data.generated import RESULTS
    from distill.fileio import write_json_atomic
    from distill.generate.client import run_generation
    from distill.provenance.policy import check_api_teacher

    verdict = check_api_teacher(settings.endpoint, settings.model, settings.authorization,
                                local_spec=settings.teacher_spec or settings.tokenizer)
    key = settings.api_key("--api-key-env / --api-key-file", default_env="OPENAI_API_KEY")
    acct = run_generation(settings, api_key=key)
    out = Path(settings.out)
    policy = verdict.to_dict()
    write_json_atomic(out / SOURCE, {"endpoint": settings.endpoint, "model": settings.model, "policy": policy})
    return GenerateResult(out, out / RESULTS, acct, policy)

"""Scoring requests to a teacher server: retries with backoff, and the start-up checks that it is the teacher."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from distill.errors import DistillError
from distill.remote.protocol import ProtocolError, RowScores, parse_response, scoring_request

log = logging.getLogger(__name__)

PROBE = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def api_base(endpoint: str, where: str = "teacher.endpoint") -> str:
    """`http://host:port/v1` from a base URL, a `/v1` URL or a full `/v1/completions` URL."""
    url = endpoint.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise DistillError(f"the teacher endpoint must be an http(s) URL, got {endpoint!r}", where=where,
                           fix="give e.g. http://127.0.0.1:8000/v1")
    for suffix in ("/completions", "/chat/completions"):
        if url.endswith("/v1" + suffix):
            url = url[: -len(suffix)]
    return url if url.endswith("/v1") else url + "/v1"


@dataclass
class ScoringStats:
    requests: int = 0
    retries: int = 0
    rows: int = 0
    tokens: int = 0
    unmapped: int = 0
    seconds: float = 0.0  # wall time inside requests, summed over threads


class ScoringClient:
    """Thread-safe: several micro-batches may be in flight at once."""

    def __init__(self, endpoint: str, model: str, top_k: int, *, api_key: str | None = None,
                 timeout_s: float = 120.0, max_tries: int = 6, backoff_s: float = 0.5, where: str = "teacher.endpoint"):
        self.base, self.model, self.top_k, self.where = api_base(endpoint, where), model, top_k, where
        self.max_tries, self.backoff_s = max_tries, backoff_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(timeout=timeout_s, headers=headers)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would flood the run log
        self.stats = ScoringStats()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    # --------------------------------------------------------------------------------------------- scoring

    def score(self, rows: Sequence[Sequence[int]], top_k: int | None = None) -> list[RowScores]:
        """The teacher's top-k (`top_k`, default the client's) at every position of each row (one request)."""
        k = top_k or self.top_k
        body = scoring_request(self.model, rows, k)
        t0 = time.perf_counter()
        data = self._post("/completions", body)
        try:
            out = parse_response(data, rows, k)
        except ProtocolError as e:
            raise DistillError(f"the teacher server's scoring answer is malformed: {e}", where=self.base,
                               fix="serve the teacher with vLLM (>= 0.6, --max-logprobs >= teacher.top_k) or "
                                   "`distill serve`; see docs/served_teacher.md") from None
        with self._lock:
            s = self.stats
            s.requests += 1
            s.rows += len(rows)
            s.tokens += sum(len(r) for r in rows)
            s.unmapped += sum(r.unmapped for r in out)
            s.seconds += time.perf_counter() - t0
        return out

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        url = self.base + path
        last = ""
        for attempt in range(self.max_tries):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), 10.0))
            try:
                resp = self.http.post(url, json=body)
            except httpx.TransportError as e:  # refused, reset, timed out
                last = f"{type(e).__name__}: {e}"
                continue
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise DistillError(f"the teacher server refused a scoring request: HTTP {resp.status_code} "
                                   f"{_error_text(resp)}", where=url,
                                   fix="check teacher.model (the served name), teacher.top_k (vLLM caps it with "
                                       "--max-logprobs) and the API key")
            try:
                return resp.json()
            except ValueError:
                last = "an answer that is not JSON"
        raise DistillError(f"the teacher server failed {self.max_tries} times in a row ({last})", where=url,
                           fix="check that the server is up; the run stopped before using a wrong signal — resume "
                               "it with --resume from its last checkpoint")

    # --------------------------------------------------------------------------------------------- start-up

    def check_identity(self, tokenizer) -> dict[str, Any]:
        """Refuse a server that does not serve `model`, or whose tokenizer differs from the local one."""
        found: dict[str, Any] = {"endpoint": self.base, "model": self.model}
        try:
            resp = self.http.get(self.base + "/models")
        except httpx.TransportError as e:
            raise DistillError(f"cannot reach the teacher server ({type(e).__name__})", where=self.base,
                               fix="start it (e.g. `distill serve` or `vllm serve MODEL`) or fix teacher.endpoint") \
                from None
        if resp.status_code == 200:
            served = [m.get("id") for m in resp.json().get("data", []) if isinstance(m, dict)]
            if served and self.model not in served:
                raise DistillError(f"the teacher server does not serve {self.model!r} (it serves "
                                   f"{', '.join(map(str, served))})", where=f"{self.where} / teacher.model",
                                   fix="set teacher.model to the served name")
        probe = tokenizer(PROBE, add_special_tokens=False)["input_ids"]
        remote = self._remote_tokens(PROBE)
        if remote is not None and remote != probe:
            i = next((j for j, (a, b) in enumerate(zip(remote, probe, strict=False)) if a != b),
                     min(len(remote), len(probe)))
            raise DistillError(f"the teacher server tokenizes differently from the local tokenizer (first difference "
                               f"at token {i}: {remote[i:i + 3]} there, {probe[i:i + 3]} here)", where=self.base,
                               fix="give teacher.tokenizer the served model's tokenizer")
        scores = self.score([probe])[0]
        top = int(scores.ids.max())
        if top >= len(tokenizer):
            raise DistillError(f"the teacher server returned token id {top}, beyond the local vocabulary of "
                               f"{len(tokenizer)}", where=self.base, fix="give teacher.tokenizer the served model's "
                                                                        "tokenizer")
        found["tokenizer_checked"] = "tokenize" if remote is not None else "ids"
        return found

    def _remote_tokens(self, text: str) -> list[int] | None:
        """vLLM's /tokenize (served next to /v1), or None where the server has none."""
        root = self.base[: -len("/v1")]
        try:
            resp = self.http.post(root + "/tokenize", json={"model": self.model, "prompt": text,
                                                            "add_special_tokens": False})
        except httpx.TransportError:
            return None
        if resp.status_code != 200:
            return None
        tokens = resp.json().get("tokens")
        return [int(t) for t in tokens] if isinstance(tokens, list) else None


def _error_text(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error", {})
        return str(err.get("message", ""))[:300]
    except (ValueError, AttributeError):
        return resp.text[:300]

"""The asynchronous generation client behind `distill generate`.

Workers (`concurrency` of them) pull prompts from a queue and POST chat completions with httpx. Before each
request a worker waits for the shared 429 pause and the requests/min and tokens/min buckets (the token bucket
is charged an estimate - prompt characters / 4 + max_tokens x n - and corrected with the reported usage).

Retries: 429 waits `retry-after-ms` / `Retry-After` (else backoff); 5xx, 408, timeouts (a whole-request
deadline of `timeout_s` seconds, so stalled bodies count), dropped connections and malformed JSON back off
exponentially with full jitter (`backoff_s * 2**attempt`, capped at `backoff_cap_s`). Other 4xx are not
retried; 401/403/404 stop the whole run (a wrong key or model would fail every row). After `max_tries` tries
a row is recorded in failures.jsonl with the reason and retried by the next run. Nothing listening: when the
first `REFUSED_BEFORE_STOP` tries of a run (fewer if the run has fewer tries in all) were all refused
connections and none got an answer, the run stops with one error naming the endpoint instead of backing off
through every row; once anything answered, refused connections are retried like other dropped connections.

All writes go through one `ResultStore` on one dedicated writer thread (so fsync never stalls the event loop):
one writer, fsync per line, in completion order.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from distill.errors import DistillError
from distill.generate.accounting import Accounting, cost
from distill.generate.ratelimit import Pause, TokenBucket
from distill.generate.settings import GenerateSettings
from distill.generate.store import ResultStore, row_key
from distill.generate.tools import ToolRunner, ToolSet
from distill.tokens.openai import chat_url
from distill.tokens.tokenmap import TokenMapper

log = logging.getLogger(__name__)

REFUSED_BEFORE_STOP = 8  # refused connections, with no answer before them, that stop a run (the first wave of 8 workers)


def row_params(settings: GenerateSettings, tools: ToolSet | None = None) -> dict[str, Any]:
    """The sampling parameters that are part of each row's key (with tools: their schemas' hash and max_turns too,
    so changed tools are generated again)."""
    params = {"max_tokens": settings.max_tokens, "temperature": settings.temperature, "top_p": settings.top_p,
              "n": settings.n, "seed": settings.seed, "top_logprobs": settings.top_logprobs}
    if tools is not None:
        params |= {"tools": tools.fingerprint(), "max_turns": settings.max_turns}
    return params


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if ra:
        try:
            return max(0.0, float(ra))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(ra)
                return max(0.0, when.timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason, self.wait = reason, wait


class _GiveUp(Exception):
    pass


class _Failed(Exception):
    """A request given up on after its tries: `reason` is recorded in failures.jsonl."""

    def __init__(self, reason: str, tries: int):
        super().__init__(reason)
        self.reason, self.tries = reason, tries


def _tool_calls(calls: Any) -> list[dict]:
    """The tool calls of an answer's message ({id, type, function: {name, arguments}}); raises _Retry if malformed."""
    if not isinstance(calls, list):
        raise _Retry("malformed response (tool_calls)")
    out = []
    for c in calls:
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(c.get("id"), str):
            raise _Retry("malformed response (tool_calls)")
        args = fn.get("arguments")
        out.append({"id": c["id"], "type": "function",
                    "function": {"name": fn["name"], "arguments": args if isinstance(args, str) else json.dumps(args)}})
    return out


def _parse_choices(data: Any, mapper: TokenMapper | None) -> list[dict]:
    """The choices of a chat-completion body, with log-probabilities mapped to ids; raises _Retry if malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
        raise _Retry("malformed response (no choices)")
    out = []
    for i, ch in enumerate(data["choices"]):
        msg = ch.get("message") if isinstance(ch, dict) else None
        if not isinstance(msg, dict) or not isinstance(msg.get("content", ""), (str, type(None))):
            raise _Retry("malformed response (choice without message)")
        row: dict[str, Any] = {"index": ch.get("index", i), "text": msg.get("content") or "",
                               "finish_reason": ch.get("finish_reason")}
        if msg.get("tool_calls"):
            row["tool_calls"] = _tool_calls(msg["tool_calls"])
        reasoning = msg.get("reasoning_content", msg.get("reasoning"))  # vLLM / DeepSeek, OpenRouter
        if isinstance(reasoning, str) and reasoning:
            row["reasoning_content"] = reasoning
        lp = ch.get("logprobs")
        content = lp.get("content") if isinstance(lp, dict) else None
        if isinstance(content, list):
            entries = []
            for e in content:
                if not isinstance(e, dict) or not isinstance(e.get("token"), str):
                    raise _Retry("malformed response (logprobs entry)")
                entry = {"token": e["token"], "bytes": e.get("bytes"), "logprob": e.get("logprob"),
                         "top_logprobs": [{"token": t.get("token"), "bytes": t.get("bytes"), "logprob": t.get("logprob")}
                                          for t in e.get("top_logprobs") or [] if isinstance(t, dict)
                                          and isinstance(t.get("token"), str)]}
                if mapper is not None:
                    entry["id"] = mapper.map(entry["token"], entry["bytes"])
                    for t in entry["top_logprobs"]:
                        t["id"] = mapper.map(t["token"], t["bytes"])
                entries.append(entry)
            row["logprobs"] = entries
            if mapper is not None:
                ids = [e["id"] for e in entries]
                row["token_ids"] = ids if all(i is not None for i in ids) else None
        out.append(row)
    return out


def _estimate_tokens(messages: list[dict], cfg: GenerateSettings, tools: ToolSet | None) -> int:
    chars = sum(len(m.get("content") or "") + (len(json.dumps(m["tool_calls"])) if m.get("tool_calls") else 0)
                for m in messages)
    if tools is not None:
        chars += len(json.dumps(tools.schemas))
    return chars // 4 + 8 + cfg.max_tokens * cfg.n


class _Generation:
    """One run's shared state - config, store, HTTP client, rate limits, writer thread, progress, accounting -
    and the steps of a row: `attempt` (one request), `row` (tries until stored or given up), `worker`."""

    def __init__(self, cfg: GenerateSettings, tools: ToolSet | None, store: ResultStore, client: httpx.AsyncClient,
                 acct: Accounting, mapper: TokenMapper | None, writer: ThreadPoolExecutor, bar) -> None:
        self.cfg, self.tools, self.store, self.client, self.acct, self.mapper = cfg, tools, store, client, acct, mapper
        self.writer, self.bar = writer, bar
        self.url, self.params = chat_url(cfg.endpoint), row_params(cfg, tools)
        self.rpm, self.tpm, self.pause = TokenBucket(cfg.rpm), TokenBucket(cfg.tpm), Pause()
        self.loop = asyncio.get_running_loop()
        self.refused, self.reached = 0, False  # refused connections so far; whether anything ever answered
        self.refused_limit = REFUSED_BEFORE_STOP
        self.runner = ToolRunner(tools, cfg.tool_timeout_s, cfg.tool_max_chars) if tools is not None else None

    def connection_failed(self, e: httpx.TransportError) -> None:
        """Count a refused connection; stop the run when nothing has ever answered and the limit is reached."""
        if not isinstance(e, httpx.ConnectError) or self.reached:
            self.reached = True  # a reset or a protocol error: something is listening
            return
        self.refused += 1
        if self.refused >= self.refused_limit:
            raise DistillError(f"nothing is listening at {self.url}: the first {self.refused} connection attempts "
                               f"were all refused ({e or type(e).__name__})", where=self.url,
                               fix="start the server (e.g. `distill serve --port PORT`) or fix --endpoint, then run "
                                   "the same command again (stored rows are kept)")

    def body(self, msgs: list[dict]) -> dict[str, Any]:
        cfg = self.cfg
        body: dict[str, Any] = {"model": cfg.model, "messages": msgs, "max_tokens": cfg.max_tokens,
                                "temperature": cfg.temperature, "top_p": cfg.top_p, "n": cfg.n}
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if cfg.top_logprobs > 0:
            body["logprobs"] = True
            body["top_logprobs"] = cfg.top_logprobs
        if self.tools is not None:
            body["tools"] = list(self.tools.schemas)
        return body

    async def attempt(self, msgs: list[dict]) -> tuple[dict, list[dict]]:
        """One request after the rate limits: (body, parsed choices); raises _Retry, _GiveUp or DistillError."""
        cfg, acct, url = self.cfg, self.acct, self.url
        body = self.body(msgs)
        est = _estimate_tokens(msgs, cfg, self.tools)
        await self.pause.wait()
        await self.rpm.take(1)
        await self.tpm.take(est)
        acct.requests += 1
        try:
            resp = await asyncio.wait_for(self.client.post(url, json=body), cfg.timeout_s)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise _Retry("timeout") from None
        except httpx.TransportError as e:
            self.connection_failed(e)
            raise _Retry(f"connection error ({type(e).__name__})") from None
        self.reached = True
        if resp.status_code == 429:
            acct.rate_limited += 1
            wait = retry_after(resp.headers)
            if wait is not None:
                self.pause.extend(wait)
            raise _Retry("rate limited (429)", wait)
        if resp.status_code in (401, 403):
            raise DistillError(f"the API refused the key (HTTP {resp.status_code})", where=url,
                               fix="check --api-key-env / --api-key-file")
        if resp.status_code == 404:
            raise DistillError(f"the API answered 404 for model {cfg.model!r}: {_error_text(resp)}",
                               where=url, fix="check --endpoint and --model")
        if resp.status_code >= 500 or resp.status_code == 408:
            raise _Retry(f"server error (HTTP {resp.status_code})")
        if resp.status_code != 200:
            raise _GiveUp(f"HTTP {resp.status_code}: {_error_text(resp)}")
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retry("malformed JSON") from None
        choices = _parse_choices(data, self.mapper)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        used = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        if used:
            self.tpm.refund(est - used)
        return data, choices

    async def request(self, msgs: list[dict]) -> tuple[dict, list[dict], int]:
        """One answer, trying up to max_tries times (backing off between tries): (body, choices, tries); raises
        _Failed when it gives up."""
        cfg, acct = self.cfg, self.acct
        reason = ""
        for n_try in range(1, cfg.max_tries + 1):
            if n_try > 1:
                acct.retries += 1
            try:
                data, choices = await self.attempt(msgs)
                return data, choices, n_try
            except _Retry as r:
                reason = r.reason
                if n_try < cfg.max_tries:
                    step = min(cfg.backoff_cap_s, cfg.backoff_s * 2 ** (n_try - 1))
                    await asyncio.sleep(r.wait if r.wait is not None else random.uniform(0, step))
            except _GiveUp as g:
                raise _Failed(str(g), n_try) from None
        raise _Failed(reason, cfg.max_tries)

    async def trajectory(self, key: str, msgs: list[dict]) -> tuple[dict, dict]:
        """A tool-calling conversation: answer, run each call (`ToolRunner`), append the results, ask again - until
        an answer without calls or `max_turns` answers. Returns the record and its summed usage; the tokens of
        every answered turn are counted as they come (a trajectory that fails later has still spent them)."""
        cfg, acct = self.cfg, self.acct
        conv, turns = [dict(m) for m in msgs], []
        finish = "max_turns"
        for _ in range(cfg.max_turns):
            data, choices, tries = await self.request(conv)
            ch, usage = choices[0], data.get("usage") if isinstance(data.get("usage"), dict) else {}
            acct.turns += 1
            acct.tokens_in += int(usage.get("prompt_tokens") or 0)
            acct.tokens_out += int(usage.get("completion_tokens") or 0)
            turns.append({"usage": usage, "tries": tries, "finish_reason": ch["finish_reason"],
                          "response_id": data.get("id"), "response_model": data.get("model")})
            calls = ch.get("tool_calls") or []
            turn = {"role": "assistant", "content": ch["text"] or None,
                    **({"reasoning_content": ch["reasoning_content"]} if "reasoning_content" in ch else {})}
            conv.append({**turn, "tool_calls": calls} if calls else turn)
            if not calls:
                finish = "answer"
                break
            for c in calls:
                content, ok = await self.runner.call(c["function"]["name"], c["function"]["arguments"])
                acct.tool_calls += 1
                acct.tool_errors += not ok
                conv.append({"role": "tool", "tool_call_id": c["id"], "content": content})
        total = {k: sum(int((t["usage"] or {}).get(k) or 0) for t in turns) for k in ("prompt_tokens",
                                                                                        "completion_tokens")}
        record = {"key": key, "model": cfg.model, "messages": msgs, "params": self.params,
                  "tools": list(self.tools.schemas), "trajectory": conv, "finish": finish, "turns": turns,
                  "usage": total, "tries": sum(t["tries"] for t in turns), "time": time.time()}
        return record, total

    async def row(self, key: str, msgs: list[dict]) -> None:
        """One prompt: its answer (or, with tools, its trajectory) stored, or the failure recorded."""
        cfg, acct = self.cfg, self.acct
        try:
            if self.runner is not None:
                record, usage = await self.trajectory(key, msgs)
            else:
                data, choices, tries = await self.request(msgs)
                usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
                record = {"key": key, "model": cfg.model, "messages": msgs, "params": self.params,
                          "choices": choices, "usage": usage, "response_model": data.get("model"),
                          "response_id": data.get("id"), "tries": tries, "time": time.time()}
        except _Failed as f:
            acct.failed += 1
            acct.failure_reasons[f.reason] = acct.failure_reasons.get(f.reason, 0) + 1
            await self.loop.run_in_executor(self.writer, self.store.fail, {
                "key": key, "messages": msgs, "reason": f.reason, "tries": f.tries, "time": time.time()})
            log.warning("gave up on a prompt after %d tries: %s", f.tries, f.reason)
            self.bar.update(1)
            return
        if await self.loop.run_in_executor(self.writer, self.store.append, record):
            acct.succeeded += 1
            if self.runner is None:  # a trajectory's tokens were counted turn by turn
                acct.tokens_in += int(usage.get("prompt_tokens") or 0)
                acct.tokens_out += int(usage.get("completion_tokens") or 0)
        self.bar.update(1)

    async def worker(self, queue: asyncio.Queue) -> None:
        while True:
            try:
                key, msgs = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self.row(key, msgs)

    async def run(self, todo: list[tuple[str, list[dict]]]) -> None:
        """Work through `todo` with `concurrency` workers; cancel the others when one raises."""
        queue: asyncio.Queue = asyncio.Queue()
        for item in todo:
            queue.put_nowait(item)
        self.refused_limit = min(REFUSED_BEFORE_STOP, len(todo) * self.cfg.max_tries)
        tasks = [asyncio.create_task(self.worker(queue)) for _ in range(max(1, min(self.cfg.concurrency, len(todo))))]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _todo(prompts: list[list[dict]], params: dict[str, Any], model: str, store: ResultStore, acct: Accounting
          ) -> list[tuple[str, list[dict]]]:
    """(key, messages) of each distinct prompt not yet stored; counts duplicates, skipped and prompts."""
    todo: list[tuple[str, list[dict]]] = []
    seen: set[str] = set()
    for msgs in prompts:
        key = row_key(msgs, params, model)
        if key in seen:
            acct.duplicates += 1
            continue
        seen.add(key)
        if store.done(key):
            acct.skipped += 1
        else:
            todo.append((key, msgs))
    acct.prompts = len(seen)
    return todo


async def _run(cfg: GenerateSettings, prompts: list[list[dict]], api_key: str | None, tokenizer: Any,
               tools: ToolSet | None) -> Accounting:
    from tqdm import tqdm

    acct = Accounting(price_in=cfg.price_in, price_out=cfg.price_out)
    mapper = TokenMapper(tokenizer) if tokenizer is not None else None
    start = time.monotonic()
    with ResultStore(cfg.out) as store:
        todo = _todo(prompts, row_params(cfg, tools), cfg.model, store, acct)
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        bar = tqdm(total=len(todo), disable=not cfg.progress, desc="generate", unit="row", dynamic_ncols=True)
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="distill-store")  # the single writer
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        timeout = httpx.Timeout(cfg.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
            try:
                await _Generation(cfg, tools, store, client, acct, mapper, writer, bar).run(todo)
            finally:
                writer.shutdown(wait=True)
                bar.close()
                acct.wall_s = round(time.monotonic() - start, 3)
                if mapper is not None:
                    acct.token_map = mapper.stats.to_dict()
                acct.store = _store_totals(store, cfg)
                acct.save(Path(cfg.out) / "accounting.json")
    return acct


def _store_totals(store: ResultStore, cfg: GenerateSettings) -> dict[str, float]:
    rows = store.rows_now()
    t_in = sum(int((r.get("usage") or {}).get("prompt_tokens") or 0) for r in rows)
    t_out = sum(int((r.get("usage") or {}).get("completion_tokens") or 0) for r in rows)
    return {"rows": len(rows), "tokens_in": t_in, "tokens_out": t_out,
            "cost_usd": round(cost(t_in, t_out, cfg.price_in, cfg.price_out), 6)}


def _error_text(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        msg = err.get("message") if isinstance(err, dict) else err
        return str(msg)[:300]
    except Exception:  # noqa: BLE001
        return resp.text[:300]


def _inputs(settings: GenerateSettings) -> tuple[list[list[dict]], ToolSet | None, Any]:
    """What a run reads besides its settings, each refused with a DistillError before anything is written: the
    prompts (the first `limit`), the tools, and the tokenizer that maps log-prob tokens to ids."""
    from distill.generate.prompts import load_prompts

    prompts = settings.prompts if isinstance(settings.prompts, list) else load_prompts(settings.prompts)
    prompts = prompts[: settings.limit] if settings.limit is not None else prompts
    tools = None
    if settings.tools:
        from distill.generate.tools import load_tools

        tools = load_tools(settings.tools, settings.tool_command)
    tokenizer = None
    if settings.tokenizer:
        from distill.models.loading import load_tokenizer

        tokenizer = load_tokenizer(settings.tokenizer)
    return prompts, tools, tokenizer


def run_generation(settings: GenerateSettings, api_key: str | None = None) -> Accounting:
    """Run (or resume) a generation with `api_key` (already read: never logged, never stored); returns the run's
    accounting (also saved as accounting.json). `distill.collect` adds the policy gate and the key's source."""
    chat_url(settings.endpoint)
    prompts, tools, tokenizer = _inputs(settings)
    return asyncio.run(_run(settings, prompts, api_key, tokenizer, tools))

"""The OpenAI-compatible HTTP app: /v1/models, /v1/chat/completions, /v1/completions.

Every bad request gets a 4xx with an OpenAI-style body `{"error": {"message", "type", "param", "code"}}`.

Extension points (all optional, all called with the api-key *name*, never the key; "anonymous" without keys):

* `processors_for(name) -> list[LogitsProcessor]`: extra logits processors for this caller's requests (HF
  signature `(input_ids, scores) -> scores`, applied per row before log-probabilities are computed, so
  reported log-probabilities include them) - e.g. a per-account watermark.
* `gate(name) -> None | "block" | "throttle"`: called before a generation request; "block" answers 403
  (code `blocked`), "throttle" answers 429 with `Retry-After: <throttle_retry_after_s>` (code `throttled`).
* `observer(name, request_dict, response_dict, timestamp)`: called after every generation request that passed
  authentication (also for refused or invalid ones; `response_dict` is then the error body). For a streamed
  request `response_dict` is the equivalent non-streamed response. `timestamp` is the Unix time the request
  arrived. Exceptions raised by hooks other than the gate are logged and ignored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from distill.serve.engine import Completion, Engine, EngineInputError, SamplingParams, TokenInfo
from distill.serve.keys import check_bearer
from distill.serve.schemas import ChatCompletionRequest, CompletionRequest
from distill.tokens.chat import render_chat

log = logging.getLogger(__name__)

Observer = Callable[[str, dict, dict, float], None]
Gate = Callable[[str], "str | None"]
ProcessorsFor = Callable[[str], list]


@dataclass
class Limits:
    """Per-request limits of the server."""

    max_body_bytes: int = 1 << 20  # larger bodies get 413
    max_tokens: int = 1024  # largest max_tokens accepted
    max_n: int = 8  # largest n accepted (per prompt)
    max_prompts: int = 16  # largest prompt list for /v1/completions
    default_max_tokens: int = 256  # chat max_tokens when the request gives none (capped by max_tokens)
    throttle_retry_after_s: int = 1  # Retry-After sent when the gate throttles


class ApiError(Exception):
    """An error answered with an OpenAI-style body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body too large ({declared} bytes; the limit is {limit})",
                               code="request_too_large")
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body too large (over {limit} bytes)", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _union_tag(part) -> bool:
    """Pydantic adds the union branch tried ('str', 'list[int]', ...) to error locations; those are not params."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "none"} or "[" in part or "-" in part)


def _parse(raw: bytes, model: type) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the request body is not valid UTF-8 (byte {e.start})", code="invalid_encoding") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                       code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_type")
    try:
        return data, model.model_validate_json(text)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(p) for p in err.get("loc", ()) if not _union_tag(p)) or None
        kind = err.get("type", "invalid")
        if kind == "missing":
            msg = f"missing required parameter '{param}'"
        else:
            msg = f"invalid value for '{param}': {err.get('msg', 'invalid')}"
            if "input" in err and kind != "json_invalid":
                msg += f" (got {type(err['input']).__name__})"
        code = "missing_required_parameter" if kind == "missing" else "invalid_value"
        raise ApiError(400, msg, param=param, code=code) from None


def _logprob_entry(t: TokenInfo, engine: Engine) -> dict:
    return {"token": t.text, "logprob": t.logprob, "bytes": list(t.bytes),
            "top_logprobs": [{"token": engine.bytes_of[i].decode("utf-8", errors="replace"), "logprob": lp,
                              "bytes": list(engine.bytes_of[i])} for i, lp in t.top]}


def _legacy_logprobs(tokens: list[TokenInfo], engine: Engine) -> dict:
    top = []
    for t in tokens:
        d: dict[str, float] = {}
        for i, lp in t.top:
            d.setdefault(engine.bytes_of[i].decode("utf-8", errors="replace"), lp)
        top.append(d)
    return {"tokens": [t.text for t in tokens], "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": top, "text_offset": [t.text_offset for t in tokens]}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def create_app(engine: Engine, model_name: str, *, aliases: tuple[str, ...] = (),
               api_keys: dict[str, str] | None = None, limits: Limits | None = None,
               processors_for: ProcessorsFor | None = None, observer: Observer | None = None,
               gate: Gate | None = None) -> FastAPI:
    """The FastAPI app serving `engine` under `model_name` (and `aliases`).

    Args:
        engine: the generation engine (its worker starts with the app).
        model_name: the id listed by /v1/models and expected in requests.
        aliases: other accepted model names.
        api_keys: {key: name}; when given, requests need `Authorization: Bearer <key>` (401 otherwise).
        limits: request limits (see `Limits`).
        processors_for, observer, gate: extension hooks, see the module docstring.
    """
    limits = limits or Limits()
    names = {model_name, *aliases}
    created = int(time.time())
    tok = engine.tokenizer

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        engine.start()
        yield

    app = FastAPI(title="distill serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(Exception)
    async def _crash(_req, exc: Exception):
        log.exception("internal error")
        return ApiError(500, "internal server error", type_="server_error").response()

    def _auth(request: Request) -> str:
        if not api_keys:
            return "anonymous"
        name = check_bearer(request.headers.get("authorization"), api_keys)
        if name is None:
            raise ApiError(401, "invalid or missing API key; send `Authorization: Bearer <key>`",
                           code="invalid_api_key")
        return name

    def _notify(name: str, req: dict, resp: dict, ts: float) -> None:
        if observer is None:
            return
        try:
            observer(name, req, resp, ts)
        except Exception:  # noqa: BLE001
            log.exception("observer hook failed")

    def _params(body, max_tokens: int | None, top: int) -> SamplingParams:
        if body.model not in names:
            raise ApiError(404, f"the model '{body.model}' does not exist; this server serves '{model_name}'",
                           param="model", code="model_not_found")
        n = body.n or 1
        if n > limits.max_n:
            raise ApiError(400, f"n must be at most {limits.max_n} (got {n})", param="n", code="invalid_value")
        if max_tokens is not None and max_tokens > limits.max_tokens:
            raise ApiError(400, f"max_tokens must be at most {limits.max_tokens} (got {max_tokens})",
                           param="max_tokens", code="invalid_value")
        stops = body.stop_list()
        if len(stops) > 4:
            raise ApiError(400, "stop accepts at most 4 strings", param="stop", code="invalid_value")
        return SamplingParams(max_tokens=max_tokens or limits.default_max_tokens,
                              temperature=1.0 if body.temperature is None else body.temperature,
                              top_p=1.0 if body.top_p is None else body.top_p, stop=stops, seed=body.seed,
                              n=n, top_logprobs=top)

    def _processors(name: str) -> list:
        return list(processors_for(name)) if processors_for is not None else []

    def _submit(prompt_ids, params, procs, on_delta=None):
        try:
            return engine.submit(prompt_ids, params, procs, on_delta)
        except EngineInputError as e:
            raise ApiError(400, str(e), param=e.param, code="context_length_exceeded"
                           if e.param == "max_tokens" else "invalid_value") from None

    async def _guarded(request: Request, handler) -> Any:
        ts = time.time()
        name, req_dict = None, {}
        try:
            name = _auth(request)
            raw = await _read_body(request, limits.max_body_bytes)
            if gate is not None:
                decision = gate(name)
                if decision == "block":
                    raise ApiError(403, "this API key is blocked", code="blocked", type_="permission_error")
                if decision == "throttle":
                    raise ApiError(429, "too many requests for this API key; retry later", code="throttled",
                                   type_="rate_limit_error",
                                   headers={"Retry-After": str(limits.throttle_retry_after_s)})
            return await handler(raw, name, ts, req_dict)
        except ApiError as e:
            if name is not None:
                _notify(name, req_dict, e.body(), ts)
            return e.response()

    @app.get("/v1/models")
    async def models(request: Request):
        try:
            _auth(request)
        except ApiError as e:
            return e.response()
        return {"object": "list", "data": [{"id": m, "object": "model", "created": created, "owned_by": "distill"}
                                           for m in sorted(names, key=lambda x: x != model_name)]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        async def handle(raw: bytes, name: str, ts: float, req_dict: dict):
            data, body = _parse(raw, ChatCompletionRequest)
            req_dict.update(data)
            want_lp = bool(body.logprobs)
            if body.top_logprobs and not want_lp:
                raise ApiError(400, "top_logprobs needs logprobs=true", param="top_logprobs", code="invalid_value")
            params = _params(body, body.max_completion_tokens or body.max_tokens, body.top_logprobs or 0)
            msgs = [{"role": m.role, "content": m.text()} for m in body.messages]
            try:
                prompt_ids = render_chat(tok, msgs)
            except Exception as e:  # noqa: BLE001 - templates raise on unsupported role orders
                raise ApiError(400, f"the chat template rejected the messages: {e}", param="messages",
                               code="invalid_value") from None
            rid, model = f"chatcmpl-{uuid.uuid4().hex}", body.model

            def full(comp: Completion) -> dict:
                return {"id": rid, "object": "chat.completion", "created": int(ts), "model": model,
                        "system_fingerprint": None,
                        "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text},
                                     "logprobs": {"content": [_logprob_entry(t, engine) for t in c.tokens]}
                                     if want_lp else None, "finish_reason": c.finish_reason}
                                    for c in comp.choices],
                        "usage": _usage(comp.prompt_tokens, comp.completion_tokens)}

            if not body.stream:
                comp = await asyncio.wrap_future(_submit(prompt_ids, params, _processors(name)))
                resp = full(comp)
                _notify(name, req_dict, resp, ts)
                return JSONResponse(resp)

            def chunk(choices: list[dict], usage: dict | None = None) -> str:
                d = {"id": rid, "object": "chat.completion.chunk", "created": int(ts), "model": model,
                     "system_fingerprint": None, "choices": choices}
                if usage is not None:
                    d["usage"] = usage
                return f"data: {json.dumps(d)}\n\n"

            def delta_choice(i: int, text: str, toks: list[TokenInfo], finish: str | None) -> dict:
                return {"index": i, "delta": {"content": text} if text else {},
                        "logprobs": {"content": [_logprob_entry(t, engine) for t in toks]} if want_lp else None,
                        "finish_reason": finish}

            include_usage = bool(body.stream_options and body.stream_options.include_usage)

            async def events(q: asyncio.Queue, fut) -> AsyncIterator[str]:
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None} for i in range(params.n)])
                left = params.n
                while left:
                    i, text, toks, finish = await q.get()
                    yield chunk([delta_choice(i, text, toks, finish)])
                    left -= finish is not None
                comp = await asyncio.wrap_future(fut)
                if include_usage:
                    yield chunk([], _usage(comp.prompt_tokens, comp.completion_tokens))
                yield "data: [DONE]\n\n"
                _notify(name, req_dict, full(comp), ts)

            return _stream(prompt_ids, params, _processors(name), events)

        return await _guarded(request, handle)

    def _stream(prompt_ids, params, procs, events) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        def on_delta(i, text, toks, finish):
            loop.call_soon_threadsafe(q.put_nowait, (i, text, toks, finish))

        fut = _submit(prompt_ids, params, procs, on_delta)
        return StreamingResponse(events(q, fut), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/v1/completions")
    async def completions(request: Request):
        async def handle(raw: bytes, name: str, ts: float, req_dict: dict):
            data, body = _parse(raw, CompletionRequest)
            req_dict.update(data)
            if body.echo:
                raise ApiError(400, "echo=true is not supported", param="echo", code="unsupported_value")
            k = body.logprobs
            params = _params(body, body.max_tokens or 16, k or 0)
            p = body.prompt
            if isinstance(p, str):
                prompts = [tok(p)["input_ids"]]
            elif p and all(isinstance(x, str) for x in p):
                prompts = [tok(x)["input_ids"] for x in p]
            elif p and all(isinstance(x, int) for x in p):
                prompts = [list(p)]
            else:
                prompts = [list(x) for x in p]
            if not prompts or len(prompts) > limits.max_prompts:
                raise ApiError(400, f"prompt must hold 1 to {limits.max_prompts} prompts", param="prompt",
                               code="invalid_value")
            rid, model = f"cmpl-{uuid.uuid4().hex}", body.model
            procs = _processors(name)

            def full(comps: list[Completion]) -> dict:
                choices = []
                for pi, comp in enumerate(comps):
                    for c in comp.choices:
                        choices.append({"index": pi * params.n + c.index, "text": c.text,
                                        "logprobs": _legacy_logprobs(c.tokens, engine) if k is not None else None,
                                        "finish_reason": c.finish_reason})
                return {"id": rid, "object": "text_completion", "created": int(ts), "model": model,
                        "system_fingerprint": None, "choices": choices,
                        "usage": _usage(sum(c.prompt_tokens for c in comps),
                                        sum(c.completion_tokens for c in comps))}

            if not body.stream:
                futs = [_submit(ids, params, procs) for ids in prompts]
                comps = [await asyncio.wrap_future(f) for f in futs]
                resp = full(comps)
                _notify(name, req_dict, resp, ts)
                return JSONResponse(resp)
            if len(prompts) != 1:
                raise ApiError(400, "streaming supports one prompt per request", param="prompt",
                               code="invalid_value")
            include_usage = bool(body.stream_options and body.stream_options.include_usage)

            def chunk(choices: list[dict], usage: dict | None = None) -> str:
                d = {"id": rid, "object": "text_completion", "created": int(ts), "model": model,
                     "system_fingerprint": None, "choices": choices}
                if usage is not None:
                    d["usage"] = usage
                return f"data: {json.dumps(d)}\n\n"

            async def events(q: asyncio.Queue, fut) -> AsyncIterator[str]:
                left = params.n
                while left:
                    i, text, toks, finish = await q.get()
                    yield chunk([{"index": i, "text": text, "finish_reason": finish,
                                  "logprobs": _legacy_logprobs(toks, engine) if k is not None else None}])
                    left -= finish is not None
                comp = await asyncio.wrap_future(fut)
                if include_usage:
                    yield chunk([], _usage(comp.prompt_tokens, comp.completion_tokens))
                yield "data: [DONE]\n\n"
                _notify(name, req_dict, full([comp]), ts)

            return _stream(prompts[0], params, procs, events)

        return await _guarded(request, handle)

    return app

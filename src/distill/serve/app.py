"""The OpenAI-compatible HTTP app: /v1/models, /v1/chat/completions, /v1/completions, /tokenize, /openapi.json.

Every bad request gets a 4xx with an OpenAI-style body `{"error": {"message", "type", "param", "code"}}` (a 405
also carries `Allow`). Bodies are bounded in size (`Limits.max_body_bytes`, 413) and in JSON nesting
(`Limits.max_json_depth`, 400 `json_too_deep`, checked before parsing, so deep nesting never recurses). Requests
that uvicorn cannot parse as HTTP never reach this app: see `distill.serve.httpserver`.
Each endpoint is a plain function reading a `ServeState` from `app.state.serve`; `_respond` writes the JSON
or streamed answer of both generation endpoints.

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
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from distill.keys.api import check_bearer
from distill.serve.engine import Completion, Engine, EngineInputError, SamplingParams, TokenInfo
from distill.serve.openapi import openapi_document
from distill.serve.schemas import ChatCompletionRequest, CompletionRequest, TokenizeRequest
from distill.tokens.chat import render_chat
from distill.tokens.toolcalls import ToolFormatError, normalize, with_reasoning
from distill.tokens.toolparse import parse_tool_calls, tool_support

log = logging.getLogger(__name__)

Observer = Callable[[str, dict, dict, float], None]
Gate = Callable[[str], "str | None"]
ProcessorsFor = Callable[[str], list]


@dataclass
class Limits:
    """Per-request limits of the server."""

    max_body_bytes: int = 1 << 20  # larger bodies get 413
    max_json_depth: int = 64  # deeper nesting of arrays/objects gets 400 (an OpenAI request nests about 5 deep)
    max_tokens: int = 1024  # largest max_tokens accepted
    max_n: int = 8  # largest n accepted (per prompt)
    max_prompts: int = 16  # largest prompt list for /v1/completions
    max_logprobs: int = 20  # largest prompt_logprobs (vLLM's --max-logprobs, same default)
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
    # Under uvicorn's h11 an invalid Content-Length never gets here (see `distill.serve.httpserver`); the check
    # stays for other ASGI servers.
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, f"request body too large ({declared} bytes; the limit is {limit})",
                               code="request_too_large")
        except ValueError:
            raise ApiError(400, "invalid Content-Length header") from None
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body too large (over {limit} bytes)", code="request_too_large")
            chunks.append(chunk)
    except ClientDisconnect:  # gone mid-body (or h11 refused a bad chunk and closed): no 500, nothing to answer
        raise ApiError(400, "the connection closed before the whole request body arrived",
                       code="incomplete_body") from None
    return b"".join(chunks)


def _union_tag(part) -> bool:
    """Pydantic adds the union branch tried ('str', 'list[int]', ...) to error locations; those are not params."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "none"} or "[" in part or "-" in part)


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string literal (no backtracking blow-up)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (brackets inside strings do not count); linear time, no
    recursion, so a body of a million '[' is measured safely before any parser sees it."""
    shape = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    if not shape:
        return 0
    b = np.frombuffer(shape, dtype=np.uint8)
    return int(np.where((b == ord("[")) | (b == ord("{")), 1, -1).cumsum().max())


def _too_deep(limit: int) -> ApiError:
    return ApiError(400, f"the request body nests arrays/objects more than {limit} levels deep", code="json_too_deep")


def _parse(raw: bytes, model: type, max_depth: int) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the request body is not valid UTF-8 (byte {e.start})", code="invalid_encoding") from None
    if json_depth(text) > max_depth:
        raise _too_deep(max_depth)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                       code="invalid_json") from None
    except RecursionError:  # json_depth already refuses deep bodies; a safety net, never a 500
        raise _too_deep(max_depth) from None
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


@dataclass
class ServeState:
    """Everything the endpoints need, kept on `app.state.serve` (see `create_app` for the fields)."""

    engine: Engine
    model_name: str
    names: set[str]
    limits: Limits
    api_keys: dict[str, str] | None = None
    processors_for: ProcessorsFor | None = None
    observer: Observer | None = None
    gate: Gate | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    def auth(self, request: Request) -> str:
        """The caller's key name ("anonymous" without keys); 401 for a missing or unknown key."""
        if not self.api_keys:
            return "anonymous"
        name = check_bearer(request.headers.get("authorization"), self.api_keys)
        if name is None:
            raise ApiError(401, "invalid or missing API key; send `Authorization: Bearer <key>`",
                           code="invalid_api_key")
        return name

    def check_gate(self, name: str) -> None:
        decision = self.gate(name) if self.gate is not None else None
        if decision == "block":
            raise ApiError(403, "this API key is blocked", code="blocked", type_="permission_error")
        if decision == "throttle":
            raise ApiError(429, "too many requests for this API key; retry later", code="throttled",
                           type_="rate_limit_error", headers={"Retry-After": str(self.limits.throttle_retry_after_s)})

    def notify(self, call: Call, response: dict) -> None:
        if self.observer is None:
            return
        try:
            self.observer(call.name, call.request, response, call.ts)
        except Exception:  # noqa: BLE001
            log.exception("observer hook failed")

    def check_model(self, model: str) -> None:
        if model not in self.names:
            raise ApiError(404, f"the model '{model}' does not exist; this server serves '{self.model_name}'",
                           param="model", code="model_not_found")

    def params(self, body, max_tokens: int | None, top: int) -> SamplingParams:
        """Sampling parameters of a request, checked against the served names and the limits."""
        self.check_model(body.model)
        n = body.n or 1
        limits = self.limits
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

    def processors(self, name: str) -> list:
        return list(self.processors_for(name)) if self.processors_for is not None else []

    def submit(self, prompt_ids: list[int], params: SamplingParams, procs: list, on_delta=None) -> Future:
        try:
            return self.engine.submit(prompt_ids, params, procs, on_delta)
        except EngineInputError as e:
            raise ApiError(400, str(e), param=e.param, code="context_length_exceeded"
                           if e.param == "max_tokens" else "invalid_value") from None


@dataclass
class Call:
    """One authenticated generation request: the key's name, its arrival time, its body (once parsed)."""

    name: str
    ts: float
    request: dict = field(default_factory=dict)


Delta = Callable[[int, str, list[TokenInfo], "str | None"], dict]


@dataclass
class Reply:
    """What every body of one response shares, and the generation it answers."""

    id: str
    object: str  # of the whole (non-streamed) response
    chunk_object: str  # of each streamed chunk
    created: int
    model: str
    params: SamplingParams
    procs: list
    stream: bool
    include_usage: bool

    def body(self, choices: list[dict], comps: list[Completion]) -> dict:
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "system_fingerprint": None, "choices": choices,
                "usage": _usage(sum(c.prompt_tokens for c in comps), sum(c.completion_tokens for c in comps))}

    def chunk(self, choices: list[dict], usage: dict | None = None) -> str:
        d = {"id": self.id, "object": self.chunk_object, "created": self.created, "model": self.model,
             "system_fingerprint": None, "choices": choices}
        if usage is not None:
            d["usage"] = usage
        return f"data: {json.dumps(d)}\n\n"


def _reply(request_id: str, kind: str, call: Call, body, params: SamplingParams, procs: list) -> Reply:
    return Reply(request_id, kind, "chat.completion.chunk" if kind == "chat.completion" else kind, int(call.ts),
                 body.model, params, procs, bool(body.stream),
                 bool(body.stream_options and body.stream_options.include_usage))


def _replayed(reply: Reply, resp: dict, first: list[dict] | None) -> AsyncIterator[str]:
    """A whole chat answer as server-sent chunks: `first`, then one chunk per choice with its content and its
    tool calls (each with its `index`, as OpenAI streams them), a usage chunk when asked for, [DONE]."""

    async def events() -> AsyncIterator[str]:
        if first:
            yield reply.chunk(first)
        for ch in resp["choices"]:
            msg = ch["message"]
            d: dict = {"content": msg["content"]} if msg["content"] else {}
            if msg.get("tool_calls"):
                d["tool_calls"] = [{"index": j, **c} for j, c in enumerate(msg["tool_calls"])]
            yield reply.chunk([{"index": ch["index"], "delta": d, "logprobs": ch["logprobs"],
                                "finish_reason": ch["finish_reason"]}])
        if reply.include_usage:
            yield reply.chunk([], resp["usage"])
        yield "data: [DONE]\n\n"

    return events()


async def _respond(st: ServeState, call: Call, reply: Reply, prompts: list[list[int]],
                   full: Callable[[list[Completion]], dict], delta: Delta,
                   first: list[dict] | None = None, buffered: bool = False) -> Response:
    """Generate for `prompts` and answer: one JSON body, or (one prompt) server-sent chunks - `first`, then one
    `delta` per piece of text, a usage chunk when asked for, [DONE]. `buffered` streams the whole answer once it
    is done (tool calls are parsed from the whole text). The observer sees the full body either way."""
    if not reply.stream or buffered:
        futs = [st.submit(ids, reply.params, reply.procs) for ids in prompts]
        resp = full([await asyncio.wrap_future(f) for f in futs])
        st.notify(call, resp)
        if reply.stream:
            return StreamingResponse(_replayed(reply, resp, first), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return JSONResponse(resp)
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()

    def on_delta(i, text, toks, finish):
        loop.call_soon_threadsafe(q.put_nowait, (i, text, toks, finish))

    fut = st.submit(prompts[0], reply.params, reply.procs, on_delta)

    async def events() -> AsyncIterator[str]:
        if first:
            yield reply.chunk(first)
        left = reply.params.n
        while left:
            i, text, toks, finish = await q.get()
            yield reply.chunk([delta(i, text, toks, finish)])
            left -= finish is not None
        comp = await asyncio.wrap_future(fut)
        if reply.include_usage:
            yield reply.chunk([], _usage(comp.prompt_tokens, comp.completion_tokens))
        yield "data: [DONE]\n\n"
        st.notify(call, full([comp]))

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


Handler = Callable[[ServeState, Call, bytes], Awaitable[Response]]


async def _guarded(request: Request, handle: Handler) -> Response:
    """Authenticate, read the body, ask the gate, run `handle`; an ApiError becomes its response (observed
    once the caller is known)."""
    st: ServeState = request.app.state.serve
    call = None
    try:
        call = Call(st.auth(request), time.time())
        raw = await _read_body(request, st.limits.max_body_bytes)
        st.check_gate(call.name)
        return await handle(st, call, raw)
    except ApiError as e:
        if call is not None:
            st.notify(call, e.body())
        return e.response()


def _tool_setup(st: ServeState, body) -> tuple[list[dict], list[dict] | None, str]:
    """The request's messages normalized (`distill.tokens.toolcalls`), the tools to render (None when the request
    has none or `tool_choice` is 'none') and how calls are read back (`tool_support`); a 400 for what this server
    cannot do with tools."""
    choice = body.tool_choice
    if choice is not None and not body.tools:
        raise ApiError(400, "tool_choice needs tools", param="tool_choice", code="invalid_value")
    if body.tools and choice is not None and choice != "auto" and choice != "none":
        raise ApiError(400, "tool_choice 'required' or a named tool needs constrained decoding, which this server "
                       "does not do; send tool_choice 'auto' (or leave it out)", param="tool_choice",
                       code="unsupported_value")
    tools = [t.model_dump(exclude_none=True) for t in body.tools] if body.tools and choice != "none" else None
    fmt = tool_support(st.engine.tokenizer)
    if tools and fmt == "unreadable":
        raise ApiError(400, "this model's chat template writes tool calls in its own format; distill serve reads "
                       "back `<tool_call>` blocks (Hermes/Qwen, and the fallback for templates without tools) and "
                       "Llama 3.1's JSON calls only", param="tools", code="unsupported_value")
    msgs = []
    for m in body.messages:
        d = {"role": m.role, "content": m.text()}
        if m.tool_calls:
            d["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        for key in ("tool_call_id", "reasoning_content"):
            if getattr(m, key) is not None:
                d[key] = getattr(m, key)
        msgs.append(d)
    try:
        msgs, _ = normalize(msgs)
    except ToolFormatError as e:
        raise ApiError(400, f"invalid value for '{e.field}': {e.problem}", param=e.field,
                       code="invalid_value") from None
    return with_reasoning(msgs, keep=True), tools, fmt


def _answer(c, tools: bool, fmt: str, parallel: bool) -> tuple[dict, str | None]:
    """A choice's message and finish reason; with tools, the calls in its text (`fmt`) become `tool_calls`."""
    if not tools:
        return {"role": "assistant", "content": c.text}, c.finish_reason
    content, calls = parse_tool_calls(c.text, fmt)
    calls = calls if parallel else calls[:1]
    # "tool_calls" when the model ended its turn after calling; "length" stays "length" (a call may be cut off)
    finish = "tool_calls" if calls and c.finish_reason == "stop" else c.finish_reason
    return {"role": "assistant", "content": content, "tool_calls": calls}, finish


async def _chat(st: ServeState, call: Call, raw: bytes) -> Response:
    data, body = _parse(raw, ChatCompletionRequest, st.limits.max_json_depth)
    call.request.update(data)
    want_lp = bool(body.logprobs)
    if body.top_logprobs and not want_lp:
        raise ApiError(400, "top_logprobs needs logprobs=true", param="top_logprobs", code="invalid_value")
    params = st.params(body, body.max_completion_tokens or body.max_tokens, body.top_logprobs or 0)
    msgs, tools, fmt = _tool_setup(st, body)
    try:
        prompt_ids = render_chat(st.engine.tokenizer, msgs, tools)
    except Exception as e:  # noqa: BLE001 - templates raise on unsupported role orders
        raise ApiError(400, f"the chat template rejected the messages: {e}", param="messages",
                       code="invalid_value") from None
    reply = _reply(f"chatcmpl-{uuid.uuid4().hex}", "chat.completion", call, body, params, st.processors(call.name))
    engine = st.engine
    parallel = body.parallel_tool_calls is not False

    def logprobs(toks: list[TokenInfo]) -> dict | None:
        return {"content": [_logprob_entry(t, engine) for t in toks]} if want_lp else None

    def full(comps: list[Completion]) -> dict:
        choices = []
        for c in comps[0].choices:
            message, finish = _answer(c, bool(tools), fmt, parallel)
            choices.append({"index": c.index, "message": message, "logprobs": logprobs(c.tokens),
                            "finish_reason": finish})
        return reply.body(choices, comps)

    def delta(i: int, text: str, toks: list[TokenInfo], finish: str | None) -> dict:
        return {"index": i, "delta": {"content": text} if text else {}, "logprobs": logprobs(toks),
                "finish_reason": finish}

    first = [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
             for i in range(params.n)]
    return await _respond(st, call, reply, [prompt_ids], full, delta, first, buffered=bool(tools))


def _prompt_ids(tok, p: str | list[str] | list[int] | list[list[int]], limit: int) -> list[list[int]]:
    if isinstance(p, str):
        prompts = [tok(p)["input_ids"]]
    elif p and all(isinstance(x, str) for x in p):
        prompts = [tok(x)["input_ids"] for x in p]
    elif p and all(isinstance(x, int) for x in p):
        prompts = [list(p)]
    else:
        prompts = [list(x) for x in p]
    if not prompts or len(prompts) > limit:
        raise ApiError(400, f"prompt must hold 1 to {limit} prompts", param="prompt", code="invalid_value")
    return prompts


async def _completions(st: ServeState, call: Call, raw: bytes) -> Response:
    data, body = _parse(raw, CompletionRequest, st.limits.max_json_depth)
    call.request.update(data)
    if body.echo:
        raise ApiError(400, "echo=true is not supported", param="echo", code="unsupported_value")
    k = body.logprobs
    params = st.params(body, body.max_tokens or 16, k or 0)
    if body.prompt_logprobs is not None:
        if body.prompt_logprobs > st.limits.max_logprobs:
            raise ApiError(400, f"prompt_logprobs must be at most {st.limits.max_logprobs} (got "
                           f"{body.prompt_logprobs})", param="prompt_logprobs", code="invalid_value")
        if body.stream:
            raise ApiError(400, "prompt_logprobs cannot be streamed", param="stream", code="invalid_value")
        params.prompt_logprobs = body.prompt_logprobs
    prompts = _prompt_ids(st.engine.tokenizer, body.prompt, st.limits.max_prompts)
    reply = _reply(f"cmpl-{uuid.uuid4().hex}", "text_completion", call, body, params, st.processors(call.name))
    if reply.stream and len(prompts) != 1:
        raise ApiError(400, "streaming supports one prompt per request", param="prompt", code="invalid_value")
    engine = st.engine

    def prompt_logprobs(comp: Completion) -> dict:
        if comp.prompt_logprobs is None:
            return {}
        return {"prompt_logprobs": [None if e is None else {
            str(i): {"logprob": lp, "rank": r, "decoded_token": engine.bytes_of[i].decode("utf-8", errors="replace")}
            for i, lp, r in e} for e in comp.prompt_logprobs]}

    def logprobs(toks: list[TokenInfo]) -> dict | None:
        return _legacy_logprobs(toks, engine) if k is not None else None

    def full(comps: list[Completion]) -> dict:
        return reply.body([{"index": pi * params.n + c.index, "text": c.text, "logprobs": logprobs(c.tokens),
                            "finish_reason": c.finish_reason, **prompt_logprobs(comp)}
                           for pi, comp in enumerate(comps) for c in comp.choices], comps)

    def delta(i: int, text: str, toks: list[TokenInfo], finish: str | None) -> dict:
        return {"index": i, "text": text, "finish_reason": finish, "logprobs": logprobs(toks)}

    return await _respond(st, call, reply, prompts, full, delta)


async def chat_completions(request: Request) -> Response:
    """POST /v1/chat/completions."""
    return await _guarded(request, _chat)


async def completions(request: Request) -> Response:
    """POST /v1/completions (legacy)."""
    return await _guarded(request, _completions)


async def _tokenize(st: ServeState, call: Call, raw: bytes) -> Response:
    _, body = _parse(raw, TokenizeRequest, st.limits.max_json_depth)
    st.check_model(body.model)
    ids = st.engine.tokenizer(body.prompt, add_special_tokens=body.add_special_tokens)["input_ids"]
    return JSONResponse({"tokens": ids, "count": len(ids), "max_model_len": st.engine.max_context})


async def tokenize(request: Request) -> Response:
    """POST /tokenize (as vLLM): the served tokenizer's ids for a text, to check a client's tokenizer."""
    return await _guarded(request, _tokenize)


async def list_models(request: Request) -> Response:
    """GET /v1/models."""
    st: ServeState = request.app.state.serve
    try:
        st.auth(request)
    except ApiError as e:
        return e.response()
    return JSONResponse({"object": "list", "data": [
        {"id": m, "object": "model", "created": st.created, "owned_by": "distill"}
        for m in sorted(st.names, key=lambda x: x != st.model_name)]})


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI 3.1 description of these endpoints (no key needed)."""
    return JSONResponse(request.app.state.openapi)


async def _http_error(_req: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own 4xx (unknown route, wrong method) in the OpenAI shape, keeping its headers (`Allow`)."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return ApiError(exc.status_code, str(exc.detail), code=code, headers=dict(exc.headers or {})).response()


async def _crash(_req: Request, exc: Exception) -> Response:
    log.exception("internal error")
    return ApiError(500, "internal server error", type_="server_error").response()


@asynccontextmanager
async def _lifespan(app: FastAPI):
    app.state.serve.engine.start()
    yield


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
    app = FastAPI(title="distill serve", lifespan=_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    limits = limits or Limits()
    app.state.serve = ServeState(engine, model_name, {model_name, *aliases}, limits, api_keys,
                                 processors_for, observer, gate)
    app.state.openapi = openapi_document(
        auth=bool(api_keys), maxima={"n": limits.max_n, "max_tokens": limits.max_tokens,
                                     "max_completion_tokens": limits.max_tokens, "prompt_logprobs": limits.max_logprobs})
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _crash)
    app.add_api_route("/v1/models", list_models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"])
    app.add_api_route("/v1/completions", completions, methods=["POST"])
    app.add_api_route("/tokenize", tokenize, methods=["POST"])
    app.add_api_route("/openapi.json", openapi_json, methods=["GET"])
    return app

"""The OpenAPI 3.1 document `distill serve` answers at GET /openapi.json.

The endpoints read their bodies by hand (to answer every mistake in the OpenAI error shape), so FastAPI cannot
describe them; this module does, from the same pydantic models that validate the requests (`serve.schemas`) and
from response models that mirror what `serve.app` writes (a test checks real answers against them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from distill import __version__
from distill.serve.schemas import ChatCompletionRequest, CompletionRequest, TokenizeRequest

REF = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    message: str
    type: str  # invalid_request_error, permission_error, rate_limit_error, server_error
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx of the server (and the 400 of a malformed HTTP request, see `serve.httpserver`)."""

    error: ErrorDetail


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]


class AnsweredFunction(BaseModel):
    name: str
    arguments: str  # a JSON object as a string


class AnsweredToolCall(BaseModel):
    id: str
    type: Literal["function"]
    function: AnsweredFunction


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str | None  # null when a request with tools is answered by tool calls only
    tool_calls: list[AnsweredToolCall] | None = None  # only in answers to requests with tools


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None
    finish_reason: Literal["stop", "length", "tool_calls"] | None


class ChatCompletion(BaseModel):
    """The answer of POST /v1/chat/completions (with `stream`: server-sent `chat.completion.chunk` events)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[ChatChoice]
    usage: Usage


class LegacyLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class PromptLogprob(BaseModel):
    logprob: float
    rank: int
    decoded_token: str


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: LegacyLogprobs | None
    finish_reason: Literal["stop", "length"] | None
    prompt_logprobs: list[dict[str, PromptLogprob] | None] | None = None  # only when asked for; keyed by token id


class TextCompletion(BaseModel):
    """The answer of POST /v1/completions (with `stream`: server-sent `text_completion` events)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    system_fingerprint: None
    choices: list[CompletionChoice]
    usage: Usage


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    max_model_len: int


ERRORS = {400: "invalid request (type, range, JSON, nesting, UTF-8, context length)", 401: "missing or unknown API key",
          403: "API key blocked", 404: "unknown model", 413: "request body too large",
          429: "throttled (see Retry-After)"}

# path -> (method, summary, request model or None, response model, streams, error statuses)
ROUTES: dict[str, tuple[str, str, type[BaseModel] | None, type[BaseModel], bool, tuple[int, ...]]] = {
    "/v1/models": ("get", "List the served model names", None, ModelList, False, (401,)),
    "/v1/chat/completions": ("post", "Chat completion", ChatCompletionRequest, ChatCompletion, True,
                             (400, 401, 403, 404, 413, 429)),
    "/v1/completions": ("post", "Text completion (legacy; vLLM's prompt_logprobs)", CompletionRequest, TextCompletion,
                        True, (400, 401, 403, 404, 413, 429)),
    "/tokenize": ("post", "The served tokenizer's ids for a text (as vLLM)", TokenizeRequest, TokenizeResponse, False,
                  (400, 401, 404, 413)),
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=ref)}}}


def _cap(schema: dict[str, Any], maximum: int) -> None:
    """Add the server's `maximum` to the integer branch of a property's schema."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "integer":
            branch["maximum"] = min(maximum, branch.get("maximum", maximum))


def _operation(path: str, route: tuple, auth: bool) -> dict[str, Any]:
    method, summary, request, response, streams, errors = route
    ok = _json(response.__name__)
    if streams:
        ok["text/event-stream"] = {"schema": {"type": "string", "description": "with `stream: true`: `data: {chunk}` "
                                              "events, then `data: [DONE]`"}}
    op: dict[str, Any] = {"summary": summary, "operationId": method + path.replace("/", "_"),
                          "responses": {"200": {"description": "OK", "content": ok},
                                        **{str(s): {"description": ERRORS[s], "content": _json("ErrorResponse")}
                                           for s in errors if auth or s != 401}}}
    if request is not None:
        op["requestBody"] = {"required": True, "content": _json(request.__name__)}
    if auth:
        op["security"] = [{"bearer": []}]
    return op


def openapi_document(auth: bool = False, maxima: dict[str, int] | None = None) -> dict[str, Any]:
    """The document: every route, its request body (the validating models' JSON schema, with the server's
    `maxima` per integer field) and its answers. `auth`: the routes need `Authorization: Bearer <key>`."""
    models = [ChatCompletionRequest, CompletionRequest, TokenizeRequest, ErrorResponse, ModelList, ChatCompletion,
              TextCompletion, TokenizeResponse]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = top["$defs"]
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        for field, maximum in (maxima or {}).items():
            if field in schemas[name]["properties"]:
                _cap(schemas[name]["properties"][field], maximum)
    paths = {path: {route[0]: _operation(path, route, auth)} for path, route in ROUTES.items()}
    paths["/openapi.json"] = {"get": {"summary": "This document", "operationId": "get_openapi",
                                      "responses": {"200": {"description": "OK",
                                                            "content": {"application/json": {}}}}}}
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": "distill serve", "version": __version__},
                           "paths": paths, "components": {"schemas": schemas}}
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc

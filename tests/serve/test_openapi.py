"""GET /openapi.json describes the real endpoints: every route, and schemas that what the server accepts and
answers satisfy (checked by a small JSON-Schema subset validator; jsonschema is not a dependency)."""

from __future__ import annotations

import httpx
import pytest

AUTH = {"Authorization": "Bearer sk-alice-123"}
TYPES = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def problems(schema: dict, value, doc: dict, at: str = "$") -> list[str]:
    """Why `value` does not satisfy `schema` (the keywords pydantic emits); [] when it does."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return problems(doc["components"]["schemas"][name], value, doc, at)
    if "anyOf" in schema:
        return [] if any(not problems(s, value, doc, at) for s in schema["anyOf"]) else [f"{at}: no anyOf branch fits"]
    if "type" in schema and not TYPES[schema["type"]](value):
        return [f"{at}: not {schema['type']}"]
    out = []
    if "const" in schema and value != schema["const"] or "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not allowed")
    if TYPES["number"](value):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            out.append(f"{at}: {value} out of range")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{at}: {value} too small")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        out.append(f"{at}: too short")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{at}: too few items")
        for i, v in enumerate(value):
            out += problems(schema.get("items", {}), v, doc, f"{at}[{i}]")
    if isinstance(value, dict):
        out += [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
        props = schema.get("properties", {})
        for k, v in value.items():
            sub = props.get(k, schema.get("additionalProperties", {}))
            out += problems(sub if isinstance(sub, dict) else {}, v, doc, f"{at}.{k}")
    return out


@pytest.fixture(scope="module")
def doc(server):
    r = httpx.get(server.url + "/openapi.json")  # no key needed
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return r.json()


def _body_schema(doc, path):
    return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]


def _answer_schema(doc, path, method, status="200"):
    return doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def test_lists_every_route_the_app_serves(server, doc):
    assert doc["openapi"].startswith("3.1") and doc["info"]["title"] == "distill serve"
    served = {(r.path, m.lower()) for r in server.config.app.routes for m in r.methods}
    described = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert served == described
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"  # the server has API keys
    assert doc["paths"]["/v1/chat/completions"]["post"]["security"] == [{"bearer": []}]


@pytest.mark.parametrize("path,body,refused", [
    ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3,
                              "temperature": 0.5, "logprobs": True, "top_logprobs": 2, "stop": ["\n"], "n": 2.0},
     {"max_tokens": 65}),
    ("/v1/chat/completions", {"model": "tiny", "messages": [
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 2}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "5"}], "max_tokens": 3, "tool_choice": "auto",
        "tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]},
     {"tools": [{"type": "function"}]}),
    ("/v1/completions", {"model": "tiny", "prompt": [5, 6, 7], "max_tokens": 3, "logprobs": 1, "prompt_logprobs": 2,
                         "seed": 4}, {"prompt": None}),
    ("/tokenize", {"model": "tiny", "prompt": "hello there"}, {"prompt": 3}),
])
def test_accepted_requests_and_their_answers_fit_the_schemas(doc, server, path, body, refused):
    assert problems(_body_schema(doc, path), body, doc) == []
    r = httpx.post(server.url + path, headers=AUTH, json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert problems(_answer_schema(doc, path, "post"), r.json(), doc) == []
    bad = {**body, **refused}  # the schema refuses what the server refuses
    assert problems(_body_schema(doc, path), bad, doc)
    r = httpx.post(server.url + path, headers=AUTH, json=bad, timeout=60)
    assert r.status_code == 400
    assert problems(_answer_schema(doc, path, "post", "400"), r.json(), doc) == []


def test_required_fields_match_the_server(doc, server):
    chat = doc["components"]["schemas"]["ChatCompletionRequest"]
    assert set(chat["required"]) == {"model", "messages"}
    for missing in ("model", "messages"):
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
        del body[missing]
        assert problems(_body_schema(doc, "/v1/chat/completions"), body, doc) == [f"$: missing {missing}"]
        r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == missing
    models = httpx.get(server.url + "/v1/models", headers=AUTH).json()
    assert problems(_answer_schema(doc, "/v1/models", "get"), models, doc) == []
    assert chat["properties"]["n"]["anyOf"][0]["maximum"] == 4  # the server's --max-n

"""A tiny model behind a real uvicorn server on 127.0.0.1, with recording hooks."""

from __future__ import annotations

import pytest


class Hooks:
    """Recording observer, switchable gate and per-key processors for the server under test."""

    def __init__(self):
        self.seen: list[tuple] = []
        self.decision: dict[str, str | None] = {}
        self.processors: dict[str, list] = {}

    def observer(self, name, req, resp, ts):
        self.seen.append((name, req, resp, ts))

    def gate(self, name):
        return self.decision.get(name)

    def processors_for(self, name):
        return self.processors.get(name, [])


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir):
    from distill.models.loading import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def engine(tiny_loaded):
    from distill.serve.engine import Engine

    eng = Engine(tiny_loaded.model, tiny_loaded.tokenizer, max_batch=8).start()
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def hooks():
    return Hooks()


@pytest.fixture(scope="session")
def server(engine, hooks):
    from distill.serve.app import Limits, create_app
    from distill.serve.background import BackgroundServer

    app = create_app(engine, "tiny", api_keys={"sk-alice-123": "alice", "sk-bob-456": "bob"},
                     limits=Limits(max_body_bytes=64 * 1024, max_tokens=64, max_n=4),
                     observer=hooks.observer, gate=hooks.gate, processors_for=hooks.processors_for)
    with BackgroundServer(app) as srv:
        yield srv


@pytest.fixture()
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-alice-123", max_retries=0, timeout=60)

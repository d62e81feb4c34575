"""A tiny model served on 127.0.0.1 (with an API key) for the generation-client tests."""

from __future__ import annotations

import pytest
from gen_helpers import API_KEY


@pytest.fixture(scope="session")
def gen_server(tiny_model_dir):
    from distill.models.loading import load_model
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    loaded = load_model(str(tiny_model_dir))
    engine = Engine(loaded.model, loaded.tokenizer, max_batch=8)
    app = create_app(engine, "tiny", api_keys={API_KEY: "tester"})
    with BackgroundServer(app) as srv:
        srv.model = loaded.model
        srv.spec = str(tiny_model_dir)  # what the server runs, for the policy gate
        yield srv
    engine.close()


@pytest.fixture()
def prompts():
    return [[{"role": "user", "content": f"Question {i}: what is {i} plus {i}?"}] for i in range(24)]

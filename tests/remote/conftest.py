"""The tiny stand-in teacher behind a real `distill serve` app on 127.0.0.1."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def teacher_loaded(tiny_teacher_dir):
    from distill.models.loading import load_model

    return load_model(str(tiny_teacher_dir))


@pytest.fixture(scope="session")
def teacher_server(teacher_loaded):
    from distill.serve.app import create_app
    from distill.serve.background import BackgroundServer
    from distill.serve.engine import Engine

    engine = Engine(teacher_loaded.model, teacher_loaded.tokenizer, max_batch=8)
    with BackgroundServer(create_app(engine, "tiny-teacher")) as srv:
        yield srv
    engine.close()

"""Run an ASGI app under uvicorn on a background thread (tests, benchmarks, notebooks)."""

from __future__ import annotations

import threading
import time

import uvicorn

from distill.serve.httpserver import JsonErrorH11Protocol


class BackgroundServer:
    """`with BackgroundServer(app) as srv: httpx.get(srv.url + "/v1/models")` - binds 127.0.0.1 on a free port.

    Args:
        app: the ASGI application.
        host: address to bind (keep 127.0.0.1 unless you mean to expose it).
        port: 0 picks a free port; the chosen one is `self.port`.
        log_level: uvicorn's log level.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                     lifespan="on", http=JsonErrorH11Protocol)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="distill-uvicorn", daemon=True)
        self.host, self.port = host, port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the background server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

"""Constants and helpers shared by the generation tests."""

import asyncio
import threading

API_KEY = "sk-secret-generate-7f3a9c"


class Gate:
    """ASGI wrapper that answers the first `open_for` chat requests and holds every later one until `release()`:
    a client run against it cannot finish, so a kill always lands mid-run, whatever the machine's speed. A held
    request belongs to the killed client; once released it gets a bare 503 that nobody reads."""

    def __init__(self, app, open_for: int):
        self.app, self.open_for, self.seen = app, open_for, 0
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            self.seen += 1  # one event loop: no lock needed
            if self.seen > self.open_for and not self.released.is_set():
                while not self.released.is_set():
                    await asyncio.sleep(0.01)
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

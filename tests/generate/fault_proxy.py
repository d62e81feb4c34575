"""A raw-socket HTTP proxy on 127.0.0.1 that injects faults between the client and a real server.

Faults: "429" (retry-after-ms), "429s" (Retry-After: 1 second), "500", "badjson" (200 with a truncated body),
"reset" (connection reset before answering), "reset_after" (forwarded, then reset: the server did the work),
"timeout" (no answer), "stall" (headers and half a body, then silence). Each connection carries one request.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading


class FaultProxy:
    def __init__(self, upstream_port: int, schedule: list[str], rate: float = 0.0, seed: int = 0,
                 stall_s: float = 3.0, kinds: tuple[str, ...] = ("429", "500", "badjson", "reset")):
        self.upstream_port, self.schedule, self.rate = upstream_port, list(schedule), rate
        self.rng, self.stall_s, self.kinds = random.Random(seed), stall_s, kinds
        self.requests, self.faults = 0, {}
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def fault_count(self) -> int:
        return sum(self.faults.values())

    def __enter__(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _main(self):
        asyncio.run(self._serve())

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = srv.sockets[0].getsockname()[1]
        self._ready.set()
        async with srv:
            await self._stop.wait()

    def _pick(self) -> str:
        if self.schedule:
            return self.schedule.pop(0)
        return self.rng.choice(self.kinds) if self.rng.random() < self.rate else "ok"

    @staticmethod
    def _reset(writer):
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    @staticmethod
    def _reply(writer, status: str, body: bytes, extra: str = ""):
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n{extra}\r\n".encode() + body)

    async def _handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        length = 0
        lines = head.decode("latin-1").split("\r\n")
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = await reader.readexactly(length)
        self.requests += 1
        fault = self._pick()
        if fault != "ok":
            self.faults[fault] = self.faults.get(fault, 0) + 1
        try:
            if fault == "reset":
                self._reset(writer)
                return
            if fault in ("timeout", "stall"):
                if fault == "stall":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n"
                                 b'{"id": "x", "choices": [{"ind')
                    await writer.drain()
                await asyncio.sleep(self.stall_s)
                writer.close()
                return
            if fault == "429":
                self._reply(writer, "429 Too Many Requests", b'{"error": {"message": "slow down"}}',
                            "retry-after-ms: 150\r\n")
            elif fault == "429s":
                self._reply(writer, "429 Too Many Requests", b'{"error": {"message": "slow down"}}',
                            "Retry-After: 1\r\n")
            elif fault == "500":
                self._reply(writer, "500 Internal Server Error", b'{"error": {"message": "boom"}}')
            elif fault == "badjson":
                self._reply(writer, "200 OK", b'{"id": "x", "choices": [{"message": {"content": "trunc')
            else:  # ok / reset_after: forward to the real server
                kept = [ln for ln in lines[1:] if ln and not ln.lower().startswith("connection:")]
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                up_w.write(("\r\n".join([lines[0], *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")
                           + body)
                await up_w.drain()
                answer = await up_r.read()
                up_w.close()
                if fault == "reset_after":
                    self._reset(writer)
                    return
                writer.write(answer)
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

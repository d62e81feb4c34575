"""The HTTP/1.1 protocol `distill serve` (and `BackgroundServer`) run under uvicorn: h11, with an OpenAI-shaped 400
for requests that are not valid HTTP.

uvicorn answers a request h11 cannot parse - a bad request line, a malformed header, an invalid, negative or
conflicting `Content-Length`, a bad chunked encoding (then while the app reads the body), a header block still
incomplete past h11's size limit - itself, before any ASGI app sees it, with a `text/plain` 400 "Invalid HTTP
request received." and closes the connection. No handler in the app can
intercept that, so `JsonErrorH11Protocol` replaces that one answer (uvicorn's `send_400_response`, the hook
uvicorn's h11 protocol uses for it) with the `{"error": {...}}` body every other error of the server carries,
code `invalid_http_request`. The connection is still closed afterwards: after a framing error h11 cannot tell
where the next request would start. Everything else is uvicorn's `H11Protocol` unchanged; the protocol is chosen
explicitly (`http=JsonErrorH11Protocol`), so installing httptools does not silently bring back text/plain 400s.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MALFORMED_HTTP = {"error": {
    "message": "malformed HTTP request (request line, a header or Content-Length); the connection is closed",
    "type": "invalid_request_error", "param": None, "code": "invalid_http_request"}}


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol whose 400 for an unparsable request is JSON in the OpenAI error shape."""

    def send_400_response(self, msg: str) -> None:  # noqa: ARG002 - uvicorn's fixed text, replaced by the body
        body = json.dumps(MALFORMED_HTTP).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

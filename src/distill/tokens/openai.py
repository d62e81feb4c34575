"""The OpenAI-compatible API's chat-completions URL, shared by `distill generate` and `distill trace`."""

from __future__ import annotations

from distill.errors import DistillError


def chat_url(endpoint: str, where: str = "--endpoint") -> str:
    """The chat-completions URL for an endpoint given as base URL, .../v1 or the full URL.

    A URL that is not http(s) is a DistillError naming `where` (the option it came from)."""
    url = endpoint.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise DistillError(f"the endpoint must be an http(s) URL, got {endpoint!r}", where=where,
                           fix="pass e.g. http://127.0.0.1:8000/v1")
    if url.endswith("/chat/completions"):
        return url
    if not url.endswith("/v1"):
        url += "/v1"
    return url + "/chat/completions"

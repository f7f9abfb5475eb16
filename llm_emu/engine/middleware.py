"""ASGI middleware for vLLM's own ``--middleware`` hook: refuse request fields vLLM drops before the engine.

``llm-emu serve`` adds it to the server's command line. It reads the body of each POST (the app reads it anyway),
asks ``compat.refused_body_field`` and either answers HTTP 400 in vLLM's error shape or hands the untouched
body on to vLLM. A cheap substring test keeps JSON parsing off the path of ordinary requests.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llm_emu.engine import compat

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: Body substrings worth a JSON parse (the fields ``compat.refused_body_field`` knows).
WATCHED = (b'"best_of"',)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """All messages of the request body (and a disconnect, if that came first) plus the joined body."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return messages, b"".join(chunks)


def _refusal(body: bytes) -> tuple[str, str] | None:
    if not any(w in body for w in WATCHED):
        return None
    try:
        return compat.refused_body_field(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: vLLM answers it itself


async def _send_400(send: Send, message: str, param: str) -> None:
    payload = json.dumps({"error": {"message": message, "type": "BadRequestError", "param": param,
                                    "code": 400}}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class RefuseUnemulatedFields:
    """Pure ASGI middleware (vLLM calls ``app.add_middleware(RefuseUnemulatedFields)``)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive)
        refusal = _refusal(body)
        if refusal is not None:
            await _send_400(send, *refusal)
            return
        pending = iter(messages)

        async def replay() -> Message:
            # The buffered body first, then the live channel (disconnects during a streamed answer).
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)

"""A cap on request bodies other than uploads, as a plain ASGI middleware.

FastAPI reads a JSON body whole before a route's dependencies run, so without a cap anyone,
even without a token, could make the API hold gigabytes. Uploads (``PUT .../encodings`` and
``.../attributes``) stream to disk under their own limits and are left alone. A declared
length over the cap is refused at once; a body that turns out longer is stopped as it
arrives. Both are 413.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException

__all__ = ["BodyLimit"]

Scope = dict[str, Any]
Message = dict[str, Any]
_UPLOADS = ("/encodings", "/attributes")


class BodyLimit:
    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"] == "PUT"
                                       and scope["path"].endswith(_UPLOADS)):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # FastAPI turns this into the response
                    raise HTTPException(413, self._message)
            return message

        await self.app(scope, counted, send)

    @property
    def _message(self) -> str:
        return (f"a request body may hold at most {self.max_bytes:,} bytes (uploads have "
                f"their own limits)")

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"detail": self._message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

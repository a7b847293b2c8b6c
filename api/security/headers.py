"""Security headers on every response, as a plain ASGI middleware (streamed bodies pass
through untouched).

nosniff, no framing, no referrer; ``Cache-Control: no-store`` on everything under
``/projects`` and ``/admin`` (results, tokens, audit), and HSTS when served over TLS. The
server banner is turned off in uvicorn's settings.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SecurityHeaders"]

Scope = dict[str, Any]
Message = dict[str, Any]


class SecurityHeaders:
    def __init__(self, app: Any, *, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(("/projects", "/admin"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"),
                            (b"content-security-policy", b"frame-ancestors 'none'"),
                            (b"referrer-policy", b"no-referrer")]
                if private:
                    headers.append((b"cache-control", b"no-store"))
                if self.tls:
                    headers.append((b"strict-transport-security",
                                    b"max-age=63072000; includeSubDomains"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)

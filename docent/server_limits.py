"""Bounds on what one request and the server's process may take: request bodies
(BodyLimit, an ASGI middleware) and glibc's malloc arenas (limit_malloc_arenas)."""

from __future__ import annotations

from docent.server_models import error_body


class BodyLimit:
    """Request bodies bounded before they are read (413): server.max_body_kb, and
    ui.max_upload_mb for uploads. A body without Content-Length is counted as it comes."""

    def __init__(self, app, limit: int, upload_limit: int):
        self.app, self.limit, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["path"].startswith("/v1/collections/")
        limit = self.upload_limit if upload else self.limit
        setting = "ui.max_upload_mb" if upload else "server.max_body_kb"
        size = dict(scope["headers"]).get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > limit):
            return await self._too_large(send, limit, setting)
        seen, over, started = 0, False, False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def watched(message):
            nonlocal started
            if over:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, counted, watched)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._too_large(send, limit, setting)

    @staticmethod
    async def _too_large(send, limit: int, setting: str) -> None:
        from starlette.responses import JSONResponse
        body = error_body(f"the request body is over {limit // 1024} KB (setting {setting})", "invalid_request_error")
        await JSONResponse(body, 413)({"type": "http"}, None, send)


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Ask glibc for at most `arenas` malloc arenas (as MALLOC_ARENA_MAX does), before the
    server's threads start: with one arena per busy thread, memory grew by ~80 MB every
    200 requests at 16 clients and did not come back; with 2 it stays flat
    (benchmarks/serve.py). A no-op where the C library is not glibc or the variable is set."""
    import ctypes
    import os
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, arenas))      # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False

"""`GET /embed.js`: a service's widget script (a custom element), served with the helpers both widgets share in
front of it — one file, no build step. Cacheable (revalidated by its ETag), gzipped for clients that take it, and
open to the sites CORS_ORIGINS lists like every route."""

import gzip
import hashlib
from pathlib import Path

from aiohttp import web

KIT = Path(__file__).with_name("static") / "embed-kit.js"
MAX_AGE_S = 3600


def script(widget: Path) -> bytes:
    """The kit and the widget in one strict-mode function scope: nothing leaks into the embedding page but the
    custom element itself."""
    return "".join(['(() => {\n"use strict";\n', KIT.read_text(encoding="utf-8"), "\n",
                    widget.read_text(encoding="utf-8"), "})();\n"]).encode("utf-8")


def install(app: web.Application, widget: Path) -> None:
    body = script(widget)
    zipped = gzip.compress(body, compresslevel=9, mtime=0)
    etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'

    async def embed_js(request: web.Request) -> web.Response:
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE_S}", "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff"}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=zipped, content_type="text/javascript", charset="utf-8", headers=headers)
        return web.Response(body=body, content_type="text/javascript", charset="utf-8", headers=headers)

    app.router.add_get("/embed.js", embed_js)

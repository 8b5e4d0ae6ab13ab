"""The search page's server: static files plus a JSON API that calls the library.

``create_app(conn, index=...)`` returns an ASGI app; ``oskit ui`` hands it to uvicorn. The browser
never talks to the cluster: every request goes through :func:`kit.job.search.search` /
:func:`kit.job.similar.similar` and so through :mod:`kit.cluster.client`.

API (errors: ``{"error": {"message", "hint", "status"}}``):

* ``GET /api/info`` → ``{"index", "cluster", "modes", "fields", "bands"}``
* ``GET /api/search?q=&mode=vector&field=image&k=30&filter=key=value`` → ``{"hits": [...], "took_ms"}``
* ``POST /api/similar`` (multipart: ``photo`` file, optional ``k``) → ``{"hits": [...], "took_ms"}``

Hits carry ``id``, ``score``, ``label`` (similar only) and ``source`` (thumbnail and metadata included,
vectors and image bytes never).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from kit.errors import ClusterError, KitError, Unreachable

__all__ = ["MAX_UPLOAD_BYTES", "create_app"]

log = logging.getLogger("kit.job.ui")

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 25 * 1024 * 1024


def _status(err: KitError) -> int:
    if isinstance(err, Unreachable):
        return 502
    if isinstance(err, ClusterError):
        return 502 if (err.status is None or err.status >= 500) else 400
    return 400


def create_app(conn: Mapping[str, Any] | Any, *, index: str = "images", bands: Any = None, max_k: int = 200) -> Any:
    """Build the search page app. ``conn`` is :func:`kit.cluster.client.connect` keyword arguments or a Client."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from kit.job.search import FIELDS, MODES
    from kit.job.search import search as run_search
    from kit.job.similar import Bands
    from kit.job.similar import similar as run_similar

    if isinstance(conn, Mapping):
        from kit.cluster.client import connect

        client = connect(**conn)
        cluster_url = str(conn.get("url", ""))
    else:
        client = conn
        cluster_url = str(getattr(conn, "url", ""))
    the_bands = bands if bands is not None else Bands()

    def error(message: str, status: int = 400, hint: str | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "hint": hint, "status": status}}, status_code=status)

    def kit_error(err: KitError) -> JSONResponse:
        status = _status(err)
        log.warning("ui request failed: %s", err)
        return error(str(err), status, err.hint)

    def parse_k(raw: Any) -> int:
        try:
            k = int(raw if raw not in (None, "") else 30)
        except (TypeError, ValueError):
            raise KitError(f"k must be a number (got {raw!r})") from None
        if not 1 <= k <= max_k:
            raise KitError(f"k must be between 1 and {max_k} (got {k})")
        return k

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def info(request: Request) -> Response:
        return JSONResponse({"index": index, "cluster": cluster_url, "modes": list(MODES), "fields": list(FIELDS),
                             "bands": {"identical": the_bands.identical, "near_identical": the_bands.near_identical,
                                       "similar": the_bands.similar, "source": the_bands.source}})

    async def api_search(request: Request) -> Response:
        q = request.query_params
        try:
            k = parse_k(q.get("k"))
            template = q.get("template")
            result = await run_in_threadpool(
                run_search, client, q.get("q", ""), index=index, k=k, mode=q.get("mode", "vector"),
                field=q.get("field", "image"), filters=q.getlist("filter"),
                prompt_template="a picture of a {term}" if template is None else (template or None),
                all_terms=q.get("all_terms") in ("1", "true", "on"), thumbnails=True)
        except KitError as err:
            return kit_error(err)
        body = result.to_json(thumbnail=True)
        body["took_ms"] = round(result.took_ms, 1)
        return JSONResponse(body)

    async def api_similar(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 64 * 1024:
            return error(f"the photo is too large (limit {MAX_UPLOAD_BYTES // (1024 * 1024)} MB)", 413)
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception as exc:  # noqa: BLE001 - starlette/multipart raise assorted parse errors
            return error(f"could not read the upload: {exc}", 400)
        upload = form.get("photo")
        if upload is None or isinstance(upload, str):
            return error("no photo in the upload (form field 'photo')", 400)
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        await form.close()
        if len(data) > MAX_UPLOAD_BYTES:
            return error(f"the photo is too large (limit {MAX_UPLOAD_BYTES // (1024 * 1024)} MB)", 413)
        try:
            k = parse_k(form.get("k") if isinstance(form.get("k"), str) else None)
            result = await run_in_threadpool(run_similar, client, data, index=index, k=k, bands=the_bands,
                                             thumbnails=True)
        except KitError as err:
            return kit_error(err)
        body = result.to_json(thumbnail=True)
        body["took_ms"] = round(result.took_ms, 1)
        return JSONResponse(body)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(f"no such page: {request.url.path}", 404)

    routes = [
        Route("/", page),
        Route("/api/info", info),
        Route("/api/search", api_search),
        Route("/api/similar", api_similar, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.state.client = client
    return app

"""The node's REST layer: ``create_app(data_dir)`` → an ASGI app speaking OpenSearch's API subset.

Every error leaves as OpenSearch's envelope (``{"error": {...}, "status": N}``). Plugin routes
(ML Commons, ingest and search pipelines) are mounted when their modules are present.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hmac
import inspect
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

from starlette.datastructures import State
from starlette.responses import Response

from kit.node.engine import Engine
from kit.node.errors import ApiError, SimpleApiError, bad_request, body_required
from kit.node.index_state import INDEX_SETTING_DEFAULTS
from kit.node.params import COUNT_PARAMS, SEARCH_PARAMS, check_params
from kit.node.routing import NodeRequest, Route, Router, dumps, json_response, loads
from kit.node.settings import nest

__all__ = ["MAX_CONTENT_LENGTH", "NodeApp", "PLUGINS", "build_router", "create_app", "parse_byte_size"]

log = logging.getLogger(__name__)

# What `_cat/plugins` lists: the plugins whose APIs this node implements (component, version follows node).
# what a 2.19/3.x distribution with ML Commons carries (ML Commons needs the job scheduler)
PLUGINS = ["opensearch-job-scheduler", "opensearch-knn", "opensearch-ml", "opensearch-neural-search"]
LUCENE_FOR = {"3": "10.3.1", "2": "9.12.2"}
_METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD"]


MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # http.max_content_length: 100mb, as OpenSearch
_BYTE_UNITS = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}


def parse_byte_size(text: str) -> int:
    """OpenSearch's ByteSizeValue for ``http.max_content_length``: ``104857600``, ``100mb``, ``512kb``."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*(b|kb|mb|gb)?\s*", str(text).lower())
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"failed to parse [{text}] as a byte size (e.g. 100mb, 512kb, 104857600)")
    return int(m.group(1)) * _BYTE_UNITS[m.group(2) or "b"]


def create_app(data_dir: Path, *, version: str = "3.3.0", auth: tuple[str, str] | None = None,
               max_content_length: int = MAX_CONTENT_LENGTH) -> "NodeApp":
    """The node as an ASGI app; the engine lives on ``app.state.engine``. Request bodies over
    ``max_content_length`` bytes get OpenSearch's empty 413."""
    engine = Engine(Path(data_dir), version=version)
    router = build_router(engine)
    app = NodeApp(engine, router, auth)
    app.max_content_length = max_content_length
    return app


class NodeApp:
    """A bare ASGI app: every path goes to :func:`handle` (the node has its own router).

    Starlette's routing, middleware and ``Request`` wrapping added ~0.3 ms per request and
    ``run_in_threadpool`` another hop; a k-NN query is ~1 ms, so they were most of its latency.
    Handlers' Starlette ``Response`` objects are still what gets sent.
    """

    def __init__(self, engine: Engine, router: Router, auth: tuple[str, str] | None) -> None:
        self.engine = engine
        self.router = router
        self.auth = auth
        self.max_content_length = MAX_CONTENT_LENGTH
        self.state = State()
        self.state.engine = engine
        self.state.router = router
        # Threads for sync handlers: a plain executor hop costs about half of anyio's
        # run_in_threadpool; 40 threads is the limit Starlette's default capacity limiter had.
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=40, thread_name_prefix="oskit-node")

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})

    async def _lifespan(self, receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    self.executor.shutdown(wait=False)
                    self.engine.close()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which logs it
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["method"] == "OPTIONS":
            # RestController.handleOptionsRequest: 200, empty body, the path's methods in Allow
            resp: Response = Response(b"", status_code=200, media_type="text/plain; charset=UTF-8",
                                      headers={"Allow": ",".join(self.router.allowed(scope["path"]))})
        else:  # other methods outside the API (PATCH, TRACE…) get the router's 405, as OpenSearch answers
            resp = await handle(_RawRequest(scope, receive), self.engine, self.router, self.auth, self.executor,
                                self.max_content_length)
        await send({"type": "http.response.start", "status": resp.status_code, "headers": resp.raw_headers})
        await send({"type": "http.response.body", "body": resp.body})


class _Disconnected(Exception):
    """The client went away before its request body arrived."""


class _TooLarge(Exception):
    """The body is over ``http.max_content_length`` (Netty's HttpObjectAggregator answers 413)."""


class _RawRequest:
    """What :func:`handle` needs from an ASGI request, read straight from the scope (lazily)."""

    __slots__ = ("scope", "receive", "method", "_query", "_headers")

    def __init__(self, scope: dict[str, Any], receive: Callable[[], Any]) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self._query: dict[str, str] | None = None
        self._headers: dict[str, str] | None = None

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        # Starlette's request.url.path (what the node has always routed on) re-escapes these and
        # normalises through urlsplit; other paths come out unchanged, so only these pay for it.
        if any(c in path for c in "?#\\\t\r\n") or self.scope.get("root_path"):
            from starlette.datastructures import URL

            path = URL(scope=self.scope).path
        return path

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            qs = self.scope.get("query_string", b"")
            # as dict(starlette QueryParams): parse_qsl with blanks kept, the last value of a key wins
            self._query = dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}
        return self._query

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            self._headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.scope["headers"]}
        return self._headers

    def header(self, name: bytes) -> str | None:
        """The first value of a (lower-case) header, as Starlette's ``Headers.get``."""
        for k, v in self.scope["headers"]:
            if k == name:
                return str(v.decode("latin-1"))
        return None

    async def body(self, limit: int | None = None) -> bytes:
        if limit is not None:
            declared = self.header(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _TooLarge()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size > limit:
                    raise _TooLarge()
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# media types RestController parses a body as (XContentType / MediaTypeRegistry, 2.19); smile, yaml and cbor
# are recognised there too and reach the handler here, which reads JSON
_BODY_MEDIA_TYPES = frozenset(("application/json", "application/x-ndjson", "application/*", "application/smile",
                               "application/yaml", "application/cbor", "application/vnd.opensearch+json"))


def _check_content_type(header: str | None) -> None:
    """A body with a Content-Type OpenSearch does not parse is refused before any handler runs (406).
    No header at all is let through (curl and many scripts send none; OpenSearch would refuse)."""
    if header is None:
        return
    media = header.split(";", 1)[0].strip().lower()
    if media not in _BODY_MEDIA_TYPES:
        raise SimpleApiError(406, f"Content-Type header [{header}] is not supported")


async def handle(request: _RawRequest, engine: Engine, router: Router, auth: tuple[str, str] | None,
                 executor: concurrent.futures.Executor | None = None,
                 max_content_length: int | None = MAX_CONTENT_LENGTH) -> Response:
    """One request → one response (never raises); sync handlers run on ``executor`` (None: the
    event loop's default executor)."""
    method = request.method
    path = request.path
    t0 = time.perf_counter()
    try:
        if auth is not None:
            _check_auth(request, auth)
        route, params = router.match(method, path)
        body = await request.body(max_content_length)
        if body:
            _check_content_type(request.header(b"content-type"))
        query = request.query
        req = NodeRequest(method, path, params, query, body, engine, request.headers)
        if route.is_async:
            result = await route.handler(req)  # type: ignore[misc]
        else:
            result = await asyncio.get_running_loop().run_in_executor(executor, route.handler, req)
        if isinstance(result, Response):
            resp = result
        else:
            resp = _render(result, 200, query)
    except ApiError as exc:
        resp = _render(exc.body(), exc.status, request.query)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Basic realm="OpenSearch Security"'
        if isinstance(exc, SimpleApiError) and exc.allow:
            resp.headers["Allow"] = ",".join(exc.allow)
    except _Disconnected:
        return Response(b"", status_code=400)  # nobody is listening; nothing was done
    except _TooLarge:
        return Response(b"", status_code=413)  # nothing was read into the node, nothing was done
    except RecursionError:  # a body nested within the JSON limit but too deep for a parser (query, mapping)
        err = ApiError(400, "x_content_parse_exception", "the request nests too deeply to be parsed")
        resp = _render(err.body(), 400, request.query)
    except Exception as exc:  # noqa: BLE001 - last resort: never drop the connection, answer like OpenSearch
        log.exception("unhandled error on %s %s", method, path)
        err = ApiError(500, "exception", f"{type(exc).__name__}: {exc}")
        resp = _render(err.body(), 500, {})
    log.debug("%s %s -> %s (%.1f ms)", method, path, resp.status_code, (time.perf_counter() - t0) * 1000)
    if method == "HEAD":
        return Response(b"", status_code=resp.status_code, headers={"content-type": resp.media_type or "application/json"})
    return resp


def _render(obj: Any, status: int, query: dict[str, str]) -> Response:
    if "filter_path" in query:
        obj = _filter_path(obj, query["filter_path"])
    if query.get("pretty") in ("", "true"):
        data = json.dumps(json.loads(dumps(obj)), indent=2, ensure_ascii=False).encode() + b"\n"
        return Response(data, status_code=status, media_type="application/json; charset=UTF-8")
    return json_response(obj, status)


def _filter_path(obj: Any, spec: str) -> Any:
    import fnmatch

    pats = [p.split(".") for p in spec.split(",") if p]

    def walk(o: Any, pats: list[list[str]]) -> Any:
        if not pats:
            return None
        if any(not p for p in pats):
            return o
        if isinstance(o, list):
            items = [walk(x, pats) for x in o]
            items = [x for x in items if x is not None]
            return items or None
        if not isinstance(o, dict):
            return None
        out = {}
        for k, v in o.items():
            sub = []
            for p in pats:
                if p[0] == "**":
                    sub.append(p)
                    sub.append(p[1:])
                elif fnmatch.fnmatchcase(k, p[0]):
                    sub.append(p[1:])
            if sub:
                r = walk(v, sub)
                if r is not None:
                    out[k] = r
        return out or None

    if isinstance(obj, dict) and "error" in obj:
        return obj
    res = walk(json.loads(dumps(obj)), pats)
    return res if res is not None else {}


def _check_auth(request: _RawRequest, auth: tuple[str, str]) -> None:
    header = request.header(b"authorization") or ""
    if header.lower().startswith("basic "):
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            user, pw = "", ""
        if hmac.compare_digest(user, auth[0]) and hmac.compare_digest(pw, auth[1]):
            return
    raise ApiError(401, "security_exception", "Unauthorized")


# ---------------------------------------------------------------------------------------- helpers
def _refresh(req: NodeRequest) -> bool | str:
    v = req.query.get("refresh")
    if v is None or v == "false":
        return False
    if v in ("", "true"):
        return True
    if v == "wait_for":
        return "wait_for"
    raise bad_request(f"Unknown value for refresh: [{v}].")


def _opt_int(req: NodeRequest, name: str) -> int | None:
    v = req.query.get(name)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise bad_request(f"Failed to parse int parameter [{name}] with value [{v}]") from None


def _with_status(pair: tuple[dict[str, Any], int]) -> Response:
    return json_response(pair[0], pair[1])


# ---------------------------------------------------------------------------------------- cluster
def info(req: NodeRequest) -> dict[str, Any]:
    e = req.engine
    major = e.version.split(".")[0]
    return {
        "name": e.node_name, "cluster_name": e.cluster_name, "cluster_uuid": e.cluster_uuid,
        "version": {"distribution": "opensearch", "number": e.version, "build_type": "tar",
                    "build_hash": "oskit-embedded-node", "build_date": "2025-10-01T00:00:00.000000Z",
                    "build_snapshot": False, "lucene_version": LUCENE_FOR.get(major, "10.3.1"),
                    "minimum_wire_compatibility_version": "2.19.0" if major == "3" else "7.10.0",
                    "minimum_index_compatibility_version": "2.0.0" if major == "3" else "7.0.0"},
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    }


def _health_of(ix: Any) -> str:
    reps = str(ix.settings.get("index.number_of_replicas", "1"))
    auto = ix.settings.get("index.auto_expand_replicas")
    return "green" if reps == "0" or (auto and str(auto).startswith("0")) else "yellow"


def cluster_health(req: NodeRequest) -> Response:
    e = req.engine
    level, attribute = req.query.get("level"), req.query.get("awareness_attribute")
    # ClusterHealthRequest.validate
    if level == "awareness_attributes" and req.path_params.get("index"):
        raise ApiError(400, "action_request_validation_exception",
                       "Validation Failed: 1: awareness_attribute is not a supported parameter with index health;")
    if level != "awareness_attributes" and attribute is not None:
        raise ApiError(400, "action_request_validation_exception",
                       "Validation Failed: 1: level=awareness_attributes is required with awareness_attribute parameter;")
    targets = e.resolve(req.path_params.get("index"), expand_hidden=True) if req.path_params.get("index") \
        else list(e.indices.values())
    statuses = [_health_of(ix) for ix in targets]
    status = "yellow" if "yellow" in statuses else "green"
    primaries = sum(int(ix.settings.get("index.number_of_shards", "1")) for ix in targets)
    unassigned = sum(int(ix.settings.get("index.number_of_shards", "1")) for ix, s in zip(targets, statuses)
                     if s == "yellow")
    rank = {"green": 0, "yellow": 1, "red": 2}
    want = req.query.get("wait_for_status")
    timed_out = bool(want) and rank.get(status, 2) > rank.get(want, 2)
    body = {"cluster_name": e.cluster_name, "status": status, "timed_out": timed_out, "number_of_nodes": 1,
            "number_of_data_nodes": 1, "discovered_master": True, "discovered_cluster_manager": True,
            "active_primary_shards": primaries, "active_shards": primaries, "relocating_shards": 0,
            "initializing_shards": 0, "unassigned_shards": unassigned, "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0}
    percent = 100.0 if not primaries else round(100.0 * primaries / (primaries + unassigned), 1)
    if req.flag("human"):  # XContentBuilder.humanReadableField: the readable value next to the raw one
        body["task_max_waiting_in_queue"] = "0s"
    body["task_max_waiting_in_queue_millis"] = 0
    if req.flag("human"):
        body["active_shards_percent"] = f"{percent:.1f}%"
    body["active_shards_percent_as_number"] = percent
    if req.query.get("level") == "indices":
        body["indices"] = {ix.name: {"status": s, "number_of_shards": 1, "number_of_replicas":
                                     int(ix.settings.get("index.number_of_replicas", "1")),
                                     "active_primary_shards": 1, "active_shards": 1, "relocating_shards": 0,
                                     "initializing_shards": 0, "unassigned_shards": 1 if s == "yellow" else 0}
                           for ix, s in zip(targets, statuses)}
    if level == "awareness_attributes":
        # ClusterAwarenessHealth: the attribute asked for, else cluster.routing.allocation.awareness.attributes;
        # each maps the values its data nodes carry, and this one node carries no node.attr.* values
        if attribute:
            names = [attribute]
        else:
            configured = e.settings.get("cluster.routing.allocation.awareness.attributes") or []
            names = [a.strip() for a in configured.split(",")] if isinstance(configured, str) else list(configured)
        body["awareness_attributes"] = {name: {} for name in names if name}
    return json_response(body, 408 if timed_out else 200)


def get_cluster_settings(req: NodeRequest) -> dict[str, Any]:
    return req.engine.settings.render(flat=req.flag("flat_settings"), include_defaults=req.flag("include_defaults"))


def put_cluster_settings(req: NodeRequest) -> dict[str, Any]:
    return req.engine.settings.update(req.json_object(required=True))


def _cat(req: NodeRequest, columns: list[str], rows: list[dict[str, Any]]) -> Response:
    wanted = [c.strip() for c in req.query["h"].split(",")] if req.query.get("h") else columns
    if req.query.get("s"):
        for key in reversed(req.query["s"].split(",")):
            col, _, order = key.partition(":")
            rows.sort(key=lambda r: str(r.get(col, "")), reverse=order == "desc")
    if req.query.get("format") == "json":
        return json_response([{c: _cat_val(r.get(c)) for c in wanted} for r in rows])
    table = [[_cat_val(r.get(c)) or "" for c in wanted] for r in rows]
    if req.flag("v"):
        table.insert(0, wanted)
    widths = [max((len(str(row[i])) for row in table), default=0) for i in range(len(wanted))]
    text = "".join(" ".join(str(v).ljust(widths[i]) for i, v in enumerate(row)).rstrip() + "\n" for row in table)
    return Response(text.encode(), media_type="text/plain; charset=UTF-8")


def _cat_val(v: Any) -> Any:
    return None if v is None else str(v)


def cat_plugins(req: NodeRequest) -> Response:
    e = req.engine
    rows = [{"id": e.node_id[:4], "name": e.node_name, "component": p, "version": e.version + ".0",  # 2.19.6.0
             "description": "implemented by the oskit embedded node", "type": "isolated"} for p in PLUGINS]
    return _cat(req, ["name", "component", "version"], rows)


def cat_indices(req: NodeRequest) -> Response:
    e = req.engine
    expr = req.path_params.get("index")
    targets = e.resolve(expr, expand_hidden=req.query.get("expand_wildcards") in ("all", "hidden"))
    rows = []
    for ix in targets:
        n = ix.doc_count()
        rows.append({"health": _health_of(ix), "status": "open", "index": ix.name, "uuid": ix.uuid,
                     "pri": ix.settings.get("index.number_of_shards", "1"),
                     "rep": ix.settings.get("index.number_of_replicas", "1"), "docs.count": n, "docs.deleted": 0,
                     "store.size": "0b", "pri.store.size": "0b",
                     "creation.date": ix.settings.get("index.creation_date")})
    return _cat(req, ["health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
                      "store.size", "pri.store.size"], rows)


def cat_health(req: NodeRequest) -> Response:
    e = req.engine
    statuses = [_health_of(ix) for ix in e.indices.values()]
    status = "yellow" if "yellow" in statuses else "green"
    rows = [{"epoch": int(time.time()), "timestamp": time.strftime("%H:%M:%S"), "cluster": e.cluster_name,
             "status": status, "node.total": 1, "node.data": 1, "shards": len(statuses), "pri": len(statuses),
             "relo": 0, "init": 0, "unassign": statuses.count("yellow"), "pending_tasks": 0,
             "max_task_wait_time": "-", "active_shards_percent": "100.0%"}]
    return _cat(req, list(rows[0]), rows)


def cat_aliases(req: NodeRequest) -> Response:
    rows = [{"alias": a, "index": ix.name, "filter": "-", "routing.index": spec.get("index_routing", "-"),
             "routing.search": spec.get("search_routing", "-"),
             "is_write_index": str(spec.get("is_write_index", "-")).lower()}
            for ix in req.engine.indices.values() for a, spec in ix.aliases.items()]
    return _cat(req, ["alias", "index", "filter", "routing.index", "routing.search", "is_write_index"], rows)


def cat_nodes(req: NodeRequest) -> Response:
    import os

    e = req.engine
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    rows = [{"id": e.node_id if req.flag("full_id") else e.node_id[:4], "ip": "127.0.0.1", "heap.percent": 0,
             "ram.percent": 0, "cpu": 0, "load_1m": f"{load[0]:.2f}", "load_5m": f"{load[1]:.2f}",
             "load_15m": f"{load[2]:.2f}", "node.role": "dimr", "node.roles": "cluster_manager,data,ingest,remote_cluster_client",
             "cluster_manager": "*", "name": e.node_name}]
    return _cat(req, ["ip", "heap.percent", "ram.percent", "cpu", "load_1m", "load_5m", "load_15m", "node.role",
                      "node.roles", "cluster_manager", "name"], rows)


def nodes_info(req: NodeRequest) -> dict[str, Any]:
    import os
    import platform

    e = req.engine
    plugins = [{"name": p, "version": e.version + ".0", "opensearch_version": e.version, "java_version": "21",
                "description": "implemented by the oskit embedded node", "classname": p, "custom_foldername": "",
                "extended_plugins": [], "has_native_controller": False} for p in PLUGINS]
    node = {"name": e.node_name, "transport_address": "127.0.0.1:9300", "host": "127.0.0.1", "ip": "127.0.0.1",
            "version": e.version, "build_type": "tar", "build_hash": "oskit-embedded-node",
            "total_indexing_buffer": 0, "roles": ["cluster_manager", "data", "ingest", "remote_cluster_client"],
            "attributes": {"shard_indexing_pressure_enabled": "true"},
            "os": {"name": platform.system(), "arch": platform.machine(), "available_processors": os.cpu_count() or 1,
                   "allocated_processors": os.cpu_count() or 1},
            "process": {"id": os.getpid(), "mlockall": False}, "plugins": plugins, "modules": []}
    return {"_nodes": {"total": 1, "successful": 1, "failed": 0}, "cluster_name": e.cluster_name,
            "nodes": {e.node_id: node}}


# ---------------------------------------------------------------------------------------- indices
def create_index(req: NodeRequest) -> dict[str, Any]:
    return req.engine.create_index(req.path_params["index"], req.json_object())


def index_exists(req: NodeRequest) -> Response:
    e = req.engine
    name = req.path_params["index"]
    try:
        found = bool(e.resolve(name, allow_no_indices=False, expand_hidden=True))
    except ApiError:
        found = False
    return Response(b"", status_code=200 if found else 404)


def get_index(req: NodeRequest) -> dict[str, Any]:
    return req.engine.get_index(req.path_params["index"], flat=req.flag("flat_settings"),
                                include_defaults=req.flag("include_defaults"),
                                ignore_unavailable=req.flag("ignore_unavailable"))


def delete_index(req: NodeRequest) -> dict[str, Any]:
    return req.engine.delete_index(req.path_params["index"], ignore_unavailable=req.flag("ignore_unavailable"))


def get_mapping(req: NodeRequest) -> dict[str, Any]:
    targets = req.engine.resolve(req.path_params.get("index"), expand_hidden=bool(req.path_params.get("index")))
    return {ix.name: {"mappings": ix.mapping.render()} for ix in targets}


def put_mapping(req: NodeRequest) -> dict[str, Any]:
    return req.engine.put_mapping(req.path_params["index"], req.json_object(required=True))


def get_settings(req: NodeRequest) -> dict[str, Any]:
    import fnmatch

    e = req.engine
    targets = e.resolve(req.path_params.get("index"), expand_hidden=bool(req.path_params.get("index")))
    names = req.path_params.get("name")
    out = {}
    for ix in targets:
        flat = dict(ix.settings)
        if names:
            pats = names.split(",")
            flat = {k: v for k, v in flat.items() if any(fnmatch.fnmatchcase(k, p) for p in pats)}
        entry: dict[str, Any] = {"settings": dict(sorted(flat.items())) if req.flag("flat_settings") else nest(flat)}
        if req.flag("include_defaults"):
            defaults = {k: v for k, v in INDEX_SETTING_DEFAULTS.items() if k not in ix.settings}
            if names:
                defaults = {k: v for k, v in defaults.items() if any(fnmatch.fnmatchcase(k, p) for p in pats)}
            entry["defaults"] = dict(sorted(defaults.items())) if req.flag("flat_settings") else nest(defaults)
        out[ix.name] = entry
    return out


def put_settings(req: NodeRequest) -> dict[str, Any]:
    return req.engine.put_settings(req.path_params.get("index", "_all"), req.json_object(required=True))


def refresh(req: NodeRequest) -> dict[str, Any]:
    # Writes are visible as soon as they are acknowledged; refresh only validates the target.
    targets = req.engine.resolve(req.path_params.get("index"), ignore_unavailable=req.flag("ignore_unavailable"))
    n = len(targets)
    total = sum(1 + ix.replicas() for ix in targets)
    return {"_shards": {"total": total, "successful": n, "failed": 0}}


def put_alias(req: NodeRequest) -> dict[str, Any]:
    """PUT/POST ``[/{index}]/_alias[es][/{name}]``: index and alias from the path or the body."""
    body = dict(req.json_object())
    spec: dict[str, Any] = dict(body)
    if "index" in req.path_params:
        spec.pop("indices", None)
        spec["index"] = req.path_params["index"]
    if "name" in req.path_params:
        spec.pop("aliases", None)
        spec["alias"] = req.path_params["name"]
    if "index" not in spec and "indices" not in spec:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
    if "alias" not in spec and "aliases" not in spec:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: alias is missing;")
    return req.engine.update_aliases([{"add": spec}])


def delete_alias(req: NodeRequest) -> dict[str, Any]:
    return req.engine.update_aliases([{"remove": {"index": req.path_params["index"],
                                                  "aliases": req.path_params["name"].split(",")}}])


def post_aliases(req: NodeRequest) -> dict[str, Any]:
    body = req.json_object(required=True)
    return req.engine.update_aliases(body.get("actions"))  # type: ignore[arg-type]


def get_alias(req: NodeRequest) -> Response:
    import fnmatch

    e = req.engine
    index = req.path_params.get("index")
    name = req.path_params.get("name")
    targets = e.resolve(index, expand_hidden=bool(index))
    pats = name.split(",") if name else None
    out: dict[str, Any] = {}
    found_any = False
    for ix in targets:
        al = {a: s for a, s in ix.aliases.items() if pats is None or any(fnmatch.fnmatchcase(a, p) for p in pats)}
        if al or (pats is None):
            out[ix.name] = {"aliases": al}
        found_any = found_any or bool(al)
    if pats is not None and not found_any:
        missing = ",".join(p for p in pats)
        return json_response({"error": f"alias [{missing}] missing", "status": 404}, 404)
    return json_response(out)


def put_template(req: NodeRequest) -> dict[str, Any]:
    return req.engine.put_template(req.path_params["name"], req.json_object(required=True),
                                   create=req.flag("create"))


def get_template(req: NodeRequest) -> dict[str, Any]:
    return req.engine.get_templates(req.path_params.get("name"))


def template_exists(req: NodeRequest) -> Response:
    try:
        req.engine.get_templates(req.path_params["name"])
        return Response(b"", status_code=200)
    except ApiError:
        return Response(b"", status_code=404)


def delete_template(req: NodeRequest) -> dict[str, Any]:
    return req.engine.delete_template(req.path_params["name"])


def put_legacy_template(req: NodeRequest) -> dict[str, Any]:
    return req.engine.put_legacy_template(req.path_params["name"], req.json_object(required=True),
                                          create=req.flag("create"), order=req.query.get("order"))


def get_legacy_template(req: NodeRequest) -> Response:
    out, ok = req.engine.get_legacy_templates(req.path_params.get("name"), flat=req.flag("flat_settings"))
    return json_response(out, 200 if ok else 404)


def legacy_template_exists(req: NodeRequest) -> Response:
    _, ok = req.engine.get_legacy_templates(req.path_params["name"])
    return Response(b"", status_code=200 if ok else 404)


def delete_legacy_template(req: NodeRequest) -> dict[str, Any]:
    return req.engine.delete_legacy_template(req.path_params["name"])


# ---------------------------------------------------------------------------------------- documents
def _source_json(req: NodeRequest) -> tuple[dict[str, Any], str | None]:
    data = req.json()
    if data is None:
        raise body_required()
    if not isinstance(data, dict):
        raise ApiError(400, "mapper_parsing_exception", "failed to parse",
                       caused_by={"type": "not_x_content_exception",
                                  "reason": "Compressor detection can only be called on some xcontent bytes or "
                                            "compressed xcontent bytes"})
    try:
        raw = req.body.decode("utf-8").strip()
    except UnicodeDecodeError:
        raw = None
    return data, raw


def index_doc(req: NodeRequest) -> Response:
    src, raw = _source_json(req)
    op_type = req.query.get("op_type", "index")
    if req.path.rstrip("/").split("/")[-2:-1] == ["_create"]:
        op_type = "create"
    return _with_status(req.engine.index_doc_status(
        req.path_params["index"], req.path_params.get("id"), src, op_type=op_type,
        pipeline=req.query.get("pipeline"), refresh=_refresh(req), if_seq_no=_opt_int(req, "if_seq_no"),
        if_primary_term=_opt_int(req, "if_primary_term"), version=_opt_int(req, "version"),
        version_type=req.query.get("version_type"), source_json=raw))


def get_doc(req: NodeRequest) -> Response:
    q = req.query
    fetch = q.get("_source") not in ("false",)
    inc = q.get("_source_includes") or (q.get("_source") if q.get("_source") not in (None, "true", "false", "")
                                        else None)
    res = req.engine.get_doc(req.path_params["index"], req.path_params["id"], source_includes=inc,
                             source_excludes=q.get("_source_excludes"), fetch_source=fetch)
    return json_response(res, 200 if res.get("found") else 404)


def get_source(req: NodeRequest) -> Response:
    res = req.engine.get_doc(req.path_params["index"], req.path_params["id"],
                             source_includes=req.query.get("_source_includes"),
                             source_excludes=req.query.get("_source_excludes"))
    if not res.get("found"):
        raise ApiError(404, "resource_not_found_exception",
                       f"Document not found [{res['_index']}]/[{req.path_params['id']}]")
    return json_response(res["_source"])


def delete_doc(req: NodeRequest) -> Response:
    return _with_status(req.engine.delete_doc_status(req.path_params["index"], req.path_params["id"],
                                                     refresh=_refresh(req), if_seq_no=_opt_int(req, "if_seq_no"),
                                                     if_primary_term=_opt_int(req, "if_primary_term")))


def update_doc(req: NodeRequest) -> Response:
    return _with_status(req.engine.update_doc_status(req.path_params["index"], req.path_params["id"],
                                                     req.json_object(required=True), refresh=_refresh(req),
                                                     if_seq_no=_opt_int(req, "if_seq_no"),
                                                     if_primary_term=_opt_int(req, "if_primary_term"),
                                                     source_filter=req.query.get("_source")))


_ASCII_SPACE = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() removes


def _stripped(line: bytes) -> bytes:
    """``line.strip()`` without copying a line that has no surrounding whitespace (a 512-d vector
    source is ~5 KB: the copies cost 5% of _bulk)."""
    if line and line[0] not in _ASCII_SPACE and line[-1] not in _ASCII_SPACE:
        return line
    return line.strip()


def _empty_source(line: bytes) -> ApiError:
    """An index/create source line with no JSON: an item failure, as the shard's DocumentParser says."""
    if not line:
        return ApiError(400, "mapper_parsing_exception", "failed to parse, document is empty")
    return ApiError(400, "mapper_parsing_exception", "failed to parse", caused_by={
        "type": "not_x_content_exception",
        "reason": "Compressor detection can only be called on some xcontent bytes or compressed xcontent bytes"})


def bulk(req: NodeRequest) -> dict[str, Any]:
    body = req.body
    if not body or body.isspace():  # = not body.strip(), without copying a multi-MB body
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    if not body.endswith(b"\n"):
        raise bad_request("The bulk request must be terminated by a newline [\\n]")
    raw_lines = body.split(b"\n")
    lines: list[tuple[dict[str, Any], Any, str | None]] = []
    i = 0
    n = len(raw_lines)
    while i < n:
        line = _stripped(raw_lines[i])
        i += 1
        if not line:
            continue
        try:
            action = loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request(f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT but "
                              f"found [VALUE_STRING]") from None
        if not isinstance(action, dict) or len(action) != 1:
            raise bad_request(f"Malformed action/metadata line [{i}], expected START_OBJECT but found "
                              f"[{type(action).__name__}]")
        kind, meta = next(iter(action.items()))
        if kind not in ("index", "create", "update", "delete"):
            raise bad_request(f"Malformed action/metadata line [{i}], expected one of [create, delete, index, "
                              f"update] but found [{kind}]")
        if not isinstance(meta, dict):
            raise bad_request(f"Malformed action/metadata line [{i}], expected START_OBJECT but found [{meta}]")
        if kind == "delete":
            lines.append((action, None, None))
            continue
        if i >= n - 1:  # no newline after the action line: BulkRequestParser stops, the item is not added
            break
        src_line = _stripped(raw_lines[i])
        i += 1
        if not src_line and kind != "update":
            lines.append((action, _empty_source(raw_lines[i - 1]), None))
            continue
        if not src_line:
            raise bad_request("Validation Failed: 1: script or doc is missing;")
        try:
            source = loads(src_line)
            raw = src_line.decode("utf-8")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            err = ApiError(400, "mapper_parsing_exception", "failed to parse",
                           caused_by={"type": "json_parse_exception", "reason": str(exc)})
            lines.append((action, err, None))
            continue
        lines.append((action, source, raw))
    if not lines:
        raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    return req.engine.bulk(lines, default_index=req.path_params.get("index"),
                                   default_pipeline=req.query.get("pipeline"), refresh=_refresh(req))


def mget(req: NodeRequest) -> dict[str, Any]:
    return req.engine.mget(req.json_object(required=True), index=req.path_params.get("index"),
                           source_includes=req.query.get("_source_includes"),
                           source_excludes=req.query.get("_source_excludes"))


def search(req: NodeRequest) -> dict[str, Any]:
    check_params(req.path, req.query, SEARCH_PARAMS)
    return req.engine.search(req.path_params.get("index"), req.json_object(), req.query, raw_source=True)


def count(req: NodeRequest) -> dict[str, Any]:
    check_params(req.path, req.query, COUNT_PARAMS)
    return req.engine.count(req.path_params.get("index"), req.json_object(), req.query)


def not_supported(feature: str) -> Callable[[NodeRequest], dict[str, Any]]:
    def handler(req: NodeRequest) -> dict[str, Any]:
        raise ApiError(400, "illegal_argument_exception",
                       f"[{feature}] is not supported by the oskit embedded node (see COMPATIBILITY.md)")
    return handler


# ---------------------------------------------------------------------------------------- router
def build_router(engine: Engine) -> Router:
    r = Router()
    add = lambda m, p, h: r.add(Route(m, p, h))  # noqa: E731
    add("GET", "/", info)
    add("HEAD", "/", lambda req: {})
    add("GET", "/_cluster/health", cluster_health)
    add("GET", "/_cluster/health/{index}", cluster_health)
    add("GET", "/_cluster/settings", get_cluster_settings)
    add("PUT", "/_cluster/settings", put_cluster_settings)
    add("GET", "/_cat/plugins", cat_plugins)
    add("GET", "/_cat/indices", cat_indices)
    add("GET", "/_cat/indices/{index}", cat_indices)
    add("GET", "/_cat/health", cat_health)
    add("GET", "/_cat/aliases", cat_aliases)
    add("GET", "/_cat/nodes", cat_nodes)
    add("GET", "/_nodes/stats", not_supported("_nodes/stats"))
    add("GET", "/_nodes/{node_id}/stats", not_supported("_nodes/stats"))
    for p in ("/_nodes", "/_nodes/{node_id}", "/_nodes/{node_id}/{metric}"):
        add("GET", p, nodes_info)
    # indices
    add("PUT", "/{index}", create_index)
    add("HEAD", "/{index}", index_exists)
    add("GET", "/{index}", get_index)
    add("DELETE", "/{index}", delete_index)
    for p in ("/_mapping", "/_mappings", "/{index}/_mapping", "/{index}/_mappings"):
        add("GET", p, get_mapping)
    add("PUT", "/{index}/_mapping", put_mapping)
    add("POST", "/{index}/_mapping", put_mapping)
    add("GET", "/_settings", get_settings)
    add("GET", "/{index}/_settings", get_settings)
    add("GET", "/{index}/_settings/{name}", get_settings)
    add("GET", "/_settings/{name}", get_settings)
    add("PUT", "/{index}/_settings", put_settings)
    add("PUT", "/_settings", put_settings)
    for m in ("GET", "POST"):
        add(m, "/_refresh", refresh)
        add(m, "/{index}/_refresh", refresh)
        add(m, "/_flush", refresh)
        add(m, "/{index}/_flush", refresh)
    for m in ("PUT", "POST"):
        for p in ("/{index}/_alias/{name}", "/{index}/_aliases/{name}", "/{index}/_alias", "/{index}/_aliases",
                  "/_alias/{name}", "/_alias", "/_aliases/{name}"):
            add(m, p, put_alias)
    add("PUT", "/_aliases", put_alias)
    add("DELETE", "/{index}/_alias/{name}", delete_alias)
    add("DELETE", "/{index}/_aliases/{name}", delete_alias)
    add("POST", "/_aliases", post_aliases)
    add("GET", "/_alias", get_alias)
    add("GET", "/_alias/{name}", get_alias)
    add("GET", "/{index}/_alias", get_alias)
    add("GET", "/{index}/_alias/{name}", get_alias)
    add("GET", "/_aliases", get_alias)
    add("GET", "/{index}/_aliases", get_alias)
    add("PUT", "/_index_template/{name}", put_template)
    add("POST", "/_index_template/{name}", put_template)
    add("GET", "/_index_template", get_template)
    add("GET", "/_index_template/{name}", get_template)
    add("HEAD", "/_index_template/{name}", template_exists)
    add("DELETE", "/_index_template/{name}", delete_template)
    for m in ("PUT", "POST"):
        add(m, "/_template/{name}", put_legacy_template)
    add("GET", "/_template", get_legacy_template)
    add("GET", "/_template/{name}", get_legacy_template)
    add("HEAD", "/_template/{name}", legacy_template_exists)
    add("DELETE", "/_template/{name}", delete_legacy_template)
    # documents
    add("PUT", "/{index}/_doc/{id}", index_doc)
    add("POST", "/{index}/_doc/{id}", index_doc)
    add("POST", "/{index}/_doc", index_doc)
    add("PUT", "/{index}/_create/{id}", index_doc)
    add("POST", "/{index}/_create/{id}", index_doc)
    add("GET", "/{index}/_doc/{id}", get_doc)
    add("DELETE", "/{index}/_doc/{id}", delete_doc)
    add("GET", "/{index}/_source/{id}", get_source)
    add("POST", "/{index}/_update/{id}", update_doc)
    for m in ("POST", "PUT"):
        add(m, "/_bulk", bulk)
        add(m, "/{index}/_bulk", bulk)
    for m in ("GET", "POST"):
        add(m, "/_mget", mget)
        add(m, "/{index}/_mget", mget)
        add(m, "/_search", search)
        add(m, "/{index}/_search", search)
        add(m, "/_count", count)
        add(m, "/{index}/_count", count)
        add(m, "/{index}/_explain/{id}", not_supported("_explain"))
    from kit.node import knn_api, search_api

    r.extend(knn_api.routes())
    r.extend(search_api.routes())
    _mount_plugins(engine, r)
    return r


def _call_routes(fn: Callable[..., list[Route]], service: Any) -> list[Route]:
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return fn(service) if params else fn()


def _mount_plugins(engine: Engine, r: Router) -> None:
    """ML Commons, ingest and search pipelines, each only if its module is present and complete."""
    try:
        from kit.node.ml import MLCommons

        ml = MLCommons(engine)
        routes = ml.routes()
    except (ImportError, AttributeError) as exc:
        log.warning("ML Commons routes not mounted (%s)", exc)
    else:
        engine.ml = ml
        r.extend(routes, prefix="/_plugins/_ml")
    try:
        from kit.node import ingest as ingest_mod

        svc = ingest_mod.IngestService(engine)
        routes = svc.routes() if hasattr(svc, "routes") else _call_routes(ingest_mod.routes, svc)
    except (ImportError, AttributeError) as exc:
        log.warning("ingest pipeline routes not mounted (%s)", exc)
    else:
        engine.ingest = svc
        r.extend(routes)
    try:
        from kit.node import searchpipe as sp_mod

        sp = sp_mod.SearchPipelineService(engine)
        routes = sp.routes() if hasattr(sp, "routes") else _call_routes(sp_mod.routes, sp)
    except (ImportError, AttributeError) as exc:
        log.warning("search pipeline routes not mounted (%s)", exc)
    else:
        engine.search_pipelines = sp
        r.extend(routes)

"""The node's fast paths keep its behaviour: route trie vs a linear scan, the bare ASGI app vs what
Starlette answered, _bulk lines without copies, WAL checkpoints on a background connection."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from kit.node.app import build_router, create_app
from kit.node.engine import Engine
from kit.node.errors import ApiError, SimpleApiError
from kit.node.routing import Route, Router, pick_route, split_path
from kit.node.storage import Storage
from tests.node._asgi import AsgiNode


@pytest.fixture()
def n(tmp_path: Path) -> Iterator[AsgiNode]:
    node = AsgiNode(tmp_path / "data")
    yield node
    node.close()


def _linear(router: Router, method: str, path: str) -> tuple[Any, ...]:
    """The router's answer from a scan over every route (what the router did before its trie):
    the trie must hand ``pick_route`` every route that can match."""
    hit, allowed = pick_route(router.routes, method, split_path(path))
    if hit is not None:
        return ("route", id(hit[0]), hit[1])
    return (405, tuple(sorted(allowed))) if allowed else (400,)


def _trie(router: Router, method: str, path: str) -> tuple[Any, ...]:
    try:
        route, params = router.match(method, path)
    except ApiError as exc:
        if exc.status == 405:
            allowed = tuple(exc.reason.rsplit("allowed: [", 1)[1].rstrip("]").split(", "))
            assert isinstance(exc, SimpleApiError) and tuple(exc.allow or ()) == allowed
            assert tuple(router.allowed(path)) == allowed
            return (405, allowed)
        assert exc.status == 400 and exc.reason.startswith("no handler found for uri [")
        return (400,)
    return ("route", id(route), params)


def test_route_trie_answers_like_a_linear_scan(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    try:
        router = build_router(engine)
        words = sorted({name if not is_param else "x" for r in router.routes for is_param, name in r.segments})
        words += ["", "idx", "a%2Fb", "_doc", "%5Fsearch"]
        rng = random.Random(7)
        paths = ["/", "/knn/_search", "/_bulk", "/i/_doc/1", "/_plugins/_ml/models/m1/_predict"]
        paths += ["/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 5))) for _ in range(3000)]
        for path in paths:
            for method in ("GET", "PUT", "POST", "DELETE", "HEAD"):
                assert _trie(router, method, path) == _linear(router, method, path), (method, path)
    finally:
        engine.close()


def test_route_added_later_is_found() -> None:
    r = Router()
    r.add(Route("GET", "/{index}", lambda req: {"a": 1}))
    assert r.match("GET", "/x")[1] == {"index": "x"}
    r.add(Route("GET", "/_special", lambda req: {"b": 1}))  # after a lookup built the trie
    assert r.match("GET", "/_special")[0].pattern == "/_special"
    r.extend([Route("GET", "/{index}/_thing", lambda req: {})], prefix="/_plugins/p")
    assert r.match("GET", "/_plugins/p/i/_thing")[1] == {"index": "i"}


def test_methods_outside_the_api_get_opensearchs_405_and_options_lists_methods(n: AsgiNode) -> None:
    r = n.request("PATCH", "/")
    assert r.status_code == 405
    assert r.json() == {"error": "Incorrect HTTP method for uri [/] and method [PATCH], allowed: [GET, HEAD]",
                        "status": 405}
    assert r.headers["allow"] == "GET,HEAD"
    r = n.request("OPTIONS", "/_cluster/settings")  # RestController.handleOptionsRequest
    assert r.status_code == 200 and r.content == b"" and r.headers["allow"] == "GET,PUT"


def test_escaped_characters_in_ids_route_as_before(n: AsgiNode) -> None:
    n.ok("PUT", "/p", {"mappings": {"properties": {"t": {"type": "keyword"}}}})
    for doc_id in ("a?b", "c#d", "e\\f", "g h", "ü"):
        from urllib.parse import quote

        n.ok("PUT", f"/p/_doc/{quote(doc_id, safe='')}", {"t": doc_id})
        got = n.ok("GET", f"/p/_doc/{quote(doc_id, safe='')}")
        assert got["_id"] == doc_id and got["_source"] == {"t": doc_id}


def test_query_string_last_value_wins_and_blank_values_kept(n: AsgiNode) -> None:
    n.ok("PUT", "/q/_doc/1", {"a": 1})
    r = n.request("GET", "/q/_doc/1", params=None, raw=None, headers=None)
    assert r.status_code == 200
    # `?_source=false&_source=true`: the last value wins, as with dict(starlette QueryParams)
    resp = n.request("GET", "/q/_doc/1?_source=false&_source=true")
    assert resp.json()["_source"] == {"a": 1}
    resp = n.request("GET", "/q/_doc/1?_source=true&_source=false")
    assert "_source" not in resp.json()
    # `?pretty` with no value still pretty-prints
    pretty = n.request("GET", "/?pretty")
    assert pretty.text.startswith("{\n")


def test_lifespan_shutdown_closes_the_engine(tmp_path: Path) -> None:
    app = create_app(tmp_path / "d")
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        app.state.engine.store.db.execute("SELECT 1")


def test_bulk_lines_with_surrounding_whitespace_and_crlf(n: AsgiNode) -> None:
    body = (b'{"index":{"_index":"w","_id":"1"}}\r\n'
            b'  {"a":"x"}  \r\n'
            b'\r\n'
            b'\t{"index":{"_index":"w","_id":"2"}}\n'
            b'{"a":"y"}\n')
    r = n.request("POST", "/_bulk", raw=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["errors"] is False
    assert [it["index"]["status"] for it in r.json()["items"]] == [201, 201]
    # the stored source is the stripped line, returned verbatim
    raw = n.request("GET", "/w/_source/1")
    assert raw.content == b'{"a":"x"}'
    missing = n.request("POST", "/_bulk", raw=b'{"index":{"_index":"w","_id":"3"}}\n   \n',
                        headers={"content-type": "application/x-ndjson"})
    # a blank source line is the item's failure (OpenSearch 2.19.6)
    assert missing.status_code == 200
    assert missing.json()["items"][0]["index"]["error"]["caused_by"]["type"] == "not_x_content_exception"


def test_background_checkpoint_keeps_the_wal_small(tmp_path: Path) -> None:
    st = Storage(tmp_path)
    try:
        wal = tmp_path / "node.sqlite3-wal"
        page = int(st.db.execute("PRAGMA page_size").fetchone()[0])
        src = json.dumps({"v": "x" * 6000})
        for batch in range(12):  # ~7 MB of rows: past the 1000-page background threshold
            with st.transaction():
                for i in range(100):
                    st.put_doc("u", f"{batch}-{i}", 1, batch * 100 + i, src)
        # the checkpointer runs after commits; wait for it to copy the WAL into the database
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (tmp_path / "node.sqlite3").stat().st_size <= 5_000_000:
            st.wrote()  # only the background connection checkpoints (the writer's own threshold is 64 MiB)
            time.sleep(0.05)
        assert (tmp_path / "node.sqlite3").stat().st_size > 5_000_000
        # the next write transaction restarts the WAL from its beginning: it stays bounded
        with st.transaction():
            st.put_doc("u", "last", 1, 5000, src)
        assert wal.stat().st_size < 1000 * page * 8
        assert st.db.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 1201
    finally:
        st.close()
    assert not st._ckpt_thread.is_alive()
    # everything is readable by a fresh connection (what a restart sees)
    again = Storage(tmp_path)
    try:
        assert again.db.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == 1201
    finally:
        again.close()

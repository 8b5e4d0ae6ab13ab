"""Storage and safety (issue 14): one node per data directory; what a search sees is what is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kit.errors import NodeError
from kit.node.engine import Engine
from tests.node._asgi import AsgiNode


def test_a_second_node_on_the_same_data_refuses(tmp_path: Path) -> None:
    first = Engine(tmp_path / "data")
    try:
        with pytest.raises(NodeError) as info:
            Engine(tmp_path / "data")
        assert "in use by another node" in str(info.value) and info.value.hint
    finally:
        first.close()
    Engine(tmp_path / "data").close()  # free again once the first one stopped


def _fill_disk(n: AsgiNode) -> None:
    """SQLite's max_page_count makes the next growth fail with SQLITE_FULL, as a full disk does."""
    db = n.engine.store.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_failed_bulk_leaves_nothing_visible(tmp_path: Path) -> None:
    n = AsgiNode(tmp_path / "data")
    n.ok("PUT", "/d", {"mappings": {"properties": {"t": {"type": "text"}}}})
    for i in range(3):
        n.ok("PUT", f"/d/_doc/{i}", {"t": "kept"})
    _fill_disk(n)
    lines = "".join(json.dumps({"index": {"_index": "d", "_id": f"x{i}"}}) + "\n" + json.dumps({"t": "lost " * 400}) + "\n"
                    for i in range(200))
    r = n.request("POST", "/_bulk", raw=lines, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 500 and "not stored" in r.json()["error"]["reason"]
    assert n.ok("GET", "/d/_count")["count"] == 3
    assert n.ok("POST", "/d/_search", {"query": {"match": {"t": "lost"}}})["hits"]["total"]["value"] == 0
    r = n.request("PUT", "/new/_doc/1", {"t": "lost " * 4000})
    assert r.status_code == 500 and n.ok("GET", "/new/_count")["count"] == 0  # auto-created, as OpenSearch does
    n.close()
    again = AsgiNode(tmp_path / "data")
    assert again.ok("GET", "/d/_count")["count"] == 3
    again.close()


def test_request_size_and_depth_limits(tmp_path: Path) -> None:
    from kit.node.app import MAX_CONTENT_LENGTH

    assert MAX_CONTENT_LENGTH == 100 * 1024 * 1024  # http.max_content_length's default
    n = AsgiNode(tmp_path / "data", max_content_length=1000)
    r = n.request("PUT", "/d/_doc/1", {"t": "x" * 2000})
    assert (r.status_code, r.content) == (413, b"")  # OpenSearch 2.19.6: 413, empty body
    assert n.request("GET", "/d").status_code == 404  # nothing was done
    deep = "[" * 100_000 + "]" * 100_000
    r = n.request("POST", "/_search", raw=deep.encode()[:900])
    assert r.status_code == 400
    n.close()
    n = AsgiNode(tmp_path / "data")
    r = n.request("POST", "/d/_search", raw=deep)
    assert r.status_code == 400 and r.json()["error"]["type"] == "json_parse_exception"
    doc = '{"a":' * 21 + "1" + "}" * 21  # index.mapping.depth.limit (20), as OpenSearch
    r = n.request("PUT", "/d/_doc/1", raw=doc)
    assert r.status_code == 400 and r.json()["error"]["root_cause"][0]["reason"].startswith(
        "The depth of the field has exceeded the allowed limit of [20].")
    n.ok("PUT", "/d/_doc/1", raw='{"a":' * 20 + "1" + "}" * 20)
    r = n.request("POST", "/d/_search", raw='{"query": ' + '{"bool": {"must": ' * 400 + '{"match_all": {}}' + "}}" * 400 + "}")
    assert r.status_code == 400  # deep enough to exhaust the parser's stack: an error, not a crash
    n.close()


def test_binding_beyond_loopback_without_auth_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from kit.node.server import is_loopback, run_foreground

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("myhost")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        with pytest.raises(NodeError):
            run_foreground(tmp_path / "data", "0.0.0.0", busy.getsockname()[1])
    assert any("WITHOUT authentication" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_max_content_length_setting_parses_byte_sizes() -> None:
    from kit.node.app import parse_byte_size

    assert [parse_byte_size(t) for t in ("100mb", "512kb", "1gb", "1024")] == [104857600, 524288, 1073741824, 1024]
    with pytest.raises(ValueError):
        parse_byte_size("10 zb")

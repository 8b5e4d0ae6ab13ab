"""The node as a process: acknowledged writes survive kill -9; `oskit node start` prints its URL and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from opensearchpy import OpenSearch

from kit.node.server import NodeProcess, free_port


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = NodeProcess(data)
    proc.start()
    try:
        c = OpenSearch(proc.url)
        c.indices.create(index="dur", body={"settings": {"index.knn": True}, "mappings": {"properties": {
            "title": {"type": "text"}, "vec": {"type": "knn_vector", "dimension": 2,
                                               "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"}}}}})
        c.index(index="dur", id="1", body={"title": "first doc", "vec": [0, 0]})
        lines = []
        for i in range(2, 52):
            lines += ['{"index": {"_index": "dur", "_id": "%d"}}' % i, '{"title": "bulk doc %d", "vec": [%d, 0]}' % (i, i)]
        assert c.bulk(body="\n".join(lines) + "\n")["errors"] is False
        c.delete(index="dur", id="2")
        c.update(index="dur", id="3", body={"doc": {"title": "updated doc"}})
        c.cluster.put_settings(body={"persistent": {"plugins.ml_commons.only_run_on_ml_node": False}})
    finally:
        proc.kill()  # SIGKILL: no shutdown hooks run
    proc2 = NodeProcess(data)
    proc2.start()
    try:
        c = OpenSearch(proc2.url)
        assert c.count(index="dur")["count"] == 50
        assert c.get(index="dur", id="3")["_source"]["title"] == "updated doc"
        assert c.get(index="dur", id="3")["_version"] == 2
        assert not c.exists(index="dur", id="2")
        hits = c.search(index="dur", body={"query": {"knn": {"vec": {"vector": [10.2, 0], "k": 2}}}})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["10", "11"]
        assert [h["_id"] for h in c.search(index="dur", body={"query": {"match": {"title": "first"}}})["hits"]["hits"]] == ["1"]
        flat = c.cluster.get_settings(params={"flat_settings": "true"})
        assert flat["persistent"]["plugins.ml_commons.only_run_on_ml_node"] == "false"
        # sequence numbers continue after the restart
        r = c.index(index="dur", id="new", body={"title": "after restart", "vec": [1, 1]})
        assert r["_seq_no"] > 52
    finally:
        assert proc2.stop() == 0


def test_cli_node_start_prints_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, OSKIT_NODE_PASSWORD="s3cret")
    t0 = time.monotonic()
    oskit = str(Path(sys.executable).parent / "oskit")
    p = subprocess.Popen([oskit, "node", "start", "--data", str(tmp_path / "d"),
                          "--port", str(port), "--user", "admin"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        startup = time.monotonic() - t0
        assert line == f"http://127.0.0.1:{port}"
        assert httpx.get(line + "/").status_code == 401
        assert httpx.get(line + "/", auth=("admin", "wrong")).status_code == 401
        r = httpx.get(line + "/", auth=("admin", "s3cret"))
        assert r.status_code == 200 and r.json()["version"]["distribution"] == "opensearch"
        assert startup < 10  # the 2 s budget is measured in bench/node_bench.py, without CI noise
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err


def test_remote_model_calls_do_not_log_a_line_each(tmp_path: Path) -> None:
    """Each connector call logged a line at INFO (httpx's "HTTP Request: POST …"): a terminal flooded
    during an ingest, and a NodeProcess whose stderr pipe nobody read blocked once 64 KB were written
    (found by bench/reliability.py: an ingest stalled after a model-server restart)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from kit.job.demo import ServerThread

    async def embed(request: object) -> JSONResponse:
        return JSONResponse({"embedding": [0.6, 0.8]})

    remote = ServerThread(Starlette(routes=[Route("/embed", embed, methods=["POST"])]), name="remote")
    remote.start()
    proc = NodeProcess(tmp_path / "data")
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            assert c.put("/_cluster/settings", json={"persistent": {
                "plugins.ml_commons.trusted_connector_endpoints_regex": [".*"],
                "plugins.ml_commons.connector.private_ip_enabled": True}}).status_code == 200
            r = c.post("/_plugins/_ml/connectors/_create", json={
                "name": "e", "version": "1", "protocol": "http", "parameters": {}, "credential": {"k": "v"},
                "actions": [{"action_type": "predict", "method": "POST", "url": remote.url + "/embed",
                             "request_body": '{"inputText": "${parameters.inputText}"}'}]})
            assert r.status_code == 200, r.text
            r = c.post("/_plugins/_ml/models/_register", json={"name": "e", "function_name": "remote",
                                                               "connector_id": r.json()["connector_id"]})
            model_id = r.json()["model_id"]
            for _ in range(5):
                r = c.post(f"/_plugins/_ml/models/{model_id}/_predict", json={"parameters": {"inputText": "hi"}})
                assert r.status_code == 200, r.text
    finally:
        assert proc.stop() == 0
        remote.stop()
    err = proc.stderr_tail()
    assert "oskit node listening" in err  # the node's own INFO lines stay
    assert "HTTP Request" not in err

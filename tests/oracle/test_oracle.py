"""The differential oracle (kit/oracle): normaliser, runner, recorder, replay and CLI, against embedded nodes.

Two embedded nodes must compare equal on the whole corpus (what the normaliser removes is exactly what
must differ); a difference planted at the HTTP boundary must be found and named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner

from kit.oracle import (KnownDifference, Sequence, Side, Step, compare, load_corpus, load_recording, normalise,
                        run_sequences)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "provision"))

from fakeserve import FakeServe  # noqa: E402


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    server = FakeServe()
    yield server.start()
    server.stop()


@pytest.fixture()
def two_nodes(tmp_path: Path) -> Iterator[tuple[str, str]]:
    from kit.node.server import NodeServer

    a, b = NodeServer(tmp_path / "a", version="2.19.3"), NodeServer(tmp_path / "b", version="2.19.3")
    try:
        yield a.start(), b.start()
    finally:
        a.stop()
        b.stop()


# ---------------------------------------------------------------------------------------------- normaliser
def test_normalise_replaces_what_must_differ() -> None:
    body = {"name": "node-1", "cluster_uuid": "abc", "took": 12,
            "version": {"number": "2.19.3", "build_hash": "deadbeef", "distribution": "opensearch"},
            "_id": "W1u3X5kBqLm2nO4pQr7s", "model_id": "x9Yz8AbCdEfGhIjKlMnO", "_seq_no": 3,
            "error": {"reason": "model Xk2mP9qRsT4uVwXyZ0aB not found", "index_uuid": "aB3dE6gH9jK2mN5pQ8sT1v"},
            "nodes": {"Qw3rTy6uIo9pAs2dFg5hJk": {"state": "ok"}}, "index.creation_date": "1796623450035"}
    out = normalise(body)
    assert out == {"name": "<name>", "cluster_uuid": "<name>", "took": "<time>",
                   "version": {"number": "<version>", "build_hash": "<version>", "distribution": "<version>"},
                   "_id": "<id>", "model_id": "<id>", "_seq_no": 3,
                   "error": {"reason": "model <id> not found", "index_uuid": "<id>"},
                   "nodes": {"<node0>": {"state": "ok"}}, "index.creation_date": "<time>"}


def test_normalise_keeps_chosen_ids_and_words() -> None:
    body = {"_id": "1", "_index": "oracle-knn", "result": "created", "text": "a summer dress in red"}
    assert normalise(body) == body


def test_the_allowed_methods_of_a_405_compare_in_any_order() -> None:
    # OpenSearch prints a Java HashSet: "[PUT, GET, HEAD, DELETE]" in one run, "[DELETE, HEAD, GET, PUT]" in another
    real = {"error": "Incorrect HTTP method for uri [/x] and method [PATCH], allowed: [PUT, GET, HEAD, DELETE]"}
    node = {"error": "Incorrect HTTP method for uri [/x] and method [PATCH], allowed: [DELETE, GET, HEAD, PUT]"}
    assert compare(normalise(real), normalise(node)) == []
    assert normalise(real)["error"].endswith("allowed: [DELETE, GET, HEAD, PUT]")
    other = {"error": "Incorrect HTTP method for uri [/x] and method [PATCH], allowed: [GET, HEAD]"}
    assert compare(normalise(real), normalise(other)) != []


def test_point_in_time_and_scroll_ids_are_ids() -> None:
    real = {"pit_id": "69qFQQEGbW92aWVzFktOZzNSM2xlU1FPLTVobG1PMy1ZdXcAFjFudDVaOXFGU0RpbHR3QTMzcmg0NEEAAAAAAAAAAGMW",
            "pits": [{"pit_id": "69qFQQEGbW92aWVzFktOZzNSM2xlU1FPLTVobG1PMy1ZdXcAFjFudDVaOXFGU0Rp", "successful": True}],
            "_scroll_id": "FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5QW5kRmV0Y2gBFjhxcTUyVFlRUUhxS0dMd0ZlRHJWRmcAAAAAAAAAaBYx"}
    node = {"pit_id": "b3NraXQtcGl0OjE=", "pits": [{"pit_id": "b3NraXQtcGl0OjE=", "successful": True}],
            "_scroll_id": "b3NraXQtc2Nyb2xsOjM"}
    assert compare(normalise(real), normalise(node)) == []
    assert normalise(node) == {"pit_id": "<id>", "pits": [{"pit_id": "<id>", "successful": True}], "_scroll_id": "<id>"}


def test_every_phase_took_value_is_a_timing() -> None:
    real = {"took": 5, "phase_took": {"dfs_pre_query": 0, "query": 2, "fetch": 1, "dfs_query": 0, "expand": 0,
                                      "can_match": 0}}
    node = {"took": 1, "phase_took": {"dfs_pre_query": 0, "query": 0, "fetch": 0, "dfs_query": 0, "expand": 0,
                                      "can_match": 0}}
    assert compare(normalise(real), normalise(node)) == []
    assert compare(normalise(real), normalise({"took": 1, "phase_took": {"query": 0}})) != []  # the phases still count


def test_the_node_name_of_cat_plugins_rows_is_a_name() -> None:
    real = [{"name": "real-1", "component": "opensearch-ml", "version": "2.19.6.0"}]
    node = [{"name": "oskit-node", "component": "opensearch-ml", "version": "2.19.6.0"}]
    assert compare(normalise(real), normalise(node)) == []
    assert compare(normalise(real), normalise([{**node[0], "component": "opensearch-knn"}])) != []
    # other rows keep their names (a _cat/templates row names the template)
    assert normalise([{"name": "t1", "index_patterns": "[x*]"}]) == [{"name": "t1", "index_patterns": "[x*]"}]


def test_equal_scores_compare_in_any_order() -> None:
    a = {"hits": {"hits": [{"_id": "2", "_score": 1.0}, {"_id": "1", "_score": 1.0}, {"_id": "3", "_score": 0.5}]}}
    b = {"hits": {"hits": [{"_id": "1", "_score": 1.0}, {"_id": "2", "_score": 1.0}, {"_id": "3", "_score": 0.5}]}}
    assert compare(normalise(a), normalise(b)) == []
    c = {"hits": {"hits": [{"_id": "3", "_score": 1.0}, {"_id": "2", "_score": 1.0}, {"_id": "1", "_score": 0.5}]}}
    assert compare(normalise(a), normalise(c), labels=("real", "node")) == [
        'hits.hits[0]._id: real "1", node "2"', 'hits.hits[1]._id: real "2", node "3"',
        'hits.hits[2]._id: real "3", node "1"']


def test_compare_names_every_difference() -> None:
    a = {"score": 0.5, "n": 1, "only_a": True, "list": [1, 2], "t": "x"}
    b = {"score": 0.50001, "n": 1.0, "only_b": None, "list": [1], "t": "y"}
    assert compare(a, b, labels=("real", "node")) == [
        "only_a: only in real (true)", "list: real has 2 items, node 1", 't: real "x", node "y"',
        "only_b: only in node (null)"]


# ---------------------------------------------------------------------------------------------- runner
def test_two_embedded_nodes_agree_on_the_whole_corpus(two_nodes: tuple[str, str], model_server: str) -> None:
    a, b = Side("a", two_nodes[0]), Side("b", two_nodes[1])
    corpus = load_corpus()
    report = run_sequences(corpus, a, b, variables={"model_server": model_server}, known=[])
    a.close()
    b.close()
    assert report.skipped == []
    assert [o.to_dict() for o in report.outcomes if o.state != "equal"] == []
    assert report.compared == sum(len(s.steps) + len(s.cleanup) for s in corpus) - sum(
        1 for s in corpus for st in s.steps + s.cleanup if not st.compare)
    assert report.compared > 150


class _Tamper(httpx.BaseTransport):
    """Side b answers like a node whose index API says 'updated' for a fresh document."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        response.close()
        if request.method == "PUT" and "/_doc/" in request.url.path:
            body = json.loads(response.content)
            body["result"] = "updated"
            return httpx.Response(response.status_code, json=body)
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)

    def close(self) -> None:
        self.inner.close()


def test_a_planted_difference_is_found_and_documented_ones_counted_apart(two_nodes: tuple[str, str]) -> None:
    a, b = Side("real", two_nodes[0]), Side("node", two_nodes[1], transport=_Tamper())
    seq = Sequence("t", "corpus", [Step("PUT", "/t/_doc/1", {"refresh": "true"}, {"x": 1}), Step("GET", "/t/_doc/1"),
                                   Step("PUT", "/t/_doc/2", {}, {"x": 2})],
                   cleanup=[Step("DELETE", "/t")])
    known = [KnownDifference(r"^PUT /t/_doc/2$", "result", "documented for the test")]
    report = run_sequences([seq], a, b, known=known)
    a.close()
    b.close()
    states = [(o.request, o.state) for o in report.outcomes]
    assert states == [("PUT /t/_doc/1", "different"), ("GET /t/_doc/1", "equal"), ("PUT /t/_doc/2", "documented"),
                      ("DELETE /t", "equal")]
    assert report.outcomes[0].differences == ['result: real "created", node "updated"']
    assert report.diff_lines() == ['- `PUT /t/_doc/1` (corpus t #0; status real 201, node 201): '
                                   'result: real "created", node "updated"']
    assert report.summary().startswith("4 requests compared: 2 equal, 1 documented differences, 1 open")


def test_a_failed_save_blocks_the_rest_of_its_sequence(two_nodes: tuple[str, str]) -> None:
    a, b = Side("a", two_nodes[0]), Side("b", two_nodes[1])
    seq = Sequence("t", "corpus", [Step("GET", "/", save={"x": "no.such.key"}), Step("GET", "/${x}")])
    report = run_sequences([seq], a, b, known=[])
    a.close()
    b.close()
    assert [o.state for o in report.outcomes] == ["equal", "blocked"]
    assert report.outcomes[1].blocked == "step 0 (GET /): a answered no no.such.key"


def test_a_sequence_missing_a_variable_is_skipped_saying_why(two_nodes: tuple[str, str]) -> None:
    a, b = Side("a", two_nodes[0]), Side("b", two_nodes[1])
    report = run_sequences(load_corpus(only=["07-ml"]), a, b, variables={}, known=[])
    a.close()
    b.close()
    assert report.outcomes == []
    assert report.skipped == [("07-ml", "needs model_server")]


# ---------------------------------------------------------------------------------------------- recorder
def test_the_kit_s_requests_are_recorded_redacted_and_replay_on_two_nodes(
        tmp_path: Path, two_nodes: tuple[str, str], model_server: str) -> None:
    from kit.cluster.client import connect
    from kit.cluster.recording import start_recording, stop_recording

    rec = tmp_path / "kit.jsonl"
    start_recording(rec)
    try:
        client = connect(two_nodes[0])
        client.request("PUT", "/_cluster/settings", {"persistent": {
            "plugins.ml_commons.connector.private_ip_enabled": True,
            "plugins.ml_commons.trusted_connector_endpoints_regex": [r"^http://127\.0\.0\.1:[0-9]+/.*$"],
            "plugins.ml_commons.only_run_on_ml_node": False}})
        connector = client.request("POST", "/_plugins/_ml/connectors/_create", {
            "name": "c", "protocol": "http", "version": 1, "credential": {"api_key": "s3cret-value"},
            "actions": [{"action_type": "predict", "method": "POST", "url": f"{model_server}/clip/embed",
                         "headers": {"content-type": "application/json"},
                         "request_body": '{"inputText": "${parameters.inputText}"}'}]}, retry=False)
        client.request("GET", f"/_plugins/_ml/connectors/{connector['connector_id']}")
        client.request("PUT", "/r", {"mappings": {"properties": {"t": {"type": "keyword"}}}})
        client.request("POST", "/_bulk", "".join(json.dumps(x) + "\n" for x in
                                                 [{"index": {"_index": "r", "_id": "1"}}, {"t": "a"}]),
                       params={"refresh": "true"})
        client.request("GET", "/r/_doc/missing", ignore=(404,))
        client.close()
    finally:
        stop_recording()
    text = rec.read_text()
    assert "s3cret-value" not in text
    lines = [json.loads(x) for x in text.splitlines()]
    assert [(x["method"], x["path"]) for x in lines] == [
        ("PUT", "/_cluster/settings"), ("POST", "/_plugins/_ml/connectors/_create"),
        ("GET", f"/_plugins/_ml/connectors/{connector['connector_id']}"), ("PUT", "/r"), ("POST", "/_bulk"),
        ("GET", "/r/_doc/missing")]
    assert lines[1]["body"]["credential"] == {"api_key": "<redacted>"}
    assert lines[5]["status"] == 404 and lines[5]["response"]["found"] is False

    seq = load_recording(rec)
    assert seq.steps[1].save == {"rec1": "connector_id"}
    assert seq.steps[2].path == "/_plugins/_ml/connectors/${rec1}"
    # replayed on two fresh nodes (the recorded one had them already): all equal
    from kit.node.server import NodeServer

    c, d = NodeServer(tmp_path / "c", version="2.19.3"), NodeServer(tmp_path / "d", version="2.19.3")
    try:
        sc, sd = Side("c", c.start()), Side("d", d.start())
        report = run_sequences([seq], sc, sd, known=[])
        sc.close()
        sd.close()
    finally:
        c.stop()
        d.stop()
    assert [o.state for o in report.outcomes] == ["equal"] * 6


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_compare_two_nodes_exit_0_and_a_summary(two_nodes: tuple[str, str], tmp_path: Path) -> None:
    from kit.cli import cli as main

    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["node", "compare", "--real", two_nodes[0], "--node", two_nodes[1],
                                       "--only", "02-crud", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == ("30 requests compared: 30 equal, 0 documented differences, "
                                              "0 open differences, 0 blocked, 0 sequences skipped")
    data: dict[str, Any] = json.loads(out.read_text())
    assert data["counts"]["equal"] == 30


def test_cli_compare_rejects_a_bad_rewrite(two_nodes: tuple[str, str]) -> None:
    from kit.cli import cli as main

    result = CliRunner().invoke(main, ["node", "compare", "--real", two_nodes[0], "--node", two_nodes[1],
                                       "--no-corpus", "--rewrite", "nothing"])
    assert result.exit_code == 2
    assert "'nothing' is not OLD=NEW" in result.output


class _Contexts(httpx.BaseTransport):
    """A cluster that hands out its own scroll and PIT ids and answers only to those."""

    def __init__(self, scroll: str, pit: str) -> None:
        self.scroll, self.pit = scroll, pit
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path, body = request.url.path, json.loads(request.content or b"null")
        self.seen.append(f"{request.method} {path} {json.dumps(body)}")
        if path == "/m/_search" and "scroll" in request.url.params:
            return httpx.Response(200, json={"_scroll_id": self.scroll, "hits": {"hits": []}})
        if path == "/m/_search/point_in_time":
            return httpx.Response(200, json={"pit_id": self.pit, "_shards": {"total": 1}})
        own = {f"/_search/scroll/{self.scroll}": True, "/_search/scroll": (body or {}).get("scroll_id") == self.scroll,
               "/_search": (body or {}).get("pit", {}).get("id") == self.pit}
        if own.get(path):
            return httpx.Response(200, json={"_scroll_id": self.scroll} if "scroll" in path else {"pit_id": self.pit})
        return httpx.Response(404, json={"error": f"no such context in {path} {body}"})


def test_a_recording_replays_each_side_s_own_scroll_and_pit_ids(tmp_path: Path) -> None:
    rec = tmp_path / "r.jsonl"
    scroll, pit = "FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5QW5kRmV0Y2gBFjhxcTUy", "69qFQQEGbW92aWVzFktOZzNSM2xlU1FP"
    lines = [("POST", "/m/_search", {"scroll": "1m"}, {}, {"_scroll_id": scroll, "hits": {"hits": []}}),
             ("POST", "/_search/scroll", {}, {"scroll": "1m", "scroll_id": scroll}, {"_scroll_id": scroll}),
             ("DELETE", f"/_search/scroll/{scroll}", {}, None, {"_scroll_id": scroll}),
             ("POST", "/m/_search/point_in_time", {"keep_alive": "1m"}, None, {"pit_id": pit}),
             ("POST", "/_search", {}, {"pit": {"id": pit}}, {"pit_id": pit})]
    rec.write_text("".join(json.dumps({"method": m, "path": p, "params": q, "body": b, "status": 200, "response": r})
                           + "\n" for m, p, q, b, r in lines))
    seq = load_recording(rec)
    assert seq.steps[1].body == {"scroll": "1m", "scroll_id": "${rec1}"}
    assert seq.steps[2].path == "/_search/scroll/${rec1}"
    assert seq.steps[4].body == {"pit": {"id": "${rec2}"}}
    ta, tb = _Contexts("real-scroll-0123456789", "real-pit-0123456789"), _Contexts("b3NraXQtc2Nyb2xsOjM", "b3NraXQtcGl0OjE=")
    a, b = Side("real", "http://real", transport=ta), Side("node", "http://node", transport=tb)
    report = run_sequences([seq], a, b, known=[])
    a.close()
    b.close()
    assert [o.to_dict() for o in report.outcomes if o.state != "equal"] == []
    assert report.count("equal") == 5
    assert ta.seen[2] == "DELETE /_search/scroll/real-scroll-0123456789 null"
    assert tb.seen[4] == 'POST /_search {"pit": {"id": "b3NraXQtcGl0OjE="}}'


def test_story_requests_carrying_each_side_s_own_scroll_id_are_compared(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    import kit.oracle.sources as sources
    from kit.oracle.runner import Exchange

    def exchanges(scroll: str, pit: str) -> list[tuple[str, Exchange]]:
        return [("GET /movies/_search?scroll=1m", Exchange(200, {"_scroll_id": scroll, "hits": {"hits": []}})),
                (f"GET /_search/scroll/{scroll}", Exchange(200, {"_scroll_id": scroll})),
                ("POST /movies/_search/point_in_time?keep_alive=1m", Exchange(200, {"pit_id": pit})),
                (f"DELETE /_search/scroll/{scroll}", Exchange(200, {"succeeded": True, "num_freed": 1}))]

    per_url = {"http://real": exchanges("FGluY2x1ZGVfY29udGV4dF91dWlkDXF1ZXJ5", "69qFQQEGbW92aWVzFktOZzNS"),
               "http://node": exchanges("b3NraXQtc2Nyb2xsOjI", "b3NraXQtcGl0OjE=")}
    monkeypatch.setattr(sources, "_story_exchanges", lambda url, *args, **kw: (
        {"s.yaml": per_url[url]}, {"s.yaml": "PASSED"}))
    quiet = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    a, b = Side("real", "http://real", transport=quiet), Side("node", "http://node", transport=quiet)
    report, _ = sources.compare_stories(a, b, tmp_path, known=[])
    a.close()
    b.close()
    assert [(o.request, o.state) for o in report.outcomes] == [
        ("GET /movies/_search", "equal"), ("GET /_search/scroll/<scroll_id1>", "equal"),
        ("POST /movies/_search/point_in_time", "equal"), ("DELETE /_search/scroll/<scroll_id1>", "equal")]


# ---------------------------------------------------------------------------------------------- stories
def test_stories_run_through_the_recording_proxy_on_both_sides(two_nodes: tuple[str, str], spec_dir: Path) -> None:
    from kit.oracle import compare_stories

    a, b = Side("real", two_nodes[0]), Side("node", two_nodes[1])
    report, results = compare_stories(a, b, spec_dir, only=["default/_core/info.yaml"], known=[])
    a.close()
    b.close()
    assert list(results) == ["default/_core/info.yaml"]
    assert results["default/_core/info.yaml"][0] == results["default/_core/info.yaml"][1]
    assert results["default/_core/info.yaml"][0].startswith("PASSED")
    assert report.compared >= 2 and report.count("equal") == report.compared, report.to_dict()


def test_the_recording_proxy_forwards_and_records(two_nodes: tuple[str, str]) -> None:
    from kit.oracle.proxy import RecordingProxy

    with RecordingProxy(two_nodes[0]) as proxy:
        r = httpx.put(proxy.url + "/p", json={"settings": {"index.number_of_replicas": 0}})
        h = httpx.head(proxy.url + "/p")
        g = httpx.get(proxy.url + "/_cat/indices/p", params={"h": "index"})
    assert (r.status_code, h.status_code, g.text.strip()) == (200, 200, "p")
    assert [(m, p, s) for m, p, _, s, _ in proxy.take()] == [("PUT", "/p", 200), ("HEAD", "/p", 200),
                                                              ("GET", "/_cat/indices/p?h=index", 200)]


def test_a_documented_text_documents_the_whole_answer() -> None:
    from kit.oracle.runner import Exchange, compare_exchanges

    a, b = Side("real", "http://127.0.0.1:9"), Side("node", "http://127.0.0.1:9")
    unsupported = {"error": {"type": "illegal_argument_exception",
                             "reason": "[prefix query] is not supported by the oskit embedded node"}, "status": 400}
    known = [KnownDifference("_search$", "*", "subset", "is not supported by the oskit embedded node")]
    out = compare_exchanges(Sequence("s", "corpus", []), 0, "POST /i/_search", Step("POST", "/i/_search"),
                            Exchange(200, {"hits": {"total": 1}}), Exchange(400, unsupported), (a, b), known)
    assert out.state == "documented" and out.differences == []
    assert {r for _, r in out.documented} == {"subset"} and len(out.documented) == 4
    other = compare_exchanges(Sequence("s", "corpus", []), 0, "POST /i/_search", Step("POST", "/i/_search"),
                              Exchange(200, {"hits": {"total": 1}}), Exchange(200, {"hits": {"total": 2}}), (a, b), known)
    assert other.state == "different" and other.differences == ["hits.total: real 1, node 2"]
    a.close()
    b.close()


def test_documented_system_index_and_parse_error_entries_stay_narrow() -> None:
    from kit.oracle import load_known_differences
    from kit.oracle.runner import Exchange, compare_exchanges

    known = load_known_differences()
    a, b = Side("real", "http://127.0.0.1:9"), Side("node", "http://127.0.0.1:9")

    def outcome(request: str, real: Any, node: Any, status: int = 200) -> Any:
        method, _, path = request.partition(" ")
        return compare_exchanges(Sequence("s", "story", []), 0, request, Step(method, path),
                                 Exchange(status, real), Exchange(status, node), (a, b), known)

    # N1: the .plugins-ml-* indices the real node lists are documented; a user index that differs is not
    ml = {"mappings": {"_meta": {"schema_version": 12}, "properties": {"algorithm": {"type": "keyword"}}}}
    out = outcome("GET /_mapping", {".plugins-ml-model": ml, "movies": {"mappings": {"properties": {"t": {"type": "text"}}}}},
                  {"movies": {"mappings": {"properties": {"t": {"type": "keyword"}}}}, "extra": {"mappings": {}}})
    assert [d.split(" (")[0] for d, _ in out.documented] == [".plugins-ml-model: only in real"]
    assert "COMPATIBILITY.md" in out.documented[0][1]
    assert out.differences == ['movies.mappings.properties.t.type: real "text", node "keyword"',
                               "extra: only in node ({\"mappings\": {}})"]
    shards = {"total": 5, "successful": 5, "skipped": 0, "failed": 0}
    assert outcome("GET /_count", {"count": 6, "_shards": shards},
                   {"count": 0, "_shards": {**shards, "total": 0, "successful": 0}}).state == "documented"
    # a count over named indices, or one where the node found something, stays open
    assert outcome("GET /movies/_count", {"count": 6}, {"count": 0}).differences == ["count: real 6, node 0"]
    assert outcome("GET /_count", {"count": 6}, {"count": 2}).differences == ["count: real 6, node 2"]
    assert outcome("GET /_search", {"hits": {"hits": [{"_id": "1", "_score": 1.0, "_source": {"n": 1}}]}},
                   {"hits": {"hits": [{"_id": "1", "_score": 1.0, "_source": {"n": 0}}]}}
                   ).differences == ["hits.hits[0]._source.n: real 1, node 0"]

    # N4: the parse error's col and Jackson's cause are documented; another type is not
    real = {"error": {"root_cause": [{"type": "parsing_exception", "line": 1, "col": 27}], "type": "parsing_exception",
                      "line": 1, "col": 27, "caused_by": {"type": "named_object_not_found_exception",
                                                          "reason": "[1:27] unknown field [nosuchquery]"}}, "status": 400}
    node = {"error": {"root_cause": [{"type": "parsing_exception", "line": 1, "col": 1}], "type": "parsing_exception",
                      "line": 1, "col": 1}, "status": 400}
    out = outcome("POST /oracle-err/_search", real, node, 400)
    assert out.state == "documented" and len(out.documented) == 3
    other = outcome("POST /oracle-err/_search", real, {"error": {**node["error"], "type": "x_content_parse_exception"},
                                                       "status": 400}, 400)
    assert other.differences == ['error.type: real "parsing_exception", node "x_content_parse_exception"']
    a.close()
    b.close()


def test_a_known_difference_may_name_several_paths(tmp_path: Path) -> None:
    from kit.oracle import load_known_differences

    file = tmp_path / "k.yaml"
    file.write_text('- {request: "^GET /_count$", path: [count, "_shards.total"], reason: r}\n')
    assert [(k.path, k.reason) for k in load_known_differences(file)] == [("count", "r"), ("_shards.total", "r")]


def test_a_recording_with_faiss_fields_is_refused_unless_rewritten(two_nodes: tuple[str, str], tmp_path: Path) -> None:
    from kit.errors import NodeError
    from kit.oracle.cli import run_compare

    rec = tmp_path / "r.jsonl"
    body = {"settings": {"index.knn": True}, "mappings": {"properties": {"v": {
        "type": "knn_vector", "dimension": 2, "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"}}}}}
    rec.write_text(json.dumps({"method": "PUT", "path": "/f", "params": {}, "body": body, "status": 200,
                               "response": {"acknowledged": True}}) + "\n"
                   + json.dumps({"method": "POST", "path": "/f/_doc/1", "params": {},  # bytes are not looked into
                                 "body": {"__oskit_binary_base64__": "AP8="}, "status": 400, "response": {}}) + "\n")
    with pytest.raises(NodeError, match="no FAISS natives") as err:
        run_compare(two_nodes[0], two_nodes[1], corpus=False, recordings=[rec])
    assert err.value.hint == "pass --rewrite faiss=lucene (or --allow-faiss for a cluster with the natives)"
    report, _ = run_compare(two_nodes[0], two_nodes[1], corpus=False, recordings=[rec], rewrite={"faiss": "lucene"})
    assert [(o.request, o.state) for o in report.outcomes] == [("PUT /f", "equal"), ("POST /f/_doc/1", "equal")]


def test_binary_bodies_are_recorded_and_replayed_byte_for_byte(tmp_path: Path) -> None:
    from kit.cluster.recording import Recorder

    chunk = bytes(range(256)) + b"${g} ${1}"  # not UTF-8, and text that looks like a variable
    rec = Recorder(tmp_path / "r.jsonl")
    rec.record("POST", "/_plugins/_ml/models/m/upload_chunk/0", {}, chunk, 200, {"status": "Uploaded"}, 1.0)
    rec.record("GET", "/_plugins/_ml/tasks/Ab3dE6gH9jK2mN5pQ8sT", {}, None, 200,
               {"state": "COMPLETED", "model_id": "Zy3dE6gH9jK2mN5pQ8sT"}, 1.0)
    seq = load_recording(tmp_path / "r.jsonl")
    assert seq.steps[0].body == chunk
    assert seq.steps[1].until == {"state": ["COMPLETED"]}  # the other cluster may still be RUNNING

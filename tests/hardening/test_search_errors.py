"""`oskit search` on an empty index says so; with the model server down its error names the model, its
endpoint and the fix (issue 17)."""

from __future__ import annotations

import json
from typing import Any

from clihelp import oskit


def test_search_on_an_empty_index_says_so(applied: Any, fresh_node: Any) -> None:
    res = oskit("search", "red circle", "--url", fresh_node.url)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "no results\n"
    assert res.stderr == "note: index 'images' is empty: ingest images first (oskit ingest PATH --index images)\n"
    res = oskit("search", "red circle", "--url", fresh_node.url, "--json")
    assert json.loads(res.stdout) == {"hits": [], "notes": ["index 'images' is empty: ingest images first "
                                                          "(oskit ingest PATH --index images)"]}


def test_search_with_the_model_server_down_names_model_endpoint_and_fix(applied: Any, fresh_node: Any) -> None:
    _, serve, _ = applied
    serve.stop()
    res = oskit("search", "red circle", "--url", fresh_node.url)
    assert res.exit_code == 1
    assert "Error communicating with remote model" in res.stderr
    assert f"hint: model 'clip' calls {serve.url}/clip/embed (connection refused); " in res.stderr
    for model, path in (("hash", "hash"), ("ocr", "ocr"), ("tags", "tags")):
        assert f"model '{model}' calls {serve.url}/{path} (connection refused)" in res.stderr
    assert res.stderr.rstrip().endswith("start `oskit serve` or set OSKIT_MODEL_SERVER_URL (then `oskit apply`)")

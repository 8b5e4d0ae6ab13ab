"""_aliases: remove_index goes first, so one request replaces an index by an alias of the same name
(MetadataIndexAliasesService.applyAliasActions gathers the indices to delete before the other actions)."""

from __future__ import annotations

from typing import Any

import httpx


def test_remove_index_and_add_an_alias_of_its_name_in_one_request(fresh_node: Any) -> None:
    with httpx.Client(base_url=fresh_node.url) as http:
        assert http.put("/things", json={}).status_code == 200
        assert http.put("/things-v2", json={}).status_code == 200
        http.put("/things-v2/_doc/1", params={"refresh": "true"}, json={"n": 2})
        r = http.post("/_aliases", json={"actions": [{"add": {"index": "things-v2", "alias": "things"}},
                                                      {"remove_index": {"index": "things"}}]})
        assert r.status_code == 200, r.text
        assert http.get("/_alias/things").json() == {"things-v2": {"aliases": {"things": {}}}}
        assert http.get("/things/_count").json()["count"] == 1
        # without remove_index the name clash is still refused
        http.put("/other", json={})
        r = http.post("/_aliases", json={"actions": [{"add": {"index": "things-v2", "alias": "other"}}]})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_alias_name_exception"

"""ML Commons on the embedded node over HTTP: model groups, connectors, register (remote, URL, chunks,
pretrained), gates with ML Commons' real messages, tasks, deploy/undeploy/delete rules.

The torch-heavy local-model checks live in test_ml_local.py; remote execution in test_ml_remote.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

ML = "/_plugins/_ml"
NO_ELIGIBLE = ("No eligible node found to execute this request. It's best practice to provision ML nodes to "
               "serve your models. You can disable this setting to serve the model on your data node for "
               "development purposes by disabling the \"plugins.ml_commons.only_run_on_ml_node\" configuration "
               "using the _cluster/settings api")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kit.node.server import NodeServer

    server = NodeServer(tmp_path_factory.mktemp("ml-api-node"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def c(node: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.url, timeout=30) as client:
        yield client
        # every test starts from the defaults again
        client.put("/_cluster/settings", json={"persistent": {"plugins.ml_commons.*": None}})


def settings(c: httpx.Client, **values: Any) -> None:
    body = {"persistent": {f"plugins.ml_commons.{k}": v for k, v in values.items()}}
    r = c.put("/_cluster/settings", json=body)
    assert r.status_code == 200, r.text


def error(r: httpx.Response, status: int, type_: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status
    assert body["error"]["type"] == type_
    assert body["error"]["root_cause"][0]["type"] == type_
    return str(body["error"]["reason"])


def wait_task(c: httpx.Client, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task = c.get(f"{ML}/tasks/{task_id}").json()
        if task["state"] in ("COMPLETED", "FAILED", "COMPLETED_WITH_ERROR"):
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.05)


def make_zip(tmp_path: Path, entries: dict[str, bytes], name: str = "m.zip") -> tuple[Path, str]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arc, data in entries.items():
            zf.writestr(arc, data)
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return path, hashlib.sha256(buf.getvalue()).hexdigest()


CFG = {"model_type": "bert", "embedding_dimension": 4, "framework_type": "sentence_transformers"}
TOKENIZER = b'{"version": "1.0"}'


def connector_body(url: str = "https://api.openai.com/v1/embeddings", **extra: Any) -> dict[str, Any]:
    body = {"name": "c", "description": "d", "version": 1, "protocol": "http",
            "parameters": {"model": "text-embedding-3-small"}, "credential": {"openAI_key": "sk-secret"},
            "actions": [{"action_type": "predict", "method": "POST", "url": url,
                         "headers": {"Authorization": "Bearer ${credential.openAI_key}"},
                         "request_body": '{"input": ${parameters.input}, "model": "${parameters.model}"}',
                         "pre_process_function": "connector.pre_process.openai.embedding",
                         "post_process_function": "connector.post_process.openai.embedding"}]}
    body.update(extra)
    return body


# ------------------------------------------------------------------------------------------ model groups
SAFE = "can only contain letters, numbers, spaces, and basic punctuation (.,!?():@-_'/\")"


def test_names_and_descriptions_take_only_safe_text_from_3_1(c: httpx.Client, tmp_path: Path) -> None:
    """ML Commons 3.1+ ``StringUtils.validateFields`` (seen on 3.6.0: the kit's old ``[oskit:…]`` marker)."""
    r = c.post(f"{ML}/model_groups/_register", json={"name": "grp[1]", "description": "[oskit:p] group"})
    assert error(r, 400, "action_request_validation_exception") == (
        f"Validation Failed: 1: Model group name {SAFE};2: Model group description {SAFE};")
    r = c.post(f"{ML}/connectors/_create", json=connector_body(description="a + b"))
    assert error(r, 400, "action_request_validation_exception") == (
        f"Validation Failed: 1: Model connector description {SAFE};")
    r = c.post(f"{ML}/models/_register", json={"name": "m", "function_name": "remote", "description": "#1",
                                                "connector": connector_body()})
    assert error(r, 400, "action_request_validation_exception") == f"Validation Failed: 1: Model description {SAFE};"
    ok = "(oskit:p:clip:0123456789ab) Zoë's CLIP, v2/3: \"fast\"! @home_x-y?"
    r = c.post(f"{ML}/model_groups/_register", json={"name": "grp-safe", "description": ok})
    assert r.status_code == 200, r.text
    gid = r.json()["model_group_id"]
    r = c.put(f"{ML}/model_groups/{gid}", json={"description": "x; y"})
    assert error(r, 400, "action_request_validation_exception") == (
        f"Validation Failed: 1: Model group description {SAFE};")
    assert c.delete(f"{ML}/model_groups/{gid}").status_code == 200
    from kit.node.server import NodeServer

    with NodeServer(tmp_path / "n219", version="2.19.0") as old, httpx.Client(base_url=old.url, timeout=30) as c2:
        r = c2.post(f"{ML}/model_groups/_register", json={"name": "grp[1]", "description": "[oskit:p] group"})
        assert r.status_code == 200, r.text  # 2.x takes any text


def test_model_group_lifecycle(c: httpx.Client) -> None:
    r = c.post(f"{ML}/model_groups/_register", json={"name": "grp-a", "description": "first"})
    assert r.status_code == 200 and r.json()["status"] == "CREATED"
    gid = r.json()["model_group_id"]
    assert len(gid) == 20
    reason = error(c.post(f"{ML}/model_groups/_register", json={"name": "grp-a"}), 400, "illegal_argument_exception")
    assert reason == f"The name you provided is already being used by a model group with ID: {gid}."
    got = c.get(f"{ML}/model_groups/{gid}").json()
    assert got["name"] == "grp-a" and got["latest_version"] == 0 and got["access"] == "public"
    hits = c.post(f"{ML}/model_groups/_search", json={"query": {"term": {"name.keyword": "grp-a"}}}).json()
    assert [h["_id"] for h in hits["hits"]["hits"]] == [gid]
    assert {"_version", "_seq_no", "_primary_term"} <= set(hits["hits"]["hits"][0])
    assert c.put(f"{ML}/model_groups/{gid}", json={"description": "second"}).json() == {"status": "Updated"}
    assert c.get(f"{ML}/model_groups/{gid}").json()["description"] == "second"
    assert c.delete(f"{ML}/model_groups/{gid}").json()["result"] == "deleted"
    reason = error(c.get(f"{ML}/model_groups/{gid}"), 404, "status_exception")
    assert reason == f"Failed to find model group with the provided model group id: {gid}"


def test_model_group_access_fields_need_security(c: httpx.Client) -> None:
    r = c.post(f"{ML}/model_groups/_register", json={"name": "grp-acl", "access_mode": "restricted"})
    assert "Security plugin or model access control is disabled" in error(r, 400, "illegal_argument_exception")


# ------------------------------------------------------------------------------------------ connectors
def test_connector_crud_never_returns_credentials(c: httpx.Client) -> None:
    r = c.post(f"{ML}/connectors/_create", json=connector_body())
    assert r.status_code == 200, r.text
    cid = r.json()["connector_id"]
    got = c.get(f"{ML}/connectors/{cid}").json()
    assert "credential" not in got and got["actions"][0]["url"] == "https://api.openai.com/v1/embeddings"
    assert got["version"] == "1" and got["parameters"] == {"model": "text-embedding-3-small"}
    hits = c.post(f"{ML}/connectors/_search", json={"query": {"match_all": {}}, "size": 100}).json()["hits"]["hits"]
    assert any(h["_id"] == cid for h in hits)
    assert all("credential" not in h["_source"] for h in hits)
    assert "sk-secret" not in json.dumps(hits)
    r = c.put(f"{ML}/connectors/{cid}", json={"description": "new", "parameters": {"dims": 8}})
    assert r.status_code == 200, r.text
    got = c.get(f"{ML}/connectors/{cid}").json()
    assert got["description"] == "new" and got["parameters"] == {"model": "text-embedding-3-small", "dims": "8"}
    assert c.delete(f"{ML}/connectors/{cid}").json()["result"] == "deleted"
    assert error(c.get(f"{ML}/connectors/{cid}"), 404, "status_exception") == "Failed to find connector"


@pytest.mark.parametrize(("change", "message"), [
    ({"url": "http://example.internal:8000/embed"}, "Connector URL is not matching the trusted connector endpoint regex"),
    ({"credential": {}}, "Connector credential is null or empty list"),
    ({"protocol": "grpc"}, "Unsupported connector protocol. Please use one of [aws_sigv4, http, mcp_sse, mcp_streamable_http]"),
    ({"name": None}, "Connector name is null"),
])
def test_connector_create_errors(c: httpx.Client, change: dict[str, Any], message: str) -> None:
    body = connector_body(change.pop("url", "https://api.openai.com/v1/embeddings"))
    body.update(change)
    if body.get("name") is None:
        body.pop("name")
    assert error(c.post(f"{ML}/connectors/_create", json=body), 400, "illegal_argument_exception") == message


def test_painless_process_functions_are_refused_by_name(c: httpx.Client) -> None:
    body = connector_body()
    body["actions"][0]["pre_process_function"] = "StringBuilder b = new StringBuilder(); return b.toString();"
    reason = error(c.post(f"{ML}/connectors/_create", json=body), 400, "illegal_argument_exception")
    assert reason.startswith("Custom pre-process function (Painless script)") and "not supported" in reason


# ------------------------------------------------------------------------------------------ remote models
def test_register_remote_model_is_synchronous_and_versions_count_up(c: httpx.Client) -> None:
    cid = c.post(f"{ML}/connectors/_create", json=connector_body()).json()["connector_id"]
    gid = c.post(f"{ML}/model_groups/_register", json={"name": "remote-grp"}).json()["model_group_id"]
    r = c.post(f"{ML}/models/_register", json={"name": "r1", "function_name": "remote", "model_group_id": gid,
                                              "connector_id": cid, "version": "9.9.9"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "CREATED" and set(body) == {"task_id", "status", "model_id"}
    task = c.get(f"{ML}/tasks/{body['task_id']}").json()
    assert task["state"] == "COMPLETED" and task["is_async"] is False and task["model_id"] == body["model_id"]
    assert task["task_type"] == "REGISTER_MODEL" and task["function_name"] == "REMOTE"
    model = c.get(f"{ML}/models/{body['model_id']}").json()
    assert model["model_version"] == "1" and model["algorithm"] == "REMOTE" and model["model_state"] == "REGISTERED"
    second = c.post(f"{ML}/models/_register", json={"name": "r2", "function_name": "REMOTE", "model_group_id": gid,
                                                    "connector_id": cid}).json()
    assert c.get(f"{ML}/models/{second['model_id']}").json()["model_version"] == "2"
    assert c.get(f"{ML}/model_groups/{gid}").json()["latest_version"] == 2
    # a connector in use cannot go
    reason = error(c.delete(f"{ML}/connectors/{cid}"), 409, "status_exception")
    assert reason.startswith("2 models are still using this connector, please delete or update the models first: [")
    # deploy (remote: synchronous), then delete refused, undeploy, delete
    dep = c.post(f"{ML}/models/{body['model_id']}/_deploy").json()
    assert dep["task_type"] == "DEPLOY_MODEL" and dep["status"] == "COMPLETED"
    assert c.get(f"{ML}/models/{body['model_id']}").json()["model_state"] == "DEPLOYED"
    reason = error(c.delete(f"{ML}/models/{body['model_id']}"), 400, "status_exception")
    assert reason == "Model cannot be deleted in deploying or deployed state. Try undeploy model first then delete"
    und = c.post(f"{ML}/models/{body['model_id']}/_undeploy").json()
    (node_id, stats), = und.items()
    assert stats == {"stats": {body["model_id"]: "undeployed"}}
    assert c.get(f"{ML}/models/{body['model_id']}").json()["model_state"] == "UNDEPLOYED"
    assert c.delete(f"{ML}/models/{body['model_id']}").json()["result"] == "deleted"
    assert c.post(f"{ML}/models/_undeploy", json={"model_ids": [second["model_id"]]}).json() == {
        node_id: {"stats": {second["model_id"]: "not_found"}}}


def test_register_remote_without_group_creates_one_named_like_the_model(c: httpx.Client) -> None:
    cid = c.post(f"{ML}/connectors/_create", json=connector_body()).json()["connector_id"]
    mid = c.post(f"{ML}/models/_register", json={"name": "auto-grouped", "function_name": "remote",
                                                 "connector_id": cid}).json()["model_id"]
    gid = c.get(f"{ML}/models/{mid}").json()["model_group_id"]
    assert c.get(f"{ML}/model_groups/{gid}").json()["name"] == "auto-grouped"


def test_register_remote_inline_connector_is_validated_and_hidden(c: httpx.Client) -> None:
    r = c.post(f"{ML}/models/_register", json={"name": "inline", "function_name": "remote"})
    assert error(r, 400, "illegal_argument_exception") == (
        "You must provide connector content when creating a remote model without connector id!")
    bad = connector_body("http://10.1.2.3/embed")
    r = c.post(f"{ML}/models/_register", json={"name": "inline", "function_name": "remote", "connector": bad})
    assert error(r, 400, "illegal_argument_exception") == "Connector URL is not matching the trusted connector endpoint regex"
    r = c.post(f"{ML}/models/_register", json={"name": "inline", "function_name": "remote",
                                              "connector": connector_body()})
    model = c.get(f"{ML}/models/{r.json()['model_id']}").json()
    assert model["connector"]["name"] == "c" and "credential" not in model["connector"]
    hits = c.post(f"{ML}/models/_search", json={"query": {"term": {"name.keyword": "inline"}}}).json()
    assert "sk-secret" not in json.dumps(hits)


# ------------------------------------------------------------------------------------------ local register gates
def test_local_register_needs_an_eligible_node_first(c: httpx.Client, tmp_path: Path) -> None:
    body = {"name": "l", "model_format": "TORCH_SCRIPT", "model_config": CFG, "url": "file:///x.zip"}
    r = c.post(f"{ML}/models/_register", json=body)
    assert error(r, 400, "illegal_argument_exception") == (
        "To upload custom model user needs to enable allow_registering_model_via_url settings. Otherwise please "
        "use OpenSearch pre-trained models.")
    settings(c, allow_registering_model_via_url=True)
    assert error(c.post(f"{ML}/models/_register", json=body), 400, "illegal_argument_exception") == NO_ELIGIBLE
    settings(c, only_run_on_ml_node=False)
    r = c.post(f"{ML}/models/_register", json={**body, "url": "s3://bucket/m.zip"})
    assert error(r, 400, "illegal_argument_exception") == "URL can't match trusted url regex"
    r = c.post(f"{ML}/models/_register", json={k: v for k, v in body.items() if k != "model_config"})
    assert error(r, 400, "illegal_argument_exception") == "model config is null"
    r = c.post(f"{ML}/models/_register", json={k: v for k, v in body.items() if k != "model_format"})
    assert error(r, 400, "illegal_argument_exception") == "model format is null"
    r = c.post(f"{ML}/models/_register", json={**body, "model_config": {**CFG, "pooling_mode": "weightedmean"}})
    assert error(r, 400, "illegal_argument_exception") == "Wrong pooling method"


@pytest.mark.parametrize(("entries", "fmt", "message"), [
    ({"tokenizer.json": TOKENIZER}, "TORCH_SCRIPT", "Can't find model file"),
    ({"model.pt": b"x"}, "TORCH_SCRIPT", "No tokenizer file"),
    ({"model.onnx": b"x", "tokenizer.json": TOKENIZER}, "TORCH_SCRIPT", "Model format is TORCH_SCRIPT, but find .onnx file"),
    ({"a.pt": b"x", "b.pt": b"y", "tokenizer.json": TOKENIZER}, "TORCH_SCRIPT", "Find multiple model files, but expected only one"),
    ({"model.pt": b"x", "tokenizer.json": TOKENIZER, "lib/evil.so": b"\x7fELF"}, "TORCH_SCRIPT",
     "Model archive contains a disallowed executable file: lib/evil.so"),
])
def test_url_registration_validates_the_zip(c: httpx.Client, tmp_path: Path, entries: dict[str, bytes], fmt: str,
                                            message: str) -> None:
    settings(c, allow_registering_model_via_url=True, only_run_on_ml_node=False)
    path, sha = make_zip(tmp_path, entries)
    r = c.post(f"{ML}/models/_register", json={"name": "zip-check", "model_format": fmt, "model_config": CFG,
                                              "url": path.as_uri(), "model_content_hash_value": sha})
    assert r.status_code == 200 and r.json()["status"] == "CREATED"
    task = wait_task(c, r.json()["task_id"])
    assert task["state"] == "FAILED" and task["error"] == message and task["is_async"] is True
    assert "model_id" not in task
    # the half-registered model and the group made for it were rolled back before the task said
    # FAILED (MLModelManager.registerModel: deleteModel, then handleException)
    hits = c.post(f"{ML}/models/_search", json={"query": {"term": {"name.keyword": "zip-check"}}}).json()
    assert hits["hits"]["total"]["value"] == 0
    groups = c.post(f"{ML}/model_groups/_search", json={"query": {"term": {"name.keyword": "zip-check"}}}).json()
    assert groups["hits"]["total"]["value"] == 0


def test_failed_url_registration_gives_an_existing_group_its_version_back(c: httpx.Client, tmp_path: Path) -> None:
    settings(c, allow_registering_model_via_url=True, only_run_on_ml_node=False)
    group_id = c.post(f"{ML}/model_groups/_register", json={"name": "kept-group"}).json()["model_group_id"]
    good, good_sha = make_zip(tmp_path, {"model.pt": b"w", "tokenizer.json": TOKENIZER}, "good.zip")
    bad, bad_sha = make_zip(tmp_path, {"model.pt": b"w"}, "bad.zip")
    body = {"name": "kept", "model_format": "TORCH_SCRIPT", "model_config": CFG, "model_group_id": group_id}
    ok = wait_task(c, c.post(f"{ML}/models/_register", json={**body, "url": good.as_uri(),
                                                              "model_content_hash_value": good_sha}).json()["task_id"])
    assert ok["state"] == "COMPLETED"
    failed = wait_task(c, c.post(f"{ML}/models/_register", json={**body, "url": bad.as_uri(),
                                                                  "model_content_hash_value": bad_sha}).json()["task_id"])
    assert failed["state"] == "FAILED" and failed["error"] == "No tokenizer file"
    group = c.get(f"{ML}/model_groups/{group_id}").json()
    assert group["latest_version"] == 1  # 2 was taken by the failed registration and given back
    again = wait_task(c, c.post(f"{ML}/models/_register", json={**body, "url": good.as_uri(),
                                                                 "model_content_hash_value": good_sha}).json()["task_id"])
    assert c.get(f"{ML}/models/{again['model_id']}").json()["model_version"] == "2"


def test_url_registration_hash_rules_and_chunks(c: httpx.Client, tmp_path: Path) -> None:
    settings(c, allow_registering_model_via_url=True, only_run_on_ml_node=False)
    path, sha = make_zip(tmp_path, {"model.pt": b"weights" * 10, "tokenizer.json": TOKENIZER})
    base = {"name": "hashy", "model_format": "TORCH_SCRIPT", "model_config": CFG, "url": path.as_uri()}
    task = wait_task(c, c.post(f"{ML}/models/_register", json=base).json()["task_id"])
    assert task["error"] == ("Model content Hash code need to be provided when register via url. Please calculate "
                             "sha 256 Hash code.")
    task = wait_task(c, c.post(f"{ML}/models/_register", json={**base, "model_content_hash_value": "0" * 64}).json()["task_id"])
    assert task["error"] == "model content changed"
    task = wait_task(c, c.post(f"{ML}/models/_register", json={**base, "model_content_hash_value": sha}).json()["task_id"])
    assert task["state"] == "COMPLETED", task
    model = c.get(f"{ML}/models/{task['model_id']}").json()
    assert model["model_state"] == "REGISTERED" and model["total_chunks"] == 1
    assert model["model_content_hash_value"] == sha and model["model_content_size_in_bytes"] == path.stat().st_size
    assert model["model_config"]["framework_type"] == "SENTENCE_TRANSFORMERS"
    chunk = c.post(f"{ML}/models/_search", json={"query": {"term": {"model_id": task["model_id"]}}}).json()
    (hit,) = chunk["hits"]["hits"]
    assert hit["_id"] == task["model_id"] + "_0" and hit["_source"]["chunk_number"] == 0
    assert "model_content" not in hit["_source"]


# ------------------------------------------------------------------------------------------ chunk upload
def test_chunk_upload_flow_and_hash_checked_at_deploy(c: httpx.Client) -> None:
    meta = {"name": "chunky", "version": "1.0.1", "model_format": "TORCH_SCRIPT", "function_name": "TEXT_EMBEDDING",
            "model_content_hash_value": "123abc", "total_chunks": 3, "model_config": CFG}
    r = c.post(f"{ML}/models/_register_meta", json=meta)
    assert "allow_registering_model_via_local_file" in error(r, 400, "illegal_argument_exception")
    settings(c, allow_registering_model_via_local_file=True)
    for missing, message in (("model_content_hash_value", "model content hash value is null"),
                             ("total_chunks", "total chunks field is null"), ("name", "model name is null")):
        r = c.post(f"{ML}/models/_register_meta", json={k: v for k, v in meta.items() if k != missing})
        assert error(r, 400, "illegal_argument_exception") == message
    r = c.post(f"{ML}/models/_register_meta", json=meta)
    assert r.status_code == 200 and r.json()["status"] == "CREATED"
    mid = r.json()["model_id"]
    assert c.get(f"{ML}/models/{mid}").json()["model_state"] == "REGISTERING"
    up = f"{ML}/models/{mid}/upload_chunk"
    assert error(c.post(f"{up}/3", content=b"x"), 400, "illegal_argument_exception") == "Chunk number exceeds total chunks"
    assert error(c.post(f"{up}/0", content=b""), 400, "illegal_argument_exception") == "Chunk size either 0 or null"
    assert error(c.post(f"{up}/0", content=b"x" * 10_000_001), 400, "illegal_argument_exception") == "Chunk size exceeds 10MB"
    assert c.post(f"{up}/0", content=b"part0").json() == {"status": "Uploaded"}
    assert c.post(f"{ML}/models/{mid}/chunk/1", content=b"part1").json() == {"status": "Uploaded"}  # old alias
    assert c.get(f"{ML}/models/{mid}").json()["model_state"] == "REGISTERING"
    # OpenSearch answers 406 to an octet-stream body before the handler runs; raw bytes go as application/json
    r = c.post(f"{up}/2", content=b"part2", headers={"content-type": "application/octet-stream"})
    assert (r.status_code, r.json()) == (406, {"error": "Content-Type header [application/octet-stream] is not "
                                                        "supported", "status": 406})
    assert c.post(f"{up}/2", content=b"part2", headers={"content-type": "application/json"}).json() == {
        "status": "Uploaded"}
    assert c.get(f"{ML}/models/{mid}").json()["model_state"] == "REGISTERED"
    # chunk docs are ordinary search hits; filter them out the documented way
    everything = c.post(f"{ML}/models/_search", json={"query": {"term": {"name.keyword": "chunky"}}}).json()
    assert sorted(h["_id"] for h in everything["hits"]["hits"]) == [mid, f"{mid}_0", f"{mid}_1", f"{mid}_2"]
    only_meta = c.post(f"{ML}/models/_search", json={"query": {"bool": {
        "must": [{"term": {"name.keyword": "chunky"}}], "must_not": [{"exists": {"field": "chunk_number"}}]}}}).json()
    assert [h["_id"] for h in only_meta["hits"]["hits"]] == [mid]
    # predict before deploy
    r = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": ["x"]})
    assert error(r, 400, "illegal_argument_exception") == "Model not ready yet. Please deploy the model first."
    # deploy: no ML node, then the hash check fails on the node
    assert error(c.post(f"{ML}/models/{mid}/_deploy"), 400, "illegal_argument_exception") == "no eligible node found"
    settings(c, only_run_on_ml_node=False)
    dep = c.post(f"{ML}/models/{mid}/_deploy").json()
    assert dep["task_type"] == "DEPLOY_MODEL" and dep["status"] == "CREATED"
    task = wait_task(c, dep["task_id"])
    assert task["state"] == "FAILED" and task["model_id"] == mid
    assert list(json.loads(task["error"]).values()) == ["model content changed"]
    assert json.loads(task["error"]).keys() == set(task["worker_node"])
    assert c.get(f"{ML}/models/{mid}").json()["model_state"] == "DEPLOY_FAILED"
    assert c.delete(f"{ML}/models/{mid}").json()["result"] == "deleted"
    left = c.post(f"{ML}/models/_search", json={"query": {"term": {"name.keyword": "chunky"}}}).json()
    assert left["hits"]["total"]["value"] == 0  # chunks went with it


def test_chunk_uploaded_model_document_is_rebuilt_after_the_last_chunk(c: httpx.Client) -> None:
    # MLModelChunkUploader (2.19) re-indexes the meta document from a fresh MLModel after the last chunk;
    # the real 2.19.6 node then answers no description, last_updated_time or last_registered_time.
    settings(c, allow_registering_model_via_local_file=True)
    meta = {"name": "rebuilt", "model_format": "TORCH_SCRIPT", "function_name": "TEXT_EMBEDDING",
            "description": "owned by oskit", "model_content_hash_value": "123abc", "total_chunks": 2,
            "model_content_size_in_bytes": 10, "model_config": CFG, "is_enabled": True}
    mid = c.post(f"{ML}/models/_register_meta", json=meta).json()["model_id"]
    registering = c.get(f"{ML}/models/{mid}").json()
    assert registering["description"] == "owned by oskit" and "last_updated_time" in registering
    c.post(f"{ML}/models/{mid}/upload_chunk/0", content=b"part0")
    c.post(f"{ML}/models/{mid}/upload_chunk/1", content=b"part1")
    model = c.get(f"{ML}/models/{mid}").json()
    assert sorted(model) == ["algorithm", "created_time", "is_hidden", "model_config", "model_content_hash_value",
                             "model_content_size_in_bytes", "model_format", "model_group_id", "model_state",
                             "model_version", "name", "total_chunks"]
    assert model["model_state"] == "REGISTERED" and model["is_hidden"] is False
    assert model["created_time"] == registering["created_time"]
    hit = c.post(f"{ML}/models/_search", json={"query": {"ids": {"values": [mid]}}}).json()["hits"]["hits"][0]
    assert "is_hidden" not in hit["_source"] and "description" not in hit["_source"]  # the stored document
    assert c.delete(f"{ML}/models/{mid}").json()["result"] == "deleted"


def test_old_route_aliases(c: httpx.Client, tmp_path: Path) -> None:
    settings(c, allow_registering_model_via_local_file=True, allow_registering_model_via_url=True,
             only_run_on_ml_node=False)
    r = c.post(f"{ML}/models/meta", json={"name": "old", "model_format": "ONNX", "model_content_hash_value": "ab",
                                         "total_chunks": 1, "model_config": CFG})
    assert r.status_code == 200 and r.json()["status"] == "CREATED"
    path, sha = make_zip(tmp_path, {"model.onnx": b"x", "tokenizer.json": TOKENIZER})
    r = c.post(f"{ML}/models/_upload", json={"name": "old2", "model_format": "ONNX", "model_config": CFG,
                                            "url": path.as_uri(), "model_content_hash_value": sha})
    assert wait_task(c, r.json()["task_id"])["state"] == "COMPLETED"


# ------------------------------------------------------------------------------------------ pretrained
def test_pretrained_names_fail_clearly_without_a_mirror(c: httpx.Client) -> None:
    settings(c, only_run_on_ml_node=False)
    r = c.post(f"{ML}/models/_register", json={"name": "huggingface/sentence-transformers/all-MiniLM-L6-v2",
                                              "version": "1.0.2", "model_format": "TORCH_SCRIPT"})
    task = wait_task(c, r.json()["task_id"])
    assert task["state"] == "FAILED"
    assert "artifacts.opensearch.org" in task["error"] and "OSKIT_ML_MIRROR" in task["error"]


def test_pretrained_from_a_local_mirror(c: httpx.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings(c, only_run_on_ml_node=False)
    name, version = "huggingface/sentence-transformers/all-MiniLM-L6-v2", "1.0.2"
    folder = tmp_path / "mirror" / name / version / "torch_script"
    folder.mkdir(parents=True)
    path, sha = make_zip(folder, {"model.pt": b"w", "tokenizer.json": TOKENIZER},
                         name="sentence-transformers_all-MiniLM-L6-v2-1.0.2-torch_script.zip")
    (folder / "config.json").write_text(json.dumps({
        "name": name, "version": version, "model_format": "TORCH_SCRIPT", "model_task_type": "TEXT_EMBEDDING",
        "model_content_hash_value": sha, "model_config": {"model_type": "bert", "embedding_dimension": 384,
                                                          "framework_type": "sentence_transformers"}}))
    monkeypatch.setenv("OSKIT_ML_MIRROR", str(tmp_path / "mirror"))
    r = c.post(f"{ML}/models/_register", json={"name": name, "version": version, "model_format": "TORCH_SCRIPT"})
    task = wait_task(c, r.json()["task_id"])
    assert task["state"] == "COMPLETED", task
    model = c.get(f"{ML}/models/{task['model_id']}").json()
    assert model["model_content_hash_value"] == sha and model["model_config"]["embedding_dimension"] == 384
    r = c.post(f"{ML}/models/_register", json={"name": name, "version": "9.9.9", "model_format": "TORCH_SCRIPT"})
    assert "is not in the local mirror" in wait_task(c, r.json()["task_id"])["error"]


# ------------------------------------------------------------------------------------------ tasks, misc
def test_tasks_get_search_delete(c: httpx.Client) -> None:
    assert error(c.get(f"{ML}/tasks/nope"), 404, "status_exception") == "Failed to find task"
    cid = c.post(f"{ML}/connectors/_create", json=connector_body()).json()["connector_id"]
    tid = c.post(f"{ML}/models/_register", json={"name": "t", "function_name": "remote",
                                                "connector_id": cid}).json()["task_id"]
    hits = c.post(f"{ML}/tasks/_search", json={"query": {"term": {"task_type": "REGISTER_MODEL"}}, "size": 100}).json()
    assert tid in [h["_id"] for h in hits["hits"]["hits"]]
    assert c.delete(f"{ML}/tasks/{tid}").json()["result"] == "deleted"


def test_predict_missing_model_and_unsupported_algorithm(c: httpx.Client) -> None:
    assert error(c.post(f"{ML}/models/nope/_predict", json={"text_docs": ["x"]}), 404,
                 "status_exception") == "Failed to find model"
    assert error(c.get(f"{ML}/models/nope"), 404, "status_exception") == (
        "Failed to find model with the provided model id: nope")


def test_settings_defaults_are_registered(c: httpx.Client) -> None:
    got = c.get("/_cluster/settings", params={"include_defaults": "true", "flat_settings": "true"}).json()
    assert got["defaults"]["plugins.ml_commons.only_run_on_ml_node"] == "true"
    assert "^https://api\\.openai\\.com/.*$" in got["defaults"]["plugins.ml_commons.trusted_connector_endpoints_regex"]

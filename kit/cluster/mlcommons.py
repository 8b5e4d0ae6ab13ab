"""ML Commons operations: model groups, connectors, register (remote / pretrained / package upload or
URL), deploy, predict probe, undeploy and delete. Each call is one REST request (plus task waits)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from kit.cluster.client import Client
from kit.cluster.desired import CHUNK_SIZE, ModelDesired, total_chunks
from kit.cluster.tasks import wait_for_task
from kit.errors import ClusterError, Conflict, ModelError, NotFound, PackageError

log = logging.getLogger("kit.cluster")

__all__ = [
    "create_connector", "delete_connector", "delete_group", "delete_model", "deploy_model", "ensure_package",
    "get_model", "probe_model", "register_group", "register_model", "undeploy_model",
]

ML = "/_plugins/_ml"
Progress = Callable[[str], None]


def register_group(client: Client, name: str, description: str) -> str:
    resp = client.request("POST", f"{ML}/model_groups/_register", body={"name": name, "description": description},
                          retry=False)
    return str(resp["model_group_id"])


def _delete_once_models_are_gone(client: Client, path: str, *, timeout: float = 30.0) -> None:
    """DELETE a group or connector, waiting out ML Commons' near-real-time view of its models.

    ML Commons refuses (409) while a search still finds models of the group or connector, and a real
    cluster refreshes that search each second: right after the models went, the refusal is stale.
    """
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            client.request("DELETE", path, ignore=(404,))
            return
        except Conflict:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def delete_group(client: Client, group_id: str) -> None:
    _delete_once_models_are_gone(client, f"{ML}/model_groups/{group_id}")


def create_connector(client: Client, body: dict[str, Any]) -> str:
    resp = client.request("POST", f"{ML}/connectors/_create", body=body, retry=False)
    return str(resp["connector_id"])


def delete_connector(client: Client, connector_id: str) -> None:
    _delete_once_models_are_gone(client, f"{ML}/connectors/{connector_id}")


def get_model(client: Client, model_id: str) -> dict[str, Any] | None:
    try:
        resp = client.request("GET", f"{ML}/models/{model_id}")
    except NotFound:
        return None
    return resp if isinstance(resp, dict) else None


def data_dir() -> Path:
    env = os.environ.get("OSKIT_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "oskit"


def ensure_package(md: ModelDesired, progress: Progress | None = None) -> Any:
    """Build (or reuse from the cache under OSKIT_DATA_DIR/packages) the model's package."""
    spec = md.spec.package
    if spec is None:
        raise PackageError(f"model '{md.name}' has no package")
    fmt = spec.format.lower()
    key = hashlib.sha256(f"{spec.source}\0{fmt}".encode()).hexdigest()[:16]
    out = data_dir() / "packages" / key / f"{md.name}.zip"
    from kit.models import package as pkg  # heavy (torch) only when a package is really needed

    meta = out.with_suffix(".json")
    if out.is_file() and meta.is_file():
        import json

        blob = out.read_bytes()
        fields = json.loads(meta.read_text(encoding="utf-8"))
        sha = hashlib.sha256(blob).hexdigest()
        if fields.get("model_content_hash_value") == sha:
            return pkg.PackageInfo(zip_path=out, json_path=meta, sha256=sha, size=len(blob), register_fields=fields)
    if progress:
        progress(f"building the model package for {md.name} ({spec.source}, {fmt}); cached for later runs")
    return pkg.build_package(spec.source, fmt, out, name=f"{md.name}")


def register_model(client: Client, md: ModelDesired, group_id: str, connector_id: str | None,
                   *, timeout: float, progress: Progress | None = None) -> str:
    """Register the model; returns its model_id (waits for the register task where there is one)."""
    body = dict(md.register, model_group_id=group_id)
    if md.spec.type == "remote":
        body["connector_id"] = connector_id
        resp = client.request("POST", f"{ML}/models/_register", body=body, retry=False)
        if resp.get("model_id"):
            return str(resp["model_id"])
        task = wait_for_task(client, str(resp["task_id"]), timeout=timeout, what=f"register {md.name}")
        return str(task["model_id"])
    if md.spec.type == "local_pretrained":
        resp = client.request("POST", f"{ML}/models/_register", body=body, retry=False)
        task = wait_for_task(client, str(resp["task_id"]), timeout=timeout, what=f"register {md.name}")
        return str(task["model_id"])
    info = ensure_package(md, progress)
    fields = info.register_fields
    body.setdefault("model_config", fields.get("model_config"))
    body["model_content_hash_value"] = info.sha256
    spec = md.spec.package
    assert spec is not None
    if spec.register_via == "url":
        body["url"] = spec.url
        resp = client.request("POST", f"{ML}/models/_register", body=body, retry=False)
        task = wait_for_task(client, str(resp["task_id"]), timeout=timeout, what=f"register {md.name}")
        return str(task["model_id"])
    # model_content_size_in_bytes is optional in ML Commons and absent from the API spec: not sent.
    body["total_chunks"] = total_chunks(info.size)
    resp = client.request("POST", f"{ML}/models/_register_meta", body=body, retry=False)
    model_id = str(resp["model_id"])
    with open(info.zip_path, "rb") as fh:
        for n in range(body["total_chunks"]):
            chunk = fh.read(CHUNK_SIZE)
            if progress:
                progress(f"uploading {md.name}: chunk {n + 1}/{body['total_chunks']} ({len(chunk)} bytes)")
            # Chunks are idempotent (doc <model_id>_<n>), so a transport retry is harmless here. Raw bytes
            # labelled JSON, as opensearch-py-ml sends them: a real cluster refuses octet-stream (406).
            client.request("POST", f"{ML}/models/{model_id}/upload_chunk/{n}", body=chunk,
                           headers={"Content-Type": "application/json"})
    _restore_description(client, model_id, body.get("description"), name=md.name, timeout=timeout)
    return model_id


def _restore_description(client: Client, model_id: str, description: str | None, *, name: str,
                         timeout: float) -> None:
    """Put back the description (it carries the kit's ownership marker: without it the model looks
    foreign and every plan registers it again) that real ML Commons drops from a model uploaded in
    chunks. It drops it when it re-indexes the model document after the last chunk, and it answers
    that chunk before the re-index is written (MLModelChunkUploader does not wait for it): so wait
    until the document says REGISTERED, then update, then check it stayed."""
    if not description:
        return
    deadline = time.monotonic() + min(timeout, 60.0)
    delay = 0.05
    state: Any = None
    while True:
        stored = get_model(client, model_id) or {}
        state = stored.get("model_state")
        if state != "REGISTERING":
            if stored.get("description") == description:
                return
            client.request("PUT", f"{ML}/models/{model_id}", body={"description": description})
        if time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    raise ModelError(f"model '{name}' is {state} and has not kept its description after its last chunk",
                     hint="run oskit apply again (it resumes); check the cluster's ML Commons logs")


def deploy_model(client: Client, model_id: str, *, name: str, timeout: float) -> None:
    resp = client.request("POST", f"{ML}/models/{model_id}/_deploy")
    if resp.get("task_id"):
        # Even a COMPLETED answer (remote models) is confirmed through the task: it carries the error text.
        wait_for_task(client, str(resp["task_id"]), timeout=timeout, what=f"deploy {name}")
    # Real ML Commons writes the model's state after the task says COMPLETED: a GET right after may still
    # say DEPLOYING for a moment, so wait for it (bounded) before judging.
    deadline = time.monotonic() + min(timeout, 60.0)
    delay = 0.05
    while True:
        model = get_model(client, model_id) or {}
        state = model.get("model_state")
        if state != "DEPLOYING" or time.monotonic() >= deadline:
            break
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
    if state not in ("DEPLOYED", None):
        raise ModelError(f"model '{name}' is {state} after deploy", hint="check the cluster's ML Commons logs")


def probe_model(client: Client, md: ModelDesired, model_id: str) -> str:
    """Run the model's probe input; check the vector length of embedding models. Returns a summary."""
    if md.probe is None:
        return "no probe"
    path, body = md.probe
    try:
        resp = client.request("POST", path.format(model_id=model_id), body=body)
    except ClusterError as exc:
        raise ModelError(f"the predict probe of model '{md.name}' failed: {exc}",
                         hint="is the model server running? (oskit serve) — run oskit apply again after fixing") from None
    results = (resp or {}).get("inference_results") or []
    if not results:
        raise ModelError(f"the predict probe of model '{md.name}' returned no inference_results")
    if md.spec.task != "embedding":
        return "ok"
    vector = _first_vector(results[0])
    if vector is None:
        raise ModelError(f"the predict probe of model '{md.name}' returned no embedding",
                         hint="check the connector's post_process_function")
    if len(vector) != md.spec.dimension:
        raise ModelError(f"model '{md.name}' returned a {len(vector)}-d vector; its spec says {md.spec.dimension}",
                         hint="fix dimension in the model spec (and mappings that use it)")
    return f"{len(vector)}-d vector"


def _first_vector(result: dict[str, Any]) -> list[float] | None:
    for out in result.get("output") or []:
        if isinstance(out.get("data"), list) and out["data"]:
            return list(out["data"])
        dam = out.get("dataAsMap") or {}
        for key in ("embedding", "response"):
            vec = dam.get(key)
            if isinstance(vec, list) and vec and isinstance(vec[0], list):
                vec = vec[0]
            if isinstance(vec, list) and vec:
                return list(vec)
    return None


def undeploy_model(client: Client, model_id: str) -> None:
    client.request("POST", f"{ML}/models/{model_id}/_undeploy", ignore=(404,))


def delete_model(client: Client, model_id: str) -> None:
    """Undeploy (if needed) and delete; chunk docs go with the model."""
    model = get_model(client, model_id)
    if model is None:
        return
    if model.get("model_state") in ("DEPLOYED", "DEPLOYING", "PARTIALLY_DEPLOYED"):
        undeploy_model(client, model_id)
    try:
        client.request("DELETE", f"{ML}/models/{model_id}")
    except NotFound:
        return
    except Conflict:
        raise

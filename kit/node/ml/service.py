"""``MLCommons``: the node's ``/_plugins/_ml`` API (model groups, models, chunks, tasks, connectors, predict).

Size: one object over one shared state (the model/task locks, loaded models, task threads) that the
register → task → deploy → predict state machine runs through; connectors, templating, local models
and the mirror are already their own modules (``connector``, ``templating``, ``local``, ``mirror``).

Everything lives as documents in ML Commons' system indices through the Engine API, so ``_search``
on them is a plain search, as in the real plugin. Local models are registered/deployed by background
threads with the real task state machine; remote models are synchronous. Messages, statuses and
response shapes follow ml-commons (the Java class each handler mirrors is named in its docstring).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kit.node.errors import ApiError
from kit.node.ml import connector as conn
from kit.node.ml import mirror
from kit.node.ml.common import (
    CONNECTOR_INDEX,
    MAPPINGS,
    MODEL_GROUP_INDEX,
    MODEL_INDEX,
    NO_ELIGIBLE_NODE,
    TASK_INDEX,
    MLSettings,
    check_safe_fields,
    iae,
    new_id,
    now_ms,
    status_error,
)
from kit.node.ml.local import LocalModel, ModelLoadError, verify_model_zip
from kit.node.ml.secrets import CredentialCipher
from kit.node.ml.templating import parameter_map
from kit.node.source_filter import filter_source, source_param

if TYPE_CHECKING:
    from kit.node.routing import NodeRequest, Route

__all__ = ["MLCommons"]

P_REDEPLOY_RETRIES = "plugins.ml_commons.model_auto_redeploy.lifetime_retry_times"

log = logging.getLogger(__name__)

CHUNK_SIZE = 10_000_000
LOCAL_FUNCTIONS = {"TEXT_EMBEDDING", "SPARSE_ENCODING", "SPARSE_TOKENIZE", "TEXT_SIMILARITY", "QUESTION_ANSWERING"}
DEPLOYED_STATES = {"DEPLOYED", "DEPLOYING", "PARTIALLY_DEPLOYED", "LOADED", "LOADING", "PARTIALLY_LOADED"}
LOCAL_DISABLED = ("Local Model is currently disabled. To enable it, update the setting "
                  "\"plugins.ml_commons.local_model.enabled\" to true.")
REMOTE_DISABLED = ("Remote Inference is currently disabled. To enable it, update the setting "
                   "\"plugins.ml_commons.remote_inference_enabled\" to true.")
NOT_READY = "Model not ready yet. Please deploy the model first."
_POOLING = {"MEAN", "MEAN_SQRT_LEN", "MAX", "WEIGHTED_MEAN", "CLS", "LAST_TOKEN", "NONE"}
_FRAMEWORKS = {"HUGGINGFACE_TRANSFORMERS", "SENTENCE_TRANSFORMERS", "HUGGINGFACE_TRANSFORMERS_NEURON"}


class MLCommons:
    """ML Commons for the embedded node. ``routes()`` are mounted under ``/_plugins/_ml``."""

    def __init__(self, engine: Any, *, mirror_dir: Path | str | None = None) -> None:
        self.engine = engine
        self.settings = MLSettings(engine)
        self.mirror_dir = mirror_dir
        self.node_id: str = str(getattr(engine, "node_id", None) or new_id()[:22])
        roles = getattr(engine, "node_roles", None)
        # A dev single-node cluster: no "ml" role, which is what only_run_on_ml_node looks for.
        self.node_roles: list[str] = list(roles) if roles else ["cluster_manager", "data", "ingest"]
        self._lock = threading.RLock()
        self._model_locks: dict[str, threading.Lock] = {}
        self._loaded: dict[str, LocalModel] = {}
        self.settings.http = conn.ClientPool()  # this node's connector connections, closed with it
        self._indices_ready = False
        self._threads: list[threading.Thread] = []
        data_dir = getattr(engine, "data_dir", None)
        self.cipher = CredentialCipher(Path(data_dir) if data_dir else None)
        self.work_dir: Path | None = Path(data_dir) / "ml-cache" if data_dir else None
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)  # leftovers of a killed process
        register = getattr(getattr(engine, "settings", None), "register_defaults", None)
        if register is not None:
            register(self.settings.defaults())
        if data_dir and getattr(engine, "index_exists", None) and engine.index_exists(MODEL_INDEX):
            self._spawn(self.auto_redeploy, "ml-auto-redeploy")

    # ================================================================================== plumbing
    def routes(self) -> list["Route"]:
        from kit.node.routing import Route

        r: list[tuple[str, str, Callable[["NodeRequest"], Any]]] = [
            ("POST", "/model_groups/_register", self._group_register),
            ("GET", "/model_groups/_search", self._group_search),
            ("POST", "/model_groups/_search", self._group_search),
            ("GET", "/model_groups/{model_group_id}", self._group_get),
            ("PUT", "/model_groups/{model_group_id}", self._group_update),
            ("DELETE", "/model_groups/{model_group_id}", self._group_delete),
            ("POST", "/models/_register", self._model_register),
            ("POST", "/models/_upload", self._model_register),
            ("POST", "/models/_register_meta", self._model_register_meta),
            ("POST", "/models/meta", self._model_register_meta),
            ("POST", "/models/{model_id}/upload_chunk/{chunk_number}", self._model_upload_chunk),
            ("POST", "/models/{model_id}/chunk/{chunk_number}", self._model_upload_chunk),
            ("GET", "/models/_search", self._model_search),
            ("POST", "/models/_search", self._model_search),
            ("GET", "/models/{model_id}", self._model_get),
            ("PUT", "/models/{model_id}", self._model_update),
            ("DELETE", "/models/{model_id}", self._model_delete),
            ("POST", "/models/{model_id}/_deploy", self._model_deploy),
            ("POST", "/models/{model_id}/_load", self._model_deploy),
            ("POST", "/models/{model_id}/_undeploy", self._model_undeploy),
            ("POST", "/models/{model_id}/_unload", self._model_undeploy),
            ("POST", "/models/_undeploy", self._models_undeploy),
            ("POST", "/models/_unload", self._models_undeploy),
            ("POST", "/models/{model_id}/_predict", self._predict_route),
            ("POST", "/_predict/{algorithm}/{model_id}", self._predict_route),
            ("GET", "/tasks/_search", self._task_search),
            ("POST", "/tasks/_search", self._task_search),
            ("GET", "/tasks/{task_id}", self._task_get),
            ("DELETE", "/tasks/{task_id}", self._task_delete),
            ("POST", "/connectors/_create", self._connector_create),
            ("GET", "/connectors/_search", self._connector_search),
            ("POST", "/connectors/_search", self._connector_search),
            ("GET", "/connectors/{connector_id}", self._connector_get),
            ("PUT", "/connectors/{connector_id}", self._connector_update),
            ("DELETE", "/connectors/{connector_id}", self._connector_delete),
        ]
        return [Route(m, p, self._wrap(h)) for m, p, h in r]

    def _wrap(self, handler: Callable[["NodeRequest"], Any]) -> Callable[["NodeRequest"], Any]:
        def run(req: "NodeRequest") -> Any:
            self._ensure_indices()
            return handler(req)

        run.__name__ = handler.__name__
        return run

    def _ensure_indices(self) -> None:
        if self._indices_ready:
            return
        with self._lock:
            if not self._indices_ready:
                for name, mapping in MAPPINGS.items():
                    self.engine.ensure_system_index(name, mapping)
                self._indices_ready = True
                self._sync_up(set())

    def _sync_up(self, deploying: set[str]) -> None:
        """MLSyncUpCron: a model left DEPLOYING by a previous process has no live worker."""
        for hit in self._search_ids(MODEL_INDEX, {"term": {"model_state": "DEPLOYING"}}):
            if hit["_id"] not in deploying:
                self._update(MODEL_INDEX, hit["_id"], {"model_state": "DEPLOY_FAILED", "current_worker_node_count": 0,
                                                       "last_updated_time": now_ms()})

    def _get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        try:
            got = self.engine.get_doc(index, doc_id)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        if not got.get("found"):
            return None
        source = got.get("_source")
        return dict(source) if isinstance(source, dict) else json.loads(source)

    def _put(self, index: str, doc_id: str, source: dict[str, Any], *, create: bool = False) -> dict[str, Any]:
        return self.engine.index_doc(index, doc_id, source, op_type="create" if create else "index", refresh=True)

    def _update(self, index: str, doc_id: str, partial: dict[str, Any]) -> dict[str, Any]:
        return self.engine.update_doc(index, doc_id, partial, refresh=True)

    def _search_ids(self, index: str, query: dict[str, Any], size: int = 10_000) -> list[dict[str, Any]]:
        try:
            res = self.engine.search(index, {"query": query, "size": size, "_source": {"excludes": ["model_content"]}})
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return list(res.get("hits", {}).get("hits", []))

    def _body(self, req: "NodeRequest") -> dict[str, Any]:
        body = req.json(default={})
        if not isinstance(body, dict):
            raise ApiError(400, "parsing_exception", "request body must be a JSON object", line=1, col=1)
        return body

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:  # e.g. the node shut down under a running task: log, never crash the thread
                log.exception("ML task thread %s stopped", name)

        t = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(t)
        self._threads = [x for x in self._threads if x.is_alive() or x is t]
        t.start()

    def _model_lock(self, model_id: str) -> threading.Lock:
        with self._lock:
            return self._model_locks.setdefault(model_id, threading.Lock())

    def close(self) -> None:
        """Release deployed local models (called by the node on shutdown, when it does)."""
        with self._lock:
            for model in self._loaded.values():
                model.close()
            self._loaded.clear()
        self.settings.http.close()

    # ================================================================================== auto redeploy
    def auto_redeploy(self) -> list[str]:
        """``MLModelAutoReDeployer`` at node start: models left deployed (or deploying) by the previous
        process are deployed again, oldest ``last_deployed_time`` first, each at most
        ``model_auto_redeploy.lifetime_retry_times`` times in a row (a success sets the count back to 0).
        DEPLOY_FAILED models are not in its query: they wait for a ``_deploy``, as in ML Commons. A
        predict that arrives meanwhile waits for its model's load instead of failing."""
        with self._lock:  # before the sync-up (ML Commons starts its cron once redeploy is arranged)
            if self._indices_ready:
                return []
            for name, mapping in MAPPINGS.items():
                self.engine.ensure_system_index(name, mapping)
            picked = self._pick_redeploys() if self.settings.flag("model_auto_redeploy.enable") else []
            self._sync_up({model_id for model_id, _ in picked})
            self._indices_ready = True
        for model_id, fn in picked:
            task_id = self._new_task("DEPLOY_MODEL", fn, is_async=True, model_id=model_id)
            try:
                if fn != "REMOTE":
                    self._load_local(model_id)
            except Exception as exc:
                message = str(exc) if isinstance(exc, ModelLoadError) else self._error_text(exc)
                log.warning("auto redeploy of model %s failed: %s", model_id, message)
                self._task_update(task_id, state="FAILED", error=json.dumps({self.node_id: message}))
                self._update(MODEL_INDEX, model_id, {"model_state": "DEPLOY_FAILED", "current_worker_node_count": 0,
                                                     "last_updated_time": now_ms()})
                continue
            self._mark_deployed(model_id)
            self._task_update(task_id, state="COMPLETED")
        return [model_id for model_id, _ in picked]

    def _pick_redeploys(self) -> list[tuple[str, str]]:
        """(model id, algorithm) of the models to redeploy, their retry count already raised."""
        limit = int(self.settings.raw(P_REDEPLOY_RETRIES) or 3)
        hits = self.engine.search(MODEL_INDEX, {
            "size": 10_000, "sort": [{"last_deployed_time": {"order": "asc", "unmapped_type": "long"}}],
            "query": {"terms": {"model_state": ["LOADING", "PARTIALLY_LOADED", "LOADED", "DEPLOYING",
                                                "PARTIALLY_DEPLOYED", "DEPLOYED"]}},
            "_source": ["auto_redeploy_retry_times", "algorithm"]})["hits"]["hits"]
        picked = []
        for hit in hits:
            src = hit.get("_source") or {}
            tries = int(src.get("auto_redeploy_retry_times") or 0)
            fn = str(src.get("algorithm"))
            if tries >= limit:
                continue
            self._update(MODEL_INDEX, hit["_id"], {"auto_redeploy_retry_times": tries + 1})
            if not self._eligible(remote=fn == "REMOTE") or (fn != "REMOTE" and not self.settings.flag(
                    "local_model.enabled")):
                log.info("auto redeploy of model %s skipped: no eligible node", hit["_id"])  # as ML Commons: no change
                continue
            picked.append((hit["_id"], fn))
        return picked

    # ================================================================================== eligibility
    def _eligible(self, *, remote: bool) -> bool:
        """``DiscoveryNodeHelper.getEligibleNodes`` for this one node."""
        roles = set(self.node_roles)
        if remote:
            return bool(roles & set(self.settings.strings("task_dispatcher.eligible_node_role.remote_model")))
        if self.settings.flag("only_run_on_ml_node"):
            return "ml" in roles
        return bool(roles & set(self.settings.strings("task_dispatcher.eligible_node_role.local_model")))

    # ================================================================================== tasks
    def _new_task(self, task_type: str, function_name: str, *, is_async: bool, model_id: str | None = None,
                  state: str = "CREATED") -> str:
        task_id = new_id()
        doc: dict[str, Any] = {}
        if model_id:
            doc["model_id"] = model_id
        now = now_ms()
        doc.update({"task_type": task_type, "function_name": function_name, "state": state,
                    "worker_node": [self.node_id], "create_time": now, "last_update_time": now,
                    "is_async": is_async})
        self._put(TASK_INDEX, task_id, doc)
        return task_id

    def _task_update(self, task_id: str, **fields: Any) -> None:
        fields["last_update_time"] = now_ms()
        try:
            self._update(TASK_INDEX, task_id, fields)
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.info("task %s was deleted while it ran; state %s not recorded", task_id, fields.get("state"))

    def _task_get(self, req: "NodeRequest") -> dict[str, Any]:
        doc = self._get(TASK_INDEX, req.path_params["task_id"])
        if doc is None:
            raise status_error(404, "Failed to find task")
        return doc

    def _task_delete(self, req: "NodeRequest") -> dict[str, Any]:
        task_id = req.path_params["task_id"]
        doc = self._get(TASK_INDEX, task_id)
        if doc is None:
            raise status_error(404, "Failed to find task")
        if doc.get("state") == "RUNNING":
            raise ApiError(500, "exception", "Task cannot be deleted in running state. Try after some time.")
        return self.engine.delete_doc(TASK_INDEX, task_id, refresh=True)

    def _task_search(self, req: "NodeRequest") -> dict[str, Any]:
        return self._plain_search(TASK_INDEX, req)

    def _plain_search(self, index: str, req: "NodeRequest", excludes: list[str] | None = None,
                      view: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
        """An ML search. ``view`` turns each stored document into what the GET API shows (the real plugin
        stores that form), before the request's ``_source`` filter, so a hit and a GET agree."""
        body = req.json(default={}) or {}
        if not isinstance(body, dict):
            raise ApiError(400, "parsing_exception", "request body must be a JSON object", line=1, col=1)
        # AbstractMLSearchAction: seqNoAndPrimaryTerm(true).version(true) on every ML search.
        body["version"] = True
        body["seq_no_primary_term"] = True
        params = dict(req.query)
        if view is not None:
            wanted = source_param(body.get("_source"), params)
            for key in ("_source", "_source_includes", "_source_excludes"):
                params.pop(key, None)
            body["_source"] = wanted is not False
            res = self._run_ml_search(index, body, params)
            if wanted is not False:
                for hit in res["hits"]["hits"]:
                    src = view(hit["_source"])
                    hit["_source"] = src if wanted is True else filter_source(src, wanted[0], wanted[1])
            return res
        if excludes:
            src = body.get("_source")
            if src is None or src is True:
                body["_source"] = {"excludes": list(excludes)}
            elif isinstance(src, dict):
                includes = src.get("includes") or src.get("include") or []
                ex = list(src.get("excludes") or src.get("exclude") or [])
                ex += [e for e in excludes if e not in (includes if isinstance(includes, list) else [includes])]
                body["_source"] = {**({"includes": includes} if includes else {}), "excludes": ex}
        return self._run_ml_search(index, body, params)

    def _run_ml_search(self, index: str, body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.engine.search(index, body, params)
        except ApiError as exc:
            if exc.type == "index_not_found_exception":
                # wrapListenerToHandleSearchIndexNotFound: an empty result, not an error.
                return {"took": 0, "timed_out": False,
                        "_shards": {"total": 0, "successful": 0, "skipped": 0, "failed": 0},
                        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []}}
            raise

    # ================================================================================== model groups
    def _group_register(self, req: "NodeRequest") -> dict[str, Any]:
        """``MLModelGroupManager.createModelGroup``."""
        body = self._body(req)
        check_safe_fields(self.settings.version, {"Model group name": body.get("name"),
                                                  "Model group description": body.get("description")})
        name = body.get("name")
        if not name or not isinstance(name, str):
            raise iae("model group name is required")
        self._reject_access_fields(body)
        group_id = self._create_group(name, body.get("description"))
        return {"model_group_id": group_id, "status": "CREATED"}

    def _reject_access_fields(self, body: dict[str, Any]) -> None:
        if any(body.get(k) is not None for k in ("access_mode", "backend_roles", "add_all_backend_roles")):
            raise iae("You cannot specify model access control parameters because the Security plugin or model "
                      "access control is disabled on your cluster.")

    def _find_group_by_name(self, name: str) -> str | None:
        hits = self._search_ids(MODEL_GROUP_INDEX, {"term": {"name.keyword": name}}, size=1)
        return hits[0]["_id"] if hits else None

    def _create_group(self, name: str, description: str | None) -> str:
        with self._lock:
            existing = self._find_group_by_name(name)
            if existing:
                raise iae(f"The name you provided is already being used by a model group with ID: {existing}.")
            group_id = new_id()
            now = now_ms()
            doc: dict[str, Any] = {"name": name, "latest_version": 0}
            if description is not None:
                doc["description"] = description
            doc.update({"access": "public", "created_time": now, "last_updated_time": now})
            self._put(MODEL_GROUP_INDEX, group_id, doc, create=True)
            return group_id

    def _group_get(self, req: "NodeRequest") -> dict[str, Any]:
        gid = req.path_params["model_group_id"]
        doc = self._get(MODEL_GROUP_INDEX, gid)
        if doc is None:
            raise status_error(404, f"Failed to find model group with the provided model group id: {gid}")
        return doc

    def _group_update(self, req: "NodeRequest") -> dict[str, Any]:
        """``TransportUpdateModelGroupAction``."""
        gid = req.path_params["model_group_id"]
        body = self._body(req)
        check_safe_fields(self.settings.version, {"Model group name": body.get("name"),
                                                  "Model group description": body.get("description")})
        self._reject_access_fields(body)
        with self._lock:
            doc = self._get(MODEL_GROUP_INDEX, gid)
            if doc is None:
                raise status_error(404, f"Failed to find model group with the provided model group id: {gid}")
            partial: dict[str, Any] = {}
            name = body.get("name")
            if name is not None and name != doc.get("name"):
                other = self._find_group_by_name(str(name))
                if other and other != gid:
                    raise iae(f"The name you provided is already being used by another model with ID: {other}. "
                              "Please provide a different name")
                partial["name"] = name
            if body.get("description") is not None:
                partial["description"] = body["description"]
            partial["last_updated_time"] = now_ms()
            self._update(MODEL_GROUP_INDEX, gid, partial)
        return {"status": "Updated"}

    def _group_delete(self, req: "NodeRequest") -> dict[str, Any]:
        """``DeleteModelGroupTransportAction``."""
        gid = req.path_params["model_group_id"]
        if self._get(MODEL_GROUP_INDEX, gid) is None and self.settings.version >= (3, 0, 0):
            raise status_error(404, "Failed to find model group")  # 2.19: a 200 "not_found" delete response
        if self._search_ids(MODEL_INDEX, {"term": {"model_group_id": gid}}, size=1):
            raise status_error(409, "Cannot delete the model group when it has associated model versions")
        return self.engine.delete_doc(MODEL_GROUP_INDEX, gid, refresh=True)

    def _group_search(self, req: "NodeRequest") -> dict[str, Any]:
        return self._plain_search(MODEL_GROUP_INDEX, req)

    def _resolve_group(self, body: dict[str, Any], name: str) -> tuple[str, bool]:
        """``TransportRegisterModelAction``: an explicit group must exist; without one, reuse the group
        named like the model or create it. Returns (group id, created by this request)."""
        gid = body.get("model_group_id")
        if gid:
            if self._get(MODEL_GROUP_INDEX, str(gid)) is None:
                raise status_error(404, "Failed to find model group with the provided model group id: " + str(gid))
            return str(gid), False
        self._reject_access_fields(body)
        existing = self._find_group_by_name(name)
        if existing:
            return existing, False
        return self._create_group(name, body.get("description")), True

    def _next_version(self, group_id: str) -> str:
        """``MLModelManager.incrementLatestVersion``: the model's version is the group's latest_version + 1."""
        with self._lock:
            doc = self._get(MODEL_GROUP_INDEX, group_id) or {}
            latest = int(doc.get("latest_version") or 0) + 1
            self._update(MODEL_GROUP_INDEX, group_id, {"latest_version": latest, "last_updated_time": now_ms()})
            return str(latest)

    # ================================================================================== model config
    @staticmethod
    def _function_name(body: dict[str, Any]) -> str:
        raw = body.get("function_name")
        fn = "TEXT_EMBEDDING" if raw is None else str(raw).upper()
        known = LOCAL_FUNCTIONS | {"REMOTE", "KMEANS", "LINEAR_REGRESSION", "AD_LIBSVM", "SAMPLE_ALGO",
                                   "LOCAL_SAMPLE_CALCULATOR", "FIT_RCF", "BATCH_RCF", "ANOMALY_LOCALIZATION",
                                   "RCF_SUMMARIZE", "LOGISTIC_REGRESSION", "TEXT_SIMILARITY", "METRICS_CORRELATION",
                                   "AGENT", "CONNECTOR"}
        if fn not in known:
            raise iae(f"Wrong function name: {raw}")
        return fn

    @staticmethod
    def _model_config(fn: str, cfg: Any) -> dict[str, Any] | None:
        """``TextEmbeddingModelConfig``: validation and the stored (upper-cased enum) form."""
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise iae("model_config must be an object")
        if fn != "TEXT_EMBEDDING":
            return dict(cfg)
        out: dict[str, Any] = {}
        if cfg.get("model_type") is not None:
            out["model_type"] = cfg["model_type"]
        if cfg.get("embedding_dimension") is None:
            raise iae("embedding dimension is null")
        out["embedding_dimension"] = int(cfg["embedding_dimension"])
        if cfg.get("framework_type") is None:
            raise iae("framework type is null")
        framework = str(cfg["framework_type"]).upper()
        if framework not in _FRAMEWORKS:
            raise iae("Wrong framework type")
        out["framework_type"] = framework
        if cfg.get("all_config") is not None:
            out["all_config"] = cfg["all_config"] if isinstance(cfg["all_config"], str) else json.dumps(cfg["all_config"])
        additional = cfg.get("additional_config")
        if additional is not None:
            if isinstance(out.get("all_config"), str):
                try:
                    all_map = json.loads(out["all_config"])
                except json.JSONDecodeError:
                    all_map = {}
                dup = sorted(k for k in additional if isinstance(all_map, dict) and k in all_map)
                if dup:
                    raise iae("Duplicate keys found in both all_config and additional_config: " + ", ".join(dup))
            out["additional_config"] = additional
        if cfg.get("model_max_length") is not None:
            out["model_max_length"] = int(cfg["model_max_length"])
        if cfg.get("pooling_mode") is not None:
            pooling = str(cfg["pooling_mode"]).upper()
            if pooling not in _POOLING:
                raise iae("Wrong pooling method")
            out["pooling_mode"] = pooling
        if str(cfg.get("normalize_result", "false")).lower() == "true":
            out["normalize_result"] = True
        for key in ("query_prefix", "passage_prefix"):
            if cfg.get(key) is not None:
                out[key] = cfg[key]
        return out

    def _check_local_function(self, fn: str) -> None:
        if fn in LOCAL_FUNCTIONS and not self.settings.flag("local_model.enabled"):
            raise status_error(400, LOCAL_DISABLED)
        if fn in LOCAL_FUNCTIONS and fn != "TEXT_EMBEDDING":
            raise iae(f"Local {fn} models are not supported by the oskit embedded node (only TEXT_EMBEDDING)")
        if fn not in LOCAL_FUNCTIONS and fn != "REMOTE":
            raise iae(f"Function {fn} is not supported by the oskit embedded node")

    # ================================================================================== register
    def _model_register(self, req: "NodeRequest") -> dict[str, Any]:
        """``RestMLRegisterModelAction`` + ``TransportRegisterModelAction``."""
        body = self._body(req)
        deploy = req.flag("deploy")
        return self.register_model(body, deploy=deploy)

    def register_model(self, body: dict[str, Any], *, deploy: bool = False) -> dict[str, Any]:
        check_safe_fields(self.settings.version, {"Model name": body.get("name"),
                                                  "Model description": body.get("description")})
        name = body.get("name")
        if name is None:
            raise iae("model name is null")
        fn = self._function_name(body)
        if fn != "REMOTE" and body.get("model_format") is None:
            raise iae("model format is null")
        url = body.get("url")
        if fn != "REMOTE" and url is not None and body.get("model_config") is None and fn not in (
                "SPARSE_TOKENIZE", "SPARSE_ENCODING"):
            raise iae("model config is null")
        if fn == "REMOTE":
            if not self.settings.flag("remote_inference.enabled"):
                raise status_error(400, REMOTE_DISABLED)
            return self._register_remote(body, str(name), deploy=deploy)
        self._check_local_function(fn)
        fmt = str(body["model_format"]).upper()
        if fmt not in ("TORCH_SCRIPT", "ONNX"):
            raise iae(f"Wrong model format: {body['model_format']}")
        model_config = self._model_config(fn, body.get("model_config"))
        if url is not None and not self.settings.flag("allow_registering_model_via_url"):
            raise iae("To upload custom model user needs to enable allow_registering_model_via_url settings. "
                      "Otherwise please use OpenSearch pre-trained models.")
        if url is not None:
            regex = self.settings.text("trusted_url_regex")
            if not re.search(regex, str(url)):
                raise iae("URL can't match trusted url regex")
        if not self._eligible(remote=False):
            raise iae(NO_ELIGIBLE_NODE)  # MLTaskDispatcher.dispatch
        group_id, created_group = self._resolve_group(body, str(name))
        task_id = self._new_task("REGISTER_MODEL", fn, is_async=True)
        spec = {"name": str(name), "function_name": fn, "model_format": fmt, "model_config": model_config,
                "url": url, "hash": body.get("model_content_hash_value"), "description": body.get("description"),
                "version": body.get("version"), "group_id": group_id, "created_group": created_group,
                "deploy": deploy, "is_enabled": body.get("is_enabled"), "deploy_setting": body.get("deploy_setting")}
        self._spawn(lambda: self._register_local_job(task_id, spec), f"ml-register-{task_id}")
        return {"task_id": task_id, "status": "CREATED"}

    def _register_local_job(self, task_id: str, spec: dict[str, Any]) -> None:
        """``MLModelManager.registerModelFromUrl`` / ``registerPrebuiltModel`` on a worker thread."""
        model_id: str | None = None
        version: str | None = None
        try:
            if spec["url"] is None:
                # OpenSearch-provided pretrained model: only a local mirror can stand in for the download.
                entry = mirror.lookup(spec["name"], spec["version"], spec["model_format"], self.mirror_dir)
                cfg = entry.config
                spec["function_name"] = str(cfg.get("function_name") or cfg.get("model_task_type")
                                            or spec["function_name"]).upper()
                self._task_update(task_id, function_name=spec["function_name"])
                if cfg.get("model_format"):
                    spec["model_format"] = str(cfg["model_format"]).upper()
                spec["model_config"] = self._model_config(spec["function_name"], cfg.get("model_config"))
                spec["hash"] = cfg.get("model_content_hash_value")
                spec["url"] = entry.zip_path.resolve().as_uri()
            version = self._next_version(spec["group_id"])
            model_id = new_id()
            now = now_ms()
            meta: dict[str, Any] = {
                "name": spec["name"], "model_group_id": spec["group_id"], "algorithm": spec["function_name"],
                "model_version": version, "model_format": spec["model_format"], "model_state": "REGISTERING",
            }
            if spec.get("description") is not None:
                meta["description"] = spec["description"]
            if spec["model_config"] is not None:
                meta["model_config"] = spec["model_config"]
            if spec.get("is_enabled") is not None:
                meta["is_enabled"] = bool(spec["is_enabled"])
            if spec.get("deploy_setting") is not None:
                meta["deploy_setting"] = spec["deploy_setting"]
            meta.update({"created_time": now, "last_updated_time": now, "is_hidden": False})
            self._put(MODEL_INDEX, model_id, meta)
            data = self._download(str(spec["url"]))
            verify_model_zip(spec["model_format"], data, spec["function_name"])
            digest = hashlib.sha256(data).hexdigest()
            if spec["hash"] is None:
                raise iae("Model content Hash code need to be provided when register via url. "
                          "Please calculate sha 256 Hash code.")
            if digest != spec["hash"]:
                raise iae("model content changed")
            total = max(1, -(-len(data) // CHUNK_SIZE))
            for n in range(total):
                self._store_chunk(model_id, meta, n, total, data[n * CHUNK_SIZE:(n + 1) * CHUNK_SIZE])
            now = now_ms()
            self._update(MODEL_INDEX, model_id, {
                "model_state": "REGISTERED", "model_content_size_in_bytes": len(data),
                "model_content_hash_value": digest, "total_chunks": total,
                "last_registered_time": now, "last_updated_time": now,
            })
            self._task_update(task_id, state="COMPLETED", model_id=model_id)
        except Exception as exc:  # the task records the root cause, as MLTaskManager does
            message = self._error_text(exc)
            log.info("register task %s failed: %s", task_id, message)
            # MLModelManager.registerModel's failure branch: deleteModel (the meta doc, its chunks,
            # and deleteOrUpdateModelGroup) first, then handleException marks the task FAILED
            if model_id is not None:
                self._delete_model_docs(model_id)
            if spec.get("created_group") and not self._search_ids(
                    MODEL_INDEX, {"term": {"model_group_id": spec["group_id"]}}, size=1):
                try:
                    self.engine.delete_doc(MODEL_GROUP_INDEX, spec["group_id"], refresh=True)
                except ApiError:
                    pass
            elif version is not None and not spec.get("created_group"):
                # an existing group gets its latest_version back (version - 1), as deleteOrUpdateModelGroup does
                self._update(MODEL_GROUP_INDEX, spec["group_id"],
                             {"latest_version": int(version) - 1, "last_updated_time": now_ms()})
            self._task_update(task_id, state="FAILED", error=message)
            return
        if spec.get("deploy"):
            try:
                self.deploy_model(model_id)
            except ApiError as exc:
                log.info("deploy after register of %s failed: %s", model_id, exc.reason)

    @staticmethod
    def _error_text(exc: BaseException) -> str:
        if isinstance(exc, ApiError):
            return exc.reason
        if isinstance(exc, mirror.MirrorMiss):
            return str(exc)
        return str(exc) or type(exc).__name__

    def _download(self, url: str) -> bytes:
        """DJL ``DownloadUtils.download``: file:// and http(s):// (no proxies; loopback-only machines)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme == "file":
            path = Path(urllib.request.url2pathname(parts.path))
            if parts.netloc and parts.netloc != "localhost":
                raise iae(f"Cannot download model from {url}: file URLs must name a local path")
            try:
                return path.read_bytes()
            except OSError as exc:
                raise iae(f"{path} ({exc.strerror})") from None
        if parts.scheme in ("http", "https"):
            import httpx

            try:
                with httpx.Client(timeout=httpx.Timeout(30.0, read=300.0), trust_env=False,
                                  follow_redirects=True) as client:
                    resp = client.get(url)
            except httpx.HTTPError as exc:
                raise iae(f"Failed to download model from {url}: {exc}") from None
            if resp.status_code != 200:
                raise iae(f"Failed to download model from {url}: HTTP {resp.status_code}")
            return resp.content
        raise iae(f"Cannot download model from {url}: only file://, http:// and https:// URLs are supported")

    def _store_chunk(self, model_id: str, meta: dict[str, Any], n: int, total: int, content: bytes) -> None:
        now = now_ms()
        doc = {"model_id": model_id, "name": meta.get("name"), "algorithm": meta.get("algorithm"),
               "model_version": meta.get("model_version"), "model_format": meta.get("model_format"),
               "chunk_number": n, "total_chunks": total,
               "model_content": base64.b64encode(content).decode("ascii"),
               "created_time": now, "last_updated_time": now, "is_hidden": False}
        self._put(MODEL_INDEX, f"{model_id}_{n}", doc)

    def _delete_model_docs(self, model_id: str) -> None:
        try:
            self.engine.delete_doc(MODEL_INDEX, model_id, refresh=True)
        except ApiError:
            pass
        try:
            self.engine.delete_by_query(MODEL_INDEX, {"term": {"model_id": model_id}})
        except ApiError:
            pass

    def _register_remote(self, body: dict[str, Any], name: str, *, deploy: bool) -> dict[str, Any]:
        """``TransportRegisterModelAction.doRegister`` (REMOTE) + ``MLModelManager.registerMLRemoteModel``."""
        connector_id = body.get("connector_id")
        inline = body.get("connector")
        if connector_id:
            stored = self._get(CONNECTOR_INDEX, str(connector_id))
            if stored is None:
                raise status_error(404, f"Failed to find connector:{connector_id}")
        else:
            if inline is None:
                raise iae("You must provide connector content when creating a remote model without connector id!")
            if not isinstance(inline, dict):
                raise iae("connector must be an object")
            actions = inline.get("actions") or []
            if not any(str(a.get("action_type", "")).upper() == "PREDICT" for a in actions if isinstance(a, dict)):
                raise iae("Connector endpoint is required when creating a remote model without connector id!")
            inline = self.cipher.seal(conn.validate_connector(inline, self.settings))
        group_id, _ = self._resolve_group(body, name)
        task_id = self._new_task("REGISTER_MODEL", "REMOTE", is_async=False)
        version = self._next_version(group_id)
        model_id = new_id()
        now = now_ms()
        doc: dict[str, Any] = {"name": name, "model_group_id": group_id, "algorithm": "REMOTE",
                               "model_version": version}
        if body.get("description") is not None:
            doc["description"] = body["description"]
        doc["model_state"] = "REGISTERED"
        for key in ("is_enabled", "rate_limiter", "deploy_setting", "interface", "guardrails", "model_config"):
            if body.get(key) is not None:
                doc[key] = body[key]
        # a remote model has no last_registered_time (MLModelManager.registerMLRemoteModel sets none)
        doc.update({"created_time": now, "last_updated_time": now, "is_hidden": False})
        if connector_id:
            doc["connector_id"] = str(connector_id)
        else:
            doc["connector"] = inline
        self._put(MODEL_INDEX, model_id, doc)
        self._task_update(task_id, state="COMPLETED", model_id=model_id)
        if deploy:
            self.deploy_model(model_id)
        return {"task_id": task_id, "status": "CREATED", "model_id": model_id}

    # ================================================================================== chunk upload
    def _model_register_meta(self, req: "NodeRequest") -> dict[str, Any]:
        """``RestMLRegisterModelMetaAction`` + ``TransportRegisterModelMetaAction``."""
        if not self.settings.flag("allow_registering_model_via_local_file"):
            raise iae("To upload custom model from local file, user needs to enable "
                      "allow_registering_model_via_local_file settings. Otherwise please use opensearch "
                      "pre-trained models")
        if not req.has_body():
            raise ApiError(500, "i_o_exception", "Model meta request has empty body")
        body = self._body(req)
        if body.get("name") is None:
            raise iae("model name is null")
        fn = self._function_name(body)
        if body.get("model_format") is None:
            raise iae("model format is null")
        if body.get("model_content_hash_value") is None:
            raise iae("model content hash value is null")
        if body.get("model_config") is None and fn not in ("SPARSE_TOKENIZE", "SPARSE_ENCODING"):
            raise iae("model config is null")
        if body.get("total_chunks") is None:
            raise iae("total chunks field is null")
        self._check_local_function(fn)
        fmt = str(body["model_format"]).upper()
        if fmt not in ("TORCH_SCRIPT", "ONNX"):
            raise iae(f"Wrong model format: {body['model_format']}")
        cfg = self._model_config(fn, body.get("model_config"))
        total = int(body["total_chunks"])
        group_id, _ = self._resolve_group(body, str(body["name"]))
        version = self._next_version(group_id)
        model_id = new_id()
        now = now_ms()
        doc: dict[str, Any] = {"name": body["name"], "model_group_id": group_id, "algorithm": fn,
                               "model_version": version}
        if body.get("description") is not None:
            doc["description"] = body["description"]
        doc.update({"model_format": fmt, "model_state": "REGISTERING"})
        if body.get("model_content_size_in_bytes") is not None:
            doc["model_content_size_in_bytes"] = int(body["model_content_size_in_bytes"])
        doc["model_content_hash_value"] = str(body["model_content_hash_value"])
        if cfg is not None:
            doc["model_config"] = cfg
        doc.update({"created_time": now, "last_updated_time": now, "total_chunks": total, "is_hidden": False})
        for key in ("is_enabled", "deploy_setting", "rate_limiter"):
            if body.get(key) is not None:
                doc[key] = body[key]
        self._put(MODEL_INDEX, model_id, doc)
        return {"model_id": model_id, "status": "CREATED"}

    def _model_upload_chunk(self, req: "NodeRequest") -> dict[str, Any]:
        """``RestMLUploadModelChunkAction`` + ``MLModelChunkUploader``."""
        model_id = req.path_params["model_id"]
        content = req.body
        if not self.settings.flag("allow_registering_model_via_local_file"):
            raise iae("To upload custom model from local file, user needs to enable "
                      "allow_registering_model_via_local_file settings. Otherwise please use opensearch "
                      "pre-trained models.")
        try:
            n = int(req.path_params["chunk_number"])
        except ValueError:
            raise ApiError(400, "number_format_exception",
                           f"For input string: \"{req.path_params['chunk_number']}\"") from None
        meta = self._get(MODEL_INDEX, model_id)
        if meta is None or "chunk_number" in meta:
            raise status_error(404, "Failed to find model")
        total = int(meta.get("total_chunks") or 0)
        if n >= total:
            raise iae("Chunk number exceeds total chunks")
        if not content:
            raise iae("Chunk size either 0 or null")
        if len(content) > CHUNK_SIZE:
            raise iae("Chunk size exceeds 10MB")
        self._store_chunk(model_id, meta, n, total, content)
        if n == total - 1:
            # MLModelChunkUploader re-indexes the meta document from a fresh MLModel holding only these
            # fields: description, is_enabled, deploy_setting, rate_limiter, is_hidden, last_updated_time
            # are dropped and no last_registered_time is set (checked on a real 2.19.6 node).
            kept = ("name", "model_group_id", "algorithm", "model_version", "model_format")
            doc = {k: meta[k] for k in kept if meta.get(k) is not None}
            doc["model_state"] = "REGISTERED"
            for key in ("model_content_size_in_bytes", "model_content_hash_value", "model_config",
                        "created_time", "total_chunks"):
                if meta.get(key) is not None:
                    doc[key] = meta[key]
            self._put(MODEL_INDEX, model_id, doc)
        return {"status": "Uploaded"}

    # ================================================================================== get/search/delete
    def _model_doc(self, model_id: str) -> dict[str, Any] | None:
        doc = self._get(MODEL_INDEX, model_id)
        if doc is None or "chunk_number" in doc:
            return None
        return doc

    @staticmethod
    def _public_model(doc: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in doc.items() if k not in ("model_content", "content")}
        if not out.get("planning_worker_nodes", True):
            del out["planning_worker_nodes"]  # MLModel.toXContent shows it only when non-empty
        if isinstance(out.get("connector"), dict):
            out["connector"] = conn.public_connector(out["connector"])
        return out

    def _model_get(self, req: "NodeRequest") -> dict[str, Any]:
        model_id = req.path_params["model_id"]
        doc = self._model_doc(model_id)
        if doc is None:
            raise status_error(404, "Failed to find model with the provided model id: " + model_id)
        out = self._public_model(doc)
        out.setdefault("is_hidden", False)  # MLModel.parse defaults it (a chunk-uploaded model stores none)
        return out

    def _model_search(self, req: "NodeRequest") -> dict[str, Any]:
        """``RestMLSearchModelAction``: model content and connector credentials never come back."""
        return self._plain_search(MODEL_INDEX, req, excludes=["content", "model_content", "connector.credential"])

    def _model_delete(self, req: "NodeRequest") -> dict[str, Any]:
        """``DeleteModelTransportAction``."""
        model_id = req.path_params["model_id"]
        doc = self._model_doc(model_id)
        if doc is None:
            raise status_error(404, "Failed to find model")
        if doc.get("model_state") in DEPLOYED_STATES:
            raise status_error(400, "Model cannot be deleted in deploying or deployed state. Try undeploy model "
                                    "first then delete")
        res = self.engine.delete_doc(MODEL_INDEX, model_id, refresh=True)
        try:
            self.engine.delete_by_query(MODEL_INDEX, {"term": {"model_id": model_id}})
        except ApiError:
            pass
        with self._lock:
            loaded = self._loaded.pop(model_id, None)
        if loaded is not None:
            loaded.close()
        return res

    def _model_update(self, req: "NodeRequest") -> dict[str, Any]:
        """``UpdateModelTransportAction`` (name, description, is_enabled, deploy_setting, connector fields)."""
        model_id = req.path_params["model_id"]
        body = self._body(req)
        check_safe_fields(self.settings.version, {"Model Name": body.get("name"),
                                                  "Model Description": body.get("description")})
        doc = self._model_doc(model_id)
        if doc is None:
            raise status_error(404, "Failed to find model to update with the provided model id: " + model_id)
        if doc.get("model_state") == "DEPLOYING":
            raise status_error(400, "Model is deploying. Please wait for the model to complete deployment. "
                                    f"model ID {model_id}")
        partial: dict[str, Any] = {}
        for key in ("name", "description", "is_enabled", "deploy_setting", "rate_limiter", "guardrails",
                    "interface"):
            if key in body:
                partial[key] = body[key]
        if "model_group_id" in body:
            gid = str(body["model_group_id"])
            if self._get(MODEL_GROUP_INDEX, gid) is None:
                raise status_error(404, "Failed to find the model group with the provided model group id in the "
                                        f"update model input, MODEL_GROUP_ID: {gid}")
            partial["model_group_id"] = gid
            partial["model_version"] = self._next_version(gid)
        if "connector_id" in body or "connector" in body:
            if doc.get("algorithm") != "REMOTE":
                raise iae("Trying to update the connector or connector_id field on a local model.")
            if "connector_id" in body:
                if self._get(CONNECTOR_INDEX, str(body["connector_id"])) is None:
                    raise status_error(404, "Failed to find connector")
                partial["connector_id"] = str(body["connector_id"])
            if "connector" in body:
                if "connector" not in doc:
                    raise iae("Cannot update connector settings for this model. The model was created with a "
                              "connector_id and does not have an inline connector.")
                merged = dict(doc["connector"])
                update = body["connector"] or {}
                merged = conn.validate_connector(update, self.settings, update=True, existing=merged)
                partial["connector"] = self.cipher.seal(merged)
        if "model_config" in body:
            raise iae("Updating model_config is not supported by the oskit embedded node; register a new version")
        partial["last_updated_time"] = now_ms()
        return self._update(MODEL_INDEX, model_id, partial)

    # ================================================================================== deploy / undeploy
    def _model_deploy(self, req: "NodeRequest") -> dict[str, Any]:
        body = req.json(default={}) or {}
        node_ids = body.get("node_ids") if isinstance(body, dict) else None
        return self.deploy_model(req.path_params["model_id"], node_ids=node_ids)

    def deploy_model(self, model_id: str, *, node_ids: list[str] | None = None) -> dict[str, Any]:
        """``TransportDeployModelAction.deployModel``."""
        doc = self._model_doc(model_id)
        if doc is None:
            raise status_error(404, "Failed to find model")
        if node_ids and not self.settings.flag("allow_custom_deployment_plan"):
            raise iae("Don't allow custom deployment plan")
        remote = doc.get("algorithm") == "REMOTE"
        if not self._eligible(remote=remote) or (node_ids and self.node_id not in node_ids):
            raise iae("no eligible node found")
        fn = str(doc.get("algorithm"))
        if remote:
            task_id = self._new_task("DEPLOY_MODEL", fn, is_async=True, model_id=model_id)
            self._mark_deployed(model_id)
            self._task_update(task_id, state="COMPLETED")
            return {"task_id": task_id, "task_type": "DEPLOY_MODEL", "status": "COMPLETED"}
        if not self.settings.flag("local_model.enabled"):
            raise status_error(400, LOCAL_DISABLED)
        task_id = self._new_task("DEPLOY_MODEL", fn, is_async=True, model_id=model_id)
        now = now_ms()
        self._update(MODEL_INDEX, model_id, {"model_state": "DEPLOYING", "planning_worker_node_count": 1,
                                             "planning_worker_nodes": [self.node_id], "deploy_to_all_nodes": True,
                                             "last_updated_time": now})
        self._spawn(lambda: self._deploy_local_job(task_id, model_id), f"ml-deploy-{task_id}")
        return {"task_id": task_id, "task_type": "DEPLOY_MODEL", "status": "CREATED"}

    def _mark_deployed(self, model_id: str) -> None:
        now = now_ms()
        fields: dict[str, Any] = {
            "model_state": "DEPLOYED", "planning_worker_node_count": 1, "current_worker_node_count": 1,
            "planning_worker_nodes": [self.node_id], "deploy_to_all_nodes": True,
            "last_deployed_time": now, "last_updated_time": now,
        }
        if self.settings.flag("model_auto_redeploy.enable"):
            fields["auto_redeploy_retry_times"] = 0  # MLForwardTransportAction: a deploy that succeeded
        self._update(MODEL_INDEX, model_id, fields)

    def _deploy_local_job(self, task_id: str, model_id: str) -> None:
        self._task_update(task_id, state="RUNNING")
        try:
            self._load_local(model_id)
        except Exception as exc:
            message = self._error_text(exc) if not isinstance(exc, ModelLoadError) else str(exc)
            log.info("deploy task %s failed: %s", task_id, message)
            # TransportDeployModelOnNodeAction: the task error is a JSON map node id → message.
            self._task_update(task_id, state="FAILED", error=json.dumps({self.node_id: message}))
            self._update(MODEL_INDEX, model_id, {"model_state": "DEPLOY_FAILED", "current_worker_node_count": 0,
                                                 "last_updated_time": now_ms()})
            return
        self._mark_deployed(model_id)
        self._task_update(task_id, state="COMPLETED")

    def _load_local(self, model_id: str) -> LocalModel:
        """``MLModelManager.deployModel``: re-assemble the chunks, check the hash, load, warm up."""
        with self._model_lock(model_id):
            with self._lock:
                if model_id in self._loaded:
                    return self._loaded[model_id]
                local_count = len(self._loaded)
            if local_count >= int(self.settings.raw("plugins.ml_commons.max_model_on_node") or 10):
                raise iae("Exceed max local model per node limit")
            doc = self._model_doc(model_id)
            if doc is None:
                raise status_error(404, "Failed to find model")
            total = int(doc.get("total_chunks") or 0)
            if total <= 0:
                raise iae("Model content has not been uploaded yet (total_chunks is 0)")
            parts = []
            for n in range(total):
                chunk = self._get(MODEL_INDEX, f"{model_id}_{n}")
                if chunk is None or chunk.get("model_content") is None:
                    raise status_error(404, f"Failed to find model chunk {model_id}_{n}")
                parts.append(base64.b64decode(chunk["model_content"]))
            data = b"".join(parts)
            if hashlib.sha256(data).hexdigest() != doc.get("model_content_hash_value"):
                raise iae("model content changed")
            model = LocalModel(model_id, data, str(doc.get("model_format")), doc.get("model_config") or {},
                               work_root=self._work_root())
            try:
                model.warm_up()
            except ApiError:
                model.close()
                raise
            except Exception as exc:
                model.close()
                raise ModelLoadError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None
            with self._lock:
                self._loaded[model_id] = model
            return model

    def _work_root(self) -> Path | None:
        if self.work_dir is None:
            return None
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir

    def _model_undeploy(self, req: "NodeRequest") -> dict[str, Any]:
        return self.undeploy([req.path_params["model_id"]])

    def _models_undeploy(self, req: "NodeRequest") -> dict[str, Any]:
        body = req.json(default={}) or {}
        model_ids = body.get("model_ids") if isinstance(body, dict) else None
        if not model_ids:
            raise iae("Must set specific model ids to undeploy")
        return self.undeploy([str(m) for m in model_ids])

    def undeploy(self, model_ids: list[str]) -> dict[str, Any]:
        """``TransportUndeployModelsAction``: per-node stats, then the model docs are reset."""
        stats: dict[str, str] = {}
        for model_id in model_ids:
            doc = self._model_doc(model_id)
            with self._lock:
                loaded = self._loaded.pop(model_id, None)
            was_deployed = loaded is not None or (doc is not None and doc.get("model_state") in DEPLOYED_STATES)
            if loaded is not None:
                loaded.close()
            stats[model_id] = "undeployed" if was_deployed else "not_found"  # CommonValue.UNDEPLOYED
            if doc is not None and was_deployed:
                # MLModelManager: state and counts only (an empty planning_worker_nodes is not shown;
                # last_updated_time and deploy_to_all_nodes stay as the deploy left them)
                self._update(MODEL_INDEX, model_id, {
                    "model_state": "UNDEPLOYED", "planning_worker_node_count": 0, "current_worker_node_count": 0,
                    "planning_worker_nodes": [],
                })
        return {self.node_id: {"stats": stats}}

    # ================================================================================== predict
    def _predict_route(self, req: "NodeRequest") -> dict[str, Any]:
        body = req.json(default=None)
        if body is None:
            raise ApiError(400, "parse_exception", "request body is required")
        if not isinstance(body, dict):
            raise ApiError(400, "parsing_exception", "request body must be a JSON object", line=1, col=1)
        return self.predict(req.path_params["model_id"], body, algorithm=req.path_params.get("algorithm"))

    def predict(self, model_id: str, body: dict[str, Any], *, algorithm: str | None = "text_embedding") -> dict[str, Any]:
        """What ``POST /_plugins/_ml/_predict/{algorithm}/{model_id}`` returns (``algorithm=None``: the
        model's own function, as ``/models/{id}/_predict``). Raises ``ApiError`` with ML Commons' messages."""
        self._ensure_indices()
        doc = self._model_doc(model_id)
        if doc is None:
            raise status_error(404, "Failed to find model")
        model_fn = str(doc.get("algorithm") or "TEXT_EMBEDDING").upper()
        input_fn = (algorithm or model_fn).upper()
        if model_fn == "REMOTE" and not self.settings.flag("remote_inference.enabled"):
            raise status_error(400, REMOTE_DISABLED)
        if model_fn in LOCAL_FUNCTIONS and not self.settings.flag("local_model.enabled"):
            raise status_error(400, LOCAL_DISABLED)
        if doc.get("is_enabled") is False:
            raise status_error(403, "Model is disabled.")
        if input_fn not in ("TEXT_EMBEDDING", "REMOTE"):
            raise iae(f"Predict with algorithm {input_fn.lower()} is not supported by the oskit embedded node")
        if model_fn == "REMOTE":
            return self._predict_remote(model_id, doc, body, input_fn)
        if input_fn != "TEXT_EMBEDDING":
            raise iae("Wrong input type: a TEXT_EMBEDDING model needs text_docs input")
        return self._predict_local(model_id, doc, body)

    def _text_docs(self, body: dict[str, Any]) -> list[str | None]:
        docs = body.get("text_docs")
        if docs is None:
            return []
        if not isinstance(docs, list):
            raise ApiError(400, "parsing_exception", "Failed to parse object: expecting token of type "
                                                     "[START_ARRAY] but found [VALUE_STRING]", line=1, col=1)
        return [None if d is None else (d if isinstance(d, str) else json.dumps(d)) for d in docs]

    def _predict_local(self, model_id: str, doc: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            model = self._loaded.get(model_id)
        if model is None:
            # After a restart a DEPLOYED model comes back through auto-redeploy (default on since 2.12);
            # here that happens on first use.
            if doc.get("model_state") == "DEPLOYED" and self.settings.flag("model_auto_redeploy.enable") \
                    and self._eligible(remote=False):
                try:
                    model = self._load_local(model_id)
                except Exception as exc:
                    log.warning("auto redeploy of %s failed: %s", model_id, exc)
                    self._update(MODEL_INDEX, model_id, {"model_state": "DEPLOY_FAILED",
                                                         "current_worker_node_count": 0})
                    raise iae(NOT_READY) from None
            else:
                raise iae(NOT_READY)
        docs = self._text_docs(body)
        params = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
        content_type = params.get("content_type") if params else None
        prefix = model.prefix(content_type)
        return_bytes = bool(body.get("return_bytes", False))
        return_number = bool(body.get("return_number", True))
        targets = list(body.get("target_response") or [])
        positions = [int(p) for p in body.get("target_response_positions") or []]
        results = []
        for text in docs:
            tensors = model.predict_one(prefix + (text if text is not None else "null"))
            results.append({"output": _filter(tensors, targets, positions, return_bytes, return_number)})
        return {"inference_results": results}

    def _predict_remote(self, model_id: str, doc: dict[str, Any], body: dict[str, Any],
                        input_fn: str) -> dict[str, Any]:
        if doc.get("model_state") not in ("DEPLOYED",):
            # FunctionName.isAutoDeployEnabled: remote models only (2.13+).
            if self.settings.flag("model_auto_deploy.enable") and self.settings.version >= (2, 13, 0):
                if not self._eligible(remote=True):
                    raise iae("no eligible node found")
                self._mark_deployed(model_id)
            else:
                raise iae(NOT_READY)
        connector = doc.get("connector")
        if connector is None:
            connector = self._get(CONNECTOR_INDEX, str(doc.get("connector_id")))
            if connector is None:
                raise status_error(404, "Failed to find connector")
        connector = self.cipher.open(connector)
        raw_params = body.get("parameters")
        if raw_params is not None and not isinstance(raw_params, dict):
            raise iae("parameters must be an object")
        if input_fn == "TEXT_EMBEDDING":
            algo = None
            if raw_params:
                algo = {k: v for k, v in parameter_map(raw_params).items()}
            remote_input = conn.RemoteInput(text_docs=self._text_docs(body), algo_parameters=algo)
        else:
            remote_input = conn.RemoteInput(parameters=parameter_map(raw_params) if raw_params is not None else None)
            if remote_input.parameters is None:
                remote_input.parameters = {}
        results = conn.execute_predict(connector, remote_input, self.settings)
        return {"inference_results": results}

    # ================================================================================== connectors
    def _connector_create(self, req: "NodeRequest") -> dict[str, Any]:
        """``TransportCreateConnectorAction``."""
        body = self._body(req)
        check_safe_fields(self.settings.version, {"Model connector name": body.get("name"),
                                                  "Model connector description": body.get("description")})
        if not self.settings.flag("remote_inference.enabled"):
            raise status_error(400, REMOTE_DISABLED)
        doc = self.cipher.seal(conn.validate_connector(body, self.settings))
        assert doc is not None
        now = now_ms()
        doc = {k: v for k, v in doc.items() if v is not None}
        doc.update({"created_time": now, "last_updated_time": now})
        connector_id = new_id()
        self._put(CONNECTOR_INDEX, connector_id, doc, create=True)
        return {"connector_id": connector_id}

    def _connector_get(self, req: "NodeRequest") -> dict[str, Any]:
        doc = self._get(CONNECTOR_INDEX, req.path_params["connector_id"])
        if doc is None:
            raise status_error(404, "Failed to find connector")
        return conn.public_connector(doc)

    def _models_using(self, connector_id: str) -> list[dict[str, Any]]:
        return self._search_ids(MODEL_INDEX, {"term": {"connector_id": connector_id}})

    def _connector_update(self, req: "NodeRequest") -> dict[str, Any]:
        """``UpdateConnectorTransportAction``: refused while models using it are deployed."""
        connector_id = req.path_params["connector_id"]
        body = self._body(req)
        check_safe_fields(self.settings.version, {"Model connector name": body.get("name"),
                                                  "Model connector description": body.get("description")})
        existing = self._get(CONNECTOR_INDEX, connector_id)
        if existing is None:
            raise status_error(404, "Failed to find connector")
        deployed = [h["_id"] for h in self._models_using(connector_id)
                    if (h.get("_source") or {}).get("model_state") in DEPLOYED_STATES]
        if deployed:
            raise status_error(400, f"{len(deployed)} models are still using this connector, please undeploy the "
                                    f"models first: [{', '.join(deployed)}]")
        doc = self.cipher.seal(conn.validate_connector(body, self.settings, update=True, existing=existing))
        assert doc is not None
        doc["last_updated_time"] = now_ms()
        # UpdateConnectorTransportAction writes without a refresh policy: no forced_refresh in the answer
        return self.engine.index_doc(CONNECTOR_INDEX, connector_id, {k: v for k, v in doc.items() if v is not None})

    def _connector_delete(self, req: "NodeRequest") -> dict[str, Any]:
        """``DeleteConnectorTransportAction``: 409 while any model uses it."""
        connector_id = req.path_params["connector_id"]
        if self._get(CONNECTOR_INDEX, connector_id) is None and self.settings.version >= (3, 0, 0):
            raise status_error(404, "Failed to find connector")
        # 2.19 deletes whatever the id names: a missing connector is a 200 "not_found" delete response
        users = [h["_id"] for h in self._models_using(connector_id)]
        if users:
            raise status_error(409, f"{len(users)} models are still using this connector, please delete or update "
                                    f"the models first: [{', '.join(users)}]")
        return self.engine.delete_doc(CONNECTOR_INDEX, connector_id, refresh=True)

    def _connector_search(self, req: "NodeRequest") -> dict[str, Any]:
        return self._plain_search(CONNECTOR_INDEX, req, view=conn.public_connector)


def _filter(tensors: list[dict[str, Any]], targets: list[str], positions: list[int], return_bytes: bool,
            return_number: bool) -> list[dict[str, Any]]:
    """``ModelTensors.filter`` (``ModelResultFilter``): names/positions, then data/byte_buffer switches."""
    if targets or positions:
        tensors = [t for i, t in enumerate(tensors) if t.get("name") in targets or i in positions]
    out = []
    for t in tensors:
        t = dict(t)
        if not return_bytes:
            t.pop("byte_buffer", None)
        if not return_number:
            t.pop("data", None)
        out.append(t)
    return out

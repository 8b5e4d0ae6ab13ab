"""Carry out a :class:`~kit.cluster.plan.Plan`, in dependency order, idempotently and resumably.

Before any write: the live state is read again and must match the plan's fingerprint
(:class:`PlanStale`), the target's capabilities are checked, and destructive changes need
``allow_destroy`` (:class:`DestroyRefused`). Every step is safe to repeat: an interrupted apply is
finished by running it again (the kit finds its own resources by their markers, so nothing is
created twice).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from kit.cluster import mlcommons as ml
from kit.cluster.capabilities import check, detect
from kit.cluster.client import Client
from kit.cluster.desired import MODEL_PLACEHOLDER, resolve_models
from kit.cluster.plan import Change, Plan, _connector_urls
from kit.cluster.state import read_state
from kit.errors import Conflict, DestroyRefused, KitError, NotFound, PlanStale

log = logging.getLogger("kit.cluster")

__all__ = ["ApplyResult", "apply", "apply_changes"]

Progress = Callable[[str], None]


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    model_ids: dict[str, str | None] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"applied": [{"action": c.action, "kind": c.kind, "name": c.name} for c in self.applied],
                "model_ids": self.model_ids, "seconds": round(self.seconds, 3)}


def apply(plan: Plan, client: Client, *, allow_destroy: bool = False, progress: Progress | None = None,
          task_timeout: float = 600.0) -> ApplyResult:
    """Apply ``plan`` to ``client``'s cluster. Raises PlanStale, DestroyRefused, Unsupported before writing."""
    started = time.monotonic()
    say = progress or (lambda msg: log.info("%s", msg))
    result = ApplyResult(model_ids=dict(plan.model_ids))
    if not plan.changes:
        result.seconds = time.monotonic() - started
        return result

    live = read_state(client, plan.desired)
    if live.fingerprint() != plan.fingerprint:
        raise PlanStale("the cluster changed after the plan was made",
                        hint="run oskit plan again (and review it) before applying")
    unmanaged = [c for c in plan.changes if c.action == "unmanaged"]
    if unmanaged:
        listed = "; ".join(f"{c.kind} {c.name}" for c in unmanaged)
        raise Conflict(f"these exist and were not created by oskit project '{plan.project.name}': {listed}",
                       hint="oskit never changes resources it did not create: delete them (or rename the "
                       "project's files), then run oskit plan again")
    target = detect(client)
    if not plan.destroy:
        check(plan.project, target, _connector_urls(plan.desired))
    risky = [c for c in plan.changes if c.destructive]
    if risky and not allow_destroy:
        listed = "; ".join(f"{c.action} {c.kind} {c.name}" for c in risky)
        raise DestroyRefused(f"the plan would lose data: {listed}",
                             hint="review oskit plan, then pass --allow-destroy; carry a reindex out without "
                             "downtime with oskit migrate")

    ctx = _Context(plan, client, live, say, task_timeout, result)
    cleanups: list[Change] = []
    for change in plan.changes:
        say(f"{change.action} {change.kind} {change.name}")
        ctx.run(change)
        result.applied.append(change)
        if change.internal.get("cleanup"):
            cleanups.append(change)
    # Old copies go last: pipelines and indices already point at the new models.
    # Models before connectors: a connector in use cannot be deleted (409).
    for change in sorted(cleanups, key=lambda c: c.kind != "model"):
        for rid in change.internal["cleanup"]:
            if change.kind == "model":
                say(f"remove old model {change.name} ({rid})")
                ml.delete_model(client, rid)
            else:
                say(f"remove old connector {change.name} ({rid})")
                ml.delete_connector(client, rid)
    if not plan.destroy:
        _record_fingerprints(plan, client, say, result)
    result.seconds = time.monotonic() - started
    return result


def apply_changes(plan: Plan, client: Client, changes: list[Change], *, progress: Progress | None = None,
                  task_timeout: float = 600.0) -> ApplyResult:
    """Run some of ``plan``'s changes (model groups, connectors, models) and keep every old copy: the
    models an index version still uses stay deployed (oskit migrate registers the new ones this way)."""
    say = progress or (lambda msg: log.info("%s", msg))
    result = ApplyResult(model_ids=dict(plan.model_ids))
    live = read_state(client, plan.desired)
    ctx = _Context(plan, client, live, say, task_timeout, result)
    for change in changes:
        if change.kind not in ("cluster-settings", "model-group", "connector", "model") or change.action == "destroy":
            raise KitError(f"internal: apply_changes cannot run {change.action} {change.kind}")
        if change.action == "update" and change.kind in ("connector", "model") and not change.details:
            continue  # only old copies to remove: they stay
        say(f"{change.action} {change.kind} {change.name}")
        ctx.run(change)
        result.applied.append(change)
    return result


class _Context:
    def __init__(self, plan: Plan, client: Client, live: Any, say: Progress, timeout: float,
                 result: ApplyResult) -> None:
        self.plan = plan
        self.client = client
        self.live = live
        self.say = say
        self.timeout = timeout
        self.result = result
        self.ids = result.model_ids
        self.group_ids = {name: g.id for name, g in live.groups.items() if g.project == plan.project.name}
        self.connector_ids: dict[str, str] = {}

    def run(self, c: Change) -> None:
        handler = getattr(self, f"_{c.kind.replace('-', '_')}_{c.action}", None)
        if handler is None:
            raise KitError(f"internal: no handler for {c.action} {c.kind}")  # a bug, not user input
        handler(c)

    # cluster settings ------------------------------------------------------------------------
    def _cluster_settings_create(self, c: Change) -> None:
        self.client.request("PUT", "/_cluster/settings", body={"persistent": self.plan.desired.settings})

    _cluster_settings_update = _cluster_settings_create

    # model groups ----------------------------------------------------------------------------
    def _model_group_create(self, c: Change) -> None:
        self.group_ids[c.name] = ml.register_group(self.client, c.name, self.plan.desired.groups[c.name])

    def _model_group_destroy(self, c: Change) -> None:
        ml.delete_group(self.client, c.internal["id"])

    # connectors ------------------------------------------------------------------------------
    def _connector_create(self, c: Change) -> None:
        md = self.plan.desired.models[c.name]
        assert md.connector is not None
        self.connector_ids[c.name] = ml.create_connector(self.client, md.connector)

    _connector_replace = _connector_create

    def _connector_update(self, c: Change) -> None:
        pass  # only old copies to remove, done at the end

    def _connector_destroy(self, c: Change) -> None:
        ml.delete_connector(self.client, c.internal["id"])

    # models ----------------------------------------------------------------------------------
    def _model_create(self, c: Change) -> None:
        md = self.plan.desired.models[c.name]
        # Incomplete registrations of the same spec (e.g. an interrupted chunk upload) go first.
        for m in self.live.models:
            if m.logical == c.name and m.fingerprint == md.fingerprint and m.id in c.internal.get("cleanup", []) \
                    and m.state not in ("DEPLOYED", "REGISTERED", "UNDEPLOYED", "DEPLOY_FAILED", "PARTIALLY_DEPLOYED"):
                self.say(f"remove incomplete model {c.name} ({m.id}, {m.state})")
                ml.delete_model(self.client, m.id)
                c.internal["cleanup"] = [x for x in c.internal["cleanup"] if x != m.id]
        group_id = self.group_ids.get(md.group)
        if group_id is None:
            raise KitError(f"model group '{md.group}' is missing", hint="run oskit plan again")
        connector_id = self.connector_ids.get(c.name) or c.internal.get("connector_id")
        self.say(f"register model {c.name}")
        model_id = ml.register_model(self.client, md, group_id, connector_id, timeout=self.timeout,
                                     progress=self.say)
        self.ids[c.name] = model_id
        self._deploy_and_probe(c.name, model_id)

    _model_replace = _model_create

    def _model_redeploy(self, c: Change) -> None:
        if any(d.path == "description" for d in c.details):  # records the weights it now serves
            self._model_update(c)
        self._deploy_and_probe(c.name, c.internal["model_id"])

    def _model_update(self, c: Change) -> None:
        md = self.plan.desired.models[c.name]
        if any(d.path == "description" for d in c.details):
            self.client.request("PUT", f"/_plugins/_ml/models/{c.internal['model_id']}",
                                body={"description": md.description})

    def _model_destroy(self, c: Change) -> None:
        ml.delete_model(self.client, c.internal["id"])

    def _deploy_and_probe(self, name: str, model_id: str) -> None:
        md = self.plan.desired.models[name]
        self.say(f"deploy model {name} ({model_id})")
        ml.deploy_model(self.client, model_id, name=name, timeout=self.timeout)
        summary = ml.probe_model(self.client, md, model_id)
        self.say(f"probe model {name}: {summary}")
        self.result.messages.append(f"model {name}: {model_id} deployed, probe {summary}")

    # pipelines -------------------------------------------------------------------------------
    def _body_with_ids(self, body: dict[str, Any], what: str) -> dict[str, Any]:
        resolved = resolve_models(body, self.ids)
        missing = sorted({m.group("name") for m in (MODEL_PLACEHOLDER.match(str(v)) for v in _strings(body)) if m}
                         - {k for k, v in self.ids.items() if v})
        if missing:
            raise KitError(f"{what}: model(s) {', '.join(missing)} have no id yet", hint="run oskit apply again")
        return resolved

    def _ingest_pipeline_create(self, c: Change) -> None:
        body = self._body_with_ids(self.plan.desired.ingest[c.name], f"ingest pipeline {c.name}")
        self.client.request("PUT", f"/_ingest/pipeline/{c.name}", body=body)

    _ingest_pipeline_update = _ingest_pipeline_create

    def _ingest_pipeline_destroy(self, c: Change) -> None:
        self.client.request("DELETE", f"/_ingest/pipeline/{c.name}", ignore=(404,))

    def _search_pipeline_create(self, c: Change) -> None:
        body = self._body_with_ids(self.plan.desired.search[c.name], f"search pipeline {c.name}")
        self.client.request("PUT", f"/_search/pipeline/{c.name}", body=body)

    _search_pipeline_update = _search_pipeline_create

    def _search_pipeline_destroy(self, c: Change) -> None:
        self.client.request("DELETE", f"/_search/pipeline/{c.name}", ignore=(404,))

    # index templates and indices -----------------------------------------------------------------
    def _index_template_create(self, c: Change) -> None:
        self.client.request("PUT", f"/_index_template/{c.name}", body=self.plan.desired.indices[c.name].body)

    _index_template_update = _index_template_create

    def _index_template_destroy(self, c: Change) -> None:
        self.client.request("DELETE", f"/_index_template/{c.name}", ignore=(404,))

    def _index_create(self, c: Change) -> None:
        # Version 1 behind an alias of the index's name: oskit migrate later swaps the alias to a new
        # version without downtime (an index cannot become an alias of its own name while it is queried).
        import copy

        from kit.cluster.state import VERSION_KEY

        body = copy.deepcopy(self.plan.desired.indices[c.name].body)
        body["mappings"].setdefault("_meta", {})[VERSION_KEY] = {"of": c.name, "version": 1, "state": "live"}
        body["aliases"] = dict(body.get("aliases") or {}, **{c.name: {}})
        self.client.request("PUT", f"/{c.name}-v1", body=body)

    def _index_update(self, c: Change) -> None:
        desired = self.plan.desired.indices[c.name]
        paths = [d.path for d in c.details]
        if any(p.startswith("mappings") for p in paths):
            # PUT _mapping merges fields (unchanged ones are a no-op) but replaces _meta whole: keep
            # the live index's own _meta keys (the similar-photo calibration)
            body = copy.deepcopy(desired.body["mappings"])
            live_idx = self.live.indices.get(c.name)
            live_meta = ((live_idx.mappings if live_idx else {}) or {}).get("_meta") or {}
            body["_meta"] = {**{k: v for k, v in live_meta.items() if k not in body.get("_meta", {})},
                             **body.get("_meta", {})}
            self.client.request("PUT", f"/{c.name}/_mapping", body=body)
        changed = {d.path: desired.settings_flat[d.path] for d in c.details if d.path in desired.settings_flat}
        if changed:
            from kit.cluster.desired import nest_settings

            self.client.request("PUT", f"/{c.name}/_settings", body=nest_settings(changed))
        if any(p.startswith("aliases") for p in paths):
            live = self.live.indices.get(c.name)
            have = set((live.aliases if live else {}) or {})
            want = desired.body.get("aliases") or {}
            actions: list[dict[str, Any]] = [{"remove": {"index": c.name, "alias": a}} for a in sorted(have - set(want))]
            actions += [{"add": dict(body or {}, index=c.name, alias=a)} for a, body in sorted(want.items())]
            if actions:
                self.client.request("POST", "/_aliases", body={"actions": actions})

    def _index_reindex(self, c: Change) -> None:
        self._index_destroy(c)
        self._index_create(c)

    def _index_destroy(self, c: Change) -> None:
        # An alias cannot be deleted as an index: delete every version behind it.
        for concrete in c.internal.get("indices") or [c.name]:
            self.client.request("DELETE", f"/{concrete}", ignore=(404,))


def _record_fingerprints(plan: Plan, client: Client, say: Progress, result: ApplyResult) -> None:
    """After the probes: record which models fill each index's vectors (kept when they no longer match)."""
    from kit.cluster.fingerprint import record_index
    from kit.errors import ClusterError

    for name, idesired in sorted(plan.desired.indices.items()):
        if idesired.kind != "index":
            continue
        try:
            rec = record_index(client, name)
        except NotFound:
            continue
        except ClusterError as exc:
            result.messages.append(f"index {name}: embedding fingerprints not recorded ({exc})")
            continue
        for fname, entry in sorted((rec.get("fields") or {}).items()):
            say(f"index {name}: {fname} ← model {entry.get('model')} (outputs {entry.get('outputs')})")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []

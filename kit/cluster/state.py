"""Read what the cluster holds now (read-only): settings, ML resources, pipelines, indices.

Only resources that carry this project's marker (see :mod:`kit.cluster.desired`) are *owned*; the
others are read only to refuse name clashes, never changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kit.cluster.client import Client
from kit.cluster.desired import Desired, canonical_json, parse_marker
from kit.errors import ClusterError, NotFound, Unreachable

log = logging.getLogger("kit.cluster")

__all__ = [
    "LiveIndex",
    "LiveModel",
    "LiveResource",
    "LiveState",
    "VERSION_KEY",
    "alias_targets",
    "concrete_index",
    "doc_count",
    "flatten_settings",
    "read_state",
]

MAX_HITS = 10000
VERSION_KEY = "oskit_version"  # mappings._meta of an index made by oskit migrate: {of, version, from, state}


@dataclass
class LiveResource:
    id: str
    name: str
    description: str
    project: str | None
    logical: str | None
    fingerprint: str | None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class LiveModel(LiveResource):
    state: str = "UNKNOWN"
    group_id: str | None = None
    connector_id: str | None = None


@dataclass
class LiveIndex:
    name: str
    settings: dict[str, str]          # flat, stringified
    mappings: dict[str, Any]
    aliases: dict[str, Any]
    project: str | None
    fingerprint: str | None
    kind: str = "index"
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class LiveState:
    settings: dict[str, Any]                       # persistent cluster settings, flat
    groups: dict[str, LiveResource]                # by name (all groups, owned or not)
    connectors: list[LiveResource]                 # owned by the project
    models: list[LiveModel]                        # owned by the project
    ingest: dict[str, dict[str, Any]]              # all ingest pipelines by name
    search: dict[str, dict[str, Any]]              # all search pipelines by name
    indices: dict[str, LiveIndex]                  # desired names that exist + owned ones
    templates: dict[str, LiveIndex]
    # Index versions made by oskit migrate, by the alias (desired index name) they serve; the one the
    # alias points at is also ``indices[alias]`` (its ``name`` is the concrete index).
    versions: dict[str, list[LiveIndex]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of everything plan decisions depend on (not doc counts or timestamps)."""
        import hashlib

        view = {
            "settings": self.settings,
            "groups": sorted((g.name, g.id, g.description) for g in self.groups.values()),
            "connectors": sorted((c.id, c.description) for c in self.connectors),
            "models": sorted((m.id, m.description, m.state) for m in self.models),
            "ingest": self.ingest,
            "search": self.search,
            "indices": {n: [i.name, i.settings, i.mappings, i.aliases] for n, i in self.indices.items()},
            "templates": {n: t.raw for n, t in self.templates.items()},
        }
        return hashlib.sha256(canonical_json(view).encode()).hexdigest()[:16]


def flatten_settings(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested or flat settings → flat keys; list values stay lists ("a.0", "a.1" are folded back)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                out.update(flatten_settings(v, key + "."))
            else:
                out[key] = v
    # Fold "x.0", "x.1" (list settings in some renderings) back into lists.
    folded: dict[str, Any] = {}
    for key, v in out.items():
        head, _, tail = key.rpartition(".")
        if tail.isdigit() and head:
            folded.setdefault(head, [])
            folded[head].append((int(tail), v))
        else:
            folded[key] = v
    return {k: [x for _, x in sorted(v)] if isinstance(v, list) and v and isinstance(v[0], tuple) else v
            for k, v in folded.items()}


def _search_all(client: Client, path: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        resp = client.request("POST", path, body={"query": query, "size": MAX_HITS})
    except NotFound:
        return []  # the system index does not exist yet
    hits = (resp or {}).get("hits", {}).get("hits", [])
    return [h for h in hits if isinstance(h, dict)]


def _get_or_empty(client: Client, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        resp = client.request("GET", path, params=params)
    except NotFound:
        return {}
    return resp if isinstance(resp, dict) else {}


ML_INDICES = ".plugins-ml-model-group,.plugins-ml-connector,.plugins-ml-model"


def _refresh_ml_indices(client: Client) -> None:
    """ML Commons' _search APIs are near-real-time and it does not refresh after every write (a model
    registered by _register_meta, an update), so a plan right after an apply would miss what the apply
    made. A refresh changes no data; a cluster that refuses it (security, a managed service) is read as is.
    """
    try:
        client.request("POST", f"/{ML_INDICES}/_refresh",
                       params={"ignore_unavailable": "true", "expand_wildcards": "all"})
    except Unreachable:
        raise
    except ClusterError as exc:
        log.info("could not refresh ML Commons' indices (%s); reading them as they are", exc)


def read_state(client: Client, desired: Desired) -> LiveState:
    project = desired.project.name
    _refresh_ml_indices(client)
    raw_settings = _get_or_empty(client, "/_cluster/settings", {"flat_settings": "true"})
    settings = flatten_settings(raw_settings.get("persistent") or {})

    groups: dict[str, LiveResource] = {}
    for hit in _search_all(client, "/_plugins/_ml/model_groups/_search", {"match_all": {}}):
        src = hit.get("_source") or {}
        mk = parse_marker(src.get("description"))
        name = str(src.get("name", ""))
        groups[name] = LiveResource(id=hit["_id"], name=name, description=str(src.get("description") or ""),
                                    project=mk[0] if mk else None, logical=None, fingerprint=None, raw=src)

    connectors: list[LiveResource] = []
    for hit in _search_all(client, "/_plugins/_ml/connectors/_search", {"match_all": {}}):
        src = hit.get("_source") or {}
        mk = parse_marker(src.get("description"))
        if mk and mk[0] == project and mk[1]:
            connectors.append(LiveResource(id=hit["_id"], name=str(src.get("name", "")),
                                           description=str(src.get("description")), project=mk[0], logical=mk[1],
                                           fingerprint=mk[2], raw=src))

    models: list[LiveModel] = []
    query = {"bool": {"must_not": [{"exists": {"field": "chunk_number"}}]}}
    for hit in _search_all(client, "/_plugins/_ml/models/_search", query):
        src = hit.get("_source") or {}
        if "chunk_number" in src:
            continue
        mk = parse_marker(src.get("description"))
        if mk and mk[0] == project and mk[1]:
            # _search is near-real-time on a real cluster (refreshed each second) and ML Commons writes a
            # model's state and description updates without a refresh: GET by id is real-time.
            fresh = _get_or_empty(client, f"/_plugins/_ml/models/{hit['_id']}")
            if not fresh:
                continue  # deleted since the last refresh
            src = fresh
            mk = parse_marker(src.get("description")) or mk
            models.append(LiveModel(id=hit["_id"], name=str(src.get("name", "")),
                                    description=str(src.get("description")), project=mk[0], logical=mk[1],
                                    fingerprint=mk[2], raw=src, state=str(src.get("model_state", "UNKNOWN")),
                                    group_id=src.get("model_group_id"), connector_id=src.get("connector_id")))

    ingest = _get_or_empty(client, "/_ingest/pipeline")
    search = _get_or_empty(client, "/_search/pipeline")

    indices: dict[str, LiveIndex] = {}
    templates: dict[str, LiveIndex] = {}
    versions: dict[str, list[LiveIndex]] = {}
    wanted = {n for n, i in desired.indices.items() if i.kind == "index"}
    try:
        all_mappings = client.request("GET", "/_mapping") or {}
    except NotFound:
        all_mappings = {}
    for name, body in all_mappings.items():
        meta = ((body or {}).get("mappings") or {}).get("_meta") or {}
        owner = meta.get("oskit", {}).get("project") if isinstance(meta.get("oskit"), dict) else None
        version_of = (meta.get(VERSION_KEY) or {}).get("of") if isinstance(meta.get(VERSION_KEY), dict) else None
        if owner == project and version_of and name != version_of:
            live = _read_index(client, name)
            versions.setdefault(version_of, []).append(live)
            if version_of in live.aliases:
                indices[version_of] = live
        elif name in wanted or owner == project:
            indices[name] = _read_index(client, name)
    for name, tdesired in desired.indices.items():
        if tdesired.kind != "index_template":
            continue
        try:
            resp = client.request("GET", f"/_index_template/{name}")
        except NotFound:
            continue
        for item in (resp or {}).get("index_templates", []):
            templates[item["name"]] = _template(item)
    try:
        resp = client.request("GET", "/_index_template")
    except (NotFound, ClusterError):
        resp = {}
    for item in (resp or {}).get("index_templates", []):
        t = _template(item)
        if t.project == project:
            templates.setdefault(t.name, t)

    return LiveState(settings=settings, groups=groups, connectors=connectors, models=models, ingest=ingest,
                     search=search, indices=indices, templates=templates, versions=versions)


def _template(item: dict[str, Any]) -> LiveIndex:
    body = item.get("index_template") or {}
    meta = body.get("_meta") or {}
    oskit = meta.get("oskit") if isinstance(meta.get("oskit"), dict) else {}
    tpl = body.get("template") or {}
    return LiveIndex(name=item.get("name", ""), settings=flatten_settings(tpl.get("settings") or {}),
                     mappings=tpl.get("mappings") or {}, aliases=tpl.get("aliases") or {},
                     project=oskit.get("project"), fingerprint=oskit.get("fingerprint"), kind="index_template",
                     raw=body)


def _read_index(client: Client, name: str) -> LiveIndex:
    resp = client.request("GET", f"/{name}") or {}
    body = resp.get(name) or next(iter(resp.values()), {})
    settings = flatten_settings(body.get("settings") or {})
    mappings = body.get("mappings") or {}
    meta = mappings.get("_meta") or {}
    oskit = meta.get("oskit") if isinstance(meta.get("oskit"), dict) else {}
    return LiveIndex(name=name, settings=settings, mappings=mappings, aliases=body.get("aliases") or {},
                     project=oskit.get("project"), fingerprint=oskit.get("fingerprint"), raw=body)


def doc_count(client: Client, index: str) -> int | None:
    try:
        resp = client.request("GET", f"/{index}/_count")
    except NotFound:
        return None
    return int((resp or {}).get("count", 0))


def alias_targets(client: Client, name: str) -> list[str]:
    """The indices the alias ``name`` points at now (sorted); ``[]`` when ``name`` is no alias."""
    try:
        resp = client.request("GET", f"/_alias/{name}") or {}
    except NotFound:
        return []
    return sorted(i for i, body in resp.items() if name in ((body or {}).get("aliases") or {}))


def concrete_index(client: Client, name: str) -> str:
    """The one index a search of ``name`` reaches now: the index an alias over one index points at
    (oskit's index versions), else ``name`` itself (an index, a pattern, a list, an alias over several).

    Why searches go there and not to the alias: OpenSearch resolves a request's default search pipeline
    from the cluster state before the neural query calls its model, and the request's indices from the
    state after that call. A query running while ``oskit migrate`` moves the alias can therefore embed
    with the old version's model and search the new version's vectors (wrong hits, seen on 3.6.0).
    Named directly, the pipeline and the vectors always belong to one version (docs/lifecycle.md)."""
    if not name or any(c in name for c in "*,") or name.startswith(("_", "-")):
        return name
    targets = alias_targets(client, name)
    return targets[0] if len(targets) == 1 else name

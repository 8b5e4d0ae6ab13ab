"""Cluster settings (persistent, transient, plugin defaults) and the flat ↔ nested key helpers that
index settings use too."""

from __future__ import annotations

from typing import Any, Callable

from kit.node.errors import bad_request, body_required
from kit.node.storage import Storage

__all__ = ["ClusterSettings", "flatten", "nest", "stringify"]


_CLUSTER_PREFIXES = ("plugins.", "cluster.", "action.", "indices.", "search.", "knn.", "opensearch.", "logger.",
                     "node.", "script.", "ingest.", "persistent.", "transport.", "http.", "snapshot.", "gateway.",
                     "bootstrap.", "discovery.", "network.", "thread_pool.", "index.", "search_backpressure.",
                     "wlm.", "analysis.", "neural_search.", "ml_commons.", "opendistro.")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c.d": 2}`` → ``{"a.b": 1, "c.d": 2}`` (lists are leaf values)."""
    out: dict[str, Any] = {}
    if not isinstance(obj, dict):
        return {prefix.rstrip("."): obj} if prefix else {}
    for k, v in obj.items():
        key = prefix + str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat keys → nested objects, as OpenSearch renders settings. A key that is both a value and a
    prefix (``index.knn`` and ``index.knn.algo_param.ef_search``) keeps the deeper keys dotted:
    ``{"knn": "true", "knn.algo_param": {"ef_search": "100"}}``."""
    leaves: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for key in sorted(flat):
        head, _, rest = key.partition(".")
        if rest:
            groups.setdefault(head, {})[rest] = flat[key]
        else:
            leaves[head] = flat[key]
    out: dict[str, Any] = dict(leaves)
    for head, sub in groups.items():
        nested = nest(sub)
        if head in leaves:
            for k2, v2 in nested.items():
                out[f"{head}.{k2}"] = v2
        else:
            out[head] = nested
    return dict(sorted(out.items()))


def stringify(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return [stringify(x) for x in v]
    return v


def typed(v: Any) -> Any:
    if isinstance(v, str):
        if v in ("true", "false"):
            return v == "true"
        try:
            return int(v)
        except ValueError:
            pass
        try:
            return float(v)
        except ValueError:
            return v
    return v


class ClusterSettings:
    """Persistent and transient cluster settings (flat keys, string values as OpenSearch keeps them).

    ``get`` returns typed values (``"false"`` → False, ``"10"`` → 10); transient wins over persistent,
    as in OpenSearch.
    """

    def __init__(self, store: Storage) -> None:
        self._store = store
        self.persistent: dict[str, Any] = store.kv_get("cluster", "persistent") or {}
        self.transient: dict[str, Any] = {}  # transient settings do not survive a restart
        self.defaults: dict[str, Any] = {}
        self.listeners: list[Callable[[str, Any], None]] = []

    def get(self, key: str, default: Any = None) -> Any:
        for layer in (self.transient, self.persistent, self.defaults):
            if key in layer:
                return typed(layer[key])
        return default

    def register_defaults(self, defaults: dict[str, Any]) -> None:
        """Plugins declare their settings (shown by ``include_defaults``, accepted by PUT)."""
        self.defaults.update({k: stringify(v) for k, v in flatten(defaults).items()})

    def update(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        for key in body:
            if key not in ("persistent", "transient"):
                raise bad_request(f"request body contains unknown field [{key}]" if False else
                                  f"[cluster_update_settings_request] unknown field [{key}]")
        result: dict[str, dict[str, Any]] = {"persistent": {}, "transient": {}}
        staged = {"persistent": dict(self.persistent), "transient": dict(self.transient)}
        for scope in ("persistent", "transient"):
            flat = flatten(body.get(scope) or {})
            for key, value in flat.items():
                if key.endswith(".*") and value is None:
                    stem = key[:-1]
                    for k in [k for k in staged[scope] if k.startswith(stem)]:
                        del staged[scope][k]
                    continue
                if not key.startswith(_CLUSTER_PREFIXES) and key not in self.defaults:
                    raise bad_request(f"{scope} setting [{key}], not recognized")
                if value is None:
                    staged[scope].pop(key, None)
                else:
                    staged[scope][key] = stringify(value)
                    result[scope][key] = stringify(value)
        self.persistent, self.transient = staged["persistent"], staged["transient"]
        self._store.kv_put("cluster", "persistent", self.persistent)
        for scope in ("persistent", "transient"):
            for key, value in flatten(body.get(scope) or {}).items():
                for fn in self.listeners:
                    fn(key, typed(value) if value is not None else None)
        return {"acknowledged": True, "persistent": nest(result["persistent"]),
                "transient": nest(result["transient"])}

    def render(self, flat: bool = False, include_defaults: bool = False) -> dict[str, Any]:
        fmt = (lambda d: dict(sorted(d.items()))) if flat else nest
        out = {"persistent": fmt(self.persistent), "transient": fmt(self.transient)}
        if include_defaults:
            out["defaults"] = fmt(self.defaults)
        return out

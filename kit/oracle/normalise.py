"""Normalise what must differ between two clusters, then compare what is left.

Two clusters answering the same request legitimately differ in generated ids (auto ``_id``, ML
Commons ids, index and node uuids), timings, timestamps, versions and names. :func:`normalise`
replaces those by placeholders (``<id>``, ``<time>``, ``<version>``, ``<name>``); :func:`compare`
then lists every remaining difference as ``path: a X, b Y``, with a float tolerance for scores.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

__all__ = ["ID", "NAME", "TIME", "VERSION", "compare", "normalise", "normalise_path", "normalise_text"]

ID, TIME, VERSION, NAME = "<id>", "<time>", "<version>", "<name>"

# OpenSearch's auto ids are 20 base64url chars (time-based UUIDs); index, node and cluster uuids 22;
# ML Commons ids are auto ids too. Standard 8-4-4-4-12 UUIDs show up in some plugin responses.
_GENERATED = re.compile(r"(?<![A-Za-z0-9_\-])([A-Za-z0-9_\-]{20}|[A-Za-z0-9_\-]{22}|"
                        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![A-Za-z0-9_\-])")
_TIME_KEY = re.compile(r"(^took$|^ingest_took$|^phase_took$|_time$|_time_in_millis$|_in_millis$|_in_nanos$|_in_ms$|^timestamp$|_timestamp$|"
                       r"^time$|^start_time|^end_time|_at$|^elapsed|(^|\.)creation_date$|^number_of_pending_tasks$|"
                       r"^number_of_in_flight_fetch$)")
_VERSION_KEYS = {"number", "build_hash", "build_date", "build_type", "build_snapshot", "lucene_version",
                 "minimum_wire_compatibility_version", "minimum_index_compatibility_version", "distribution"}
_NAME_KEYS = {"cluster_name", "cluster_uuid", "node_name", "ephemeral_id", "transport_address", "host", "ip",
              "node", "node_id", "worker_node", "planning_worker_node", "planning_worker_nodes",
              "worker_nodes", "deploy_to_all_nodes", "current_worker_node_count", "planning_worker_node_count"}
_ID_KEYS = {"_id", "id", "index_uuid", "uuid", "model_id", "task_id", "connector_id", "model_group_id",
            "memory_id", "agent_id", "_index_uuid", "resource.id"}
# point-in-time and scroll ids are opaque (base64 of shard contexts on OpenSearch): any string is an id
_OPAQUE_ID_KEYS = {"_scroll_id", "scroll_id", "pit_id"}
# 405 "allowed: [PUT, GET, HEAD, DELETE]": OpenSearch prints a Java HashSet, whose order changes between runs
_ALLOWED = re.compile(r"(allowed: \[)([^\]]*)(\])")


def _times(value: Any) -> Any:
    """Every number inside (``phase_took``'s per-phase timings) becomes ``<time>``."""
    if isinstance(value, dict):
        return {k: _times(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return TIME
    return value


def _looks_generated(token: str) -> bool:
    if len(token) == 36 and token.count("-") == 4:
        return True
    has_lower = any(c.islower() for c in token)
    has_other = any(c.isupper() or c.isdigit() for c in token)
    return has_lower and has_other


def normalise_text(text: str, known: Mapping[str, str] | None = None) -> str:
    """Generated ids inside a string (messages, paths) become ``<id>``; ``known`` values their names."""
    for value, name in (known or {}).items():
        if value and value in text:
            text = text.replace(value, name)
    text = _ALLOWED.sub(lambda m: m.group(1) + ", ".join(sorted(m.group(2).split(", "))) + m.group(3), text)
    return _GENERATED.sub(lambda m: ID if _looks_generated(m.group(1)) else m.group(1), text)


def normalise_path(path: str, known: Mapping[str, str] | None = None) -> str:
    return normalise_text(path, known)


def _is_hit_list(key: str, value: list[Any]) -> bool:
    return key == "hits" and all(isinstance(h, dict) and "_score" in h for h in value)


def _sort_ties(hits: list[Any]) -> list[Any]:
    """Equal scores come back in index order, which two clusters need not share: order ties by id (or,
    for generated ids, by content)."""
    import json

    def key(h: Any) -> tuple[float, str, str]:
        score = h.get("_score")
        s = -float(score) if isinstance(score, (int, float)) else 0.0
        doc_id = str(h.get("_id"))
        if normalise_text(doc_id) == ID:
            doc_id = ""
        source = normalise(h.get("_source"), root=False)  # generated ids and times inside must not decide
        return (round(s, 5), doc_id, json.dumps(source, sort_keys=True, default=str))
    if any("sort" in h for h in hits):  # an explicit sort: the order is the answer
        return hits
    return sorted(hits, key=key)


def normalise(value: Any, known: Mapping[str, str] | None = None, *, key: str = "", root: bool = True) -> Any:
    """A copy of a response body with what must differ replaced by placeholders.

    ``known`` maps values the caller already knows to stable names (e.g. each side's saved ids to
    ``<model>``), so references between requests still compare.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            kk = str(k)
            nk = normalise_text(kk, known)  # maps keyed by node or model id
            if kk in _VERSION_KEYS and isinstance(v, (str, bool)) and key == "version":
                out[nk] = VERSION
            elif root and kk in ("name", "cluster_name", "cluster_uuid") and isinstance(v, str):
                out[nk] = NAME
            elif kk in _NAME_KEYS:
                out[nk] = NAME
            elif kk == "name" and isinstance(v, str) and "component" in value:
                out[nk] = NAME  # a _cat/plugins?format=json row: name is the node's
            elif kk == "phase_took" and isinstance(v, dict):
                out[nk] = _times(v)
            elif _TIME_KEY.search(kk) and isinstance(v, (int, float, str)) and not isinstance(v, bool):
                out[nk] = TIME
            elif kk in ("nodes",) and isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()):
                # per-node maps are keyed by node id: keep the count and the per-node content
                out[nk] = {f"<node{i}>": normalise(x, known, key="node", root=False)
                           for i, x in enumerate(v.values())}
            elif kk in _OPAQUE_ID_KEYS and isinstance(v, str):
                out[nk] = (known or {}).get(v) or ID
            elif kk in _ID_KEYS and isinstance(v, str):
                out[nk] = (known or {}).get(v) or normalise_text(v, known)
            elif isinstance(v, list) and _is_hit_list(kk, v):
                out[nk] = [normalise(h, known, key="hit", root=False) for h in _sort_ties(v)]
            else:
                out[nk] = normalise(v, known, key=kk, root=False)
        return out
    if isinstance(value, list):
        return [normalise(v, known, key=key, root=False) for v in value]
    if isinstance(value, str):
        return normalise_text(value, known)
    return value


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-5)


def _short(value: Any, limit: int = 160) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str) if not isinstance(value, str) \
        else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compare(a: Any, b: Any, path: str = "", labels: tuple[str, str] = ("a", "b")) -> list[str]:
    """Every difference between two normalised values: ``path: <a> X, <b> Y``; [] when equal.

    Numbers compare with a relative tolerance of 1e-3 (scores computed in float32 on both sides);
    ``1`` and ``1.0`` are equal (JSON does not tell them apart everywhere).
    """
    la, lb = labels
    where = path or "(body)"
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if a is b or (type(a) is type(b) and a == b) else [f"{where}: {la} {_short(a)}, {lb} {_short(b)}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if _close(float(a), float(b)) else [f"{where}: {la} {_short(a)}, {lb} {_short(b)}"]
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in a:
            sub = f"{path}.{k}" if path else str(k)
            if k not in b:
                out.append(f"{sub}: only in {la} ({_short(a[k], 80)})")
            else:
                out.extend(compare(a[k], b[k], sub, labels))
        for k in b:
            if k not in a:
                sub = f"{path}.{k}" if path else str(k)
                out.append(f"{sub}: only in {lb} ({_short(b[k], 80)})")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out.extend(compare(x, y, f"{path}[{i}]", labels))
        if len(a) != len(b):
            out.append(f"{where}: {la} has {len(a)} items, {lb} {len(b)}")
        return out
    if a == b:
        return []
    return [f"{where}: {la} {_short(a)}, {lb} {_short(b)}"]

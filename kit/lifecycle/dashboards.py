"""``oskit dashboards export``: saved objects for OpenSearch Dashboards (NDJSON for its import API).

For every index of the project: an index pattern (title = the index name, which is the alias users
query) whose ``thumbnail`` field renders as an image (the URL formatter with a ``data:`` URI over the
raw base64) and whose vector fields are hidden (source filters, and left out of the field list); and
saved searches over it (all documents; documents with OCR text; tagged documents, where the fields
exist). Offline: made from the project's mappings only. Ids are stable (``oskit-<project>-<index>``), so
importing again with ``overwrite=true`` updates the objects in place.
"""

from __future__ import annotations

import json
from typing import Any

from kit.cluster.desired import build_desired
from kit.config.loader import Project

__all__ = ["export_ndjson", "saved_objects"]

# Dashboards' field types for OpenSearch field types (the index-pattern "fields" list).
_KIND = {"text": "string", "keyword": "string", "binary": "string", "integer": "number", "long": "number",
         "float": "number", "double": "number", "short": "number", "byte": "number", "half_float": "number",
         "date": "date", "boolean": "boolean", "ip": "ip", "geo_point": "geo_point", "object": "object"}
_META_FIELDS = [("_id", "string", "_id", True, True), ("_index", "string", "_index", True, True),
                ("_score", "number", None, False, False), ("_source", "_source", "_source", False, False)]


def _walk(props: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name, fdef in sorted((props or {}).items()):
        if not isinstance(fdef, dict):
            continue
        path = prefix + name
        if "properties" in fdef:
            out += _walk(fdef["properties"], path + ".")
            continue
        out.append((path, fdef))
        for sub, sdef in sorted((fdef.get("fields") or {}).items()):
            out.append((f"{path}.{sub}", dict(sdef, _parent=path)))
    return out


def _field(name: str, fdef: dict[str, Any]) -> dict[str, Any]:
    ftype = str(fdef.get("type") or "object")
    searchable = ftype not in ("binary", "object") and fdef.get("index", True) is not False
    aggregatable = ftype not in ("text", "binary", "object")
    out = {"name": name, "type": _KIND.get(ftype, "unknown"), "esTypes": [ftype], "count": 0, "scripted": False,
           "searchable": searchable, "aggregatable": aggregatable, "readFromDocValues": aggregatable}
    if fdef.get("_parent"):
        out["subType"] = {"multi": {"parent": fdef["_parent"]}}
    return out


def saved_objects(project: Project) -> list[dict[str, Any]]:
    """The saved objects, in import order (index patterns before the searches that reference them)."""
    desired = build_desired(project, offline=True)
    patterns: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []
    for index, idesired in sorted(desired.indices.items()):
        if idesired.kind != "index":
            continue
        fields = _walk((idesired.body.get("mappings") or {}).get("properties") or {})
        vectors = [n for n, d in fields if d.get("type") == "knn_vector"]
        shown = [(n, d) for n, d in fields if d.get("type") != "knn_vector"]
        pid = f"oskit-{project.name}-{index}"
        formats: dict[str, Any] = {}
        if any(n == "thumbnail" for n, _ in shown):
            formats["thumbnail"] = {"id": "url", "params": {"type": "img", "width": 128, "height": 128,
                                                            "urlTemplate": "data:image/jpeg;base64,{{rawValue}}",
                                                            "labelTemplate": "{{value}}"}}
        field_list = [{"name": n, "type": t, "esTypes": [e] if e else [], "count": 0, "scripted": False,
                       "searchable": s, "aggregatable": a, "readFromDocValues": a}
                      for n, t, e, s, a in _META_FIELDS] + [_field(n, d) for n, d in shown]
        patterns.append({
            "id": pid, "type": "index-pattern",
            "attributes": {"title": index, "fields": json.dumps(field_list),
                           "fieldFormatMap": json.dumps(formats),
                           "sourceFilters": json.dumps([{"value": v} for v in vectors] + [{"value": "image"}])},
            "references": [], "migrationVersion": {"index-pattern": "7.6.0"},
        })
        names = {n for n, _ in shown}
        columns = [c for c in ("thumbnail", "file_name", "tags", "ocr_text", "caption") if c in names]
        wanted = [("all", f"{index}: all documents", "")]
        if "ocr_text" in names:
            wanted.append(("ocr", f"{index}: images with text (OCR)", "ocr_text:*"))
        if "tags" in names:
            wanted.append(("tags", f"{index}: tagged images", "tags:*"))
        for key, title, query in wanted:
            source = {"query": {"query": query, "language": "kuery"}, "filter": [],
                      "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
            searches.append({
                "id": f"{pid}-{key}", "type": "search",
                "attributes": {"title": title, "description": f"made by oskit dashboards export ({project.name})",
                               "columns": columns or ["_source"], "sort": [], "hits": 0, "version": 1,
                               "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}},
                "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                                "id": pid}],
                "migrationVersion": {"search": "7.9.3"},
            })
    return patterns + searches


def export_ndjson(project: Project) -> str:
    """One saved object per line, as ``POST /api/saved_objects/_import`` reads it."""
    return "".join(json.dumps(o, sort_keys=True) + "\n" for o in saved_objects(project))

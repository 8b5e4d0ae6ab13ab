"""Sorting search hits: the ``sort`` spec, per-hit sort keys (what ``sort`` values show and how hits
order) and ``search_after`` positions on the same keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit.node.errors import ApiError, bad_request, parsing_error, unsupported

if TYPE_CHECKING:
    from kit.node.index_state import IndexState

__all__ = ["after_key", "parse_sort", "sort_key"]


def parse_sort(param: str | None, spec: Any) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    items: list[Any] = []
    if param:
        for part in param.split(","):
            f, _, o = part.partition(":")
            items.append({f: o or ("desc" if f == "_score" else "asc")})
    elif spec is not None:
        items = spec if isinstance(spec, list) else [spec]
    for it in items:
        if isinstance(it, str):
            out.append((it, "desc" if it == "_score" else "asc", {}))
        elif isinstance(it, dict) and len(it) == 1:
            f, v = next(iter(it.items()))
            if f == "_script":
                raise unsupported("_script sort (Painless scripts)")
            if isinstance(v, str):
                order, opts = v, {}
            elif isinstance(v, dict):
                opts = dict(v)
                order = opts.pop("order", "desc" if f == "_score" else "asc")
                for k in opts:
                    if k not in ("missing", "unmapped_type", "mode", "format", "numeric_type"):
                        raise unsupported(f"sort option [{k}]")
            else:
                raise parsing_error(f"[sort] malformed for field [{f}]")
            if order not in ("asc", "desc"):
                raise parsing_error(f"[sort] unknown order [{order}]")
            out.append((f, order, opts))
        else:
            raise parsing_error("[sort] malformed")
    return out


class _Rev:
    """Inverts ordering of a value for descending sorts."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: "_Rev") -> bool:
        return other.v < self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rev) and other.v == self.v


def sort_key(ix: IndexState, rid: int, score: float, spec: list[tuple[str, str, dict[str, Any]]]) -> tuple[list[Any], tuple[Any, ...]]:
    shown: list[Any] = []
    key: list[Any] = []
    for field, order, opts in spec:
        if field == "_score":
            shown.append(score)
            key.append((0, -score if order == "desc" else score))
            continue
        if field in ("_doc", "_shard_doc"):
            shown.append(rid)
            key.append((0, rid if order == "asc" else -rid))
            continue
        fd = ix.mapping.fields.get(field)
        if fd is None:
            if "unmapped_type" in opts:
                shown.append(None)
                key.append((1, 0))
                continue
            raise ApiError(400, "query_shard_exception", f"No mapping found for [{field}] in order to sort on",
                           index=ix.name, index_uuid=ix.uuid)
        if fd.type == "text":
            raise bad_request(
                f"Text fields are not optimised for operations that require per-document field data like "
                f"aggregations and sorting, so these operations are disabled by default. Please use a keyword field "
                f"instead. Alternatively, set fielddata=true on [{field}] in order to load field data by uninverting "
                f"the inverted index. Note that this can use significant memory.")
        vals = ix.exact(field).values.get(rid)
        if not vals:
            missing_first = opts.get("missing") == "_first"
            shown.append(None)
            key.append((-1 if missing_first else 1, 0))
            continue
        v = min(vals) if order == "asc" else max(vals)
        if fd.type == "date" or fd.type in ("long", "integer", "short", "byte"):
            v = int(v)
        elif fd.type == "boolean":
            v = 1 if v else 0
        shown.append(v)
        key.append((0, v if order == "asc" else _Rev(v)))
    return shown, tuple(key)


def after_key(targets: list[IndexState], spec: list[tuple[str, str, dict[str, Any]]], values: list[Any]) -> tuple[Any, ...]:
    """``search_after`` values as a sort key comparable with :func:`sort_key`'s (hits strictly after it)."""
    key: list[Any] = []
    for (field, order, opts), v in zip(spec, values):
        if field == "_score":
            f = float(v)
            key.append((0, -f if order == "desc" else f))
            continue
        if field in ("_doc", "_shard_doc"):
            i = int(v)
            key.append((0, i if order == "asc" else -i))
            continue
        if v is None:
            key.append((-1 if opts.get("missing") == "_first" else 1, 0))
            continue
        fd = next((ix.mapping.fields[field] for ix in targets if field in ix.mapping.fields), None)
        try:
            if fd is not None and (fd.type == "date" or fd.type in ("long", "integer", "short", "byte")):
                v = int(v)
            elif fd is not None and fd.type in ("float", "double", "half_float", "scaled_float", "unsigned_long"):
                v = float(v)
            elif fd is not None and fd.type == "boolean":
                v = 1 if v in (True, "true", 1) else 0
        except (TypeError, ValueError):
            raise bad_request(f"Failed to parse search_after value [{v}] for field [{field}]") from None
        key.append((0, v if order == "asc" else _Rev(v)))
    return tuple(key)

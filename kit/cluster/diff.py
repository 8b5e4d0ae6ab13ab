"""Compare desired and live state as normalised JSON, never as text.

Zero false drift: server defaults, key order, number/boolean spellings ("true" vs true, 1 vs 1.0) and
fields the server adds are normalised away. A difference is a :class:`FieldDiff`; whether it can be
applied in place (``update``) or needs ``replace`` / ``reindex`` is decided by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["FieldDiff", "compare_exact", "compare_mappings", "compare_settings", "scalar", "STATIC_INDEX_SETTINGS"]

# Index settings that cannot change on an open index (a change means reindex).
STATIC_INDEX_SETTINGS = ("index.number_of_shards", "index.knn", "index.codec", "index.number_of_routing_shards",
                         "index.analysis", "index.similarity", "index.sort")


@dataclass(frozen=True)
class FieldDiff:
    path: str
    live: Any
    desired: Any
    in_place: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "live": self.live, "desired": self.desired, "in_place": self.in_place}


_MISSING = "<absent>"


def scalar(value: Any) -> Any:
    """One spelling per scalar: booleans and numbers as the strings the server stores in settings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return None
    return str(value)


def _norm(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return scalar(value)


def compare_exact(desired: Any, live: Any, path: str = "") -> list[FieldDiff]:
    """Every difference between two JSON values (order of mapping keys ignored, list order kept)."""
    return _diff(_norm(desired), _norm(live), path)


def _diff(d: Any, l: Any, path: str) -> list[FieldDiff]:
    if isinstance(d, dict) and isinstance(l, dict):
        out: list[FieldDiff] = []
        for k in sorted(set(d) | set(l)):
            sub = f"{path}.{k}" if path else k
            if k not in l:
                out.append(FieldDiff(sub, _MISSING, d[k]))
            elif k not in d:
                out.append(FieldDiff(sub, l[k], _MISSING))
            else:
                out.extend(_diff(d[k], l[k], sub))
        return out
    if isinstance(d, list) and isinstance(l, list) and len(d) == len(l):
        out = []
        for i, (a, b) in enumerate(zip(d, l)):
            out.extend(_diff(a, b, f"{path}[{i}]"))
        return out
    return [] if d == l else [FieldDiff(path or ".", l, d)]


def compare_settings(desired: Mapping[str, Any], live: Mapping[str, Any], *, static: tuple[str, ...] = ()) -> list[FieldDiff]:
    """Only the keys the project sets; live-only keys are server defaults or someone else's."""
    out = []
    for key in sorted(desired):
        want = _norm(desired[key])
        have = _norm(live.get(key)) if key in live else _MISSING
        if isinstance(want, list) and isinstance(have, str) and have != _MISSING:
            have = [have]  # a one-element list setting may be rendered as a scalar
        if want != have:
            out.append(FieldDiff(key, have, want, in_place=not any(key == s or key.startswith(s + ".")
                                                                 for s in static)))
    return out


# ------------------------------------------------------------------------------------ mappings

_KNN_DEFAULTS = {"data_type": "float", "mode": "in_memory", "compression_level": "1x"}
_FIELD_DEFAULTS: dict[str, dict[str, str]] = {
    "*": {"index": "true", "store": "false", "doc_values": "true"},
    "text": {"norms": "true", "analyzer": "default", "search_analyzer": "default"},
    "keyword": {"ignore_above": "2147483647", "norms": "false"},
    "knn_vector": _KNN_DEFAULTS,
}


def _normalize_field(definition: Mapping[str, Any], version: tuple[int, int, int]) -> dict[str, Any]:
    d = _norm(dict(definition))
    ftype = d.get("type")
    if ftype is None and "properties" in d:
        ftype = "object"
    if ftype == "object":
        d.pop("type", None)
    if ftype == "knn_vector":
        method = dict(d.get("method") or {})
        space = d.pop("space_type", None) or method.pop("space_type", None) or "l2"
        d["space_type"] = space
        if method:
            method.setdefault("engine", "faiss" if version >= (2, 18, 0) else "nmslib")
            params = dict(method.get("parameters") or {})
            params.setdefault("m", "16")
            params.setdefault("ef_construction", "100")
            method["parameters"] = params
            d["method"] = method
    return d


def compare_mappings(desired: Mapping[str, Any], live: Mapping[str, Any],
                     version: tuple[int, int, int] = (3, 0, 0), path: str = "mappings") -> list[FieldDiff]:
    """Desired fields against live ones. New fields are in-place updates; changed fields need a reindex.

    Fields only the live index has (dynamic mapping, e.g. under ``metadata``) are not drift.
    """
    out: list[FieldDiff] = []
    for key in sorted(set(desired) - {"properties"}):
        if key == "_meta":
            # only the keys the project writes: others (e.g. the similar-photo calibration that
            # `oskit eval --calibrate-bands` stores) belong to the live index, not to drift
            want = desired[key] if isinstance(desired[key], Mapping) else {}
            have = live.get(key) if isinstance(live.get(key), Mapping) else {}
            out.extend(FieldDiff(f.path, f.live, f.desired, True)
                       for f in compare_exact(want, {k: v for k, v in have.items() if k in want}, f"{path}._meta"))
        elif key == "dynamic":
            if scalar(desired[key]) != scalar(live.get(key, "true")):
                out.append(FieldDiff(f"{path}.dynamic", scalar(live.get(key, "true")), scalar(desired[key]), True))
        else:
            out.extend(FieldDiff(f.path, f.live, f.desired, False)
                       for f in compare_exact(desired[key], live.get(key, _MISSING), f"{path}.{key}"))
    dprops = desired.get("properties") or {}
    lprops = live.get("properties") or {}
    for name in sorted(dprops):
        fpath = f"{path}.properties.{name}"
        if name not in lprops:
            out.append(FieldDiff(fpath, _MISSING, _norm(dprops[name]), True))
            continue
        dn = _normalize_field(dprops[name], version)
        ln = _normalize_field(lprops[name], version)
        ftype = dn.get("type", "object")
        for key in sorted(set(dn) | set(ln)):
            if key in ("properties", "fields"):
                sub_d = {"properties": dn.get(key) or {}}
                sub_l = {"properties": ln.get(key) or {}}
                out.extend(compare_mappings(sub_d, sub_l, version, f"{fpath}" + (".fields" if key == "fields" else ""))
                           if key == "fields" else compare_mappings(sub_d, sub_l, version, fpath))
                continue
            if key not in dn:
                default = _FIELD_DEFAULTS.get(ftype, {}).get(key, _FIELD_DEFAULTS["*"].get(key))
                if default is not None and ln[key] == default:
                    continue
                if key in ("dynamic",) and ln[key] == "true":
                    continue
                out.append(FieldDiff(f"{fpath}.{key}", ln[key], _MISSING, False))
            elif key not in ln:
                default = _FIELD_DEFAULTS.get(ftype, {}).get(key, _FIELD_DEFAULTS["*"].get(key))
                if default is not None and dn[key] == default:
                    continue
                out.append(FieldDiff(f"{fpath}.{key}", _MISSING, dn[key], False))
            elif key == "method":
                out.extend(FieldDiff(f.path, f.live, f.desired, False)
                           for f in _method_diff(dn[key], ln[key], f"{fpath}.method"))
            elif dn[key] != ln[key]:
                out.extend(FieldDiff(f.path, f.live, f.desired, False)
                           for f in _diff(dn[key], ln[key], f"{fpath}.{key}"))
    return out


def _method_diff(d: Mapping[str, Any], l: Mapping[str, Any], path: str) -> list[FieldDiff]:
    out = []
    for key in sorted(set(d) | set(l)):
        if key == "parameters":
            dp, lp = d.get(key) or {}, l.get(key) or {}
            for pk in sorted(set(dp) | set(lp)):
                if pk not in dp:
                    continue  # server-side default parameter (e.g. encoder, ef_search)
                if dp.get(pk) != lp.get(pk, _MISSING):
                    out.append(FieldDiff(f"{path}.parameters.{pk}", lp.get(pk, _MISSING), dp[pk], False))
        elif key not in d:
            continue
        elif d[key] != l.get(key, _MISSING):
            out.append(FieldDiff(f"{path}.{key}", l.get(key, _MISSING), d[key], False))
    return out

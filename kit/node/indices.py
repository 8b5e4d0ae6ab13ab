"""The engine's index side: resolving index expressions (names, wildcards, aliases), index admin
(create, delete, mappings, settings, aliases), composable index templates and legacy ``_template``s."""

from __future__ import annotations

import copy
import fnmatch
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kit.node.contexts import SearchContexts
from kit.node.errors import (
    ApiError,
    bad_request,
    body_required,
    failed_to_parse_mapping,
    index_already_exists,
    not_found_index,
    parsing_error,
    unsupported,
)
from kit.node.index_state import (
    INDEX_DEFAULTS,
    STATIC_SETTINGS,
    IndexState,
    new_id,
    normalise_index_settings,
    version_id,
)
from kit.node.mapping import Mapping
from kit.node.query import parse_query
from kit.node.settings import ClusterSettings, flatten, nest, stringify
from kit.node.storage import Storage

__all__ = ["Indices", "mapper_parsing_root"]


class Indices:
    """Index resolution and admin; the base of :class:`kit.node.engine.Engine`, which sets the state below."""

    data_dir: Path
    version: str
    store: Storage
    lock: threading.RLock
    settings: ClusterSettings
    indices: dict[str, IndexState]
    ml: Any
    ingest: Any
    search_pipelines: Any
    search_contexts: SearchContexts
    node_id: str

    def _predict_fn(self) -> Callable[[str, dict[str, Any]], dict[str, Any]] | None:
        """What ``neural`` queries call to embed their text (None without ML Commons)."""
        if self.ml is None:
            return None
        ml = self.ml
        return lambda model_id, body: ml.predict(model_id, body)

    # ------------------------------------------------------------------ index resolution
    def index(self, name: str) -> IndexState:
        """The index (or the single index behind an alias); index_not_found_exception otherwise."""
        ix = self.indices.get(name)
        if ix is None:
            targets = [i for i in self.indices.values() if name in i.aliases]
            if len(targets) == 1:
                ix = targets[0]
            elif len(targets) > 1:
                writes = [i for i in targets if i.aliases[name].get("is_write_index")]
                if len(writes) == 1:
                    ix = writes[0]
                else:
                    raise bad_request(f"no write index is defined for alias [{name}]. The write index may be "
                                      f"explicitly disabled using is_write_index=false or the alias points to "
                                      f"multiple indices without one being designated as a write index")
        if ix is None:
            raise not_found_index(name)
        ix.ensure_loaded()
        return ix

    def index_exists(self, name: str) -> bool:
        return name in self.indices or any(name in i.aliases for i in self.indices.values())

    def alias_filters(self, expr: str | None, targets: list[IndexState]) -> dict[str, list[dict[str, Any]]]:
        """Per index reached only through filtered aliases: those aliases' filters (OR-ed by the caller)."""
        parts = [p.strip() for p in (expr or "_all").split(",") if p.strip()]
        out: dict[str, list[dict[str, Any]]] = {}
        for ix in targets:
            direct = any(p in ("_all", "*") or p == ix.name or (any(c in p for c in "*?") and
                                                                 fnmatch.fnmatchcase(ix.name, p)) for p in parts)
            if direct:
                continue
            filters = []
            for p in parts:
                spec = ix.aliases.get(p)
                if spec is None:
                    continue
                if not spec.get("filter"):
                    filters = []
                    break
                filters.append(spec["filter"])
            if filters:
                out[ix.name] = filters
        return out

    def resolve(self, expr: str | None, *, ignore_unavailable: bool = False, allow_no_indices: bool = True,
                expand_hidden: bool = False) -> list[IndexState]:
        """Comma lists, wildcards, aliases, ``_all``, ``-exclusions`` → indices (sorted, unique)."""
        parts = [p.strip() for p in (expr or "_all").split(",") if p.strip()]
        chosen: dict[str, IndexState] = {}
        for part in parts:
            exclude = part.startswith("-") and len(chosen) > 0
            pat = part[1:] if exclude else part
            if pat in ("_all", "*"):
                matched = [i for i in self.indices.values() if expand_hidden or not i.hidden]
            elif any(c in pat for c in "*?"):
                matched = [i for i in self.indices.values()
                           if (fnmatch.fnmatchcase(i.name, pat) and (expand_hidden or not i.hidden or pat.startswith(".")))
                           or any(fnmatch.fnmatchcase(a, pat) for a in i.aliases)]
            else:
                matched = [i for i in self.indices.values() if i.name == pat or pat in i.aliases]
                if not matched and not exclude:
                    if ignore_unavailable:
                        continue
                    raise not_found_index(pat)
            for i in matched:
                if exclude:
                    chosen.pop(i.name, None)
                else:
                    chosen[i.name] = i
        if not chosen and not allow_no_indices:
            raise not_found_index(expr or "_all")
        out = [chosen[k] for k in sorted(chosen)]
        for ix in out:
            ix.ensure_loaded()
        return out

    # ------------------------------------------------------------------ index admin
    def create_index(self, name: str, body: dict[str, Any] | None = None, *, system: bool = False) -> dict[str, Any]:
        body = body or {}
        if not isinstance(body, dict):
            raise parsing_error("request body must be an object")
        _check_index_name(name, system=system)
        for key in body:
            if key not in ("settings", "mappings", "aliases"):
                raise parsing_error(f"unknown key [{key}] for create index")
        with self.lock:
            if name in self.indices:
                raise index_already_exists(name, self.indices[name].uuid)
            if any(name in i.aliases for i in self.indices.values()):
                raise ApiError(400, "invalid_index_name_exception",
                               f"Invalid index name [{name}], an alias with the same name already exists",
                               index=name, index_uuid="_na_")
            settings_in = dict(body.get("settings") or {})
            mappings_in = body.get("mappings") or {}
            aliases_in = dict(body.get("aliases") or {})
            tmpl = self._matching_template(name)
            if tmpl is not None:
                t = tmpl.get("template") or {}
                settings_in = {**flatten(t.get("settings") or {}), **flatten(settings_in)}
                mappings_in = _merge_mappings(t.get("mappings") or {}, mappings_in)
                aliases_in = {**(t.get("aliases") or {}), **aliases_in}
            else:  # no composable template matched: the legacy ones (MetadataCreateIndexService, V1 path)
                hidden = str(flatten(settings_in).get("index.hidden", flatten(settings_in).get("hidden"))).lower()
                settings_in, mappings_in, aliases_in = _apply_legacy_templates(
                    name, self._matching_legacy_templates(name, hidden=system or hidden == "true"),
                    settings_in, mappings_in, aliases_in)
            settings = {**INDEX_DEFAULTS, **{k: v for k, v in normalise_index_settings(settings_in).items()
                                             if v is not None}}
            if system:
                settings["index.hidden"] = "true"
            try:
                shards = int(settings["index.number_of_shards"])
            except ValueError:
                raise bad_request(f"Failed to parse value [{settings['index.number_of_shards']}] for setting "
                                  f"[index.number_of_shards]") from None
            if shards < 1:
                raise bad_request(f"Failed to parse value [{shards}] for setting [index.number_of_shards] must be >= 1")
            uid = new_id()[:22]
            settings.update({"index.uuid": uid, "index.creation_date": str(int(time.time() * 1000)),
                             "index.provided_name": name, "index.version.created": version_id(self.version)})
            meta = {"settings": settings, "mappings": mappings_in, "aliases": {}}
            try:
                ix = IndexState(self, name, uid, meta)  # validates the mapping
            except ApiError as exc:
                if exc.type == "mapper_parsing_exception" and "oskit embedded node" not in exc.reason:
                    raise failed_to_parse_mapping(exc) from None
                raise
            for alias, spec in aliases_in.items():
                ix.aliases[alias] = _alias_spec(spec)
            ix.loaded = True
            ix.save()
            self.indices[name] = ix
        return {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def delete_index(self, expr: str, *, ignore_unavailable: bool = False) -> dict[str, Any]:
        with self.lock:
            targets = []
            for part in expr.split(","):
                if any(c in part for c in "*?") or part == "_all":
                    targets.extend(self.resolve(part, expand_hidden=False))
                elif part in self.indices:
                    targets.append(self.indices[part])
                elif ignore_unavailable:
                    continue
                else:
                    if any(part in i.aliases for i in self.indices.values()):
                        raise bad_request(f"The provided expression [{part}] matches an alias, specify the "
                                          f"corresponding concrete indices instead.")
                    raise not_found_index(part)
            for ix in targets:
                self.store.delete_index(ix.name, ix.uuid)
                for vf in ix._vectors.values():
                    vf.close(save=False)
                    vf.discard_snapshot()
                self.indices.pop(ix.name, None)
        return {"acknowledged": True}

    def ensure_system_index(self, name: str, mappings: dict[str, Any]) -> IndexState:
        """Create a hidden system index (``.plugins-ml-*``) or add missing fields to its mapping."""
        with self.lock:
            if name not in self.indices:
                # ML Commons' system indices: one shard, auto_expand_replicas 0-1 (no replica on one node)
                self.create_index(name, {"mappings": mappings, "settings": {
                    "index.auto_expand_replicas": "0-1", "index.number_of_replicas": "0"}}, system=True)
            else:
                ix = self.indices[name]
                props = (mappings or {}).get("properties") or {}
                missing = {k: v for k, v in props.items() if k not in ix.mapping.properties}
                if missing:
                    ix.mapping.merge(missing)
                    ix.save()
            return self.index(name)

    def get_index(self, expr: str, *, flat: bool = False, include_defaults: bool = False,
                  ignore_unavailable: bool = False) -> dict[str, Any]:
        out = {}
        for ix in self.resolve(expr, ignore_unavailable=ignore_unavailable, expand_hidden=True
                               if not any(c in expr for c in "*?") and expr != "_all" else False):
            out[ix.name] = {"aliases": ix.aliases, "mappings": ix.mapping.render(),
                            "settings": self.render_index_settings(ix, flat=flat, include_defaults=include_defaults)}
        return out

    def render_index_settings(self, ix: IndexState, *, flat: bool = False,
                              include_defaults: bool = False) -> dict[str, Any]:
        s = dict(ix.settings)
        if flat:
            return dict(sorted(s.items()))
        return nest(s)

    def put_mapping(self, expr: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        for key in body:
            if key not in ("properties", "dynamic", "_source", "_meta", "date_detection", "numeric_detection",
                           "dynamic_templates", "_routing"):
                raise mapper_parsing_root(key, body[key])
        with self.lock:
            targets = self.resolve(expr, expand_hidden=True)
            for ix in targets:
                # validate on a copy first so a conflict leaves nothing half-applied
                trial = Mapping(ix.mapping.to_dict(), version=self.version, knn_enabled=ix.knn_enabled)
                trial.merge(body.get("properties") or {}, dynamic=body.get("dynamic"))
            for ix in targets:
                ix.mapping.merge(body.get("properties") or {}, dynamic=body.get("dynamic"))
                if "_meta" in body:
                    ix.mapping.meta = body["_meta"]
                ix.save()
        return {"acknowledged": True}

    def put_settings(self, expr: str, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise body_required()
        raw = body.get("settings", body) if isinstance(body.get("settings"), dict) else body
        flat = normalise_index_settings(raw)
        with self.lock:
            targets = self.resolve(expr, expand_hidden=True)
            for key in flat:
                if key in STATIC_SETTINGS:
                    names = ", ".join(f"{ix.name}/{ix.uuid}" for ix in targets)
                    raise bad_request(f"Can't update non dynamic settings [[{key}]] for open indices [[{names}]]")
            for ix in targets:
                for key, value in flat.items():
                    if value is None or value in ("_none",) and key.endswith("pipeline") and False:
                        ix.settings.pop(key, None)
                    else:
                        ix.settings[key] = value
                if "index.knn.algo_param.ef_search" in flat:
                    for vf in ix._vectors.values():
                        vf.ef_search = int(flat["index.knn.algo_param.ef_search"] or 100)
                ix.save()
        return {"acknowledged": True}

    def update_aliases(self, actions: list[dict[str, Any]]) -> dict[str, Any]:
        if not isinstance(actions, list) or not actions:
            raise ApiError(400, "action_request_validation_exception",
                           "Validation Failed: 1: One or more aliases actions must be specified;")
        with self.lock:
            plan: list[tuple[str, IndexState, str, dict[str, Any]]] = []
            # As MetadataIndexAliasesService: indices removed by remove_index go first, so one request can
            # replace an index by an alias of the same name.
            removed = {ix.name for act in actions if isinstance(act, dict) and len(act) == 1
                       and "remove_index" in act and isinstance(act["remove_index"], dict)
                       for iexpr in (act["remove_index"].get("indices")
                                     or ([act["remove_index"]["index"]] if "index" in act["remove_index"] else []))
                       for ix in self.resolve(iexpr, allow_no_indices=True)}
            for act in actions:
                if not isinstance(act, dict) or len(act) != 1:
                    raise parsing_error("[aliases] failed to parse field [actions]")
                kind, spec = next(iter(act.items()))
                if kind not in ("add", "remove", "remove_index"):
                    raise parsing_error(f"[aliases] unknown field [{kind}]")
                idx_names = spec.get("indices") or ([spec["index"]] if "index" in spec else [])
                al_names = spec.get("aliases") or ([spec["alias"]] if "alias" in spec else [])
                if not idx_names:
                    raise ApiError(400, "action_request_validation_exception",
                                   "Validation Failed: 1: One of [index] or [indices] is required;")
                for iexpr in idx_names:
                    for ix in self.resolve(iexpr, allow_no_indices=False):
                        if kind == "remove_index":
                            plan.append((kind, ix, "", {}))
                            continue
                        if not al_names:
                            raise ApiError(400, "action_request_validation_exception",
                                           "Validation Failed: 1: One of [alias] or [aliases] is required;")
                        for al in al_names:
                            if kind == "remove" and not any(fnmatch.fnmatchcase(a, al) for a in ix.aliases):
                                if spec.get("must_exist") is not False:
                                    raise ApiError(404, "aliases_not_found_exception", f"aliases [{al}] missing",
                                                   **{"resource.type": "aliases", "resource.id": al})
                            if kind == "add" and al in self.indices and al not in removed:
                                raise ApiError(400, "invalid_alias_name_exception",
                                               f"Invalid alias name [{al}]: an index or data stream exists with the "
                                               f"same name as the alias", index=al)
                            extra = {k: v for k, v in spec.items() if k in ("filter", "routing", "is_write_index",
                                                                            "index_routing", "search_routing",
                                                                            "is_hidden")}
                            plan.append((kind, ix, al, extra))
            plan.sort(key=lambda p: p[0] != "remove_index")
            for kind, ix, al, extra in plan:
                if kind == "add":
                    ix.aliases[al] = _alias_spec(extra)
                elif kind == "remove":
                    for a in [a for a in ix.aliases if fnmatch.fnmatchcase(a, al)]:
                        del ix.aliases[a]
                elif kind == "remove_index":
                    self.store.delete_index(ix.name, ix.uuid)
                    for vf in ix._vectors.values():
                        vf.close(save=False)
                        vf.discard_snapshot()
                    self.indices.pop(ix.name, None)
                    continue
                ix.save()
        return {"acknowledged": True}

    # ------------------------------------------------------------------ templates
    def _matching_template(self, name: str) -> dict[str, Any] | None:
        best: tuple[int, dict[str, Any]] | None = None
        for tname, t in self.store.kv_list("index_template").items():
            if any(fnmatch.fnmatchcase(name, p) for p in t.get("index_patterns", [])):
                prio = int(t.get("priority", 0) or 0)
                if best is None or prio > best[0]:
                    best = (prio, t)
        return None if best is None else best[1]

    def put_template(self, name: str, body: dict[str, Any], *, create: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict) or "index_patterns" not in body:
            raise ApiError(400, "action_request_validation_exception",
                           "Validation Failed: 1: index patterns are missing;")
        for key in body:
            if key not in ("index_patterns", "template", "priority", "version", "_meta", "composed_of", "data_stream"):
                raise parsing_error(f"[index_template] unknown field [{key}]")
        if body.get("composed_of"):
            raise unsupported("index templates composed_of component templates")
        if body.get("data_stream") is not None:
            raise unsupported("data streams")
        pats = body["index_patterns"]
        body = dict(body, index_patterns=[pats] if isinstance(pats, str) else list(pats))
        t = body.get("template") or {}
        # validate the template's mapping and settings now, as OpenSearch does
        Mapping(t.get("mappings") or {}, version=self.version,
                knn_enabled=str(flatten(t.get("settings") or {}).get("index.knn",
                                flatten(t.get("settings") or {}).get("knn", "false"))).lower() == "true")
        normalise_index_settings(t.get("settings") or {})
        with self.lock:
            existing = self.store.kv_get("index_template", name)
            if create and existing is not None:
                raise bad_request(f"index template [{name}] already exists")
            for other, ot in self.store.kv_list("index_template").items():
                if other != name and int(ot.get("priority", 0) or 0) == int(body.get("priority", 0) or 0):
                    overlap = [p for p in body["index_patterns"] if p in ot.get("index_patterns", [])]
                    if overlap:
                        raise bad_request(
                            f"index template [{name}] has index patterns {body['index_patterns']} matching patterns "
                            f"from existing templates [{other}] with patterns ({other} => {ot['index_patterns']}) "
                            f"that have the same priority [{int(body.get('priority', 0) or 0)}], multiple index "
                            f"templates may not match during index creation, please use a different priority")
            self.store.kv_put("index_template", name, body)
        return {"acknowledged": True}

    def get_templates(self, name: str | None = None) -> dict[str, Any]:
        all_t = self.store.kv_list("index_template")
        if name is None or name in ("*", "_all"):
            sel = all_t
        else:
            sel = {k: v for k, v in all_t.items() if any(fnmatch.fnmatchcase(k, p) for p in name.split(","))}
            if not sel and not any(c in name for c in "*?"):
                raise ApiError(404, "resource_not_found_exception", f"index template matching [{name}] not found")
        return {"index_templates": [{"name": k, "index_template": _render_template(v)} for k, v in sel.items()]}

    def delete_template(self, name: str) -> dict[str, Any]:
        with self.lock:
            if not self.store.kv_delete("index_template", name):
                raise ApiError(404, "index_template_missing_exception", f"index_template [{name}] missing")
        return {"acknowledged": True}

    # ------------------------------------------------------------------ legacy templates (_template)
    def _matching_legacy_templates(self, name: str, *, hidden: bool = False) -> list[dict[str, Any]]:
        """MetadataIndexTemplateService.findV1Templates: every match, highest ``order`` first; a hidden
        index skips templates with a global ``*`` pattern."""
        found = []
        for t in self.store.kv_list("legacy_template").values():
            pats = t.get("index_patterns", [])
            if hidden and "*" in pats:
                continue
            if any(fnmatch.fnmatchcase(name, p) for p in pats):
                found.append(t)
        return sorted(found, key=lambda t: -int(t.get("order", 0)))

    def put_legacy_template(self, name: str, body: dict[str, Any], *, create: bool = False,
                            order: Any = None) -> dict[str, Any]:
        """``PUT /_template/{name}`` (PutIndexTemplateRequest.source, then the service's validation)."""
        if not isinstance(body, dict):
            raise body_required()
        errors = [why for bad, why in ((" " in name, "name must not contain a space"),
                                       ("," in name, "name must not contain a ','"),
                                       ("#" in name, "name must not contain a '#'"),
                                       (name.startswith("_"), "name must not start with '_'"),
                                       (name.lower() != name, "name must be lower cased")) if bad]
        t: dict[str, Any] = {"order": 0, "index_patterns": None, "settings": {}, "mappings": {}, "aliases": {}}
        for key, value in body.items():
            if key in ("index_patterns", "template"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                    raise bad_request("Malformed [index_patterns] value, should be a list of strings")
                t["index_patterns"] = list(value)
            elif key in ("order", "version"):
                try:
                    t[key] = None if value is None else int(value)
                except (TypeError, ValueError):
                    raise bad_request(f"Failed to parse value [{value}] for [{key}]") from None
            elif key in ("settings", "mappings", "aliases"):
                if not isinstance(value, dict):
                    raise ApiError(400, "parse_exception", f"key [{key}] must be an object")
                t[key] = value
            else:
                raise ApiError(400, "parse_exception", f"unknown key [{key}] in the template ")
        if order is not None:
            t["order"] = int(order)
        if not t["index_patterns"]:
            raise ApiError(400, "action_request_validation_exception",
                           "Validation Failed: 1: index patterns are missing;")
        if errors:
            cause = "".join(f"{i}: {e};" for i, e in enumerate(errors, 1))
            raise ApiError(400, "invalid_index_template_exception",
                           f"index_template [{name}] invalid, cause [Validation Failed: {cause}]")
        mappings = t["mappings"]
        if len(mappings) == 1 and next(iter(mappings)) not in _MAPPING_ROOT_KEYS and \
                isinstance(next(iter(mappings.values())), dict):
            raise bad_request("The mapping definition cannot be nested under a type")
        settings = {k: v for k, v in normalise_index_settings(t["settings"]).items() if v is not None}
        # validated now, as OpenSearch does (mapping, settings, alias filters)
        Mapping(mappings, version=self.version, knn_enabled=str(settings.get("index.knn", "false")).lower() == "true")
        t["settings"] = settings
        t["aliases"] = {a: _alias_spec(spec) for a, spec in t["aliases"].items()}
        stored = {"order": t["order"]}
        if t.get("version") is not None:
            stored["version"] = t["version"]
        stored.update({k: t[k] for k in ("index_patterns", "settings", "mappings", "aliases")})
        with self.lock:
            if create and self.store.kv_get("legacy_template", name) is not None:
                raise bad_request(f"index_template [{name}] already exists")
            self.store.kv_put("legacy_template", name, stored)
        return {"acknowledged": True}

    def get_legacy_templates(self, names: str | None = None, *, flat: bool = False) -> tuple[dict[str, Any], bool]:
        """``GET /_template[/{name}]``: the templates and whether to answer 200 (RestGetIndexTemplateAction:
        404 with ``{}`` when names were given and none matched)."""
        all_t = self.store.kv_list("legacy_template")
        if names is None or names in ("*", "_all"):
            sel = all_t
        else:
            pats = names.split(",")
            sel = {k: v for k, v in all_t.items() if any(fnmatch.fnmatchcase(k, p) for p in pats)}
        out = {}
        for k in sorted(sel):
            v = dict(sel[k])
            v["settings"] = dict(sorted(v["settings"].items())) if flat else nest(v["settings"])
            out[k] = v
        return out, bool(out) or names is None

    def delete_legacy_template(self, name: str) -> dict[str, Any]:
        with self.lock:
            found = [k for k in self.store.kv_list("legacy_template") if fnmatch.fnmatchcase(k, name)]
            if not found:
                raise ApiError(404, "index_template_missing_exception", f"index_template [{name}] missing")
            for k in found:
                self.store.kv_delete("legacy_template", k)
        return {"acknowledged": True}


_MAPPING_ROOT_KEYS = {"properties", "dynamic", "dynamic_templates", "_source", "_meta", "_routing",
                      "date_detection", "numeric_detection", "dynamic_date_formats", "_field_names", "enabled"}


def _apply_legacy_templates(index: str, templates: list[dict[str, Any]], settings_in: dict[str, Any],
                            mappings_in: dict[str, Any], aliases_in: dict[str, Any]
                            ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Legacy templates (highest ``order`` first) under a create-index request, as OpenSearch combines
    them: settings lowest order first so higher orders win and the request wins last
    (MetadataIndexTemplateService.resolveSettings); mappings merged in as defaults the request and higher
    orders keep (XContentHelper.mergeDefaults); aliases the request does not name, ``{index}`` replaced."""
    if not templates:
        return settings_in, mappings_in, aliases_in
    settings: dict[str, Any] = {}
    for t in reversed(templates):
        settings.update(t.get("settings") or {})
    settings.update(flatten(normalise_index_settings(settings_in)))
    mappings = copy.deepcopy(mappings_in or {})
    for t in templates:
        _merge_defaults(mappings, t.get("mappings") or {})
    aliases = dict(aliases_in)
    for t in templates:
        for alias, spec in (t.get("aliases") or {}).items():
            aliases.setdefault(alias.replace("{index}", index), spec)
    return settings, mappings, aliases


def _merge_defaults(content: dict[str, Any], defaults: dict[str, Any]) -> None:
    for k, v in defaults.items():
        if k not in content:
            content[k] = copy.deepcopy(v)
        elif isinstance(content[k], dict) and isinstance(v, dict):
            _merge_defaults(content[k], v)


def mapper_parsing_root(key: str, value: Any) -> ApiError:
    return ApiError(400, "mapper_parsing_exception",
                    f"Root mapping definition has unsupported parameters:  [{key} : {value}]")


def _check_index_name(name: str, *, system: bool = False) -> None:
    def bad(why: str) -> ApiError:
        return ApiError(400, "invalid_index_name_exception", f"Invalid index name [{name}], {why}",
                        index=name, index_uuid="_na_")

    if not name:
        raise bad("must not be empty")
    if name != name.lower():
        raise bad("must be lowercase")
    if name.startswith(("_", "-", "+")):
        raise bad("must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise bad("must not be '.' or '..'")
    for ch in '\\/*?"<>| ,#:':
        if ch in name:
            raise bad('must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]')
    if len(name.encode()) > 255:
        raise bad("index name is too long, (" + str(len(name.encode())) + " > 255)")


def _alias_spec(spec: Any) -> dict[str, Any]:
    spec = dict(spec or {})
    out: dict[str, Any] = {}
    if spec.get("filter"):
        parse_query(spec["filter"])  # validate now, as OpenSearch does
        out["filter"] = spec["filter"]
    for k in ("index_routing", "search_routing", "is_write_index", "is_hidden"):
        if k in spec:
            out[k] = spec[k]
    if "routing" in spec:
        out.setdefault("index_routing", str(spec["routing"]))
        out.setdefault("search_routing", str(spec["routing"]))
    return out


def _merge_mappings(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if k == "properties":
            out.setdefault("properties", {}).update(copy.deepcopy(v))
        else:
            out[k] = copy.deepcopy(v)
    return out


def _render_template(t: dict[str, Any]) -> dict[str, Any]:
    """A composable template as ``GET _index_template`` shows it: settings as index settings (nested under
    ``index``, values as strings) and ``composed_of`` always there."""
    out: dict[str, Any] = {}
    for key, value in t.items():
        if key == "template" and isinstance(value, dict) and isinstance(value.get("settings"), dict):
            flat = {(k if k.startswith("index.") else "index." + k): stringify(v)
                    for k, v in flatten(value["settings"]).items()}
            value = {**value, "settings": nest(flat)}
        out[key] = value
        if key == "template" and "composed_of" not in t:
            out["composed_of"] = []
    if "composed_of" not in out:
        out["composed_of"] = []
    return out

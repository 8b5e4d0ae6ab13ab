"""The project as the cluster should hold it: request bodies, names, markers and fingerprints.

Everything the kit creates carries its project name (and, for ML resources, the model's logical name
and a content fingerprint) so the kit finds its own resources again and never touches others:

- model groups, ingest and search pipelines: ``description`` starts with ``(oskit:<project>)``;
- connectors and models: ``description`` starts with ``(oskit:<project>:<model>:<fingerprint>)``;
- indices and index templates: ``_meta.oskit = {project, fingerprint, description}``.

ML Commons 3.x takes only letters, digits, spaces and ``.,!?():@-_'/"`` in the descriptions of model
groups, connectors and models, hence parentheses. Earlier oskit wrote ``[oskit:…]``: that form is still
read, and a description that differs from the desired one only in the marker's form is in sync.

Pipelines name models by logical name; bodies hold the placeholder ``@model:<name>@`` until the
cluster's ``model_id`` is known (:func:`resolve_models`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from kit.config.envsubst import EnvResolver
from kit.config.loader import Project, knn_fields
from kit.config.schema import ModelSpec, PipelineSpec
from kit.errors import ConfigError

__all__ = [
    "CHUNK_SIZE",
    "Desired",
    "IndexDesired",
    "MODEL_PLACEHOLDER",
    "ModelDesired",
    "PROBE_IMAGE_B64",
    "build_desired",
    "canonical_json",
    "current_marker_form",
    "marker",
    "parse_marker",
    "resolve_models",
    "served_in",
    "served_model",
]

CHUNK_SIZE = 10_000_000  # ML Commons' upload_chunk limit (MLModelChunkUploader)
_MARK_BODY = r"oskit:(?P<project>[a-z0-9._-]+)(?::(?P<model>[a-z0-9._-]+):(?P<fp>[0-9a-f]{12}))?"
MARK_RE = re.compile(rf"^\({_MARK_BODY}\) ?")
OLD_MARK_RE = re.compile(rf"^\[{_MARK_BODY}\] ?")  # what earlier oskit wrote (2.x-only)
MODEL_PLACEHOLDER = re.compile(r"^@model:(?P<name>[a-z0-9._-]+)@$")
# A 32×32 grey PNG: the built-in probe image (``probe: {image: builtin:gray}``).
PROBE_IMAGE_B64 = ("iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAKUlEQVR4nO3NMQEAAAjDMED5pGMCvlRA00nqs3m9AwAAAAAAAAAAg"
                   "MMWvj0BwDVKG0sAAAAASUVORK5CYII=")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:12]


def marker(project: str, model: str | None = None, fp: str | None = None) -> str:
    return f"(oskit:{project}:{model}:{fp})" if model else f"(oskit:{project})"


def parse_marker(description: Any) -> tuple[str, str | None, str | None, str] | None:
    """``(project, model, fingerprint, rest of the description)`` or None when not ours."""
    if not isinstance(description, str):
        return None
    m = MARK_RE.match(description) or OLD_MARK_RE.match(description)
    if not m:
        return None
    return m.group("project"), m.group("model"), m.group("fp"), description[m.end():]


def current_marker_form(description: Any) -> Any:
    """``description`` with an old-form ``[oskit:…]`` marker rewritten as :func:`marker` writes it now,
    so that a resource provisioned by earlier oskit compares equal to the same resource today."""
    if not isinstance(description, str) or not OLD_MARK_RE.match(description):
        return description
    project, model, fp, rest = parse_marker(description)  # type: ignore[misc]
    return f"{marker(project, model, fp)} {rest}".rstrip()


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: str) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def served_model(project: Project, name: str) -> str | None:
    """What the model server loads for ``name``'s ``serve.open_clip`` (architecture + weights), e.g.
    ``ViT-B-32 vit-b-32.pt sha256:1f2e3d4c5b6a``; None for models the kit does not serve weights for.

    A remote model's ML Commons body does not change when the served weights do, so this is what
    tells plan that the model needs a redeploy and its vectors a reindex. A local checkpoint counts
    by content (retrained weights under the same file name are another model); a tag by its name."""
    spec = project.models[name]
    oc = spec.serve.open_clip if spec.serve is not None and spec.serve.kind == "clip" else None
    if oc is None:
        return None
    if not oc.pretrained:
        return f"{oc.model} random-weights"
    folder = (project.root / project.file_of("models", name)).parent
    path = (folder / oc.pretrained).expanduser()
    if path.is_file():
        return f"{oc.model} {path.name} sha256:{_file_sha256(str(path))[:12]}"
    return f"{oc.model} {oc.pretrained}"


_SERVES_RE = re.compile(r" \(serves (?P<served>[^()]*)\)$")


def served_in(description: Any) -> str | None:
    """The ``(serves …)`` suffix of a model description written by :func:`_model_desired`."""
    m = _SERVES_RE.search(description) if isinstance(description, str) else None
    return m.group("served") if m else None


@dataclass
class ModelDesired:
    name: str
    spec: ModelSpec
    fingerprint: str
    group: str
    description: str
    register: dict[str, Any]                 # register body without model_group_id / connector_id
    connector: dict[str, Any] | None = None  # create-connector body (secrets resolved)
    probe: tuple[str, dict[str, Any]] | None = None  # (path with {model_id}, body)


@dataclass
class IndexDesired:
    name: str
    kind: str  # index | index_template
    body: dict[str, Any]
    fingerprint: str
    settings_flat: dict[str, Any]


@dataclass
class Desired:
    project: Project
    settings: dict[str, Any]
    groups: dict[str, str]
    models: dict[str, ModelDesired]
    disabled: list[str]
    ingest: dict[str, dict[str, Any]]
    search: dict[str, dict[str, Any]]
    indices: dict[str, IndexDesired]
    secrets: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)  # processors left out (disabled models)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("", "0", "false", "no", "off")


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def build_desired(project: Project, environ: Mapping[str, str] | None = None, *, offline: bool = False) -> Desired:
    """Resolve ``${env:…}`` and build every body the kit would send.

    ``offline`` (validate): unset variables without a default are left as ``${env:NAME}`` instead of
    being an error, and disabled-by-environment models count as enabled so everything is checked.
    """
    resolver = EnvResolver(os.environ if environ is None else environ)
    pname = project.name
    problems: list[tuple[str, str, str, str | None]] = []

    settings = resolver.resolve(dict(project.cluster.settings), ("cluster", "settings"))

    models: dict[str, ModelDesired] = {}
    disabled: list[str] = []
    groups: dict[str, str] = {}
    for name, spec in sorted(project.models.items()):
        raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
        enabled_raw = raw.get("enabled", True)
        if isinstance(enabled_raw, str):
            enabled = True if offline else _truthy(resolver.resolve(enabled_raw, ("models", name, "enabled")))
        else:
            enabled = bool(enabled_raw)
        if not enabled:
            disabled.append(name)
            continue
        resolved = resolver.resolve(raw, ("models", name))
        models[name] = _model_desired(project, name, spec, resolved)
        groups[models[name].group] = f"{marker(pname)} model group of oskit project {pname}"

    ingest: dict[str, dict[str, Any]] = {}
    search: dict[str, dict[str, Any]] = {}
    dropped: list[str] = []
    for name, pspec in sorted(project.pipelines.items()):
        body, gone = _pipeline_body(pname, pspec, set(disabled))
        dropped += [f"{project.file_of('pipelines', name)}: {g}" for g in gone]
        body = resolver.resolve(body, ("pipelines", name))
        (ingest if pspec.type == "ingest" else search)[name] = body

    indices: dict[str, IndexDesired] = {}
    for name, ispec in sorted(project.indices.items()):
        indices[name] = _index_desired(project, name)
        indices[name].body = resolver.resolve(indices[name].body, ("mappings", name))

    if resolver.missing and not offline:
        for path, var in resolver.missing:
            kind, rname = str(path[0]), str(path[1]) if len(path) > 1 else ""
            rel = "cluster.yaml" if kind == "cluster" else project.file_of(kind, rname)
            key = ".".join(str(p) for p in path[2:])
            problems.append((rel, key, f"environment variable {var} is not set",
                             f"export {var}=… or write ${{env:{var}:-default}}"))
        raise ConfigError("environment variables are missing", problems=problems)

    return Desired(project=project, settings=settings, groups=groups, models=models, disabled=disabled,
                   ingest=ingest, search=search, indices=indices, secrets=resolver.secrets, dropped=dropped)


def _model_desired(project: Project, name: str, spec: ModelSpec, resolved: dict[str, Any]) -> ModelDesired:
    pname = project.name
    group = spec.group or f"{pname}-models"
    # What decides the model's identity: everything but the description, the probe and the serve block
    # (the model server's business). Credentials count by the variable names only, never by value.
    ident = {k: v for k, v in resolved.items() if k not in ("description", "probe", "serve", "enabled")}
    served = served_model(project, name)
    if served:  # the width follows the served architecture: a change of either is a redeploy, not a new model
        ident.pop("dimension", None)
    if "connector" in ident:
        conn = dict(ident["connector"])
        raw_cred = spec.connector.credential if spec.connector else {}
        conn["credential"] = dict(sorted(raw_cred.items()))
        ident["connector"] = conn
    fp = fingerprint(ident)
    description = f"{marker(pname, name, fp)} {spec.description}".rstrip()
    if served:
        description += f" (serves {served})"
    full_name = f"{pname}.{name}"
    connector = None
    if spec.type == "remote":
        c = resolved["connector"]
        connector = _strip_none({
            "name": full_name,
            "description": f"{marker(pname, name, fp)} {c.get('description') or spec.description}".rstrip(),
            "version": 1,
            "protocol": c["protocol"],
            "parameters": c.get("parameters") or {},
            "credential": c.get("credential") or {},
            "client_config": c.get("client_config"),
            "actions": c["actions"],
        })
        if not connector["credential"]:
            # MLCreateConnectorInput rejects a missing or empty credential ("Connector credential is null
            # or empty list") even for endpoints without auth; this placeholder is never used.
            connector["credential"] = {"oskit_no_auth": "unused"}
        register: dict[str, Any] = {"name": full_name, "function_name": "remote", "description": description}
    elif spec.type == "local_pretrained":
        register = {"name": spec.name, "version": spec.version, "model_format": spec.format,
                    "description": description}
    else:
        assert spec.package is not None
        register = {"name": full_name, "version": spec.version or "1.0.0", "model_format": spec.package.format,
                    "function_name": "TEXT_EMBEDDING", "description": description}
        if spec.ml_model_config:
            register["model_config"] = resolved.get("model_config")
    probe = _probe(project, spec, resolved)
    return ModelDesired(name=name, spec=spec, fingerprint=fp, group=group, description=description,
                        register=register, connector=connector, probe=probe)


def _probe(project: Project, spec: ModelSpec, resolved: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    p = resolved.get("probe")
    if not p:
        return None
    image = p.get("image")
    if image is not None:
        if image.startswith("builtin:"):
            image = PROBE_IMAGE_B64
        else:
            import base64

            image = base64.b64encode((project.root / "models" / image).read_bytes()).decode("ascii")
    if p.get("parameters") is not None:
        return "/_plugins/_ml/models/{model_id}/_predict", {"parameters": p["parameters"]}
    if spec.task == "embedding" and image is None:
        # The path neural-search uses: text_docs through the connector's pre-process function.
        return "/_plugins/_ml/_predict/text_embedding/{model_id}", {
            "text_docs": [p["text"]], "return_number": True, "target_response": ["sentence_embedding"]}
    params: dict[str, Any] = {}
    if p.get("text") is not None:
        params["inputText"] = p["text"]
    if image is not None:
        params["inputImage"] = image
    return "/_plugins/_ml/models/{model_id}/_predict", {"parameters": params}


def _pipeline_body(pname: str, spec: PipelineSpec, disabled: set[str]) -> tuple[dict[str, Any], list[str]]:
    body: dict[str, Any] = {"description": f"{marker(pname)} {spec.description}".rstrip()}
    if spec.version is not None:
        body["version"] = spec.version
    dropped: list[str] = []
    for group in ("processors", "on_failure", "request_processors", "response_processors",
                  "phase_results_processors"):
        procs = getattr(spec, group)
        if procs is None:
            continue
        out = []
        for i, proc in enumerate(procs):
            (ptype, cfg), = proc.items()
            refs = _models_in(cfg)
            off = sorted(refs & disabled)
            if off:
                dropped.append(f"{group}[{i}].{ptype} left out (model {', '.join(off)} is disabled)")
                continue
            out.append({ptype: _rewrite_refs(copy.deepcopy(cfg))})
        body[group] = out
    return body, dropped


def _models_in(cfg: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(cfg, dict):
        for k, v in cfg.items():
            if k in ("model", "default_model") and isinstance(v, str):
                found.add(v)
            elif k == "neural_field_default" and isinstance(v, dict):
                found |= {m for m in v.values() if isinstance(m, str)}
            else:
                found |= _models_in(v)
    elif isinstance(cfg, list):
        for v in cfg:
            found |= _models_in(v)
    return found


def _rewrite_refs(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        out: dict[str, Any] = {}
        for k, v in cfg.items():
            if k == "model" and isinstance(v, str):
                out["model_id"] = f"@model:{v}@"
            elif k == "default_model" and isinstance(v, str):
                out["default_model_id"] = f"@model:{v}@"
            elif k == "neural_field_default" and isinstance(v, dict):
                out["neural_field_default_id"] = {f: f"@model:{m}@" for f, m in v.items()}
            else:
                out[k] = _rewrite_refs(v)
        return out
    if isinstance(cfg, list):
        return [_rewrite_refs(v) for v in cfg]
    return cfg


def resolve_models(body: Any, ids: Mapping[str, str | None]) -> Any:
    """Replace ``@model:<name>@`` placeholders by model ids (unknown ids stay as ``<name: not created yet>``)."""
    if isinstance(body, str):
        m = MODEL_PLACEHOLDER.match(body)
        if m:
            return ids.get(m.group("name")) or f"<{m.group('name')}: not created yet>"
        return body
    if isinstance(body, dict):
        return {k: resolve_models(v, ids) for k, v in body.items()}
    if isinstance(body, list):
        return [resolve_models(v, ids) for v in body]
    return body


def strings_in(value: Any) -> list[str]:
    """Every string anywhere inside a JSON value (dict values and list items, depth first)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def nest_settings(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"index.knn": true}`` → ``{"index": {"knn": true}}`` (the shape the API spec describes)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        # index.search.default_pipeline is one setting name under "index" with a dotted key in the spec.
        if parts[:2] == ["index", "search"]:
            parts = ["index", "search", ".".join(parts[2:])]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _index_desired(project: Project, name: str) -> IndexDesired:
    from kit.config.loader import flat_index_settings

    spec = project.indices[name]
    flat = flat_index_settings(spec.settings)
    if spec.default_pipeline:
        flat["index.default_pipeline"] = spec.default_pipeline
    if spec.search_pipeline:
        flat["index.search.default_pipeline"] = spec.search_pipeline
    mappings = copy.deepcopy(spec.mappings)
    for fpath, _, definition in knn_fields(spec.mappings):
        dim = definition.get("dimension")
        if isinstance(dim, dict) and dim.get("from_model") in project.models:
            target = mappings
            for part in fpath.split("."):
                target = target["properties"][part]
            target["dimension"] = project.models[dim["from_model"]].dimension
    template = {"settings": nest_settings(flat), "mappings": mappings}
    if spec.aliases:
        template["aliases"] = spec.aliases
    fp = fingerprint({"kind": spec.kind, "template": template, "patterns": spec.index_patterns,
                      "priority": spec.priority, "description": spec.description})
    meta: dict[str, Any] = {"oskit": {"project": project.name, "fingerprint": fp, "description": spec.description}}
    # which weights made each vector field: other weights (even at the same width) mean a reindex
    vectors = {fpath: f"{dim['from_model']}: {served}" for fpath, _, definition in knn_fields(spec.mappings)
               if isinstance(dim := definition.get("dimension"), dict) and dim.get("from_model") in project.models
               and (served := served_model(project, dim["from_model"]))}
    if vectors:
        meta["oskit"]["vectors"] = vectors
    mappings.setdefault("_meta", {}).update(meta)
    if spec.kind == "index":
        body = template
    else:
        body = {"index_patterns": spec.index_patterns, "template": template, "_meta": meta}
        if spec.priority is not None:
            body["priority"] = spec.priority
    return IndexDesired(name=name, kind=spec.kind, body=body, fingerprint=fp, settings_flat=flat)


def total_chunks(size: int) -> int:
    return max(1, math.ceil(size / CHUNK_SIZE))


__all__ += ["fingerprint", "nest_settings", "strings_in", "total_chunks"]

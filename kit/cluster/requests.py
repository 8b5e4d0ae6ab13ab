"""Every request the kit would send for a project, and ``oskit validate``'s offline checks.

The OpenSearch API spec (``--spec DIR``, by default ``../shared/opensearch-api-spec`` next to the
project or ``$OSKIT_SPEC_DIR``) validates each request strictly; the spec's known gaps are patched by
the documented allow-list in :data:`kit.spec.ALLOW_LIST`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.cluster.capabilities import Target, check
from kit.cluster.desired import Desired, build_desired, resolve_models, total_chunks
from kit.config.loader import Project
from kit.errors import ConfigError, SpecError, Unsupported

log = logging.getLogger("kit.cluster")

__all__ = ["PlannedRequest", "ValidationReport", "default_spec_dir", "planned_requests", "validate_project"]

PLACEHOLDER_ID = "AbCdEfGhIjKlMnOpQrSt"  # a 20-character id like ML Commons'


@dataclass(frozen=True)
class PlannedRequest:
    method: str
    path: str
    body: Any
    params: dict[str, Any] | None
    source: str  # the project file it comes from


@dataclass
class ValidationReport:
    project: str
    files: int
    requests: int
    spec_dir: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "valid": True, "files": self.files, "requests_checked": self.requests,
                "spec": self.spec_dir, "notes": self.notes}


def planned_requests(desired: Desired) -> list[PlannedRequest]:
    """The writes (and reads) apply could send, with placeholder ids."""
    project = desired.project
    ids = {n: PLACEHOLDER_ID for n in project.models}
    out: list[PlannedRequest] = []
    if desired.settings:
        out.append(PlannedRequest("PUT", "/_cluster/settings", {"persistent": desired.settings}, None, "cluster.yaml"))
    for gname, gdesc in desired.groups.items():
        out.append(PlannedRequest("POST", "/_plugins/_ml/model_groups/_register", {"name": gname, "description": gdesc},
                                  None, "models/"))
    for name, md in desired.models.items():
        rel = project.file_of("models", name)
        if md.connector:
            out.append(PlannedRequest("POST", "/_plugins/_ml/connectors/_create", md.connector, None, rel))
        body = dict(md.register, model_group_id=PLACEHOLDER_ID)
        if md.spec.type == "remote":
            body["connector_id"] = PLACEHOLDER_ID
            out.append(PlannedRequest("POST", "/_plugins/_ml/models/_register", body, None, rel))
        elif md.spec.type == "local_pretrained":
            out.append(PlannedRequest("POST", "/_plugins/_ml/models/_register", body, None, rel))
        else:
            body.setdefault("model_config", {"model_type": "bert", "embedding_dimension": md.spec.dimension,
                                             "framework_type": "sentence_transformers"})
            body["model_content_hash_value"] = "0" * 64
            pkg = md.spec.package
            if pkg is not None and pkg.register_via == "url":
                body["url"] = pkg.url
                out.append(PlannedRequest("POST", "/_plugins/_ml/models/_register", body, None, rel))
            else:
                body["total_chunks"] = total_chunks(90_000_000)
                out.append(PlannedRequest("POST", "/_plugins/_ml/models/_register_meta", body, None, rel))
        out.append(PlannedRequest("POST", f"/_plugins/_ml/models/{PLACEHOLDER_ID}/_deploy", None, None, rel))
        out.append(PlannedRequest("GET", f"/_plugins/_ml/tasks/{PLACEHOLDER_ID}", None, None, rel))
        if md.probe:
            path, pbody = md.probe
            out.append(PlannedRequest("POST", path.format(model_id=PLACEHOLDER_ID), pbody, None, rel))
    for name, body in desired.ingest.items():
        out.append(PlannedRequest("PUT", f"/_ingest/pipeline/{name}", resolve_models(body, ids), None,
                                  project.file_of("pipelines", name)))
    for name, body in desired.search.items():
        out.append(PlannedRequest("PUT", f"/_search/pipeline/{name}", resolve_models(body, ids), None,
                                  project.file_of("pipelines", name)))
    for name, idx in desired.indices.items():
        rel = project.file_of("mappings", name)
        if idx.kind == "index":
            # (PUT /{name}/_mapping sends the same mappings; checking them once is enough.)
            out.append(PlannedRequest("PUT", f"/{name}", idx.body, None, rel))
        else:
            out.append(PlannedRequest("PUT", f"/_index_template/{name}", idx.body, None, rel))
    # Reads plan and status send.
    q = {"query": {"match_all": {}}, "size": 10000}
    out += [
        PlannedRequest("GET", "/_cluster/settings", None, {"flat_settings": "true"}, "(plan)"),
        PlannedRequest("POST", "/_plugins/_ml/model_groups/_search", q, None, "(plan)"),
        PlannedRequest("POST", "/_plugins/_ml/connectors/_search", q, None, "(plan)"),
        PlannedRequest("POST", "/_plugins/_ml/models/_search",
                       {"query": {"bool": {"must_not": [{"exists": {"field": "chunk_number"}}]}}, "size": 10000},
                       None, "(plan)"),
    ]
    return out


_VALIDATED: dict[tuple[int, str, str, str, str], list[str]] = {}


def _validate_cached(spec: Any, req: PlannedRequest) -> list[str]:
    """Spec validation is slow for large mappings (seconds for multi-field text fields); the answer for the
    same spec and the same request never changes, so it is kept for the process."""
    from kit.cluster.desired import canonical_json

    key = (id(spec), req.method, req.path, canonical_json(req.body), canonical_json(req.params))
    if key not in _VALIDATED:
        _VALIDATED[key] = list(spec.validate_request(req.method, req.path, req.body, req.params))
    return _VALIDATED[key]


def default_spec_dir(project_root: Path) -> Path | None:
    env = os.environ.get("OSKIT_SPEC_DIR")
    candidates = [Path(env)] if env else []
    candidates += [project_root.resolve().parent / "shared" / "opensearch-api-spec",
                   Path(__file__).resolve().parents[3] / "shared" / "opensearch-api-spec"]
    for c in candidates:
        if (c / "spec").is_dir():
            return c
    return None


def validate_project(project: Project, spec_dir: Path | None = None, *, use_spec: bool = True) -> ValidationReport:
    """Offline checks beyond the loader: target rules (cluster.yaml target) and every request vs the spec."""
    desired = build_desired(project, {}, offline=True)
    notes = list(desired.dropped)
    problems: list[tuple[str, str, str, str | None]] = []
    t = project.cluster.target
    target = Target(url="(offline)", version=t.min_version, distribution=t.distribution, plugins=None)
    urls = {n: [a["url"] for a in (m.connector or {}).get("actions", [])] for n, m in desired.models.items()}
    try:
        check(project, target, urls)
    except Unsupported as exc:
        for line in str(exc).splitlines()[1:]:
            where, _, msg = line.strip().partition(": ")
            problems.append((where, "", msg, "cluster.yaml target sets the oldest version and the distribution "
                             "checked offline"))
    requests = planned_requests(desired)
    checked = 0
    used_dir: str | None = None
    if use_spec:
        from kit.spec import load_spec

        directory = spec_dir or default_spec_dir(project.root)
        if directory is None:
            raise SpecError("the OpenSearch API spec was not found", hint="pass --spec DIR (opensearch-api-specification)")
        spec = load_spec(Path(directory))
        used_dir = str(directory)
        for req in requests:
            checked += 1
            for p in _validate_cached(spec, req):
                problems.append((req.source, "", f"request does not fit the OpenSearch API spec: {p}",
                                 "fix the field, or report a spec gap (kit/spec/allow_list.py ALLOW_LIST)"))
    if problems:
        cls = SpecError if all("OpenSearch API spec" in p[2] for p in problems) else ConfigError
        raise cls(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the project", problems=problems)
    return ValidationReport(project=project.name, files=len(project.files) + (1 if (project.root / "cluster.yaml").exists() else 0),
                            requests=checked, spec_dir=used_dir, notes=notes)



"""``oskit status``: each resource's live state (model DEPLOYED/…, pipelines present, index doc counts),
and whether each remote model's endpoint (the model server) accepts connections from this machine:
a DEPLOYED model whose endpoint is down fails every document and query."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from kit.cluster.capabilities import Target, detect
from kit.cluster.client import Client
from kit.cluster.desired import ModelDesired, build_desired
from kit.cluster.endpoints import FIX, probe_url, shown_url
from kit.config.envsubst import mask
from kit.cluster.plan import STATE_RANK
from kit.cluster.state import doc_count, read_state
from kit.config.loader import Project

__all__ = ["Status", "status"]


@dataclass
class Status:
    project: str
    target: Target
    resources: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "target": self.target.to_dict(), "resources": self.resources}


def status(project: Project, client: Client, *, environ: Mapping[str, str] | None = None) -> Status:
    desired = build_desired(project, environ)
    target = detect(client)
    live = read_state(client, desired)
    out = Status(project=project.name, target=target)
    add = lambda kind, name, state, detail="": out.resources.append(  # noqa: E731
        {"kind": kind, "name": name, "state": state, "detail": detail})
    for gname in sorted(desired.groups):
        g = live.groups.get(gname)
        add("model-group", gname, "present" if g else "missing", g.id if g else "")
    for name in sorted(project.models):
        if name in desired.disabled:
            add("model", name, "disabled", "enabled: is false in this environment")
            continue
        md = desired.models[name]
        mine = sorted((m for m in live.models if m.logical == name),
                      key=lambda m: (m.fingerprint != md.fingerprint, STATE_RANK.get(m.state, 9), m.id))
        if not mine:
            add("model", name, "missing")
            continue
        m = mine[0]
        note = "" if m.fingerprint == md.fingerprint else " (out of date: the spec changed)"
        add("model", name, m.state, f"{m.id}{note}")
    for name in sorted(project.models):
        md = desired.models.get(name)
        url = _predict_url(md) if md is not None and name not in desired.disabled else None
        if url is None:
            continue
        reason = probe_url(url)
        fix = FIX if md is not None and md.spec.serve is not None else \
            f"check the endpoint in {project.file_of('models', name)}"
        shown = mask(shown_url(url), desired.secrets)
        add("endpoint", name, "reachable" if reason is None else "unreachable",
            shown if reason is None else f"{shown} ({reason}): {fix}")
    for kind, wanted, have in (("ingest-pipeline", desired.ingest, live.ingest),
                               ("search-pipeline", desired.search, live.search)):
        for name in sorted(wanted):
            add(kind, name, "present" if name in have else "missing")
    for name, idx in sorted(desired.indices.items()):
        if idx.kind == "index_template":
            add("index-template", name, "present" if name in live.templates else "missing")
            continue
        if name not in live.indices:
            add("index", name, "missing")
            continue
        docs = doc_count(client, name)
        add("index", name, "present", f"{docs} document{'s' if docs != 1 else ''}")
    return out


def _predict_url(md: ModelDesired) -> str | None:
    for action in (md.connector or {}).get("actions") or []:
        if isinstance(action, dict) and str(action.get("action_type", "")).lower() == "predict" and action.get("url"):
            return str(action["url"])
    return None

"""Plan: compare the project with the cluster, read-only, and list the ordered changes.

A :class:`Plan` is a value: the changes in dependency order (cluster settings → model groups →
connectors → models → ingest pipelines → search pipelines → index templates → indices, then
destroys in reverse order), each labelled ``create``, ``update``, ``replace``, ``redeploy``, ``reindex``
or ``destroy``, plus a fingerprint of the live state it saw (:func:`kit.cluster.apply.apply` refuses a
stale plan). Plans never contain secrets.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from kit.cluster.capabilities import Target, check, detect
from kit.cluster.client import Client
from kit.cluster.desired import (
    MODEL_PLACEHOLDER,
    Desired,
    build_desired,
    current_marker_form,
    parse_marker,
    resolve_models,
    served_in,
    strings_in,
)
from kit.cluster.diff import STATIC_INDEX_SETTINGS, FieldDiff, compare_exact, compare_mappings, compare_settings
from kit.cluster.fingerprint import META_KEY, fingerprinted_fields
from kit.cluster.fingerprint import check_index as fingerprint_checks
from kit.cluster.state import VERSION_KEY, LiveModel, LiveState, doc_count, read_state
from kit.config.envsubst import mask
from kit.config.loader import Project, version_tuple
from kit.errors import ConfigError, PlanStale

log = logging.getLogger("kit.cluster")

__all__ = ["ACTIONS", "Change", "KINDS", "Plan", "STATE_RANK", "check_saved", "destroy_plan", "plan"]

ACTIONS = ("create", "update", "replace", "redeploy", "reindex", "destroy", "unmanaged")
KINDS = ("cluster-settings", "model-group", "connector", "model", "ingest-pipeline", "search-pipeline",
         "index-template", "index")
GOOD_STATES = ("DEPLOYED", "PARTIALLY_DEPLOYED", "DEPLOYING", "REGISTERED", "UNDEPLOYED", "DEPLOY_FAILED",
               "LOADED", "UNLOADED", "PARTIALLY_LOADED", "LOAD_FAILED", "UPLOADED")
STATE_RANK = {"DEPLOYED": 0, "LOADED": 0, "PARTIALLY_DEPLOYED": 1, "DEPLOYING": 2, "REGISTERED": 3, "UPLOADED": 3,
              "UNDEPLOYED": 4, "UNLOADED": 4, "DEPLOY_FAILED": 5, "LOAD_FAILED": 5}


@dataclass
class Change:
    action: str
    kind: str
    name: str
    reason: str
    details: list[FieldDiff] = field(default_factory=list)
    internal: dict[str, Any] = field(default_factory=dict)  # ids apply needs; never rendered

    @property
    def destructive(self) -> bool:
        return self.action == "destroy" or (self.action == "reindex" and bool(self.internal.get("docs")))

    def to_dict(self, secrets: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        return mask({"action": self.action, "kind": self.kind, "name": self.name, "reason": self.reason,
                     "details": [d.to_dict() for d in self.details]}, set(secrets))


@dataclass
class Plan:
    project: Project
    desired: Desired
    target: Target
    fingerprint: str
    changes: list[Change]
    model_ids: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    destroy: bool = False

    @property
    def in_sync(self) -> bool:
        return not self.changes

    def summary(self) -> dict[str, int]:
        counts = {a: 0 for a in ACTIONS if a != "unmanaged"}
        for c in self.changes:
            counts[c.action] = counts.get(c.action, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without secrets (values that came from secret environment variables are masked)."""
        return {
            "format_version": 1,
            "project": self.project.name,
            "environment": self.project.env,
            "target": self.target.to_dict(),
            "fingerprint": self.fingerprint,
            "in_sync": self.in_sync,
            "summary": self.summary(),
            "changes": [c.to_dict(self.desired.secrets) for c in self.changes],
            "notes": mask(list(self.notes), self.desired.secrets),
        }


def check_saved(current: Plan, saved_file: Any) -> None:
    """Raise :class:`PlanStale` unless ``current`` (made just now) equals a plan saved by ``oskit plan --out``:
    same project, same cluster state fingerprint, same changes."""
    import json
    from pathlib import Path

    try:
        saved = json.loads(Path(saved_file).read_text(encoding="utf-8"))
        fingerprint = saved["fingerprint"]
        changes = [(c["action"], c["kind"], c["name"]) for c in saved["changes"]]
        project = saved["project"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{saved_file}: not a saved oskit plan ({exc})",
                          hint="write one with oskit plan --out FILE") from None
    now = [(c.action, c.kind, c.name) for c in current.changes]
    if project != current.project.name or fingerprint != current.fingerprint or changes != now:
        raise PlanStale(f"the saved plan {saved_file} no longer matches the cluster and the project",
                        hint="run oskit plan --out again and review it")


def _connector_urls(desired: Desired) -> dict[str, list[str]]:
    return {n: [a["url"] for a in (m.connector or {}).get("actions", [])] for n, m in desired.models.items()}


def plan(project: Project, client: Client, *, environ: Mapping[str, str] | None = None) -> Plan:
    """Read the cluster (never writes) and return the ordered changes that converge it to ``project``."""
    desired = build_desired(project, environ)
    target = detect(client)
    check(project, target, _connector_urls(desired))
    live = read_state(client, desired)
    notes = list(desired.dropped)
    changes, ids = _changes(desired, live, target, client, notes)
    return Plan(project=project, desired=desired, target=target, fingerprint=live.fingerprint(),
                changes=changes, model_ids=ids, notes=notes)


def destroy_plan(project: Project, client: Client, *, environ: Mapping[str, str] | None = None) -> Plan:
    """A plan that removes everything this project created (cluster settings are left as they are)."""
    desired = build_desired(project, environ)
    target = detect(client)
    live = read_state(client, desired)
    empty = copy.copy(desired)
    empty.groups, empty.models, empty.ingest, empty.search, empty.indices, empty.settings = {}, {}, {}, {}, {}, {}
    changes, ids = _changes(empty, live, target, client)
    # A destroy plan is re-checked against the full desired state at apply time.
    return Plan(project=project, desired=desired, target=target, fingerprint=live.fingerprint(), changes=changes,
                model_ids=ids, notes=["cluster settings are left as they are"], destroy=True)


def _changes(desired: Desired, live: LiveState, target: Target, client: Client,
             notes: list[str] | None = None) -> tuple[list[Change], dict[str, str | None]]:
    notes = [] if notes is None else notes
    project = desired.project
    pname = project.name
    version = version_tuple(target.version) if target.distribution != "aoss" else (3, 0, 0)
    out: list[Change] = []
    destroys: list[Change] = []

    # cluster settings
    if desired.settings:
        diffs = compare_settings(desired.settings, live.settings)
        if diffs:
            action = "update" if any(d.live != "<absent>" for d in diffs) else "create"
            out.append(Change(action, "cluster-settings", "persistent",
                              f"{len(diffs)} of {len(desired.settings)} setting{'s' if len(desired.settings) != 1 else ''} "
                              "differ", diffs))

    # model groups
    for gname, gdesc in sorted(desired.groups.items()):
        g = live.groups.get(gname)
        if g is None:
            out.append(Change("create", "model-group", gname, "not in the cluster"))
        elif g.project != pname:
            out.append(_unmanaged("model-group", gname, f"id {g.id}"))
    for gname, g in sorted(live.groups.items()):
        if g.project == pname and gname not in desired.groups:
            destroys.append(Change("destroy", "model-group", gname, "no model of the project uses it",
                                   internal={"id": g.id}))

    # Index versions kept by oskit migrate pin their own pipeline copies, and those the models they use.
    pinned_pipes, pinned_models = _pinned(live, desired.indices)
    pinned_conns = {m.connector_id for m in live.models if m.id in pinned_models and m.connector_id}

    # connectors and models
    ids: dict[str, str | None] = {}
    conn_changes: list[Change] = []
    model_changes: list[Change] = []
    for name, md in sorted(desired.models.items()):
        mine = [m for m in live.models if m.logical == name]
        current = sorted((m for m in mine if m.fingerprint == md.fingerprint and m.state in GOOD_STATES),
                         key=lambda m: (STATE_RANK.get(m.state, 9), m.id))
        chosen: LiveModel | None = current[0] if current else None
        leftovers = [m.id for m in mine if m is not chosen and m.id not in pinned_models]
        broken = [m for m in mine if m.fingerprint == md.fingerprint and m.state not in GOOD_STATES]
        stale = [m for m in mine if m.fingerprint != md.fingerprint]
        conns = [c for c in live.connectors if c.logical == name]
        conn = next((c for c in sorted(conns, key=lambda c: c.id) if c.fingerprint == md.fingerprint), None)
        conn_leftovers = [c.id for c in conns if c is not conn and c.id not in pinned_conns]
        if md.spec.type == "remote":
            if conn is None:
                conn_changes.append(Change("replace" if conns else "create", "connector", name,
                                           "model spec changed" if conns else "not in the cluster",
                                           internal={"cleanup": conn_leftovers}))
            elif conn_leftovers and chosen is not None:
                conn_changes.append(Change("update", "connector", name,
                                           f"remove {len(conn_leftovers)} old connector(s) left by an earlier run",
                                           internal={"cleanup": conn_leftovers}))
        kind_text = _model_text(md)
        internal = {"model_id": chosen.id if chosen else None, "cleanup": leftovers,
                    "connector_id": conn.id if conn else None}
        if chosen is None:
            if stale:
                fps = ", ".join(sorted({m.fingerprint or "?" for m in stale}))
                reason = f"model spec changed (fingerprint {fps} → {md.fingerprint}); {kind_text}"
                model_changes.append(Change("replace", "model", name, reason, internal=internal))
            elif broken:
                states = ", ".join(sorted({m.state for m in broken}))
                model_changes.append(Change("replace", "model", name, f"an earlier registration is incomplete "
                                            f"({states}); register again", internal=internal))
            else:
                model_changes.append(Change("create", "model", name, kind_text, internal=internal))
            ids[name] = None
            continue
        ids[name] = chosen.id
        if chosen.state not in ("DEPLOYED", "LOADED"):
            model_changes.append(Change("redeploy", "model", name, f"model {chosen.id} is {chosen.state}",
                                        internal=internal))
        elif served_in(chosen.description) != served_in(md.description):
            # a remote model's ML Commons body is unchanged when the model server's weights change:
            # deploy again (and probe: the server must answer with the new model's width)
            model_changes.append(Change("redeploy", "model", name,
                                        f"the served weights changed ({served_in(chosen.description) or 'unknown'} → "
                                        f"{served_in(md.description)}); restart `oskit serve` with the new spec "
                                        "before apply",
                                        [FieldDiff("description", chosen.description, md.description)],
                                        internal=internal))
        elif current_marker_form(chosen.description) != md.description:
            model_changes.append(Change("update", "model", name, "description changed",
                                        [FieldDiff("description", chosen.description, md.description)],
                                        internal=internal))
        elif leftovers:
            model_changes.append(Change("update", "model", name, f"remove {len(leftovers)} old cop"
                                        f"{'ies' if len(leftovers) > 1 else 'y'} left by an earlier run",
                                        internal=internal))
    for m in live.models:
        if m.logical not in desired.models:
            why = "disabled in its spec" if m.logical in desired.disabled else "no longer in the project"
            destroys.append(Change("destroy", "model", m.logical or m.name, f"{why} (model {m.id}, {m.state})",
                                   internal={"id": m.id}))
    for c in live.connectors:
        if c.logical not in desired.models:
            destroys.append(Change("destroy", "connector", c.logical or c.name, f"its model is gone (connector {c.id})",
                                   internal={"id": c.id}))
    out += conn_changes + model_changes

    # pipelines
    for kind, wanted, have in (("ingest-pipeline", desired.ingest, live.ingest),
                               ("search-pipeline", desired.search, live.search)):
        for name, body in sorted(wanted.items()):
            resolved = resolve_models(body, ids)
            cur = have.get(name)
            if cur is None:
                out.append(Change("create", kind, name, "not in the cluster"))
                continue
            mk = parse_marker(cur.get("description"))
            if not mk or mk[0] != pname:
                out.append(_unmanaged(kind, name, "its description has no (oskit:…) marker"))
                continue
            diffs = compare_exact(resolved, {**cur, "description": current_marker_form(cur.get("description"))})
            if diffs:
                out.append(Change("update", kind, name, _diff_reason(diffs), diffs))
        for name, cur in sorted(have.items()):
            mk = parse_marker(cur.get("description") if isinstance(cur, dict) else None)
            if mk and mk[0] == pname and name not in wanted and name not in pinned_pipes:
                destroys.append(Change("destroy", kind, name, "no longer in the project"))

    # A replaced embedding model cannot write into an index holding the old model's vectors.
    replaced = {c.name for c in model_changes if c.action == "replace"}
    replaced_for: dict[str, set[str]] = {}
    for name, idesired in desired.indices.items():
        pipe = desired.ingest.get(str(idesired.settings_flat.get("index.default_pipeline")))
        used = {m.group("name") for mid, _ in fingerprinted_fields(pipe or {}).values()
                if (m := MODEL_PLACEHOLDER.match(mid))}
        if used & replaced and name in live.indices:
            replaced_for[name] = used & replaced

    # index templates and indices
    for name, idesired in sorted(desired.indices.items()):
        if idesired.kind == "index_template":
            cur_t = live.templates.get(name)
            if cur_t is None:
                out.append(Change("create", "index-template", name, "not in the cluster"))
            elif cur_t.project != pname:
                out.append(_unmanaged("index-template", name, "its _meta has no oskit project"))
            else:
                diffs = compare_exact(idesired.body, cur_t.raw)
                if diffs:
                    out.append(Change("update", "index-template", name, _diff_reason(diffs), diffs))
            continue
        cur = live.indices.get(name)
        if cur is None:
            out.append(Change("create", "index", name, "not in the cluster"))
            continue
        if cur.project != pname:
            out.append(_unmanaged("index", name, "its mappings._meta has no oskit project"))
            continue
        desired_flat = idesired.settings_flat
        versioned = cur.name != name  # an alias in front of index version cur.name
        every = sorted({cur.name} | {v.name for v in live.versions.get(name, [])})
        live_mappings = dict(cur.mappings)
        if isinstance(live_mappings.get("_meta"), dict):  # the kit's own bookkeeping, not project config
            live_mappings["_meta"] = {k: v for k, v in live_mappings["_meta"].items()
                                      if k not in (META_KEY, VERSION_KEY)}
        live_aliases = {a: b for a, b in cur.aliases.items() if a != name}
        diffs = compare_settings(desired_flat, cur.settings, static=STATIC_INDEX_SETTINGS)
        # vectors made by other weights cannot be compared with new ones: a known, changed maker is a
        # reindex (an index from before this record carries none and is only updated)
        diffs += [FieldDiff(d.path, d.live, d.desired, d.live == "<absent>")
                  if d.path.startswith("mappings._meta.oskit.vectors.") else d
                  for d in compare_mappings(idesired.body["mappings"], live_mappings, version)]
        diffs += [FieldDiff(f"aliases.{d.path}", d.live, d.desired, True)
                  for d in compare_exact(idesired.body.get("aliases") or {}, live_aliases)]
        pinned_now = [d for d in diffs if d.path in ("index.default_pipeline", "index.search.default_pipeline")
                      and "--v" in str(d.live)]
        if versioned and pinned_now:
            docs = doc_count(client, name) or 0
            out.append(Change("reindex", "index", name, f"{name} serves {cur.name}, which keeps its own pipelines "
                              f"({', '.join(str(d.live) for d in pinned_now)}; after oskit migrate --rollback?) "
                              f"instead of the project's; {MIGRATE_HOW}", diffs,
                              internal={"docs": docs, "indices": every}))
            continue
        if not diffs and name in replaced_for:
            docs = doc_count(client, name) or 0
            if docs:
                out.append(Change("reindex", "index", name,
                                  f"model{'s' if len(replaced_for[name]) > 1 else ''} "
                                  f"{', '.join(sorted(replaced_for[name]))} change{'' if len(replaced_for[name]) > 1 else 's'}"
                                  f": the {docs} document{'s' if docs != 1 else ''}' vectors cannot mix with the new "
                                  f"model's; {MIGRATE_HOW}", internal={"docs": docs, "indices": every}))
            continue
        if not diffs:
            for chk in fingerprint_checks(client, name):
                if chk.error:
                    notes.append(f"index {name}: {chk.reason}")
                elif not chk.matches:
                    docs = doc_count(client, name) or 0
                    out.append(Change("reindex", "index", name, f"{chk.reason}; {MIGRATE_HOW}",
                                      internal={"docs": docs, "indices": every, "fingerprint": True}))
                    break
        if not diffs:
            continue
        if all(d.in_place for d in diffs):
            out.append(Change("update", "index", name, _diff_reason(diffs), diffs))
        else:
            docs = doc_count(client, name) or 0
            fixed = [d.path for d in diffs if not d.in_place]
            out.append(Change("reindex", "index", name,
                              f"{', '.join(fixed[:3])}{' …' if len(fixed) > 3 else ''} cannot change in place; the "
                              f"index is recreated ({docs} document{'s' if docs != 1 else ''} must be ingested again); "
                              f"{MIGRATE_HOW}", diffs, internal={"docs": docs, "indices": every}))
    for name, cur in sorted(live.indices.items()):
        if cur.project == pname and name not in desired.indices:
            docs = doc_count(client, name) or 0
            every = sorted({cur.name} | {v.name for v in live.versions.get(name, [])})
            destroys.append(Change("destroy", "index", name, f"no longer in the project ({docs} documents)",
                                   internal={"indices": every}))
    for name, cur_t in sorted(live.templates.items()):
        if cur_t.project == pname and name not in desired.indices:
            destroys.append(Change("destroy", "index-template", name, "no longer in the project"))

    for alias, kept in sorted(live.versions.items()):
        for v in sorted(kept, key=lambda i: i.name):
            if v.name != (live.indices.get(alias).name if alias in live.indices else None):
                notes.append(f"index {v.name} (an earlier version of {alias}) is kept for oskit migrate --rollback")
    order = {k: i for i, k in enumerate(KINDS)}
    destroys.sort(key=lambda c: (-order[c.kind], c.name))
    return out + destroys, ids


MIGRATE_HOW = "carried out without downtime by oskit migrate (a new index version behind the alias, re-embedded, " \
    "evaluated, then swapped)"


def _pinned(live: LiveState, wanted: Any) -> tuple[set[str], set[str]]:
    """Pipelines named by index versions (made by oskit migrate) and the model ids they use."""
    pipes: set[str] = set()
    for alias, kept in live.versions.items():
        if alias not in wanted:
            continue  # the index leaves the project (destroy): its versions' pipelines go too
        for v in kept:
            for key in ("index.default_pipeline", "index.search.default_pipeline"):
                if "--v" in str(v.settings.get(key) or ""):  # a copy pinned by oskit migrate
                    pipes.add(str(v.settings[key]))
    known = {m.id for m in live.models}
    models: set[str] = set()
    for name in pipes:
        body = live.ingest.get(name) or live.search.get(name) or {}
        models |= {s for s in strings_in(body) if s in known}
    return pipes, models


def _unmanaged(kind: str, name: str, evidence: str) -> Change:
    return Change("unmanaged", kind, name, f"exists without oskit's marker ({evidence}): created or recreated by "
                  "hand? oskit never changes it; delete it (then oskit apply) or rename the project's resource")


def _model_text(md: Any) -> str:
    spec = md.spec
    parts = [spec.type.replace("_", " ")]
    if spec.task == "embedding":
        parts.append(f"{spec.modality}, {spec.dimension}-d, {spec.space_type}")
    else:
        parts.append(f"{spec.modality} → JSON (ml_inference)")
    return ", ".join(parts)


def _diff_reason(diffs: list[FieldDiff]) -> str:
    paths = [d.path for d in diffs]
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    return f"{shown} differ{'s' if len(paths) == 1 else ''}"



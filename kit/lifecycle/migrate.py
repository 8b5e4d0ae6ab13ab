"""``oskit migrate``: carry out a change that needs a reindex (new model, dimension, engine) without downtime.

The index users query becomes an alias over numbered versions (``images`` → ``images-v2``):

1. **models**: new or changed models are registered, deployed and probed *next to* the old ones;
2. **pin**: the index being served gets its own copies of its pipelines (``images-ingest--v1``), so
   the old version keeps answering with the old models whatever happens to the project's pipelines;
   the first migration also copies a plain index ``images`` to ``images-v1`` (vectors kept, no inference);
3. **build**: a new version ``images-vN`` is created from the project's mapping, with pipelines
   ``…--vN`` on the new model ids, and every document is re-embedded through them from its stored
   source: the file at ``source_uri``, checked against the document's ``sha256`` (what
   ``oskit ingest`` writes); with ``--thumbnail-fallback`` a missing file is re-embedded from the
   stored thumbnail instead (256 px: lower fidelity, counted in the result);
4. **gate**: the project's evaluation set runs against old and new; the alias moves only when the new
   version passes ``--fail-under`` and is not worse than the old (primary mAP) unless ``--force``;
5. **swap**: the project's pipelines take the new model ids, the new version uses them, and one
   ``_aliases`` request moves the alias (atomic: every search sees the old or the new version);
6. the old version is kept (``state: retired``) for :func:`rollback`.

Every step is idempotent and the migration's state lives in the new version's ``_meta.oskit_version``
(``{of, version, from, state: building|live|retired}``), so running ``oskit migrate`` again after an
interruption resumes it (documents already in the new version are skipped).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import unquote, urlparse

from kit.cluster.client import Client
from kit.cluster.desired import Desired, build_desired, resolve_models
from kit.cluster.state import VERSION_KEY, alias_targets
from kit.config.loader import Project
from kit.errors import MigrationError, NotFound
from kit.job.ingest import existing_ids  # the _mget ingest resumes with (retried on 429/5xx)

log = logging.getLogger("kit.lifecycle")

__all__ = ["MigrationError", "MigrationResult", "RollbackResult", "migrate", "rollback", "pipeline_outputs"]

Progress = Callable[[str], None]
PIN = "--v"  # pinned pipeline copies: <pipeline>--v<N>
_VERSION_RE = re.compile(r"^(?P<base>.+)-v(?P<n>\d+)$")


@dataclass
class MigrationResult:
    alias: str
    old: str
    new: str
    documents: int = 0
    reembedded: int = 0
    skipped: int = 0           # already in the new version (a resumed run)
    from_thumbnail: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    copied: int = 0            # first migration: documents copied to <alias>-v1 as they are
    eval_old: dict[str, float] | None = None
    eval_new: dict[str, float] | None = None
    gate: list[str] = field(default_factory=list)
    swapped: bool = False
    forced: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "old": self.old, "new": self.new, "documents": self.documents,
                "reembedded": self.reembedded, "skipped": self.skipped, "from_thumbnail": self.from_thumbnail,
                "copied": self.copied, "failed": len(self.failures), "failures": self.failures[:50],
                "eval_old": self.eval_old, "eval_new": self.eval_new, "gate": self.gate, "swapped": self.swapped,
                "forced": self.forced, "timings": {k: round(v, 3) for k, v in self.timings.items()}}


@dataclass
class RollbackResult:
    alias: str
    from_index: str
    to_index: str

    def to_dict(self) -> dict[str, Any]:
        return {"alias": self.alias, "from": self.from_index, "to": self.to_index}


# ------------------------------------------------------------------------------------------ helpers


def pipeline_outputs(pipeline: dict[str, Any]) -> set[str]:
    """Fields an ingest pipeline writes (vectors, ml_inference outputs): dropped before re-embedding."""
    out: set[str] = set()
    for proc in pipeline.get("processors") or []:
        if not isinstance(proc, dict) or len(proc) != 1:
            continue
        (ptype, cfg), = proc.items()
        if not isinstance(cfg, dict):
            continue
        if ptype == "text_image_embedding" and isinstance(cfg.get("embedding"), str):
            out.add(cfg["embedding"])
        elif ptype in ("text_embedding", "sparse_encoding"):
            out |= {v for v in (cfg.get("field_map") or {}).values() if isinstance(v, str)}
        elif ptype == "ml_inference":
            for m in cfg.get("output_map") or []:
                if isinstance(m, dict):
                    out |= {k for k in m if isinstance(k, str)}
    return out


def _meta(client: Client, index: str) -> dict[str, Any]:
    resp = client.request("GET", f"/{index}/_mapping") or {}
    body = resp.get(index) or next(iter(resp.values()), {})
    return dict(((body or {}).get("mappings") or {}).get("_meta") or {})


def _set_meta(client: Client, index: str, **version: Any) -> None:
    meta = _meta(client, index)
    meta[VERSION_KEY] = dict(meta.get(VERSION_KEY) or {}, **version)
    client.request("PUT", f"/{index}/_mapping", body={"_meta": meta})


def _settings(client: Client, index: str) -> dict[str, Any]:
    resp = client.request("GET", f"/{index}/_settings", params={"flat_settings": "true"}) or {}
    return dict((next(iter(resp.values()), {}) or {}).get("settings") or {})


def _alias_target(client: Client, name: str) -> str | None:
    targets = alias_targets(client, name)
    if len(targets) > 1:
        raise MigrationError(f"alias {name} points at {len(targets)} indices ({', '.join(targets)})",
                             hint="an oskit alias serves exactly one index version; fix it with POST /_aliases")
    return targets[0] if targets else None


def _exists(client: Client, index: str) -> bool:
    try:
        resp = client.request("HEAD", f"/{index}")
    except NotFound:
        return False
    return resp is not False  # opensearch-py answers a HEAD 404 with False


def _versions(client: Client, alias: str) -> dict[str, dict[str, Any]]:
    """Every index version of ``alias`` (by name) with its ``_meta.oskit_version``."""
    try:
        resp = client.request("GET", f"/{alias}-v*/_mapping") or {}
    except NotFound:
        return {}
    out = {}
    for name, body in resp.items():
        v = (((body or {}).get("mappings") or {}).get("_meta") or {}).get(VERSION_KEY)
        if isinstance(v, dict) and v.get("of") == alias:
            out[name] = v
    return out


def _pin_pipelines(client: Client, index: str, version: int, say: Progress) -> None:
    """Give ``index`` its own copies of the pipelines it uses now (same bodies, so nothing changes for it)."""
    settings = _settings(client, index)
    changes: dict[str, str] = {}
    for key, kind in (("index.default_pipeline", "_ingest"), ("index.search.default_pipeline", "_search")):
        name = settings.get(key)
        if not name or name == "_none" or PIN in str(name):
            continue
        body = (client.request("GET", f"/{kind}/pipeline/{name}") or {}).get(name)
        if body is None:
            continue
        pinned = f"{name}{PIN}{version}"
        client.request("PUT", f"/{kind}/pipeline/{pinned}", body=body)
        changes[key] = pinned
    if changes:
        say(f"pin {index} to its pipelines: {', '.join(sorted(changes.values()))}")
        client.request("PUT", f"/{index}/_settings", body={"index": {k[len('index.'):]: v for k, v in changes.items()}})


def _scan(client: Client, index: str, *, page: int, source: Any = True) -> Iterator[list[dict[str, Any]]]:
    """Every document of ``index`` in sha256 order, a page at a time (a range on the keyword: no scroll context
    to keep alive, and it works where search_after does not)."""
    after: str | None = None
    while True:
        query: dict[str, Any] = {"match_all": {}} if after is None else {"range": {"sha256": {"gt": after}}}
        body: dict[str, Any] = {"size": page, "query": query, "sort": [{"sha256": "asc"}], "_source": source}
        hits = ((client.request("POST", f"/{index}/_search", body=body) or {}).get("hits") or {}).get("hits") or []
        if not hits:
            return
        yield hits
        last = (hits[-1].get("sort") or [None])[0]
        if last is None or len(hits) < page:
            return
        after = str(last)


def _bulk(client: Client, index: str, docs: list[tuple[str, dict[str, Any]]], pipeline: str | None) -> list[dict[str, str]]:
    """Index ``docs``; returns the failures (``{id, reason}``)."""
    from kit.job.ingest import ImageDoc, bulk_index

    items = [ImageDoc(path=Path(doc_id), id=doc_id, source=src) for doc_id, src in docs]
    _, failed = bulk_index(client, index, items, pipeline=pipeline)
    return [{"id": f.file, "reason": f.reason} for f in failed]


def _read_source(src: dict[str, Any]) -> bytes | None:
    uri = str(src.get("source_uri") or "")
    if not uri.startswith("file:"):
        return None
    path = Path(unquote(urlparse(uri).path))
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == src.get("sha256") else None


# ---------------------------------------------------------------------------------------- migrate


def _target_index(desired: Desired, index: str | None, plan: Any) -> str:
    names = [n for n, i in desired.indices.items() if i.kind == "index"]
    if index is not None:
        if index not in names:
            raise MigrationError(f"index {index!r} is not in the project (indices: {', '.join(sorted(names)) or 'none'})")
        return index
    pending = [c.name for c in plan.changes if c.kind == "index" and c.action == "reindex"]
    if len(pending) == 1:
        return pending[0]
    if len(names) == 1:
        return names[0]
    raise MigrationError("name the index to migrate", hint=f"--index one of {', '.join(sorted(names))}")


def migrate(project: Project, client: Client, *, index: str | None = None, queries: str | Path | None = None,
            fail_under: Sequence[str] = (), force: bool = False, no_eval: bool = False,
            thumbnail_fallback: bool = False, batch: int = 64, workers: int = 2, ks: Sequence[int] = (10, 30),
            modes: Sequence[str] | None = None, progress: Progress | None = None,
            task_timeout: float = 600.0, stop_after: str | None = None) -> MigrationResult:
    """Build a new version of the index behind its alias, re-embed, evaluate, swap (see the module doc).

    ``stop_after`` (``"build"``) stops before the gate (tests of resuming). Raises :class:`MigrationError`
    (nothing swapped) when documents cannot be re-embedded or the gate is not passed.
    """
    import kit.cluster as cluster
    from kit.cluster.apply import apply_changes
    from kit.cluster.fingerprint import record_index

    say = progress or (lambda msg: log.info("%s", msg))
    t0 = time.perf_counter()
    plan = cluster.plan(project, client)
    unmanaged = [c for c in plan.changes if c.action == "unmanaged"]
    if unmanaged:
        raise MigrationError("the plan has resources oskit did not create: "
                             + "; ".join(f"{c.kind} {c.name}" for c in unmanaged), hint="see oskit diff")
    desired = plan.desired
    name = _target_index(desired, index, plan)
    idesired = desired.indices[name]
    evaluation = None if no_eval else _eval_set(project, queries)

    # Where are we? (alias over versions, a plain index, or a migration to resume)
    current = _alias_target(client, name)
    plain = current is None and _exists(client, name)
    if current is None and not plain:
        raise MigrationError(f"index {name} does not exist", hint="oskit apply creates it; then oskit ingest")
    versions = _versions(client, name)
    serving = current or name
    old_version = int((versions.get(current or "", {}) or {}).get("version") or 1)
    old_name = f"{name}-v1" if plain else serving
    building = [n for n, v in versions.items() if v.get("state") == "building" and v.get("from") == old_name]
    if current is not None and versions.get(current, {}).get("state") == "building":
        new = current  # interrupted right after the swap: finish it
        result = MigrationResult(alias=name, old=str(versions[current].get("from")), new=new, swapped=True)
        _finish_swap(client, desired, name, result.old, new, say)
        return result
    numbers = [int(v.get("version") or 0) for v in versions.values()] + [1]
    new = building[0] if building else f"{name}-v{max(numbers) + 1}"
    new_version = int(_VERSION_RE.match(new).group("n"))  # type: ignore[union-attr]
    if not building and not force and not any(c.kind == "index" and c.name == name and c.action == "reindex"
                                              for c in plan.changes):
        raise MigrationError(f"index {name} needs no migration: the plan has no reindex change for it",
                             hint="oskit plan shows why; pass --force to rebuild it anyway")
    result = MigrationResult(alias=name, old=old_name, new=new)
    say(f"migrate {name}: {result.old} → {new}" + (" (resuming)" if building else ""))

    # 1. models next to the old ones
    t = time.perf_counter()
    model_changes = [c for c in plan.changes
                     if c.kind in ("cluster-settings", "model-group", "connector", "model") and c.action != "destroy"]
    ids = dict(plan.model_ids)
    if model_changes:
        ids.update(apply_changes(plan, client, model_changes, progress=say, task_timeout=task_timeout).model_ids)
    result.timings["models"] = time.perf_counter() - t

    # 2. pin what serves now; a plain index is copied to <name>-v1 first
    t = time.perf_counter()
    _pin_pipelines(client, serving, old_version, say)
    if plain:
        result.copied = _copy_plain(client, name, f"{name}-v1", say, batch)
    result.timings["pin"] = time.perf_counter() - t

    # 3. the new version and its pipelines
    t = time.perf_counter()
    ingest_name = idesired.settings_flat.get("index.default_pipeline")
    search_name = idesired.settings_flat.get("index.search.default_pipeline")
    new_ingest = resolve_models(desired.ingest[ingest_name], ids) if ingest_name in desired.ingest else None
    new_search = resolve_models(desired.search[search_name], ids) if search_name in desired.search else None
    _check_ids(new_ingest, new_search)
    body = copy.deepcopy(idesired.body)
    body.pop("aliases", None)
    idx_settings = body["settings"].setdefault("index", {})
    if new_ingest is not None:
        client.request("PUT", f"/_ingest/pipeline/{ingest_name}{PIN}{new_version}", body=new_ingest)
        idx_settings["default_pipeline"] = f"{ingest_name}{PIN}{new_version}"
    if new_search is not None:
        client.request("PUT", f"/_search/pipeline/{search_name}{PIN}{new_version}", body=new_search)
        idx_settings.setdefault("search", {})["default_pipeline"] = f"{search_name}{PIN}{new_version}"
    body["mappings"].setdefault("_meta", {})[VERSION_KEY] = {"of": name, "version": new_version,
                                                             "from": result.old, "state": "building"}
    if not _exists(client, new):
        say(f"create {new}")
        client.request("PUT", f"/{new}", body=body)

    # 4. re-embed every document from its stored source, until a pass finds nothing new
    drop = pipeline_outputs(new_ingest or {}) | set(_vector_fields(body["mappings"]))
    for _ in range(3):
        added = _reembed(client, serving, new, drop, result, thumbnail_fallback, batch, say, workers)
        if not added:
            break
    result.documents = int(client.request("GET", f"/{serving}/_count").get("count", 0))
    result.timings["reembed"] = time.perf_counter() - t
    if result.failures:
        raise MigrationError(f"{len(result.failures)} document(s) could not be re-embedded (first: "
                             f"{result.failures[0]['id']}: {result.failures[0]['reason']}); nothing was swapped",
                             hint="restore the files at their source_uri, or pass --thumbnail-fallback; then run "
                             "oskit migrate again (it resumes)")
    client.request("POST", f"/{new}/_refresh")
    record_index(client, new, overwrite=True)
    if stop_after == "build":
        return result

    # 5. the gate
    t = time.perf_counter()
    if evaluation is not None:
        _gate(client, evaluation, result, serving, new, fail_under, force, ks, modes, say)
    result.timings["eval"] = time.perf_counter() - t

    # 6. swap
    t = time.perf_counter()
    if plain:
        result.copied += _copy_plain(client, name, f"{name}-v1", say, batch)  # writes since the first copy
        _reembed(client, name, new, drop, result, thumbnail_fallback, batch, say, workers)
    if new_ingest is not None:
        client.request("PUT", f"/_ingest/pipeline/{ingest_name}", body=new_ingest)
    if new_search is not None:
        client.request("PUT", f"/_search/pipeline/{search_name}", body=new_search)
    stable: dict[str, Any] = {}
    if new_ingest is not None:
        stable["default_pipeline"] = ingest_name
    if new_search is not None:
        stable["search.default_pipeline"] = search_name
    if stable:
        client.request("PUT", f"/{new}/_settings", body={"index": stable})
    actions: list[dict[str, Any]] = [{"remove_index": {"index": name}} if plain else
                                     {"remove": {"index": serving, "alias": name}},
                                     {"add": {"index": new, "alias": name}}]
    say(f"swap alias {name}: {result.old} → {new}")
    client.request("POST", "/_aliases", body={"actions": actions})
    result.swapped = True
    _finish_swap(client, desired, name, result.old, new, say)
    result.timings["swap"] = time.perf_counter() - t
    result.timings["total"] = time.perf_counter() - t0
    return result


def _finish_swap(client: Client, desired: Desired, alias: str, old: str, new: str, say: Progress) -> None:
    _set_meta(client, new, state="live")
    if _exists(client, old):
        _set_meta(client, old, state="retired")
    n = int(_VERSION_RE.match(new).group("n"))  # type: ignore[union-attr]
    for kind, names in (("_ingest", desired.ingest), ("_search", desired.search)):
        for pname in names:
            client.request("DELETE", f"/{kind}/pipeline/{pname}{PIN}{n}", ignore=(404,))
    say(f"{alias} now serves {new}; {old} is kept for oskit migrate --rollback")


def _check_ids(*bodies: Any) -> None:
    from kit.cluster.desired import MODEL_PLACEHOLDER, strings_in

    for body in bodies:
        for s in strings_in(body or {}):
            if s.startswith("<") and s.endswith(": not created yet>"):
                raise MigrationError(f"model {s[1:].split(':')[0]} has no id", hint="run oskit migrate again")
            if MODEL_PLACEHOLDER.match(s):
                raise MigrationError(f"unresolved model reference {s}")


def _vector_fields(mappings: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for fname, fdef in (mappings.get("properties") or {}).items():
        if isinstance(fdef, dict) and fdef.get("type") == "knn_vector":
            out.append(prefix + fname)
        elif isinstance(fdef, dict) and "properties" in fdef:
            out += _vector_fields(fdef, prefix + fname + ".")
    return out


def _copy_plain(client: Client, src: str, dest: str, say: Progress, batch: int) -> int:
    """Copy a plain index to its first version as it is (vectors kept, no pipeline): the rollback target."""
    if not _exists(client, dest):
        resp = client.request("GET", f"/{src}") or {}
        body = resp.get(src) or {}
        settings = {k: v for k, v in _settings(client, src).items()
                    if k.startswith("index.") and k.split(".")[1] not in
                    ("uuid", "creation_date", "version", "provided_name", "routing", "resize", "blocks")}
        mappings = copy.deepcopy(body.get("mappings") or {})
        mappings.setdefault("_meta", {})[VERSION_KEY] = {"of": src, "version": 1, "state": "live"}
        say(f"copy {src} to {dest} (the version kept for rollback)")
        client.request("PUT", f"/{dest}", body={"settings": settings, "mappings": mappings})
    copied = 0
    for hits in _scan(client, src, page=batch):
        have = existing_ids(client, dest, [h["_id"] for h in hits])
        todo = [(h["_id"], h["_source"]) for h in hits if h["_id"] not in have]
        if todo:
            fails = _bulk(client, dest, todo, "_none")
            if fails:
                raise MigrationError(f"copying {src} to {dest} failed: {fails[0]['reason']}")
            copied += len(todo)
    client.request("POST", f"/{dest}/_refresh")
    return copied


def _reembed(client: Client, src: str, dest: str, drop: set[str], result: MigrationResult,
             thumbnail_fallback: bool, batch: int, say: Progress, workers: int = 2) -> int:
    """One pass over ``src``: documents not yet in ``dest`` go through its pipeline, ``workers`` _bulk requests
    in flight (the scan reads ahead while the cluster embeds)."""
    import concurrent.futures as cf

    added = 0
    failed_ids = {f["id"] for f in result.failures}

    def send(todo: list[tuple[str, dict[str, Any]]]) -> tuple[int, list[dict[str, str]]]:
        return len(todo), _bulk(client, dest, todo, None)

    def collect(fut: "cf.Future[tuple[int, list[dict[str, str]]]]") -> None:
        nonlocal added
        n, fails = fut.result()
        for f in fails:
            if f["id"] not in failed_ids:
                result.failures.append(f)
                failed_ids.add(f["id"])
        added += n
        result.reembedded += n
        say(f"re-embedded {result.reembedded} documents into {dest}")

    with cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="oskit-migrate") as pool:
        pending: list[cf.Future[tuple[int, list[dict[str, str]]]]] = []
        for hits in _scan(client, src, page=batch, source={"excludes": sorted(drop)}):
            have = existing_ids(client, dest, [h["_id"] for h in hits])
            todo: list[tuple[str, dict[str, Any]]] = []
            for h in hits:
                if h["_id"] in have:
                    result.skipped += 1
                    continue
                src_doc = {k: v for k, v in (h.get("_source") or {}).items() if k not in drop}
                data = _read_source(src_doc)
                if data is None and thumbnail_fallback and src_doc.get("thumbnail"):
                    data = base64.b64decode(src_doc["thumbnail"])
                    result.from_thumbnail += 1
                if data is None:
                    if h["_id"] not in failed_ids:
                        result.failures.append({"id": h["_id"], "reason": f"source {src_doc.get('source_uri')} "
                                                "is missing or changed (sha256 differs)"})
                        failed_ids.add(h["_id"])
                    continue
                src_doc["image"] = base64.b64encode(data).decode("ascii")
                todo.append((h["_id"], src_doc))
            if todo:
                pending.append(pool.submit(send, todo))
            while len(pending) >= max(1, workers):
                collect(pending.pop(0))
        for fut in pending:
            collect(fut)
    return added


# ------------------------------------------------------------------------------------------- gate


def _eval_set(project: Project, queries: str | Path | None) -> Any:
    from kit.job.evaluate import load_queries

    path = Path(queries) if queries else project.root / "data" / "eval" / "queries.yaml"
    if not path.is_file():
        raise MigrationError(f"no evaluation set at {path}",
                             hint="pass --queries FILE (the format of oskit eval), or --no-eval to swap ungated")
    return load_queries(path)


def _gate(client: Client, queryset: Any, result: MigrationResult, old: str, new: str, fail_under: Sequence[str],
          force: bool, ks: Sequence[int], modes: Sequence[str] | None, say: Progress) -> None:
    from kit.errors import ThresholdMissed
    from kit.job.evaluate import ALL_TEXT, check_thresholds, default_configs, evaluate, modes_from, parse_thresholds

    configs = default_configs(modes_from(modes))
    thresholds = parse_thresholds(fail_under, ks)
    say(f"evaluate {old} and {new} on {len(queryset.queries)} queries")
    rep_old = evaluate(client, queryset, index=old, configs=configs, ks=ks)
    rep_new = evaluate(client, queryset, index=new, configs=configs, ks=ks)
    primary = rep_new.primary
    group = ALL_TEXT if rep_new.row(primary, ALL_TEXT) else next((r.group for r in rep_new.rows
                                                                  if r.config == primary), ALL_TEXT)
    metric = f"mAP@{max(ks)}"
    row_old, row_new = rep_old.row(primary, group), rep_new.row(primary, group)
    result.eval_old = dict(row_old.metrics) if row_old else None
    result.eval_new = dict(row_new.metrics) if row_new else None
    try:
        result.gate += check_thresholds(rep_new, thresholds)
    except ThresholdMissed as exc:
        raise MigrationError(f"the new version {new} misses the gate: {exc}; the alias still serves {old}",
                             hint="fix the model or lower --fail-under; the new version is kept and a rerun "
                             "resumes") from None
    got_old = (result.eval_old or {}).get(metric, 0.0)
    got_new = (result.eval_new or {}).get(metric, 0.0)
    line = f"{primary} {group} {metric}: old {got_old:.4f}, new {got_new:.4f}"
    if got_new + 1e-9 < got_old:
        if not force:
            raise MigrationError(f"the new version {new} is worse than {old} ({line}); the alias still serves {old}",
                                 hint="pass --force to swap anyway")
        result.forced = True
        line += " (worse; swapped because of --force)"
    result.gate.append(line)
    say(line)


# ------------------------------------------------------------------------------------------ rollback


def rollback(project: Project, client: Client, *, index: str | None = None,
             progress: Progress | None = None) -> RollbackResult:
    """Point the alias back at the version it served before the last migration (kept, with its pipelines)."""
    say = progress or (lambda msg: log.info("%s", msg))
    desired = build_desired(project)
    names = [n for n, i in desired.indices.items() if i.kind == "index"]
    name = index or (names[0] if len(names) == 1 else None)
    if name is None or name not in names:
        raise MigrationError("name the index to roll back", hint=f"--index one of {', '.join(sorted(names))}")
    current = _alias_target(client, name)
    if current is None:
        raise MigrationError(f"{name} is not an alias over index versions: there is nothing to roll back to",
                             hint="oskit migrate makes the versions")
    versions = _versions(client, name)
    previous = (versions.get(current) or {}).get("from")
    if not previous or not _exists(client, str(previous)):
        raise MigrationError(f"{current} records no earlier version that still exists (from: {previous})")
    previous = str(previous)
    say(f"swap alias {name}: {current} → {previous}")
    client.request("POST", "/_aliases", body={"actions": [{"remove": {"index": current, "alias": name}},
                                                           {"add": {"index": previous, "alias": name}}]})
    _set_meta(client, previous, state="live")
    _set_meta(client, current, state="retired")
    return RollbackResult(alias=name, from_index=current, to_index=previous)

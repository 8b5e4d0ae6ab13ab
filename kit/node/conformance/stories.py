"""Evaluating one story the way upstream's tester does (``StoryEvaluator``, ``ChapterEvaluator``,
``SupplementalChapterEvaluator``): filters, prologues/chapters/epilogues, retries, outputs, and the
checks against the spec."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import quote

from kit.node.conformance.results import ChapterResult, Evaluation, Result, StoryResult, overall_result
from kit.node.conformance.transport import HttpTransport, Response, _serialize_payload
from kit.node.conformance.values import (
    _UNDEFINED,
    StoryOutputs,
    _evaluate_payload,
    _js_str,
    _refs_in,
    lodash_get,
)

__all__ = ["StoryContext", "run_story"]


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

"""The library behind ``oskit node compare``."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from kit.errors import NodeError
from kit.oracle.runner import Outcome, Report, Side, run_sequences
from kit.oracle.sources import compare_stories, load_corpus, load_recording

__all__ = ["run_compare"]


def _version(url: str) -> str:
    import httpx

    try:
        info = httpx.get(url.rstrip("/") + "/", timeout=30).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise NodeError(f"GET {url}/ failed: {exc}", hint="is the real node running? (--real URL)") from None
    return str((info.get("version") or {}).get("number") or "3.3.0")


def run_compare(real_url: str, node_url: str | None = None, *, corpus: bool = True, only: Iterable[str] = (),
                recordings: Iterable[Path] = (), rewrite: Mapping[str, str] | None = None, stories: bool = False,
                model_server: str | None = None, spec_dir: Path | None = None, allow_faiss: bool = False,
                progress: Callable[[Outcome], None] | None = None) -> tuple[Report, dict[str, tuple[str, str]]]:
    """Compare ``node_url`` (or a fresh embedded node at the real one's version) against ``real_url``."""
    only = list(only)
    with contextlib.ExitStack() as stack:
        if node_url is None:
            from kit.node.server import NodeServer

            data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oskit-oracle-")))
            server = NodeServer(data, version=_version(real_url))
            node_url = server.start()
            stack.callback(server.stop)
        real, node = Side("real", real_url), Side("node", node_url)
        stack.callback(real.close)
        stack.callback(node.close)
        sequences = load_corpus(only=only) if corpus else []
        replays = [load_recording(p, rewrite=rewrite) for p in recordings]
        if not allow_faiss:
            for seq in replays:
                if any('"faiss"' in json.dumps(step.body) for step in seq.steps
                       if step.body is not None and not isinstance(step.body, bytes)):
                    raise NodeError(f"recording {seq.name} creates faiss k-NN fields: a real node built from Maven "
                                    "Central has no FAISS natives and exits on the first such document",
                                    hint="pass --rewrite faiss=lucene (or --allow-faiss for a cluster with the natives)")
        variables: dict[str, Any] = {"model_server": (model_server or "").rstrip("/")}
        report = run_sequences(sequences, real, node, variables=variables, progress=progress)
        story_results: dict[str, tuple[str, str]] = {}
        if stories:  # before the replays, which leave the project's resources on both sides
            from kit.node.conformance import default_spec_dir

            spec = spec_dir or default_spec_dir()
            if spec is None:
                raise NodeError("the OpenSearch API spec (and its stories) is not found",
                                hint="it lives in ../shared/opensearch-api-spec")
            story_report, story_results = compare_stories(real, node, spec, only=only)
            report.outcomes.extend(story_report.outcomes)
            if progress is not None:
                for o in story_report.outcomes:
                    progress(o)
        if replays:
            replayed = run_sequences(replays, real, node, variables=variables, progress=progress)
            report.outcomes.extend(replayed.outcomes)
            report.skipped.extend(replayed.skipped)
        return report, story_results

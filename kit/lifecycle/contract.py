"""``oskit test``: contract tests of the project's pipelines against a cluster (read-only).

Ingest: sample documents — an image with text, one without, a corrupt one — go through
``_ingest/pipeline/{id}/_simulate?verbose=true``; every field the pipeline writes must be there with the
type the mapping declares (``knn_vector``: a list of numbers of the declared dimension). A broken
contract names the pipeline, the processor (``processors[i].type (tag)``) and the field. The corrupt
image must fail as a document error (or be skipped by the pipeline), never turn into wrong fields.

Search: for every search pipeline and each index using it, one probe query per mode — ``vector`` (a
neural query per vector field, no ``model_id``), ``image`` (``query_image`` on image+text fields),
``hybrid`` (BM25 + neural through the pipeline's normalisation) and ``lexical`` — must answer 200.
Neural queries also go through the index's *default* search pipeline (no ``search_pipeline`` named),
which is how clients query.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from kit.cluster.client import Client
from kit.cluster.desired import build_desired
from kit.cluster.fingerprint import PROBE_IMAGES
from kit.config.loader import Project
from kit.errors import ClusterError, NotFound

__all__ = ["Case", "ContractReport", "run_contract_tests", "sample_documents"]


@dataclass
class Case:
    suite: str        # "ingest-pipeline images-ingest" / "search-pipeline images-search"
    name: str         # "image with text" / "vector image_embedding"
    ok: bool
    message: str = ""
    processor: str | None = None
    field: str | None = None
    seconds: float = 0.0


@dataclass
class ContractReport:
    cases: list[Case] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "passed": sum(c.ok for c in self.cases), "failed": sum(not c.ok for c in self.cases),
                "cases": [{"suite": c.suite, "name": c.name, "ok": c.ok, "message": c.message,
                           "processor": c.processor, "field": c.field} for c in self.cases]}

    def render(self) -> str:
        lines = []
        for c in self.cases:
            lines.append(f"{'ok  ' if c.ok else 'FAIL'}  {c.suite}: {c.name}" + (f" — {c.message}" if c.message else ""))
        n_bad = sum(not c.ok for c in self.cases)
        lines.append("")
        lines.append(f"{len(self.cases) - n_bad} passed, {n_bad} failed" if n_bad else f"{len(self.cases)} passed")
        return "\n".join(lines)

    def to_junit(self) -> str:
        suites: dict[str, list[Case]] = {}
        for c in self.cases:
            suites.setdefault(c.suite, []).append(c)
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               f'<testsuites name="oskit test" tests="{len(self.cases)}" '
               f'failures="{sum(not c.ok for c in self.cases)}">']
        for sname, cases in suites.items():
            out.append(f'  <testsuite name={quoteattr(sname)} tests="{len(cases)}" '
                       f'failures="{sum(not c.ok for c in cases)}">')
            for c in cases:
                head = f'    <testcase classname={quoteattr(sname)} name={quoteattr(c.name)} time="{c.seconds:.3f}"'
                if c.ok:
                    out.append(head + "/>")
                else:
                    out.append(head + ">")
                    out.append(f"      <failure message={quoteattr(c.message)}>{escape(c.message)}</failure>")
                    out.append("    </testcase>")
            out.append("  </testsuite>")
        out.append("</testsuites>")
        return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------- samples


def _text_image() -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (160, 64), (255, 255, 255))
    ImageDraw.Draw(im).text((10, 20), "HOTEL 42", fill=(0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _doc(name: str, data: bytes, valid: bool) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    src: dict[str, Any] = {"image": base64.b64encode(data).decode("ascii"), "file_name": name,
                           "source_uri": f"file:///oskit-test/{name}", "sha256": digest, "bytes": len(data),
                           "metadata": {"oskit_test": True}}
    if valid:
        src.update(thumbnail=base64.b64encode(data).decode("ascii"), format="png", width=32, height=32)
    return src


def sample_documents() -> list[tuple[str, dict[str, Any], bool]]:
    """``(label, source, valid)``: the documents every ingest pipeline is simulated with."""
    return [("image with text", _doc("with-text.png", _text_image(), True), True),
            ("image without text", _doc("no-text.png", base64.b64decode(PROBE_IMAGES[1]), True), True),
            ("corrupt image", _doc("corrupt.png", b"\x89PNG\r\n\x1a\nthis is not an image", False), False)]


# ------------------------------------------------------------------------------------------- checks


def _fields(mappings: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, fdef in (mappings.get("properties") or {}).items():
        if not isinstance(fdef, dict):
            continue
        out[prefix + name] = fdef
        if "properties" in fdef:
            out.update(_fields(fdef, prefix + name + "."))
    return out


def _type_problem(value: Any, fdef: dict[str, Any]) -> str | None:
    ftype = fdef.get("type", "object")
    if ftype == "knn_vector":
        if not isinstance(value, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                  for x in value):
            return f"expected a knn_vector (list of numbers), got {type(value).__name__}"
        if len(value) != int(fdef.get("dimension", -1)):
            return f"{len(value)}-d vector, the mapping says dimension {fdef.get('dimension')}"
        return None
    values = value if isinstance(value, list) else [value]
    for v in values:
        if ftype in ("text", "keyword", "binary") and not isinstance(v, str):
            return f"expected {ftype} (a string), got {type(v).__name__}"
        if ftype in ("integer", "long", "short", "byte") and (not isinstance(v, int) or isinstance(v, bool)):
            return f"expected {ftype}, got {type(v).__name__}"
        if ftype in ("float", "double", "half_float") and not isinstance(v, (int, float)):
            return f"expected {ftype}, got {type(v).__name__}"
        if ftype == "object" and not isinstance(v, dict):
            return f"expected an object, got {type(v).__name__}"
    return None


def _producers(pipeline: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """``{output field: (processor label, source field or None)}`` from the pipeline definition."""
    out: dict[str, tuple[str, str | None]] = {}
    for i, proc in enumerate(pipeline.get("processors") or []):
        if not isinstance(proc, dict) or len(proc) != 1:
            continue
        (ptype, cfg), = proc.items()
        cfg = cfg if isinstance(cfg, dict) else {}
        label = f"processors[{i}].{ptype}" + (f" ({cfg['tag']})" if cfg.get("tag") else "")
        if ptype == "text_image_embedding" and isinstance(cfg.get("embedding"), str):
            out[cfg["embedding"]] = (label, None)
        elif ptype in ("text_embedding", "sparse_encoding"):
            for src, dst in (cfg.get("field_map") or {}).items():
                out[str(dst)] = (label, str(src))
        elif ptype == "ml_inference":
            for m in cfg.get("output_map") or []:
                for dst in (m or {}):
                    out[str(dst)] = (label, None)
    return out


def _get(src: dict[str, Any], path: str) -> Any:
    cur: Any = src
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _ingest_cases(client: Client, name: str, index: str, report: ContractReport) -> None:
    suite = f"ingest-pipeline {name}"
    try:
        pipeline = (client.request("GET", f"/_ingest/pipeline/{name}") or {}).get(name)
    except NotFound:
        pipeline = None
    if pipeline is None:
        report.cases.append(Case(suite, "exists", False, f"pipeline {name} is not in the cluster (run oskit apply)"))
        return
    try:
        mappings = next(iter((client.request("GET", f"/{index}/_mapping") or {}).values()))["mappings"]
    except (NotFound, StopIteration, KeyError):
        report.cases.append(Case(suite, "mapping", False, f"index {index} (which uses {name}) is not in the cluster"))
        return
    fields = _fields(mappings)
    producers = _producers(pipeline)
    for label, src, valid in sample_documents():
        t = time.perf_counter()
        body = {"docs": [{"_index": index, "_id": label.replace(" ", "-"), "_source": src}]}
        try:
            resp = client.request("POST", f"/_ingest/pipeline/{name}/_simulate", body=body)
        except ClusterError as exc:
            report.cases.append(Case(suite, label, False, f"_simulate failed: {exc}"))
            continue
        doc = (resp.get("docs") or [{}])[0]
        took = time.perf_counter() - t
        if doc.get("error"):
            err = doc["error"]
            reason = err.get("reason") if isinstance(err, dict) else str(err)
            if valid:
                report.cases.append(Case(suite, label, False, f"pipeline {name}: the document failed: {reason}",
                                         seconds=took))
            else:
                report.cases.append(Case(suite, label, True, f"rejected as expected ({str(reason)[:120]})",
                                         seconds=took))
            continue
        out = ((doc.get("doc") or {}).get("_source")) or {}
        problems: list[Case] = []
        for fname, (proc, source_field) in sorted(producers.items()):
            fdef = fields.get(fname)
            value = _get(out, fname)
            if value is None:
                if not valid or fdef is None:
                    continue
                if source_field is not None and not _get(out, source_field):
                    continue  # a text vector of an empty or absent text: nothing to embed
                if fdef.get("type") == "knn_vector" or label == "image with text":
                    problems.append(Case(suite, label, False, f"pipeline {name}, processor {proc}, field {fname}: "
                                         "missing from the output", proc, fname, took))
                continue
            if fdef is None:
                problems.append(Case(suite, label, False, f"pipeline {name}, processor {proc}, field {fname}: not in "
                                     f"the mapping of index {index}", proc, fname, took))
                continue
            bad = _type_problem(value, fdef)
            if bad:
                problems.append(Case(suite, label, False, f"pipeline {name}, processor {proc}, field {fname}: {bad} "
                                     f"(index {index})", proc, fname, took))
        if not valid and not problems:
            report.cases.append(Case(suite, label, True, "passed through without wrong fields", seconds=took))
            continue
        report.cases += problems or [Case(suite, label, True, seconds=took)]


def _search_cases(client: Client, name: str, index: str, default: bool, report: ContractReport) -> None:
    suite = f"search-pipeline {name}"
    try:
        resp = client.request("GET", f"/{index}/_mapping") or {}
        mappings = next(iter(resp.values()))["mappings"]
    except (NotFound, StopIteration, KeyError):
        report.cases.append(Case(suite, "mapping", False, f"index {index} is not in the cluster"))
        return
    fields = _fields(mappings)
    vectors = {f: d for f, d in fields.items() if d.get("type") == "knn_vector"}
    texts = [f for f, d in fields.items() if d.get("type") == "text"]
    try:
        pipeline = (client.request("GET", f"/_search/pipeline/{name}") or {}).get(name) or {}
    except NotFound:
        report.cases.append(Case(suite, "exists", False, f"pipeline {name} is not in the cluster (run oskit apply)"))
        return
    enrich = next((p["neural_query_enricher"] for p in pipeline.get("request_processors") or []
                   if isinstance(p, dict) and "neural_query_enricher" in p), {})
    defaults = dict(enrich.get("neural_field_default_id") or {})
    probes: list[tuple[str, str | None, dict[str, Any]]] = []
    for f in sorted(vectors):
        probes.append((f"vector {f}", f, {"neural": {f: {"query_text": "a red circle", "k": 3}}}))
        if "image" in f:
            probes.append((f"image {f}", f, {"neural": {f: {"query_image": PROBE_IMAGES[0], "k": 3}}}))
    if texts:
        probes.append((f"lexical {', '.join(texts)}", None, {"multi_match": {"query": "red circle", "fields": texts}}))
    if texts and vectors:
        vf = next((f for f in sorted(vectors) if "image" in f), sorted(vectors)[0])
        probes.append((f"hybrid {', '.join(texts)} + {vf}", vf, {"hybrid": {"queries": [
            {"multi_match": {"query": "red circle", "fields": texts}},
            {"neural": {vf: {"query_text": "a red circle", "k": 3}}}]}}))
    routes = [("search_pipeline=" + name, {"search_pipeline": name})]
    if default:
        routes.append((f"default pipeline of {index}", {}))
    for label, vf, query in probes:
        for how, params in routes:
            if not params and vf is None:
                continue
            t = time.perf_counter()
            proc = "neural_query_enricher" if vf else "request"
            try:
                client.request("POST", f"/{index}/_search", body={"size": 3, "query": query, "_source": False},
                               params=params or None)
                report.cases.append(Case(suite, f"{label} via {how}", True, seconds=time.perf_counter() - t))
            except ClusterError as exc:
                hint = "" if not vf or vf in defaults else f" (no default model for {vf} in neural_field_default_id)"
                report.cases.append(Case(suite, f"{label} via {how}", False,
                                         f"search pipeline {name}, processor {proc}, field {vf or '-'}: {exc}{hint}",
                                         proc, vf, time.perf_counter() - t))


def run_contract_tests(project: Project, client: Client) -> ContractReport:
    """Run every ingest and search pipeline contract of ``project`` against ``client``'s cluster."""
    desired = build_desired(project)
    report = ContractReport()
    users: dict[str, list[str]] = {}
    search_users: dict[str, list[str]] = {}
    for iname, idesired in sorted(desired.indices.items()):
        if idesired.kind != "index":
            continue
        p = idesired.settings_flat.get("index.default_pipeline")
        if p:
            users.setdefault(str(p), []).append(iname)
        sp = idesired.settings_flat.get("index.search.default_pipeline")
        if sp:
            search_users.setdefault(str(sp), []).append(iname)
    for name in sorted(desired.ingest):
        for index in users.get(name) or []:
            _ingest_cases(client, name, index, report)
        if not users.get(name):
            report.cases.append(Case(f"ingest-pipeline {name}", "used by an index", True,
                                     "no index of the project uses it by default: not simulated"))
    for name in sorted(desired.search):
        for index in search_users.get(name) or []:
            _search_cases(client, name, index, True, report)
        if not search_users.get(name):
            report.cases.append(Case(f"search-pipeline {name}", "used by an index", True,
                                     "no index of the project uses it by default: not probed"))
    return report

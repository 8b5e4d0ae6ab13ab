"""Relevance evaluation: P@k, R@k, F1@k, AP and mAP over a query file, for several search modes.

Definitions (per query, ``rel@k`` = relevant hits among the first k, ``P`` = ground-truth positives):

* ``P@k = rel@k / k``  ·  ``R@k = rel@k / |P|``  ·  ``F1@k = 2·P@k·R@k / (P@k + R@k)`` (0 when both are 0)
* ``AP@k = (1 / |P|) · Σ_{i ≤ k, hit i relevant} P@i`` — the mean of the precision at each relevant rank,
  over *all* positives (a positive never retrieved contributes 0)
* ``mAP@k`` = mean of ``AP@k`` over the queries.

Query file (YAML; the format :func:`kit.models.synth.write_eval_set` writes)::

    index: images                 # optional
    queries:
      - {id: q1, type: text, text: red circle, relevant: [eval-1-00003, eval-1-00017]}
      - {id: q2, type: ocr, text: "SN 4411-AB", relevant: [eval-1-00042]}
      - {id: q3, type: image, image_file: query_images/q3.jpg, relevant: [eval-1-00042]}

``relevant`` entries match a hit by its ``_id`` (sha256), its ``file_name`` or the file name's stem.
``type: text`` searches ``--field image``, ``ocr`` searches ``--field ocr_text``, ``image`` is a
similar-photo query (vector mode only). ``field:`` on a query overrides the default.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from kit.errors import EvalError, KitError, ThresholdMissed
from kit.job.search import DEFAULT_PROMPT_TEMPLATE, FIELDS, MODES, Hit, PromptTemplates, search

__all__ = [
    "CANDIDATE_TEMPLATES",
    "EvalConfig",
    "EvalReport",
    "EvalRow",
    "Query",
    "QuerySet",
    "Threshold",
    "average_precision",
    "check_thresholds",
    "choose_templates",
    "default_configs",
    "evaluate",
    "f1_at_k",
    "load_queries",
    "mean_average_precision",
    "parse_thresholds",
    "precision_at_k",
    "query_metrics",
    "recall_at_k",
    "similar_labels_heldout",
    "similar_labels_indomain",
]

log = logging.getLogger("kit.job.evaluate")

GROUPS = ("text", "ocr", "image")
#: the aggregate row: the queries every mode answers (photo queries are vector-only, so they stay apart)
ALL_TEXT = "text+ocr"
_TYPE_FIELD = {"text": "image", "ocr": "ocr_text", "image": "image"}


# -------------------------------------------------------------------------------------------- metrics


def _check_k(k: int) -> None:
    if k < 1:
        raise EvalError(f"k must be at least 1 (got {k})")


def precision_at_k(relevant: Sequence[bool], k: int) -> float:
    """``rel@k / k``; a ranking shorter than k counts the missing ranks as not relevant."""
    _check_k(k)
    return sum(1 for r in relevant[:k] if r) / k


def recall_at_k(relevant: Sequence[bool], k: int, n_positives: int) -> float:
    """``rel@k / |positives|``."""
    _check_k(k)
    if n_positives < 1:
        raise EvalError("a query needs at least one relevant item")
    return sum(1 for r in relevant[:k] if r) / n_positives


def f1_at_k(relevant: Sequence[bool], k: int, n_positives: int) -> float:
    p, r = precision_at_k(relevant, k), recall_at_k(relevant, k, n_positives)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def average_precision(relevant: Sequence[bool], n_positives: int, k: int | None = None) -> float:
    """Mean of P@i at each relevant rank i ≤ k, divided by all positives (not just the retrieved ones)."""
    if n_positives < 1:
        raise EvalError("a query needs at least one relevant item")
    ranks = relevant if k is None else relevant[:k]
    hits = 0
    total = 0.0
    for i, rel in enumerate(ranks, start=1):
        if rel:
            hits += 1
            total += hits / i
    return total / n_positives


def mean_average_precision(runs: Iterable[tuple[Sequence[bool], int]], k: int | None = None) -> float:
    """Mean AP over ``(relevance list, positives)`` pairs; 0 for no queries."""
    aps = [average_precision(rel, n, k) for rel, n in runs]
    return sum(aps) / len(aps) if aps else 0.0


def query_metrics(relevant: Sequence[bool], n_positives: int, ks: Sequence[int]) -> dict[str, float]:
    """All metrics of one query: ``P@k R@k F1@k AP@k`` for each k, plus ``R@1``."""
    out: dict[str, float] = {"R@1": recall_at_k(relevant, 1, n_positives)}
    for k in ks:
        out[f"P@{k}"] = precision_at_k(relevant, k)
        out[f"R@{k}"] = recall_at_k(relevant, k, n_positives)
        out[f"F1@{k}"] = f1_at_k(relevant, k, n_positives)
        out[f"AP@{k}"] = average_precision(relevant, n_positives, k)
    return out


# -------------------------------------------------------------------------------------------- queries


@dataclass
class Query:
    id: str
    type: str  # text | ocr | image
    relevant: list[str]
    text: str | None = None
    image: Path | None = None
    field: str = "image"
    kind: str | None = None
    source_id: str | None = None

    @property
    def group(self) -> str:
        return self.type


@dataclass
class QuerySet:
    path: Path
    queries: list[Query]
    index: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def load_queries(path: str | Path) -> QuerySet:
    """Read and check a query file; every problem is reported at once (:class:`EvalError`)."""
    import yaml

    from kit.config.loader import safe_load_bounded

    p = Path(path)
    try:
        raw = safe_load_bounded(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"query file not found: {p}") from None
    except yaml.YAMLError as exc:
        raise EvalError(f"{p}: invalid YAML: {exc}") from None
    if isinstance(raw, list):
        raw = {"queries": raw}
    materialise_eval_set(p, raw)  # a shipped generated set: pixels are made on first use
    if not isinstance(raw, dict) or not isinstance(raw.get("queries"), list):
        raise EvalError(f"{p}: expected a mapping with a 'queries' list")
    problems: list[str] = []
    queries: list[Query] = []
    seen: set[str] = set()
    for i, q in enumerate(raw["queries"]):
        where = f"queries[{i}]"
        if not isinstance(q, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        qid = str(q.get("id", f"q{i}"))
        if qid in seen:
            problems.append(f"{where}: duplicate id {qid!r}")
        seen.add(qid)
        image = q.get("image_file") or q.get("image")
        qtype = q.get("type") or ("image" if image else "text")
        if qtype not in GROUPS:
            problems.append(f"{where}.type: {qtype!r} is not one of {', '.join(GROUPS)}")
            continue
        relevant = q.get("relevant")
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, (str, int)) for r in relevant):
            problems.append(f"{where}.relevant: a non-empty list of ids or file names is needed")
            continue
        fld = q.get("field") or _TYPE_FIELD[qtype]
        if fld not in FIELDS:
            problems.append(f"{where}.field: {fld!r} is not one of {', '.join(FIELDS)}")
            continue
        if qtype == "image":
            if not image:
                problems.append(f"{where}: an image query needs image_file")
                continue
            ipath = (p.parent / str(image)).resolve()
            if not ipath.is_file():
                problems.append(f"{where}.image_file: {ipath} not found")
                continue
            queries.append(Query(qid, qtype, [str(r) for r in relevant], image=ipath, field=fld,
                                 kind=q.get("kind"), source_id=q.get("source_id")))
        else:
            text = q.get("text")
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{where}.text: a query text is needed")
                continue
            queries.append(Query(qid, qtype, [str(r) for r in relevant], text=text, field=fld, kind=q.get("kind")))
    if problems:
        shown = "\n".join(f"{p}: {m}" for m in problems[:20])
        more = f"\n… {len(problems) - 20} more" if len(problems) > 20 else ""
        raise EvalError(f"{len(problems)} problem(s) in the query file:\n{shown}{more}")
    if not queries:
        raise EvalError(f"{p}: no queries")
    return QuerySet(path=p, queries=queries, index=raw.get("index"), raw=raw)


def is_relevant(hit: Hit, relevant: set[str]) -> bool:
    name = str(hit.source.get("file_name") or "")
    return hit.id in relevant or name in relevant or (bool(name) and Path(name).stem in relevant)


# ------------------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class EvalConfig:
    """One way of answering queries: a mode, with or without the prompt template."""

    mode: str
    template: "str | PromptTemplates | None" = DEFAULT_PROMPT_TEMPLATE
    #: the row without a template next to one with it (named "… (no template)")
    baseline: bool = False

    @property
    def name(self) -> str:
        return f"{self.mode} (no template)" if self.baseline else self.mode


def default_configs(modes: Sequence[str] = MODES,
                    template: "str | PromptTemplates | None" = DEFAULT_PROMPT_TEMPLATE) -> list[EvalConfig]:
    """tags, then each vector-backed mode with and (if a template is set) without the template."""
    if isinstance(template, PromptTemplates) and not (template.word or template.phrase):
        template = None
    out: list[EvalConfig] = []
    for m in modes:
        if m not in MODES:
            raise EvalError(f"unknown mode {m!r} (known: {', '.join(MODES)})")
        if m == "tags":
            out.append(EvalConfig("tags", None))
        else:
            out.append(EvalConfig(m, template))
            if template:
                out.append(EvalConfig(m, None, baseline=True))
    return out


@dataclass
class EvalRow:
    config: str
    mode: str
    group: str  # text | ocr | image | all
    queries: int
    metrics: dict[str, float]


@dataclass
class EvalReport:
    ks: list[int]
    rows: list[EvalRow]
    per_query: list[dict[str, Any]]
    primary: str

    def row(self, config: str, group: str = ALL_TEXT) -> EvalRow | None:
        return next((r for r in self.rows if r.config == config and r.group == group), None)

    def metric_names(self) -> list[str]:
        names = ["R@1"]
        for k in self.ks:
            names += [f"P@{k}", f"R@{k}", f"F1@{k}", f"mAP@{k}"]
        return names

    def to_json(self) -> dict[str, Any]:
        return {
            "ks": self.ks, "primary": self.primary,
            "rows": [{"config": r.config, "mode": r.mode, "group": r.group, "queries": r.queries,
                      "metrics": {k: round(v, 4) for k, v in r.metrics.items()}} for r in self.rows],
            "queries": self.per_query,
        }


def _applies(cfg: EvalConfig, q: Query) -> bool:
    """Image queries are similar-photo searches: vector configs only (the template does not touch them,
    so both vector rows show the same image numbers)."""
    return q.type != "image" or cfg.mode == "vector"


_NAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def check_ground_truth(client: Any, queryset: QuerySet, index: str) -> None:
    """Refuse to evaluate what can only score zero: an empty index, or ``relevant`` entries that match no
    document (by ``_id``, ``file_name`` or the file name's stem, as :func:`is_relevant` matches hits)."""
    from kit.errors import ClusterError

    try:
        count = (client.request("GET", f"/{index}/_count") or {}).get("count")
    except ClusterError as exc:
        raise EvalError(f"cannot evaluate index {index!r}: {exc}") from None
    if count == 0:
        raise EvalError(f"index {index!r} is empty: every metric would be 0",
                        hint="ingest the evaluation images first (oskit eval QUERIES --ingest, or oskit ingest)")
    wanted = sorted({r for q in queryset.queries for r in q.relevant})
    found: set[str] = set()
    for i in range(0, len(wanted), 200):
        batch = wanted[i:i + 200]
        names = [r + ext for r in batch for ext in _NAME_EXTENSIONS + tuple(e.upper() for e in _NAME_EXTENSIONS)]
        body = {"size": 10_000, "_source": ["file_name"],
                "query": {"bool": {"should": [{"ids": {"values": batch}}, {"terms": {"file_name": batch + names}}]}}}
        for hit in ((client.request("POST", f"/{index}/_search", body=body) or {}).get("hits") or {}).get("hits") or []:
            name = str((hit.get("_source") or {}).get("file_name") or "")
            found.update(x for x in (hit.get("_id"), name, Path(name).stem if name else None) if x)
    missing = [(q.id, r) for q in queryset.queries for r in q.relevant if r not in found]
    if missing:
        shown = ", ".join(f"{qid}: {r}" for qid, r in missing[:10]) + (f", … {len(missing) - 10} more"
                                                                          if len(missing) > 10 else "")
        raise EvalError(f"{len(missing)} relevant entr{'y' if len(missing) == 1 else 'ies'} in {queryset.path} "
                        f"match no document of index {index!r} ({shown})",
                        hint="a relevant entry is a document _id (sha256), a file_name or its stem; ingest the "
                             "missing images or fix the ids")


def evaluate(
    client: Any,
    queryset: QuerySet,
    *,
    index: str | None = None,
    configs: Sequence[EvalConfig] | None = None,
    ks: Sequence[int] = (10, 30),
    progress: Callable[[int, int], None] | None = None,
    search_pipeline: str | None = None,
) -> EvalReport:
    """Run every query under every config and aggregate by query group and over all text queries.

    ``search_pipeline`` evaluates another search pipeline than the index's default (e.g. other
    hybrid weights); it must carry the neural_query_enricher too.
    """
    from kit.job.similar import similar

    ks = sorted({int(k) for k in ks})
    for k in ks:
        _check_k(k)
    configs = list(configs or default_configs())
    if not configs:
        raise EvalError("no search modes to evaluate")
    idx = index or queryset.index or "images"
    check_ground_truth(client, queryset, idx)
    depth = max(ks)
    per_query: list[dict[str, Any]] = []
    sums: dict[tuple[str, str], dict[str, float]] = {}
    counts: dict[tuple[str, str], int] = {}
    image_results: dict[str, list[Hit]] = {}
    jobs = [(cfg, q) for cfg in configs for q in queryset.queries if _applies(cfg, q)]
    for n, (cfg, q) in enumerate(jobs, start=1):
        if q.type == "image":
            if q.id not in image_results:
                assert q.image is not None
                image_results[q.id] = similar(client, q.image, index=idx, k=depth).hits
            hits = image_results[q.id]
        else:
            assert q.text is not None
            hits = search(client, q.text, index=idx, k=depth, mode=cfg.mode, field=q.field,
                          prompt_template=cfg.template, search_pipeline=search_pipeline).hits
        rel = set(q.relevant)
        flags = [is_relevant(h, rel) for h in hits]
        m = query_metrics(flags, len(rel), ks)
        per_query.append({"config": cfg.name, "id": q.id, "type": q.type, "kind": q.kind,
                          "query": q.text if q.text is not None else str(q.image),
                          "positives": len(rel), "found": sum(flags),
                          "metrics": {k: round(v, 4) for k, v in m.items()},
                          "top": [h.source.get("file_name") or h.id for h in hits[:3]]})
        for group in (q.group, ALL_TEXT) if q.type != "image" else (q.group,):
            acc = sums.setdefault((cfg.name, group), {})
            for key, v in m.items():
                acc[key] = acc.get(key, 0.0) + v
            counts[(cfg.name, group)] = counts.get((cfg.name, group), 0) + 1
        if progress:
            progress(n, len(jobs))
    rows: list[EvalRow] = []
    for group in (*GROUPS, ALL_TEXT):
        for cfg in configs:
            key = (cfg.name, group)
            if key not in counts:
                continue
            c = counts[key]
            metrics = {}
            for name, total in sums[key].items():
                metrics[name.replace("AP@", "mAP@")] = total / c
            rows.append(EvalRow(cfg.name, cfg.mode, group, c, metrics))
    primary = next((c.name for c in configs if c.mode == "vector" and not c.baseline), configs[0].name)
    if not any(c.mode == "vector" for c in configs):
        primary = configs[0].name
    return EvalReport(ks=ks, rows=rows, per_query=per_query, primary=primary)


# ----------------------------------------------------------------------------------------- thresholds


@dataclass(frozen=True)
class Threshold:
    """``[selector:]…metric[@k]=value``: selectors are a mode (tags, vector, hybrid) and/or a group
    (text, ocr, image, text+ocr); the mode defaults to the report's primary config, the group to
    ``text+ocr`` (every text and OCR query)."""

    metric: str  # normalised, e.g. "mAP@30", "R@1"
    value: float
    mode: str | None = None
    group: str = ALL_TEXT
    text: str = ""


_METRIC_RE = re.compile(r"^(map|ap|p|r|f1|precision|recall)(?:@(\d+))?$", re.IGNORECASE)
_METRIC_NAMES = {"map": "mAP", "ap": "mAP", "p": "P", "precision": "P", "r": "R", "recall": "R", "f1": "F1"}


def parse_thresholds(items: Iterable[str], ks: Sequence[int]) -> list[Threshold]:
    """Parse ``--fail-under`` values such as ``map=0.5``, ``hybrid:map@30=0.6``, ``image:r@1=0.95``.

    A metric without ``@k`` uses the largest k.
    """
    out: list[Threshold] = []
    kmax = max(ks)
    for item in items:
        lhs, sep, rhs = item.partition("=")
        try:
            value = float(rhs)
        except ValueError:
            value = float("nan")
        if not sep or value != value:
            raise EvalError(f"bad threshold {item!r}", hint="use METRIC=VALUE, e.g. --fail-under map=0.5")
        *selectors, metric = lhs.strip().split(":")
        m = _METRIC_RE.match(metric.strip())
        if not m:
            raise EvalError(f"unknown metric in threshold {item!r}", hint="metrics: map, p, r, f1 (optionally @k)")
        k = int(m.group(2)) if m.group(2) else kmax
        name = _METRIC_NAMES[m.group(1).lower()]
        if not (name == "R" and k == 1) and k not in ks:
            raise EvalError(f"threshold {item!r} uses k={k}, which is not evaluated",
                            hint=f"add it to -k (now {','.join(map(str, ks))})")
        mode, group = None, ALL_TEXT
        for sel in selectors:
            sel = sel.strip()
            if sel in MODES:
                mode = sel
            elif sel in (*GROUPS, ALL_TEXT):
                group = sel
            else:
                raise EvalError(f"unknown selector {sel!r} in threshold {item!r}",
                                hint=f"modes: {', '.join(MODES)}; groups: {', '.join((*GROUPS, ALL_TEXT))}")
        out.append(Threshold(f"{name}@{k}", value, mode, group, item))
    return out


def check_thresholds(report: EvalReport, thresholds: Sequence[Threshold]) -> list[str]:
    """Raise :class:`ThresholdMissed` listing every missed threshold; returns the passed ones' descriptions."""
    missed: list[str] = []
    passed: list[str] = []
    for t in thresholds:
        config = report.primary if t.mode is None else t.mode
        row = report.row(config, t.group)
        if row is None:
            raise EvalError(f"threshold {t.text!r}: no results for {config} on {t.group} queries",
                            hint="evaluate that mode (--mode) with queries of that type")
        got = row.metrics.get(t.metric)
        if got is None:
            raise EvalError(f"threshold {t.text!r}: metric {t.metric} was not computed")
        line = f"{config} {t.group} {t.metric} = {got:.4f} (threshold {t.value:g})"
        (passed if got >= t.value else missed).append(line)
    if missed:
        raise ThresholdMissed("relevance below threshold: " + "; ".join(missed),
                              hint="see the table above; lower --fail-under only if the drop is expected")
    return passed


def modes_from(names: Sequence[str] | None) -> list[str]:
    """Validate ``--mode`` values (a comma-separated list is accepted too)."""
    if not names:
        return list(MODES)
    out: list[str] = []
    for n in names:
        for part in str(n).split(","):
            part = part.strip()
            if part and part not in MODES:
                raise KitError(f"unknown mode {part!r}", hint=f"one of: {', '.join(MODES)}")
            if part and part not in out:
                out.append(part)
    return out


def ks_from(text: str | Sequence[int]) -> list[int]:
    """``"10,30"`` → ``[10, 30]``."""
    if not isinstance(text, str):
        return sorted({int(k) for k in text})
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise EvalError(f"bad -k value {text!r}", hint="use e.g. -k 10,30") from None
    if not ks or ks[0] < 1:
        raise EvalError(f"bad -k value {text!r}", hint="positive integers, e.g. -k 10,30")
    return ks


def summarise(report: EvalReport, group: str = ALL_TEXT) -> dict[str, dict[str, float]]:
    """``{config: metrics}`` for one group (handy for JSON and tests)."""
    return {r.config: r.metrics for r in report.rows if r.group == group}


# ------------------------------------------------------------------------------ the set's own files


def materialise_eval_set(path: str | Path, raw: dict[str, Any] | None = None) -> bool:
    """Write the images of a generated set (``generator: kit.models.synth.make_eval_set``) when missing.

    The project ships only ``queries.yaml`` and ``metadata.jsonl``; pixels are regenerated from the
    recorded seed. The regenerated queries must equal the shipped ones, otherwise the generator has
    changed and the set is stale (:class:`EvalError`). Returns True when files were written.
    """
    import json

    from kit.config.loader import safe_load_bounded

    path = Path(path)
    if raw is None:
        raw = safe_load_bounded(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or raw.get("generator") != "kit.models.synth.make_eval_set":
        return False
    base = path.parent
    meta = base / "metadata.jsonl"
    names: list[str] = []
    if meta.is_file():
        names = [json.loads(line)["file_name"] for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    missing = [n for n in names if not (base / "images" / n).is_file()] if names else ["*"]
    missing += [str(q["image_file"]) for q in raw.get("queries") or []
                if isinstance(q, dict) and q.get("image_file") and not (base / str(q["image_file"])).is_file()]
    if not missing:
        return False
    import shutil
    import tempfile

    from kit.models import synth

    if int(raw.get("generator_version", -1)) != synth.GENERATOR_VERSION:
        raise EvalError(f"{path} was made by generator version {raw.get('generator_version')}, "
                        f"this build has {synth.GENERATOR_VERSION}", hint="regenerate the set (see data/eval/README.md)")
    log.info("generating the images of %s (seed %s)", path, raw.get("seed"))
    n_img_q = sum(1 for q in raw["queries"] if q.get("type") == "image")
    es = synth.make_eval_set(int(raw["n_images"]), int(raw["seed"]), image_size=int(raw.get("image_size", 256)),
                             n_image_queries=n_img_q)
    shipped = [(q.get("id"), q.get("type"), q.get("text"), q.get("source_id"), q.get("relevant")) for q in raw["queries"]]
    fresh = [(q.get("id"), q.get("type"), q.get("text"), q.get("source_id"), q.get("relevant")) for q in es.queries]
    if shipped != fresh:
        raise EvalError(f"{path}: the generator no longer reproduces these queries",
                        hint="regenerate the set (see data/eval/README.md)")
    with tempfile.TemporaryDirectory() as tmp:
        synth.write_eval_set(es, Path(tmp))
        for sub in ("images", "query_images"):
            if (Path(tmp) / sub).is_dir():
                shutil.copytree(Path(tmp) / sub, base / sub, dirs_exist_ok=True)
        if not meta.is_file():
            shutil.copy(Path(tmp) / "metadata.jsonl", meta)
    return True


def _set_images(queryset: QuerySet) -> Path:
    folder = queryset.base_dir / "images"
    if not folder.is_dir():
        raise EvalError(f"no images/ folder next to {queryset.path}",
                        hint="write the set with kit.models.synth.write_eval_set, or ingest the images yourself")
    return folder


def ingest_eval_set(client: Any, queryset: QuerySet, *, index: str = "images", **kwargs: Any) -> Any:
    """Ingest the set's ``images/`` with its ``metadata.jsonl`` (ids are content hashes: reruns skip)."""
    from kit.job.ingest import ingest

    meta = queryset.base_dir / "metadata.jsonl"
    return ingest(client, [_set_images(queryset)], index=index, metadata=meta if meta.is_file() else None, **kwargs)


def calibrate_from_queries(client: Any, queryset: QuerySet, *, index: str = "images", limit: int = 100) -> Any:
    """Calibrate the similar-photo bands on the set's image queries (see docs/similar-bands.md)."""
    from kit.job.similar import calibrate_bands, collect_band_samples

    folder = _set_images(queryset)
    pairs: list[tuple[bytes, bytes, str]] = []
    for q in queryset.queries:
        if q.type != "image" or q.image is None or not q.source_id:
            continue
        original = next(iter(sorted(folder.glob(f"{q.source_id}.*"))), None)
        if original is None:
            continue
        pairs.append((original.read_bytes(), q.image.read_bytes(), original.name))
        if len(pairs) >= limit:
            break
    if not pairs:
        raise EvalError(f"{queryset.path}: no image queries with a source_id whose original is in images/")
    from kit.job.similar import vectors_maker

    samples = collect_band_samples(client, pairs, index=index)
    return calibrate_bands(samples, source=f"calibrated on {queryset.path.name} ({len(pairs)} photo queries)",
                           model=vectors_maker(client, index))


# ------------------------------------------------------------------------------ similar-photo labels


def _label_counts(rows: Sequence[tuple[str, str | None]]) -> dict[str, dict[str, float | int]]:
    """Precision and recall per label from ``(truth, predicted)`` pairs."""
    out: dict[str, dict[str, float | int]] = {}
    for lab in ("identical", "near-identical", "similar"):
        tp = sum(1 for t, p in rows if t == lab and p == lab)
        pred = sum(1 for _, p in rows if p == lab)
        truth = sum(1 for t, _ in rows if t == lab)
        out[lab] = {"precision": round(tp / pred, 4) if pred else 1.0, "recall": round(tp / truth, 4) if truth else 1.0,
                    "labelled": pred, "truth": truth}
    # "a copy of the query" (identical or near-identical), whichever of the two it is called
    copy = ("identical", "near-identical")
    tp = sum(1 for t, p in rows if t in copy and p in copy)
    pred = sum(1 for _, p in rows if p in copy)
    truth = sum(1 for t, _ in rows if t in copy)
    out["copy"] = {"precision": round(tp / pred, 4) if pred else 1.0, "recall": round(tp / truth, 4) if truth else 1.0,
                   "labelled": pred, "truth": truth}
    return out


def similar_labels_indomain(client: Any, queryset: QuerySet, *, index: str = "images", limit: int = 40,
                            k: int = 10, offset: int = 100, bands: Any = None) -> dict[str, Any]:
    """Precision / recall of the labels on the set's photo queries *not* used for calibration (the
    first 100 calibrate): each original re-encoded (truth: identical), the phone photo (truth:
    near-identical for its original), other hits sharing an object (similar) or nothing (unrelated)."""
    import io

    from PIL import Image

    from kit.job.similar import shares_nothing, shares_object, similar

    folder = _set_images(queryset)
    queries = [q for q in queryset.queries if q.type == "image" and q.image is not None and q.source_id]
    rows: list[tuple[str, str | None]] = []
    used = 0
    for q in queries[offset:offset + limit]:
        original = next(iter(sorted(folder.glob(f"{q.source_id}.*"))), None)
        if original is None:
            continue
        used += 1
        buf = io.BytesIO()
        Image.open(original).convert("RGB").save(buf, "JPEG", quality=40)
        for data, truth_same in ((buf.getvalue(), "identical"), (q.image.read_bytes(), "near-identical")):  # type: ignore[union-attr]
            res = similar(client, data, index=index, k=k, bands=bands)
            src = next((h.source.get("metadata") or {} for h in res.hits if h.source.get("file_name") == original.name),
                       None)
            for h in res.hits:
                if h.source.get("file_name") == original.name:
                    rows.append((truth_same, h.label))
                elif src is not None and shares_object(src, h.source.get("metadata") or {}):
                    rows.append(("similar", h.label))
                elif src is not None and shares_nothing(src, h.source.get("metadata") or {}):
                    rows.append(("unrelated", h.label))
                else:
                    rows.append(("other", h.label))
    return {"queries": used, "k": k, "labels": _label_counts(rows)}


def similar_labels_heldout(client: Any, out_dir: str | Path, *, index: str = "images", k: int = 10,
                           seed: int = 0, bands: Any = None) -> dict[str, Any]:
    """Precision / recall of the labels on images outside the generated domain
    (:mod:`kit.models.heldout`): the originals are ingested into ``index``, then every edited copy is
    searched; its original's hit should carry the edit's label, and no other held-out image may be
    labelled identical or near-identical (truth: similar for the same subject, e.g. two STOP signs)."""
    import io

    from kit.job.ingest import ingest
    from kit.models.heldout import heldout_images, variants
    from kit.job.similar import similar

    folder = Path(out_dir) / "heldout"
    folder.mkdir(parents=True, exist_ok=True)
    originals = heldout_images(seed)
    for im in originals:
        im.image.save(folder / f"{im.name}.png")
    result = ingest(client, [folder], index=index)
    if result.failed:
        raise EvalError(f"held-out images failed to ingest: {result.failures[:3]}")
    names = {f"{im.name}.png": im for im in originals}
    rows: list[tuple[str, str | None]] = []
    per_edit: dict[str, list[tuple[str, str | None]]] = {}
    for i, im in enumerate(originals):
        subject = im.name.rsplit("-", 1)[0]
        for edit, truth, img in variants(im.image, seed + i):
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "PNG")
            res = similar(client, buf.getvalue(), index=index, k=k, bands=bands)
            for h in res.hits:
                fname = h.source.get("file_name")
                if fname == f"{im.name}.png":
                    rows.append((truth, h.label))
                    per_edit.setdefault(edit, []).append((truth, h.label))
                elif fname in names:
                    other = names[fname]
                    same_subject = other.name.rsplit("-", 1)[0] == subject
                    rows.append(("similar" if same_subject else "unrelated", h.label))
                else:
                    rows.append(("other", h.label))
    return {"images": len(originals), "k": k, "labels": _label_counts(rows),
            "by_edit": {e: {"recall": round(sum(t == p for t, p in r) / len(r), 4), "n": len(r),
                            "labels": sorted({str(p) for _, p in r})} for e, r in sorted(per_edit.items())}}


# ------------------------------------------------------------------------------------ prompt templates

#: the templates ``choose_templates`` compares with none (CLIP's own zero-shot prompts are of this kind)
CANDIDATE_TEMPLATES = ("a picture of a {term}", "a photo of a {term}", "a photo of {term}")


def choose_templates(client: Any, queryset: QuerySet, *, index: str | None = None, k: int = 10,
                     candidates: Sequence[str] = CANDIDATE_TEMPLATES, model: str | None = None) -> Any:
    """Measure vector-mode mAP@k of the set's text queries (``--field image``) with each template and
    with none, per query kind (``word``: one word, ``phrase``: more), and return the winners as
    :class:`kit.job.search.PromptTemplates`. A template wins a kind only by beating no template there."""
    from kit.job.search import PromptTemplates

    idx = index or queryset.index or "images"
    queries = [q for q in queryset.queries if q.type == "text" and q.text and q.field == "image"]
    if not queries:
        raise EvalError(f"{queryset.path}: no text queries to choose templates on")
    table: dict[str, dict[str, float]] = {}
    counts = {"word": 0, "phrase": 0}
    for template in (None, *candidates):
        sums = {"word": 0.0, "phrase": 0.0}
        counts = {"word": 0, "phrase": 0}
        for q in queries:
            kind = "word" if len(q.text.split()) == 1 else "phrase"  # type: ignore[union-attr]
            spec = PromptTemplates(word=template, phrase=template)
            hits = search(client, q.text or "", index=idx, k=k, mode="vector", prompt_template=spec).hits
            rel = set(q.relevant)
            sums[kind] += average_precision([is_relevant(h, rel) for h in hits], len(rel), k)
            counts[kind] += 1
        table[template or "(none)"] = {kind: round(sums[kind] / counts[kind], 4) for kind in sums if counts[kind]}
    winners: dict[str, str | None] = {}
    for kind in ("word", "phrase"):
        if not counts[kind]:
            winners[kind] = None
            continue
        base = table["(none)"][kind]
        best = max(candidates, key=lambda t: table[t][kind])
        winners[kind] = best if table[best][kind] > base else None
    return PromptTemplates(word=winners["word"], phrase=winners["phrase"], model=model,
                           source=f"chosen by oskit eval on {queryset.path.name} (mAP@{k}, vector mode)",
                           measured={"map_at_k": table, "k": k, "queries": counts})

"""Text search over an image index: ``vector`` (neural ``query_text``), ``hybrid`` (BM25 + vectors) and
``tags`` (the lexical baseline).

Model ids never appear here: the index's search pipeline (``neural_query_enricher``) fills them in,
and its ``normalization-processor`` combines the sub-query scores of a hybrid query.

    >>> from kit.cluster.client import connect
    >>> result = search(connect(), "red dress", k=30)  # doctest: +SKIP
    >>> [(h.score, h.source["file_name"]) for h in result.hits]  # doctest: +SKIP

Which fields the hybrid BM25 half reads and its default weights were measured: docs/search-tuning.md.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from kit.cluster.endpoints import explain, is_remote_model_error
from kit.cluster.state import concrete_index
from kit.errors import ClusterError, KitError, NotFound

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "EXCLUDED_SOURCE",
    "FIELDS",
    "HYBRID_WEIGHTS",
    "Hit",
    "MODES",
    "OFFLINE_CLIP",
    "PromptTemplates",
    "SWITCH_HINT",
    "SearchResult",
    "TEMPLATES_FILE",
    "VECTOR_FIELDS",
    "apply_template",
    "build_search",
    "filter_clauses",
    "no_hits_note",
    "offline_model_note",
    "offline_vocabulary",
    "parse_filters",
    "run_query",
    "search",
    "short_metadata",
    "weighted_pipeline",
]

log = logging.getLogger("kit.job.search")

DEFAULT_PROMPT_TEMPLATE = "a picture of a {term}"
MODES = ("vector", "hybrid", "tags")
FIELDS = ("image", "ocr_text", "caption")
#: the k-NN field searched for each ``--field``
VECTOR_FIELDS: dict[str, str] = {"image": "image_embedding", "ocr_text": "ocr_embedding", "caption": "caption_embedding"}
#: the text fields of the BM25 half of ``hybrid`` for each ``--field`` (``tags`` mode matches ``tags`` alone).
#: Not ``tags``: they are CLIP's image vector turned into words, so they add only noise, which min-max
#: lifts above CLIP's right answer (docs/search-tuning.md).
LEXICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "image": ("ocr_text", "caption"),
    "ocr_text": ("ocr_text",),
    "caption": ("caption",),
}
#: ``normalization-processor`` weights ``[BM25, vector]`` of a hybrid query, per ``--field``, used when
#: the index's search pipeline sets none; measured in docs/search-tuning.md.
HYBRID_WEIGHTS: dict[str, tuple[float, float]] = {"image": (0.4, 0.6), "ocr_text": (0.5, 0.5),
                                                  "caption": (0.5, 0.5)}
#: never sent back to the user: vectors and image bytes
EXCLUDED_SOURCE = ("image", "image_embedding", "ocr_embedding", "caption_embedding")
_TOP_LEVEL_FIELDS = ("file_name", "source_uri", "sha256", "format", "width", "height", "bytes", "tags",
                     "tags.raw", "ocr_text", "caption")


@dataclass
class Hit:
    """One result: ``source`` holds the indexed fields except vectors and image bytes."""

    id: str
    score: float
    source: dict[str, Any]
    label: str | None = None
    #: similar-photo searches: the perceptual-hash distances to the query (``{"phash", "colour"}``)
    hash_distance: dict[str, int | None] | None = None

    @property
    def thumbnail(self) -> str | None:
        value = self.source.get("thumbnail")
        return value if isinstance(value, str) else None

    def to_json(self, *, thumbnail: bool = False) -> dict[str, Any]:
        src = {k: v for k, v in self.source.items() if thumbnail or k != "thumbnail"}
        out: dict[str, Any] = {"id": self.id, "score": self.score}
        if self.label is not None:
            out["label"] = self.label
        if self.hash_distance is not None:
            out["hash_distance"] = self.hash_distance
        out["source"] = src
        return out


@dataclass
class SearchResult:
    """Hits plus what was asked, for rendering and debugging."""

    hits: list[Hit]
    query: str
    mode: str
    field: str
    took_ms: float
    body: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    #: what the user should know about these results (no signal, uncalibrated labels …)
    notes: list[str] = field(default_factory=list)

    def to_json(self, *, thumbnail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"hits": [h.to_json(thumbnail=thumbnail) for h in self.hits]}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


# ----------------------------------------------------------------------------------------- building


#: where ``oskit eval --choose-templates`` records the winning templates in the project (search reads it)
TEMPLATES_FILE = "data/prompt-templates.json"


@dataclass(frozen=True)
class PromptTemplates:
    """The prompt template per query kind — ``word`` (one word) and ``phrase`` (more) — chosen by
    ``oskit eval --choose-templates`` for the project's CLIP; None = the query as typed."""

    word: str | None = None
    phrase: str | None = None
    model: str | None = None
    source: str = "no templates (none recorded in the project)"
    measured: dict[str, Any] = field(default_factory=dict, compare=False)

    def apply(self, text: str) -> str:
        text = text.strip()
        template = self.word if len(text.split()) == 1 else self.phrase
        if not template:
            return text
        if "{term}" not in template:
            raise KitError(f"prompt template {template!r} has no {{term}} placeholder")
        return template.replace("{term}", text)

    def to_json(self) -> dict[str, Any]:
        return {"word": self.word, "phrase": self.phrase, "model": self.model, "source": self.source,
                "measured": self.measured}

    def save(self, project_dir: str | Any) -> Any:
        from pathlib import Path

        p = Path(project_dir) / TEMPLATES_FILE
        p.parent.mkdir(parents=True, exist_ok=True)
        import json

        p.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return p

    @classmethod
    def for_project(cls, project_dir: str | Any = ".") -> "PromptTemplates":
        """The project's recorded templates (``data/prompt-templates.json``), else none."""
        import json
        from pathlib import Path

        p = Path(project_dir) / TEMPLATES_FILE
        if not p.is_file():
            return cls()
        try:
            raw = json.loads(p.read_text(encoding="utf-8"))
            return cls(word=raw.get("word"), phrase=raw.get("phrase"), model=raw.get("model"),
                       source=str(raw.get("source") or p), measured=dict(raw.get("measured") or {}))
        except (ValueError, AttributeError) as exc:
            raise KitError(f"{p}: not a prompt-templates file ({exc})",
                           hint="re-run: oskit eval data/eval/queries.yaml --choose-templates") from None


def apply_template(text: str, template: "str | PromptTemplates | None") -> str:
    """Wrap a single-word query in ``template`` (``{term}`` marks the word); longer queries pass unchanged."""
    if isinstance(template, PromptTemplates):
        return template.apply(text)
    text = text.strip()
    if not template or len(text.split()) != 1:
        return text
    if "{term}" not in template:
        raise KitError(f"prompt template {template!r} has no {{term}} placeholder",
                       hint='e.g. --prompt-template "a picture of a {term}"')
    return template.replace("{term}", text)


def parse_filters(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["color=red", "metadata.year=2020"]`` → ``{"color": "red", "metadata.year": "2020"}``."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise KitError(f"bad filter {item!r}", hint="use key=value, e.g. --filter category=shoes")
        out[key.strip()] = value
    return out


def _mapping_type(mapping: Mapping[str, Any] | None, path: str) -> tuple[str | None, bool]:
    """(type, has a .keyword sub-field) of a dotted field path in an index mapping's ``properties``."""
    node: Any = {"properties": mapping or {}}
    for part in path.split("."):
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict) or part not in props:
            return None, False
        node = props[part]
    if not isinstance(node, dict):
        return None, False
    fields = node.get("fields") or {}
    has_kw = isinstance(fields, dict) and fields.get("keyword", {}).get("type") == "keyword"
    return node.get("type", "object"), has_kw


def filter_clauses(filters: Mapping[str, Any], mapping: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Exact-match clauses for ``key=value`` filters.

    A key that is not a top-level field means ``metadata.<key>``. Keyword, numeric and boolean fields
    get ``term``; a text field with a ``.keyword`` sub-field (OpenSearch's dynamic mapping of strings)
    gets ``term`` on the sub-field; other text fields get ``match_phrase``.
    """
    clauses: list[dict[str, Any]] = []
    for key, value in filters.items():
        path = key if (key in _TOP_LEVEL_FIELDS or key.startswith("metadata.")) else f"metadata.{key}"
        ftype, has_kw = _mapping_type(mapping, path)
        if path == "tags":
            clauses.append({"term": {"tags.raw": value}})
        elif ftype == "text" and has_kw:
            clauses.append({"term": {f"{path}.keyword": value}})
        elif ftype == "text":
            clauses.append({"match_phrase": {path: value}})
        else:
            clauses.append({"term": {path: value}})
    return clauses


def _lexical(text: str, fields: Sequence[str], all_terms: bool) -> dict[str, Any]:
    # most_fields sums the fields' BM25 scores; with operator "and" every word must match within one
    # field (cross_fields would pool the fields, but the embedded node does not implement it)
    operator = "and" if all_terms else "or"
    if len(fields) == 1:
        return {"match": {fields[0]: {"query": text, "operator": operator}}}
    return {"multi_match": {"query": text, "fields": list(fields), "operator": operator, "type": "most_fields"}}


def _with_filter(query: dict[str, Any], clauses: list[dict[str, Any]]) -> dict[str, Any]:
    if not clauses:
        return query
    return {"bool": {"must": [query], "filter": clauses}}


def _neural(vector_field: str, k: int, clauses: list[dict[str, Any]], **inputs: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {**inputs, "k": k}
    if clauses:
        spec["filter"] = clauses[0] if len(clauses) == 1 else {"bool": {"filter": clauses}}
    return {"neural": {vector_field: spec}}


def build_search(
    text: str,
    *,
    k: int = 30,
    mode: str = "vector",
    field: str = "image",
    filters: Mapping[str, Any] | None = None,
    prompt_template: "str | PromptTemplates | None" = None,
    all_terms: bool = False,
    mapping: Mapping[str, Any] | None = None,
    thumbnails: bool = False,
    lexical_fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``_search`` body for a text query (pure; no I/O).

    The prompt template applies only to the vector half on ``--field image`` (CLIP was trained on
    sentences; OCR and caption text are matched as typed). ``lexical_fields`` replaces the BM25
    fields of ``hybrid`` (default :data:`LEXICAL_FIELDS`), e.g. to add human-written metadata.
    """
    if mode not in MODES:
        raise KitError(f"unknown search mode {mode!r}", hint=f"one of: {', '.join(MODES)}")
    if field not in FIELDS:
        raise KitError(f"unknown search field {field!r}", hint=f"one of: {', '.join(FIELDS)}")
    if k < 1 or k > 10_000:
        raise KitError(f"-k must be between 1 and 10000 (got {k})")
    text = text.strip()
    if not text:
        raise KitError("empty query", hint='pass the words to look for, e.g. oskit search "red dress"')
    clauses = filter_clauses(filters or {}, mapping)
    # the baseline matches tags only; hybrid's BM25 half reads the OCR text and the caption
    if mode == "tags" and field == "image":
        lex_fields: Sequence[str] = ("tags",)
    else:
        lex_fields = tuple(lexical_fields) if lexical_fields else LEXICAL_FIELDS[field]
    lexical = _lexical(text, lex_fields, all_terms)
    vector_text = apply_template(text, prompt_template) if field == "image" else text
    neural = _neural(VECTOR_FIELDS[field], k, clauses, query_text=vector_text)
    if mode == "tags":
        query = _with_filter(lexical, clauses)
    elif mode == "vector":
        query = neural
    else:
        query = {"hybrid": {"queries": [_with_filter(lexical, clauses), neural]}}
    excludes = list(EXCLUDED_SOURCE) + ([] if thumbnails else ["thumbnail"])
    return {"size": k, "query": query, "_source": {"excludes": excludes}}


# ------------------------------------------------------------------------------------------ running


class _IndexInfo:
    """Per-client cache of each index's mapping and default search pipeline (read once).

    Keyed weakly by the client object, so a closed client's entries go with it (ids can be reused)."""

    _lock = threading.Lock()
    # client -> index -> (mapping properties, default search pipeline, weights that made the image vectors)
    _cache: "weakref.WeakKeyDictionary[Any, dict[str, tuple[dict[str, Any], str | None, str | None]]]" = (
        weakref.WeakKeyDictionary())

    @classmethod
    def maker(cls, client: Any, index: str) -> str | None:
        """Which weights made the index's image vectors (``_meta.oskit.vectors.image_embedding``)."""
        return cls._read(client, index)[2]

    @classmethod
    def get(cls, client: Any, index: str) -> tuple[dict[str, Any], str | None]:
        mapping, pipeline, _ = cls._read(client, index)
        return mapping, pipeline

    @classmethod
    def _read(cls, client: Any, index: str) -> tuple[dict[str, Any], str | None, str | None]:
        with cls._lock:
            known = cls._cache.get(client, {}).get(index)
        if known is not None:
            return known
        try:
            resp = client.request("GET", f"/{index}")
        except NotFound:
            raise KitError(f"index {index!r} does not exist",
                           hint="create it with `oskit apply` and load images with `oskit ingest`") from None
        body = resp.get(index) if isinstance(resp, dict) else None
        if not isinstance(body, dict):  # an alias: take the first concrete index
            body = next(iter(resp.values())) if isinstance(resp, dict) and resp else {}
        mapping = (body.get("mappings") or {}).get("properties") or {}
        vectors = (((body.get("mappings") or {}).get("_meta") or {}).get("oskit") or {}).get("vectors") or {}
        maker = vectors.get("image_embedding") if isinstance(vectors, dict) else None
        settings = (body.get("settings") or {}).get("index") or {}
        pipeline = (settings.get("search") or {}).get("default_pipeline") or settings.get("search.default_pipeline")
        info = (mapping, pipeline if pipeline not in (None, "_none") else None, maker if isinstance(maker, str) else None)
        with cls._lock:
            cls._cache.setdefault(client, {})[index] = info
        return info

    @classmethod
    def forget(cls, client: Any | None = None) -> None:
        with cls._lock:
            if client is None:
                cls._cache.clear()
            else:
                cls._cache.pop(client, None)


def forget_index_info(client: Any | None = None) -> None:
    """Drop cached mappings/pipelines (after an apply changed them)."""
    _IndexInfo.forget(client)
    if client is None:
        _HYBRID_OK.clear()
    else:
        _HYBRID_OK.pop(client, None)


def run_query(
    client: Any,
    index: str,
    body: dict[str, Any],
    *,
    search_pipeline: str | None = None,
    query_text: str = "",
    mode: str = "vector",
    field: str = "image",
) -> SearchResult:
    """POST ``body`` to ``/{index}/_search`` and turn the response into a :class:`SearchResult`."""
    params: dict[str, Any] = {}
    if search_pipeline:
        params["search_pipeline"] = search_pipeline
    start = time.perf_counter()
    try:
        resp = client.request("POST", f"/{index}/_search", body=body, params=params or None)
    except ClusterError as exc:
        if exc.reason and "model id must be provided" in exc.reason:
            exc.hint = (f"index {index!r} has no search pipeline with a neural_query_enricher; "
                        "`oskit apply` sets it (pipelines/images-search.yaml)")
        elif is_remote_model_error(str(exc)):
            exc.hint = explain(client)  # the model server behind a connector is down: say which and what to do
        raise
    took = (time.perf_counter() - start) * 1000
    hits = []
    for h in (resp.get("hits") or {}).get("hits") or []:
        src = {k: v for k, v in (h.get("_source") or {}).items() if k not in EXCLUDED_SOURCE}
        hits.append(Hit(id=h["_id"], score=float(h.get("_score") or 0.0), source=src))
    return SearchResult(hits=hits, query=query_text, mode=mode, field=field, took_ms=took, body=body, params=params)


def no_hits_note(client: Any, index: str) -> str | None:
    """Why a search found nothing when it is not the query: the index is empty (one ``_count``)."""
    try:
        resp = client.request("GET", f"/{index}/_count")
    except ClusterError:
        return None
    if isinstance(resp, dict) and resp.get("count") == 0:
        return f"index {index!r} is empty: ingest images first (oskit ingest PATH --index {index})"
    return None


def search(
    client: Any,
    text: str,
    *,
    index: str = "images",
    k: int = 30,
    mode: str = "vector",
    field: str = "image",
    filters: Mapping[str, Any] | Iterable[str] | None = None,
    prompt_template: "str | PromptTemplates | None" = None,
    all_terms: bool = False,
    thumbnails: bool = False,
    search_pipeline: str | None = None,
    lexical_fields: Sequence[str] | None = None,
    hybrid_weights: Sequence[float] | None = None,
) -> SearchResult:
    """Search ``index`` for ``text``; see :func:`build_search` for the modes.

    ``hybrid`` needs a search pipeline with a ``normalization-processor``: the index's default one, or
    ``search_pipeline``. Without one OpenSearch returns raw, meaningless scores, so we refuse.
    Its sub-query weights are, in order: ``hybrid_weights``; the pipeline's own ``weights`` when it
    sets them or was named by ``search_pipeline``; else :data:`HYBRID_WEIGHTS` for ``field``. Weights
    the pipeline does not carry are sent as a temporary pipeline in the request body (the stored
    one's processors with the weights added), so the stored pipeline stays the one source of truth.
    """
    flt = parse_filters(filters)
    index = concrete_index(client, index)  # pipeline and vectors of one version (kit.cluster.state)
    mapping, default_pipeline = _IndexInfo.get(client, index)
    pipeline = search_pipeline or default_pipeline
    inline: dict[str, Any] | None = None
    if mode == "hybrid":
        stored = _check_hybrid_pipeline(client, index, pipeline)
        weights = hybrid_weights
        if weights is None and search_pipeline is None and not _pipeline_weights(stored):
            weights = HYBRID_WEIGHTS[field]
        if weights is not None:
            inline = weighted_pipeline(stored, weights)
    body = build_search(text, k=k, mode=mode, field=field, filters=flt, prompt_template=prompt_template,
                        all_terms=all_terms, mapping=mapping, thumbnails=thumbnails, lexical_fields=lexical_fields)
    if inline is not None:
        body["search_pipeline"] = inline
        search_pipeline = None  # a request names its pipeline one way only
    result = run_query(client, index, body, search_pipeline=search_pipeline, query_text=text, mode=mode, field=field)
    if mode != "tags" and field == "image":
        note = offline_model_note(text, _IndexInfo.maker(client, index))
        if note:
            result.notes.append(note)
    return result


OFFLINE_CLIP = "oskit-clip-tiny"
SWITCH_HINT = ("for photos of the real world switch to real CLIP weights: in models/clip.yaml write "
               "open_clip: {model: ViT-B-32, pretrained: laion2b_s34b_b79k}, then restart oskit serve, "
               "oskit apply and ingest again")


def offline_vocabulary() -> set[str]:
    """The words the offline CLIP was trained on: the generator's colours, shapes, textures, sizes,
    positions, backgrounds and printed sign words (kit.models.synth)."""
    from kit.models import synth

    words: set[str] = set()
    for group in (synth.SHAPES, synth.COLOURS, synth.BACKGROUND_COLOURS, synth.SIZES, synth.TEXTURES,
                  synth.POSITIONS, synth.WORDS, synth.ROWS):
        for item in group:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", str(item)))
    words.update(w + "s" for w in list(words))  # plurals
    return words


def offline_model_note(text: str, maker: str | None) -> str | None:
    """A note when the index's vectors come from the offline CLIP and the query has none of its words
    (its results then carry no signal)."""
    if not maker or OFFLINE_CLIP not in maker:
        return None
    known = offline_vocabulary()
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
    if any(w in known for w in words):
        return None
    return (f"the offline CLIP ({OFFLINE_CLIP}) knows only generated pictures of shapes, colours, textures, "
            f"printed words and signs (e.g. \"red circle\", \"striped star\", \"STOP\"); none of the words "
            f"of {text!r} is among them, so these results carry no signal; {SWITCH_HINT}")


def _pipeline_weights(pipeline: Mapping[str, Any]) -> list[float] | None:
    for proc in pipeline.get("phase_results_processors") or []:
        cfg = proc.get("normalization-processor") if isinstance(proc, dict) else None
        if isinstance(cfg, dict):
            weights = ((cfg.get("combination") or {}).get("parameters") or {}).get("weights")
            return list(weights) if weights else None
    return None


def weighted_pipeline(stored: Mapping[str, Any], weights: Sequence[float]) -> dict[str, Any]:
    """A temporary search pipeline: ``stored``'s processors, its ``normalization-processor`` given ``weights``.

    Weights must be in [0, 1] and sum to 1 (neural-search checks the same). A pipeline that ranks by
    ``score-ranker-processor`` (RRF) is returned unchanged: its weights need OpenSearch 3.1+.
    """
    w = [float(x) for x in weights]
    if len(w) != 2 or any(x < 0 or x > 1 for x in w) or abs(sum(w) - 1.0) > 1e-6:
        raise KitError(f"hybrid weights must be two numbers in [0, 1] summing to 1 (got {list(weights)})",
                       hint="e.g. 0.4,0.6 (BM25, vector)")
    out: dict[str, Any] = {key: copy.deepcopy(stored[key]) for key in ("request_processors", "response_processors")
                           if stored.get(key)}
    phase: list[dict[str, Any]] = []
    for proc in stored.get("phase_results_processors") or []:
        proc = copy.deepcopy(proc)
        cfg = proc.get("normalization-processor")
        if isinstance(cfg, dict):
            combination = cfg.setdefault("combination", {})
            combination.setdefault("technique", "arithmetic_mean")
            combination.setdefault("parameters", {})["weights"] = w
        phase.append(proc)
    out["phase_results_processors"] = phase
    return out


#: checked pipelines per client: name → (when read, stored definition). The definition is re-read after
#: ``_PIPELINE_TTL_S`` because the temporary pipeline copies its model ids, which an ``oskit apply``
#: may change under a long-running client (the search page)
_HYBRID_OK: "weakref.WeakKeyDictionary[Any, dict[str, tuple[float, dict[str, Any]]]]" = weakref.WeakKeyDictionary()
_PIPELINE_TTL_S = 30.0


def _check_hybrid_pipeline(client: Any, index: str, pipeline: str | None) -> dict[str, Any]:
    """The stored definition of ``pipeline`` (read per client at most every ``_PIPELINE_TTL_S``),
    checked to combine hybrid scores."""
    if pipeline is None:
        raise KitError(f"hybrid search needs a search pipeline with a normalization-processor; index {index!r} "
                       "has no default search pipeline",
                       hint="`oskit apply` sets one (pipelines/images-search.yaml), or pass --search-pipeline")
    known = _HYBRID_OK.get(client, {}).get(pipeline)
    if known is not None and time.monotonic() - known[0] < _PIPELINE_TTL_S:
        return known[1]
    try:
        resp = client.request("GET", f"/_search/pipeline/{pipeline}")
    except NotFound:
        raise KitError(f"search pipeline {pipeline!r} does not exist", hint="run `oskit apply`") from None
    body = (resp or {}).get(pipeline) or {}
    procs = body.get("phase_results_processors") or []
    names = {name for p in procs if isinstance(p, dict) for name in p}
    if not names & {"normalization-processor", "score-ranker-processor"}:
        raise KitError(f"search pipeline {pipeline!r} has no normalization-processor, so hybrid scores would "
                       "be meaningless", hint="add one to the pipeline (see pipelines/images-search.yaml)")
    _HYBRID_OK.setdefault(client, {})[pipeline] = (time.monotonic(), body)
    return body


def short_metadata(source: Mapping[str, Any], limit: int = 4) -> str:
    """A few ``key=value`` pairs of a hit's metadata for one table cell."""
    meta = source.get("metadata") or {}
    parts: list[str] = []
    if isinstance(meta, dict):
        for key, value in meta.items():
            if isinstance(value, (str, int, float, bool)) and len(str(value)) <= 60:
                parts.append(f"{key}={value}")
            if len(parts) >= limit:
                break
    tags = source.get("tags")
    if tags:
        parts.append("tags=" + (",".join(tags[:6]) if isinstance(tags, list) else str(tags)))
    text = source.get("ocr_text")
    if isinstance(text, str) and text.strip():
        parts.append("ocr=" + re.sub(r"\s+", " ", text.strip())[:40])
    return " ".join(parts)

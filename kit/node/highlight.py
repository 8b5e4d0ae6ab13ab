"""Search highlighting: the ``unified`` (default) and ``plain`` highlighters on text and keyword fields.

The terms come from the query (``match``, ``multi_match``, ``term``/``terms``, ``bool`` clauses but
``must_not``, ``hybrid`` sub-queries) or ``highlight_query``, analysed as each field indexes its
values; matches are found on the field's own tokens and wrapped in ``pre_tags``/``post_tags``.

Fragments: ``unified`` builds passages from sentences (merged while they fit ``fragment_size``, a
longer sentence cut at a word boundary) and keeps the ``number_of_fragments`` with the most matches,
in text order (or by score with ``order: score``); ``plain`` cuts the text as Lucene's
``SimpleFragmenter`` does. A value that fits one fragment comes back whole, as OpenSearch answers; the
choice among many passages of a long text can differ from Lucene's passage scoring (COMPATIBILITY.md).
``fvh`` needs term vectors, which this node does not keep.
"""

from __future__ import annotations

import fnmatch
import re
from typing import TYPE_CHECKING, Any

from kit.node.analysis import analyze_text, analyzer
from kit.node.errors import bad_request, parsing_error, unsupported
from kit.node.query import Bool, Hybrid, Match, MultiMatch, Query, Term, Terms, parse_query

if TYPE_CHECKING:
    from kit.node.index_state import IndexState

__all__ = ["Highlighter"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_ALL_FIELDS = "*"


def _terms(q: Query, ix: "IndexState", out: dict[str, set[str]]) -> None:
    """field → the terms a query looks for, as that field's index analyzer produces them."""
    if isinstance(q, Bool):
        for sub in q.must + q.should + q.filter:
            _terms(sub, ix, out)
    elif isinstance(q, Hybrid):
        for sub in q.queries:
            _terms(sub, ix, out)
    elif isinstance(q, Match):
        _add(ix, q.field, str(q.text), out, analyse=True, analyzer_name=q.analyzer_name)
    elif isinstance(q, MultiMatch):
        for field, _boost in q._expand(ix):
            _add(ix, field, str(q.text), out, analyse=True)
    elif isinstance(q, Term):
        _add(ix, q.field, q.value, out, analyse=False)
    elif isinstance(q, Terms):
        for v in q.values:
            _add(ix, q.field, v, out, analyse=False)


def _add(ix: "IndexState", field: str, value: Any, out: dict[str, set[str]], *, analyse: bool,
         analyzer_name: str | None = None) -> None:
    fd = ix.mapping.fields.get(field)
    if fd is None or fd.type not in ("text", "keyword"):
        return
    text = "true" if value is True else "false" if value is False else str(value)
    if fd.type == "text" and analyse:
        out.setdefault(field, set()).update(analyzer(analyzer_name or fd.search_analyzer_name)(text))
    else:
        out.setdefault(field, set()).add(text)


class Highlighter:
    """One request's ``highlight`` section, applied hit by hit."""

    def __init__(self, spec: Any, query: Query, predict: Any) -> None:
        if not isinstance(spec, dict):
            raise parsing_error("[highlight] must be an object")
        fields = spec.get("fields")
        if isinstance(fields, list):  # [{"title": {}}, {"body": {}}] keeps the order
            merged: dict[str, Any] = {}
            for item in fields:
                if not isinstance(item, dict):
                    raise parsing_error("[highlight] failed to parse field [fields]")
                merged.update(item)
            fields = merged
        if not isinstance(fields, dict) or not fields:
            raise parsing_error("[highlight] requires [fields]")
        self.fields: dict[str, dict[str, Any]] = {f: {**{k: v for k, v in spec.items() if k != "fields"},
                                                      **(o or {})} for f, o in fields.items()}
        for name, opts in self.fields.items():
            kind = opts.get("type", "unified")
            if kind == "fvh":
                raise bad_request(f"the field [{name}] should be indexed with term vector with position offsets to "
                                  f"be used with fast vector highlighter")
            if kind not in ("unified", "plain"):
                raise bad_request(f"unknown highlighter type [{kind}] for the field [{name}]")
            for key in ("boundary_scanner", "boundary_chars", "phrase_limit", "matched_fields", "max_analyzed_offset"):
                if key in opts:
                    raise unsupported(f"highlight option [{key}]")
        hq = spec.get("highlight_query")
        self.query = parse_query(hq, predict=predict) if hq is not None else query
        self._terms: dict[str, dict[str, set[str]]] = {}

    def _index_terms(self, ix: "IndexState") -> dict[str, set[str]]:
        got = self._terms.get(ix.name)
        if got is None:
            got = {}
            _terms(self.query, ix, got)
            self._terms[ix.name] = got
        return got

    def apply(self, ix: "IndexState", source: dict[str, Any]) -> dict[str, list[str]]:
        terms = self._index_terms(ix)
        out: dict[str, list[str]] = {}
        for pattern, opts in self.fields.items():
            names = [pattern] if not any(c in pattern for c in "*?") else \
                [p for p, fd in ix.mapping.fields.items() if fd.type in ("text", "keyword")
                 and fnmatch.fnmatchcase(p, pattern)]
            for name in names:
                fd = ix.mapping.fields.get(name)
                if fd is None or fd.type not in ("text", "keyword"):
                    continue
                require = opts.get("require_field_match", True) is not False
                wanted = terms.get(name, set()) if require else set().union(*terms.values()) if terms else set()
                if not require and fd.type == "text":  # other fields' terms, analysed as this field indexes
                    an = analyzer(fd.analyzer_name)
                    wanted = {t for term in wanted for t in an(term)} | wanted
                if not wanted:
                    continue
                frags = self._field(fd, _values(source, name), wanted, opts)
                if frags:
                    out[name] = frags
        return out

    def _field(self, fd: Any, values: list[str], wanted: set[str], opts: dict[str, Any]) -> list[str]:
        pre = (opts.get("pre_tags") or ["<em>"])[0]
        post = (opts.get("post_tags") or ["</em>"])[0]
        size = int(opts.get("fragment_size", 100))
        count = int(opts.get("number_of_fragments", 5))
        plain = opts.get("type", "unified") == "plain"
        candidates: list[tuple[int, int, str]] = []  # (-matches, order, fragment)
        for value in values:
            spans = self._matches(fd, value, wanted)
            if not spans:
                continue
            if count == 0 or (fd.type == "keyword"):
                end = len(value) if fd.type == "keyword" else len(value.rstrip())
                candidates.append((-len(spans), len(candidates), _mark(value, 0, end, spans, pre, post)))
                continue
            pieces = _plain_fragments(value, fd, size) if plain else _passages(value, spans, size)
            for start, end in pieces:
                inside = [s for s in spans if s[0] >= start and s[1] <= end]
                if inside:
                    candidates.append((-len({value[a:b].lower() for a, b in inside}) - len(inside),
                                       len(candidates), _mark(value, start, end, inside, pre, post)))
        if count == 0:
            return [c[2] for c in candidates]
        best = sorted(candidates)[:count]
        if opts.get("order") != "score":
            best.sort(key=lambda c: c[1])
        return [c[2] for c in best]

    @staticmethod
    def _matches(fd: Any, value: str, wanted: set[str]) -> list[tuple[int, int]]:
        if fd.type == "keyword":
            return [(0, len(value))] if value in wanted else []
        toks = analyze_text([value], analyzer_name=fd.analyzer_name)
        return [(int(t["start_offset"]), int(t["end_offset"])) for t in toks if t["token"] in wanted]  # type: ignore[call-overload]


def _values(source: Any, path: str) -> list[str]:
    node: list[Any] = [source]
    for part in path.split("."):
        nxt: list[Any] = []
        for v in node:
            if isinstance(v, dict) and part in v:
                got = v[part]
                nxt.extend(got if isinstance(got, list) else [got])
            elif isinstance(v, list):
                nxt.extend(x[part] for x in v if isinstance(x, dict) and part in x)
        node = nxt
    return [v if isinstance(v, str) else str(v) for v in node if v is not None and not isinstance(v, (dict, list))]


def _mark(text: str, start: int, end: int, spans: list[tuple[int, int]], pre: str, post: str) -> str:
    out, pos = [], start
    for a, b in sorted(spans):
        if a < pos or b > end:
            continue
        out.append(text[pos:a])
        out.append(pre + text[a:b] + post)
        pos = b
    out.append(text[pos:end])
    return "".join(out)


def _passages(text: str, spans: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Sentence passages holding a match: sentences merged while they fit ``size``; a longer one is cut
    after the first word boundary past ``size`` characters (BoundedBreakIteratorScanner)."""
    bounds, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        bounds.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        bounds.append((pos, len(text.rstrip())))
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(bounds):
        start, end = bounds[i]
        if not any(start <= a < end for a, _ in spans):
            i += 1
            continue
        j = i
        while j + 1 < len(bounds) and bounds[j + 1][1] - start <= size:
            j += 1
        end = bounds[j][1]
        if end - start > size:
            cut = re.search(r"\s", text[start + size:end])
            end = start + size + cut.start() if cut else end
            first = min(a for a, _ in spans if start <= a)
            if first >= end:  # the match lies beyond the cut: a window from the match instead
                start = first
                cut = re.search(r"\s", text[start + size:bounds[j][1]])
                end = start + size + cut.start() if cut else bounds[j][1]
        out.append((start, end))
        i = j + 1
    return out


def _plain_fragments(text: str, fd: Any, size: int) -> list[tuple[int, int]]:
    """Lucene's ``SimpleSpanFragmenter`` (the plain highlighter's default ``span``): a new fragment at the
    first token ending at or past the next multiple of ``size`` while half a fragment of text remains;
    each fragment runs from the previous one's last token end to its own, the last to the end."""
    toks = analyze_text([text], analyzer_name=fd.analyzer_name)
    out: list[tuple[int, int]] = []
    frag_start, last_end, n = 0, 0, 1
    for t in toks:
        end = int(t["end_offset"])  # type: ignore[call-overload]
        if end >= size * n and len(text) - end >= size // 2 and last_end > frag_start:
            out.append((frag_start, last_end))
            frag_start = last_end
            n += 1
        last_end = end
    out.append((frag_start, len(text)))
    return out

"""Search ``highlight``: the ``unified`` (default) and ``plain`` highlighters on text and keyword fields.

Both re-analyse the stored value with the field's index analyzer and mark the tokens whose terms the
query (or ``highlight_query``) looks for, as OpenSearch 2.x does without stored offsets:

- **unified** (Lucene's UnifiedHighlighter with OpenSearch's CustomFieldHighlighter): passages are
  sentences (``java.text.BreakIterator``'s rules), merged up to ``fragment_size`` characters or cut at
  word boundaries when longer (BoundedBreakIteratorScanner); values of a multi-valued field never share
  a passage; the best ``number_of_fragments`` passages by Lucene's PassageScorer (BM25-like, pivot 87)
  are returned in text order (``order: score`` sorts by score); each is trimmed.
- **plain** (Lucene's Highlighter, QueryScorer, SimpleSpanFragmenter): fragments of about
  ``fragment_size`` characters cut at token boundaries, scored by the number of distinct query terms,
  best first.

``number_of_fragments: 0`` highlights whole values. Options: ``pre_tags``/``post_tags`` (the first
pair is used), ``tags_schema: styled``, ``encoder: html``, ``require_field_match``, ``highlight_query``,
``no_match_size``, ``order``, ``boundary_scanner`` (sentence, word), ``fragmenter`` (span, simple).
The fast vector highlighter needs term vectors, which the node does not keep: it answers OpenSearch's error.
"""

from __future__ import annotations

import fnmatch
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from kit.node.errors import ApiError, parsing_error, shard_failure

if TYPE_CHECKING:
    from kit.node.index_state import IndexState
    from kit.node.query import Query

__all__ = ["HighlightRequest", "parse_highlight"]

_OPTIONS = {"pre_tags", "post_tags", "fragment_size", "number_of_fragments", "type", "fragmenter",
            "require_field_match", "highlight_query", "order", "encoder", "no_match_size", "boundary_scanner",
            "boundary_scanner_locale", "boundary_chars", "boundary_max_scan", "phrase_limit", "force_source",
            "highlight_filter", "options", "max_analyzer_offset", "matched_fields", "fragment_offset"}
_TOP_ONLY = {"fields", "tags_schema"}
_FIELD_ONLY = {"matched_fields", "fragment_offset"}
_STYLED_PRE = [f'<em class="hlt{i}">' for i in range(1, 11)]
_SEP = "\x00"  # Lucene's UnifiedHighlighter.MULTIVAL_SEP_CHAR between the values of a field
MAX_ANALYZED_OFFSET = 1_000_000


# ------------------------------------------------------------------------------------------ request
@dataclass
class FieldOptions:
    name: str
    opts: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.opts.get(key, default)


@dataclass
class HighlightRequest:
    """A parsed ``highlight`` object; ``for_index`` binds it to a query and an index."""

    fields: list[FieldOptions]
    highlight_query: Any = None
    terms_cache: dict[tuple[str, str], list[tuple[str, str, float]]] = field(default_factory=dict)

    def highlight(self, ix: "IndexState", query: "Query", source: Any, doc_id: str) -> dict[str, list[str]] | None:
        """The ``highlight`` object of one hit (None when no field has a fragment)."""
        out: dict[str, list[str]] = {}
        for fo in self.fields:
            for path in _expand(ix, fo.name):
                frags = _highlight_field(self, ix, query, fo, path, source, doc_id)
                if frags:
                    out[path] = frags
        return out or None


def parse_highlight(body: Any, parse_query: Callable[[Any], "Query"]) -> HighlightRequest:
    """HighlightBuilder.fromXContent: the global options apply to every field unless the field overrides."""
    if not isinstance(body, dict):
        raise parsing_error("[highlight] expected an object")
    for key in body:
        if key not in _OPTIONS | _TOP_ONLY or key in _FIELD_ONLY:
            raise ApiError(400, "x_content_parse_exception", f"[highlight] unknown field [{key}]")
    glob = {k: v for k, v in body.items() if k != "fields"}
    _check_tags(glob)
    raw = body.get("fields")
    if raw is None:
        raw = {}
    if isinstance(raw, list):
        pairs = []
        for item in raw:
            if not isinstance(item, dict) or len(item) != 1:
                raise ApiError(400, "x_content_parse_exception",
                               "[fields] can be a single object with any number of fields or an array where each "
                               "entry is an object with a single field")
            pairs.extend(item.items())
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise ApiError(400, "x_content_parse_exception", "[highlight] failed to parse field [fields]")
    fields = []
    for name, fopts in pairs:
        fopts = fopts or {}
        if not isinstance(fopts, dict):
            raise ApiError(400, "x_content_parse_exception", f"[fields] failed to parse field [{name}]")
        for key in fopts:
            if key not in _OPTIONS:
                raise ApiError(400, "x_content_parse_exception", f"[highlight_field] unknown field [{key}]")
        _check_tags(fopts)
        merged = {**glob, **fopts}
        if glob.get("tags_schema") == "styled" and "pre_tags" not in merged:
            merged["pre_tags"], merged["post_tags"] = _STYLED_PRE, ["</em>"]
        elif glob.get("tags_schema") not in (None, "default", "styled"):
            raise bad_tags_schema(glob["tags_schema"])
        if merged.get("highlight_query") is not None:
            merged["highlight_query"] = parse_query(merged["highlight_query"])
        fields.append(FieldOptions(str(name), merged))
    return HighlightRequest(fields)


def bad_tags_schema(value: Any) -> ApiError:
    return ApiError(400, "illegal_argument_exception", f"Unknown tag schema [{value}]")


def _check_tags(opts: dict[str, Any]) -> None:
    for key in ("pre_tags", "post_tags"):
        v = opts.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(t, str) for t in v)):
            raise ApiError(400, "x_content_parse_exception", f"[highlight] failed to parse field [{key}]")
    if opts.get("pre_tags") is not None and opts.get("post_tags") is None:
        raise parsing_error("pre_tags are set but post_tags are not set")


def _expand(ix: "IndexState", name: str) -> list[str]:
    if not any(c in name for c in "*?"):
        return [name]
    return [p for p, fd in ix.mapping.fields.items() if fnmatch.fnmatchcase(p, name) and fd.type in ("text", "keyword")]


# ------------------------------------------------------------------------------------------ terms
def _query_terms(q: "Query", ix: "IndexState") -> list[tuple[str, str, float]]:
    """(field, term, weight) the highlighters look for: every non-negated leaf, boosts multiplied
    (WeightedSpanTermExtractor / the unified highlighter's QueryVisitor; must_not is skipped)."""
    from kit.node import query as Q
    from kit.node.analysis import analyzer

    out: list[tuple[str, str, float]] = []

    def text_terms(fname: str, value: Any, boost: float, analyzer_name: str | None = None) -> None:
        fd = ix.mapping.fields.get(fname)
        if fd is None:
            return
        if fd.type == "text":
            text = value if isinstance(value, str) else _to_string(value)
            for tok in analyzer(analyzer_name or fd.search_analyzer_name)(text):
                out.append((fname, tok, boost))
        elif fd.type == "keyword":
            out.append((fname, _to_string(value), boost))

    def walk(node: Any, boost: float) -> None:
        b = boost * float(getattr(node, "boost", 1.0) or 1.0)
        if isinstance(node, Q.Term):
            fd = ix.mapping.fields.get(node.field)
            if fd is not None and fd.type in ("text", "keyword"):
                out.append((node.field, _to_string(node.value), b))
        elif isinstance(node, Q.Terms):
            fd = ix.mapping.fields.get(node.field)
            if fd is not None and fd.type in ("text", "keyword"):
                out.extend((node.field, _to_string(v), b) for v in node.values)
        elif isinstance(node, Q.Match):
            text_terms(node.field, node.text, b, node.analyzer_name)
        elif isinstance(node, Q.MultiMatch):
            for fname, fb in node._expand(ix):
                text_terms(fname, node.text, b * fb)
        elif isinstance(node, Q.Bool):
            for sub in node.must + node.should + node.filter:
                walk(sub, b)
        elif isinstance(node, Q.ScriptScore):
            walk(node.query, b)
        elif isinstance(node, Q.Hybrid):
            for sub in node.queries:
                walk(sub, 1.0)

    walk(q, 1.0)
    return out


def _to_string(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


# ------------------------------------------------------------------------------------------ one field
def _highlight_field(req: HighlightRequest, ix: "IndexState", query: "Query", fo: FieldOptions, path: str,
                     source: Any, doc_id: str) -> list[str] | None:
    from kit.node.knn_script import source_values

    fd = ix.mapping.fields.get(path)
    if fd is None or fd.type not in ("text", "keyword"):
        return None
    kind = str(fo.get("type") or "unified")
    if kind not in ("unified", "plain", "fvh"):
        raise shard_failure(400, "illegal_argument_exception", f"unknown highlighter type [{kind}] for the field "
                            f"[{path}]", index=ix.name, node=getattr(ix.engine, "node_id", None))
    if kind == "fvh":
        raise shard_failure(400, "illegal_argument_exception", f"the field [{path}] should be indexed with term "
                            f"vector with position offsets to be used with fast vector highlighter",
                            index=ix.name, node=getattr(ix.engine, "node_id", None))
    values = source_values(source, path)
    if not values and "." in path:  # a multi-field (title.keyword) reads its parent's value
        parent = path.rsplit(".", 1)[0]
        pfd = ix.mapping.fields.get(parent)
        if pfd is not None and pfd.type in ("text", "keyword"):
            values = source_values(source, parent)
    values = [_to_string(v) for v in values if not isinstance(v, (dict, list))]
    if not values:
        return None
    hq = fo.get("highlight_query")
    q = hq if hq is not None else query
    key = (id(q), ix.name)
    terms = req.terms_cache.get(key)  # type: ignore[arg-type]
    if terms is None:
        terms = req.terms_cache[key] = _query_terms(q, ix)  # type: ignore[index]
    rfm = fo.get("require_field_match", True) not in (False, "false")
    weights: dict[str, float] = {}
    for f, term, w in terms:
        if (f == path) if rfm else f != "_id":
            weights[term] = max(weights.get(term, 0.0), w)
    pre = (fo.get("pre_tags") or ["<em>"])[0]
    post = (fo.get("post_tags") or ["</em>"])[0]
    encode = _html_encode if fo.get("encoder") == "html" else (lambda s: s)
    nfrag = int(fo.get("number_of_fragments", 5))
    fsize = int(fo.get("fragment_size", 100))
    no_match = int(fo.get("no_match_size", 0) or 0)
    an = "keyword" if fd.type == "keyword" else fd.analyzer_name
    max_off = int(ix.settings.get("index.highlight.max_analyzed_offset", MAX_ANALYZED_OFFSET))
    if kind == "plain":
        for v in values:
            if len(v) > max_off:
                raise _too_long(ix, path, doc_id, max_off)
        return _plain(values, an, weights, nfrag, fsize, str(fo.get("fragmenter") or "span"), pre, post, encode,
                      no_match, bool(fo.get("order") == "score"))
    content = _SEP.join(values)
    if len(content) > max_off:
        raise _too_long(ix, path, doc_id, max_off)
    return _unified(values, an, weights, nfrag, fsize, str(fo.get("boundary_scanner") or "sentence"),
                    fd.type == "keyword", pre, post, encode, no_match, bool(fo.get("order") == "score"))


def _too_long(ix: "IndexState", path: str, doc_id: str, limit: int) -> ApiError:
    return shard_failure(400, "illegal_argument_exception",
                         f"The length of [{path}] field of [{doc_id}] doc of [{ix.name}] index has exceeded [{limit}] - "
                         f"maximum allowed to be analyzed for highlighting. This maximum can be set by changing the "
                         f"[index.highlight.max_analyzed_offset] index level setting. For large texts, indexing with "
                         f"offsets or term vectors is recommended!", index=ix.name,
                         node=getattr(ix.engine, "node_id", None))


_HTML = {'"': "&quot;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&#x27;", "/": "&#x2F;"}


def _html_encode(s: str) -> str:
    """Lucene's SimpleHTMLEncoder."""
    return "".join(_HTML.get(c, c) for c in s)


def _tokens(analyzer_name: str, text: str) -> list[tuple[str, int, int]]:
    from kit.node.analysis import token_offsets

    return token_offsets(analyzer_name, text)


# ------------------------------------------------------------------------------------------ java.text.BreakIterator
_TERM = set("!?\u0589\u061f\u06d4\u0700\u0701\u0702\u0964\u0965\u104a\u104b\u1362\u1367\u1368\u166e\u1803\u1809"
            "\u203c\u203d\u2047\u2048\u2049\u3002\ufe52\ufe56\ufe57\uff01\uff0e\uff1f\uff61")
_PERIOD = set(".\u2024")
_SPACE = set(" \t\n\r\x0b\x0c\x85\u2028\u00a0\u1680\u180e\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
             "\u2008\u2009\u200a\u202f\u205f\u3000")
_QUOTES = set("\"'")
_BREAK_CANDIDATE = re.compile("[" + re.escape("".join(sorted(_TERM | _PERIOD))) + "\u2029]")


def _is_end(c: str) -> bool:
    return c in _QUOTES or unicodedata.category(c) in ("Pe", "Pf")


def _is_start(c: str) -> bool:
    return c in _QUOTES or unicodedata.category(c) in ("Ps", "Pi")


def sentence_breaks(text: str) -> list[int]:
    """Boundaries of ``BreakIterator.getSentenceInstance(Locale.ROOT)`` (checked against OpenSearch
    2.19.6 on JDK 17): after ``!``/``?`` (and following closing punctuation and spaces); after a period
    only when spaces follow and then an upper-case letter or an opening quote/bracket; after U+2029."""
    out = [0]
    n = len(text)
    for m in _BREAK_CANDIDATE.finditer(text):
        i = m.start()
        if i < out[-1]:
            continue  # inside a run already consumed
        c = text[i]
        if c in _TERM or c in _PERIOD:
            j = i + 1
            while j < n and (text[j] in _TERM or text[j] in _PERIOD or _is_end(text[j])):
                j += 1
            k = j
            while k < n and text[k] in _SPACE:
                k += 1
            if c in _TERM or any(text[x] in _TERM for x in range(i, j)):
                if k < n:
                    out.append(k)
                continue
            if k > j and k < n:
                nxt = text[k]
                if _is_start(nxt) or (nxt.isalpha() and not nxt.islower()):
                    out.append(k)
            continue
        if i + 1 < n:  # U+2029
            out.append(i + 1)
    out.append(n)
    return sorted(set(out))


_WORD_RUN = re.compile(r"\w+(?:['’.](?=\w)\w+)*|\s+|.", re.UNICODE | re.DOTALL)


def word_breaks(text: str) -> list[int]:
    """Boundaries of ``BreakIterator.getWordInstance``: words, runs of spaces, each other character."""
    out = [0]
    for m in _WORD_RUN.finditer(text):
        out.append(m.end())
    return sorted(set(out))


class _Breaks:
    """A BreakIterator over fixed boundaries: ``preceding``/``following`` as in java.text (-1 is DONE)."""

    def __init__(self, bounds: list[int]) -> None:
        self.b = bounds

    def preceding(self, offset: int) -> int:
        import bisect

        i = bisect.bisect_left(self.b, offset) - 1
        return self.b[i] if i >= 0 else -1

    def following(self, offset: int) -> int:
        import bisect

        i = bisect.bisect_right(self.b, offset)
        return self.b[i] if i < len(self.b) else -1


class _Bounded:
    """OpenSearch's BoundedBreakIteratorScanner: sentences merged up to ``max_len``, split at words beyond."""

    def __init__(self, text: str, max_len: int) -> None:
        self.main, self.inner, self.max_len = _Breaks(sentence_breaks(text)), _Breaks(word_breaks(text)), max_len
        self.window_start = self.window_end = self.inner_start = -1
        self.inner_end = 0

    def preceding(self, offset: int) -> int:
        if self.window_start < offset < self.window_end:
            self.inner_start = self.inner_end
            self.inner_end = self.window_end
        else:
            self.window_start = self.inner_start = self.main.preceding(offset)
            self.window_end = self.inner_end = self.main.following(offset - 1)
            while self.inner_end - self.inner_start < self.max_len:
                new_end = self.main.following(self.inner_end)
                if new_end == -1 or new_end - self.inner_start > self.max_len:
                    break
                self.window_end = self.inner_end = new_end
        if self.inner_end - self.inner_start > self.max_len:
            if offset - self.max_len > self.inner_start:
                self.inner_start = max(self.inner_start, self.inner.preceding(offset - self.max_len))
            remaining = max(0, self.max_len - (offset - self.inner_start))
            if offset + remaining < self.window_end:
                self.inner_end = min(self.window_end, self.inner.following(offset + remaining))
        return self.inner_start

    def following(self, offset: int) -> int:
        return self.inner_end


# ------------------------------------------------------------------------------------------ unified
@dataclass
class _Passage:
    start: int = -1
    end: int = -1
    score: float = 0.0
    matches: list[tuple[int, int, str, int]] = field(default_factory=list)


_F = np.float32


def _passage_score(p: _Passage, content_len: int) -> float:
    """Lucene's PassageScorer (k1 1.2, b 0.75, pivot 87), in float as Java computes it."""
    k1, b, pivot = _F(1.2), _F(0.75), _F(87.0)
    order: list[str] = []
    in_passage: dict[str, int] = {}
    in_doc: dict[str, int] = {}
    for _s, _e, term, freq in p.matches:
        if term not in in_passage:
            order.append(term)
            in_passage[term] = 0
            in_doc[term] = freq
        in_passage[term] += 1
    score = _F(0.0)
    plen = p.end - p.start
    num_docs = _F(1.0) + _F(content_len) / pivot
    for term in order:
        norm = k1 * ((_F(1.0) - b) + b * (_F(plen) / pivot))
        tf = _F(in_passage[term]) / (_F(in_passage[term]) + norm)
        weight = (k1 + _F(1.0)) * _F(math.log(1 + (float(num_docs) + 0.5) / (in_doc[term] + 0.5)))
        score = _F(score + _F(tf * weight))
    return float(_F(score * (_F(1.0) + _F(1.0) / _F(math.log(float(pivot + _F(p.start)))))))


def _unified(values: list[str], analyzer_name: str, weights: dict[str, float], nfrag: int, fsize: int,
             scanner: str, keyword: bool, pre: str, post: str, encode: Callable[[str], str], no_match: int,
             by_score: bool) -> list[str] | None:
    content = _SEP.join(values)
    clen = len(content)
    segs: list[tuple[int, int]] = []  # (start, end) of each value in content
    matches: list[tuple[int, int, str]] = []
    off = 0
    for v in values:
        segs.append((off, off + len(v)))
        if weights:
            for term, s, e in _tokens(analyzer_name, v):
                if term in weights:
                    matches.append((off + s, off + e, term))
        off += len(v) + 1
    matches.sort(key=lambda m: (m[0], m[1], m[2]))
    freq: dict[str, int] = {}
    for _s, _e, t in matches:
        freq[t] = freq.get(t, 0) + 1
    whole = nfrag == 0 or keyword  # CustomSeparatorBreakIterator: one passage per value
    max_passages = 2**31 - 2 if nfrag == 0 else (nfrag if nfrag > 0 else 2**31 - 2)
    iters: dict[int, Any] = {}

    def seg_of(pos: int) -> int:
        for i, (s, e) in enumerate(segs):
            if s <= pos <= e:
                return i
        return len(segs) - 1

    def bounds(start: int) -> tuple[int, int]:
        i = seg_of(start)
        s0, e0 = segs[i]
        if whole:
            return s0, e0
        it = iters.get(i)
        if it is None:
            text = content[s0:e0]
            if scanner == "word":
                it = _Breaks(word_breaks(text))
            elif fsize > 0:
                it = _Bounded(text, fsize)
            else:
                it = _Breaks(sentence_breaks(text))
            iters.clear()
            iters[i] = it
        local = start - s0
        a = it.preceding(local + 1)
        b = it.following(local)
        return s0 + max(a, 0), s0 + (b if b != -1 else e0 - s0)

    queue: list[_Passage] = []

    def maybe_add(p: _Passage) -> _Passage:
        if p.start == -1:
            return p
        p.score = _passage_score(p, clen)
        if len(queue) == max_passages and p.score < min(q.score for q in queue):
            return _Passage()
        queue.append(p)
        if len(queue) > max_passages:
            worst = min(queue, key=lambda q: (q.score, q.start))
            queue.remove(worst)
        return _Passage()

    passage = _Passage()
    for s, e, term in matches:
        if s < clen < e:
            continue
        if s >= passage.end:
            passage = maybe_add(passage)
            if s >= clen:
                break
            a, b = bounds(s)
            passage.start, passage.end = max(a, 0), min(b, clen)
        passage.matches.append((s, e, term, freq[term]))
    maybe_add(passage)
    passages = sorted(queue, key=lambda p: p.start)
    if not passages and no_match > 0:  # CustomFieldHighlighter.getSummaryPassagesNoHighlight
        pos = 0
        while pos < clen and content[pos] == _SEP:
            pos += 1
        if pos < clen:
            end = content.find(_SEP, pos)
            end = clen if end == -1 else end
            if no_match + pos < end:
                f = _Breaks(word_breaks(content)).following(no_match + pos)
                end = clen if f == -1 else f
            passages = [_Passage(pos, end, float("nan"))]
    snippets: list[tuple[str, float]] = []
    for p in passages:
        parts: list[str] = []
        pos = p.start
        ms = p.matches
        i = 0
        while i < len(ms):
            start, end = ms[i][0], ms[i][1]
            parts.append(encode(content[pos:start]))
            while i + 1 < len(ms) and ms[i + 1][0] < end:
                i += 1
                end = ms[i][1]
            end = min(end, p.end)
            parts.append(pre + encode(content[start:end]) + post)
            pos = end
            i += 1
        parts.append(encode(content[pos:max(pos, p.end)]))
        text = "".join(parts)
        if text.endswith((_SEP, "\u2029")):
            text = text[:-1]
        text = _java_trim(text)
        if text:
            snippets.append((text, p.score))
    if not snippets:
        return None
    if by_score:
        intro_sort(snippets, lambda a, b: (b[1] > a[1]) - (b[1] < a[1]))
    return [t for t, _ in snippets]


def _java_trim(s: str) -> str:
    """String.trim(): strips every character up to U+0020 (controls included) at both ends."""
    a, b = 0, len(s)
    while a < b and s[a] <= " ":
        a += 1
    while b > a and s[b - 1] <= " ":
        b -= 1
    return s[a:b]


# ------------------------------------------------------------------------------------------ plain
def _plain(values: list[str], analyzer_name: str, weights: dict[str, float], nfrag: int, fsize: int,
           fragmenter: str, pre: str, post: str, encode: Callable[[str], str], no_match: int,
           by_score: bool) -> list[str] | None:
    if fragmenter not in ("span", "simple"):
        raise ApiError(400, "illegal_argument_exception", f"unknown fragmenter option [{fragmenter}]")
    per_value = 1 if nfrag == 0 else nfrag
    frags: list[tuple[float, str]] = []
    if weights:
        for text in values:
            frags.extend(_plain_value(text, _tokens(analyzer_name, text), weights, nfrag == 0, per_value, fsize,
                                      fragmenter, pre, post, encode))
    if by_score:  # CollectionUtil.introSort, Math.round(o2 - o1): not stable, so ties keep Lucene's order
        intro_sort(frags, lambda a, b: int(math.floor(b[0] - a[0] + 0.5)))
    if nfrag == 0 and len(values) > 1 and frags:
        return [t for _, t in frags]
    out = [t for _, t in frags[:min(len(frags), per_value)]]
    if out:
        return out
    if no_match > 0 and values:
        text = values[0]
        end = len(text)
        if len(text) > no_match:  # findGoodEndForNoHighlightExcerpt: the last token ending within the size
            end = -1
            for _t, _s, e in _tokens(analyzer_name, text):
                if e > no_match:
                    break
                end = e
            else:
                end = len(text)
        if end > 0:
            return [text[:end]]
    return None


def _plain_value(text: str, tokens: list[tuple[str, int, int]], weights: dict[str, float], whole: bool,
                 max_frags: int, fsize: int, fragmenter: str, pre: str, post: str,
                 encode: Callable[[str], str]) -> list[tuple[float, str]]:
    """Lucene Highlighter.getBestTextFragments for one value: (score, text) best first, score > 0."""
    new_text: list[str] = []
    length = 0
    frags: list[list[Any]] = [[0, 0, 0.0]]  # [text start, text end, score]
    found: set[str] = set()
    total = 0.0
    num_frags = 1
    last_end = 0
    group: list[tuple[str, int, int, float]] = []

    def flush() -> None:
        nonlocal length, last_end
        start = min(t[1] for t in group)
        end = max(t[2] for t in group)
        token_text = encode(text[start:end])
        marked = pre + token_text + post if sum(t[3] for t in group) > 0 else token_text
        if start > last_end:
            gap = encode(text[last_end:start])
            new_text.append(gap)
            length += len(gap)
        new_text.append(marked)
        length += len(marked)
        last_end = max(end, last_end)
        group.clear()

    for term, s, e in tokens:
        if group and s >= max(t[2] for t in group):
            flush()
            new = False
            if not whole:
                new = e >= fsize * num_frags and (fragmenter == "simple" or (len(text) - e) >= (fsize >> 1))
            if new:
                num_frags += 1
                frags[-1][2] = total
                frags[-1][1] = length
                frags.append([length, 0, 0.0])
                found, total = set(), 0.0
        w = weights.get(term, 0.0)
        if w and term not in found:
            found.add(term)
            total += w
        group.append((term, s, e, w))
    frags[-1][2] = total
    if group:
        flush()
    if last_end < len(text):
        rest = encode(text[last_end:])
        new_text.append(rest)
        length += len(rest)
    frags[-1][1] = length
    joined = "".join(new_text)
    ranked = sorted(range(len(frags)), key=lambda i: (-frags[i][2], i))[:max_frags]
    return [(frags[i][2], joined[frags[i][0]:frags[i][1]]) for i in ranked if frags[i][2] > 0]


# ------------------------------------------------------------------------------------------ Lucene's IntroSorter
def intro_sort(items: list[Any], cmp: Callable[[Any, Any], int]) -> None:
    """``CollectionUtil.introSort`` (Lucene 9 IntroSorter) in place: the order it leaves equal elements in
    is what OpenSearch returns, so the same algorithm runs here."""

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]

    def compare(i: int, j: int) -> int:
        return cmp(items[i], items[j])

    def median(i: int, j: int, k: int) -> int:
        if compare(i, j) < 0:
            if compare(j, k) <= 0:
                return j
            return k if compare(i, k) < 0 else i
        if compare(j, k) >= 0:
            return j
        return i if compare(i, k) < 0 else k

    def insertion(lo: int, hi: int) -> None:
        for i in range(lo + 1, hi):
            cur = i
            while cur > lo and compare(cur - 1, cur) > 0:
                swap(cur - 1, cur)
                cur -= 1

    def sort(lo: int, hi: int, depth: int) -> None:
        while hi - lo > 16:
            size = hi - lo
            depth -= 1
            if depth < 0:
                part = items[lo:hi]  # heap sort fallback (never reached for highlight-sized lists)
                import functools

                part.sort(key=functools.cmp_to_key(cmp))
                items[lo:hi] = part
                return
            last = hi - 1
            mid = (lo + last) >> 1
            if size <= 40:
                r = size >> 2
                pivot = median(mid - r, mid, mid + r)
            else:
                r = size >> 3
                r2 = r << 1
                pivot = median(median(lo, lo + r, lo + r2), median(mid - r, mid, mid + r),
                               median(last - r2, last - r, last))
            swap(lo, pivot)
            pv = items[lo]
            i, j, p, q = lo, hi, lo + 1, last
            while True:
                i += 1
                left = cmp(pv, items[i])
                while left > 0:
                    i += 1
                    left = cmp(pv, items[i])
                j -= 1
                right = cmp(pv, items[j])
                while right < 0:
                    j -= 1
                    right = cmp(pv, items[j])
                if i >= j:
                    if i == j and right == 0:
                        swap(i, p)
                    break
                swap(i, j)
                if right == 0:
                    swap(i, p)
                    p += 1
                if left == 0:
                    swap(j, q)
                    q -= 1
            i = j + 1
            k = lo
            while k < p:
                swap(k, j)
                k += 1
                j -= 1
            k = last
            while k > q:
                swap(k, i)
                k -= 1
                i += 1
            if j - lo < last - i:
                sort(lo, j + 1, depth)
                lo = i
            else:
                sort(i, hi, depth)
                hi = j + 1
        insertion(lo, hi)

    n = len(items)
    if n > 1:
        sort(0, n, 2 * (n.bit_length() - 1))

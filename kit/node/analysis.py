"""Analyzers: Lucene's ``standard`` (UAX#29-style word split + lowercase), ``english`` (possessive,
lowercase, stop words, Porter stemming), ``simple``, ``whitespace``, ``stop`` and ``keyword``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

from kit.node.errors import ApiError

__all__ = ["ENGLISH_STOP_WORDS", "analyze_text", "analyzer", "known_analyzers", "token_offsets"]

# Lucene EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the `_english_` set)
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)

# Words: letters/digits/underscore joined by mid-letter/mid-number punctuation (don't, 3.14, u.s.a);
# ideographs and hiragana are one token each, a katakana run one token, as Lucene's StandardTokenizer emits them.
_IDEO = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_KATAKANA = "\u30a0-\u30ff\uff66-\uff9f"  # a run of katakana is one word (UAX#29 Katakana)
_WORD = re.compile(rf"[{_KATAKANA}]+|[{_IDEO}]|(?:[^\W{_IDEO}{_KATAKANA}]+(?:['’.:,](?=[^\W{_IDEO}{_KATAKANA}])[^\W{_IDEO}{_KATAKANA}]+)*)",
                   re.UNICODE)
_LETTERS = re.compile(r"[^\W\d_]+", re.UNICODE)
_MAX_TOKEN = 255


def _standard_tokens(text: str) -> list[str]:
    out = []
    for m in _WORD.finditer(text):
        tok = m.group(0)
        # "1,000" is one token but "a,b" is two: a comma only joins digits (MidNum)
        if "," in tok and not tok.replace(",", "").replace(".", "").isdigit():
            out.extend(t for t in tok.split(",") if t)
        elif ":" in tok and not tok.replace(":", "").isalpha():
            out.extend(t for t in tok.split(":") if t)
        else:
            out.append(tok)
    return [t[:_MAX_TOKEN] for t in out]


def standard(text: str) -> list[str]:
    return [t.lower() for t in _standard_tokens(text)]


@lru_cache(maxsize=1)
def _porter() -> Callable[[str], str]:
    import snowballstemmer

    stem = snowballstemmer.stemmer("porter")
    cache: dict[str, str] = {}

    def one(word: str) -> str:
        r = cache.get(word)
        if r is None:
            r = stem.stemWord(word)
            if len(cache) < 200_000:
                cache[word] = r
        return r

    return one


def english(text: str) -> list[str]:
    stem = _porter()
    out = []
    for tok in _standard_tokens(text):
        # EnglishPossessiveFilter: drop a trailing 's / ’s
        if len(tok) > 2 and tok[-2:].lower() in ("'s", "’s"):
            tok = tok[:-2]
        tok = tok.lower()
        if tok in ENGLISH_STOP_WORDS:
            continue
        out.append(stem(tok))
    return out


def simple(text: str) -> list[str]:
    return [t.lower() for t in _LETTERS.findall(text)]


def stop(text: str) -> list[str]:
    return [t for t in simple(text) if t not in ENGLISH_STOP_WORDS]


def whitespace(text: str) -> list[str]:
    return text.split()


def keyword(text: str) -> list[str]:
    return [text]


_ANALYZERS: dict[str, Callable[[str], list[str]]] = {
    "standard": standard,
    "default": standard,
    "english": english,
    "simple": simple,
    "stop": stop,
    "whitespace": whitespace,
    "keyword": keyword,
}


def known_analyzers() -> list[str]:
    return sorted(_ANALYZERS)


def analyzer(name: str | None) -> Callable[[str], list[str]]:
    """The analyzer function for a built-in name; unknown names fail like OpenSearch does."""
    fn = _ANALYZERS.get(name or "standard")
    if fn is None:
        raise ApiError(400, "illegal_argument_exception", f"failed to find analyzer [{name}]")
    return fn


# ---------------------------------------------------------------------------------------- _analyze
# Token streams with offsets, types and positions, as ``_analyze`` shows them (AnalyzeAction).
Token = tuple[str, int, int, str]  # (term, start, end, type)
_STOPPED = "\x00stopped"  # a removed token: it still takes a position (Lucene's position increment)


def _standard_type(tok: str) -> str:
    if re.fullmatch(rf"[{_KATAKANA}]+", tok):
        return "<KATAKANA>"
    if len(tok) == 1 and re.match(rf"[{_IDEO}]", tok):
        o = ord(tok)
        if 0x3040 <= o <= 0x309F:
            return "<HIRAGANA>"
        if 0x30A0 <= o <= 0x30FF:
            return "<KATAKANA>"
        return "<IDEOGRAPHIC>"
    return "<NUM>" if any(c.isdigit() for c in tok) and not any(c.isalpha() for c in tok) else "<ALPHANUM>"


def _standard_stream(text: str, types: bool = True) -> list[Token]:
    out: list[Token] = []
    for m in _WORD.finditer(text):
        tok, start = m.group(0), m.start()
        pieces: list[tuple[str, int]]
        if ("," in tok and not tok.replace(",", "").replace(".", "").isdigit()) or \
                (":" in tok and "," not in tok and not tok.replace(":", "").isalpha()):
            sep = "," if "," in tok else ":"
            pieces, pos = [], start
            for part in tok.split(sep):
                if part:
                    pieces.append((part, pos))
                pos += len(part) + 1
        else:
            pieces = [(tok, start)]
        for part, s in pieces:
            part = part[:_MAX_TOKEN]
            out.append((part, s, s + len(part), _standard_type(part) if types else ""))
    return out


def _tokenize(name: str, text: str, types: bool = True) -> list[Token]:
    if name == "standard":
        return _standard_stream(text, types)
    if name in ("letter", "lowercase"):
        toks = [(m.group(0), m.start(), m.end(), "word") for m in _LETTERS.finditer(text)]
        return [(t.lower(), s, e, ty) for t, s, e, ty in toks] if name == "lowercase" else toks
    if name == "whitespace":
        return [(m.group(0), m.start(), m.end(), "word") for m in re.finditer(r"\S+", text)]
    if name == "keyword":
        return [(text, 0, len(text), "word")]
    raise ApiError(400, "illegal_argument_exception", f"failed to find global tokenizer under [{name}]")


def _filter(name: str, tokens: list[Token]) -> list[Token]:
    if name == "lowercase":
        return [(t.lower(), s, e, ty) for t, s, e, ty in tokens]
    if name == "uppercase":
        return [(t.upper(), s, e, ty) for t, s, e, ty in tokens]
    if name == "stop":
        return [(_STOPPED if t in ENGLISH_STOP_WORDS else t, s, e, ty) for t, s, e, ty in tokens]
    if name in ("porter_stem", "stemmer"):
        stem = _porter()
        return [(t if t == _STOPPED else stem(t), s, e, ty) for t, s, e, ty in tokens]
    if name == "english_possessive":
        return [((t[:-2] if len(t) > 2 and t[-2:].lower() in ("'s", "’s") else t), s, e, ty) for t, s, e, ty in tokens]
    raise ApiError(400, "illegal_argument_exception", f"failed to find global filter under [{name}]")


# analyzer → (tokenizer, filters), the built-in analyzers as chains
_CHAINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "standard": ("standard", ("lowercase",)),
    "default": ("standard", ("lowercase",)),
    "english": ("standard", ("english_possessive", "lowercase", "stop", "porter_stem")),
    "simple": ("lowercase", ()),
    "stop": ("lowercase", ("stop",)),
    "whitespace": ("whitespace", ()),
    "keyword": ("keyword", ()),
}


def analyze_text(texts: list[str], *, analyzer_name: str | None = None, tokenizer: str | None = None,
                 filters: list[str] | None = None, position_gap: int = 0) -> list[dict[str, object]]:
    """The ``tokens`` of an ``_analyze`` response. Several texts continue the offsets (+1 between values)
    and positions (+``position_gap``, the analyzer's position increment gap)."""
    if tokenizer is not None:
        chain = (tokenizer, tuple(filters or ()))
    else:
        found = _CHAINS.get(analyzer_name or "standard")
        if found is None:
            raise ApiError(400, "illegal_argument_exception", f"failed to find global analyzer [{analyzer_name}]")
        chain = found
    out: list[dict[str, object]] = []
    position, offset = -1, 0
    for i, text in enumerate(texts):
        if i > 0:
            position += position_gap
        tokens = _tokenize(chain[0], text)
        for f in chain[1]:
            tokens = _filter(f, tokens)
        for term, s, e, ty in tokens:
            position += 1
            if term == _STOPPED:
                continue
            out.append({"token": term, "start_offset": offset + s, "end_offset": offset + e, "type": ty,
                        "position": position})
        offset += len(text) + 1
    return out


def token_offsets(analyzer_name: str, text: str) -> list[tuple[str, int, int]]:
    """(term, start, end) of each token a built-in analyzer keeps (what the highlighters re-analyse)."""
    found = _CHAINS.get(analyzer_name or "standard")
    if found is None:
        raise ApiError(400, "illegal_argument_exception", f"failed to find global analyzer [{analyzer_name}]")
    tokens = _tokenize(found[0], text, types=False)
    for f in found[1]:
        tokens = _filter(f, tokens)
    return [(t, s, e) for t, s, e, _ty in tokens if t != _STOPPED]

"""Analyzers: Lucene's ``standard`` (UAX#29-style word split + lowercase), ``english`` (possessive,
lowercase, stop words, Porter stemming), ``simple``, ``whitespace``, ``stop`` and ``keyword``."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

from kit.node.errors import ApiError

__all__ = ["ENGLISH_STOP_WORDS", "analyzer", "known_analyzers"]

# Lucene EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (the `_english_` set)
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)

# Words: letters/digits/underscore joined by mid-letter/mid-number punctuation (don't, 3.14, u.s.a);
# ideographs and kana are one token each, as UAX#29 / Lucene's StandardTokenizer emit them.
_IDEO = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_IDEO}]|(?:[^\W{_IDEO}]+(?:['’.:,](?=[^\W{_IDEO}])[^\W{_IDEO}]+)*)", re.UNICODE)
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

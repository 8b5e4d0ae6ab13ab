"""Lucene-faithful BM25 over in-memory postings, and exact-value postings for keyword-like fields.

BM25 as Lucene 9's ``BM25Similarity`` (k1=1.2, b=0.75, no (k1+1) factor; OpenSearch 2.x still uses
``LegacyBM25Similarity``, which scales the boost by k1+1, so ``legacy=True`` does too):
``idf = ln(1 + (docCount − docFreq + 0.5) / (docFreq + 0.5))``,
``score = boost·idf · (1 − 1 / (1 + freq / (k1·(1 − b + b·dl/avgdl))))``, where ``dl`` is the field
length after the lossy one-byte norm encoding (``SmallFloat.intToByte4``), ``avgdl =
sumTotalTermFreq / docCount`` over documents that have the field, all in float32 like Lucene.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Iterable

import numpy as np

__all__ = ["BM25_B", "BM25_K1", "ExactPostings", "TextPostings", "byte4_to_int", "int_to_byte4"]

BM25_K1 = 1.2
BM25_B = 0.75


def _long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i
    shift = num_bits - 4
    encoded = (i >> shift) & 0x07
    return encoded | ((shift + 1) << 3)


def _int4_to_long(i: int) -> int:
    bits = i & 0x07
    shift = (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


_NUM_FREE_VALUES = 255 - _long_to_int4(2**31 - 1)


def int_to_byte4(i: int) -> int:
    """Lucene ``SmallFloat.intToByte4`` (as an unsigned byte)."""
    if i < _NUM_FREE_VALUES:
        return i
    return _NUM_FREE_VALUES + _long_to_int4(i - _NUM_FREE_VALUES)


def byte4_to_int(b: int) -> int:
    if b < _NUM_FREE_VALUES:
        return b
    return _NUM_FREE_VALUES + _int4_to_long(b - _NUM_FREE_VALUES)


_LENGTH_TABLE = np.array([byte4_to_int(i) for i in range(256)], dtype=np.float32)


def _idf(doc_count: int, doc_freq: int) -> float:
    return float(np.float32(math.log(1.0 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5))))


def _boost(boost: float, legacy: bool) -> np.float32:
    """``LegacyBM25Similarity.scorer``: ``boost * (1 + k1)`` in float before the BM25 weight."""
    b = np.float32(boost)
    return np.float32(b * (np.float32(1) + np.float32(BM25_K1))) if legacy else b


class TextPostings:
    """term → {rid: freq}, rid → encoded norm; stats for BM25 (one field of one index/shard)."""

    def __init__(self, legacy: bool = False) -> None:
        self.legacy = legacy
        self.postings: dict[str, dict[int, int]] = defaultdict(dict)
        self.norms: dict[int, int] = {}
        self.doc_terms: dict[int, list[str]] = {}
        self.sum_ttf = 0

    def add(self, rid: int, tokens: list[str]) -> None:
        if not tokens and rid not in self.norms:
            # a field with no tokens still "exists" for Lucene only if it produced terms
            return
        counts = Counter(tokens)
        for term, tf in counts.items():
            p = self.postings[term]
            p[rid] = p.get(rid, 0) + tf
        prev = self.doc_terms.get(rid)
        total = len(tokens) + (byte4_to_int(self.norms[rid]) if prev is not None else 0)
        self.doc_terms[rid] = (prev or []) + list(counts)
        self.norms[rid] = int_to_byte4(total)
        self.sum_ttf += len(tokens)

    def remove(self, rid: int) -> None:
        terms = self.doc_terms.pop(rid, None)
        if terms is None:
            return
        for term in terms:
            p = self.postings.get(term)
            if p is not None:
                tf = p.pop(rid, 0)
                self.sum_ttf -= tf
                if not p:
                    del self.postings[term]
        self.norms.pop(rid, None)

    @property
    def doc_count(self) -> int:
        return len(self.norms)

    def docs_with_field(self) -> Iterable[int]:
        return self.norms.keys()

    def term_scores(self, term: str, boost: float = 1.0) -> dict[int, float]:
        """BM25 score of each doc containing ``term``."""
        p = self.postings.get(term)
        if not p:
            return {}
        n = self.doc_count
        avgdl = np.float32(self.sum_ttf) / np.float32(n) if n else np.float32(1)
        weight = _boost(boost, self.legacy) * np.float32(_idf(n, len(p)))
        rids = np.fromiter(p.keys(), dtype=np.int64, count=len(p))
        freqs = np.fromiter(p.values(), dtype=np.float32, count=len(p))
        norms = np.fromiter((self.norms[r] for r in rids), dtype=np.int64, count=len(p))
        dl = _LENGTH_TABLE[norms]
        cache = (np.float32(1) / (np.float32(BM25_K1) * ((np.float32(1) - np.float32(BM25_B))
                                                         + np.float32(BM25_B) * dl / avgdl))).astype(np.float32)
        scores = weight - weight / (np.float32(1) + freqs * cache)
        return dict(zip(rids.tolist(), scores.astype(np.float32).tolist()))

    def term_docs(self, term: str) -> set[int]:
        return set(self.postings.get(term, ()))


class ExactPostings:
    """Exact values of a keyword/numeric/date/boolean field: value → rids and rid → values."""

    def __init__(self, legacy: bool = False) -> None:
        self.legacy = legacy
        self.postings: dict[Any, set[int]] = defaultdict(set)
        self.values: dict[int, list[Any]] = {}
        self.sum_df = 0

    def add(self, rid: int, values: list[Any]) -> None:
        if not values:
            return
        self.values.setdefault(rid, []).extend(values)
        for v in values:
            s = self.postings[v]
            if rid not in s:
                s.add(rid)
                self.sum_df += 1

    def remove(self, rid: int) -> None:
        vals = self.values.pop(rid, None)
        if vals is None:
            return
        for v in vals:
            s = self.postings.get(v)
            if s is not None and rid in s:
                s.discard(rid)
                self.sum_df -= 1
                if not s:
                    del self.postings[v]

    def docs(self, value: Any) -> set[int]:
        return set(self.postings.get(value, ()))

    def docs_with_field(self) -> Iterable[int]:
        return self.values.keys()

    def term_scores(self, value: Any, boost: float = 1.0) -> dict[int, float]:
        """BM25 for a keyword term: keyword fields omit norms, so every doc length reads as 1."""
        p = self.postings.get(value)
        if not p:
            return {}
        n = len(self.values)
        # DOCS-only field: sumTotalTermFreq == sumDocFreq
        avgdl = np.float32(self.sum_df) / np.float32(n)
        weight = _boost(boost, self.legacy) * np.float32(_idf(n, len(p)))
        cache = np.float32(1) / (np.float32(BM25_K1) * ((np.float32(1) - np.float32(BM25_B))
                                                        + np.float32(BM25_B) * np.float32(1) / avgdl))
        score = float(weight - weight / (np.float32(1) + np.float32(1) * cache))
        return {r: score for r in p}

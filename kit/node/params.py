"""URL parameters a REST handler does not read: OpenSearch answers 400 naming them
(``BaseRestHandler#unrecognized``), with "did you mean" suggestions from Lucene's Levenshtein distance."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from kit.node.errors import bad_request

__all__ = ["COUNT_PARAMS", "SEARCH_PARAMS", "check_params"]

# read by every handler: the channel (format, filter_path, pretty, human) and RestController (error_trace)
_GLOBAL = ("format", "filter_path", "pretty", "human", "error_trace")
_INDICES_OPTIONS = ("expand_wildcards", "ignore_unavailable", "allow_no_indices", "ignore_throttled")

# RestSearchAction (2.19): (always read, read only when present). Only read-always names are suggestions
# for a typo, as in OpenSearch (``request.param`` marks a name consumed, ``hasParam`` does not).
SEARCH_PARAMS = (
    frozenset(("index", "batched_reduce_size", "search_type", "request_cache", "scroll", "routing", "preference",
               "search_pipeline", "rest_total_hits_as_int", "include_named_queries_score", "ccs_minimize_roundtrips",
               "cancel_after_time_interval", "q", "docvalue_fields", "stored_fields", "_source", "_source_includes",
               "_source_excludes", "sort", "stats", "suggest_field", "typed_keys", *_INDICES_OPTIONS, *_GLOBAL)),
    frozenset(("pre_filter_shard_size", "max_concurrent_shard_requests", "allow_partial_search_results",
               "phase_took", "from", "size", "explain", "version", "seq_no_primary_term", "timeout",
               "verbose_pipeline", "terminate_after", "track_scores", "track_total_hits",
               # read once q (URI search) or suggest_field is there
               "df", "analyzer", "analyze_wildcard", "lenient", "default_operator", "suggest_text", "suggest_size",
               "suggest_mode")),
)
# RestCountAction (2.19)
COUNT_PARAMS = (
    frozenset(("index", "min_score", "preference", "routing", "terminate_after", "q", *_INDICES_OPTIONS, *_GLOBAL)),
    frozenset(("df", "analyzer", "analyze_wildcard", "lenient", "default_operator")),
)


def check_params(path: str, given: Iterable[str], known: tuple[frozenset[str], frozenset[str]]) -> None:
    always, when_present = known
    names = set(given)
    bad = sorted(names - always - when_present)
    if not bad:
        return
    candidates = always | (names & when_present)
    parts = []
    for name in bad:
        scored = [(d, c) for c in candidates if (d := _distance(name, c)) > np.float32(0.5)]
        scored.sort(key=lambda t: (-t[0], t[1]))
        keys = [c for _, c in scored]
        part = f"[{name}]"
        if len(keys) == 1:
            part += f" -> did you mean [{keys[0]}]?"
        elif keys:
            part += f" -> did you mean any of [{', '.join(keys)}]?"
        parts.append(part)
    raise bad_request(f"request [{path}] contains unrecognized parameter{'s' if len(bad) > 1 else ''}: "
                      + ", ".join(parts))


def _distance(target: str, other: str) -> np.float32:
    """Lucene ``LevenshteinDistance#getDistance``: 1 - edits / longer length, in float32."""
    if not target or not other:
        return np.float32(1.0) if target == other else np.float32(0.0)
    prev = list(range(len(target) + 1))
    for j, ch in enumerate(other, 1):
        cur = [j] + [0] * len(target)
        for i, tc in enumerate(target, 1):
            cur[i] = min(cur[i - 1] + 1, prev[i] + 1, prev[i - 1] + (tc != ch))
        prev = cur
    return np.float32(1.0) - np.float32(prev[-1]) / np.float32(max(len(target), len(other)))

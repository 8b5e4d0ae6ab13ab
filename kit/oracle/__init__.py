"""The differential oracle: the same requests to a real OpenSearch and to the embedded node, answers compared.

Sequences come from the corpus of client-library requests (``kit/oracle/corpus/*.yaml``), from
recordings of the kit's own requests (``OSKIT_RECORD_REQUESTS=FILE``, :mod:`kit.cluster.recording`)
and from the spec's test stories. ``oskit node compare --real URL`` runs them; the node and the kit
meet only over HTTP, so this package sends plain HTTP to both sides.
"""

from kit.oracle.normalise import compare, normalise
from kit.oracle.runner import (Exchange, KnownDifference, Outcome, Report, Sequence, Side, Step,
                               load_known_differences, run_sequences)
from kit.oracle.sources import CORPUS_DIR, compare_stories, load_corpus, load_recording

__all__ = [
    "CORPUS_DIR",
    "Exchange",
    "KnownDifference",
    "Outcome",
    "Report",
    "Sequence",
    "Side",
    "Step",
    "compare",
    "compare_stories",
    "load_corpus",
    "load_known_differences",
    "load_recording",
    "normalise",
    "run_sequences",
]

"""Zero-shot tags with CLIP against a vocabulary file.

Vocabulary format (``models/vocabulary.txt``)::

    # comment
    [colour] a {} shape          ← a group, with an optional prompt template ("{}" = the tag)
    red
    dark blue | a dark blue shape   ← optional explicit prompt after "|"

Tags in one group compete (softmax of CLIP's scaled cosine similarities within the group); a tag
is kept when its probability is ≥ ``threshold``; at most ``top_k`` tags overall, best first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kit.errors import ConfigError

__all__ = ["TagGroup", "Tagger", "parse_vocabulary"]


@dataclass
class TagGroup:
    name: str
    tags: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


def parse_vocabulary(path: Path) -> list[TagGroup]:
    """Read a vocabulary file; errors name the file and line."""
    groups: list[TagGroup] = []
    current: TagGroup | None = None
    template = "{}"
    seen: set[str] = set()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tag vocabulary: {exc}") from exc
    for no, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            name, sep, rest = line[1:].partition("]")
            if not sep or not name.strip():
                raise ConfigError(f"{path}:{no}: a group header looks like '[name] optional template with {{}}'")
            template = rest.strip() or "{}"
            if "{}" not in template:
                raise ConfigError(f"{path}:{no}: the template {template!r} has no '{{}}' for the tag")
            current = TagGroup(name.strip())
            groups.append(current)
            continue
        if current is None:
            current = TagGroup("tags")
            groups.append(current)
            template = "{}"
        tag, _, prompt = (p.strip() for p in line.partition("|"))
        if tag in seen:
            raise ConfigError(f"{path}:{no}: tag {tag!r} appears twice")
        seen.add(tag)
        current.tags.append(tag)
        current.prompts.append(prompt or template.format(tag))
    groups = [g for g in groups if g.tags]
    if not groups:
        raise ConfigError(f"{path}: the tag vocabulary is empty")
    return groups


class Tagger:
    """Scores image vectors against the vocabulary's text vectors (computed once)."""

    def __init__(self, groups: list[TagGroup], text_vectors: np.ndarray, logit_scale: float,
                 threshold: float, top_k: int) -> None:
        self.groups = groups
        self.threshold = threshold
        self.top_k = top_k
        self.logit_scale = logit_scale
        self._slices: list[tuple[TagGroup, slice]] = []
        start = 0
        for g in groups:
            self._slices.append((g, slice(start, start + len(g.tags))))
            start += len(g.tags)
        if text_vectors.shape[0] != start:
            raise ValueError("one text vector per tag is needed")
        self.text_vectors = text_vectors.astype(np.float32)

    @property
    def size(self) -> int:
        return int(self.text_vectors.shape[0])

    def tag(self, image_vector: np.ndarray) -> dict[str, Any]:
        """→ ``{"tags": [...], "scores": {tag: probability}}`` (scores for the top_k candidates)."""
        sims = self.text_vectors @ image_vector.astype(np.float32)
        candidates: list[tuple[float, str]] = []
        for group, sl in self._slices:
            logits = self.logit_scale * sims[sl]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            candidates.extend((float(p), t) for p, t in zip(probs, group.tags))
        candidates.sort(key=lambda c: -c[0])
        top = candidates[: self.top_k]
        return {
            "tags": [t for p, t in top if p >= self.threshold],
            "scores": {t: round(p, 4) for p, t in top},
        }

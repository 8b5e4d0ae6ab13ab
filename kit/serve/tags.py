"""Zero-shot tags with CLIP against a vocabulary file.

Vocabulary format (``models/vocabulary.txt``)::

    # comment
    [colour] a {} {shape}        ← a group and its prompt template: {} = the tag,
    red                            {shape} = every tag of the group "shape" (prompt ensemble)
    orange | an orange {shape}   ← an explicit template for one tag
    !plain | a {colour} {shape}  ← "!": competes in its group but is never reported

Each tag's text vector is the normalised mean over its expanded prompts (CLIP's prompt
ensembling). Tags in one group compete (softmax of CLIP's scaled cosine similarities within the
group); a tag is kept when its probability is ≥ ``threshold``; at most ``top_k`` tags, best first.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kit.errors import ConfigError

__all__ = ["MAX_PROMPTS_PER_TAG", "TagGroup", "Tagger", "build_tagger", "parse_vocabulary"]

MAX_PROMPTS_PER_TAG = 512
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)?\}")
_ARTICLE = re.compile(r"\ba ([aeiou])")


@dataclass
class TagGroup:
    name: str
    tags: list[str] = field(default_factory=list)
    prompts: list[list[str]] = field(default_factory=list)  # expanded prompts per tag
    hidden: set[str] = field(default_factory=set)


def parse_vocabulary(path: Path) -> list[TagGroup]:
    """Read and expand a vocabulary file; errors name the file and line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the tag vocabulary: {exc}") from exc
    raw: list[tuple[str, list[tuple[int, str, str, bool]]]] = []  # group, [(line, tag, template, hidden)]
    template = "{}"
    seen: set[str] = set()
    for no, text in enumerate(lines, 1):
        line = text.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            name, sep, rest = line[1:].partition("]")
            if not sep or not name.strip():
                raise ConfigError(f"{path}:{no}: a group header looks like '[name] optional template with {{}}'")
            template = rest.strip() or "{}"
            raw.append((name.strip(), []))
            continue
        if not raw:
            raw.append(("tags", []))
            template = "{}"
        tag, _, own = (p.strip() for p in line.partition("|"))
        hidden = tag.startswith("!")
        tag = tag.lstrip("!").strip()
        if not tag:
            raise ConfigError(f"{path}:{no}: empty tag")
        if tag in seen:
            raise ConfigError(f"{path}:{no}: tag {tag!r} appears twice")
        seen.add(tag)
        raw[-1][1].append((no, tag, own or template, hidden))
    by_name = {name: [t for _, t, _, _ in items] for name, items in raw}
    groups: list[TagGroup] = []
    for name, items in raw:
        if not items:
            continue
        group = TagGroup(name)
        for no, tag, tmpl, hidden in items:
            refs = [m.group(1) for m in _PLACEHOLDER.finditer(tmpl) if m.group(1)]
            unknown = [r for r in refs if r not in by_name]
            if unknown:
                raise ConfigError(f"{path}:{no}: template {tmpl!r} names unknown group(s) {unknown} "
                                  f"(groups: {', '.join(by_name)})")
            if "{}" not in tmpl and not hidden:
                raise ConfigError(f"{path}:{no}: the template {tmpl!r} has no '{{}}' for the tag")
            choices = [by_name[r] for r in refs]
            count = 1
            for c in choices:
                count *= len(c)
            if count > MAX_PROMPTS_PER_TAG:
                raise ConfigError(f"{path}:{no}: template {tmpl!r} expands to {count} prompts "
                                  f"(at most {MAX_PROMPTS_PER_TAG})")
            prompts = []
            for combo in itertools.product(*choices):
                values = iter(combo)
                text = _PLACEHOLDER.sub(lambda m: tag if m.group(1) is None else next(values), tmpl)
                prompts.append(_ARTICLE.sub(r"an \1", text))
            group.tags.append(tag)
            group.prompts.append(prompts)
            if hidden:
                group.hidden.add(tag)
        groups.append(group)
    if not groups:
        raise ConfigError(f"{path}: the tag vocabulary is empty")
    return groups


def build_tagger(groups: list[TagGroup], embed_texts: Callable[[list[str]], np.ndarray], logit_scale: float,
                 threshold: float, top_k: int) -> "Tagger":
    """Embed every expanded prompt once and average them per tag."""
    flat = [p for g in groups for prompts in g.prompts for p in prompts]
    vectors = np.asarray(embed_texts(flat), dtype=np.float32)
    per_tag = []
    start = 0
    for g in groups:
        for prompts in g.prompts:
            v = vectors[start:start + len(prompts)].mean(0)
            per_tag.append(v / max(float(np.linalg.norm(v)), 1e-12))
            start += len(prompts)
    return Tagger(groups, np.stack(per_tag), logit_scale, threshold, top_k)


class Tagger:
    """Scores image vectors against one text vector per tag (computed once)."""

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
        return sum(len(g.tags) - len(g.hidden) for g in self.groups)

    def tag(self, image_vector: np.ndarray) -> dict[str, Any]:
        """→ ``{"tags": [...], "scores": {tag: probability}}`` (scores for the top_k candidates)."""
        sims = self.text_vectors @ image_vector.astype(np.float32)
        candidates: list[tuple[float, str]] = []
        for group, sl in self._slices:
            logits = self.logit_scale * sims[sl]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            candidates.extend((float(p), t) for p, t in zip(probs, group.tags) if t not in group.hidden)
        candidates.sort(key=lambda c: -c[0])
        top = candidates[: self.top_k]
        return {
            "tags": [t for p, t in top if p >= self.threshold],
            "scores": {t: round(p, 4) for p, t in top},
        }

"""The tag vocabulary format and the zero-shot scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kit.errors import ConfigError
from kit.serve.tags import Tagger, build_tagger, parse_vocabulary

ROOT = Path(__file__).resolve().parents[2]


def test_project_vocabulary_matches_the_generator() -> None:
    from kit.models import synth

    groups = {g.name: g for g in parse_vocabulary(ROOT / "models" / "vocabulary.txt")}
    assert groups["shape"].tags == list(synth.SHAPES)
    assert groups["colour"].tags == list(synth.COLOURS)
    assert groups["size"].tags == list(synth.SIZES)
    assert groups["texture"].tags == list(synth.TEXTURES[1:]) + ["plain"] and groups["texture"].hidden == {"plain"}
    assert groups["word"].tags == ["noword"] + [w.lower() for w in synth.WORDS] and groups["word"].hidden == {"noword"}
    # prompt ensembles follow the captions: every colour with every shape, articles fixed
    assert "an orange circle" in groups["colour"].prompts[1]
    assert len(groups["size"].prompts[0]) == len(synth.COLOURS) * len(synth.SHAPES)


def test_format_and_errors(tmp_path: Path) -> None:
    f = tmp_path / "v.txt"
    f.write_text("# c\n[a] x {} {b}\none\n!two | y {b}\n[b]\np\nq | z {}\n")
    a, b = parse_vocabulary(f)
    assert a.prompts == [["x one p", "x one q"], ["y p", "y q"]] and a.hidden == {"two"}
    assert b.prompts == [["p"], ["z q"]]
    for text, msg in [("[a] {} {nope}\nx\n", "unknown group"), ("x\nx\n", "twice"), ("[a] no tag\nx\n", "no '{}'"),
                      ("# only comments\n", "empty"), ("[ ]\nx\n", "group header")]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=msg):
            parse_vocabulary(f)


def test_softmax_within_groups_threshold_and_top_k(tmp_path: Path) -> None:
    f = tmp_path / "v.txt"
    f.write_text("[c]\nred\nblue\n!none\n[s]\ncircle\nsquare\n")
    groups = parse_vocabulary(f)
    vecs = np.eye(5, dtype=np.float32)  # red, blue, none, circle, square

    tagger = Tagger(groups, vecs, logit_scale=10.0, threshold=0.5, top_k=3)
    out = tagger.tag(np.array([1, 0, 0, 0.8, 0], dtype=np.float32))
    assert out["tags"] == ["red", "circle"]
    assert list(out["scores"]) == ["red", "circle", "square"] and "none" not in out["scores"]
    assert tagger.size == 4
    built = build_tagger(groups, lambda texts: np.eye(5, dtype=np.float32)[: len(texts)], 10.0, 0.5, 3)
    assert np.allclose(built.text_vectors, vecs)

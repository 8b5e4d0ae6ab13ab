"""Query bodies, filters, templates, score bands and the HTML gallery (no cluster needed)."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import pytest
from PIL import Image

from kit.errors import EvalError, KitError
from kit.job.gallery import render_gallery
from kit.job.search import Hit, apply_template, build_search, filter_clauses, parse_filters
from kit.job.similar import Bands, calibrate_bands, encode_query_image, shares_nothing, shares_object

EXCLUDES = ["image", "image_embedding", "ocr_embedding", "caption_embedding", "thumbnail"]


def test_template_wraps_single_words_only() -> None:
    assert apply_template("dress", "a picture of a {term}") == "a picture of a dress"
    assert apply_template("  red dress ", "a picture of a {term}") == "red dress"
    assert apply_template("dress", None) == "dress"
    with pytest.raises(KitError, match="no {term} placeholder"):
        apply_template("dress", "a picture")


def test_vector_body() -> None:
    body = build_search("dress", k=30)
    assert body == {"size": 30, "query": {"neural": {"image_embedding": {"query_text": "a picture of a dress", "k": 30}}},
                    "_source": {"excludes": EXCLUDES}}


def test_tags_body_union_and_intersection() -> None:
    assert build_search("red circles", mode="tags", k=5)["query"] == \
        {"match": {"tags": {"query": "red circles", "operator": "or"}}}
    assert build_search("red circles", mode="tags", all_terms=True)["query"] == \
        {"match": {"tags": {"query": "red circles", "operator": "and"}}}


def test_hybrid_body_has_bm25_and_vector_halves() -> None:
    q = build_search("stop", mode="hybrid", k=10, thumbnails=True)
    assert q["_source"] == {"excludes": EXCLUDES[:-1]}
    lexical, neural = q["query"]["hybrid"]["queries"]
    # zero-shot tags are CLIP's own vector in words: hybrid's BM25 half reads only OCR text and captions
    assert lexical["multi_match"]["fields"] == ["ocr_text", "caption"]
    assert lexical["multi_match"]["type"] == "most_fields"
    assert lexical["multi_match"]["query"] == "stop"  # BM25 sees the words as typed
    assert neural == {"neural": {"image_embedding": {"query_text": "a picture of a stop", "k": 10}}}


def test_ocr_field_uses_text_vectors_without_template() -> None:
    v = build_search("SN 4411-AB", field="ocr_text")["query"]
    assert v == {"neural": {"ocr_embedding": {"query_text": "SN 4411-AB", "k": 30}}}
    h = build_search("4411", field="ocr_text", mode="hybrid")["query"]["hybrid"]["queries"]
    assert h[0] == {"match": {"ocr_text": {"query": "4411", "operator": "or"}}}
    assert h[1] == {"neural": {"ocr_embedding": {"query_text": "4411", "k": 30}}}


def test_filters_follow_the_mapping() -> None:
    mapping = {"format": {"type": "keyword"},
               "metadata": {"properties": {
                   "colour": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                   "note": {"type": "text"}, "year": {"type": "long"}}}}
    clauses = filter_clauses(parse_filters(["format=png", "colour=red", "note=big hat", "year=2020", "tags=red"]),
                             mapping)
    assert clauses == [{"term": {"format": "png"}}, {"term": {"metadata.colour.keyword": "red"}},
                       {"match_phrase": {"metadata.note": "big hat"}}, {"term": {"metadata.year": "2020"}},
                       {"term": {"tags.raw": "red"}}]
    body = build_search("dress", filters={"format": "png"}, mapping=mapping)
    assert body["query"]["neural"]["image_embedding"]["filter"] == {"term": {"format": "png"}}
    tags = build_search("dress", mode="tags", filters={"format": "png", "year": 1}, mapping=mapping)["query"]
    assert tags == {"bool": {"must": [{"match": {"tags": {"query": "dress", "operator": "or"}}}],
                             "filter": [{"term": {"format": "png"}}, {"term": {"metadata.year": 1}}]}}


@pytest.mark.parametrize("kwargs,msg", [({"mode": "fuzzy"}, "unknown search mode"), ({"field": "x"}, "unknown search field"),
                                        ({"k": 0}, "between 1 and 10000"), ({"text": " "}, "empty query")])
def test_bad_search_arguments(kwargs: dict, msg: str) -> None:
    text = kwargs.pop("text", "dress")
    with pytest.raises(KitError, match=msg):
        build_search(text, **kwargs)
    with pytest.raises(KitError, match="bad filter"):
        parse_filters(["novalue"])


def test_bands_label_and_order() -> None:
    b = Bands(identical=0.99, near_identical=0.9, similar=0.7)
    assert [b.label(s) for s in (0.995, 0.99, 0.95, 0.7, 0.69)] == \
        ["identical", "identical", "near-identical", "similar", "unrelated"]
    with pytest.raises(KitError):
        Bands(identical=0.5, near_identical=0.9, similar=0.7)


def test_calibrate_bands_separates_the_classes() -> None:
    samples = {"identical": [0.999, 0.998, 0.997], "near-identical": [0.95, 0.93, 0.96, 0.91],
               "similar": [0.85, 0.8, 0.82, 0.88], "unrelated": [0.6, 0.65, 0.7, 0.72]}
    b = calibrate_bands(samples)
    assert b.identical == pytest.approx((0.997 + 0.96) / 2, abs=1e-4)
    assert b.near_identical == pytest.approx((0.91 + 0.88) / 2, abs=1e-4)
    assert b.similar == pytest.approx((0.8 + 0.72) / 2, abs=1e-4)
    assert b.details["identical_accuracy"] == 1.0
    for label, scores in samples.items():
        assert all(b.label(s) == label for s in scores)


def test_calibrate_bands_overlap_and_missing_classes() -> None:
    b = calibrate_bands({"near-identical": [0.9, 0.95], "similar": [0.91, 0.8, 0.7]})
    assert b.identical == Bands().identical  # no identical samples -> default edge kept
    assert b.details["near_identical_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2, abs=1e-4)
    assert b.identical >= b.near_identical >= b.similar
    with pytest.raises(EvalError):
        calibrate_bands({"twins": [1.0]})


def test_bands_round_trip(tmp_path) -> None:
    b = calibrate_bands({"identical": [1.0], "near-identical": [0.9]}, source="test")
    assert Bands.load(b.save(tmp_path / "b.json")) == b
    assert Bands.default(tmp_path) == Bands()


def test_generated_metadata_relations() -> None:
    a = {"objects": [{"colour": "red", "shape": "circle"}]}
    assert shares_object(a, {"objects": [{"colour": "red", "shape": "circle"}, {"colour": "blue", "shape": "star"}]})
    assert not shares_object(a, {"objects": [{"colour": "red", "shape": "star"}]})
    assert shares_object(a, {}) is None
    assert shares_nothing(a, {"objects": [{"colour": "blue", "shape": "star"}]})
    assert not shares_nothing(a, {"objects": [{"colour": "blue", "shape": "circle"}]})


def test_query_image_validation_and_downscale() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (3000, 1000), "green").save(buf, "PNG")
    small = base64.b64decode(encode_query_image(buf.getvalue()))
    assert Image.open(io.BytesIO(small)).size == (1024, 341)
    tiny = io.BytesIO()
    Image.new("RGB", (20, 20), "green").save(tiny, "PNG")
    assert base64.b64decode(encode_query_image(tiny.getvalue())) == tiny.getvalue()
    with pytest.raises(KitError, match="not an image"):
        encode_query_image(b"hello")
    with pytest.raises(KitError, match="empty"):
        encode_query_image(b"")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.figures = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "figure":
            self.figures += 1


def test_gallery_html() -> None:
    hits = [Hit("a" * 64, 0.91234, {"file_name": "<b>x</b>.png", "thumbnail": "QUJD", "metadata": {"k": "v"},
                                    "source_uri": "file:///tmp/x.png"}, label="similar"),
            Hit("b" * 64, 0.5, {"file_name": "y.png"})]
    page = render_gallery(hits, title="search: red & blue", subtitle="2 hits")
    p = _Collect()
    p.feed(page)
    assert p.figures == 2
    assert p.imgs == [{"alt": "<b>x</b>.png", "src": "data:image/jpeg;base64,QUJD"}]
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;.png" in page  # escaped
    assert "search: red &amp; blue" in page and "0.9123" in page and "label-similar" in page
    assert "no thumbnail" in page
    assert "No results." in render_gallery([], title="t")


def test_cli_defaults_are_the_seeds_text_to_image_search() -> None:
    """`oskit search WORD` = top 30 by CLIP, a single word wrapped as "a picture of a {term}"."""
    from kit.cli.job import search as search_cmd
    from kit.job.search import DEFAULT_PROMPT_TEMPLATE

    defaults = {p.name: p.default for p in search_cmd.params}
    assert defaults["k"] == 30 and defaults["mode"] == "vector" and defaults["field_"] == "image"
    assert defaults["prompt_template"] == DEFAULT_PROMPT_TEMPLATE == "a picture of a {term}"
    body = build_search("dress", k=defaults["k"], mode=defaults["mode"], prompt_template=defaults["prompt_template"])
    assert body["query"] == {"neural": {"image_embedding": {"query_text": "a picture of a dress", "k": 30}}}
    assert body["size"] == 30

"""Query bodies, filters, templates, score bands and the HTML gallery (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

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
    body = build_search("dress", k=30)  # no template unless one is given (the project records the winner)
    assert body == {"size": 30, "query": {"neural": {"image_embedding": {"query_text": "dress", "k": 30}}},
                    "_source": {"excludes": EXCLUDES}}
    body = build_search("dress", k=30, prompt_template="a picture of a {term}")
    assert body["query"]["neural"]["image_embedding"]["query_text"] == "a picture of a dress"


def test_tags_body_union_and_intersection() -> None:
    assert build_search("red circles", mode="tags", k=5)["query"] == \
        {"match": {"tags": {"query": "red circles", "operator": "or"}}}
    assert build_search("red circles", mode="tags", all_terms=True)["query"] == \
        {"match": {"tags": {"query": "red circles", "operator": "and"}}}


def test_hybrid_body_has_bm25_and_vector_halves() -> None:
    q = build_search("stop", mode="hybrid", k=10, thumbnails=True, prompt_template="a picture of a {term}")
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
    b = Bands(identical=0.99, near_identical=0.9, similar=0.7, identical_phash=4, identical_colour=1,
              near_phash=30, near_colour=4)
    # (score, pHash distance, colour distance) → label
    cases = [((0.995, 2, 0), "identical"), ((0.995, 10, 0), "near-identical"), ((0.95, 20, 3), "near-identical"),
             ((0.95, 40, 0), "similar"), ((0.95, 20, 9), "similar"), ((0.7, 0, 0), "similar"),
             ((0.69, 0, 0), "unrelated")]
    assert [b.label(*args) for args, _ in cases] == [want for _, want in cases]
    assert b.label(0.999) == "similar"  # no hashes: never identical on the score alone
    with pytest.raises(KitError):
        Bands(identical=0.5, near_identical=0.9, similar=0.7)


def test_uncalibrated_bands_label_only_equal_hashes() -> None:
    b = Bands()
    assert not b.calibrated
    assert b.label(0.99, 0, 0) == "identical"
    assert b.label(0.99, 1, 0) is None and b.label(1.0) is None


def test_magenta_square_is_not_near_identical_to_a_stop_sign() -> None:
    """The issue's case: a plain field scored 0.9046 against a STOP sign. Its pHash carries no
    structure, so the hash gate rejects it whatever the score."""
    import imagehash
    from PIL import Image

    from kit.models.heldout import heldout_images
    from kit.job.similar import hamming

    stop = next(im.image for im in heldout_images(0) if im.name.startswith("sign-stop"))
    square = Image.new("RGB", (8, 8), (230, 0, 200))
    d_ph = hamming(str(imagehash.phash(square)), str(imagehash.phash(stop)))
    d_co = hamming(str(imagehash.colorhash(square, 3)), str(imagehash.colorhash(stop, 3)))
    b = Bands(identical=0.99, near_identical=0.89, similar=0.73, identical_phash=6, identical_colour=2,
              near_phash=30, near_colour=6)
    assert b.label(0.9046, d_ph, d_co) not in ("identical", "near-identical"), (d_ph, d_co)


def test_calibrate_bands_separates_the_classes() -> None:
    samples = {"identical": [(0.999, 0, 0), (0.998, 2, 0), (0.997, 4, 1)],
               "near-identical": [(0.95, 20, 2), (0.93, 14, 1), (0.96, 26, 3), (0.91, 18, 0)],
               "similar": [(0.85, 30, 4), (0.8, 32, 6), (0.82, 20, 3), (0.88, 34, 2)],
               "unrelated": [(0.6, 30, 7), (0.65, 28, 8), (0.7, 36, 9), (0.72, 30, 5)]}
    b = calibrate_bands(samples, model="clip: test")
    assert (b.identical_phash, b.identical_colour, b.near_phash, b.near_colour) == (4, 1, 26, 3)
    assert b.identical == pytest.approx(0.997 - 1e-4, abs=1e-6)  # no other class gets through its hash gate
    # only similar/unrelated samples that pass the near-identical hash gate compete with it
    assert b.details["near_identical_gate"]["negatives_through_hashes"] == 1
    assert b.similar == pytest.approx((0.8 + 0.72) / 2, abs=1e-4)
    assert b.details["identical_accuracy"] == 1.0 and b.model == "clip: test"
    for label, rows in samples.items():
        assert all(b.label(*row) == label for row in rows), label


def test_calibrate_bands_needs_similar_and_unrelated() -> None:
    with pytest.raises(EvalError, match="similar"):
        calibrate_bands({"near-identical": [0.9, 0.95], "similar": [0.91, 0.8, 0.7]})
    with pytest.raises(EvalError):
        calibrate_bands({"twins": [1.0]})
    b = calibrate_bands({"similar": [0.9, 0.8], "unrelated": [0.5]})  # no copies: no copy labels
    assert b.identical is None and b.near_identical is None and b.label(0.99, 0, 0) == "similar"


def test_bands_round_trip(tmp_path) -> None:
    b = calibrate_bands({"identical": [(1.0, 0, 0)], "near-identical": [(0.9, 12, 1)], "similar": [(0.8, 30, 3)],
                         "unrelated": [(0.5, 30, 6)]}, source="test", model="clip: x")
    assert Bands.load(b.save(tmp_path / "b.json")) == b


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


def test_cli_defaults_read_the_projects_templates(tmp_path) -> None:
    """`oskit search WORD` = top 30 by CLIP; the template is the one `oskit eval --choose-templates`
    recorded in the project, and none when it recorded none (single words are templated only where
    the evaluation says it helps)."""
    from kit.cli.job import search as search_cmd
    from kit.job.search import PromptTemplates

    defaults = {p.name: p.default for p in search_cmd.params}
    assert defaults["k"] == 30 and defaults["mode"] == "vector" and defaults["field_"] == "image"
    assert defaults["prompt_template"] is None  # → PromptTemplates.for_project(--project)
    none = PromptTemplates.for_project(tmp_path)
    assert (none.word, none.phrase) == (None, None)
    body = build_search("dress", k=30, prompt_template=none)
    assert body["query"] == {"neural": {"image_embedding": {"query_text": "dress", "k": 30}}}
    PromptTemplates(word="a photo of a {term}", phrase=None, source="test").save(tmp_path)
    chosen = PromptTemplates.for_project(tmp_path)
    assert chosen.apply("dress") == "a photo of a dress" and chosen.apply("red dress") == "red dress"
    body = build_search("dress", k=30, prompt_template=chosen)
    assert body["query"]["neural"]["image_embedding"]["query_text"] == "a photo of a dress"


def test_gallery_links_survive_moving_the_file(tmp_path, monkeypatch) -> None:
    import re as _re
    import shutil
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from kit.job.gallery import write_gallery

    photos = tmp_path / "work" / "photos"
    photos.mkdir(parents=True)
    (photos / "a.png").write_bytes(b"x")
    (photos / "b.png").write_bytes(b"y")
    monkeypatch.chdir(tmp_path / "work")
    hits = [Hit("a" * 64, 0.9, {"file_name": "a.png", "source_uri": (photos / "a.png").as_uri()}),
            Hit("b" * 64, 0.8, {"file_name": "b.png", "source_uri": "photos/b.png"}),  # relative, from metadata
            Hit("c" * 64, 0.7, {"file_name": "c.png", "source_uri": "https://example.org/c.png"})]
    out = write_gallery(tmp_path / "work" / "out" / "g.html", hits, title="t")
    moved = tmp_path / "elsewhere" / "g.html"
    moved.parent.mkdir()
    shutil.move(str(out), moved)
    hrefs = _re.findall(r'href="([^"]+)"', moved.read_text())
    assert hrefs and all(h.startswith(("file:///", "https://")) for h in hrefs)
    for h in {h for h in hrefs if h.startswith("file:")}:
        assert Path(url2pathname(urlparse(h).path)).is_file(), h

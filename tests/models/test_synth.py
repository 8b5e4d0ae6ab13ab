"""The synthetic scene generator: determinism, caption/attribute consistency, eval-set ground truth."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from kit.models import synth


def _digest(img) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(img.tobytes()).hexdigest()


def test_same_seed_same_scene_and_pixels() -> None:
    for seed in (0, 7, 123456):
        assert synth.make_scene(seed) == synth.make_scene(seed)
        assert _digest(synth.render(synth.make_scene(seed))) == _digest(synth.render(synth.make_scene(seed)))


def test_different_seeds_differ() -> None:
    digests = {_digest(synth.render(synth.make_scene(s), 64)) for s in range(50)}
    assert len(digests) == 50


def test_render_size_and_mode() -> None:
    img = synth.render(synth.make_scene(3), 200)
    assert img.size == (200, 200) and img.mode == "RGB"


def test_phone_photo_is_deterministic_and_changes_the_picture() -> None:
    img = synth.render(synth.make_scene(11))
    a, b, c = synth.phone_photo(img, 5), synth.phone_photo(img, 5), synth.phone_photo(img, 6)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert a.size == img.size and a.mode == "RGB"
    diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(img, dtype=np.int16)).mean()
    assert 5 < diff < 120  # visibly altered, not a different picture of noise


def test_caption_names_every_object_and_the_background() -> None:
    for seed in range(300):
        sc = synth.make_scene(seed)
        cap = synth.caption(sc)
        assert 1 <= len(sc.objects) <= 3
        for o in sc.objects:
            assert f"{o.colour} {o.shape}" in cap
            assert o.size in cap
            if o.texture != "plain":
                assert f"{o.texture} {o.colour} {o.shape}" in cap
        assert f"{sc.background} background" in cap
        assert (f"the word {sc.word}" in cap) == (sc.word is not None)
        assert ("serial number" in cap) == (sc.serial is not None)
        assert synth.matches(synth.caption_spec(sc), sc)


def test_attributes_come_from_the_vocabulary() -> None:
    words = {w for values in synth.VOCABULARY.values() for w in values}
    for seed in range(200):
        sc = synth.make_scene(seed)
        assert set(synth.scene_tags(sc)) <= words
        for o in sc.objects:
            assert o.shape in synth.VOCABULARY["shapes"] and o.colour in synth.VOCABULARY["colours"]
            assert o.colour != sc.background  # never invisible against the background
        meta = sc.metadata()
        assert meta["caption"] == synth.caption(sc) and meta["tags"] == synth.scene_tags(sc)
        if sc.serial:
            assert sc.serial.startswith("SN ") and len(sc.serial) == 10


def test_objects_sit_in_distinct_cells_away_from_text_rows() -> None:
    for seed in range(300):
        sc = synth.make_scene(seed)
        positions = [o.position for o in sc.objects]
        assert len(set(positions)) == len(positions)
        text_rows = {r for r in (sc.word_row, sc.serial_row) if r}
        for o in sc.objects:
            row = synth.ROWS[synth.POSITIONS.index(o.position) // 3]
            assert row not in text_rows


def test_caption_variants_match_their_own_scene_and_reject_others() -> None:
    rng = random.Random(0)
    scenes = [synth.make_scene(s) for s in range(400)]
    for sc in scenes:
        text, spec = synth.caption_variants(sc, rng)
        assert text and synth.matches(spec, sc), (text, spec)
    red = {"objects": [{"colour": "red"}]}
    assert [synth.matches(red, s) for s in scenes] == [any(o.colour == "red" for o in s.objects) for s in scenes]
    # a full caption describes its own scene and (almost) no other
    others = sum(synth.matches(synth.caption_spec(scenes[0]), s) for s in scenes[1:])
    assert others <= 1


def test_eval_set_is_deterministic_with_unique_captions_and_true_ground_truth() -> None:
    es = synth.make_eval_set(80, seed=3)
    again = synth.make_eval_set(80, seed=3)
    assert [s.id for s in es.scenes] == [s.id for s in again.scenes] and es.queries == again.queries
    caps = [synth.caption(s) for s in es.scenes]
    assert len(set(caps)) == 80
    by_id = {s.id: s for s in es.scenes}
    kinds = {(q["type"], q.get("kind")) for q in es.queries}
    assert {("text", "caption"), ("text", "word"), ("text", "object"), ("image", None)} <= kinds
    for q in es.queries:
        assert q["relevant"] and all(r in by_id for r in q["relevant"])
        if q["type"] == "text" and q["kind"] == "word" and "colour" in q["attributes"]:
            expect = [s.id for s in es.scenes if any(o.colour == q["text"] for o in s.objects)]
            assert q["relevant"] == expect
        if q["type"] == "text" and q["kind"] == "sign":
            assert q["relevant"] == [s.id for s in es.scenes if s.word == q["text"]]
        if q["type"] == "ocr":
            assert all(by_id[r].serial == q["text"] for r in q["relevant"])
        if q["type"] == "image":
            assert q["relevant"] == [q["source_id"]]
    # eval scenes never come from the training seed stream
    assert all(s.seed >= synth.EVAL_SEED_OFFSET for s in es.scenes)


def test_write_eval_set(tmp_path: Path) -> None:
    es = synth.make_eval_set(12, seed=2, image_size=96)
    out = synth.write_eval_set(es, tmp_path / "ev")
    doc = yaml.safe_load((out / "queries.yaml").read_text())
    assert doc["n_images"] == 12 and doc["generator_version"] == synth.GENERATOR_VERSION
    lines = (out / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == 12 and len(list((out / "images").glob("*.png"))) == 12
    img_q = [q for q in doc["queries"] if q["type"] == "image"]
    assert img_q and all((out / q["image_file"]).is_file() for q in img_q)


@pytest.mark.slow
def test_rendered_words_and_serials_are_legible_to_rapidocr() -> None:
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    ocr = rapidocr.RapidOCR()
    checked = 0
    for seed in range(100):
        sc = synth.make_scene(seed)
        if not (sc.word and sc.serial):
            continue
        result, _ = ocr(np.asarray(synth.render(sc, 256)))
        texts = {r[1].replace(" ", "") for r in result or []}
        assert sc.word in texts and sc.serial.replace(" ", "") in texts, (sc.word, sc.serial, texts)
        checked += 1
        if checked == 3:
            break
    assert checked == 3

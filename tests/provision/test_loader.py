"""The project loader: strict schema, all errors at once as `file: dotted.path: message (hint)`,
cross-file checks, environments, and a fuzz test that only ever sees ConfigError."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provision_helpers import ROOT, copy_default_project, edit
from kit.config.loader import load_project
from kit.errors import ConfigError


def _problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_project(path, **kw)  # type: ignore[arg-type]
    return str(err.value).splitlines()


def test_the_repository_is_a_valid_project() -> None:
    project = load_project(ROOT)
    assert sorted(project.models) == ["captions", "clip", "hash", "ocr", "tags", "text"]
    assert sorted(project.pipelines) == ["images-ingest", "images-search"]
    assert project.pipelines["images-ingest"].type == "ingest"
    assert project.pipelines["images-search"].type == "search"
    assert list(project.indices) == ["images"]
    assert project.models["clip"].serve is not None and project.models["clip"].serve.kind == "clip"
    assert project.cluster.settings["plugins.ml_commons.native_memory_threshold"] == 99


def test_messages_name_file_key_and_hint(project_dir: Path) -> None:
    edit(project_dir / "models/clip.yaml", "space_type: cosinesimil", "space_typ: cosinesimil")
    edit(project_dir / "models/ocr.yaml", "type: remote", "type: remot")
    edit(project_dir / "pipelines/images-ingest.yaml", "model: clip", "model: clipp")
    edit(project_dir / "mappings/images.yaml", "from_model: text\n      space_type: cosinesimil\n      method:\n"
         "        name: hnsw\n        engine: faiss\n        parameters:\n          m: 16\n          ef_construction: 100\n"
         "    caption_embedding",
         "from_model: txt\n      space_type: cosinesimil\n      method:\n"
         "        name: hnsw\n        engine: faiss\n        parameters:\n          m: 16\n          ef_construction: 100\n"
         "    caption_embedding")
    assert _problems(project_dir) == [
        "models/clip.yaml: unknown key 'space_typ' (hint: did you mean 'space_type'?)",
        "models/ocr.yaml: type: Input should be 'remote', 'local_pretrained' or 'local_custom' (got 'remot')",
        "pipelines/images-ingest.yaml: processors[3].text_image_embedding.model: unknown model 'clipp' "
        "(known: captions, clip, hash, ocr, tags, text) (hint: did you mean 'clip'?)",
        "mappings/images.yaml: mappings.properties.ocr_embedding.dimension.from_model: unknown model 'txt' "
        "(known: captions, clip, hash, ocr, tags, text) (hint: did you mean 'text'?)",
    ]


def test_cross_file_dimension_and_space_checks(project_dir: Path) -> None:
    text = (project_dir / "mappings/images.yaml").read_text()
    text = text.replace("dimension:\n        from_model: clip", "dimension: 256", 1)
    text = text.replace("space_type: cosinesimil", "space_type: l2", 2)
    (project_dir / "mappings/images.yaml").write_text(text)
    assert _problems(project_dir) == [
        "mappings/images.yaml: mappings.properties.image_embedding.dimension: dimension 256 does not match model "
        "'clip' (512) used by pipelines/images-ingest.yaml (hint: use dimension: {from_model: clip})",
        "mappings/images.yaml: mappings.properties.image_embedding: space_type l2 does not fit model 'clip' "
        "(space_type cosinesimil) (hint: use space_type: cosinesimil)",
        "mappings/images.yaml: mappings.properties.ocr_embedding: space_type l2 does not fit model 'text' "
        "(space_type cosinesimil) (hint: use space_type: cosinesimil)",
        "mappings/images.yaml: mappings.properties.image_embedding.dimension: dimension 256 does not match model "
        "'clip' (512) used by pipelines/images-search.yaml (hint: use dimension: {from_model: clip})",
        "mappings/images.yaml: mappings.properties.image_embedding: space_type l2 does not fit model 'clip' "
        "(space_type cosinesimil) (hint: use space_type: cosinesimil)",
        "mappings/images.yaml: mappings.properties.ocr_embedding: space_type l2 does not fit model 'text' "
        "(space_type cosinesimil) (hint: use space_type: cosinesimil)",
    ]


def test_pipeline_references_and_processor_model_fit(project_dir: Path) -> None:
    edit(project_dir / "mappings/images.yaml", "default_pipeline: images-ingest", "default_pipeline: images-search")
    edit(project_dir / "mappings/images.yaml", "search_pipeline: images-search", "search_pipeline: nope")
    edit(project_dir / "pipelines/images-ingest.yaml", "model: text", "model: clip")
    assert _problems(project_dir) == [
        "pipelines/images-ingest.yaml: processors[4].text_embedding.model: text_embedding needs a text model; 'clip' "
        "is image+text (its multimodal pre-process would read a second text as an image) "
        "(hint: use a text model (e.g. models/text.yaml))",
        "mappings/images.yaml: default_pipeline: 'images-search' is a search pipeline, default_pipeline needs an "
        "ingest pipeline",
        "mappings/images.yaml: search_pipeline: unknown pipeline 'nope' (known: images-ingest, images-search) "
        "(hint: add pipelines/nope.yaml)",
    ]


def test_engine_and_space_rules_follow_the_target_version(project_dir: Path) -> None:
    edit(project_dir / "cluster.yaml", 'min_version: "2.19"', 'min_version: "2.17"')
    problems = _problems(project_dir)
    assert problems[0] == ("mappings/images.yaml: mappings.properties.image_embedding: faiss with cosinesimil needs "
                           "OpenSearch 2.19 (target 2.17.0) (hint: use engine: lucene, or L2-normalised vectors with "
                           "innerproduct (cluster.yaml target.min_version sets the oldest version checked))")
    assert len(problems) == 3
    edit(project_dir / "cluster.yaml", 'min_version: "2.17"', 'min_version: "3.0"')
    text = (project_dir / "mappings/images.yaml").read_text().replace("engine: faiss", "engine: nmslib")
    (project_dir / "mappings/images.yaml").write_text(text)
    assert _problems(project_dir)[0].startswith("mappings/images.yaml: mappings.properties.image_embedding: engine "
                                                "nmslib cannot be used for new indices on OpenSearch 3.0.0")


def test_secrets_must_come_from_the_environment(project_dir: Path) -> None:
    edit(project_dir / "models/clip.yaml", "  protocol: http\n", "  protocol: http\n  credential:\n    api_key: s3cret\n")
    [problem] = _problems(project_dir)
    assert problem.startswith("models/clip.yaml: connector.credential: credential 'api_key' must come from the "
                              "environment")
    assert "s3cret" not in problem


def test_yaml_errors_duplicates_and_empty_files(project_dir: Path) -> None:
    (project_dir / "models/bad.yaml").write_text("type: remote\n  dimension: [\n")
    (project_dir / "models/dup.yaml").write_text("type: remote\ntype: remote\n")
    (project_dir / "models/empty.yaml").write_text("")
    (project_dir / "models/list.yaml").write_text("- a\n")
    assert _problems(project_dir) == [
        "models/bad.yaml: line 2, column 12: invalid YAML: mapping values are not allowed here "
        "(hint: check indentation and quoting)",
        "models/dup.yaml: line 2, column 1: invalid YAML: duplicate key 'type' (hint: check indentation and quoting)",
        "models/empty.yaml: the file is empty (hint: remove it or describe the resource)",
        "models/list.yaml: expected a mapping at the top level, got list",
    ]


def test_environment_overlay(project_dir: Path) -> None:
    project = load_project(project_dir, env="prod")
    assert project.indices["images"].settings["index.number_of_replicas"] == 1
    assert project.cluster.settings["plugins.ml_commons.only_run_on_ml_node"] is True
    with pytest.raises(ConfigError, match=r"unknown environment 'qa' \(known: dev, prod, real\)"):
        load_project(project_dir, env="qa")
    (project_dir / "environments/bad.yaml").write_text("models:\n  nope: {dimension: 3}\nmapings: {}\n")
    assert _problems(project_dir, env="bad") == [
        "environments/bad.yaml: unknown key 'mapings' (hint: did you mean 'mappings'?)",
    ]


def test_serve_block_allows_extra_keys_but_checks_kind(project_dir: Path) -> None:
    edit(project_dir / "models/clip.yaml", "kind: clip", "kind: clip\n  batch_size: 8")
    assert load_project(project_dir).models["clip"].serve.model_extra == {"batch_size": 8}  # type: ignore[union-attr]
    edit(project_dir / "models/clip.yaml", "kind: clip", "kind: vit")
    [problem] = _problems(project_dir)
    assert problem.startswith("models/clip.yaml: serve.kind: Input should be 'clip', 'ocr', 'tags', 'hash', 'captions' or 'text'")


def test_raw_model_ids_are_refused(project_dir: Path) -> None:
    edit(project_dir / "pipelines/images-ingest.yaml", "model: ocr", "model_id: abc")
    assert _problems(project_dir) == [
        "pipelines/images-ingest.yaml: processors[0].ml_inference.model_id: model ids differ per cluster; name the "
        "model instead (hint: use model: <model name from models/>)",
    ]


# ------------------------------------------------------------------------------------------ fuzz

_keys = st.sampled_from(["type", "task", "modality", "dimension", "space_type", "connector", "actions", "url",
                         "processors", "mappings", "properties", "model", "field_map", "settings", "package",
                         "source", "probe", "serve", "kind", "enabled", "group", "from_model", "knn_vector",
                         "description", "credential", "x"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 20000), st.floats(allow_nan=True),
                     st.text(string.printable, max_size=12), st.sampled_from(["remote", "clip", "${env:X}", "${env:",
                                                                              "knn_vector", "cosinesimil", "text"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=5)), max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=st.sampled_from(["models", "pipelines", "mappings", "environments", "."]),
       doc=st.one_of(st.dictionaries(_keys, _values, max_size=6), _values),
       raw=st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=40)))
def test_fuzz_the_loader_never_raises_anything_but_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                                 folder: str, doc: object, raw: object) -> None:
    root = copy_default_project(tmp_path_factory.mktemp("fuzz"))
    target = root / folder / ("fuzz.yaml" if folder != "." else "cluster.yaml")
    if isinstance(raw, bytes):
        target.write_bytes(raw)
    elif isinstance(raw, str):
        target.write_text(raw, encoding="utf-8")
    else:
        target.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        load_project(root, env="fuzz" if folder == "environments" else None)
    except ConfigError as exc:
        assert str(exc)

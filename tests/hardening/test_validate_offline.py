"""`oskit validate` catches offline what apply would fail on (issue 17): k-NN enums (`engine: fais`),
unknown keys in `serve:` blocks, unknown cluster setting names, and errors in environments/<name>.yaml
reported against that file."""

from __future__ import annotations

from pathlib import Path

from clihelp import oskit
from provision_helpers import edit


def _validate(project_dir: Path, *extra: str) -> tuple[int, str]:
    res = oskit("validate", "--project", str(project_dir), "--no-spec", *extra)
    return res.exit_code, res.stderr


def test_knn_engine_typo(project_dir: Path) -> None:
    text = (project_dir / "mappings/images.yaml").read_text()
    assert text.count("engine: faiss") >= 1
    (project_dir / "mappings/images.yaml").write_text(text.replace("engine: faiss", "engine: fais", 1))
    code, err = _validate(project_dir)
    assert code == 1
    assert err == ("error: mappings/images.yaml: mappings.properties.image_embedding.method.engine: unknown engine "
                   "'fais' (known: faiss, lucene, nmslib) (hint: did you mean 'faiss'?)\n")


def test_unknown_cluster_setting_name(project_dir: Path) -> None:
    edit(project_dir / "cluster.yaml", "plugins.ml_commons.only_run_on_ml_node: false",
         "plugins.ml_commons.only_run_on_ml_nodes: false\n  knn.memory.circuit_breaker.limit: 60%\n"
         "  cluster.routing.allocation.enable: all")
    code, err = _validate(project_dir)
    assert code == 1
    assert err == ("error: cluster.yaml: settings.plugins.ml_commons.only_run_on_ml_nodes: unknown cluster setting "
                   "'plugins.ml_commons.only_run_on_ml_nodes' (hint: did you mean "
                   "'plugins.ml_commons.only_run_on_ml_node'?)\n")


def test_errors_from_an_environment_overlay_name_that_file(project_dir: Path) -> None:
    (project_dir / "environments" / "bad.yaml").write_text(
        "cluster:\n  settings:\n    plugins.ml_commons.native_memory_treshold: 90\n"
        "models:\n  clip:\n    dimension: -1\n    connector:\n      client_config:\n        read_timout: 5\n",
        encoding="utf-8")
    code, err = _validate(project_dir, "--env", "bad")
    assert code == 1
    lines = [x.removeprefix("error: ") for x in err.splitlines()]
    assert "environments/bad.yaml: cluster.settings.plugins.ml_commons.native_memory_treshold: unknown " \
           "cluster setting 'plugins.ml_commons.native_memory_treshold' (hint: did you mean " \
           "'plugins.ml_commons.native_memory_threshold'?)" in lines
    assert any(x.startswith("environments/bad.yaml: models.clip.dimension: Input should be greater than or equal "
                            "to 1") for x in lines)
    assert any(x.startswith("environments/bad.yaml: models.clip.connector.client_config: unknown key "
                            "'read_timout'") for x in lines)
    assert not any("models/clip.yaml" in x for x in lines)
    code, err = _validate(project_dir)  # without the overlay the project is fine
    assert code == 0, err


def test_unknown_key_in_a_serve_block(project_dir: Path) -> None:
    edit(project_dir / "models/ocr.yaml", "kind: ocr", "kind: ocr\n  min_confidnce: 0.4")
    code, err = _validate(project_dir)
    assert code == 1
    assert err == ("error: models/ocr.yaml: serve: unknown key 'min_confidnce' (hint: did you mean "
                   "'min_confidence'?)\n")

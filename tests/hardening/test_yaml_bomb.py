"""A YAML alias bomb ("billion laughs") is refused at once with a ConfigError naming the file (issue 17)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clihelp import oskit

# 9 levels of 9-fold aliases: under 1 KB of text that stands for 9^9 (387 million) strings
BOMB = "description: x\n" + "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]\n"
    for i in range(1, 9))


def test_alias_bomb_in_a_project_file_is_a_config_error(project_dir: Path) -> None:
    from kit.config.loader import load_project
    from kit.errors import ConfigError

    assert len(BOMB) < 1024
    (project_dir / "models" / "bomb.yaml").write_text(BOMB, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_project(project_dir)
    assert time.perf_counter() - started < 10  # a guard against the old minutes-long spin, not a benchmark
    assert ("models/bomb.yaml", "", "YAML aliases expand to more than 100000 values (an alias bomb?)",
            "write the values out, or use fewer nested aliases") in info.value.problems


def test_validate_reports_the_bomb_file(project_dir: Path) -> None:
    (project_dir / "cluster.yaml").write_text(BOMB, encoding="utf-8")
    res = oskit("validate", "--project", str(project_dir), "--no-spec")
    assert res.exit_code == 1
    assert "error: cluster.yaml: YAML aliases expand to more than 100000 values" in res.stderr


def test_modest_aliases_still_load() -> None:
    from kit.config.loader import safe_load_bounded

    assert safe_load_bounded("a: &x [1, 2]\nb: *x\nc: {<<: {k: 1}}\n") == {"a": [1, 2], "b": [1, 2], "c": {"k": 1}}


def test_serve_config_and_eval_files_are_bounded_too(tmp_path: Path) -> None:
    from kit.errors import ConfigError, EvalError
    from kit.job.evaluate import load_queries
    from kit.serve.config import load_serve_config

    spec = tmp_path / "clip.yaml"
    spec.write_text(BOMB + "serve: {kind: ocr}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_serve_config(spec)
    queries = tmp_path / "queries.yaml"
    queries.write_text(BOMB, encoding="utf-8")
    with pytest.raises(EvalError, match="alias bomb"):
        load_queries(queries)

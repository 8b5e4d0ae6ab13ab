"""kit.realnode without a network or a JVM: the cache location, a rebuilt module's folder, the CLI."""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.errors import RealNodeError
from kit.realnode import recipe

# the module, not the function of the same name that kit.realnode exports
assemble = importlib.import_module("kit.realnode.assemble")


def test_cache_root_follows_the_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OSKIT_REAL_CACHE", str(tmp_path / "c"))
    assert assemble.cache_root() == tmp_path / "c"
    assert assemble.home_dir("2.19.6") == tmp_path / "c" / "2.19.6" / f"home-{assemble._RECIPE_ID}"


def _jar(path: Path, *classes: str) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for c in classes:
            z.writestr(c.replace(".", "/") + ".class", b"\xca\xfe")


def test_a_module_gets_its_jars_minus_cores_and_a_descriptor_naming_the_class_in_its_jar(tmp_path: Path) -> None:
    home, jars = tmp_path / "home", tmp_path / "jars"
    (home / "lib").mkdir(parents=True)
    jars.mkdir()
    (home / "lib" / "jackson-core-2.18.8.jar").write_bytes(b"")
    _jar(jars / "lang-painless-2.19.6.jar", "org.opensearch.painless.PainlessPlugin")
    _jar(jars / "antlr4-runtime-4.13.1.jar")
    _jar(jars / "jackson-core-2.18.8.jar")  # core has it: jar hell if copied
    module = next(m for m in recipe.MODULES if m.name == "lang-painless")
    assemble._build_module(home, module, jars, "2.19.6")
    dest = home / "modules" / "lang-painless"
    assert sorted(p.name for p in dest.iterdir()) == ["antlr4-runtime-4.13.1.jar", "lang-painless-2.19.6.jar",
                                                      "plugin-descriptor.properties", "plugin-security.policy"]
    props = dict(line.split("=", 1) for line in (dest / "plugin-descriptor.properties").read_text().splitlines())
    assert props["classname"] == "org.opensearch.painless.PainlessPlugin"  # 2.19's name, not 3.x's
    assert (props["version"], props["opensearch.version"], props["java.version"]) == ("2.19.6", "2.19.6", "11")
    assert props["extended.plugins"] == ""
    assert 'RuntimePermission "createClassLoader"' in (dest / "plugin-security.policy").read_text()


def test_a_module_jar_without_a_known_plugin_class_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "home" / "lib").mkdir(parents=True)
    (tmp_path / "jars").mkdir()
    _jar(tmp_path / "jars" / "ingest-common-2.19.6.jar", "org.example.Other")
    module = next(m for m in recipe.MODULES if m.name == "ingest-common")
    with pytest.raises(RealNodeError, match="none of .* is in ingest-common-2.19.6.jar"):
        assemble._build_module(tmp_path / "home", module, tmp_path / "jars", "2.19.6")


def test_each_line_names_its_jdk() -> None:
    assert recipe.line("2.19.6").jdk.endswith("java-17-openjdk-amd64")
    assert recipe.line("3.6.0").jdk.endswith("temurin-25-jdk-amd64") and recipe.line("3.6.0").java_level == "21"


def test_cli_help_names_every_command() -> None:
    from kit.realnode.__main__ import main

    out = CliRunner().invoke(main, ["--help"]).output
    for command in ("fetch", "assemble", "start", "stop", "status"):
        assert command in out

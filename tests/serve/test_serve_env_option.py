"""``oskit serve --env`` reads OSKIT_ENV like plan/apply/diff do: one exported variable drives them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from kit.cli import cli


@pytest.mark.parametrize("args,environ,expected", [
    ([], {"OSKIT_ENV": "real"}, "real"),
    (["--env", "dev"], {"OSKIT_ENV": "real"}, "dev"),  # the flag wins
    ([], {}, None),
])
def test_serve_env_comes_from_the_flag_or_oskit_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     args: list[str], environ: dict[str, str], expected: Any) -> None:
    import kit.serve.config

    seen: list[Any] = []

    def fake_load(models: Path, *, device: str = "auto", env: str | None = None) -> Any:
        seen.append(env)
        raise click.exceptions.Exit(0)  # stop before any server starts

    monkeypatch.delenv("OSKIT_ENV", raising=False)
    monkeypatch.setattr(kit.serve.config, "load_serve_config", fake_load)
    result = CliRunner().invoke(cli, ["serve", "--models", str(tmp_path), *args], env=environ)
    assert result.exit_code == 0, result.output
    assert seen == [expected]

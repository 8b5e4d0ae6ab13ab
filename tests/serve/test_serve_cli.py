"""``oskit serve`` and ``oskit models`` at the CLI boundary (no server is started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.cli import main


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the real entry point (``kit.cli.main``: the one KitError → exit code translation)."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = invoke(["models", "--help"], capsys)
    assert code == 0 and "package" in out and "train-clip" in out
    code, out, _ = invoke(["serve", "--help"], capsys)
    assert code == 0 and "--models" in out and "--device" in out and "--workers" in out and "Example" in out


def test_serve_config_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "clip.yaml").write_text("serve:\n  kind: clip\n  open_clip: {model: ViT-B-32}\n  colour: red\n")
    code, _, err = invoke(["serve", "--models", str(tmp_path)], capsys)
    assert code == 1
    assert "clip.yaml: serve.colour: Extra inputs are not permitted" in err


def test_serve_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert invoke(["serve", "--models", str(tmp_path / "missing")], capsys)[0] == 2
    assert invoke(["serve", "--device", "tpu"], capsys)[0] == 2

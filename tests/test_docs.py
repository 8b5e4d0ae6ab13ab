"""Docs that go stale fail the build: every command is in the README, the README starts with the two
set-up commands, .ci/run runs the README's test command, and every linked doc exists."""

from __future__ import annotations

import re
from pathlib import Path

import click

from kit.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _all_command_paths() -> list[str]:
    ctx = click.Context(cli)
    paths = []
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            paths.extend(f"{name} {sub}" for sub in cmd.list_commands(ctx))
        else:
            paths.append(name)
    return paths


def test_every_command_is_in_the_readme() -> None:
    missing = [p for p in _all_command_paths() if f"oskit {p}" not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make demo", "make test"]


def test_ci_runs_the_readme_test_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test( |$)", ci, re.M)  # the whole suite, then the real-cluster suite
    assert re.search(r"^make test-real( |$)", ci, re.M) and "make test-real" in README


def test_linked_docs_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" in target:
            continue
        assert (ROOT / target).exists(), f"README links to missing {target}"


# The node's and the real node's inner maps are kept by their own sections/owners.
_MAPPED = ("cli", "cluster", "config", "job", "lifecycle", "models", "node", "serve", "spec")


def test_architecture_names_every_module_of_the_kit() -> None:
    arch = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    unnamed = [p.relative_to(ROOT).as_posix() for pkg in _MAPPED for p in sorted((ROOT / "kit" / pkg).rglob("*.py"))
               if p.name != "__init__.py" and not re.search(rf"(?<![\w.]){re.escape(p.name)}", arch)]
    assert not unnamed, f"docs/ARCHITECTURE.md's layout does not name: {unnamed}"

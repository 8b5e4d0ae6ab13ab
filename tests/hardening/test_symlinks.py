"""Symlink loops and dangling symlinks are counted and put in the report, never skipped silently (issue 17)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clihelp import oskit
from tests.hardening.conftest import png


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    png(root / "a.png")
    png(root / "sub" / "b.png", colour="blue")
    os.symlink("..", root / "sub" / "up")  # a loop: the folder above
    os.symlink("../nowhere.png", root / "gone.png")  # dangling
    os.symlink("self", root / "self")  # a loop the OS gives up on (ELOOP)
    os.symlink("a.png", root / "alias.png")  # a good link to a file: indexed (same bytes → duplicate)
    other = tmp_path / "elsewhere"
    png(other / "c.png", colour="green")
    os.symlink(other, root / "linked")  # a good link to a folder: followed
    return root


def test_discover_reports_dangling_links_and_loops(tmp_path: Path) -> None:
    from kit.job.ingest import discover

    root = _tree(tmp_path)
    found = discover([root])
    assert [p.relative_to(root).as_posix() for p in found.files] == ["a.png", "alias.png", "linked/c.png", "sub/b.png"]
    assert sorted((Path(f.file).relative_to(root).as_posix(), f.reason, f.stage) for f in found.skipped) == [
        ("gone.png", "dangling symlink (its target ../nowhere.png does not exist)", "walk"),
        ("self", "symlink loop (too many levels of symbolic links)", "walk"),
        ("sub/up", f"symlink loop (it points to {root.resolve()}, a folder above it)", "walk"),
    ]


def test_a_dangling_link_named_on_the_command_line_is_reported_not_missing(tmp_path: Path) -> None:
    from kit.job.ingest import discover

    root = _tree(tmp_path)
    found = discover([root / "gone.png", root / "a.png"])
    assert found.files == [root / "a.png"] and [f.file for f in found.skipped] == [str(root / "gone.png")]


def test_ingest_counts_them_and_writes_them_to_the_report(plain_index: Any, tmp_path: Path) -> None:
    _, url = plain_index
    root = _tree(tmp_path)
    report = tmp_path / "report.jsonl"
    res = oskit("ingest", str(root), "--url", url, "--json", "--no-progress", "--report", str(report),
                env={"OSKIT_MODEL_SERVER_URL": "http://127.0.0.1:9"})
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["indexed"], out["duplicates"], out["failed"]) == (3, 1, 0)
    assert (out["dangling_symlinks"], out["symlink_loops"]) == (1, 2)
    assert "3 symlinks skipped (1 dangling, 2 loops; listed in " in res.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(Path(x["file"]).name for x in lines) == ["gone.png", "self", "up"]
    assert {x["stage"] for x in lines} == {"walk"}


def test_a_glob_naming_files_found_already_is_no_error(tmp_path: Path) -> None:
    from kit.job.ingest import discover

    root = _tree(tmp_path)
    assert discover([root, str(root / "*.png")]).files == discover([root]).files

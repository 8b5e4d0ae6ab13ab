"""`oskit eval` refuses to print all zeros: an empty index or relevant ids that match no document fail
and say why (issue 17)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from clihelp import oskit
from tests.hardening.conftest import png


def _queries(tmp_path: Path, relevant: list[str]) -> Path:
    path = tmp_path / "queries.yaml"
    path.write_text("queries:\n  - {id: q1, type: text, text: red square, relevant: [" + ", ".join(relevant) + "]}\n",
                    encoding="utf-8")
    return path


def test_eval_on_an_empty_index_fails_and_says_why(plain_index: Any, tmp_path: Path) -> None:
    _, url = plain_index
    res = oskit("eval", str(_queries(tmp_path, ["a"])), "--url", url, "--mode", "tags")
    assert res.exit_code == 1
    assert res.stderr == ("error: index 'images' is empty: every metric would be 0\n"
                          "hint: ingest the evaluation images first (oskit eval QUERIES --ingest, or oskit ingest)\n")


def test_relevant_ids_that_match_no_document_fail_and_are_named(plain_index: Any, tmp_path: Path) -> None:
    from kit.errors import EvalError
    from kit.job.evaluate import check_ground_truth, load_queries
    from kit.job.ingest import ingest

    client, url = plain_index
    png(tmp_path / "in" / "red.png")
    png(tmp_path / "in" / "blue.jpg", colour="blue")
    result = ingest(client, [tmp_path / "in"], sleep=lambda s: None)
    assert result.indexed == 2
    sha = hashlib.sha256((tmp_path / "in" / "red.png").read_bytes()).hexdigest()
    check_ground_truth(client, load_queries(_queries(tmp_path, [sha, "red.png", "blue"])), "images")  # id, name, stem
    with pytest.raises(EvalError) as info:
        check_ground_truth(client, load_queries(_queries(tmp_path, ["red", "green", "eval-1-00003"])), "images")
    assert str(info.value) == (f"2 relevant entries in {tmp_path / 'queries.yaml'} match no document of index "
                               "'images' (q1: green, q1: eval-1-00003)")
    res = oskit("eval", str(tmp_path / "queries.yaml"), "--url", url, "--mode", "tags")
    assert res.exit_code == 1 and "match no document of index 'images' (q1: green, q1: eval-1-00003)" in res.stderr

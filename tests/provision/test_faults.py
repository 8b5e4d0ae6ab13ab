"""Resumability: drop the connection after each write of an apply (the server did the work, the kit lost
the answer), then run apply again: it must converge with no duplicate groups, connectors or models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import kit.cluster as cluster
from provision_helpers import Faults, faulty_client
from kit.config.loader import load_project
from kit.errors import KitError, Unreachable
from kit.node.server import NodeServer
from provision_helpers import owned_counts

# Writes of a clean apply of the test project (checked by the first test, so the list cannot go stale).
WRITES = [
    ("PUT", "/_cluster/settings"),
    ("POST", "/_plugins/_ml/model_groups/_register"),
    ("POST", "/_plugins/_ml/connectors/_create"),
    ("POST", "/_plugins/_ml/connectors/_create"),
    ("POST", "/_plugins/_ml/connectors/_create"),
    ("POST", "/_plugins/_ml/connectors/_create"),
    ("POST", "/_plugins/_ml/connectors/_create"),
    ("POST", "/_plugins/_ml/models/_register"),
    ("POST", "/_plugins/_ml/models/{id}/_deploy"),
    ("POST", "/_plugins/_ml/models/_register"),
    ("POST", "/_plugins/_ml/models/{id}/_deploy"),
    ("POST", "/_plugins/_ml/models/_register"),
    ("POST", "/_plugins/_ml/models/{id}/_deploy"),
    ("POST", "/_plugins/_ml/models/_register"),
    ("POST", "/_plugins/_ml/models/{id}/_deploy"),
    ("POST", "/_plugins/_ml/models/_register"),
    ("POST", "/_plugins/_ml/models/{id}/_deploy"),
    ("PUT", "/_ingest/pipeline/images-ingest"),
    ("PUT", "/_search/pipeline/images-search"),
    ("PUT", "/images-v1"),  # version 1 behind the alias images
    ("PUT", "/images-v1/_mapping"),  # the embedding fingerprints (_meta.oskit_embeddings)
]


def _shape(method: str, path: str) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) > 4 and parts[3] == "models" and parts[4] not in ("_register", "_search", "_register_meta"):
        parts[4] = "{id}"
    return method, "/".join(parts)


def test_the_write_list_matches_a_clean_apply_and_every_request_fits_the_spec(
        tmp_path: Path, serve_env: str, project_dir: Path, spec_dir: Path) -> None:
    import json

    from kit.spec import load_spec

    faults = Faults()
    with NodeServer(tmp_path / "node") as node:
        with faulty_client(node.url, faults) as client:
            cluster.apply(cluster.plan(load_project(project_dir), client), client)
            cluster.status(load_project(project_dir), client)
    writes = [_shape(m, p) for m, p in faults.log if faults.writes_only(m, p)]
    assert writes == WRITES
    spec = load_spec(spec_dir)
    problems = []
    for method, path, params, body in faults.requests:
        decoded = json.loads(body) if body else None
        problems += spec.validate_request(method, path, decoded, params)
    assert problems == []
    assert len(faults.requests) > 40


@pytest.mark.parametrize("step", range(len(WRITES)), ids=[f"{i}-{m}-{p}" for i, (m, p) in enumerate(WRITES)])
def test_rerun_after_a_lost_response_converges_without_duplicates(tmp_path: Path, serve_env: str, project_dir: Path,
                                                                  step: int) -> None:
    faults = Faults()
    faults.drop_after = lambda i, m, p: i == step
    with NodeServer(tmp_path / "node") as node, faulty_client(node.url, faults) as client:
        if WRITES[step][1].endswith("/_mapping"):  # the fingerprint record is best effort: a message, not an error
            result = cluster.apply(cluster.plan(load_project(project_dir), client), client)
            assert any("embedding fingerprints not recorded" in m for m in result.messages)
        else:
            with pytest.raises(Unreachable, match="cannot connect"):
                cluster.apply(cluster.plan(load_project(project_dir), client), client)
        faults.drop_after = lambda i, m, p: False
        second = cluster.plan(load_project(project_dir), client)
        # The last two writes (the index, its fingerprint record) leave nothing the plan shows: a missing
        # record is written by the next ingest.
        assert not second.in_sync or step >= len(WRITES) - 2
        cluster.apply(second, client)
        assert cluster.plan(load_project(project_dir), client).in_sync
        assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}


def test_rerun_after_a_dropped_request_converges(tmp_path: Path, serve_env: str, project_dir: Path) -> None:
    faults = Faults()
    faults.drop_before = lambda i, m, p: "_register" in p and "model_groups" not in p
    with NodeServer(tmp_path / "node") as node, faulty_client(node.url, faults) as client:
        with pytest.raises(KitError):
            cluster.apply(cluster.plan(load_project(project_dir), client), client)
        faults.drop_before = lambda i, m, p: False
        cluster.apply(cluster.plan(load_project(project_dir), client), client)
        assert cluster.plan(load_project(project_dir), client).in_sync
        assert owned_counts(client) == {"groups": 1, "connectors": 5, "models": 5}

"""Against a real OpenSearch cluster: run with OPENSEARCH_URL (and OSKIT_MODEL_SERVER_URL, a model server the
cluster can reach) set, e.g.::

    OPENSEARCH_URL=http://localhost:9200 OSKIT_MODEL_SERVER_URL=http://host.docker.internal:8765 \\
        pytest tests/integration -m integration

The project is applied under its own name (``oskit-it``), checked for zero drift, and destroyed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Read at import: the autouse fixture clears OPENSEARCH_*/OSKIT_* inside tests (hermetic by default).
URL = os.environ.get("OPENSEARCH_URL")
USER = os.environ.get("OPENSEARCH_USER")
PASSWORD = os.environ.get("OPENSEARCH_PASSWORD")
SERVE = os.environ.get("OSKIT_MODEL_SERVER_URL")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not URL, reason="set OPENSEARCH_URL to run the real-cluster tests")]


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "project"
    for part in ("models", "pipelines", "mappings"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("weights", "*.pt"))
    text = (ROOT / "cluster.yaml").read_text().replace("name: oskit", "name: oskit-it")
    (dest / "cluster.yaml").write_text(text)
    # Own names throughout, so a cluster that also runs the default project sees no clash.
    for f in sorted(dest.glob("*/*.yaml")):
        body = f.read_text().replace("group: oskit-models", "group: oskit-it-models")
        body = body.replace("images-ingest", "it-images-ingest").replace("images-search", "it-images-search")
        f.unlink()
        (f.parent / f.name.replace("images", "it-images")).write_text(body)
    if SERVE:
        monkeypatch.setenv("OSKIT_MODEL_SERVER_URL", SERVE)
    return dest


def test_apply_diff_destroy_on_a_real_cluster(project: Path) -> None:
    import kit.cluster as cluster
    from kit.cluster.client import connect
    from kit.config.loader import load_project

    client = connect(URL or "", user=USER, password=PASSWORD, verify=False)
    loaded = load_project(project)
    try:
        cluster.apply(cluster.plan(loaded, client), client, allow_destroy=False)
        again = cluster.diff(loaded, client)
        assert again.in_sync, [(c.action, c.kind, c.name, c.reason) for c in again.changes]
    finally:
        cluster.destroy(loaded, client)
    assert cluster.status(loaded, client).resources

"""A short model-server outage does not fail an ingest; a long one is reported naming the model, its
endpoint and the fix (issue 17). The default project (remote text double) on a fresh node, with the
provisioning tests' fake model server stopped and started again on the same port."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.hardening.conftest import png


def _photos(tmp_path: Path, n: int = 4) -> Path:
    for i in range(n):
        png(tmp_path / "photos" / f"p{i}.png", (32 + i, 32))
    return tmp_path / "photos"


def test_a_short_outage_is_retried_until_the_model_server_is_back(applied: Any, tmp_path: Path) -> None:
    from kit.job.ingest import ingest

    client, serve, again = applied
    serve.stop()
    out: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: out.update(r=ingest(client, [_photos(tmp_path)], retry_for=60)))
    worker.start()
    time.sleep(2.0)  # the first attempts fail with "Connection refused" behind a 500 per document
    back = again()
    back.start()
    try:
        worker.join(60)
        assert not worker.is_alive()
    finally:
        back.stop()
    result = out["r"]
    assert (result.indexed, result.failed) == (4, 0), result.failures


def test_a_long_outage_is_reported_with_the_model_its_endpoint_and_the_fix(applied: Any, tmp_path: Path) -> None:
    from kit.job.ingest import ingest

    client, serve, _ = applied
    serve.stop()
    result = ingest(client, [_photos(tmp_path, 2)], retry_for=1.5)
    assert (result.indexed, result.failed) == (0, 2)
    reason = result.failures[0].reason
    assert "Error communicating with remote model" in reason and "still failing after" in reason
    assert result.hint is not None
    assert f"model 'clip' calls {serve.url}/clip/embed (connection refused)" in result.hint
    assert result.hint.endswith("start `oskit serve` or set OSKIT_MODEL_SERVER_URL (then `oskit apply`)")


def test_transient_item_errors() -> None:
    from kit.job.ingest import transient_item

    assert transient_item(503, "") and transient_item(429, "") and transient_item(504, "")
    assert transient_item(500, "status_exception: Error communicating with remote model: [Errno 111] Connection "
                               "refused")
    assert not transient_item(500, "illegal_argument_exception: bad image")
    assert not transient_item(400, "Connection refused")

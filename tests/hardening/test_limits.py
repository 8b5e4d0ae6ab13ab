"""One source of truth for the model server's limits: /health reports them, ingest reads them (issue 17)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clihelp import oskit
from tests.hardening.conftest import png


def _serve(config: Any) -> Any:
    from kit.job.demo import ServerThread
    from kit.serve.app import create_app

    return ServerThread(create_app(config), name="model server")


def test_health_reports_the_limits_and_fetch_limits_reads_them() -> None:
    from kit.limits import DEFAULT_MAX_BODY_BYTES, Limits, fetch_limits
    from kit.serve.config import ServeConfig

    assert ServeConfig().max_body_bytes == DEFAULT_MAX_BODY_BYTES
    with _serve(ServeConfig(max_body_bytes=100_000, max_image_pixels=5_000, warmup=False)) as server:
        limits = fetch_limits(server.url)
    assert limits == Limits(100_000, 5_000, source=f"the model server at {server.url}")
    assert limits.max_file_bytes == (100_000 - 4096) * 3 // 4
    gone = fetch_limits(server.url, timeout=1.0)
    assert (gone.max_body_bytes, gone.source) == (
        DEFAULT_MAX_BODY_BYTES, f"defaults (the model server at {server.url} did not answer)")


def test_ingest_reports_files_the_model_server_would_refuse(plain_index: Any, tmp_path: Path) -> None:
    from kit.job.ingest import ingest
    from kit.limits import Limits

    client, _ = plain_index
    png(tmp_path / "in" / "small.png", (40, 40))
    wide = png(tmp_path / "in" / "wide.png", (200, 100))
    noisy = tmp_path / "in" / "noisy.png"
    from PIL import Image

    Image.frombytes("RGB", (60, 60), os.urandom(60 * 60 * 3)).save(noisy, "PNG")  # ~10 KB, incompressible
    limits = Limits(max_body_bytes=4096 + 8000, max_image_pixels=10_000, source="the model server at http://ms")
    result = ingest(client, [tmp_path / "in"], limits=limits, report=tmp_path / "report.jsonl", sleep=lambda s: None)
    assert (result.indexed, result.failed) == (1, 2)
    reasons = {Path(f.file).name: f.reason for f in result.failures}
    assert reasons["wide.png"] == ("image is 200x100 = 20000 pixels, above the limit of 10000 (the model server's "
                                   "limit, from the model server at http://ms)")
    size = noisy.stat().st_size
    assert reasons["noisy.png"] == (f"file too large ({size} bytes > limit 6000; the model server takes request "
                                    "bodies up to 12096 bytes and base64 adds a third, from the model server at "
                                    "http://ms)")
    assert result.to_json()["limits"]["max_file_bytes"] == 6000


def test_max_bytes_only_lowers_the_server_limit(plain_index: Any, tmp_path: Path) -> None:
    from kit.job.ingest import ingest
    from kit.limits import Limits

    client, _ = plain_index
    png(tmp_path / "in" / "a.png", (40, 40))
    result = ingest(client, [tmp_path / "in"], limits=Limits(), max_bytes=10, sleep=lambda s: None)
    assert [f.reason for f in result.failures] == [
        f"file too large ({(tmp_path / 'in' / 'a.png').stat().st_size} bytes > limit 10; --max-bytes)"]
    result = ingest(client, [tmp_path / "in"], limits=Limits(max_body_bytes=1 << 30), max_bytes=1 << 40,
                    sleep=lambda s: None)
    assert result.indexed == 1 and result.to_json()["limits"]["max_file_bytes"] == ((1 << 30) - 4096) * 3 // 4


def test_ingest_cli_reads_the_limits_from_the_model_server(plain_index: Any, tmp_path: Path) -> None:
    from kit.serve.config import ServeConfig

    _, url = plain_index
    png(tmp_path / "in" / "wide.png", (200, 100))
    with _serve(ServeConfig(max_image_pixels=10_000, warmup=False)) as server:
        res = oskit("ingest", str(tmp_path / "in"), "--url", url, "--json", "--no-progress",
                    "--report", str(tmp_path / "r.jsonl"), env={"OSKIT_MODEL_SERVER_URL": server.url})
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["limits"]["max_image_pixels"] == 10_000
    assert out["failures"][0]["reason"].startswith("image is 200x100 = 20000 pixels, above the limit of 10000")

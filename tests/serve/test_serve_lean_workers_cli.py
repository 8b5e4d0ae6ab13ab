"""``oskit serve --workers N`` runs N SO_REUSEPORT workers through kit.serve.workers.run_workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kit.cli import main


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "clip.yaml"
    spec.write_text(json.dumps({"serve": {"kind": "clip", "open_clip": {"model": "ViT-B-32"}}}))
    return spec


def test_workers_go_through_run_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import kit.serve.workers as workers

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(workers, "run_workers", lambda *args, **kw: calls.append(args))
    with pytest.raises(SystemExit) as info:
        main(["serve", "--models", str(_spec(tmp_path)), "--port", "18999", "--workers", "3", "--no-warmup"])
    assert info.value.code in (0, None)
    (config, host, port, n), = calls
    assert (host, port, n) == ("127.0.0.1", 18999, 3)
    assert config.clip.model == "ViT-B-32" and config.warmup is False
    # run_workers (share_cores) gives each process its share of the cores, not the CLI
    assert config.decode_threads is None and config.torch_threads is None
    assert "3 worker(s)" in capsys.readouterr().err


def test_one_worker_runs_uvicorn_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from kit.serve.workers import UVICORN_OPTIONS

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    with pytest.raises(SystemExit) as info:
        main(["serve", "--models", str(_spec(tmp_path)), "--port", "18998"])
    assert info.value.code in (0, None)
    assert seen["port"] == 18998 and seen["access_log"] is False and seen["proxy_headers"] is False
    assert {k: seen[k] for k in UVICORN_OPTIONS} == UVICORN_OPTIONS
    assert set(seen["app"].hot) == {"/clip/embed", "/clip/embed-texts"}


def test_help_says_what_workers_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "SO_REUSEPORT" in out and "share of the cores" in out

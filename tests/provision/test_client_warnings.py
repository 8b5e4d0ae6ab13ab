"""A real cluster answers some requests with Warning headers (deprecations, "this request accesses system
indices"): the kit logs them (visible with -v) instead of letting opensearch-py print Python warnings."""

from __future__ import annotations

import logging
import warnings

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kit.cluster.client import connect
from kit.job.demo import ServerThread

WARNING = ('299 OpenSearch-2.19.6-97d3c13 "this request accesses system indices: [.plugins-ml-config], but in a '
           'future major version, direct access to system indices will be prevented by default"')


async def _mapping(request: Request) -> JSONResponse:
    return JSONResponse({}, headers={"Warning": WARNING})


def test_warning_headers_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    server = ServerThread(Starlette(routes=[Route("/_mapping", _mapping)]), name="warning server")
    url = server.start()
    try:
        with connect(url) as client, warnings.catch_warnings():
            warnings.simplefilter("error")  # any Python warning fails the test
            with caplog.at_level(logging.INFO, logger="kit"):
                assert client.request("GET", "/_mapping") == {}
    finally:
        server.stop()
    assert any("this request accesses system indices" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)

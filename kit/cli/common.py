"""Options shared by several commands, defined once (``--project``, connection, ``--json``, ``--verbose``),
and the one place where :class:`kit.errors.KitError` becomes a message and an exit code."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from kit.errors import KitError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "connection_options",
    "json_option",
    "project_option",
    "verbose_option",
    "ConnectionSettings",
    "fail",
]


def project_option(f: F) -> F:
    return click.option(
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=".",
        show_default=True,
        envvar="OSKIT_PROJECT",
        help="Project folder (models/, pipelines/, mappings/).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON to stdout.")(f)


def verbose_option(f: F) -> F:
    def _set(ctx: click.Context, param: click.Parameter, value: int) -> int:
        if value:
            level = logging.DEBUG if value > 1 else logging.INFO
            logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
        return value

    return click.option(
        "-v", "--verbose", count=True, expose_value=False, callback=_set, is_eager=True,
        help="Log requests (method, path, status, ms) to stderr; -vv for debug.",
    )(f)


class ConnectionSettings(dict):  # type: ignore[type-arg]
    """Keyword arguments for :func:`kit.cluster.client.connect`, gathered from options and environment."""


def connection_options(f: F) -> F:
    """``--url`` and friends. Secrets (passwords) come from the environment only."""

    @click.option("--url", envvar="OPENSEARCH_URL", default="http://127.0.0.1:9200", show_default=True,
                  help="Cluster URL (env OPENSEARCH_URL).")
    @click.option("--user", envvar="OPENSEARCH_USER", default=None,
                  help="Basic-auth user (env OPENSEARCH_USER); the password is read from OPENSEARCH_PASSWORD.")
    @click.option("--ca-certs", envvar="OPENSEARCH_CA_CERTS", default=None, type=click.Path(dir_okay=False),
                  help="CA bundle for TLS verification.")
    @click.option("--insecure", is_flag=True, default=False, help="Do not verify TLS certificates.")
    @click.option("--aws-region", envvar="OSKIT_AWS_REGION", default=None,
                  help="Sign requests with SigV4 (Amazon OpenSearch Service) for this region.")
    @click.option("--aws-service", type=click.Choice(["es", "aoss"]), default="es", show_default=True,
                  help="SigV4 service name: es (managed domains) or aoss (Serverless).")
    @click.option("--timeout", type=float, default=30.0, show_default=True, help="Request timeout, seconds.")
    @functools.wraps(f)
    def wrapper(*args: Any, url: str, user: str | None, ca_certs: str | None, insecure: bool,
                aws_region: str | None, aws_service: str, timeout: float, **kwargs: Any) -> Any:
        kwargs["conn"] = ConnectionSettings(
            url=url,
            user=user,
            password=os.environ.get("OPENSEARCH_PASSWORD") if user else None,
            ca_certs=ca_certs,
            verify=not insecure,
            aws_region=aws_region,
            aws_service=aws_service,
            timeout=timeout,
        )
        return f(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def fail(err: KitError) -> None:
    """Print a KitError to stderr (what, where, hint) and exit with its code."""
    click.echo(click.style("error: ", fg="red", bold=True) + str(err), err=True)
    if err.hint:
        click.echo(click.style("hint: ", fg="yellow") + err.hint, err=True)
    sys.exit(err.exit_code)

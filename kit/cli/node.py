"""``oskit node …``: run the embedded OpenSearch-compatible node (and its conformance run)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import click

from kit.errors import NodeError


def _default_data_dir() -> Path:
    base = os.environ.get("OSKIT_DATA_DIR")
    if base:
        return Path(base) / "node"
    return Path(click.get_app_dir("oskit")) / "node"


class _NodeGroup(click.Group):
    """Adds ``conformance`` from :mod:`kit.node.conformance` when that module provides it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        if self._conformance() is not None:
            names.add("conformance")
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "conformance":
            return self._conformance()
        return super().get_command(ctx, cmd_name)

    @staticmethod
    def _conformance() -> click.Command | None:
        try:
            mod = importlib.import_module("kit.node.conformance")
        except ModuleNotFoundError as exc:
            if exc.name == "kit.node.conformance":
                return None
            raise
        cmd = getattr(mod, "conformance_command", None)
        return cmd if isinstance(cmd, click.Command) else None


@click.group(cls=_NodeGroup)
def node() -> None:
    """The embedded OpenSearch-compatible node (no JVM, no Docker)."""


@node.command("start")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data folder (default: $OSKIT_DATA_DIR/node or the user data dir).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=9200, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--user", default=None, help="Require basic auth with this user; password from OSKIT_NODE_PASSWORD.")
@click.option("--version", "os_version", default="3.3.0", show_default=True,
              help="OpenSearch version to report (version-dependent rules follow it).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def start(data_dir: Path | None, host: str, port: int, user: str | None, os_version: str, log_level: str) -> None:
    """Run the node in the foreground; prints its URL when ready; Ctrl-C / SIGTERM stops it cleanly.

    \b
    Example:
      oskit node start --data ./.oskit-node --port 9200
      curl -s localhost:9200/ | jq .version.number
    """
    import logging
    import sys

    from kit.node.server import run_foreground

    logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    auth = None
    if user:
        password = os.environ.get("OSKIT_NODE_PASSWORD")
        if not password:
            raise NodeError("--user needs a password", hint="set OSKIT_NODE_PASSWORD in the environment")
        auth = (user, password)
    data = data_dir or _default_data_dir()
    run_foreground(data, host, port, version=os_version, auth=auth,
                   on_ready=lambda url: click.echo(url, nl=True) or sys.stdout.flush())

"""``python -m kit.realnode fetch|assemble|start|stop|status``: a real OpenSearch node from the shell.

``start`` leaves the node running in the background and records it under <cache>/running/<port>.json;
``stop`` stops one (``--port``) or all of them; ``status`` lists them.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import click

from kit.errors import KitError
from kit.realnode import recipe
from kit.realnode.assemble import assemble, cache_root, fetch
from kit.realnode.node import RealNode, stop_state


def _running() -> Path:
    return cache_root() / "running"


@click.group()
def main() -> None:
    """A real OpenSearch node (job-scheduler, ML Commons, k-NN, neural-search) from Maven Central."""


@main.command("fetch")
@click.option("--version", "version", default=recipe.DEFAULT_VERSION, show_default=True)
def fetch_cmd(version: str) -> None:
    """Download the server archive, plugin zips and module jars into the cache."""
    click.echo(fetch(version))


@main.command("assemble")
@click.option("--version", "version", default=recipe.DEFAULT_VERSION, show_default=True)
def assemble_cmd(version: str) -> None:
    """Fetch, then build the runnable home (modules, plugins installed); prints its path."""
    click.echo(assemble(version))


@main.command("start")
@click.option("--version", "version", default=recipe.DEFAULT_VERSION, show_default=True)
@click.option("--port", type=int, default=None, help="HTTP port (default: a free one)")
@click.option("--heap", default=None, help="JVM heap, e.g. 1g (default OSKIT_REAL_HEAP or 1g)")
def start_cmd(version: str, port: int | None, heap: str | None) -> None:
    """Start a node in the background; prints its URL."""
    node = RealNode(version, port=port, heap=heap, keep=True).start()
    assert node.run_dir is not None
    _running().mkdir(parents=True, exist_ok=True)
    (_running() / f"{node.port}.json").write_text((node.run_dir / "state.json").read_text())
    click.echo(node.url)
    click.echo(f"started in {node.started_s:.1f}s; run dir {node.run_dir}", err=True)


@main.command("stop")
@click.option("--port", type=int, default=None, help="the node to stop (default: all started here)")
def stop_cmd(port: int | None) -> None:
    """Stop nodes started with `start` and remove their run dirs."""
    files = [_running() / f"{port}.json"] if port else sorted(_running().glob("*.json"))
    for f in files:
        if not f.exists():
            raise KitError(f"no real node recorded on port {port}", hint="python -m kit.realnode status")
        stop_state(f)
        f.unlink()
        click.echo(f"stopped the node on port {f.stem}")


@main.command("status")
def status_cmd() -> None:
    """List the nodes started with `start` and whether they answer."""
    for f in sorted(_running().glob("*.json")):
        state = json.loads(f.read_text())
        try:
            with urllib.request.urlopen(state["url"], timeout=3) as resp:
                number = json.loads(resp.read())["version"]["number"]
            click.echo(f"{state['url']}  up  OpenSearch {number}  {state['run_dir']}")
        except OSError as exc:
            click.echo(f"{state['url']}  down ({exc})  {state['run_dir']}")


def run() -> None:
    try:
        main(standalone_mode=False)
    except KitError as exc:
        click.echo(f"error: {exc}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    run()

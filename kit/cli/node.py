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
@click.option("--max-content-length", default="100mb", show_default=True,
              help="Largest request body (http.max_content_length: bytes, or kb/mb/gb); bigger ones get 413.")
def start(data_dir: Path | None, host: str, port: int, user: str | None, os_version: str, log_level: str,
          max_content_length: str) -> None:
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
    from kit.node.app import parse_byte_size

    try:
        limit = parse_byte_size(max_content_length)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-content-length") from None
    data = data_dir or _default_data_dir()
    run_foreground(data, host, port, version=os_version, auth=auth, max_content_length=limit,
                   on_ready=lambda url: click.echo(url, nl=True) or sys.stdout.flush())


@node.command("compare")
@click.option("--real", "real_url", required=True, help="The reference cluster (a real OpenSearch), e.g. http://127.0.0.1:9201.")
@click.option("--node", "node_url", default=None,
              help="The node to check (default: a fresh embedded node reporting the real one's version).")
@click.option("--corpus/--no-corpus", default=True, show_default=True,
              help="Run the corpus of client-library requests (kit/oracle/corpus).")
@click.option("--only", multiple=True, help="Only corpus files (or stories) whose name contains this text.")
@click.option("--recording", "recordings", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Replay a recording of the kit's requests (OSKIT_RECORD_REQUESTS=FILE) on both sides.")
@click.option("--rewrite", multiple=True, metavar="OLD=NEW",
              help="Replace text in replayed requests (e.g. the model server URL at recording time).")
@click.option("--allow-faiss", is_flag=True, help="Replay faiss k-NN fields as recorded (the real cluster has FAISS).")
@click.option("--stories", is_flag=True, help="Also run the spec's test stories on both sides and compare each request.")
@click.option("--model-server", default=None, envvar="OSKIT_MODEL_SERVER_URL",
              help="Model server both clusters can reach (ML and neural corpus files need it).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON report here.")
def compare_cmd(real_url: str, node_url: str | None, corpus: bool, only: tuple[str, ...], recordings: tuple[Path, ...],
                rewrite: tuple[str, ...], allow_faiss: bool, stories: bool, model_server: str | None, as_json: bool,
                out: Path | None) -> None:
    """Send the same requests to a real OpenSearch and to the node, and list every difference.

    Ids, timings, uuids, versions and names are normalised first; differences listed in
    kit/oracle/known_differences.yaml (the documented ones, see COMPATIBILITY.md) are counted apart.
    Exit code 0 when no open difference is left, 3 otherwise.

    \b
    Example:
      oskit node compare --real http://127.0.0.1:9201 --model-server http://127.0.0.1:8765
      OSKIT_RECORD_REQUESTS=/tmp/kit.jsonl pytest tests/job/test_job_e2e.py -q
      oskit node compare --real http://127.0.0.1:9201 --no-corpus --recording /tmp/kit.jsonl
    """
    import json
    import sys

    from kit.oracle.cli import run_compare

    table = {}
    for item in rewrite:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise click.BadParameter(f"{item!r} is not OLD=NEW", param_hint="--rewrite")
        table[old] = new
    report, story_results = run_compare(
        real_url, node_url, corpus=corpus, only=only, recordings=recordings, rewrite=table, stories=stories,
        allow_faiss=allow_faiss,
        model_server=model_server,
        progress=None if as_json else lambda o: click.echo(f"{o.state:10} {o.source} {o.sequence} #{o.index} "
                                                           f"{o.request}", err=True))
    data = report.to_dict()
    if story_results:
        data["stories"] = {k: {"real": a, "node": b} for k, a, b in ((k, *v) for k, v in story_results.items())}
    if out is not None:
        out.write_text(json.dumps(data, indent=2, default=str))
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        for line in report.diff_lines():
            click.echo(line)
        for seq, why in report.skipped:
            click.echo(f"skipped {seq}: {why}")
        click.echo(report.summary())
    sys.exit(3 if report.count("different") else 0)

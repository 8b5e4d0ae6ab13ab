"""``oskit migrate | test | dashboards``: thin commands over :mod:`kit.lifecycle`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kit.cli.common import connection_options, json_option, project_option, verbose_option

__all__ = ["dashboards", "migrate", "test"]


def _env_option(f: Any) -> Any:
    return click.option("--env", "env", envvar="OSKIT_ENV", default=None, metavar="NAME",
                        help="Overlay environments/NAME.yaml (env OSKIT_ENV).")(f)


def _load(project_dir: Path, env: str | None) -> Any:
    from kit.config.loader import load_project

    return load_project(project_dir, env=env)


def _connect(conn: dict[str, Any]) -> Any:
    from kit.cluster.client import connect

    client = connect(**conn)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(client.close)
    return client


def _progress(msg: str) -> None:
    click.echo(f"… {msg}", err=True)


@click.command()
@project_option
@_env_option
@connection_options
@click.option("--index", default=None, help="The project index to migrate (default: the one with a reindex change).")
@click.option("--queries", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Evaluation set for the gate (default: data/eval/queries.yaml of the project).")
@click.option("--fail-under", "fail_under", multiple=True, metavar="METRIC=VALUE",
              help="Gate: the new version must reach this (as oskit eval, e.g. map=0.5); repeatable.")
@click.option("-k", "ks", default="10,30", show_default=True, help="Cut-offs evaluated by the gate.")
@click.option("--mode", "modes", multiple=True, help="Search modes the gate evaluates (default: all).")
@click.option("--force", is_flag=True, help="Swap even when the new version is worse than the old (or nothing changed).")
@click.option("--no-eval", is_flag=True, help="Swap without the evaluation gate.")
@click.option("--thumbnail-fallback", is_flag=True,
              help="Re-embed a document from its stored thumbnail when the file at source_uri is gone.")
@click.option("--rollback", is_flag=True, help="Point the alias back at the version it served before.")
@click.option("--batch", type=int, default=64, show_default=True, help="Documents per re-embedding request.")
@click.option("--workers", type=int, default=2, show_default=True, help="Re-embedding requests in flight.")
@json_option
@verbose_option
def migrate(project_dir: Path, env: str | None, conn: dict[str, Any], index: str | None, queries: Path | None,
            fail_under: tuple[str, ...], ks: str, modes: tuple[str, ...], force: bool, no_eval: bool,
            thumbnail_fallback: bool, rollback: bool, batch: int, workers: int, as_json: bool) -> None:
    """Carry out a reindex change without downtime: a new index version behind the alias.

    Registers new models next to the old, re-embeds every document from its source file, evaluates old
    and new, and swaps the alias atomically only when the new version passes the gate. Resumable: run it
    again after an interruption. The old version is kept for --rollback.

    \b
    Example:
      oskit migrate --queries data/eval/queries.yaml --fail-under map=0.5
      oskit migrate --rollback
    """
    from kit.job.evaluate import ks_from
    from kit.lifecycle import migrate as lm
    from kit.render import render_json

    project = _load(project_dir, env)
    client = _connect(conn)
    if rollback:
        res = lm.rollback(project, client, index=index, progress=_progress).to_dict()
        click.echo(render_json(res) if as_json else f"Rolled back: {res['alias']} → {res['to']} (was {res['from']}).")
        return
    result = lm.migrate(project, client, index=index, queries=queries, fail_under=fail_under, force=force,
                        no_eval=no_eval, thumbnail_fallback=thumbnail_fallback, batch=batch, workers=workers,
                        ks=ks_from(ks),
                        modes=list(modes) or None, progress=_progress).to_dict()
    if as_json:
        click.echo(render_json(result))
        return
    t = result["timings"]
    click.echo(f"Migrated {result['alias']}: {result['old']} → {result['new']} ({result['reembedded']} re-embedded, "
               f"{result['skipped']} already there, {result['from_thumbnail']} from thumbnails) in "
               f"{t.get('total', 0):.1f}s (models {t.get('models', 0):.1f}s, re-embed {t.get('reembed', 0):.1f}s, "
               f"eval {t.get('eval', 0):.1f}s, swap {t.get('swap', 0):.2f}s).")
    for line in result["gate"]:
        click.echo(f"gate: {line}")
    click.echo(f"{result['old']} is kept: oskit migrate --rollback returns to it.")


@click.command(name="test")
@project_option
@_env_option
@connection_options
@click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as JUnit XML (for CI).")
@json_option
@verbose_option
def test(project_dir: Path, env: str | None, conn: dict[str, Any], junit: Path | None, as_json: bool) -> None:
    """Contract tests of the project's pipelines against the cluster (read-only).

    Simulates sample documents (images with text, without text, corrupt) through every ingest pipeline
    and checks each output field against the mapping (type, vector dimension); runs a probe query in each
    mode through every search pipeline, with no model ids in the queries. Exit 1 on a broken contract.

    \b
    Example:
      oskit test --junit oskit-test.xml
    """
    from kit.lifecycle.contract import run_contract_tests
    from kit.render import render_json

    project = _load(project_dir, env)
    report = run_contract_tests(project, _connect(conn))
    if junit is not None:
        junit.write_text(report.to_junit(), encoding="utf-8")
    click.echo(render_json(report.to_dict()) if as_json else report.render())
    if not report.ok:
        sys.exit(1)


@click.group()
def dashboards() -> None:
    """OpenSearch Dashboards: saved objects for the project's indices."""


@dashboards.command(name="export")
@project_option
@_env_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the NDJSON here (default: stdout).")
def dashboards_export(project_dir: Path, env: str | None, out: Path | None) -> None:
    """Write saved objects (NDJSON for Dashboards' import API): index patterns and saved searches.

    Thumbnails show as images, vector fields are hidden. Offline: reads only the project.

    \b
    Example:
      oskit dashboards export --out oskit.ndjson
      curl -X POST "$DASHBOARDS/api/saved_objects/_import?overwrite=true" -H 'osd-xsrf: true' \\
           --form file=@oskit.ndjson
    """
    from kit.lifecycle.dashboards import export_ndjson

    text = export_ndjson(_load(project_dir, env))
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({text.count(chr(10))} saved objects)", err=True)

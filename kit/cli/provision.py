"""``oskit validate | plan | apply | diff | status | destroy``: thin commands over :mod:`kit.cluster`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kit.cli.common import connection_options, json_option, project_option, verbose_option

__all__ = ["apply", "destroy", "diff", "plan", "status", "validate"]

EXIT_DRIFT = 3  # not Terraform's 2: a mistyped flag exits 2 and must never read as drift


def env_option(f: Any) -> Any:
    return click.option("--env", "env", envvar="OSKIT_ENV", default=None, metavar="NAME",
                        help="Overlay environments/NAME.yaml (env OSKIT_ENV).")(f)


def _load(project_dir: Path, env: str | None) -> Any:
    from kit.config.loader import load_project

    return load_project(project_dir, env=env)


def _connect(conn: dict[str, Any]) -> Any:
    """A client that is closed when the command ends (``click`` context resource)."""
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
@env_option
@click.option("--spec", "spec_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="OSKIT_SPEC_DIR", help="OpenSearch API spec folder (opensearch-api-specification).")
@click.option("--no-spec", is_flag=True, help="Skip checking requests against the API spec.")
@json_option
@verbose_option
def validate(project_dir: Path, env: str | None, spec_dir: Path | None, no_spec: bool, as_json: bool) -> None:
    """Check the project offline: schema, cross-file references, and every request vs the API spec.

    \b
    Example:
      oskit validate --spec ../shared/opensearch-api-spec
    """
    from kit.cluster.requests import validate_project
    from kit.render import render_json, render_validate

    project = _load(project_dir, env)
    report = validate_project(project, spec_dir, use_spec=not no_spec).to_dict()
    click.echo(render_json(report) if as_json else render_validate(report))


@click.command()
@project_option
@env_option
@connection_options
@json_option
@click.option("--detailed-exitcode", is_flag=True, help="Exit 3 when there are changes (0 none, 1 error).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also save the plan (JSON, no secrets) for `oskit apply --plan FILE`.")
@verbose_option
def plan(project_dir: Path, env: str | None, conn: dict[str, Any], as_json: bool, detailed_exitcode: bool,
         out: Path | None) -> None:
    """Show what apply would change, in order. Reads the cluster, never writes.

    \b
    Example:
      oskit plan --url http://127.0.0.1:9200 --detailed-exitcode --out plan.json
    """
    import kit.cluster as cluster
    from kit.render import render_json, render_plan

    project = _load(project_dir, env)
    result = cluster.plan(project, _connect(conn)).to_dict()
    if out is not None:
        out.write_text(render_json(result) + "\n", encoding="utf-8")
    click.echo(render_json(result) if as_json else render_plan(result))
    if detailed_exitcode and not result["in_sync"]:
        sys.exit(EXIT_DRIFT)


@click.command()
@project_option
@env_option
@connection_options
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@click.option("--allow-destroy", is_flag=True, help="Allow changes that lose data (destroy, reindex of a non-empty index).")
@click.option("--task-timeout", type=float, default=600.0, show_default=True, help="Seconds to wait for each ML task.")
@click.option("--plan", "plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Apply only if the cluster still matches this saved plan (oskit plan --out); else PlanStale.")
@json_option
@verbose_option
def apply(project_dir: Path, env: str | None, conn: dict[str, Any], yes: bool, allow_destroy: bool,
          task_timeout: float, plan_file: Path | None, as_json: bool) -> None:
    """Converge the cluster to the project (settings → models → pipelines → indices).

    Idempotent and resumable: run it again after an interruption.

    \b
    Example:
      oskit apply --yes
    """
    import kit.cluster as cluster
    from kit.render import render_apply, render_json, render_plan

    project = _load(project_dir, env)
    client = _connect(conn)
    the_plan = cluster.plan(project, client)
    shown = the_plan.to_dict()
    if plan_file is not None:
        from kit.cluster.plan import check_saved

        check_saved(the_plan, plan_file)
        yes = True  # the saved plan was the review
    if not as_json:
        click.echo(render_plan(shown, verb="apply"))
    if the_plan.in_sync:
        if as_json:
            click.echo(render_json({"plan": shown, "result": {"applied": [], "model_ids": the_plan.model_ids}}))
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to apply without confirmation: pass --yes")
        click.confirm("Apply these changes?", abort=True, err=True)
    result = cluster.apply(the_plan, client, allow_destroy=allow_destroy, progress=_progress,
                           task_timeout=task_timeout).to_dict()
    click.echo(render_json({"plan": shown, "result": result}) if as_json else render_apply(result, shown))


@click.command()
@project_option
@env_option
@connection_options
@click.option("--exit-code", is_flag=True, help="Exit 3 on drift, 0 in sync, 1 on error (2 is a usage error).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="Output format (markdown for CI comments).")
@json_option
@verbose_option
def diff(project_dir: Path, env: str | None, conn: dict[str, Any], exit_code: bool, fmt: str, as_json: bool) -> None:
    """Show drift between the project and the cluster, field by field.

    \b
    Example (CI):
      oskit diff --exit-code --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    import kit.cluster as cluster
    from kit.render import render_diff_markdown, render_json, render_plan

    project = _load(project_dir, env)
    result = cluster.diff(project, _connect(conn)).to_dict()
    if as_json or fmt == "json":
        click.echo(render_json(result))
    elif fmt == "markdown":
        click.echo(render_diff_markdown(result), nl=False)
    else:
        click.echo(render_plan(result, details=True, verb="diff"))
    if exit_code and not result["in_sync"]:
        sys.exit(EXIT_DRIFT)


@click.command()
@project_option
@env_option
@connection_options
@json_option
@verbose_option
def status(project_dir: Path, env: str | None, conn: dict[str, Any], as_json: bool) -> None:
    """Show each resource's live state: model DEPLOYED/…, pipelines, index document counts.

    \b
    Example:
      oskit status --json
    """
    import kit.cluster as cluster
    from kit.render import render_json, render_status

    project = _load(project_dir, env)
    result = cluster.status(project, _connect(conn)).to_dict()
    click.echo(render_json(result) if as_json else render_status(result))


@click.command()
@project_option
@env_option
@connection_options
@click.option("--yes", "-y", is_flag=True, help="Destroy without asking.")
@json_option
@verbose_option
def destroy(project_dir: Path, env: str | None, conn: dict[str, Any], yes: bool, as_json: bool) -> None:
    """Remove everything this project created (indices, pipelines, models, connectors, groups).

    Resources the kit did not create and cluster settings are left alone.

    \b
    Example:
      oskit destroy --yes
    """
    import kit.cluster as cluster
    from kit.render import render_apply, render_json, render_plan

    project = _load(project_dir, env)
    client = _connect(conn)
    the_plan = cluster.destroy_plan(project, client)
    shown = the_plan.to_dict()
    if not as_json:
        click.echo(render_plan(shown, verb="destroy"))
    if the_plan.in_sync:
        if as_json:
            click.echo(render_json({"plan": shown, "result": {"applied": []}}))
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to destroy without confirmation: pass --yes")
        click.confirm("Destroy these resources?", abort=True, err=True)
    result = cluster.apply(the_plan, client, allow_destroy=True, progress=_progress).to_dict()
    click.echo(render_json({"plan": shown, "result": result}) if as_json else render_apply(result, shown))



"""``oskit node conformance``: the command (``kit/cli_node.py`` loads it from :mod:`kit.node.conformance`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from kit.errors import ConfigError
from kit.node.conformance.results import StoryResult
from kit.node.conformance.runner import DEFAULT_DISTRIBUTION, SUITES, default_spec_dir, run_conformance

__all__ = ["conformance_command"]


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


@click.command("conformance")
@click.option("--stories", "stories_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder (or one file) of test stories [default: SPEC/tests].")
@click.option("--spec", "spec_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              envvar="OSKIT_SPEC_DIR", help="opensearch-api-specification checkout [default: ../shared/opensearch-api-spec].")
@click.option("--url", default=None, help="Run against this cluster instead of a fresh embedded node.")
@click.option("--user", default=None, help="Basic-auth user for --url; the password is read from OPENSEARCH_PASSWORD.")
@click.option("--only", multiple=True, help="Run only stories whose path contains this text or matches this glob.")
@click.option("--all-stories", is_flag=True, help="Every story in the folder, not only the suites issue 3 names.")
@click.option("--run-skipped", is_flag=True, help="Also run the stories on the committed skip list.")
@click.option("--distribution", default=DEFAULT_DISTRIBUTION, show_default=True, help="Distribution the stories' filters compare with.")
@click.option("--exact-retries", is_flag=True, help="Retry exactly count times, wait ms apart (upstream); default polls faster within that time.")
@click.option("--dry-run", is_flag=True, help="Send nothing: check the stories' requests against the spec only.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results to stdout.")
def conformance_command(stories_dir: Path | None, spec_dir: Path | None, url: str | None, user: str | None,
                        only: tuple[str, ...],
                        all_stories: bool, run_skipped: bool, distribution: str, exact_retries: bool,
                        dry_run: bool, as_json: bool) -> None:
    """Run the official OpenSearch API test stories against a fresh node (or --url).

    Prints one line per story (PASSED / FAILED / SKIPPED and why) and then
    ``N passed, M failed, K skipped``. Exit code 1 when a story failed.

    \b
    Example:
      oskit node conformance --only plugins/ml/ml/model_groups
    """
    if spec_dir is None:
        spec_dir = default_spec_dir()
        if spec_dir is None:
            raise ConfigError("the OpenSearch API spec was not found", hint="pass --spec DIR (a checkout of opensearch-api-specification)")

    def show(result: StoryResult) -> None:
        if not as_json:
            color = {"PASSED": "green", "FAILED": "red", "SKIPPED": "yellow"}[result.status]
            click.echo(click.style(result.status, fg=color) + result.line()[len(result.status):])

    report = run_conformance(
        spec_dir=spec_dir, stories_dir=stories_dir, url=url, suites=None if all_stories else SUITES,
        only=only, run_skipped=run_skipped, distribution=distribution,
        fast_retry_ms=None if exact_retries else 200, progress=show, dry_run=dry_run,
        auth=(user, os.environ.get("OPENSEARCH_PASSWORD", "")) if user else None)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.summary())
    if report.failed:
        raise SystemExit(1)

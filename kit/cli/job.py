"""The main job's commands: ``ingest``, ``search``, ``similar``, ``eval``, ``ui``, ``demo``.

Each command calls one library function (:mod:`kit.job`: ingest, search, similar, evaluate, ui, demo)
and renders its result: data on stdout (tables, ``--json``), progress and summaries on stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import click

from kit.cli.common import connection_options, json_option, project_option, verbose_option

__all__ = ["demo", "eval_cmd", "ingest", "search", "similar", "ui"]


def _stdout() -> Any:
    from rich.console import Console

    # a fixed width when piped, so tables do not wrap at 80 columns in logs and tests
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160, highlight=False, soft_wrap=False)


def _stderr() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


@contextlib.contextmanager
def _client(conn: dict[str, Any]) -> Iterator[Any]:
    """A connection for one command, closed when it ends."""
    from kit.cluster.client import connect

    client = connect(**conn)
    try:
        yield client
    finally:
        client.close()


# ------------------------------------------------------------------------------------------- ingest


def _weights(value: str | None) -> list[float] | None:
    """``--hybrid-weights 0.3,0.7`` → [0.3, 0.7]; the library checks they are in [0, 1] and sum to 1."""
    if value is None:
        return None
    try:
        weights = [float(x) for x in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected two numbers, e.g. 0.3,0.7") from None
    if len(weights) != 2:
        raise click.BadParameter(f"{value!r}: expected two numbers (BM25, vector), e.g. 0.3,0.7")
    return weights


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--index", default="images", show_default=True, help="Target index.")
@click.option("--metadata", "metadata_file", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV (header row) or JSONL joined to the images by file name (column file_name).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Batches processed concurrently.")
@click.option("--batch", type=click.IntRange(1, 1000), default=16, show_default=True, help="Images per _bulk request.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=Path("ingest-errors.jsonl"),
              show_default=True, help="JSONL report of files that failed (written only when some did).")
@click.option("--max-bytes", type=click.IntRange(1), default=50 * 1024 * 1024, show_default=True,
              help="Files larger than this are reported, not sent.")
@click.option("--reindex", is_flag=True, help="Send every file again, even those already indexed.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@json_option
@connection_options
@verbose_option
def ingest(paths: tuple[str, ...], index: str, metadata_file: Path | None, workers: int, batch: int, report: Path,
           max_bytes: int, reindex: bool, no_progress: bool, as_json: bool, conn: dict[str, Any]) -> None:
    """Index images (folders, files, quoted globs) through the index's ingest pipeline.

    Ids are the sha256 of each file, so a rerun skips what is indexed. A bad file fails only
    itself and is listed in --report; the exit code is 1 when any file failed.

    \b
    Example:
      oskit ingest photos/ 'more/**/*.jpg' --metadata photos.csv --index images
    """
    from kit.job.ingest import IngestProgress
    from kit.job.ingest import ingest as run_ingest

    err = _stderr()
    progress_cb = None
    bar: Any = None
    if not no_progress:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        bar = Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[counts]}"),
                       TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                       console=err, transient=False)
        task = bar.add_task("ingest", total=None, rate="", counts="")

        def progress_cb(p: IngestProgress) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, total=p.total, completed=p.done,
                       rate=f"{speed:.1f} img/s" if speed else "",
                       counts=f"indexed {p.indexed} skipped {p.skipped} failed {p.failed}")

        bar.start()
    try:
        with _client(conn) as client:
            result = run_ingest(client, list(paths), index=index, metadata=metadata_file, workers=workers,
                                batch=batch, report=report, progress=progress_cb, skip_existing=not reindex,
                                max_bytes=max_bytes)
    finally:
        if bar is not None:
            bar.stop()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    parts = [f"{result.indexed} indexed", f"{result.skipped} already indexed"]
    if result.duplicates:
        parts.append(f"{result.duplicates} duplicate files")
    parts.append(f"{result.failed} failed")
    summary = (f"{result.total} files: " + ", ".join(parts) +
               f" in {result.seconds:.1f}s ({result.rate:.1f} images/s) into index '{index}'")
    click.echo(summary, err=True)
    if result.unmatched_metadata:
        click.echo(f"{result.unmatched_metadata} metadata rows named no ingested file", err=True)
    if result.failures:
        for f in result.failures[:10]:
            click.echo(f"  failed: {f.file}: {f.reason}", err=True)
        if result.failed > 10:
            click.echo(f"  … and {result.failed - 10} more", err=True)
        click.echo(f"error report: {result.report}", err=True)
        sys.exit(1)


# ------------------------------------------------------------------------------------------- search


def _render_hits(result: Any, *, labels: bool = False) -> None:
    from rich.table import Table

    from kit.job.search import short_metadata

    table = Table(show_lines=False, pad_edge=False, box=None, header_style="bold")
    # fixed columns never shrink; only the metadata cell is cut (with an ellipsis) to fit
    table.add_column("rank", justify="right", no_wrap=True, min_width=4)
    table.add_column("score", justify="right", no_wrap=True, min_width=6)
    if labels:
        table.add_column("label", no_wrap=True, min_width=14)
    table.add_column("id", no_wrap=True, min_width=12)
    table.add_column("file", no_wrap=True, min_width=12, max_width=48, overflow="ellipsis")
    table.add_column("metadata", no_wrap=True, overflow="ellipsis", max_width=80)
    for i, h in enumerate(result.hits, start=1):
        row = [str(i), f"{h.score:.4f}"]
        if labels:
            row.append(h.label or "")
        row += [h.id[:12], str(h.source.get("file_name", "")), short_metadata(h.source)]
        table.add_row(*row)
    out = _stdout()
    if not result.hits:
        out.print("no results")
    else:
        out.print(table)


def _write_html(path: Path | None, result: Any, title: str, subtitle: str) -> None:
    if path is None:
        return
    from kit.job.gallery import write_gallery

    write_gallery(path, result.hits, title=title, subtitle=subtitle)
    click.echo(f"wrote {path} ({len(result.hits)} results)", err=True)


@click.command()
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=30, show_default=True, help="Results to return.")
@click.option("--mode", type=click.Choice(["vector", "hybrid", "tags"]), default="vector", show_default=True,
              help="vector: CLIP/text vectors; hybrid: BM25 + vectors (normalised); tags: the lexical baseline.")
@click.option("--field", "field_", type=click.Choice(["image", "ocr_text", "caption"]), default="image",
              show_default=True, help="What to match: the picture, the text printed in it, or its caption.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Exact match on a field or metadata key (repeatable).")
@click.option("--all-terms", is_flag=True, help="tags/hybrid: every word must match (default: any).")
@click.option("--prompt-template", default="a picture of a {term}", show_default=True,
              help="Wraps single-word queries for CLIP; '' disables.")
@click.option("--index", default="images", show_default=True)
@click.option("--search-pipeline", default=None, help="Search pipeline to use instead of the index's default.")
@click.option("--hybrid-weights", default=None, metavar="BM25,VECTOR", callback=lambda ctx, p, v: _weights(v),
              help="hybrid: sub-query weights summing to 1, e.g. 0.3,0.7 (default: per field, see README).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write an HTML gallery with thumbnails.")
@json_option
@connection_options
@verbose_option
def search(query: str, k: int, mode: str, field_: str, filters: tuple[str, ...], all_terms: bool,
           prompt_template: str, index: str, search_pipeline: str | None, hybrid_weights: list[float] | None,
           html_file: Path | None, as_json: bool, conn: dict[str, Any]) -> None:
    """Search images by text.

    \b
    Examples:
      oskit search "red dress" -k 30
      oskit search dress --mode tags
      oskit search --field ocr_text "SN 4411-AB" --mode hybrid
      oskit search "striped star" --filter format=png --json
      oskit search "red heart" --mode hybrid --hybrid-weights 0.3,0.7
    """
    from kit.job.search import search as run_search

    with _client(conn) as client:
        result = run_search(client, query, index=index, k=k, mode=mode, field=field_, filters=list(filters),
                            prompt_template=prompt_template or None, all_terms=all_terms,
                            thumbnails=html_file is not None, search_pipeline=search_pipeline,
                            hybrid_weights=hybrid_weights)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        _render_hits(result)
    _write_html(html_file, result, f"oskit search: {query}", f"mode {mode}, field {field_}, top {k}")


@click.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=30, show_default=True)
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Exact match (repeatable).")
@click.option("--bands", "bands_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Score bands JSON (default: the project's data/similar-bands.json, else built-in).")
@click.option("--index", default="images", show_default=True)
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write an HTML gallery with thumbnails.")
@json_option
@project_option
@connection_options
@verbose_option
def similar(photo: Path, k: int, filters: tuple[str, ...], bands_file: Path | None, index: str,
            html_file: Path | None, as_json: bool, project_dir: Path, conn: dict[str, Any]) -> None:
    """Find images like a photo; each result is labelled identical / near-identical / similar / unrelated.

    \b
    Example:
      oskit similar phone_photo.jpg -k 10 --html similar.html
    """
    from kit.job.similar import Bands
    from kit.job.similar import similar as run_similar

    bands = Bands.load(bands_file) if bands_file else Bands.default(project_dir)
    with _client(conn) as client:
        result = run_similar(client, photo, index=index, k=k, bands=bands, filters=list(filters),
                             thumbnails=html_file is not None)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        _render_hits(result, labels=True)
    _write_html(html_file, result, f"oskit similar: {photo.name}", f"top {k}; bands: {bands.source}")


# --------------------------------------------------------------------------------------------- eval


def render_report(report: Any) -> Any:
    """The comparison table (rows: query group × config) as a rich Table."""
    from rich.table import Table

    names = report.metric_names()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("queries", "config", "n"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for n in names:
        table.add_column(n, justify="right")
    last_group = None
    for row in report.rows:
        group = row.group if row.group != last_group else ""
        last_group = row.group
        table.add_row(group, row.config, str(row.queries), *(f"{row.metrics.get(n, 0.0):.4f}" for n in names))
    return table


@click.command(name="eval")
@click.argument("queries_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mode", "modes", multiple=True, help="Modes to compare (repeatable or comma-separated; "
              "default tags,vector,hybrid). The first vector-backed one is the primary for thresholds.")
@click.option("-k", "ks", default="10,30", show_default=True, help="Cut-offs, comma-separated.")
@click.option("--fail-under", "fail_under", multiple=True, metavar="[MODE:][GROUP:]METRIC[@K]=VALUE",
              help="Exit 1 when a metric is below VALUE, e.g. map=0.5, hybrid:map@30=0.6, image:r@1=0.95 "
              "(group text+ocr unless named).")
@click.option("--prompt-template", default="a picture of a {term}", show_default=True,
              help="Template for single-word queries; rows are shown with and without it. '' = none.")
@click.option("--index", default=None, help="Index (default: the query file's, else images).")
@click.option("--search-pipeline", default=None,
              help="Evaluate this search pipeline instead of the index's default (e.g. other hybrid weights).")
@click.option("--ingest", "do_ingest", is_flag=True,
              help="First ingest the set's images/ (with metadata.jsonl) next to the query file.")
@click.option("--calibrate-bands", "bands_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also calibrate the similar-photo score bands on the image queries and write them here.")
@click.option("--per-query", "per_query_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write each query's metrics as JSONL.")
@json_option
@connection_options
@verbose_option
def eval_cmd(queries_file: Path, modes: tuple[str, ...], ks: str, fail_under: tuple[str, ...], prompt_template: str,
             index: str | None, search_pipeline: str | None, do_ingest: bool, bands_out: Path | None, per_query_file: Path | None, as_json: bool,
             conn: dict[str, Any]) -> None:
    """Measure search quality: P@k, R@k, F1@k and mAP per mode, text / OCR / photo queries.

    \b
    Examples:
      oskit eval data/eval/queries.yaml
      oskit eval data/eval/queries.yaml --mode vector -k 10,30 --fail-under map=0.5 --fail-under image:r@1=0.95
    """
    from kit.job.evaluate import check_thresholds, default_configs, evaluate, ks_from, load_queries, modes_from, \
        parse_thresholds

    kk = ks_from(ks)
    thresholds = parse_thresholds(fail_under, kk)  # parse before the (slow) run so typos fail fast
    qs = load_queries(queries_file)
    configs = default_configs(modes_from(modes), prompt_template or None)
    with _client(conn) as client:
        idx = index or qs.index or "images"
        if do_ingest:
            from kit.job.evaluate import ingest_eval_set

            res = ingest_eval_set(client, qs, index=idx)
            click.echo(f"ingested the evaluation images: {res.indexed} new, {res.skipped} already indexed, "
                       f"{res.failed} failed", err=True)
        report = evaluate(client, qs, index=idx, configs=configs, ks=kk, search_pipeline=search_pipeline)
        if per_query_file:
            per_query_file.parent.mkdir(parents=True, exist_ok=True)
            per_query_file.write_text("".join(json.dumps(q) + "\n" for q in report.per_query), encoding="utf-8")
        if as_json:
            click.echo(json.dumps(report.to_json() if per_query_file is None else
                                  {k: v for k, v in report.to_json().items() if k != "queries"}, indent=2))
        else:
            _stdout().print(render_report(report))
        if bands_out:
            from kit.job.evaluate import calibrate_from_queries

            bands = calibrate_from_queries(client, qs, index=idx)
            bands.save(bands_out)
            click.echo(f"wrote score bands to {bands_out}: identical ≥ {bands.identical}, near-identical ≥ "
                       f"{bands.near_identical}, similar ≥ {bands.similar}", err=True)
    for line in check_thresholds(report, thresholds):
        click.echo(f"ok: {line}", err=True)


# ----------------------------------------------------------------------------------------------- ui


@click.command()
@click.option("--index", default="images", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@project_option
@connection_options
@verbose_option
def ui(index: str, host: str, port: int, project_dir: Path, conn: dict[str, Any]) -> None:
    """Serve the search page (text search, photo upload / phone camera, mode switch, metadata).

    \b
    Example:
      oskit ui --url http://127.0.0.1:9200 --index images --port 8080
    """
    import uvicorn

    from kit.job.similar import Bands
    from kit.job.ui.app import create_app

    app = create_app(conn, index=index, bands=Bands.default(project_dir))
    click.echo(f"search page: http://{host}:{port}/  (index '{index}' at {conn['url']}; Ctrl-C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


# --------------------------------------------------------------------------------------------- demo


@click.command()
@click.option("--no-serve", is_flag=True, help="Exit after printing the results instead of serving the page.")
@click.option("--images", "image_dirs", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Also ingest this folder (repeatable).")
@click.option("--n", "n_images", type=click.IntRange(4, 5000), default=120, show_default=True,
              help="Generated sample images.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Search page port.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the node and the sample set live (default: a fresh temporary folder).")
@project_option
@verbose_option
def demo(no_serve: bool, image_dirs: tuple[Path, ...], n_images: int, port: int, data_dir: Path | None,
         project_dir: Path) -> None:
    """Run everything locally: node, model server, apply, sample images, searches, evaluation, search page.

    \b
    Example:
      oskit demo --no-serve --n 60
    """
    from kit.job.demo import run_demo

    out, err = _stdout(), _stderr()

    def show(kind: str, data: dict[str, Any]) -> None:
        if kind == "step":
            err.print(f"[dim]… {data['message']}[/dim]")
        elif kind == "ingest":
            r = data["result"]
            out.print(f"ingested {data['what']}: {r.indexed} indexed, {r.skipped} already indexed, {r.failed} failed "
                      f"({r.rate:.1f} images/s)")
            for f in r.failures[:5]:
                out.print(f"  failed: {f.file}: {f.reason}")
        elif kind == "search":
            out.print(f"\n[bold]{data['title']}[/bold]")
            _render_hits(data["result"], labels=data["result"].mode == "similar")
        elif kind == "eval":
            out.print("\n[bold]evaluation (sample queries; higher is better)[/bold]")
            out.print(render_report(data["report"]))
        elif kind == "ready":
            out.print(f"\nsearch page: {data['url']}   (node: {data['node']})")
            if data["serving"]:
                err.print("serving until Ctrl-C")

    run_demo(project_dir=project_dir, images=list(image_dirs), n_images=n_images, serve=not no_serve, port=port,
             data_dir=data_dir, events=show)

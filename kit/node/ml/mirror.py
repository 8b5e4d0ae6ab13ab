"""OpenSearch-hosted pretrained models without internet: a local mirror of artifacts.opensearch.org.

The real plugin downloads ``https://artifacts.opensearch.org/models/ml-models/<name>/<version>/<format>/config.json``
and then ``…/<format>/<name after the first '/', '/'→'_'>-<version>-<format>.zip`` (``MLEngine``,
``ModelHelper.downloadPrebuiltModelConfig``). The embedded node never reaches the internet; it looks for the
same paths under a mirror directory (``OSKIT_ML_MIRROR`` or ``MLCommons(mirror_dir=...)``), see
docs/ml-offline-mirror.md. Without a mirror entry the register task FAILS with a message saying so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ARTIFACTS", "MirrorEntry", "MirrorMiss", "lookup", "mirror_dir", "zip_name"]

ARTIFACTS = "https://artifacts.opensearch.org/models/ml-models"


class MirrorMiss(Exception):
    """No local copy of a pretrained model; the message is what the register task's ``error`` says."""


@dataclass
class MirrorEntry:
    config: dict[str, Any]
    zip_path: Path


def mirror_dir(explicit: Path | str | None = None) -> Path | None:
    raw = explicit if explicit is not None else os.environ.get("OSKIT_ML_MIRROR")
    return Path(raw).expanduser() if raw else None


def zip_name(name: str, version: str, fmt: str) -> str:
    return name[name.find("/") + 1:].replace("/", "_") + "-" + version + "-" + fmt


def lookup(name: str, version: str | None, model_format: str, explicit: Path | str | None = None) -> MirrorEntry:
    """Find ``<name>/<version>/<format>/config.json`` and its zip in the mirror, or raise :class:`MirrorMiss`."""
    fmt = model_format.lower()
    url = f"{ARTIFACTS}/{name}/{version}/{fmt}/config.json"
    root = mirror_dir(explicit)
    if root is None:
        raise MirrorMiss(
            f"Cannot register pretrained model {name} {version} ({model_format}): the oskit embedded node does not "
            f"download from {url}. Set OSKIT_ML_MIRROR to a local mirror of artifacts.opensearch.org "
            "(see docs/ml-offline-mirror.md) or register the model from a file:// URL or by chunk upload."
        )
    if version is None:
        raise MirrorMiss("model version is null")
    listing = root / "model_listing" / "pre_trained_models.json"
    if listing.is_file():
        # ModelHelper.isModelAllowed: name, version and format must be listed.
        try:
            metas = json.loads(listing.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise MirrorMiss(f"Cannot read {listing}: {exc}") from None
        allowed = any(
            m.get("name") == name and version.lower() in (m.get("version") or []) and fmt in (m.get("format") or [])
            for m in metas if isinstance(m, dict)
        )
        if not allowed:
            raise MirrorMiss("This model is not in the pre-trained model list, please check your parameters.")
    folder = root / name / version / fmt
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise MirrorMiss(
            f"Pretrained model {name} {version} ({model_format}) is not in the local mirror {root}: "
            f"{config_path} does not exist (the real node would download {url})."
        )
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MirrorMiss(f"Cannot read {config_path}: {exc}") from None
    if not isinstance(config, dict):
        raise MirrorMiss("model config not found")
    zip_path = folder / (zip_name(name, version, fmt) + ".zip")
    if not zip_path.is_file():
        raise MirrorMiss(f"Pretrained model zip {zip_path} is missing from the local mirror.")
    return MirrorEntry(config=config, zip_path=zip_path)

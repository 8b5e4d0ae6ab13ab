"""The project's own open_clip architectures (``kit/models/clip_configs/*.json``).

:func:`register_oskit_configs` adds them to open_clip's model registry through its public
``add_model_config``, after which the normal API loads them like any built-in model::

    register_oskit_configs()
    model, _, preprocess = open_clip.create_model_and_transforms(
        "oskit-clip-tiny", pretrained="models/weights/oskit-clip-tiny.pt")
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_DIR", "architecture_config", "embed_dim", "oskit_model_names", "register_oskit_configs"]

CONFIG_DIR = Path(__file__).resolve().parent / "clip_configs"


def oskit_model_names() -> list[str]:
    """Names of the architectures shipped in :data:`CONFIG_DIR`."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def register_oskit_configs() -> list[str]:
    """Make the project's architectures known to open_clip (idempotent); returns their names."""
    import open_clip

    names = oskit_model_names()
    known = set(open_clip.list_models())
    if any(n not in known for n in names):
        # add_model_config appends to open_clip's search path and rescans; do it once per process
        open_clip.add_model_config(CONFIG_DIR)
    return names


def architecture_config(name: str) -> dict[str, Any] | None:
    """The JSON config of an open_clip architecture (the project's or open_clip's own), read from its
    file without importing open_clip (and torch), so ``oskit validate`` stays fast; None if unknown."""
    folders = [CONFIG_DIR]
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) / "model_configs" for p in spec.submodule_search_locations]
    for folder in folders:
        path = folder / f"{name}.json"
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None
    return None


def embed_dim(name: str) -> int | None:
    """The embedding width of an open_clip architecture (its config's ``embed_dim``), or None if unknown."""
    cfg = architecture_config(name)
    value = cfg.get("embed_dim") if cfg else None
    return int(value) if isinstance(value, int) else None

"""The project's own open_clip architectures (``kit/models/clip_configs/*.json``).

:func:`register_oskit_configs` adds them to open_clip's model registry through its public
``add_model_config``, after which the normal API loads them like any built-in model::

    register_oskit_configs()
    model, _, preprocess = open_clip.create_model_and_transforms(
        "oskit-clip-tiny", pretrained="models/weights/oskit-clip-tiny.pt")
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_DIR", "oskit_model_names", "register_oskit_configs"]

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

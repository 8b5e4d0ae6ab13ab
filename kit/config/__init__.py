"""Project files: strict schema (schema.py), loading and cross-file checks (loader.py), ${env:…} (envsubst.py)."""

from kit.config.loader import Project, load_project

__all__ = ["Project", "load_project"]

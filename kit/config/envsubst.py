"""``${env:NAME}`` / ``${env:NAME:-default}`` references in project files.

The loader keeps references unresolved (``oskit validate`` runs offline and without secrets);
:func:`resolve` substitutes them at plan/apply time. Values that come from the environment and
are secrets (see :func:`is_secret_path` / :func:`is_secret_name`) are tracked so that plans,
diffs and logs show ``${env:NAME}`` instead of the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ENV_REF",
    "EnvResolver",
    "find_refs",
    "has_refs",
    "is_secret_name",
    "is_secret_path",
    "malformed_refs",
    "mask",
]

# ${env:NAME} or ${env:NAME:-default}; NAME is a POSIX-ish variable name.
ENV_REF = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
# Anything that looks like an env reference but is malformed (for validate's messages).
LOOSE_REF = re.compile(r"\$\{env:([^}]*)\}?")

_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "ACCESS_KEY", "CREDENTIAL", "PRIVATE")


def is_secret_name(name: str) -> bool:
    """Environment variables whose names say they hold a secret are masked wherever they are used."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS)


def is_secret_path(path: tuple[str | int, ...]) -> bool:
    """Values under a connector's ``credential`` block (and auth headers) are secrets."""
    keys = [str(p).lower() for p in path]
    if "credential" in keys:
        return True
    return "headers" in keys and keys[-1] in ("authorization", "x-api-key", "api-key")


def has_refs(value: Any) -> bool:
    return bool(find_refs(value))


def find_refs(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str, str | None]]:
    """Every ``(path, NAME, default)`` reference inside a nested value."""
    found: list[tuple[tuple[str | int, ...], str, str | None]] = []
    if isinstance(value, str):
        for m in ENV_REF.finditer(value):
            found.append((path, m.group("name"), m.group("default")))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found.extend(find_refs(v, path + (str(k),)))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found.extend(find_refs(v, path + (i,)))
    return found


def malformed_refs(value: str) -> list[str]:
    """Substrings that start like ``${env:`` but are not a valid reference."""
    bad = []
    for m in LOOSE_REF.finditer(value):
        if not ENV_REF.fullmatch(m.group(0)):
            bad.append(m.group(0))
    return bad


class EnvResolver:
    """Resolves references against one environment snapshot and remembers which values are secret."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)
        self.secrets: set[str] = set()   # resolved secret values, for masking in rendered output
        self.missing: list[tuple[tuple[str | int, ...], str]] = []

    def resolve(self, value: Any, path: tuple[str | int, ...] = ()) -> Any:
        if isinstance(value, str):
            return self._resolve_str(value, path)
        if isinstance(value, Mapping):
            return {k: self.resolve(v, path + (str(k),)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, path + (i,)) for i, v in enumerate(value)]
        return value

    def _resolve_str(self, text: str, path: tuple[str | int, ...]) -> str:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group("name"), m.group("default")
            val = self.environ.get(name)
            if val is None or val == "" and default is not None:
                if default is None:
                    self.missing.append((path, name))
                    return m.group(0)
                val = default
            if val and (is_secret_name(name) or is_secret_path(path)) and name in self.environ:
                self.secrets.add(val)
            return val

        return ENV_REF.sub(sub, text)


def mask(value: Any, secrets: set[str]) -> Any:
    """Replace every secret value inside ``value`` by ``***``."""
    if not secrets:
        return value
    if isinstance(value, str):
        for s in sorted(secrets, key=len, reverse=True):
            if s:
                value = value.replace(s, "***")
        return value
    if isinstance(value, Mapping):
        return {k: mask(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secrets) for v in value]
    return value

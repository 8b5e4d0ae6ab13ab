""":func:`load_spec`: read, patch, merge, cut and make strict the spec once, cached in-process and on disk
(a pickle of the processed document keyed by the files' sizes and times, the options and the
processing version)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from kit.errors import SpecError
from kit.spec.allow_list import ALLOW_LIST, _apply_allow_list
from kit.spec.document import (_PROCESSING_VERSION, _extract_version, _inject_strictness, _merge, _read_files,
                               _spec_root, _strip_annotations)
from kit.spec.model import Spec
from kit.spec.versions import _coerce

__all__ = ["load_raw_files", "load_spec"]

log = logging.getLogger(__name__)


def _default_cache_dir() -> Path | None:
    data = os.environ.get("OSKIT_DATA_DIR")
    if data:
        return Path(data) / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "oskit" if xdg else Path.home() / ".cache" / "oskit"


def _fingerprint(root: Path, version: str | None, distribution: str | None, allow_list: bool) -> str:
    h = hashlib.sha256()
    h.update(f"{_PROCESSING_VERSION}|{version}|{distribution}|{allow_list}|".encode())
    if allow_list:
        h.update(repr(sorted((k, repr(v)) for k, v in ALLOW_LIST.items())).encode())
    for path in sorted(root.rglob("*.yaml")):
        st = path.stat()
        h.update(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def load_raw_files(spec_dir: Path) -> dict[str, Any]:
    """Every YAML file of the spec, unmerged and unpatched (``rel/path.yaml`` -> document)."""
    return _read_files(_spec_root(spec_dir))


def _build_doc(root: Path, version: str | None, distribution: str | None, allow_list: bool) -> dict[str, Any]:
    files = _read_files(root)
    if allow_list:
        _apply_allow_list(files, ALLOW_LIST.items())
    doc = _merge(files)
    _extract_version(doc, version, distribution)
    _inject_strictness(doc)
    _strip_annotations(doc)
    return doc


@functools.lru_cache(maxsize=8)
def _load_cached(root: Path, version: str | None, distribution: str | None, allow_list: bool,
                 cache_dir: Path | None, fingerprint: str) -> Spec:
    doc: dict[str, Any] | None = None
    cache_file = cache_dir / f"opensearch-api-spec-{fingerprint}.pickle" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            with cache_file.open("rb") as fh:
                doc = pickle.load(fh)  # noqa: S301 - our own cache file, keyed by content fingerprint
        except Exception as exc:  # a truncated or foreign cache file: rebuild it
            log.debug("ignoring unreadable spec cache %s: %s", cache_file, exc)
            doc = None
    if doc is None:
        doc = _build_doc(root, version, distribution, allow_list)
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
                with tmp.open("wb") as fh:
                    pickle.dump(doc, fh, protocol=pickle.HIGHEST_PROTOCOL)
                tmp.replace(cache_file)
            except OSError as exc:  # a read-only home is fine: we just do not cache
                log.debug("cannot write spec cache %s: %s", cache_file, exc)
    return Spec(doc, root=root, version=version, distribution=distribution, allow_list=allow_list)


def load_spec(spec_dir: Path, *, version: str | None = None, distribution: str | None = None,
              allow_list: bool = True, cache_dir: Path | None | bool = True) -> Spec:
    """Load, merge and make strict the spec in ``spec_dir`` (the repository folder or its ``spec/``).

    ``version`` / ``distribution`` keep only what that server serves (``x-version-added`` etc.);
    ``allow_list=False`` uses the spec exactly as published. Results are cached in-process and on
    disk (``cache_dir``; default ``$OSKIT_DATA_DIR/cache``; ``False`` disables the disk cache).
    Raises :class:`SpecError` when the folder is not a readable spec.
    """
    try:
        root = _spec_root(Path(spec_dir)).resolve()
    except OSError as exc:
        raise SpecError(f"{spec_dir}: cannot read the OpenSearch API spec: {exc}") from exc
    if cache_dir is True:
        resolved_cache: Path | None = _default_cache_dir()
    elif cache_dir is False or cache_dir is None:
        resolved_cache = None
    else:
        resolved_cache = Path(cache_dir)
    try:
        fingerprint = _fingerprint(root, version, distribution, allow_list)
    except OSError as exc:
        raise SpecError(f"{root}: cannot read the OpenSearch API spec: {exc}") from exc
    if version is not None:
        _coerce(version)
    return _load_cached(root, version, distribution, allow_list, resolved_cache, fingerprint)

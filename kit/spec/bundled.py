"""The OpenSearch API spec shipped inside the package, so ``oskit validate`` works after ``pip install
oskit`` outside a checkout: every YAML file of the spec's ``spec/`` folder from one upstream commit,
in one versioned, gzipped JSON bundle (``kit/spec/data/opensearch-api-spec.json.gz``). It goes
through the same allow-list, merge and strictness steps as a spec folder (``load_spec(None)``);
``--spec DIR`` still validates against another copy.

Regenerate it after updating the shared copy (a test fails while the two differ)::

    python -m kit.spec.bundled ../shared/opensearch-api-spec
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

from kit.errors import SpecError

__all__ = ["BUNDLE", "bundle_label", "read_bundle", "write_bundle"]

BUNDLE = Path(__file__).resolve().parent / "data" / "opensearch-api-spec.json.gz"
FORMAT = 1


def _source(spec_dir: Path) -> dict[str, str]:
    """Repository, commit and date from the copy's SOURCE.txt (how ../shared records its origin)."""
    text = (spec_dir / "SOURCE.txt").read_text(encoding="utf-8") if (spec_dir / "SOURCE.txt").is_file() else ""
    out = {}
    for key, pattern in (("repository", r"Repository:\s*(\S+)"), ("commit", r"Commit:\s*([0-9a-f]{7,40})"),
                         ("date", r"Commit date:\s*(\S+)")):
        m = re.search(pattern, text)
        if m:
            out[key] = m.group(1)
    return out


def write_bundle(spec_dir: Path, out: Path = BUNDLE) -> dict[str, Any]:
    """Bundle the spec folder ``spec_dir`` into ``out`` (byte-for-byte reproducible); returns the bundle."""
    from kit.spec.document import _read_files, _spec_root

    root = _spec_root(Path(spec_dir))
    bundle = {"format": FORMAT, "source": _source(root.parent if root.name == "spec" else root),
              "files": _read_files(root)}
    data = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as fh:
        fh.write(data)
    return bundle


@functools.lru_cache(maxsize=2)
def read_bundle(path: Path = BUNDLE) -> dict[str, Any]:
    """The bundle: ``{"format", "source": {"repository", "commit", "date"}, "files": {rel: document}}``."""
    try:
        with gzip.open(path, "rb") as fh:
            bundle = json.loads(fh.read())
    except (OSError, ValueError) as exc:
        raise SpecError(f"the OpenSearch API spec shipped with oskit is unreadable ({path}: {exc})",
                        hint="reinstall oskit, or pass --spec DIR") from None
    if bundle.get("format") != FORMAT or "_info.yaml" not in (bundle.get("files") or {}):
        raise SpecError(f"{path}: not an oskit spec bundle (format {bundle.get('format')!r})")
    return dict(bundle)


def bundle_label(path: Path = BUNDLE) -> str:
    """``bundled opensearch-api-specification@fbe9ede (2026-08-21)`` for reports."""
    src = read_bundle(path)["source"]
    repo = str(src.get("repository", "opensearch-api-specification")).rstrip("/").rpartition("/")[2]
    commit = str(src.get("commit", "?"))[:7]
    date = str(src.get("date", ""))[:10]
    return f"bundled {repo}@{commit}" + (f" ({date})" if date else "")


if __name__ == "__main__":  # python -m kit.spec.bundled SPEC_DIR
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kit.spec.bundled SPEC_DIR")
    written = write_bundle(Path(sys.argv[1]))
    print(f"wrote {BUNDLE} ({len(written['files'])} files, {BUNDLE.stat().st_size} bytes; {bundle_label()})")

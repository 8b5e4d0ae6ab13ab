"""Version ranges: a small subset of node-semver, as the upstream spec tools use it
(``x-version-added``, ``x-version-removed`` and the test stories' ``version:`` filters)."""

from __future__ import annotations

import re

from kit.errors import SpecError

__all__ = ["satisfies"]


_VERSION_RE = re.compile(r"^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+].*)?$")
_COMPARATOR_RE = re.compile(r"^(>=|<=|>|<|=|~|\^)?\s*(v?[\dxX*][^\s]*)$")


def _coerce(version: str) -> tuple[int, int, int]:
    """``semver.coerce``: the first ``X[.Y[.Z]]`` in the string, missing parts 0."""
    m = re.search(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(version))
    if not m:
        raise SpecError(f"not a version: {version!r}")
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def _comparator_ok(version: tuple[int, int, int], op: str, target: str) -> bool:
    m = _VERSION_RE.match(target)
    if not m:
        raise SpecError(f"invalid semver range element: {target!r}")
    parts = [m.group(1), m.group(2), m.group(3)]
    wild = [p is None or p in ("x", "X", "*") for p in parts]
    nums = [0 if w else int(p) for p, w in zip(parts, wild)]
    if wild[0]:
        return True
    given = 1 + (not wild[1]) + (not wild[1] and not wild[2])  # how many parts were written
    lo = (nums[0], nums[1], nums[2])
    # an X-range (2.11 = 2.11.x) covers [lo, hi)
    if given == 1:
        hi = (nums[0] + 1, 0, 0)
    elif given == 2:
        hi = (nums[0], nums[1] + 1, 0)
    else:
        hi = (nums[0], nums[1], nums[2] + 1)
    if op in ("", "="):
        return lo <= version < hi
    if op == ">=":
        return version >= lo
    if op == ">":
        return version >= hi
    if op == "<":
        return version < lo
    if op == "<=":
        return version < hi
    if op == "~":
        return lo <= version < ((nums[0], nums[1] + 1, 0) if given >= 2 else (nums[0] + 1, 0, 0))
    if op == "^":
        return lo <= version < (nums[0] + 1, 0, 0)
    raise SpecError(f"unsupported semver operator {op!r}")


def satisfies(version: str, range_: str) -> bool:
    """node-semver ``satisfies(version, range)`` for the forms used by the spec and its stories.

    Supports ``||``-separated sets of space-separated comparators (``>= 2.11``, ``<3.0``, ``2.x``).
    """
    v = _coerce(version)
    for alternative in str(range_).split("||"):
        tokens = re.findall(r"(>=|<=|>|<|=|~|\^)?\s*([^\s<>=~^|]+)", alternative.strip())
        if not tokens:
            return True
        if all(_comparator_ok(v, op, target) for op, target in tokens):
            return True
    return False

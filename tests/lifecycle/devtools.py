"""The Dev Tools requests of docs/dashboards.md (shared by the node and real-node tests)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "dashboards.md"


def devtools_requests(text: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, path, body)`` of every ```console block (Dev Tools syntax: a request line, then JSON)."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        line, _, body = block.partition("\n")
        method, path = line.split(" ", 1)
        out.append((method, "/" + path.lstrip("/"), json.loads(body)))
    return out

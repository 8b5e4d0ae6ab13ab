"""Record every request the kit sends (and what came back) as JSON Lines, for the differential oracle.

Enabled by ``OSKIT_RECORD_REQUESTS=FILE`` (read when a client is built) or :func:`start_recording`.
Each line is one exchange::

    {"seq": 3, "method": "PUT", "path": "/images", "params": {...}, "body": {...} | "ndjson text" | null,
     "status": 200, "response": {...} | null, "ms": 12.3}

A body that is not UTF-8 text (a model chunk) is kept as ``{"__oskit_binary_base64__": "..."}``.
Secrets never reach the file: connector ``credential`` values and anything under a key that names a
secret (password, api_key, token, secret, authorization) are replaced by ``"<redacted>"``. Several
processes may append to one file (each line is written under an exclusive lock).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["BINARY", "REDACTED", "Recorder", "active_recorder", "redact", "start_recording", "stop_recording"]

ENV_VAR = "OSKIT_RECORD_REQUESTS"
REDACTED = "<redacted>"
BINARY = "__oskit_binary_base64__"  # a request body that is not text
_SECRET_KEYS = ("password", "api_key", "apikey", "token", "secret", "authorization", "access_key",
                "session_key")


def redact(value: Any) -> Any:
    """A copy of ``value`` with connector credentials and secret-named keys replaced."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k).lower()
            if key == "credential" and isinstance(v, dict):
                out[k] = {ck: REDACTED for ck in v}
            elif any(s in key for s in _SECRET_KEYS) and isinstance(v, (str, int, float)):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _body_for_record(body: Any) -> Any:
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError:  # model chunks: kept exactly, replayed as the same bytes
            import base64

            return {BINARY: base64.b64encode(bytes(body)).decode("ascii")}
    if isinstance(body, str):
        # _bulk and other NDJSON bodies: redact line by line, keep the text form
        if "\n" in body.strip():
            lines = []
            for line in body.splitlines():
                try:
                    lines.append(json.dumps(redact(json.loads(line)), ensure_ascii=False))
                except ValueError:
                    lines.append(line)
            return "\n".join(lines) + "\n"
        try:
            return redact(json.loads(body))
        except ValueError:
            return body
    if isinstance(body, (list, tuple)):  # opensearch-py's bulk: a list of dicts, sent as NDJSON
        return "".join(json.dumps(redact(b), ensure_ascii=False) + "\n" for b in body)
    return redact(body)


class Recorder:
    """Appends exchanges to one JSONL file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0

    def record(self, method: str, path: str, params: dict[str, Any] | None, body: Any, status: Any,
               response: Any, ms: float) -> None:
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "pid": os.getpid(), "method": method.upper(), "path": path,
                     "params": {k: str(v) for k, v in (params or {}).items()},
                     "body": _body_for_record(body), "status": status,
                     "response": redact(response) if isinstance(response, (dict, list)) else response,
                     "ms": round(ms, 2)}
            line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
            with open(self.path, "a", encoding="utf-8") as fh:
                try:
                    import fcntl

                    fcntl.flock(fh, fcntl.LOCK_EX)
                except (ImportError, OSError):  # pragma: no cover - non-POSIX
                    pass
                fh.write(line)


_active: Recorder | None = None
_active_lock = threading.Lock()


def start_recording(path: Path | str) -> Recorder:
    """Record every request of every client from now on (replaces an earlier recorder)."""
    global _active
    with _active_lock:
        _active = Recorder(path)
        return _active


def stop_recording() -> None:
    global _active
    with _active_lock:
        _active = None


def active_recorder() -> Recorder | None:
    """The recorder in force: the one started in-process, else ``OSKIT_RECORD_REQUESTS`` when set."""
    global _active
    if _active is not None:
        return _active
    path = os.environ.get(ENV_VAR)
    if path:
        with _active_lock:
            if _active is None or _active.path != Path(path):
                _active = Recorder(path)
            return _active
    return None

"""The model server is a second dependency of the cluster: which endpoints its remote models call, and
whether they answer.

A remote model's connector calls an HTTP endpoint (``oskit serve`` for the default project). When that
endpoint is down the cluster still shows the model DEPLOYED and answers every document or query with
``Error communicating with remote model: … Connection refused``. :func:`remote_models` reads the
deployed remote models and their endpoints from the cluster; :func:`unreachable` tries a TCP connection
to each from this machine; :func:`explain` turns that into one message naming the model, its endpoint
and the fix.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from kit.cluster.client import Client
from kit.cluster.desired import parse_marker
from kit.errors import ClusterError

__all__ = ["FIX", "RemoteModel", "explain", "is_remote_model_error", "probe_url", "remote_models", "shown_url",
           "unreachable"]

FIX = "start `oskit serve` or set OSKIT_MODEL_SERVER_URL (then `oskit apply`)"

# What ML Commons (and the node) say when a connector could not reach its endpoint or was refused.
_MARKERS = ("error communicating with remote model", "remote service returned error status 50",
            "connection refused", "connection reset", "all connection attempts failed")


@dataclass
class RemoteModel:
    name: str  # the project's logical name when the kit created the model, else the model's name
    model_id: str
    url: str  # the connector's predict URL


def shown_url(url: str) -> str:
    """The endpoint as printed: no credentials, no query string (where an API key could travel)."""
    from kit.cluster.client import redact_url

    clean = redact_url(url)
    return clean.split("?", 1)[0] + ("?…" if "?" in clean else "")


def is_remote_model_error(text: str) -> bool:
    """Whether an error text says a connector could not reach (or was refused by) its remote model."""
    low = text.lower()
    return any(m in low for m in _MARKERS)


def remote_models(client: Client) -> list[RemoteModel]:
    """Every DEPLOYED remote model with its connector's predict URL (standalone or inline connectors)."""
    try:
        hits = client.request("POST", "/_plugins/_ml/models/_search", body={
            "query": {"bool": {"must_not": [{"exists": {"field": "chunk_number"}}]}}, "size": 1000})
    except ClusterError:
        return []
    out: list[RemoteModel] = []
    connectors: dict[str, dict[str, Any]] = {}
    for hit in ((hits or {}).get("hits") or {}).get("hits") or []:
        src = hit.get("_source") or {}
        if src.get("algorithm") != "REMOTE" or src.get("model_state") not in ("DEPLOYED", "PARTIALLY_DEPLOYED"):
            continue
        connector = src.get("connector")
        cid = src.get("connector_id")
        if not isinstance(connector, dict) and cid:
            if cid not in connectors:
                try:
                    connectors[cid] = client.request("GET", f"/_plugins/_ml/connectors/{cid}") or {}
                except ClusterError:
                    connectors[cid] = {}
            connector = connectors[cid]
        actions = (connector or {}).get("actions") or []
        url = next((a.get("url") for a in actions if isinstance(a, dict) and
                    str(a.get("action_type", "")).lower() == "predict"), None)
        if not url:
            continue
        marker = parse_marker(src.get("description"))
        name = marker[1] if marker and marker[1] else str(src.get("name", hit.get("_id")))
        out.append(RemoteModel(name=name, model_id=str(hit.get("_id")), url=str(url)))
    return sorted(out, key=lambda m: m.name)


def probe_url(url: str, timeout: float = 2.0) -> str | None:
    """None when a TCP connection to the URL's host and port opens; else the reason (e.g. connection refused)."""
    try:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        return None  # a templated URL (${parameters.endpoint}) cannot be probed from here
    if not host or "$" in host:
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower() if not isinstance(exc, socket.timeout) else "timed out"


def unreachable(client: Client, timeout: float = 2.0) -> list[tuple[RemoteModel, str]]:
    """The deployed remote models whose endpoint does not accept a connection from this machine."""
    reasons: dict[tuple[str | None, int | None], str | None] = {}
    out = []
    for model in remote_models(client):
        try:
            key = (urlparse(model.url).hostname, urlparse(model.url).port)
        except ValueError:
            continue
        if key not in reasons:
            reasons[key] = probe_url(model.url, timeout)
        if reasons[key] is not None:
            out.append((model, str(reasons[key])))
    return out


def explain(client: Client) -> str:
    """One sentence naming each remote model whose endpoint is down, and the fix (for errors and hints)."""
    down = unreachable(client)
    if not down:
        return ("a remote model's endpoint failed (the model server is down or overloaded?): " + FIX)
    named = "; ".join(f"model '{m.name}' calls {shown_url(m.url)} ({reason})" for m, reason in down)
    return f"{named}: {FIX}"

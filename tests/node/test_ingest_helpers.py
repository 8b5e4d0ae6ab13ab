"""Shared by the pipeline HTTP tests: a tiny loopback model server and remote-model registration.

The model server speaks the contracts the kit's connectors use (``default.embedding`` list contract,
Bedrock-multimodal ``{"inputText", "inputImage"} → {"embedding"}``, and an OCR endpoint) and computes
small deterministic vectors from keywords, so tests can work out expected scores by hand.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import requests

WORDS = ("red", "blue", "shoe", "car")


def vec(text: str | None) -> list[float]:
    """Keyword counts over WORDS plus a constant, L2-normalised (4 + 1 = 5 dims)."""
    words = (text or "").lower().replace(",", " ").split()
    raw = [float(words.count(w)) for w in WORDS] + [0.5]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def image_text(b64: str) -> str:
    """Test 'images' are base64 of a short phrase; the fake OCR and CLIP read that phrase back."""
    return base64.b64decode(b64).decode()


class _Handler(BaseHTTPRequestHandler):
    calls: list[tuple[str, Any]] = []

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"null")
        type(self).calls.append((self.path, body))
        if self.path == "/embed-texts":
            out: Any = [vec(t) for t in body["input"]]
        elif self.path == "/clip/embed":
            text, image = body.get("inputText"), body.get("inputImage")
            text = None if text == "null" else text  # what ML Commons sends for a missing text
            image = None if image == "null" else image
            out = {"embedding": vec(" ".join(x for x in (text, image and image_text(image)) if x))}
        elif self.path == "/ocr":
            out = {"text": image_text(body["inputImage"]), "lines": []}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def model_server() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    handler = type("Handler", (_Handler,), {"calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", handler.calls
    finally:
        server.shutdown()
        server.server_close()


def ok(resp: requests.Response) -> Any:
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return resp.json()


def allow_loopback_connectors(url: str) -> None:
    ok(requests.put(f"{url}/_cluster/settings", json={"persistent": {
        "plugins.ml_commons.trusted_connector_endpoints_regex": [r"^http://127\.0\.0\.1:[0-9]+/.*$"],
        "plugins.ml_commons.connector.private_ip_enabled": True,
        "plugins.ml_commons.only_run_on_ml_node": False,
    }}, timeout=30))


def register_remote(url: str, name: str, endpoint: str, path: str, request_body: str,
                    pre: str | None = None, post: str | None = None) -> str:
    action: dict[str, Any] = {"action_type": "predict", "method": "POST", "url": "http://${parameters.endpoint}" + path,
                              "headers": {"content-type": "application/json"}, "request_body": request_body}
    if pre:
        action["pre_process_function"] = pre
    if post:
        action["post_process_function"] = post
    connector = ok(requests.post(f"{url}/_plugins/_ml/connectors/_create", json={
        "name": name, "version": 1, "protocol": "http", "parameters": {"endpoint": endpoint},
        "credential": {"key": "unused"},
        "client_config": {"connection_timeout": 10, "read_timeout": 10}, "actions": [action]}, timeout=30))
    reg = ok(requests.post(f"{url}/_plugins/_ml/models/_register", json={
        "name": name, "function_name": "remote", "connector_id": connector["connector_id"]}, timeout=30))
    model_id = reg["model_id"]
    ok(requests.post(f"{url}/_plugins/_ml/models/{model_id}/_deploy", timeout=30))
    return str(model_id)


def register_models(url: str, endpoint: str) -> dict[str, str]:
    """text (list contract), clip (Bedrock multimodal contract), ocr (raw response, for ml_inference)."""
    allow_loopback_connectors(url)
    return {
        "text": register_remote(url, "text", endpoint, "/embed-texts", '{"input": ${parameters.input}}',
                                "connector.pre_process.default.embedding", "connector.post_process.default.embedding"),
        "clip": register_remote(url, "clip", endpoint, "/clip/embed",
                                '{"inputText": "${parameters.inputText:-null}", "inputImage": "${parameters.inputImage:-null}"}',
                                "connector.pre_process.bedrock.multimodal_embedding",
                                "connector.post_process.bedrock.embedding"),
        "ocr": register_remote(url, "ocr", endpoint, "/ocr", '{"inputImage": "${parameters.inputImage}"}'),
    }

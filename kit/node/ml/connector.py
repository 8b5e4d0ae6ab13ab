"""Remote models: connector validation and execution over HTTP, as ML Commons does it.

Follows ``MLCreateConnectorInput``/``HttpConnector``/``ConnectorAction`` (validation),
``RemoteConnectorExecutor``/``ConnectorUtils``/``HttpJsonConnectorExecutor`` (parameter merge, pre-process,
payload templating, docs-per-call rule), ``MLValidatableAsyncHttpClient`` (private-IP check at call time)
and ``MLSdkAsyncHttpResponseHandler`` (remote error mapping). Painless pre/post-process scripts are not
supported: they are refused when the connector is created, naming the feature.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from kit.node.errors import ApiError
from kit.node.ml.common import MLSettings, iae, status_error
from kit.node.ml.templating import (
    SubstitutionLoop,
    escape_json,
    fill_null_parameters,
    gson_json,
    is_json,
    is_json_or_ndjson,
    parameter_map,
    parse_to_string_parameters,
    substitute,
    unfilled_placeholders,
)

__all__ = [
    "ACTION_TYPES",
    "ClientPool",
    "close_clients",
    "POST_PROCESS",
    "PRE_PROCESS",
    "execute_predict",
    "public_connector",
    "validate_connector",
]

log = logging.getLogger(__name__)

VALID_PROTOCOLS = ["aws_sigv4", "http", "mcp_sse", "mcp_streamable_http"]
ACTION_TYPES = ["PREDICT", "EXECUTE", "BATCH_PREDICT", "CANCEL_BATCH_PREDICT", "BATCH_PREDICT_STATUS"]
REMOTE_SERVICE_ERROR = "Error from remote service: "
# AbstractConnector.BLOCKED_DYNAMIC_HEADERS: these may not take ${parameters.*} values.
_BLOCKED_DYNAMIC_HEADERS = {
    "authorization", "proxy-authorization", "cookie", "x-amz-security-token", "x-api-key", "x-forwarded-for",
    "x-real-ip", "x-originating-ip", "host", "x-forwarded-host", "x-forwarded-server", "forwarded",
}
_PARAM_IN_HEADER = re.compile(r"\$\{parameters\.")

Docs = list[str | None]


def _docs_to_input(docs: Docs) -> dict[str, Any]:
    return {"input": docs}


def _docs_to_texts(docs: Docs) -> dict[str, Any]:
    return {"texts": docs}


def _docs_to_bedrock(docs: Docs) -> dict[str, Any]:
    return {"inputText": docs[0]}


def _docs_to_multimodal(docs: Docs) -> dict[str, Any]:
    if len(docs) == 0 or (len(docs) == 1 and docs[0] is None):
        raise iae("No input text or image provided")
    out: dict[str, Any] = {"inputText": docs[0]}
    if len(docs) > 1:
        out["inputImage"] = docs[1]
    return out


def _docs_to_cohere_images(docs: Docs) -> dict[str, Any]:
    if not docs or docs[0] is None:
        raise iae("No image provided")
    return {"images": docs}


def _unsupported_pre(name: str) -> Callable[[Docs], dict[str, Any]]:
    def fn(docs: Docs) -> dict[str, Any]:
        raise iae(f"[{name}] pre-process function is not supported by the oskit embedded node for text_docs input")
    return fn


# name → (first version, text_docs → parameters). MLPreProcessFunction.
PRE_PROCESS: dict[str, tuple[tuple[int, int, int], Callable[[Docs], dict[str, Any]]]] = {
    "connector.pre_process.openai.embedding": ((2, 9, 0), _docs_to_input),
    "connector.pre_process.cohere.embedding": ((2, 9, 0), _docs_to_texts),
    "connector.pre_process.default.embedding": ((2, 11, 0), _docs_to_input),
    "connector.pre_process.bedrock.embedding": ((2, 12, 0), _docs_to_bedrock),
    "connector.pre_process.bedrock.multimodal_embedding": ((2, 16, 0), _docs_to_multimodal),
    "connector.pre_process.cohere.multimodal_embedding": ((2, 19, 0), _docs_to_cohere_images),
    "connector.pre_process.cohere.rerank": ((2, 12, 0), _unsupported_pre("connector.pre_process.cohere.rerank")),
    "connector.pre_process.bedrock.rerank": ((2, 15, 0), _unsupported_pre("connector.pre_process.bedrock.rerank")),
    "connector.pre_process.default.rerank": ((2, 15, 0), _unsupported_pre("connector.pre_process.default.rerank")),
}
for _nova in ("embedding", "text_embedding", "image_embedding", "video_embedding", "audio_embedding"):
    _n = f"connector.pre_process.bedrock.nova.{_nova}"
    PRE_PROCESS[_n] = ((3, 3, 0), _unsupported_pre(_n))

# name → (first version, default JSONPath, shape of the filtered value: "list" of vectors / "single" vector).
POST_PROCESS: dict[str, tuple[tuple[int, int, int], str, str]] = {
    "connector.post_process.openai.embedding": ((2, 9, 0), "$.data[*].embedding", "list"),
    "connector.post_process.cohere.embedding": ((2, 9, 0), "$.embeddings", "list"),
    "connector.post_process.default.embedding": ((2, 11, 0), "$[*]", "list"),
    "connector.post_process.bedrock.embedding": ((2, 12, 0), "$.embedding", "single"),
    "connector.post_process.cohere_v2.embedding.float": ((3, 0, 0), "$.embeddings.float", "list"),
    "connector.post_process.cohere_v2.embedding.int8": ((3, 0, 0), "$.embeddings.int8", "list"),
    "connector.post_process.cohere_v2.embedding.uint8": ((3, 0, 0), "$.embeddings.uint8", "list"),
    "connector.post_process.cohere_v2.embedding.binary": ((3, 0, 0), "$.embeddings.binary", "list"),
    "connector.post_process.cohere_v2.embedding.ubinary": ((3, 0, 0), "$.embeddings.ubinary", "list"),
    "connector.post_process.bedrock_v2.embedding.float": ((3, 0, 0), "$.embeddingsByType.float", "single"),
    "connector.post_process.bedrock_v2.embedding.binary": ((3, 0, 0), "$.embeddingsByType.binary", "single"),
    "connector.post_process.bedrock.nova.embedding": ((3, 3, 0), "$.embeddings[*].embedding", "list"),
    "connector.post_process.cohere.rerank": ((2, 12, 0), "$.results", "unsupported"),
    "connector.post_process.bedrock.rerank": ((2, 15, 0), "$.results", "unsupported"),
    "connector.post_process.default.rerank": ((2, 15, 0), "$[*]", "unsupported"),
    "connector.post_process.bedrock.batch_job_arn": ((2, 17, 0), "$", "unsupported"),
    "connector.post_process.mlcommons.passthrough": ((3, 1, 0), "$", "unsupported"),
}
# MLResultDataType, in enum order (parseMLResultDataTypeFromResponseFilter picks the first ".NAME" match).
_DATA_TYPES = ["FLOAT32", "FLOAT16", "FLOAT64", "UINT8", "INT64", "INT32", "INT8", "STRING", "BOOLEAN", "UNKNOWN"]


def _builtin(name: str | None, table: dict[str, Any], version: tuple[int, int, int]) -> bool:
    return name is not None and name in table and version >= table[name][0]


# --------------------------------------------------------------------------------------------- validation

def validate_connector(body: dict[str, Any], settings: MLSettings, *, update: bool = False,
                       existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check a create (or update) request and return the document to store (credentials included)."""
    if not isinstance(body, dict):
        raise iae("Connector body must be a JSON object")
    # MLCreateConnectorInput.parse skips unknown fields.
    if any(k in body for k in ("access_mode", "backend_roles", "add_all_backend_roles")) and not settings.flag(
            "connector_access_control_enabled"):
        raise iae("You cannot specify connector access control parameters because the Security plugin or "
                  "connector access control is disabled on your cluster.")
    if update:
        if existing is None:
            raise status_error(404, "Failed to find connector")
        doc = json.loads(json.dumps(existing))
        for field in ("name", "description", "version", "protocol"):
            if body.get(field) is not None:
                doc[field] = str(body[field]) if field == "version" else body[field]
        if body.get("parameters"):
            doc.setdefault("parameters", {}).update(parameter_map(body["parameters"]))
        if body.get("credential"):
            doc["credential"] = parameter_map(body["credential"])
        if body.get("actions") is not None:
            doc["actions"] = body["actions"]
        if body.get("client_config") is not None:
            doc["client_config"] = body["client_config"]
    else:
        if body.get("name") is None:
            raise iae("Connector name is null")
        if body.get("version") is None:
            raise iae("Connector version is null")
        if body.get("protocol") is None:
            raise iae("Connector protocol is null")
        doc = {
            "name": body["name"],
            "version": str(body["version"]),
            "description": body.get("description"),
            "protocol": body["protocol"],
            "parameters": parameter_map(body.get("parameters")),
            "credential": parameter_map(body.get("credential")),
            "actions": body.get("actions"),
            "client_config": body.get("client_config"),
        }
    protocol = doc["protocol"]
    if protocol in ("mcp_sse", "mcp_streamable_http"):
        raise iae(f"[{protocol}] connectors (MCP) are not supported by the oskit embedded node")
    if not doc.get("credential") and not update:
        raise iae("Connector credential is null or empty list")
    if protocol not in VALID_PROTOCOLS:
        raise iae("Unsupported connector protocol. Please use one of " + "[" + ", ".join(VALID_PROTOCOLS) + "]")
    if protocol == "aws_sigv4":
        cred = doc.get("credential") or {}
        if "roleArn" in cred and "access_key" not in cred:
            raise iae("Connector credential roleArn is resolved only by Amazon OpenSearch Service; the oskit "
                      "embedded node needs access_key/secret_key")
        if not cred.get("access_key"):
            raise iae("Missing credential: access_key")
        if not cred.get("secret_key"):
            raise iae("Missing credential: secret_key")
    actions = doc.get("actions")
    if actions is not None:
        if not isinstance(actions, list):
            raise iae("actions must be a list")
        for action in actions:
            _validate_action(action, doc, settings)
    cc = doc.get("client_config")
    if cc is not None and not isinstance(cc, dict):
        raise iae("client_config must be an object")
    _validate_url(doc, settings)
    return doc


def _validate_action(action: Any, doc: dict[str, Any], settings: MLSettings) -> None:
    if not isinstance(action, dict):
        raise iae("Each connector action must be an object")
    at = action.get("action_type")
    if at is None:
        raise iae("action type can't be null")
    if str(at).upper() not in ACTION_TYPES:
        raise iae(f"Wrong Action Type of {at}")
    action["action_type"] = str(at).upper()  # ConnectorAction.ActionType: stored and shown upper case
    if action.get("url") is None:
        raise iae("url can't be null")
    if action.get("method") is None:
        raise iae("method can't be null")
    version = settings.version
    for key, table, kind in (("pre_process_function", PRE_PROCESS, "pre"),
                             ("post_process_function", POST_PROCESS, "post")):
        fn = action.get(key)
        if fn is None:
            continue
        if "${parameters." in str(fn):
            fn = _fill_process_function(doc.get("parameters") or {}, str(fn))
        if not _builtin(fn, table, version):
            known = sorted(n for n, spec in table.items() if version >= spec[0])
            raise iae(
                f"Custom {kind}-process function (Painless script) in {key} is not supported by the oskit "
                f"embedded node; use one of the built-in functions available in {'.'.join(map(str, version))}: "
                + ", ".join(known)
            )
    headers = action.get("headers") or {}
    if not isinstance(headers, dict):
        raise iae("headers must be an object")
    for name, value in headers.items():
        if value is not None and _PARAM_IN_HEADER.search(str(value)) and name.lower() in _BLOCKED_DYNAMIC_HEADERS:
            raise iae(f"Header '{name}' cannot use ${{parameters.*}} placeholders for security reasons. "
                      "Use ${credential.*} instead.")


def _validate_url(doc: dict[str, Any], settings: MLSettings) -> None:
    """``Connector.validateConnectorURL``: every action URL (after connector-parameter substitution)
    must fully match one trusted regex."""
    actions = doc.get("actions")
    if actions is None:
        raise iae("No actions configured for this connector")
    regexes = settings.strings("trusted_connector_endpoints_regex")
    for action in actions:
        url = substitute(str(action["url"]), doc.get("parameters") or {})
        _validate_resolved_endpoint(url, regexes)


def _validate_resolved_endpoint(url: str | None, regexes: list[str]) -> None:
    if not regexes:
        raise iae("Trusted connector endpoints regex is not configured. Please set "
                  "plugins.ml_commons.trusted_connector_endpoints_regex.")
    if url is None:
        raise iae("Resolved connector URL is null")
    for rx in regexes:
        try:
            if re.fullmatch(rx, url):
                return
        except re.error:
            continue
    raise iae("Connector URL is not matching the trusted connector endpoint regex")


# ConnectorClientConfig's defaults (ML Commons 2.19): a connector that has a client_config shows them all
CLIENT_CONFIG_DEFAULTS = {"max_connection": 30, "connection_timeout": 30000, "read_timeout": 30000,
                          "retry_backoff_millis": 200, "retry_timeout_seconds": 30, "max_retry_times": 0,
                          "retry_backoff_policy": "constant"}


def public_connector(doc: dict[str, Any]) -> dict[str, Any]:
    """A connector as the GET API and search hits show it: credentials never leave the node; a client_config
    with the defaults filled in (the stored document keeps what was sent, so timeouts mean what they meant)."""
    out = {k: v for k, v in doc.items() if k != "credential"}
    if isinstance(out.get("client_config"), dict):
        out["client_config"] = {**CLIENT_CONFIG_DEFAULTS, **out["client_config"]}
    return out


def _fill_process_function(params: dict[str, Any], fn: str) -> str:
    """``ConnectorUtils.fillProcessFunctionParameter``: values are Gson-encoded before substitution."""
    return substitute(fn, {k: gson_json(v) for k, v in params.items()}) or fn


# --------------------------------------------------------------------------------------------- execution

@dataclass
class RemoteInput:
    """Either ``text_docs`` (neural-search / ``_predict/text_embedding``) or ``parameters``."""

    text_docs: list[str | None] | None = None
    parameters: dict[str, str | None] | None = None
    algo_parameters: dict[str, str | None] | None = None


def _escape_params(params: dict[str, str | None]) -> dict[str, str | None]:
    """``ConnectorUtils.escapeRemoteInferenceInputData``."""
    no_escape = {k.strip() for k in (params.get("no_escape_params") or "").split(",") if k.strip()}
    out: dict[str, str | None] = {}
    for key, value in params.items():
        if value is None:
            out[key] = None
        elif is_json(value):
            out[key] = value
        elif key not in no_escape:
            out[key] = escape_json(value)
        else:
            out[key] = value
    return out


def _find_action(connector: dict[str, Any], action: str) -> dict[str, Any]:
    for a in connector.get("actions") or []:
        if str(a.get("action_type", "")).upper() == action.upper():
            return a
    raise iae(f"no {action} action found")


def _chunking(connector: dict[str, Any], action: dict[str, Any], n_docs: int,
              version: tuple[int, int, int]) -> int:
    """``RemoteConnectorExecutor.calculateChunkSize``: how many docs go into one HTTP call."""
    params = connector.get("parameters") or {}
    if "input_docs_processed_step_size" in params:
        try:
            step = int(str(params["input_docs_processed_step_size"]))
        except ValueError:
            raise iae("Invalid parameter: input_docs_processed_step_size. It must be positive integer.") from None
        if step <= 0:
            raise iae("Invalid parameter: input_docs_processed_step_size. It must be positive integer.")
        return step
    pre = action.get("pre_process_function")
    if pre is None:
        return max(n_docs, 1)
    if pre == "connector.pre_process.bedrock.embedding" or not _builtin(pre, PRE_PROCESS, version):
        return 1
    return max(n_docs, 1)


def execute_predict(connector: dict[str, Any], remote_input: RemoteInput, settings: MLSettings,
                    *, action_name: str = "PREDICT") -> list[dict[str, Any]]:
    """Run the connector's predict action; returns the ``inference_results`` list (one entry per HTTP call)."""
    action = _find_action(connector, action_name)
    if remote_input.text_docs is not None:
        docs = remote_input.text_docs
        step = _chunking(connector, action, len(docs), settings.version)
        results: list[dict[str, Any]] = []
        for start in range(0, len(docs), step):
            results.append(_invoke(connector, action, RemoteInput(text_docs=docs[start:start + step],
                                                                  algo_parameters=remote_input.algo_parameters),
                                   settings))
        return results
    return [_invoke(connector, action, remote_input, settings)]


def _invoke(connector: dict[str, Any], action: dict[str, Any], remote_input: RemoteInput,
            settings: MLSettings) -> dict[str, Any]:
    version = settings.version
    params: dict[str, str | None] = dict(connector.get("parameters") or {})
    input_params: dict[str, str | None] = {}
    if remote_input.parameters is not None:
        input_params = _escape_params(remote_input.parameters)
    params.update(input_params)
    if remote_input.algo_parameters:
        params.update(remote_input.algo_parameters)

    # ConnectorUtils.processInput
    pre = action.get("pre_process_function")
    if pre is None and remote_input.text_docs is not None:
        pre = "connector.pre_process.default.embedding"
    if pre is not None and "${parameters." in pre:
        pre = _fill_process_function(params, pre)
    if remote_input.text_docs is not None:
        if pre is None or not _builtin(pre, PRE_PROCESS, version):
            raise iae(f"Custom pre-process function {pre} (Painless) is not supported by the oskit embedded node")
        produced = PRE_PROCESS[pre][1](remote_input.text_docs)
        # convertScriptStringToJsonString: strings kept, anything else (lists, null) Gson-encoded.
        processed = {k: (v if isinstance(v, str) else gson_json(v)) for k, v in produced.items()}
        params.update(_escape_params(processed))
    elif remote_input.parameters is None:
        raise iae("pre_process_function not defined in connector")
    params.update(input_params)  # the request's own parameters always win

    payload = _create_payload(action, params)
    if str(params.get("skip_validating_missing_parameters") or "false").lower() != "true" and payload is not None:
        missing = unfilled_placeholders(payload)
        if "${parameters" in payload and missing:
            raise iae("Some parameter placeholder not filled in payload: " + ", ".join(missing))

    url = substitute(str(action["url"]), params) if params else str(action["url"])
    _validate_resolved_endpoint(url, settings.strings("trusted_connector_endpoints_regex"))
    headers = _headers(connector, action, params)
    method = str(action.get("method", "POST")).upper()
    if method not in ("POST", "GET", "PUT", "DELETE"):
        raise iae("unsupported http method")
    body = payload
    if method == "POST" and not body:
        raise iae("Content length is 0. Aborting request to remote model")
    parts = urlsplit(url)
    if not parts.hostname:
        raise iae("Encountered error when trying to create uri from endpoint in ml connector. Please update the "
                  "endpoint in connection configuration: ")
    _check_ip(parts.scheme, parts.hostname, parts.port, settings)
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    if connector.get("protocol") == "aws_sigv4":
        headers = _sigv4(connector, params, method, url, headers, body or "")

    status, text = _send(connector, method, url, headers, body, getattr(settings, "http", None))
    if status < 200 or status > 300:
        reason = (f"Remote service returned error status {status} with empty body" if not text.strip()
                  else REMOTE_SERVICE_ERROR + text)
        raise status_error(status, reason)
    if not text.strip():
        raise status_error(502, "Remote service returned empty response body")
    tensors = _process_output(action, text, params, version)
    return {"output": tensors, "status_code": status}


def _create_payload(action: dict[str, Any], params: dict[str, str | None]) -> str | None:
    """``HttpConnector.createPayload``."""
    template = action.get("request_body")
    if template is None:
        return params.get("http_body")
    payload = fill_null_parameters(params, str(template))
    parse_to_string_parameters(params)
    try:
        payload = substitute(payload, params) or ""
    except SubstitutionLoop as exc:
        raise ApiError(400, "illegal_state_exception", str(exc)) from None
    if not is_json_or_ndjson(payload):
        raise iae("Invalid payload: " + payload)
    return payload


def _headers(connector: dict[str, Any], action: dict[str, Any], params: dict[str, str | None]) -> dict[str, str]:
    cred = connector.get("credential") or {}
    out: dict[str, str] = {}
    for name, value in (action.get("headers") or {}).items():
        if value is None:
            continue
        v = substitute(str(value), cred, prefix="${credential.") or ""
        if "${parameters." in v:
            if name.lower() in _BLOCKED_DYNAMIC_HEADERS:
                raise iae(f"Header '{name}' cannot use ${{parameters.*}} placeholders for security reasons. "
                          "Use ${credential.*} instead.")
            v = substitute(v, params) or ""
            if "${parameters." in v:
                raise iae(f"Header '{name}' contains unresolved placeholder. Required parameter is missing.")
        out[str(name)] = v
    return out


def _check_ip(scheme: str, host: str, port: int | None, settings: MLSettings) -> None:
    """``MLValidatableAsyncHttpClient.validate``: protocol, port, then private addresses."""
    if scheme and scheme.lower() not in ("http", "https"):
        raise iae("Protocol is not http or https: " + scheme)
    if port is not None and not 0 <= port <= 65536:
        raise iae(f"Port out of range: {port}")
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        # InetAddress.getAllByName's UnknownHostException, rethrown as IllegalArgumentException.
        raise iae(f"{host}: {exc.strerror}") from None
    private = False
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(addr, ipaddress.IPv4Address):
            b = addr.packed
            if (b[0] == 10 or (b[0] == 172 and 16 <= b[1] <= 31) or (b[0] == 192 and b[1] == 168)
                    or (b[0] == 169 and b[1] == 254)):
                private = True
        # InetAddress isSiteLocal / isLoopback / isAnyLocal
        if addr.is_loopback or addr.is_unspecified or (
                isinstance(addr, ipaddress.IPv6Address) and addr in ipaddress.ip_network("fec0::/10")):
            private = True
    # 2.9–2.14 always refuse private hosts; 2.15 added connector.private_ip_enabled (ml-commons#2142).
    allowed = settings.version >= (2, 15, 0) and settings.flag("connector.private_ip_enabled")
    if private and not allowed:
        raise iae("Remote inference host name has private ip address: " + host)


def _client_timeouts(connector: dict[str, Any]) -> tuple[float, float, int, int, float]:
    cc = connector.get("client_config") or {}

    def num(key: str, default: float) -> float:
        try:
            return float(cc.get(key, default))
        except (TypeError, ValueError):
            raise iae(f"client_config.{key} must be a number") from None

    # Seconds, as documented and as the code reads them since 3.6 (ml-commons #4759/#4765).
    return (num("connection_timeout", 30), num("read_timeout", 30), int(num("max_retry_times", 0)),
            int(num("retry_backoff_millis", 200)), num("retry_timeout_seconds", 30))


class ClientPool:
    """Pooled HTTP clients, one per client_config (ML Commons keeps one async client per connector).

    Each node's ML service owns one and closes it on shutdown, so no connection outlives its node."""

    def __init__(self) -> None:
        self._clients: dict[tuple[float, float, int], Any] = {}
        self._lock = threading.Lock()
        _POOLS.add(self)

    def get(self, connect_t: float, read_t: float, max_conn: int) -> Any:
        import httpx

        key = (connect_t, read_t, max_conn)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = httpx.Client(
                    timeout=httpx.Timeout(connect=connect_t, read=read_t, write=read_t, pool=connect_t),
                    limits=httpx.Limits(max_connections=max_conn, max_keepalive_connections=max_conn),
                    trust_env=False,
                )
                self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


_POOLS: "weakref.WeakSet[ClientPool]" = weakref.WeakSet()
_DEFAULT_POOL = ClientPool()  # callers without a service (unit tests of execute_predict)


def close_clients() -> None:
    """Close every pool's connections (tests, before stopping a fake remote service); pools stay usable."""
    for pool in list(_POOLS):
        pool.close()


def _send(connector: dict[str, Any], method: str, url: str, headers: dict[str, str],
          body: str | None, pool: ClientPool | None = None) -> tuple[int, str]:
    import httpx

    connect_t, read_t, max_retry, backoff_ms, retry_timeout = _client_timeouts(connector)
    try:
        max_conn = int((connector.get("client_config") or {}).get("max_connection", 30))
    except (TypeError, ValueError):
        raise iae("client_config.max_connection must be an integer") from None
    client = (pool or _DEFAULT_POOL).get(connect_t, read_t, max(1, max_conn))
    deadline = time.monotonic() + retry_timeout
    attempt = 0
    while True:
        try:
            resp = client.request(method, url, headers=headers,
                                  content=body.encode("utf-8") if body is not None else None)
            status, text = resp.status_code, resp.text
        except httpx.HTTPError as exc:
            # MLSdkAsyncHttpResponseHandler.onError: no status yet → 500.
            message = str(exc) or type(exc).__name__
            if _retry(attempt, max_retry, deadline):
                attempt += 1
                time.sleep(backoff_ms / 1000)
                continue
            raise status_error(500, "Error communicating with remote model: " + message) from None
        # RetryableAction retries only throttling (429) answers.
        if status == 429 and _retry(attempt, max_retry, deadline):
            attempt += 1
            time.sleep(backoff_ms / 1000)
            continue
        return status, text


def _retry(attempt: int, max_retry: int, deadline: float) -> bool:
    if max_retry == 0:
        return False
    if max_retry > 0 and attempt >= max_retry:
        return False
    return time.monotonic() < deadline


def _sigv4(connector: dict[str, Any], params: dict[str, str | None], method: str, url: str,
           headers: dict[str, str], body: str) -> dict[str, str]:
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError:  # pragma: no cover - boto3 is an optional extra
        raise iae("aws_sigv4 connectors need the 'aws' extra (boto3) installed on the node") from None
    cred = connector.get("credential") or {}
    region = params.get("region") or cred.get("region")
    service = params.get("service_name") or cred.get("service_name")
    if not region or not service:
        raise iae("aws_sigv4 connector needs region and service_name in parameters or credential")
    creds = Credentials(str(cred["access_key"]), str(cred["secret_key"]), cred.get("session_token"))
    req = AWSRequest(method=method, url=url, data=body.encode("utf-8"), headers=dict(headers))
    SigV4Auth(creds, str(service), str(region)).add_auth(req)
    return dict(req.headers.items())


def _process_output(action: dict[str, Any], text: str, params: dict[str, str | None],
                    version: tuple[int, int, int]) -> list[dict[str, Any]]:
    """``ConnectorUtils.processOutput`` for built-in post-process functions or none."""
    from kit.node.jsonpath import JsonPathError, PathNotFound
    from kit.node.jsonpath import read as jp_read

    post = action.get("post_process_function")
    if post is not None and "${parameters." in post:
        post = _fill_process_function(params, post)
    response_filter = params.get("response_filter")
    if post is not None and _builtin(post, POST_PROCESS, version):
        _, default_path, shape = POST_PROCESS[post]
        if shape == "unsupported":
            raise iae(f"[{post}] post-process function is not supported by the oskit embedded node")
        path = response_filter if response_filter and response_filter.strip() else default_path
        try:
            filtered = jp_read(json.loads(text), path)
        except (ValueError, PathNotFound, JsonPathError) as exc:
            raise ApiError(500, "m_l_exception", "Fail to execute predict in aws connector",
                           caused_by={"type": "path_not_found_exception", "reason": str(exc)}) from None
        data_type = next((t for t in _DATA_TYPES if "." + t.lower() in path.lower()), None) or "FLOAT32"
        if filtered is None:
            raise iae("Can't run post process function as model output is null")
        if not isinstance(filtered, list):
            raise iae("Post process function input is not a List.")
        vectors: list[list[Any]]
        if shape == "list":
            if filtered:
                first = filtered[0]
                if not isinstance(first, list):
                    raise iae("The embedding should be a non-empty List containing List of Float values.")
                if not first or not _is_number(first[0]):
                    raise iae("The embedding should be a non-empty List containing Float values.")
            vectors = filtered
        else:
            if filtered and not _is_number(filtered[0]):
                raise iae("The embedding should be a non-empty List containing Float values.")
            vectors = [filtered]
        return [{"name": "sentence_embedding", "data_type": data_type, "shape": [len(v)], "data": v}
                for v in vectors]
    if post is not None:
        raise iae(f"Custom post-process function (Painless) is not supported by the oskit embedded node: {post}")
    body: Any = text
    if response_filter is not None:
        try:
            body = jp_read(json.loads(text), response_filter)
        except (ValueError, PathNotFound, JsonPathError):
            body = text  # tryReadResponseFilter falls back to the full response
    return [_response_tensor(body)]


def _response_tensor(response: Any) -> dict[str, Any]:
    """``AbstractConnector.parseResponse`` without a script: the raw response as ``dataAsMap``."""
    if isinstance(response, str) and is_json(response):
        parsed = json.loads(response)
        data = parsed if isinstance(parsed, dict) else {"response": parsed}
    elif isinstance(response, dict):
        data = response
    else:
        data = {"response": response}
    return {"name": "response", "dataAsMap": data}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

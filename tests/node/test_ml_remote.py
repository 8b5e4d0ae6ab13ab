"""Remote models through connectors, executed over HTTP against a loopback echo server: templating,
built-in pre/post-process functions, docs-per-call rule, raw responses, remote error mapping, the
trusted-endpoint and private-IP checks at predict time, timeouts and auto-deploy."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

ML = "/_plugins/_ml"


class Echo:
    """A tiny model service: records each request and answers per path."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        async def record(request: Request) -> Any:
            raw = await request.body()
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode()
            self.requests.append({"path": request.url.path, "body": body, "raw": raw.decode(),
                                  "headers": dict(request.headers)})
            return body

        async def titan(request: Request) -> Response:
            body = await record(request)
            text, image = body.get("inputText"), body.get("inputImage")
            return JSONResponse({"embedding": [float(len(text or "")), 1.0 if image else 0.0, 0.5],
                                 "inputTextTokenCount": 1})

        async def batch(request: Request) -> Response:
            body = await record(request)
            docs = body["input"] if isinstance(body, dict) else body
            return JSONResponse([[float(len(d)), float(i)] for i, d in enumerate(docs)])

        async def raw(request: Request) -> Response:
            body = await record(request)
            return JSONResponse({"echo": body, "n": 1})

        async def array(request: Request) -> Response:
            await record(request)
            return JSONResponse([1, 2, 3])

        async def status(request: Request) -> Response:
            await record(request)
            code = int(request.path_params["code"])
            text = "" if request.query_params.get("empty") else json.dumps({"message": f"boom {code}"})
            return Response(text, status_code=code, media_type="application/json")

        async def slow(request: Request) -> Response:
            await record(request)
            await asyncio.sleep(3)
            return JSONResponse({"embedding": [1.0]})

        return Starlette(routes=[
            Route("/titan", titan, methods=["POST"]), Route("/batch", batch, methods=["POST"]),
            Route("/raw", raw, methods=["POST", "PUT"]), Route("/array", array, methods=["POST"]),
            Route("/status/{code}", status, methods=["POST"]), Route("/slow", slow, methods=["POST"]),
        ])

    def start(self) -> None:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "echo server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread:
            self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def echo() -> Iterator[Echo]:
    from kit.node.ml.connector import close_clients

    server = Echo()
    server.start()
    try:
        yield server
    finally:
        close_clients()  # drop the node's keep-alive connections before the service goes away
        server.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kit.node.server import NodeServer

    server = NodeServer(tmp_path_factory.mktemp("ml-remote-node"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def c(node: Any, echo: Echo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.url, timeout=30) as client:
        regex = "^" + echo.url.replace(".", "\\.") + "/.*$"
        r = client.put("/_cluster/settings", json={"persistent": {
            "plugins.ml_commons.trusted_connector_endpoints_regex": [regex],
            "plugins.ml_commons.connector.private_ip_enabled": True}})
        assert r.status_code == 200, r.text
        echo.requests.clear()
        yield client
        client.put("/_cluster/settings", json={"persistent": {"plugins.ml_commons.*": None}})


def model(c: httpx.Client, url: str, *, request_body: str | None = None, pre: str | None = None,
          post: str | None = None, parameters: dict[str, Any] | None = None, method: str = "POST",
          headers: dict[str, str] | None = None, client_config: dict[str, Any] | None = None,
          credential: dict[str, str] | None = None) -> str:
    action: dict[str, Any] = {"action_type": "predict", "method": method, "url": url}
    if request_body is not None:
        action["request_body"] = request_body
    if pre:
        action["pre_process_function"] = pre
    if post:
        action["post_process_function"] = post
    if headers:
        action["headers"] = headers
    body: dict[str, Any] = {"name": "echo", "version": "1", "protocol": "http", "parameters": parameters or {},
                            "credential": credential or {"key": "secret-value"}, "actions": [action]}
    if client_config:
        body["client_config"] = client_config
    r = c.post(f"{ML}/connectors/_create", json=body)
    assert r.status_code == 200, r.text
    r = c.post(f"{ML}/models/_register", json={"name": f"echo-{time.monotonic_ns()}", "function_name": "remote",
                                              "connector_id": r.json()["connector_id"]})
    assert r.status_code == 200, r.text
    return str(r.json()["model_id"])


TITAN_BODY = '{"inputText": "${parameters.inputText:-null}", "inputImage": "${parameters.inputImage:-null}"}'
MM_PRE = "connector.pre_process.bedrock.multimodal_embedding"
BEDROCK_POST = "connector.post_process.bedrock.embedding"


def error(r: httpx.Response, status: int, type_: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == type_ and r.json()["status"] == status
    return str(r.json()["error"]["reason"])


def test_private_ip_is_refused_unless_enabled(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/titan", request_body=TITAN_BODY, pre=MM_PRE, post=BEDROCK_POST)
    c.put("/_cluster/settings", json={"persistent": {"plugins.ml_commons.connector.private_ip_enabled": None}})
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"inputText": "hi"}})
    assert error(r, 400, "illegal_argument_exception") == "Remote inference host name has private ip address: 127.0.0.1"
    assert echo.requests == []


def test_multimodal_titan_contract_and_auto_deploy(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/titan", request_body=TITAN_BODY, pre=MM_PRE, post=BEDROCK_POST,
                parameters={"input_docs_processed_step_size": 2})
    assert c.get(f"{ML}/models/{mid}").json()["model_state"] == "REGISTERED"
    r = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": ["a red bike", "aW1hZ2U="]})
    assert r.status_code == 200, r.text
    assert r.json() == {"inference_results": [{"output": [
        {"name": "sentence_embedding", "data_type": "FLOAT32", "shape": [3], "data": [10.0, 1.0, 0.5]}],
        "status_code": 200}]}
    assert echo.requests[-1]["body"] == {"inputText": "a red bike", "inputImage": "aW1hZ2U="}
    # remote models deploy themselves on first predict (model_auto_deploy.enable, 2.13+)
    assert c.get(f"{ML}/models/{mid}").json()["model_state"] == "DEPLOYED"
    # text only: the absent image becomes JSON null through "${parameters.inputImage:-null}"
    c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": ["only text"]})
    assert echo.requests[-1]["body"] == {"inputText": "only text", "inputImage": None}
    # parameters pass through untouched (and are JSON-escaped into the template)
    c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"inputText": 'say "hi"\n/é'}})
    assert echo.requests[-1]["body"] == {"inputText": 'say "hi"\n/é', "inputImage": None}


def test_null_text_doc_is_sent_as_the_string_null(c: httpx.Client, echo: Echo) -> None:
    # MultiModalConnectorPreProcessFunction + StringUtils.convertScriptStringToJsonString turn a null
    # text doc into gson.toJson(null) == "null", which fillNullParameters does not treat as absent.
    mid = model(c, echo.url + "/titan", request_body=TITAN_BODY, pre=MM_PRE, post=BEDROCK_POST,
                parameters={"input_docs_processed_step_size": 2})
    r = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": [None, "aW1n"]})
    assert r.status_code == 200, r.text
    assert echo.requests[-1]["body"] == {"inputText": "null", "inputImage": "aW1n"}
    r = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": [None]})
    assert error(r, 400, "illegal_argument_exception") == "No input text or image provided"


def test_docs_per_call_rule(c: httpx.Client, echo: Echo) -> None:
    batch_body = '{"input": ${parameters.input}}'
    docs = ["one", "three", "fives"]
    # default.embedding: all docs in one call, one inference result holding one tensor per doc
    mid = model(c, echo.url + "/batch", request_body=batch_body, pre="connector.pre_process.default.embedding",
                post="connector.post_process.default.embedding")
    out = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": docs}).json()["inference_results"]
    assert len(echo.requests) == 1 and echo.requests[0]["body"] == {"input": docs}
    assert [[t["data"] for t in res["output"]] for res in out] == [[[3.0, 0.0], [5.0, 1.0], [5.0, 2.0]]]
    # no pre-process at all: the default embedding pre-process, one call
    mid = model(c, echo.url + "/batch", request_body=batch_body, post="connector.post_process.default.embedding")
    echo.requests.clear()
    out = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": docs}).json()["inference_results"]
    assert len(echo.requests) == 1 and len(out) == 1 and len(out[0]["output"]) == 3
    # input_docs_processed_step_size: ceil(n/k) calls
    mid = model(c, echo.url + "/batch", request_body=batch_body, pre="connector.pre_process.default.embedding",
                post="connector.post_process.default.embedding", parameters={"input_docs_processed_step_size": 2})
    echo.requests.clear()
    out = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": docs}).json()["inference_results"]
    assert [r["body"]["input"] for r in echo.requests] == [["one", "three"], ["fives"]]
    assert [len(res["output"]) for res in out] == [2, 1]
    # bedrock.embedding: one call per doc
    mid = model(c, echo.url + "/titan", request_body='{"inputText": "${parameters.inputText}"}',
                pre="connector.pre_process.bedrock.embedding", post=BEDROCK_POST)
    echo.requests.clear()
    out = c.post(f"{ML}/_predict/text_embedding/{mid}", json={"text_docs": docs}).json()["inference_results"]
    assert [r["body"]["inputText"] for r in echo.requests] == docs
    assert [res["output"][0]["data"][0] for res in out] == [3.0, 5.0, 5.0]


def test_without_post_process_the_raw_response_comes_back(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/raw", request_body='{"q": "${parameters.q}", "n": ${parameters.n}}',
                parameters={"n": 7})
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"q": "hello"}})
    assert r.json() == {"inference_results": [{"output": [
        {"name": "response", "dataAsMap": {"echo": {"q": "hello", "n": 7}, "n": 1}}], "status_code": 200}]}
    mid = model(c, echo.url + "/array", request_body="{}")
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert r.json()["inference_results"][0]["output"] == [{"name": "response", "dataAsMap": {"response": [1, 2, 3]}}]
    # response_filter picks part of it
    mid = model(c, echo.url + "/raw", request_body='{"q": "x"}', parameters={"response_filter": "$.echo"})
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert r.json()["inference_results"][0]["output"] == [{"name": "response", "dataAsMap": {"q": "x"}}]


def test_templating_details(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/raw", request_body='{"a": "${parameters.a}", "p": "${parameters.prompt}"}',
                parameters={"prompt": "ctx=${parameters.a.toString()}"},
                headers={"x-key": "${credential.key}", "x-mode": "${parameters.mode}"})
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"a": 'q"uote', "mode": "fast"}})
    assert r.status_code == 200, r.text
    sent = echo.requests[-1]
    assert sent["body"] == {"a": 'q"uote', "p": 'ctx=q\\"uote'}
    assert sent["headers"]["x-key"] == "secret-value" and sent["headers"]["x-mode"] == "fast"
    assert sent["headers"]["content-type"] == "application/json"
    # a placeholder left unfilled is reported by name
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"mode": "x"}})
    assert error(r, 400, "illegal_argument_exception") == ("Some parameter placeholder not filled in "
                                                                  "payload: a, a.toString()")
    # ... unless validation is skipped (then the remote gets the raw placeholder)
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"mode": "x", "skip_validating_missing_parameters": "true"}})
    assert r.status_code == 200 and echo.requests[-1]["body"]["a"] == "${parameters.a}"
    # no request_body: http_body is sent as it is
    mid = model(c, echo.url + "/raw")
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"http_body": '{"raw": true}'}})
    assert echo.requests[-1]["body"] == {"raw": True}
    # invalid JSON after substitution
    mid = model(c, echo.url + "/raw", request_body='{"a": ${parameters.a}}')
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"a": "not json"}})
    assert error(r, 400, "illegal_argument_exception") == 'Invalid payload: {"a": not json}'


def test_remote_errors_keep_the_remote_status(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/status/503", request_body="{}")
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert error(r, 503, "status_exception") == 'Error from remote service: {"message": "boom 503"}'
    mid = model(c, echo.url + "/status/401?empty=1", request_body="{}")
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert error(r, 401, "status_exception") == "Remote service returned error status 401 with empty body"
    mid = model(c, echo.url + "/status/200?empty=1", request_body="{}")
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert error(r, 502, "status_exception") == "Remote service returned empty response body"
    # a post-process function that does not fit the response
    mid = model(c, echo.url + "/raw", request_body="{}", post="connector.post_process.default.embedding")
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert error(r, 400, "illegal_argument_exception") == (
        "The embedding should be a non-empty List containing List of Float values.")
    # a JSONPath that finds nothing fails the way the executor's catch-all does
    mid = model(c, echo.url + "/raw", request_body="{}", post=BEDROCK_POST)
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert error(r, 500, "m_l_exception") == "Fail to execute predict in aws connector"


def test_read_timeout_from_client_config(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/slow", request_body="{}", client_config={"read_timeout": 1, "connection_timeout": 1})
    t0 = time.monotonic()
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert time.monotonic() - t0 < 2.8
    assert error(r, 500, "status_exception").startswith("Error communicating with remote model: ")


def test_endpoint_checked_again_after_request_parameters(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, "${parameters.endpoint}/raw", request_body="{}", parameters={"endpoint": echo.url})
    assert c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}}).status_code == 200
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {"endpoint": "http://169.254.169.254"}})
    assert error(r, 400, "illegal_argument_exception") == "Connector URL is not matching the trusted connector endpoint regex"


def test_auto_deploy_can_be_switched_off(c: httpx.Client, echo: Echo) -> None:
    mid = model(c, echo.url + "/raw", request_body="{}")
    c.put("/_cluster/settings", json={"persistent": {"plugins.ml_commons.model_auto_deploy.enable": False}})
    r = c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}})
    assert error(r, 400, "illegal_argument_exception") == "Model not ready yet. Please deploy the model first."
    assert c.post(f"{ML}/models/{mid}/_deploy").json()["status"] == "COMPLETED"
    assert c.post(f"{ML}/models/{mid}/_predict", json={"parameters": {}}).status_code == 200


def test_engine_predict_entry_point(node: Any, c: httpx.Client, echo: Echo) -> None:
    """``engine.ml.predict`` — what neural-search processors and queries call — gives the REST body."""
    mid = model(c, echo.url + "/titan", request_body=TITAN_BODY, pre=MM_PRE, post=BEDROCK_POST,
                parameters={"input_docs_processed_step_size": 2})
    out = node.engine.ml.predict(mid, {"text_docs": ["abc"], "target_response": ["sentence_embedding"]})
    assert out["inference_results"][0]["output"][0]["data"] == [3.0, 0.0, 0.5]
    out = node.engine.ml.predict(mid, {"parameters": {"inputText": "abcd"}}, algorithm="remote")
    assert out["inference_results"][0]["output"][0]["data"] == [4.0, 0.0, 0.5]

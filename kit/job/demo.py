"""``oskit demo``: the whole product on one machine, in one process.

:func:`start_stack` starts the model server (uvicorn in a thread, the project's ``models/*.yaml``
``serve:`` blocks) and the embedded node, then applies the project. :func:`run_demo` adds a
generated sample set (plus any folder the user passes), example text / photo / OCR searches, the
evaluation and the search page. It reports through an ``events`` callback; the CLI prints.

Real CLIP weights need no code change: point ``models/clip.yaml``'s ``serve.open_clip`` at them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from kit.errors import KitError, NodeError, ServeError

__all__ = ["LocalStack", "ServerThread", "apply_project", "free_port", "run_demo", "start_stack", "write_samples"]

log = logging.getLogger("kit.job.demo")

Events = Callable[[str, dict[str, Any]], None]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (uvicorn binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """An ASGI app served by uvicorn in a daemon thread; ``start()`` returns once it accepts connections."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, name: str = "server") -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> str:
        import uvicorn

        # bind here, so the port is ours before uvicorn starts (no window for another process to take it)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ServeError(f"cannot listen on {self.host}:{self.port} for the {self.name}: {exc.strerror}",
                             hint="pick another port (--port)") from None
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"oskit-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServeError(f"the {self.name} on port {self.port} stopped while starting",
                                 hint="is the port in use? see the log above")
            if time.monotonic() > deadline:
                self.stop()
                raise ServeError(f"the {self.name} did not start within {timeout:.0f}s")
            time.sleep(0.02)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> "ServerThread":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_healthy(url: str, timeout: float) -> dict[str, Any]:
    """Poll the model server's /health until its models are loaded (200)."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{url}/health", timeout=5.0)
            if r.status_code == 200:
                body: dict[str, Any] = r.json()
                return body
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise ServeError(f"the model server at {url} was not ready within {timeout:.0f}s ({last})")


def apply_project(project_dir: Path, client: Any, *, model_server_url: str) -> Any:
    """Plan and apply the project against ``client``; connectors point at ``model_server_url``."""
    from kit.cluster.apply import apply
    from kit.cluster.plan import plan
    from kit.config import load_project

    environ = {**os.environ, "OSKIT_MODEL_SERVER_URL": model_server_url}
    return apply(plan(load_project(project_dir), client, environ=environ), client)


@dataclass
class LocalStack:
    """The node, the model server and a client connected to the node (after the project is applied)."""

    node: Any
    node_url: str
    model_server: ServerThread
    model_server_url: str
    client: Any
    applied: Any = None
    extra: list[ServerThread] = field(default_factory=list)

    def stop(self) -> None:
        for s in self.extra:
            s.stop()
        with contextlib.suppress(Exception):
            self.client.close()
        self.node.stop()
        self.model_server.stop()

    def __enter__(self) -> "LocalStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_stack(
    project_dir: str | Path = ".",
    data_dir: str | Path | None = None,
    *,
    device: str = "auto",
    health_timeout: float = 600.0,
    apply: bool = True,
) -> LocalStack:
    """Start the model server and the embedded node (free ports) and apply the project."""
    from kit.cluster.client import connect
    from kit.node.server import NodeServer
    from kit.serve.app import create_app as create_serve_app
    from kit.serve.config import load_serve_config

    project = Path(project_dir)
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="oskit-demo-"))
    config = load_serve_config(project / "models", device=device)
    serve = ServerThread(create_serve_app(config), name="model server")
    serve_url = serve.start(timeout=health_timeout)  # the lifespan loads the models before it listens
    try:
        _wait_healthy(serve_url, health_timeout)
        node = NodeServer(data / "node")
        try:
            node_url = node.start()
        except Exception as exc:
            if isinstance(exc, KitError):
                raise
            raise NodeError(f"the embedded node did not start: {exc}") from exc
    except BaseException:
        serve.stop()
        raise
    client = connect(node_url, timeout=120.0)
    stack = LocalStack(node=node, node_url=node_url, model_server=serve, model_server_url=serve_url, client=client)
    if apply:
        try:
            stack.applied = apply_project(project, client, model_server_url=serve_url)
        except BaseException:
            stack.stop()
            raise
    return stack


def write_samples(out_dir: str | Path, n_images: int, *, seed: int = 7) -> Path:
    """A generated sample set in ``out_dir``: ``images/``, ``metadata.jsonl``, ``queries.yaml``, ``query_images/``."""
    from kit.models.synth import make_eval_set, write_eval_set

    out = Path(out_dir)
    if (out / "queries.yaml").is_file() and (out / "images").is_dir():
        return out
    es = make_eval_set(n_images=n_images, seed=seed, n_image_queries=max(4, n_images // 4))
    return write_eval_set(es, out)


def _example_queries(queries: Sequence[Any]) -> dict[str, Any]:
    """One caption, one single word, one OCR serial and one phone photo from the sample set."""
    chosen: dict[str, Any] = {}
    for q in queries:
        if q.type == "text" and q.kind == "object" and "object" not in chosen:
            chosen["object"] = q
        elif q.type == "text" and q.kind == "word" and "word" not in chosen:
            chosen["word"] = q
        elif q.type == "ocr" and "ocr" not in chosen:
            chosen["ocr"] = q
        elif q.type == "image" and "image" not in chosen:
            chosen["image"] = q
    return chosen


def run_demo(
    *,
    project_dir: str | Path = ".",
    images: Sequence[str | Path] = (),
    n_images: int = 120,
    serve: bool = True,
    port: int = 8080,
    data_dir: str | Path | None = None,
    events: Events | None = None,
    stop: threading.Event | None = None,
    stack: LocalStack | None = None,
) -> dict[str, Any]:
    """Run the demo; returns a summary (``ingest``, ``searches``, ``eval``, ``url``).

    With ``serve`` it blocks serving the search page until ``stop`` is set or Ctrl-C. A running
    ``stack`` (project already applied) is used as it is and left running; otherwise one is started
    and stopped at the end.
    """
    from kit.job.evaluate import default_configs, evaluate, ingest_eval_set, load_queries
    from kit.job.ingest import ingest
    from kit.job.search import PromptTemplates, search
    from kit.job.similar import similar
    from kit.job.ui.app import create_app as create_ui_app

    emit = events or (lambda kind, data: None)
    project = Path(project_dir)
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="oskit-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    owned = stack is None
    if stack is None:
        emit("step", {"message": "starting the model server and the embedded node, applying the project"})
        t0 = time.perf_counter()
        stack = start_stack(project, data)
        emit("step", {"message": f"node {stack.node_url}, model server {stack.model_server_url} "
                                 f"(ready in {time.perf_counter() - t0:.1f}s)"})
    summary: dict[str, Any] = {"node": stack.node_url, "model_server": stack.model_server_url}
    ui: ServerThread | None = None
    try:
        samples = write_samples(data / "samples", n_images)
        emit("step", {"message": f"generated {n_images} sample images in {samples / 'images'}"})
        qs = load_queries(samples / "queries.yaml")
        res = ingest_eval_set(stack.client, qs, index="images", batch=8)
        emit("ingest", {"what": "samples", "result": res})
        summary["ingest"] = [res.to_json()]
        for folder in images:
            r = ingest(stack.client, [folder], index="images", report=data / "ingest-errors.jsonl")
            emit("ingest", {"what": str(folder), "result": r})
            summary["ingest"].append(r.to_json())

        from kit.job.search import OFFLINE_CLIP, SWITCH_HINT
        from kit.job.similar import vectors_maker

        if OFFLINE_CLIP in (vectors_maker(stack.client, "images") or ""):
            emit("step", {"message": f"the offline CLIP ({OFFLINE_CLIP}) was trained only on generated pictures of "
                                     "shapes, colours, textures, printed words and signs: the searches below ask "
                                     f"for those; {SWITCH_HINT}"})
        templates = PromptTemplates.for_project(project)
        ex = _example_queries(qs.queries)
        searches: list[tuple[str, Any]] = []
        if "object" in ex:
            searches.append((f'text: "{ex["object"].text}" (searched as "{templates.apply(ex["object"].text)}")',
                             search(stack.client, ex["object"].text, k=5, prompt_template=templates)))
        if "word" in ex:
            w = ex["word"].text
            searches.append((f'single word: "{w}" (searched as "{templates.apply(w)}")',
                             search(stack.client, w, k=5, prompt_template=templates)))
            searches.append((f'tags baseline: "{w}"', search(stack.client, w, k=5, mode="tags")))
        if "ocr" in ex:
            searches.append((f'text in the image: "{ex["ocr"].text}" (hybrid, field ocr_text)',
                             search(stack.client, ex["ocr"].text, k=5, mode="hybrid", field="ocr_text")))
        if "image" in ex:
            q = ex["image"]
            searches.append((f"phone photo of {q.source_id}: {q.image.name}",
                             similar(stack.client, q.image, k=5)))
        for title, result in searches:
            emit("search", {"title": title, "result": result})
        summary["searches"] = [{"title": t, **r.to_json()} for t, r in searches]

        emit("step", {"message": "evaluating tags vs vector vs hybrid on the sample queries"})
        report = evaluate(stack.client, qs, index="images", configs=default_configs(template=templates), ks=(10, 30))
        emit("eval", {"report": report})
        summary["eval"] = {k: v for k, v in report.to_json().items() if k != "queries"}

        ui = ServerThread(create_ui_app(stack.client, index="images", templates=templates), port=port, name="search page")
        url = ui.start()
        summary["url"] = url
        emit("ready", {"url": url, "node": stack.node_url, "serving": serve})
        if serve:
            waiter = stop or threading.Event()
            try:
                while not waiter.wait(0.5):
                    pass
            except KeyboardInterrupt:
                emit("step", {"message": "stopping"})
        return summary
    finally:
        if ui is not None:
            ui.stop()
        if owned:
            stack.stop()

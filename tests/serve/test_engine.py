"""The model engine (kit/serve/engine.py): one process holds CLIP and batches every worker's images.

In-process tests run the engine's threads on a Unix socket in a temp folder and workers as ASGI
apps pointed at it; the last tests run ``oskit serve --workers 2 --engine on`` for real."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest

from kit.errors import ServeError
from kit.serve.config import BatchingConfig, ClipConfig, ServeConfig, TagsConfig
from _serve_helpers import b64, free_port, image_bytes

ROOT = Path(__file__).resolve().parents[2]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@contextlib.contextmanager
def engine_at(config: ServeConfig, **kw: Any) -> Iterator[Any]:
    from kit.serve.engine import Engine

    engine = Engine(config, **kw)
    engine.load()
    with tempfile.TemporaryDirectory(prefix="oskit-engine-test-") as d:
        engine.start(os.path.join(d, "engine.sock"))
        try:
            yield engine
        finally:
            engine.stop()


@contextlib.asynccontextmanager
async def worker(config: ServeConfig, engine: Any) -> Any:
    from kit.serve.app import create_app

    app = create_app(config.model_copy(update={"engine": engine.path}))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve") as c:
            yield c


def gate(engine: Any) -> tuple[threading.Event, list[int]]:
    """Hold every image batch until the event is set; record batch sizes."""
    release, sizes = threading.Event(), []
    real = engine.clip.embed_items

    def held(items: list[Any]) -> list[Any]:
        sizes.append(len(items))
        release.wait(30)
        return real(items)

    engine.clip.embed_items = held
    return release, sizes


async def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def config(tiny_clip: str) -> ServeConfig:
    return ServeConfig(clip=ClipConfig(model=tiny_clip), tags=TagsConfig(), device="cpu", max_body_bytes=400_000)


@pytest.mark.parametrize("decode", ["cpu", "device"])
def test_vectors_through_the_engine_equal_the_engines_model_offline(config: ServeConfig, decode: str) -> None:
    from kit.serve.images import jpeg_job, preprocess

    config = config.model_copy(update={"clip": config.clip.model_copy(update={"decode": decode})})  # type: ignore[union-attr]
    jpg, png = image_bytes("red", (160, 120)), image_bytes("blue", (90, 90), fmt="PNG")
    with engine_at(config) as engine:
        clip = engine.clip
        size = clip.image_size

        async def go() -> None:
            async with worker(config, engine) as c:
                health = (await c.get("/health")).json()
                assert health["status"] == "ok"
                assert health["models"]["clip"]["decode"] == decode
                assert health["models"]["clip"]["engine"]["connected"] is True
                assert health["models"]["tags"]["size"] == 44
                for data in (jpg, png):  # a JPEG (tensor path when decode: device) and a PNG (pixels)
                    got = (await c.post("/clip/embed", json={"inputImage": b64(data)})).json()["embedding"]
                    job = jpeg_job(data, size) if decode == "device" else None
                    offline = clip.embed_items([job if job is not None else preprocess(data, size)])[0]
                    assert np.allclose(got, offline, atol=1e-6)
                text = (await c.post("/clip/embed", json={"inputText": "a red circle"})).json()["embedding"]
                assert np.allclose(text, clip.embed_texts(["a red circle"])[0], atol=1e-6)
                both = (await c.post("/clip/embed", json={"inputText": "a red circle", "inputImage": b64(jpg)})).json()
                image = (await c.post("/clip/embed", json={"inputImage": b64(jpg)})).json()["embedding"]
                s = np.add(text, image)
                assert np.allclose(both["embedding"], s / np.linalg.norm(s), atol=1e-6)
                many = (await c.post("/clip/embed-texts", json={"input": ["a red circle", "blue", "a tree"]})).json()
                assert np.allclose(many, clip.embed_texts(["a red circle", "blue", "a tree"]), atol=1e-6)
                # tags: the worker built its tagger from the engine's text vectors
                tags = (await c.post("/tags", json={"inputImage": b64(jpg)})).json()
                from kit.serve.tags import build_tagger, parse_vocabulary

                local = build_tagger(parse_vocabulary(config.tags.vocabulary), clip.embed_texts,  # type: ignore[union-attr]
                                     clip.logit_scale, config.tags.threshold, config.tags.top_k)  # type: ignore[union-attr]
                assert tags == json.loads(json.dumps(local.tag(np.asarray(image, dtype=np.float32))))

        run(go())


def test_errors_through_the_engine_are_the_direct_servers_errors(config: ServeConfig, serve_client: Any) -> None:
    small = config.model_copy(update={"max_image_pixels": 100 * 100,
                                      "clip": config.clip.model_copy(update={"decode": "device"})})  # type: ignore[union-attr]
    bodies = [
        {"inputImage": b64(b"hello, not an image")},
        {"inputImage": b64(image_bytes("red")[:300] + b"\xff\xd9")},  # truncated JPEG that still ends in EOI
        {"inputImage": b64(image_bytes("red", (200, 200)))},  # above max_image_pixels
        {"inputImage": "%%%"},
        {"inputText": 5},
        {},
    ]
    with engine_at(small) as engine:
        async def go() -> None:
            async with serve_client(small) as (direct, _), worker(small, engine) as remote:
                for body in bodies:
                    a = await direct.post("/clip/embed", json=body)
                    b = await remote.post("/clip/embed", json=body)
                    assert a.status_code >= 400 and (a.status_code, a.json()) == (b.status_code, b.json()), body

        run(go())


def test_the_engine_batches_the_images_of_every_worker(config: ServeConfig) -> None:
    jpg = image_bytes("green", (160, 120))
    with engine_at(config, streams=1) as engine:
        release, sizes = gate(engine)

        async def go() -> None:
            async with worker(config, engine) as a, worker(config, engine) as b:
                first = asyncio.ensure_future(a.post("/clip/embed", json={"inputImage": b64(jpg)}))
                await until(lambda: sizes == [1])  # the engine is busy with one image
                rest = [asyncio.ensure_future(c.post("/clip/embed", json={"inputImage": b64(jpg)}))
                        for c in (a, b) for _ in range(6)]
                await until(lambda: engine.images.items.qsize() == 12)
                release.set()
                answers = [await first] + [await f for f in rest]
                assert {r.status_code for r in answers} == {200}
                vectors = np.array([r.json()["embedding"] for r in answers])
                assert np.allclose(vectors, vectors[0], atol=1e-6)
                assert sizes == [1, 12]  # both workers' images in one batch
                text = (await a.get("/metrics")).text
                assert 'oskit_engine_batch_size_count{batcher="clip-image"} 2' in text
                assert 'oskit_engine_batch_size_sum{batcher="clip-image"} 13' in text
                assert 'oskit_engine_workers 2' in text
                helps = [line for line in text.splitlines() if line.startswith("# HELP ")]
                assert len(helps) == len(set(helps))  # one family per name: valid exposition

        run(go())


def _queue_of(config: ServeConfig, max_queue: int) -> ServeConfig:
    return config.model_copy(update={"clip": config.clip.model_copy(  # type: ignore[union-attr]
        update={"batching": BatchingConfig(max_batch=4, max_queue=max_queue)})})


def test_a_full_engine_answers_429_with_retry_after(config: ServeConfig) -> None:
    """The engine's own bound (the backstop: here the worker would admit more than the engine)."""
    jpg = image_bytes("green", (160, 120))
    tight = _queue_of(config, 2)
    with engine_at(tight, streams=1) as engine:
        release, sizes = gate(engine)

        async def go() -> None:
            async with worker(_queue_of(config, 8), engine) as c:
                first = asyncio.ensure_future(c.post("/clip/embed", json={"inputImage": b64(jpg)}))
                await until(lambda: sizes == [1])
                second = asyncio.ensure_future(c.post("/clip/embed", json={"inputImage": b64(jpg)}))
                await until(lambda: engine.images.inflight == 2)
                refused = await c.post("/clip/embed", json={"inputImage": b64(jpg)})
                assert refused.status_code == 429 and refused.json()["error"]["code"] == "overloaded"
                assert int(refused.headers["retry-after"]) >= 1
                assert "model engine" in refused.json()["error"]["message"]
                release.set()
                assert (await first).status_code == (await second).status_code == 200
                metrics = (await c.get("/metrics")).text
                assert 'oskit_engine_rejected_total{batcher="clip-image"} 1' in metrics

        run(go())


def test_a_full_worker_refuses_before_any_work(config: ServeConfig) -> None:
    """Each worker admits its share (max_queue) and refuses the next itself, before decoding it:
    the same 429 as a worker without an engine, and the engine never sees the request."""
    png = image_bytes("green", (160, 120), "PNG")  # the Pillow path: work the refusal must save
    with engine_at(_queue_of(config, 8), streams=1) as engine:
        release, sizes = gate(engine)

        async def go() -> None:
            async with worker(_queue_of(config, 2), engine) as c:
                first = asyncio.ensure_future(c.post("/clip/embed", json={"inputImage": b64(png)}))
                await until(lambda: sizes == [1])
                second = asyncio.ensure_future(c.post("/clip/embed", json={"inputImage": b64(png)}))
                await until(lambda: engine.images.inflight == 2)
                refused = await c.post("/clip/embed", json={"inputImage": b64(png)})
                assert refused.status_code == 429 and refused.json()["error"]["code"] == "overloaded"
                assert int(refused.headers["retry-after"]) >= 1
                assert refused.json()["error"]["message"].startswith("clip-image: 2 requests queued (max_queue 2)")
                assert engine.images.inflight == 2  # the engine never saw the third
                release.set()
                assert (await first).status_code == (await second).status_code == 200
                metrics = (await c.get("/metrics")).text
                assert 'oskit_serve_rejected_total{batcher="clip-image"} 1' in metrics
                assert 'oskit_engine_rejected_total{batcher="clip-image"}' not in metrics  # none counted

        run(go())


def test_without_its_engine_a_worker_answers_503(config: ServeConfig) -> None:
    jpg = image_bytes("green", (160, 120))
    with engine_at(config) as engine:
        async def go() -> None:
            async with worker(config, engine) as c:
                assert (await c.post("/clip/embed", json={"inputImage": b64(jpg)})).status_code == 200
                await asyncio.get_running_loop().run_in_executor(None, engine.stop)
                await asyncio.sleep(0.2)
                r = await c.post("/clip/embed", json={"inputImage": b64(jpg)})
                assert r.status_code == 503 and r.json()["error"]["code"] == "engine_unavailable"
                h = await c.get("/health")
                assert h.status_code == 503 and h.json()["status"] == "engine_unavailable"
                assert h.json()["models"]["clip"]["engine"]["connected"] is False

        run(go())


def test_pixel_frames_pass_under_a_small_body_limit(config: ServeConfig) -> None:
    """A Pillow-path image reaches the engine as S×S×3 pixels, which may be larger than the
    request body limit: the engine's frame limit allows for it (it closed the worker's connection)."""
    small = config.model_copy(update={"max_body_bytes": 1024, "tags": None})
    png = image_bytes("blue", (16, 16), "PNG")
    with engine_at(small) as engine:
        side = engine.clip.image_size
        assert side * side * 3 > small.max_body_bytes

        async def go() -> None:
            async with worker(small, engine) as c:
                for _ in range(2):  # the connection survives the first
                    r = await c.post("/clip/embed", json={"inputImage": b64(png)})
                    assert r.status_code == 200, r.text

        run(go())


def test_a_failed_engine_thread_finishes_the_engine(config: ServeConfig) -> None:
    with engine_at(config) as engine:
        assert not engine.finished.is_set()

        def broken(*_: Any) -> None:
            raise RuntimeError("boom")

        engine._run = broken  # the image batch thread's next batch raises out of its loop
        engine.images.items.put((None, 0, None))
        assert engine.finished.wait(10) and engine.failed


def test_frames_are_read_whole_across_chunks_and_stay_valid() -> None:
    """Many frames per recv, frames split over recvs, one larger than a chunk: every payload is
    returned whole, and earlier payloads (views into old chunks) keep their bytes."""
    import socket

    from kit.serve.engine import CHUNK, HEADER, _Conn

    rng = np.random.default_rng(0)
    sizes = [0, 5, 96_000, 130_000, CHUNK + 12_345, 3, 2_000_000, 2_500_000, 70]
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    wire = b"".join(HEADER.pack(i, 1, len(p)) + p for i, p in enumerate(payloads))
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        conn = _Conn(b)
        got: list[tuple[int, int, memoryview]] = []
        pos = 0
        while len(got) < len(payloads):
            if pos < len(wire):
                step = int(rng.integers(1, 60_000))  # below the socket buffer: this thread reads it next
                a.sendall(wire[pos:pos + step])
                pos += step
            while True:
                try:
                    conn.receive()
                except BlockingIOError:
                    break
                got.extend(conn.frames(limit=CHUNK * 2))
    assert [rid for rid, _, _ in got] == list(range(len(payloads)))
    assert [bytes(v) for _, _, v in got] == payloads


def test_a_worker_cannot_start_without_an_engine(config: ServeConfig, tmp_path: Path) -> None:
    from kit.serve import engine as engine_mod

    async def go() -> None:
        with pytest.raises(ServeError, match="cannot reach the model engine"):
            await engine_mod.connect_engine(str(tmp_path / "nobody.sock"), timeout=0.3)

    run(go())


def test_auto_engine_rule(config: ServeConfig) -> None:
    from kit.serve.workers import want_engine

    gpu = config.model_copy(update={"device": "cuda"})
    assert want_engine(gpu, 4, "auto") is True
    assert want_engine(gpu, 1, "auto") is False  # one worker: its own model is the engine
    assert want_engine(config, 4, "auto") is False  # cpu: each worker's model uses its own cores
    assert want_engine(config, 1, "on") is True
    assert want_engine(gpu, 4, "off") is False
    with pytest.raises(ServeError, match="needs a CLIP model"):
        want_engine(ServeConfig(device="cpu"), 2, "on")
    assert want_engine(ServeConfig(device="cuda"), 2, "auto") is False  # OCR-only: nothing to share


def test_engine_without_clip_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kit.cli import main

    spec = tmp_path / "ocr.yaml"
    spec.write_text(json.dumps({"serve": {"kind": "ocr"}}))
    with pytest.raises(SystemExit) as info:
        main(["serve", "--models", str(spec), "--engine", "on", "--workers", "2"])
    assert info.value.code == 1
    assert "--engine on needs a CLIP model" in capsys.readouterr().err


# --- `oskit serve --engine` for real: three processes ------------------------------------------


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    spec = tmp_path / "clip.yaml"
    spec.write_text(json.dumps({"serve": {"kind": "clip", "open_clip": {"model": "oskit-clip-tiny"}}}))
    port = free_port()
    log = tmp_path / "serve.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               TMPDIR=str(tmp_path))
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-c", "import sys; from kit.cli import main; main(sys.argv[1:])",
                                 "serve", "--models", str(spec), "--port", str(port), "--device", "cpu",
                                 "--workers", "2", "--engine", "on", *extra],
                                cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)  # its own process group: _reap reaches the engine and workers too
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """After a failed test: kill oskit serve's whole process group (a left-over engine or worker
    would hold its port and CPU for the rest of the suite) and collect the exit status."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _exit_code(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """``proc``'s exit code, or a failure that shows its log and its process group when it hangs."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        ps = subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:24,etime,cmd", "-g", str(proc.pid)],
                            capture_output=True, text=True).stdout
        pytest.fail(f"oskit serve did not exit within {timeout} s\n--- processes ---\n{ps}\n--- log ---\n{log.read_text()}")


def test_oskit_serve_engine_end_to_end(tmp_path: Path) -> None:
    proc, url, log = _start(tmp_path)
    try:
        health = httpx.get(url + "/health").json()
        engine = health["models"]["clip"]["engine"]
        assert engine["max_queue"] == 2 * 256  # two workers' worth
        assert list(tmp_path.glob("oskit-engine-*/engine.sock"))
        vectors = [httpx.post(url + "/clip/embed", json={"inputImage": b64(image_bytes("red"))}, timeout=30).json()["embedding"]
                   for _ in range(4)]  # new connections: the kernel may hand them to either worker
        assert np.allclose(vectors, vectors[0], atol=1e-6)  # one model, whichever worker answered
        proc.send_signal(signal.SIGTERM)
        assert _exit_code(proc, log, 60) == 0, log.read_text()
        assert not list(tmp_path.glob("oskit-engine-*"))  # the socket folder is removed
        assert "one model engine" in log.read_text()
        with contextlib.suppress(ProcessLookupError):  # the engine is gone with the server
            os.kill(engine["pid"], 0)
            pytest.fail("the engine outlived oskit serve")
    finally:
        _reap(proc)


def test_oskit_serve_stops_when_its_engine_dies(tmp_path: Path) -> None:
    proc, url, log = _start(tmp_path)
    try:
        pid = httpx.get(url + "/health").json()["models"]["clip"]["engine"]["pid"]
        os.kill(pid, signal.SIGKILL)
        assert _exit_code(proc, log, 60) == 1, log.read_text()
        text = log.read_text()
        assert "the model engine exited (code -9); the workers were stopped" in text
    finally:
        _reap(proc)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (nvJPEG in the engine)")
def test_engine_on_cuda_gives_the_offline_vectors(config: ServeConfig) -> None:
    from kit.serve.images import jpeg_job

    gpu = config.model_copy(update={"device": "cuda", "tags": None})
    jpgs = [image_bytes(c, (320, 240)) for c in ("red", "green", "blue", "yellow")]
    with engine_at(gpu, streams=2) as engine:
        assert engine.device_decode and engine.hello["device"].startswith("cuda")

        async def go() -> None:
            async with worker(gpu, engine) as c:
                answers = await asyncio.gather(*(c.post("/clip/embed", json={"inputImage": b64(j)}) for j in jpgs * 8))
                got = np.array([r.json()["embedding"] for r in answers])
                offline = np.array(engine.clip.embed_items([jpeg_job(j, engine.clip.image_size) for j in jpgs * 8]))
                assert np.allclose(got, offline, atol=2e-3)  # fp16 on the GPU: batch composition may differ

        run(go())

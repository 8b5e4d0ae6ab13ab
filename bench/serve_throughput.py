"""Served vs offline CLIP image-embedding throughput, in one run, on one machine.

What it measures (JPEG bytes → L2-normalised vectors, preprocessing ``oskit-image-v1``):

1. **offline**: the same model, the same ``oskit-image-v1`` implementation the server uses
   (Pillow in decode threads, or ``--decode device``: batched nvJPEG/torchvision decode + tensor
   resize on the model's device) and the same JPEG bytes, in-process: a thread pool prepares items
   while the model runs batches through the server's own batch function (``embed_items``). Every
   batch size in ``--offline-batches`` (× ``--offline-streams`` concurrent batch threads) is tried
   and the best is the baseline.
2. **time split**: ms/image for decode, resize and model (Pillow path: single-threaded; device
   path: one batch of ``--max-batch``, each stage synchronised), on a subset.
3. **served**: ``oskit serve`` in a subprocess on a real socket, ``--clients`` concurrent HTTP
   clients (in ``--client-procs`` processes) posting ``{"inputImage": b64}`` to ``/clip/embed``;
   images/s, p50/p95 latency, mean batch, and the served/offline ratio.
4. **lone-request latency, batching on vs off**: one client, sequential requests, against the
   server above (``--max-wait-ms``) and a second one with ``max_wait_ms: 0``; the p50 difference is
   what batching adds to a request that has nothing to batch with.

CPU (default): ``oskit-clip-tiny`` (the project's weights if present, else random).
GPU: ``--gpu`` = ViT-B-32 shapes with random weights on CUDA, larger batches, more images.

    python bench/serve_throughput.py --images 256
    python bench/serve_throughput.py --gpu --workers 8 --client-procs 4 --json /tmp/serve-gpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def report(result: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """Print a benchmark's result as JSON on stdout and, when asked, save it to ``path``."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        path.write_text(text + "\n")
    return result


def make_jpegs(n: int, size: tuple[int, int], seed: int = 0, threads: int = 4) -> list[bytes]:
    """Deterministic photo-like JPEGs (smooth gradients, shapes and noise), quality 90."""
    from PIL import Image, ImageDraw

    def one(i: int) -> bytes:
        rng = np.random.default_rng(seed + i)
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([(xx / w) * rng.uniform(80, 255), (yy / h) * rng.uniform(80, 255),
                         np.full_like(xx, rng.uniform(0, 255))], axis=-1)
        base += rng.normal(0, 12, base.shape)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            x1, y1 = x0 + int(rng.integers(20, w // 3)), y0 + int(rng.integers(20, h // 3))
            colour = tuple(int(c) for c in rng.integers(0, 255, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


# --- offline -------------------------------------------------------------------------------------


def prepare_item(data: bytes, size: int, device_decode: bool) -> Any:
    """What the server's request handler hands its batcher for ``data`` (see kit/serve/app.py)."""
    from kit.serve.images import jpeg_job, preprocess

    if device_decode:
        job = jpeg_job(data, size)
        if job is not None:
            return job
    return preprocess(data, size)


def offline_throughput(engine: Any, jpegs: list[bytes], batch: int, threads: int, device_decode: bool,
                       streams: int = 1) -> float:
    """Items prepared by ``threads`` threads; ``streams`` threads run ``embed_items`` batches
    (``streams`` 0: the model engine's :class:`Pipeline` — decode of the next batch overlapped
    with the model on this one — which is what the served engine runs on CUDA)."""
    size = engine.image_size
    if streams == 0:
        return pipelined_throughput(engine, jpegs, batch, threads, device_decode)
    with ThreadPoolExecutor(threads) as pool, ThreadPoolExecutor(streams) as runners:
        t0 = time.perf_counter()
        futures = [pool.submit(prepare_item, data, size, device_decode) for data in jpegs]

        def run(start: int) -> None:
            out = engine.embed_items([f.result() for f in futures[start:start + batch]])
            bad = [r for r in out if isinstance(r, BaseException)]
            if bad:
                raise bad[0]

        for f in [runners.submit(run, start) for start in range(0, len(futures), batch)]:
            f.result()
        _sync(engine)
        return len(jpegs) / (time.perf_counter() - t0)


def pipelined_throughput(engine: Any, jpegs: list[bytes], batch: int, threads: int, device_decode: bool) -> float:
    """The engine's two-stage :class:`kit.serve.engine.Pipeline` over batches of ``batch`` items."""
    from kit.serve.engine import Pipeline

    size = engine.image_size
    with ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(prepare_item, data, size, device_decode) for data in jpegs]
        starts = iter(range(0, len(futures), batch))
        bad: list[BaseException] = []

        def take() -> tuple[int, list[Any]] | None:
            start = next(starts, None)
            return None if start is None else (start, [f.result() for f in futures[start:start + batch]])

        def deliver(_: int, results: list[Any], __: float) -> None:
            bad.extend(r for r in results if isinstance(r, BaseException))

        Pipeline(engine).run(take, deliver)
        if bad:
            raise bad[0]
        return len(jpegs) / (time.perf_counter() - t0)


def _sync(engine: Any) -> None:
    if str(engine.loaded.device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def best_offline(engine: Any, jpegs: list[bytes], batches: list[int], streams: list[int], threads: int,
                 device_decode: bool, repeat: int = 2) -> tuple[float, dict[str, float], dict[str, float]]:
    """The best (batch size, streams) of ``batches`` × ``streams``, each measured ``repeat`` times:
    (best single measurement, best per configuration, median per configuration)."""
    tried: dict[str, float] = {}
    medians: dict[str, float] = {}
    for b in batches:
        for st in streams:
            offline_throughput(engine, jpegs[: min(len(jpegs), 2 * b * st)], b, threads, device_decode, st)  # warm
            runs = [offline_throughput(engine, jpegs, b, threads, device_decode, st) for _ in range(repeat)]
            key = f"batch{b}_pipeline" if st == 0 else f"batch{b}_streams{st}"
            tried[key] = max(runs)
            medians[key] = statistics.median(runs)
    return (max(tried.values()), {k: round(v, 1) for k, v in tried.items()},
            {k: round(v, 1) for k, v in medians.items()})


def offline_cpu_ms(engine: Any, jpegs: list[bytes], tried: dict[str, float], threads: int, device_decode: bool) -> float:
    """Process CPU ms per image of one more pass with the best offline configuration."""
    best = max(tried, key=lambda k: tried[k])
    b, st = (int(x) for x in best.replace("batch", "").replace("_pipeline", "_streams0").split("_streams"))
    c0 = time.process_time()
    offline_throughput(engine, jpegs, b, threads, device_decode, st)
    return 1000 * (time.process_time() - c0) / len(jpegs)


def time_split_device(engine: Any, jpegs: list[bytes], batch: int) -> dict[str, float]:
    """Device path: ms per image for batched decode (nvJPEG), crop/resize and model, each synchronised."""
    from kit.serve.images import decode_jpegs, jpeg_job, tensor_preprocess

    size = engine.image_size
    jobs = [jpeg_job(d, size) for d in jpegs]
    if any(j is None for j in jobs):
        raise SystemExit("time split: some bench JPEGs are not tensor-path JPEGs")
    t_prep = t_decode = t_resize = t_model = 0.0
    for _ in range(2):  # first pass warms up
        t_prep = t_decode = t_resize = t_model = 0.0
        for start in range(0, len(jpegs), batch):
            t0 = time.perf_counter()
            chunk = [jpeg_job(d, size) for d in jpegs[start:start + batch]]
            t1 = time.perf_counter()
            imgs = (engine.decoder.decode([j.data for j in chunk]) if engine.decoder is not None  # type: ignore[union-attr]
                    else decode_jpegs(chunk, engine.loaded.device))  # type: ignore[arg-type]
            _sync(engine)
            t2 = time.perf_counter()
            x = tensor_preprocess(chunk, imgs, size)  # type: ignore[arg-type]
            _sync(engine)
            t3 = time.perf_counter()
            engine.embed_uint8(x)
            t4 = time.perf_counter()
            t_prep += t1 - t0
            t_decode += t2 - t1
            t_resize += t3 - t2
            t_model += t4 - t3
    n = len(jpegs)
    total = t_prep + t_decode + t_resize + t_model
    return {"header_check_ms": 1000 * t_prep / n, "decode_ms": 1000 * t_decode / n, "resize_ms": 1000 * t_resize / n,
            "model_ms": 1000 * t_model / n, "header_check_share": t_prep / total, "decode_share": t_decode / total,
            "resize_share": t_resize / total, "model_share": t_model / total, "batch": batch}


def time_split(engine: Any, jpegs: list[bytes], batch: int) -> dict[str, float]:
    """Pillow path: single-threaded ms per image for decode, resize and model."""
    from PIL import Image

    from kit.serve.images import open_image, to_rgb

    size = engine.image_size
    t_decode = t_resize = t_model = 0.0
    pixels: list[np.ndarray] = []
    for data in jpegs:
        t0 = time.perf_counter()
        img = open_image(data, draft_size=size).image
        t1 = time.perf_counter()
        img = to_rgb(img)
        assert isinstance(img, Image.Image)
        w, h = img.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        arr = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC, box=box), dtype=np.uint8)
        t2 = time.perf_counter()
        pixels.append(arr)
        t_decode += t1 - t0
        t_resize += t2 - t1
    for start in range(0, len(pixels), batch):
        t0 = time.perf_counter()
        engine.embed_pixels(pixels[start:start + batch])
        _sync(engine)
        t_model += time.perf_counter() - t0
    n = len(jpegs)
    total = t_decode + t_resize + t_model
    return {"decode_ms": 1000 * t_decode / n, "resize_ms": 1000 * t_resize / n, "model_ms": 1000 * t_model / n,
            "decode_share": t_decode / total, "resize_share": t_resize / total, "model_share": t_model / total}


def offline_single_latency(engine: Any, jpegs: list[bytes], n: int, device_decode: bool) -> list[float]:
    out = []
    for data in jpegs[:n]:
        t0 = time.perf_counter()
        engine.embed_items([prepare_item(data, engine.image_size, device_decode)])
        _sync(engine)
        out.append(time.perf_counter() - t0)
    return out


# --- served --------------------------------------------------------------------------------------


def wait_ready(proc: subprocess.Popen[bytes], log: Any, url: str, name: str, timeout: float,
               also: Callable[[], bool] = lambda: True) -> None:
    """Poll ``url/health`` until 200 and ``also()``; a child that exits raises with its stderr tail."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{name} exited: " + log.read().decode(errors="replace")[-2000:])
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200 and also():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not become ready")


class Server:
    """``oskit serve`` in a subprocess on a free port, for a one-file model spec."""

    def __init__(self, args: argparse.Namespace, max_wait_ms: float, workers: int, clients: int,
                 engine_streams: int = 2, extra_env: dict[str, str] | None = None) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.tmp = tempfile.TemporaryDirectory(prefix="oskit-bench-")
        spec = {"serve": {"kind": "clip", "open_clip": {"model": args.model, "pretrained": args.pretrained},
                          "precision": args.precision,
                          "batching": {"max_batch": args.max_batch, "max_wait_ms": max_wait_ms,
                                       "max_queue": max(256, 4 * clients)}}}
        if args.decode != "auto":  # only when asked: the spec stays valid for servers without the key
            spec["serve"]["decode"] = args.decode
        if args.cuda_graphs != "auto":
            spec["serve"]["cuda_graphs"] = args.cuda_graphs
        self.spec = Path(self.tmp.name) / "clip.yaml"
        self.spec.write_text(json.dumps(spec))  # JSON is YAML
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        env.update(extra_env or {})
        if workers > 1 and not args.reuse_port:  # the old way: uvicorn's workers on one shared socket
            code = ("import os, sys, uvicorn; from kit.serve.app import CONFIG_ENV, config_to_env; "
                    "from kit.serve.config import load_serve_config; from kit.serve.workers import UVICORN_OPTIONS, share_cores; "
                    "os.environ[CONFIG_ENV] = config_to_env(share_cores(load_serve_config(sys.argv[1], device=sys.argv[2]), "
                    "int(sys.argv[4]))); uvicorn.run('kit.serve.app:create_app_from_env', factory=True, host='127.0.0.1', "
                    "port=int(sys.argv[3]), workers=int(sys.argv[4]), **UVICORN_OPTIONS)")
            cmd = [sys.executable, "-c", code, str(self.spec), args.device, str(self.port), str(workers)]
        else:  # `oskit serve` itself (several workers: one SO_REUSEPORT socket each, kit/serve/workers.py)
            cmd = [sys.executable, "-c", "import sys; from kit.cli import main; main(sys.argv[1:])", "serve",
                   "--models", str(self.spec), "--port", str(self.port), "--device", args.device,
                   "--workers", str(workers), "--engine", args.engine,
                   "--engine-streams", str(engine_streams)]
        threads = args.server_torch_threads or args.torch_threads
        if threads:  # by default the same intra-op threads as the offline run (torch reads it at import)
            env["OMP_NUM_THREADS"] = str(threads)
        # stderr to a file, not a pipe: nobody reads a pipe during the run, and once its 64 kB
        # buffer is full of access-log lines the server would block on logging.
        self.log = open(Path(self.tmp.name) / "serve.log", "w+b")
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def __enter__(self) -> "Server":
        wait_ready(self.proc, self.log, self.url, "oskit serve", 300, self._all_started)
        return self

    def _all_started(self) -> bool:
        """Every worker has finished its lifespan (else the first ones get all keep-alive connections)."""
        self.log.flush()
        text = Path(self.log.name).read_bytes().decode(errors="replace")
        return text.count("Application startup complete") >= self.workers

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.tmp.cleanup()


async def served_run(url: str, bodies: list[bytes], clients: int, kind: str = "raw") -> tuple[float, list[float], int]:
    """``clients`` keep-alive connections posting ``bodies`` to ``/clip/embed``.

    ``raw`` is a minimal HTTP/1.1 client on asyncio streams (pre-built requests, Content-Length
    responses): on one machine the client's own CPU use would otherwise be counted against the
    server. ``httpx`` uses httpx.AsyncClient instead.
    """
    latencies: list[float] = []
    errors = 0
    next_index = 0
    host, port = url.split("//", 1)[1].split(":")

    async def raw_worker() -> None:
        nonlocal next_index, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_index < len(bodies):
                i = next_index
                next_index += 1
                body = bodies[i]
                head = (f"POST /clip/embed HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                t0 = time.perf_counter()
                writer.write(head + body)
                await writer.drain()
                status = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if b" 200 " not in status:
                    errors += 1
        finally:
            writer.close()

    async def httpx_worker(c: Any) -> None:
        nonlocal next_index, errors
        while next_index < len(bodies):
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            r = await c.post("/clip/embed", content=bodies[i], headers={"content-type": "application/json"})
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors += 1

    t0 = time.perf_counter()
    if kind == "raw":
        await asyncio.gather(*(raw_worker() for _ in range(clients)))
    else:
        import httpx

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as c:
            await asyncio.gather(*(httpx_worker(c) for _ in range(clients)))
    wall = time.perf_counter() - t0
    return len(bodies) / wall, latencies, errors


def _client_proc(url: str, bodies: list[bytes], clients: int, start_at: float, kind: str) -> tuple[int, float, list[float], int]:
    """One client process: waits for the common start time, then runs ``clients`` connections."""
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.time()
    _, lat, errors = asyncio.run(served_run(url, bodies, clients, kind))
    return len(bodies), time.time() - t0 + (t0 - start_at if t0 > start_at else 0.0), lat, errors


def served_multi(url: str, bodies: list[bytes], clients: int, procs: int, kind: str) -> tuple[float, list[float], int]:
    """``clients`` connections spread over ``procs`` client processes (one Python client tops out
    at a few thousand requests/s, which would measure the client instead of the server)."""
    if procs <= 1:
        return asyncio.run(served_run(url, bodies, clients, kind))
    from concurrent.futures import ProcessPoolExecutor

    start_at = time.time() + 2.0 + len(bodies) / 20000
    per = [bodies[i::procs] for i in range(procs)]
    conns = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    with ProcessPoolExecutor(procs) as pool:
        results = list(pool.map(_client_proc, [url] * procs, per, conns, [start_at] * procs, [kind] * procs))
    total = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    return total / wall, [x for r in results for x in r[2]], sum(r[3] for r in results)


def _gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return str(torch.cuda.get_device_name())


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the client processes, once joined)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _proc_stats() -> dict[int, tuple[int, float]]:
    """``{pid: (parent pid, CPU seconds user + system)}`` of every process, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def _process_tree(root: int, stats: dict[int, tuple[int, float]]) -> set[int]:
    """``root`` and all its descendants."""
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, (pp, _) in stats.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return tree


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and all its descendants."""
    stats = _proc_stats()
    return sum(stats[p][1] for p in _process_tree(pid, stats) if p in stats)


def _thread_cpu(root: int, engine_pid: int | None) -> dict[str, float]:
    """CPU seconds of every thread of ``root``'s process tree, summed by ``role/thread name``
    (role: ``engine``, ``parent`` or ``worker``; thread names as ``top -H`` shows them)."""
    tick = os.sysconf("SC_CLK_TCK")
    tree = _process_tree(root, _proc_stats())
    out: dict[str, float] = {}
    for pid in tree:
        role = "engine" if pid == engine_pid else ("parent" if pid == root else "worker")
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            name = raw[raw.index(b"(") + 1: raw.rindex(b")")].decode(errors="replace")
            fields = raw.rsplit(b")", 1)[1].split()
            key = f"{role}/{name}"
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _engine_pid(url: str) -> int | None:
    import httpx

    try:
        clip = httpx.get(url + "/health", timeout=10).json().get("models", {}).get("clip", {})
        return int(clip.get("engine", {}).get("pid")) if clip.get("engine") else None
    except (httpx.HTTPError, ValueError, TypeError):
        return None


def _batch_stats(url: str) -> dict[str, float]:
    """Sums and counts of the image batches' sizes (and, with an engine, seconds) from one
    ``/metrics`` read: the engine's families when present (every worker's batches), else the
    answering worker's own. ``engine`` is 1.0 when they are the engine's."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=30).text
    engine = "oskit_engine_batch_size_count" in text
    family = "oskit_engine_batch" if engine else "oskit_serve_batch"
    out = {"size_sum": 0.0, "size_count": 0.0, "seconds_sum": 0.0, "seconds_count": 0.0, "engine": float(engine)}
    for line in text.splitlines():
        if 'batcher="clip-image"' not in line or not line.startswith(family):
            continue
        for kind in ("size", "seconds"):
            for stat in ("sum", "count"):
                if line.startswith(f"{family}_{kind}_{stat}"):
                    out[f"{kind}_{stat}"] = float(line.split()[-1])
    return out


def _served_step(args: argparse.Namespace, server: Server, bodies: list[bytes], w_count: int, st_count: int,
                 n_clients: int, offline: float) -> dict[str, Any]:
    """One served measurement: ``n_clients`` clients send the image set ``--served-repeat`` times."""
    asyncio.run(served_run(server.url, bodies[: min(len(bodies), 4 * n_clients)], n_clients, args.client))
    before = _batch_stats(server.url)
    engine_pid = _engine_pid(server.url)
    threads0 = _thread_cpu(server.proc.pid, engine_pid)
    cpu0, kids0, own0 = _tree_cpu(server.proc.pid), _children_cpu(), time.process_time()
    sent = bodies * args.served_repeat
    spy = None
    if args.py_spy and engine_pid:  # where the engine's Python spends the run (py-spy must be installed)
        out = args.py_spy / f"engine-{len(args.py_spy_done) + 1}-c{n_clients}.txt"
        args.py_spy_done.append(out)
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(engine_pid), "--duration", "4", "--rate", "200",
                                "--threads", "--nonblocking", "--format", "raw", "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    served, lat, errors = served_multi(server.url, sent, n_clients, args.client_procs, args.client)
    if spy is not None:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
    server_cpu = 1000 * (_tree_cpu(server.proc.pid) - cpu0) / len(sent)
    threads1 = _thread_cpu(server.proc.pid, engine_pid)
    per_thread = {k: 1000 * (v - threads0.get(k, 0.0)) / len(sent) for k, v in threads1.items()}
    roles: dict[str, float] = {}
    for k, v in per_thread.items():
        roles[k.split("/", 1)[0]] = roles.get(k.split("/", 1)[0], 0.0) + v
    top_threads = {k: round(v, 3) for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1])[:12] if v >= 0.005}
    # the clients: child processes (joined by now), or this process when they ran in it
    client_cpu = 1000 * ((_children_cpu() - kids0) if args.client_procs > 1
                         else (time.process_time() - own0)) / len(sent)
    after = _batch_stats(server.url)
    engine_on = bool(after["engine"])
    batches = after["size_count"] - before["size_count"]
    if w_count == 1 or engine_on:  # one worker, or the engine: every batch of the run
        mean_batch = (after["size_sum"] - before["size_sum"]) / batches if batches > 0 else None
    else:  # /metrics answers from one worker: its whole-life mean (warm-up included) as a sample
        mean_batch = after["size_sum"] / after["size_count"] if after["size_count"] else None
    batch_ms = (1000 * (after["seconds_sum"] - before["seconds_sum"]) / batches
                if engine_on and batches > 0 else None)
    return {"workers": w_count, "clients": n_clients, "engine": engine_on,
            "engine_streams": st_count if engine_on else None,
            "engine_batch_ms": round(batch_ms, 2) if batch_ms else None,
            "images_per_s": round(served, 1), "ratio": round(served / offline, 3),
            "errors": errors, "p50_ms": round(1000 * pct(lat, 50), 2), "p95_ms": round(1000 * pct(lat, 95), 2),
            "mean_batch": round(mean_batch, 2) if mean_batch else None,
            "server_cpu_ms_per_image": round(server_cpu, 3),
            "server_cpu_ms_per_image_by_role": {k: round(v, 3) for k, v in sorted(roles.items())},
            "server_cpu_ms_per_image_top_threads": top_threads,
            "client_cpu_ms_per_image": round(client_cpu, 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="ViT-B-32 shapes, random weights, CUDA, larger run")
    p.add_argument("--model", default=None)
    p.add_argument("--pretrained", default=None, help="checkpoint path/tag (default: project weights if present)")
    p.add_argument("--device", default=None)
    p.add_argument("--precision", default="auto")
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--image-size", default="640x480")
    p.add_argument("--clients", default="32", help="concurrent HTTP clients; a comma list measures each")
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--decode", choices=["auto", "cpu", "device"], default="auto",
                   help="JPEG decode for both sides: device = batched torchvision/nvJPEG (auto: device on CUDA)")
    p.add_argument("--cuda-graphs", choices=["auto", "on", "off"], default="auto",
                   help="the image tower as CUDA graphs, served and offline alike (auto: on with CUDA)")
    p.add_argument("--offline-batches", default=None, help="batch sizes tried offline (default: CPU 8,16,32; GPU 128,256)")
    p.add_argument("--offline-streams", default=None,
                   help="concurrent batch threads tried offline; 0 = the engine's decode/model pipeline "
                        "(default: CPU 1; GPU 0,1,2,4)")
    p.add_argument("--served-repeat", type=int, default=None,
                   help="send the image set this many times in the served run (default 1; --gpu: 2)")
    p.add_argument("--no-lone", action="store_true", help="skip the batching-off server (lone-request latency)")
    p.add_argument("--threads", type=int, default=None, help="offline decode threads (default: CPU count)")
    p.add_argument("--workers", default="1", help="oskit serve --workers; a comma list measures each (best wins)")
    p.add_argument("--engine", choices=["auto", "on", "off"], default="auto",
                   help="oskit serve --engine: one model-engine process batches every worker's images (auto: "
                        "on with several workers on a GPU)")
    p.add_argument("--offline-repeat", type=int, default=2,
                   help="measurements per offline configuration (the best counts; the median is reported too)")
    p.add_argument("--engine-streams", default="1", help="oskit serve --engine-streams; a comma list measures each")
    p.add_argument("--no-reuse-port", dest="reuse_port", action="store_false",
                   help="several workers through uvicorn's shared socket instead of one SO_REUSEPORT socket "
                        "per worker (what oskit serve --workers does)")
    p.add_argument("--client-procs", type=int, default=None, help="client processes (default 1; --gpu: 4)")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw", help="HTTP client for the served run")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads for BOTH the offline run and the server (default: torch's own)")
    p.add_argument("--server-torch-threads", type=int, default=None,
                   help="torch threads of the server's processes only (default: --torch-threads)")
    p.add_argument("--latency-requests", type=int, default=30)
    p.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                   help="sample the engine with py-spy for 4 s of each served step into DIR (raw stacks)")
    p.add_argument("--server-env", action="append", default=None, metavar="K=V;K=V",
                   help="a server variant: environment for its processes (repeat to compare variants side "
                        "by side in one run; the offline baseline uses this process's environment)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    args.py_spy_done = []
    # `timeout`/SIGTERM: exit through the context managers so the server subprocesses are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.gpu:
        args.model = args.model or "ViT-B-32"
        args.device = args.device or "cuda"
        args.images = args.images or 8192
        args.max_batch = args.max_batch or 256
        args.client_procs = args.client_procs or 4
        args.offline_batches = args.offline_batches or "128,256"
        args.served_repeat = args.served_repeat or 2
        args.offline_streams = args.offline_streams or "0,1,2,4"
    else:
        args.model = args.model or "oskit-clip-tiny"
        args.device = args.device or "cpu"
        args.images = args.images or 256
        args.max_batch = args.max_batch or 32
        args.offline_batches = args.offline_batches or "8,16,32"
        args.offline_streams = args.offline_streams or "1"
        weights = ROOT / "models" / "weights" / "oskit-clip-tiny.pt"
        if args.pretrained is None and args.model == "oskit-clip-tiny" and weights.is_file():
            args.pretrained = str(weights)
    args.client_procs = args.client_procs or 1
    args.served_repeat = args.served_repeat or 1
    threads = args.threads or os.cpu_count() or 2
    w, h = (int(x) for x in args.image_size.split("x"))

    from kit.serve.clip import ClipEngine, load_open_clip

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()
    print(f"making {args.images} JPEGs {w}x{h} …", file=sys.stderr)
    jpegs = make_jpegs(args.images, (w, h), threads=threads)
    precision = args.precision if args.precision != "auto" else ("fp16" if args.device.startswith("cuda") else "fp32")
    engine = ClipEngine(load_open_clip(args.model, args.pretrained, device=args.device, precision=precision))
    if args.cuda_graphs != "off" and args.device.startswith("cuda"):  # the served model's code path
        engine.enable_cuda_graphs(args.max_batch)
    device_decode = args.decode == "device" or (args.decode == "auto" and args.device.startswith("cuda"))
    if device_decode and args.device.startswith("cuda"):  # what load_clip_engine gives the server
        from kit.serve.clip import load_nvimgcodec

        engine.decoder = load_nvimgcodec(args.device)
    decoder = engine.decoder.describe() if engine.decoder is not None else (
        {"library": "torchvision"} if device_decode else {"library": "pillow"})
    batches = [int(x) for x in args.offline_batches.split(",")]
    streams = [int(x) for x in args.offline_streams.split(",")]
    print(f"offline: batches {batches} × streams {streams} …", file=sys.stderr)
    offline, offline_tried, offline_medians = best_offline(engine, jpegs, batches, streams, threads, device_decode,
                                                           args.offline_repeat)
    offline_cpu = offline_cpu_ms(engine, jpegs, offline_tried, threads, device_decode)
    subset = jpegs[: min(len(jpegs), 1024 if device_decode else 256)]
    split = (time_split_device(engine, subset, args.max_batch) if device_decode
             else time_split(engine, subset, args.max_batch))
    single = offline_single_latency(engine, jpegs, args.latency_requests, device_decode)
    engine_graphs = engine.graphs.buckets if engine.graphs is not None else None
    del engine
    if args.device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()

    bodies = [json.dumps({"inputText": None, "inputImage": base64.b64encode(j).decode()}).encode() for j in jpegs]
    worker_counts = [int(x) for x in str(args.workers).split(",")]
    client_counts = [int(x) for x in str(args.clients).split(",")]
    runs: list[dict[str, Any]] = []
    stream_counts = [int(x) for x in str(args.engine_streams).split(",")]
    lone_runs: list[dict[str, Any]] = []
    variants = [dict(kv.split("=", 1) for kv in v.split(";") if kv) for v in (args.server_env or [""])]
    for env_extra, w_count, st_count in [(e, w, st) for e in variants for w in worker_counts for st in stream_counts]:
        # one server for every client count (a start costs tens of seconds on a GPU machine)
        with Server(args, args.max_wait_ms, w_count, max(client_counts), st_count, env_extra) as server:
            for n_clients in client_counts:
                print(f"served: {w_count} worker(s), {n_clients} clients in {args.client_procs} process(es), engine "
                      f"{args.engine} ({st_count} streams) {env_extra or ''} …", file=sys.stderr)
                runs.append(_served_step(args, server, bodies, w_count, st_count, n_clients, offline))
                if env_extra:
                    runs[-1]["server_env"] = env_extra
                print(json.dumps(runs[-1]), file=sys.stderr)
            # a lone client on the same server: what one request costs end to end through it
            lone = [x for body in bodies[: args.latency_requests]
                    for x in asyncio.run(served_run(server.url, [body], 1, args.client))[1]]
            lone_runs.append({"workers": w_count, "engine_streams": st_count, "p50_ms": round(1000 * pct(lone, 50), 2),
                              "p95_ms": round(1000 * pct(lone, 95), 2)})
            print(json.dumps({"lone": lone_runs[-1]}), file=sys.stderr)
    best = max(runs, key=lambda r: r["images_per_s"])
    seq_on: list[float] = []
    seq_off: list[float] = []
    if not args.no_lone:
        # lone requests, batching on (max_wait) vs off (0): two one-worker servers up at once and
        # requests alternating between them, so load drift on a shared machine hits both alike
        print("lone-request latency, batching on vs off …", file=sys.stderr)
        with Server(args, args.max_wait_ms, 1, 1) as on, Server(args, 0.0, 1, 1) as off:
            for srv in (on, off):  # warm
                asyncio.run(served_run(srv.url, bodies[:5], 1, args.client))
            for body in bodies[: args.latency_requests]:
                for srv, out in ((on, seq_on), (off, seq_off)):
                    out.extend(asyncio.run(served_run(srv.url, [body], 1, args.client))[1])

    result = {
        "device": args.device, "model": args.model, "random_weights": not args.pretrained, "precision": precision,
        "images": args.images, "served_repeat": args.served_repeat, "image_size": f"{w}x{h}", "clients": best["clients"], "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms, "offline_threads": threads, "workers": best["workers"],
        "engine": best["engine"], "engine_streams": best["engine_streams"],
        "client_procs": args.client_procs, "client": args.client, "reuse_port": args.reuse_port,
        "decode": "device" if device_decode else "cpu", "decoder": decoder,
        "gpu": _gpu_name(args.device),
        "cuda_graphs": engine_graphs,
        "offline_images_per_s": round(offline, 1),
        "offline_tried": offline_tried,
        "offline_medians": offline_medians,
        "served_over_best_offline_median": round(best["images_per_s"] / max(offline_medians.values()), 3),
        "served_images_per_s": best["images_per_s"],
        "served_over_offline": best["ratio"],
        "served_errors": best["errors"],
        "served_latency_p50_ms": best["p50_ms"],
        "served_latency_p95_ms": best["p95_ms"],
        "served_mean_batch": best["mean_batch"],
        "served_runs": runs,
        "single_offline_p50_ms": round(1000 * pct(single, 50), 2),
        "lone_runs": lone_runs,
        "lone_served_p50_ms_batching_on": round(1000 * pct(seq_on, 50), 2) if seq_on else None,
        "lone_served_p50_ms_batching_off": round(1000 * pct(seq_off, 50), 2) if seq_off else None,
        "batching_added_p50_ms": round(1000 * (pct(seq_on, 50) - pct(seq_off, 50)), 2) if seq_off else None,
        "http_overhead_p50_ms": round(1000 * (pct(seq_off, 50) - pct(single, 50)), 2) if seq_off else None,
        "offline_cpu_ms_per_image": round(offline_cpu, 3),
        "time_split": {k: round(v, 3) for k, v in split.items()},
        "cpu_count": os.cpu_count(),
        "torch_threads": args.torch_threads,
        "server_torch_threads": args.server_torch_threads or args.torch_threads,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    return report(result, args.json)


if __name__ == "__main__":
    main()

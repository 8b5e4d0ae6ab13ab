"""The model server's own cost per request, with the model and the JPEG decode replaced by no-ops.

Same request bodies as ``serve_throughput.py`` (``{"inputText": null, "inputImage": <base64 of a
640×480 JPEG, ~125 kB>}``), same endpoint (``POST /clip/embed``), same app, batcher and uvicorn
settings as one ``oskit serve`` worker, with ``decode: device`` (what a GPU server runs: the JPEG
header check on the event loop, the pixels decoded inside the batch) — but the batch function
returns a constant vector per item instead of decoding and running CLIP. What is left is exactly
what limited the H100 run: HTTP, JSON, base64, the header check, futures, the batch-thread hop,
metrics and the response, per request.

Reported per server: requests/s and **server CPU µs per request** (user + system of the server
process, from /proc; steadier than wall time on a shared machine), plus the clients' CPU.

``--compare REF`` also runs the server code of git revision ``REF`` (``git archive REF kit`` into
a temporary folder), alternating rounds between the two, so both see the same machine load:

    python bench/serve_overhead.py --compare HEAD --requests 4000 --rounds 3

(``--compare-root DIR`` takes a folder holding another version's ``kit/`` instead, where git is absent.)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


# --- the server child -----------------------------------------------------------------------------


def _child(port: int, max_batch: int, dim: int) -> None:
    """One ``oskit serve`` worker with null stand-ins for the model (run with PYTHONPATH = a code root)."""
    from types import SimpleNamespace

    import numpy as np
    import uvicorn

    import kit.serve.app as app_mod
    import kit.serve.clip as clip_mod
    from kit.serve.config import BatchingConfig, ClipConfig, ServeConfig

    vec = np.zeros(dim, dtype=np.float32)
    vec[0] = 1.0

    class NullEngine:
        """What the batcher calls, at no cost: one unit vector per item."""

        def __init__(self, loaded: Any) -> None:
            self.loaded = loaded

        dim = property(lambda self: self.loaded.dim)
        image_size = property(lambda self: self.loaded.image_size)

        def embed_items(self, items: Any) -> list[Any]:
            return [vec] * len(items)

        def embed_texts(self, texts: Any) -> Any:
            return np.tile(vec, (len(texts), 1))

    def load(model: str, pretrained: Any, *, device: str = "cpu", precision: str = "fp32") -> Any:
        return SimpleNamespace(model=None, tokenizer=None, name="null", pretrained=None, device="cpu",
                               image_size=224, mean=(0, 0, 0), std=(1, 1, 1), dim=dim, dtype="float32")

    clip_mod.ClipEngine = NullEngine  # type: ignore[misc,assignment]
    clip_mod.load_open_clip = load  # type: ignore[assignment]
    clip_mod.resolve_device = lambda device: "cpu"  # type: ignore[assignment]
    clip_mod.check_device_decode = lambda device: None  # type: ignore[attr-defined]
    app_mod._check_device_decode = lambda device: None  # type: ignore[attr-defined]  # (older revisions)
    batching = BatchingConfig(max_batch=max_batch, max_wait_ms=5.0, max_queue=4096)
    config = ServeConfig(clip=ClipConfig(model="null", decode="device", batching=batching), device="cpu")
    app = app_mod.create_app(config)
    try:  # how this code's `oskit serve` runs uvicorn (older code: no access log, the rest default)
        from kit.serve.workers import UVICORN_OPTIONS as options
    except ImportError:
        options = {"access_log": False, "timeout_graceful_shutdown": 10}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **{**options, "log_level": "warning"}))
    server.run()


# --- the driver ------------------------------------------------------------------------------------


class NullServer:
    def __init__(self, code_root: Path, max_batch: int, dim: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        path = [str(code_root), str(ROOT / "bench"), os.environ.get("PYTHONPATH", "")]  # keep what was there
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(self.port),
                                      "--max-batch", str(max_batch), "--dim", str(dim)],
                                     cwd=str(code_root), env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def __enter__(self) -> "NullServer":
        from serve_throughput import wait_ready  # bench/ is on sys.path (above)

        wait_ready(self.proc, self.log, self.url, "null server", 120)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid``, threads included."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _check_response(url: str, body: bytes, dim: int) -> None:
    import httpx

    r = httpx.post(url + "/clip/embed", content=body, headers={"content-type": "application/json"}, timeout=30)
    got = r.json()
    if r.status_code != 200 or len(got.get("embedding", [])) != dim:
        raise RuntimeError(f"unexpected answer {r.status_code}: {r.text[:200]}")


def measure(server: NullServer, bodies: list[bytes], clients: int, procs: int) -> dict[str, float]:
    from serve_throughput import _children_cpu, served_multi

    kids0 = _children_cpu()
    cpu0 = _proc_cpu(server.proc.pid)
    rate, lat, errors = served_multi(server.url, bodies, clients, procs, "raw")
    cpu1 = _proc_cpu(server.proc.pid)
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    server_cpu = user + system
    if errors:
        raise RuntimeError(f"{errors} requests failed")
    n = len(bodies)
    return {"requests_per_s": round(rate, 1), "server_cpu_us_per_request": round(1e6 * server_cpu / n, 1),
            "server_system_us_per_request": round(1e6 * system / n, 1),
            "client_cpu_us_per_request": round(1e6 * (_children_cpu() - kids0) / n, 1) if procs > 1 else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--requests", type=int, default=4000, help="requests per round (the JPEG set is cycled)")
    p.add_argument("--images", type=int, default=64, help="distinct JPEGs (640x480) in the bodies")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--dim", type=int, default=512, help="vector size of the stand-in model (ViT-B-32: 512)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compare", default=None, help="also measure the server code of this git revision")
    p.add_argument("--compare-root", type=Path, default=None,
                   help="also measure the server code in this folder (holding kit/; e.g. where git is absent)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.max_batch, args.dim)
        return {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from serve_throughput import make_jpegs

    roots: dict[str, Path] = {"current": ROOT}
    tmp = tempfile.TemporaryDirectory(prefix="oskit-serve-overhead-")
    if args.compare:
        dest = Path(tmp.name) / "ref"
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare, "kit"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        roots = {args.compare: dest, "current": ROOT}
    elif args.compare_root:
        args.compare = str(args.compare_root)
        roots = {args.compare: args.compare_root.resolve(), "current": ROOT}
    jpegs = make_jpegs(args.images, (640, 480), threads=2)
    distinct = [json.dumps({"inputText": None, "inputImage": base64.b64encode(j).decode()}).encode() for j in jpegs]
    bodies = [distinct[i % len(distinct)] for i in range(args.requests)]
    load = [round(os.getloadavg()[0], 2)]
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    servers = {name: NullServer(root, args.max_batch, args.dim) for name, root in roots.items()}
    try:
        for s in servers.values():
            s.__enter__()
            _check_response(s.url, distinct[0], args.dim)
            measure(s, bodies[: 4 * args.clients], args.clients, 1)  # warm
        for r in range(args.rounds):
            for name in (list(roots) if r % 2 == 0 else list(roots)[::-1]):
                res = measure(servers[name], bodies, args.clients, args.client_procs)
                rounds[name].append(res)
                print(json.dumps({"round": r, "code": name, **res}), file=sys.stderr)
            load.append(round(os.getloadavg()[0], 2))
    finally:
        for s in servers.values():
            s.__exit__(None, None, None)
        tmp.cleanup()

    def med(rows: list[dict[str, float]], key: str) -> float:
        vals = sorted(r[key] for r in rows)
        return vals[len(vals) // 2]

    summary = {name: {"requests_per_s_median": med(rows, "requests_per_s"),
                      "server_cpu_us_per_request_median": med(rows, "server_cpu_us_per_request"),
                      "rounds": rows} for name, rows in rounds.items()}
    result: dict[str, Any] = {"requests": args.requests, "clients": args.clients, "client_procs": args.client_procs,
                              "body_bytes_mean": round(sum(map(len, distinct)) / len(distinct)),
                              "cpu_count": os.cpu_count(), "load_average_1m": load, "servers": summary}
    if args.compare:
        a, b = summary[args.compare], summary["current"]
        result["cpu_per_request_before_over_after"] = round(
            a["server_cpu_us_per_request_median"] / b["server_cpu_us_per_request_median"], 2)
    from serve_throughput import report

    return report(result, args.json)


if __name__ == "__main__":
    main()

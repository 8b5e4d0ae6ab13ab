"""The model engine's own cost per image, with the model and the decode stubbed out.

What is left is the engine's bookkeeping: the I/O thread reading frames from the workers' sockets,
admission and the queue, taking a batch, and answering every item (``kit/serve/engine.py``). Client
threads in this process play the workers (8 connections, 32 images in flight each, a 60 kB JPEG job
per image); the engine's threads are named, so their CPU is read per thread from /proc (Linux).

    python bench/engine_overhead.py [--images 160000] [--conns 8] [--payload 60000]

The number bounds what the engine can serve on this CPU whatever the GPU does; on the GPU host the
decode and model threads' Python shares the same GIL (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kit.serve import engine as E  # noqa: E402
from kit.serve.config import ClipConfig, ServeConfig  # noqa: E402


class StubClip:
    """What the engine needs of ``ClipEngine`` for JPEG jobs, answering zeros at once."""

    image_size, dim = 224, 512

    class loaded:  # noqa: N801 - mirrors ClipEngine.loaded
        device = "cpu"

    def embed_items(self, items: list[Any]) -> list[Any]:
        return [np.zeros(self.dim, np.float32) for _ in items]


def _thread_cpu() -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            raw = open(f"/proc/self/task/{tid}/stat", "rb").read()
        except OSError:
            continue
        name = raw[raw.index(b"(") + 1: raw.rindex(b")")].decode(errors="replace")
        fields = raw.rsplit(b")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=160_000)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--payload", type=int, default=60_000, help="bytes of JPEG data per image")
    p.add_argument("--max-batch", type=int, default=256)
    args = p.parse_args(argv)

    config = ServeConfig(clip=ClipConfig(model="stub", batching={"max_batch": args.max_batch, "max_queue": 1 << 20}),
                         device="cpu", max_body_bytes=1 << 21)
    engine = E.Engine(config)
    engine.clip, engine.device_decode, engine.hello = StubClip(), True, {}
    path = tempfile.mktemp(prefix="oskit-engine-bench-", suffix=".sock")
    engine.start(path)
    body = E.JOB.pack(640, 480, 2) + b"\xff" * args.payload
    per_conn = args.images // args.conns

    def client() -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            sent = got = 0
            buf = bytearray()
            while got < per_conn:
                while sent < per_conn and sent - got < args.inflight:
                    s.sendall(E.HEADER.pack(sent, E.OP_IMAGE_JOB, len(body)) + body)
                    sent += 1
                buf += s.recv(1 << 20)
                while len(buf) >= E.HEADER.size:
                    _, status, n = E.HEADER.unpack_from(buf, 0)
                    if len(buf) < E.HEADER.size + n:
                        break
                    assert status == E.ST_VECTOR, bytes(buf[E.HEADER.size:E.HEADER.size + n])
                    del buf[:E.HEADER.size + n]
                    got += 1

    try:
        before, t0 = _thread_cpu(), time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, after = time.perf_counter() - t0, _thread_cpu()
    finally:
        engine.stop()
    n = per_conn * args.conns
    per_thread = {k: round(1e6 * (v - before.get(k, 0.0)) / n, 1) for k, v in after.items() if k.startswith("engine")}
    result = {"images": n, "images_per_s": round(n / wall), "engine_us_per_image": per_thread,
              "engine_us_per_image_total": round(sum(per_thread.values()), 1), "cpu_count": os.cpu_count(),
              "load_average_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

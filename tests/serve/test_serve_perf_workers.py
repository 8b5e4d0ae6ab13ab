"""kit.serve.workers: per-worker SO_REUSEPORT sockets and the per-worker share of the cores."""

from __future__ import annotations

import os
import socket

from _serve_helpers import free_port
from kit.serve.config import ServeConfig
from kit.serve.workers import _bind, share_cores


def test_two_workers_can_listen_on_one_port() -> None:
    port = free_port()
    a, b = _bind("127.0.0.1", port), _bind("127.0.0.1", port)
    try:
        a.listen()
        b.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        a.close()
        b.close()


def test_share_cores_splits_threads_and_keeps_explicit_values() -> None:
    cores = os.cpu_count() or 2
    shared = share_cores(ServeConfig(), 2)
    assert shared.torch_threads == max(1, cores // 2) and shared.decode_threads == max(2, cores // 2)
    assert share_cores(ServeConfig(torch_threads=3), 2).torch_threads == 3
    assert share_cores(ServeConfig(), 1).torch_threads is None

"""`oskit serve` on a busy port exits 1 with a clear message, before loading any model (issue 17)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "provision"))

from clihelp import oskit  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_busy_port_exits_1_with_a_clear_message() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = oskit("serve", "--models", str(ROOT / "models" / "ocr.yaml"), "--port", str(port), "--no-warmup")
    assert res.exit_code == 1
    assert res.stderr == (f"error: port {port} on 127.0.0.1 is already in use (another `oskit serve`?)\n"
                          f"hint: stop the process listening there, or pass --port (e.g. --port {port + 1})\n")


def test_a_host_that_is_not_ours_exits_1() -> None:
    res = oskit("serve", "--models", str(ROOT / "models" / "ocr.yaml"), "--host", "192.0.2.1", "--no-warmup")
    assert res.exit_code == 1
    assert res.stderr.startswith("error: cannot listen on 192.0.2.1:8765: ")

"""Reliability, not speed: an ingest through a model-server outage in the middle of the run.

The default project (the remote text double of the tests) is applied to a fresh embedded node whose
connectors call a fake model server (tests/provision/fakeserve.py: no models, instant answers). The
ingest starts; after ``--down-after`` seconds the model server stops for ``--outage`` seconds, then
comes back on the same port. Prints, per ``--retry-for`` value, how many images were indexed, how many
failed, and how long the run took (``--retry-for 0`` behaves as before issue 17: no document retried).

    python bench/ingest_outage.py --n 200 --outage 4 --retry-for 0,120
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "provision"))


def run(n: int, outage: float, down_after: float, retry_for: float, workdir: Path) -> dict[str, Any]:
    from fakeserve import create_app
    from PIL import Image
    from provision_helpers import copy_default_project

    from kit.cli import main
    from kit.cluster.client import connect
    from kit.job.demo import ServerThread
    from kit.job.ingest import ingest
    from kit.node.server import NodeServer

    photos = workdir / "photos"
    photos.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (48 + i % 50, 40 + i // 50), (i * 7 % 256, i * 13 % 256, 90)).save(photos / f"{i}.png")
    project = copy_default_project(workdir / "project")
    serve = ServerThread(create_app(), name="fake model server")
    serve.start()
    node = NodeServer(workdir / "node")
    url = node.start()
    os.environ["OSKIT_MODEL_SERVER_URL"] = serve.url
    try:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout is this benchmark's JSON
                main(["apply", "--yes", "--project", str(project), "--url", url])
        except SystemExit as exc:
            assert not exc.code, exc.code
        client = connect(url)

        def outage_now() -> None:
            time.sleep(down_after)
            serve.stop()
            time.sleep(outage)
            ServerThread(create_app(), port=serve.port, name="fake model server").start()

        threading.Thread(target=outage_now, daemon=True).start()
        started = time.perf_counter()
        result = ingest(client, [photos], workers=2, batch=16, retry_for=retry_for)
        return {"retry_for": retry_for, "images": n, "outage_s": outage, "indexed": result.indexed,
                "failed": result.failed, "seconds": round(time.perf_counter() - started, 1),
                "load_avg": os.getloadavg()[0]}
    finally:
        node.stop()


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--outage", type=float, default=4.0)
    ap.add_argument("--down-after", type=float, default=1.0)
    ap.add_argument("--retry-for", default="0,120")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = []
    for value in (float(x) for x in args.retry_for.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["OSKIT_DATA_DIR"] = str(Path(tmp) / "data")
            out.append(run(args.n, args.outage, args.down_after, value, Path(tmp)))
            print(json.dumps(out[-1]), file=sys.stderr)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main_()

"""``python -m kit.node --data DIR --port N``: the node in the foreground (used by NodeProcess)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kit.node", description="Run the oskit embedded node.")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--version", default="3.3.0")
    p.add_argument("--user", default=None, help="basic-auth user; password from OSKIT_NODE_PASSWORD")
    p.add_argument("--log-level", default="info")
    p.add_argument("--max-content-length", type=int, default=None,
                   help="largest request body in bytes (http.max_content_length, default 100mb)")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from kit.node.server import run_foreground

    auth = None
    if args.user:
        pw = os.environ.get("OSKIT_NODE_PASSWORD")
        if not pw:
            print("error: --user needs the password in OSKIT_NODE_PASSWORD", file=sys.stderr)
            return 2
        auth = (args.user, pw)
    return run_foreground(args.data, args.host, args.port, version=args.version, auth=auth,
                          max_content_length=args.max_content_length)


if __name__ == "__main__":
    sys.exit(main())

"""Reliability run, not speed: what was acknowledged vs what survived, per failure scenario (issue 17).

By hand, loopback only, bounded in time (each scenario has a deadline) and small (a few hundred tiny
PNGs). The embedded node runs as a child process (``NodeProcess``: ``kill()`` is SIGKILL); the model
server is the provisioning tests' fake (tests/provision/fakeserve.py, instant answers) in a child
process so it too can be killed, and scenario ``overload`` runs the real ``oskit serve`` (CLIP tiny)
with a small queue.

    python bench/reliability.py                         # every scenario, ~3-5 min on the 2-core VM
    python bench/reliability.py --only node_kill,fuzz   # some
    python bench/reliability.py --json bench/results/reliability-DATE.json

Scenarios: node_kill, serve_kill, apply_kill, fuzz, overload, bad_requests, secrets. Each prints one
JSON object (``ok`` is the verdict; ``defects`` lists what broke the promise). Exit 1 when any fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "provision"))
sys.path.insert(0, str(ROOT))

PASSWORD = "S3cret"
OSKIT = [sys.executable, "-c", "import sys; from kit.cli import main; sys.argv[0] = 'oskit'; main()"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


# ------------------------------------------------------------------------------------------ helpers


def make_photos(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` small distinct PNGs (distinct bytes: ingest ids are content hashes)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40 + i % 40, 32 + i // 40), ((i * 7 + seed) % 256, i * 13 % 256, 90)).save(folder / f"{i}.png")
    return folder


class FakeServeProcess:
    """tests/provision/fakeserve.py's app in a child process on a fixed port: SIGKILL-able, restartable."""

    def __init__(self) -> None:
        from kit.job.demo import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> str:
        code = ("import sys, uvicorn; sys.path.insert(0, sys.argv[1]); from fakeserve import create_app; "
                "uvicorn.run(create_app(), host='127.0.0.1', port=int(sys.argv[2]), log_level='error')")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT / "tests" / "provision"), str(self.port)],
                                     env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/health", timeout, self.proc)
        return self.url

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Recording:
    """A kit client that records every document id a ``_bulk`` acknowledged (item status 2xx)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.acked: set[str] = set()
        self.lock = threading.Lock()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        resp = self._client.request(method, path, **kw)
        if path == "/_bulk" and isinstance(resp, dict):
            with self.lock:
                for item in resp.get("items") or []:
                    r = next(iter(item.values()))
                    if 200 <= int(r.get("status", 500)) < 300:
                        self.acked.add(r["_id"])
        return resp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def cli(args: list[str], *, cwd: Path | None = None, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OSKIT, *args], cwd=cwd, env=env or ENV, text=True,
                          capture_output=True, timeout=timeout)


def apply_in_process(project: Path, url: str) -> None:
    from kit.cli import main

    try:
        with contextlib.redirect_stdout(sys.stderr):
            main(["apply", "--yes", "--project", str(project), "--url", url])
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"apply exited {exc.code}") from None


def stored(client: Any, index: str = "images") -> dict[str, Any]:
    """Every document of ``index``: ids, count, and sha256 values seen more than once."""
    client.request("POST", f"/{index}/_refresh")
    resp = client.request("POST", f"/{index}/_search",
                          body={"size": 10000, "_source": ["sha256"], "query": {"match_all": {}}})
    hits = resp["hits"]["hits"]
    ids = [h["_id"] for h in hits]
    shas = [h["_source"].get("sha256") for h in hits]
    count = client.request("GET", f"/{index}/_count")["count"]
    return {"ids": set(ids), "count": count, "duplicate_ids": len(ids) - len(set(ids)),
            "duplicate_sha256": len(shas) - len(set(shas))}


def ingest_until(rec: Recording, photos: Path, trigger: Callable[[], bool], action: Callable[[], None],
                 *, deadline: float, **kw: Any) -> tuple[Any, BaseException | None]:
    """Run an ingest in a thread; when ``trigger()`` turns true run ``action()`` (once); wait for the end."""
    from kit.job.ingest import ingest

    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = ingest(rec, [photos], workers=2, batch=8, **kw)
        except BaseException as exc:  # noqa: BLE001 — recorded: a killed node may end the run
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    fired = False
    while t.is_alive() and time.monotonic() < deadline:
        if not fired and trigger():
            action()
            fired = True
        time.sleep(0.02)
    t.join(max(0.0, deadline - time.monotonic()))
    if t.is_alive():
        raise RuntimeError("ingest did not finish before the scenario's deadline")
    if not fired:
        raise RuntimeError("the ingest finished before the fault could be injected (raise --n)")
    return out.get("result"), out.get("error")


def node_and_project(tmp: Path, serve_url: str) -> tuple[Any, Path]:
    from provision_helpers import copy_default_project

    from kit.node.server import NodeProcess

    os.environ["OSKIT_MODEL_SERVER_URL"] = serve_url
    ENV["OSKIT_MODEL_SERVER_URL"] = serve_url
    node = NodeProcess(tmp / "node")
    node.start()
    project = copy_default_project(tmp / "project")
    apply_in_process(project, node.url)
    return node, project


# ---------------------------------------------------------------------------------------- scenarios


def scenario_node_kill(tmp: Path, n: int, kills: int) -> dict[str, Any]:
    """kill -9 of the node at several points of one ingest; after each restart every acknowledged
    document must be there; a final rerun (resume) indexes the rest, with no duplicates."""
    from kit.cluster.client import connect
    from kit.job.ingest import ingest
    from kit.node.server import NodeProcess

    photos = make_photos(tmp / "photos", n)
    serve = FakeServeProcess()
    serve.start()
    node, _ = node_and_project(tmp, serve.url)
    rounds = []
    acked_all: set[str] = set()
    defects: list[str] = []
    try:
        for k in range(kills):
            rec = Recording(connect(node.url, max_retries=0))
            base = len(acked_all)
            # kill once this run has acknowledged another share of what is left
            goal = base + max(1, (n - base) // (kills + 1 - k))
            result, error = ingest_until(rec, photos, lambda: len(acked_all | rec.acked) >= goal, node.kill,
                                         deadline=time.monotonic() + 120, retry_for=5)
            acked_all |= rec.acked
            node = NodeProcess(tmp / "node", port=node.port)
            node.start()
            have = stored(connect(node.url))
            lost = acked_all - have["ids"]
            rounds.append({"round": k + 1, "acked_this_run": len(rec.acked), "acked_total": len(acked_all),
                           "present_after_restart": have["count"], "acked_lost": len(lost),
                           "ingest_ended_with": type(error).__name__ if error else "finished",
                           "duplicate_sha256": have["duplicate_sha256"]})
            if lost:
                defects.append(f"round {k + 1}: {len(lost)} acknowledged documents lost")
        client = connect(node.url)
        final = ingest(client, [photos], workers=2, batch=8)
        have = stored(client)
        if have["count"] != n or have["duplicate_sha256"] or have["duplicate_ids"]:
            defects.append(f"after the rerun: {have['count']} of {n} documents, "
                           f"{have['duplicate_sha256']} duplicate sha256")
        return {"images": n, "kills": rounds, "rerun": {"indexed": final.indexed, "skipped": final.skipped,
                                                         "failed": final.failed},
                "final_count": have["count"], "acked_total": len(acked_all),
                "acked_lost": len(acked_all - have["ids"]), "duplicates": have["duplicate_sha256"],
                "defects": defects, "ok": not defects}
    finally:
        node.kill()
        serve.kill()


def scenario_serve_kill(tmp: Path, n: int, outage: float) -> dict[str, Any]:
    """kill -9 of the model server mid-ingest, restarted ``outage`` seconds later on the same port:
    the ingest must finish by itself (``retry_for``), every image indexed."""
    from kit.cluster.client import connect

    photos = make_photos(tmp / "photos", n)
    serve = FakeServeProcess()
    serve.start()
    node, _ = node_and_project(tmp, serve.url)
    try:
        rec = Recording(connect(node.url))

        def outage_now() -> None:
            serve.kill()
            threading.Timer(outage, serve.start).start()

        started = time.perf_counter()
        result, error = ingest_until(rec, photos, lambda: len(rec.acked) >= n // 4, outage_now,
                                     deadline=time.monotonic() + 180, retry_for=120)
        seconds = time.perf_counter() - started
        have = stored(connect(node.url))
        defects = []
        if error is not None:
            defects.append(f"ingest raised {type(error).__name__}: {error}")
        if result is not None and (result.failed or result.indexed != n):
            defects.append(f"ingest: {result.indexed} indexed, {result.failed} failed of {n}")
        if have["count"] != n or rec.acked - have["ids"]:
            defects.append(f"{have['count']} of {n} stored, {len(rec.acked - have['ids'])} acknowledged lost")
        return {"images": n, "outage_s": outage, "indexed": result.indexed if result else None,
                "failed": result.failed if result else None, "acked": len(rec.acked), "stored": have["count"],
                "duplicates": have["duplicate_sha256"], "seconds": round(seconds, 1),
                "defects": defects, "ok": not defects}
    finally:
        node.kill()
        serve.kill()


ML_KINDS = {"models": "/_plugins/_ml/models/_search", "connectors": "/_plugins/_ml/connectors/_search",
            "model_groups": "/_plugins/_ml/model_groups/_search"}


def ml_counts(client: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, path in ML_KINDS.items():
        try:
            hits = client.request("POST", path, body={"size": 1000, "query": {"match_all": {}}})["hits"]["hits"]
        except Exception:  # noqa: BLE001 — the ML system index does not exist yet
            hits = []
        names = [h["_source"].get("name") for h in hits if "chunk_number" not in h["_source"]]
        out[kind] = len(names)
        out[f"{kind}_duplicate_names"] = len(names) - len(set(names))
    return out


def _progress(client: Any) -> dict[str, int]:
    """What an apply has created so far: ML resources by kind, pipelines, the index."""
    got: dict[str, int] = {k: v for k, v in ml_counts(client).items() if k in ML_KINDS}
    for kind, path in (("ingest_pipelines", "/_ingest/pipeline"), ("search_pipelines", "/_search/pipeline")):
        try:
            got[kind] = len(client.request("GET", path))
        except Exception:  # noqa: BLE001 — none yet (404)
            got[kind] = 0
    try:
        client.request("GET", "/images")
        got["index"] = 1
    except Exception:  # noqa: BLE001
        got["index"] = 0
    return got


def scenario_apply_kill(tmp: Path, points: list[str]) -> dict[str, Any]:
    """kill -9 of ``oskit apply`` as soon as the node holds ``KIND:COUNT`` (e.g. ``connectors:3``), each on
    a fresh node; the rerun must exit 0, ``plan --detailed-exitcode`` then 0, and the models, connectors
    and model groups must match a clean apply's (no duplicates)."""
    from provision_helpers import copy_default_project

    from kit.cluster.client import connect
    from kit.node.server import NodeProcess

    serve = FakeServeProcess()
    serve.start()
    ENV["OSKIT_MODEL_SERVER_URL"] = serve.url
    project = copy_default_project(tmp / "project")
    defects: list[str] = []
    rows = []
    try:
        node = NodeProcess(tmp / "node-clean")
        node.start()
        t0 = time.perf_counter()
        r = cli(["apply", "--yes", "--project", str(project), "--url", node.url])
        full = time.perf_counter() - t0
        clean = ml_counts(connect(node.url))
        node.kill()
        if r.returncode:
            raise RuntimeError(f"clean apply failed: {r.stderr[-2000:]}")
        for i, point in enumerate(points):
            kind, _, count = point.partition(":")
            node = NodeProcess(tmp / f"node-{i}")
            node.start()
            try:
                client = connect(node.url, max_retries=0)
                proc = subprocess.Popen([*OSKIT, "apply", "--yes", "--project", str(project), "--url", node.url],
                                        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                deadline = time.monotonic() + 60
                while proc.poll() is None and time.monotonic() < deadline:
                    if _progress(client).get(kind, 0) >= int(count or 1):
                        break
                    time.sleep(0.01)
                finished_first = proc.poll() is not None
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                at_kill = _progress(client)
                rerun = cli(["apply", "--yes", "--project", str(project), "--url", node.url])
                plan = cli(["plan", "--detailed-exitcode", "--project", str(project), "--url", node.url])
                after = ml_counts(client)
                row = {"kill_when": point, "apply_had_finished": finished_first, "at_kill": at_kill,
                       "rerun_exit": rerun.returncode, "plan_exit": plan.returncode, "after": after}
                rows.append(row)
                bad = [k for k in ML_KINDS if after[k] != clean[k] or after[f"{k}_duplicate_names"]]
                if rerun.returncode or plan.returncode or bad:
                    defects.append(f"kill at {point}: rerun exit {rerun.returncode}, plan exit "
                                   f"{plan.returncode}, counts differ: {bad} ({rerun.stderr[-400:]})")
            finally:
                node.kill()
        return {"full_apply_s": round(full, 2), "clean_counts": clean, "kills": rows, "defects": defects,
                "ok": not defects}
    finally:
        serve.kill()


# ----------------------------------------------------------------------------------------- fuzzing

_JUNK = [":", "-", "{", "}", "[", "]", "&a", "*a", "!", "|", ">", "'", '"', "#", "\n", "\t", " ", "%", "@", "`",
         "?", ",", "\\", "\x00", "\u00e9", "${env:", "${env:X}", "<<: *a", "---\n", "...\n"]
_VALUES = ["null", "~", "[]", "{}", "-1", "1e999", "0x10", "true", "'x'", "[1, [2, [3]]]", "!!python/object:os.system",
           "!!binary aGVsbG8=", "2026-12-07", ".nan", "*undefined", "&x [*x]", '"' + "a" * 5000 + '"']


def mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """One random edit of a YAML text, and its name."""
    lines = text.splitlines(keepends=True) or ["\n"]
    op = rng.choice(["delete_char", "insert_junk", "dup_line", "drop_line", "swap_lines", "indent", "dedent",
                     "value", "key_typo", "truncate", "bytes", "bomb", "tabs", "empty", "deep", "many_ops"])
    if op == "many_ops":
        for _ in range(rng.randint(2, 5)):
            text, _name = mutate(text, rng)
        return text, op
    if op == "delete_char" and text:
        i = rng.randrange(len(text))
        return text[:i] + text[i + 1:], op
    if op == "insert_junk":
        i = rng.randrange(len(text) + 1)
        return text[:i] + rng.choice(_JUNK) + text[i:], op
    i = rng.randrange(len(lines))
    if op == "dup_line":
        lines.insert(i, lines[i])
    elif op == "drop_line":
        del lines[i]
    elif op == "swap_lines" and len(lines) > 1:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "indent":
        lines[i] = "  " * rng.randint(1, 3) + lines[i]
    elif op == "dedent":
        lines[i] = lines[i].lstrip(" ")
    elif op == "value":
        cands = [k for k, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
        if cands:
            k = rng.choice(cands)
            head = lines[k].split(":", 1)[0]
            lines[k] = f"{head}: {rng.choice(_VALUES)}\n"
    elif op == "key_typo":
        cands = [k for k, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
        if cands:
            k = rng.choice(cands)
            head, rest = lines[k].split(":", 1)
            stripped = head.lstrip(" -")
            if stripped:
                j = rng.randrange(len(stripped))
                typo = stripped[:j] + rng.choice("xyz_") + stripped[j + 1:]
                lines[k] = head[:len(head) - len(stripped)] + typo + ":" + rest
    elif op == "truncate":
        return text[:rng.randrange(len(text) + 1)], op
    elif op == "bytes":
        return text + "\n" + "".join(chr(rng.randrange(0x80, 0x100)) for _ in range(8)), "bytes"
    elif op == "bomb":
        bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        for k in range(1, 9):
            prev = chr(ord("a") + k - 1)
            cur = chr(ord("a") + k)
            bomb += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        return bomb + text, op
    elif op == "tabs":
        lines[i] = lines[i].replace("  ", "\t")
    elif op == "empty":
        return "", op
    elif op == "deep":
        return text + "deep: " + "[" * 5000 + "]" * 5000 + "\n", op
    return "".join(lines), op


def _check_case(project: str, queue: Any) -> None:
    """In a forked child: load and validate as ``oskit validate`` does; report the outcome."""
    from kit.cluster.requests import validate_project
    from kit.config.loader import load_project
    from kit.errors import ConfigError, KitError
    from kit.serve.config import serve_block_problems

    try:
        p = load_project(project)
        validate_project(p, None, use_spec=True, problems=serve_block_problems(p))
        queue.put(("valid", ""))
    except ConfigError as exc:
        queue.put(("ConfigError", str(exc) + " " + " ".join(str(x) for x in exc.problems)))
    except KitError as exc:
        queue.put((f"KitError:{type(exc).__name__}", str(exc)))
    except BaseException as exc:  # noqa: BLE001 — a traceback for the user: the defect this looks for
        import traceback

        queue.put((f"traceback:{type(exc).__name__}", traceback.format_exc()[-1500:]))


def scenario_fuzz(tmp: Path, cases: int, seed: int, hang_s: float) -> dict[str, Any]:
    """Seeded mutations of the default project's YAML files; each must load, or fail with a ConfigError
    that names the mutated file; never a traceback, never longer than ``hang_s``."""
    from provision_helpers import copy_default_project

    import kit.cluster.requests  # noqa: F401 — imported before forking, so each child starts warm
    import kit.config.loader  # noqa: F401
    import kit.serve.config  # noqa: F401

    rng = random.Random(seed)
    base = copy_default_project(tmp / "base", remote_text=False)
    files = sorted(p.relative_to(base) for p in base.rglob("*.yaml"))
    ctx = mp.get_context("fork")
    tally: dict[str, int] = {}
    defects: list[dict[str, Any]] = []
    slowest = 0.0
    for case in range(cases):
        proj = tmp / "case"
        shutil.rmtree(proj, ignore_errors=True)
        shutil.copytree(base, proj)
        rel = rng.choice(files)
        text, op = mutate((base / rel).read_text(encoding="utf-8"), rng)
        (proj / rel).write_bytes(text.encode("utf-8", "surrogateescape") if op != "bytes" else text.encode("latin-1", "replace"))
        q = ctx.Queue()
        child = ctx.Process(target=_check_case, args=(str(proj), q))
        t0 = time.perf_counter()
        child.start()
        child.join(hang_s)
        took = time.perf_counter() - t0
        slowest = max(slowest, took)
        if child.is_alive():
            child.kill()
            child.join()
            outcome, detail = "hang", f"still running after {hang_s}s"
        else:
            try:
                outcome, detail = q.get(timeout=5)
            except Exception:  # noqa: BLE001
                outcome, detail = "crash", f"child exit {child.exitcode}"
        if outcome == "ConfigError":
            outcome = "ConfigError names the file" if str(rel) in detail or rel.name in detail else \
                "ConfigError names another file"
        tally[outcome] = tally.get(outcome, 0) + 1
        if outcome.startswith(("traceback", "hang", "crash", "KitError")) or outcome == "ConfigError names another file":
            keep = proj.parent / f"fuzz-case-{case}"
            shutil.copytree(proj, keep, dirs_exist_ok=True)
            defects.append({"case": case, "file": str(rel), "op": op, "outcome": outcome, "detail": detail[-600:],
                            "kept": str(keep)})
    real = [d for d in defects if d["outcome"] != "ConfigError names another file"]
    return {"cases": cases, "seed": seed, "outcomes": tally, "slowest_case_s": round(slowest, 2),
            "defects": defects, "ok": not real}


# ---------------------------------------------------------------------------------------- overload


def scenario_overload(tmp: Path, n: int, clients: int, max_queue: int, seconds: float) -> dict[str, Any]:
    """The real ``oskit serve`` (CLIP tiny, ``max_queue`` small) flooded by ``clients`` concurrent
    clients for ``seconds`` while an ingest runs through the node: the flood sees 429s with Retry-After;
    the ingest, whose CLIP calls share that queue, still indexes every image."""
    import base64
    import io

    import httpx
    import yaml
    from PIL import Image
    from provision_helpers import copy_default_project, edit

    from kit.cluster.client import connect
    from kit.job.demo import free_port
    from kit.job.ingest import ingest
    from kit.node.server import NodeProcess

    fake = FakeServeProcess()
    fake.start()
    models = tmp / "serve-models"
    models.mkdir()
    spec = yaml.safe_load((ROOT / "models" / "clip.yaml").read_text())
    spec["serve"]["open_clip"]["pretrained"] = str(ROOT / "models" / "weights" / "oskit-clip-tiny.pt")
    spec["serve"]["batching"] = {"max_batch": 4, "max_wait_ms": 5, "max_queue": max_queue}
    (models / "clip.yaml").write_text(yaml.safe_dump(spec))
    port = free_port()
    serve_url = f"http://127.0.0.1:{port}"
    env = {**ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    real = subprocess.Popen([*OSKIT, "serve", "--models", str(models), "--port", str(port),
                             "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                            stderr=(tmp / "serve.log").open("wb"))
    node = None
    try:
        try:
            wait_http(serve_url + "/health", 180, real)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {(tmp / 'serve.log').read_text(errors='replace')[-2000:]}") from None
        os.environ["OSKIT_MODEL_SERVER_URL"] = fake.url
        project = copy_default_project(tmp / "project")
        edit(project / "models" / "clip.yaml", "${env:OSKIT_MODEL_SERVER_URL:-http://127.0.0.1:8765}/clip/embed",
             serve_url + "/clip/embed")
        edit(project / "cluster.yaml", "    - ^${env:OSKIT_MODEL_SERVER_URL:-http://127.0.0.1:8765}/.*$",
             "    - ^${env:OSKIT_MODEL_SERVER_URL:-http://127.0.0.1:8765}/.*$\n    - ^" + serve_url + "/.*$")
        node = NodeProcess(tmp / "node")
        node.start()
        apply_in_process(project, node.url)
        photos = make_photos(tmp / "photos", n)
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, "PNG")
        body = {"inputImage": base64.b64encode(buf.getvalue()).decode()}
        stats: dict[str, int] = {}
        retry_after: list[str] = []
        stop = threading.Event()
        lock = threading.Lock()

        def flood() -> None:
            with httpx.Client(timeout=30) as c:
                while not stop.is_set():
                    try:
                        r = c.post(serve_url + "/clip/embed", json=body)
                        key = str(r.status_code)
                        if r.status_code == 429:
                            with lock:
                                retry_after.append(r.headers.get("retry-after", ""))
                    except httpx.HTTPError as exc:
                        key = type(exc).__name__
                    with lock:
                        stats[key] = stats.get(key, 0) + 1

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        # the flood lasts ``seconds`` (a burst, not a siege: the ingest, backing off, must outlast it)
        threading.Timer(seconds, stop.set).start()
        t0 = time.perf_counter()
        result = ingest(connect(node.url), [photos], workers=2, batch=8, retry_for=120)
        took = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join(35)
        metrics = httpx.get(serve_url + "/metrics").text
        rejected = sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.splitlines()
                       if ln.startswith("oskit_serve_rejected_total"))
        have = stored(connect(node.url))
        defects = []
        if not stats.get("429"):
            defects.append("no 429 under overload")
        missing_ra = sum(1 for v in retry_after if not v.isdigit())
        if missing_ra:
            defects.append(f"{missing_ra} 429s without a numeric Retry-After")
        if result.failed or result.indexed != n or have["count"] != n:
            defects.append(f"ingest: {result.indexed} indexed, {result.failed} failed, {have['count']} stored of {n}")
        if stats.get("500"):
            defects.append(f"{stats['500']} flood requests answered 500")
        return {"images": n, "flood_clients": clients, "max_queue": max_queue, "flood_statuses": stats,
                "retry_after_values": sorted(set(retry_after))[:10], "server_rejected_total": rejected,
                "flood_s": seconds, "ingest": {"indexed": result.indexed, "failed": result.failed, "seconds": round(took, 1)},
                "stored": have["count"], "defects": defects, "ok": not defects}
    finally:
        if node is not None:
            node.kill()
        real.kill()
        real.wait()
        fake.kill()


# ------------------------------------------------------------------------------------ bad requests


def _raw(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        return -1, repr(exc).encode()
    finally:
        conn.close()


_PATHS = ["/", "/images", "/images/_search", "/_bulk", "/images/_doc/1", "/_search", "/images/_mapping",
          "/_ingest/pipeline/p", "/_search/pipeline/p", "/_plugins/_ml/models/_search", "/_plugins/_ml/connectors/_create",
          "/_plugins/_ml/models/_register", "/_plugins/_ml/models/x/_predict", "/_cluster/settings", "/_msearch",
          "/images/_update/1", "/images/_mget", "/_reindex", "/images/_count", "/_cat/indices", "/_analyze",
          "/images/_settings", "/_index_template/t", "/_template/t", "/_search/scroll", "/_aliases", "/_plugins/_ml/tasks/x"]


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, False, 0, -1, 1e308, "", "x", "\u0000", "\ud800" if False else "\u2603"])
    if kind == 1:
        return rng.randint(-2**70, 2**70)
    if kind == 2:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(20)))
    if kind == 3:
        return rng.choice(["match_all", "query", "knn", "size", "from", "_source", "index", "model_id"])
    if kind == 4:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["query", "size", "from", "sort", "knn", "match", "bool", "must", "term", "range", "aggs", "_source",
            "settings", "mappings", "properties", "type", "processors", "name", "function_name", "parameters",
            "index", "vector", "k", "field", "script", "highlight", rng.choice("abcdef")]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def scenario_bad_requests(tmp: Path, n: int, seed: int) -> dict[str, Any]:
    """Random and hostile requests to the node: never a 500 that carries a Python traceback, never a
    dead node; 500s without a traceback are listed too."""
    from kit.cluster.client import connect
    from kit.node.server import NodeProcess

    rng = random.Random(seed)
    node = NodeProcess(tmp / "node")
    node.start()
    statuses: dict[str, int] = {}
    defects: list[dict[str, Any]] = []
    five_hundreds: list[dict[str, Any]] = []
    try:
        connect(node.url).request("PUT", "/images", body={"mappings": {"properties": {
            "v": {"type": "knn_vector", "dimension": 4}, "t": {"type": "text"}}}, "settings": {"index.knn": True}})
        cases: list[tuple[str, str, str, bytes | None]] = []
        for i in range(n):
            method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"])
            path = rng.choice(_PATHS)
            kind = rng.choice(["json", "json", "json", "bytes", "truncated", "path", "query"])
            body: bytes | None
            if kind == "json":
                body = json.dumps(_random_json(rng)).encode()
            elif kind == "bytes":
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            elif kind == "truncated":
                full = json.dumps(_random_json(rng)).encode()
                body = full[: rng.randrange(len(full) + 1)]
            elif kind == "path":
                path = "/" + "/".join("".join(rng.choice("abc_%.*?#-é~ ") for _ in range(rng.randrange(1, 8)))
                                      for _ in range(rng.randrange(1, 5)))
                path = path.replace(" ", "%20").replace("é", "%C3%A9").replace("#", "%23")
                body = None
            else:
                path += "?" + "&".join(f"{rng.choice(['size', 'from', 'pretty', 'timeout', 'q', 'x'])}="
                                       f"{rng.choice(['-1', '1e9', 'abc', '', '%ff', '999999999999999999999'])}"
                                       for _ in range(rng.randrange(1, 4)))
                body = None
            cases.append((f"random-{kind}", method, path, body))
        for depth in (1_000, 10_000, 100_000):
            for path in ("/images/_search", "/_bulk", "/images/_doc/deep", "/_plugins/_ml/models/_search"):
                cases.append((f"deep-{depth}", "POST", path, ("[" * depth + "]" * depth).encode()))
                cases.append((f"deep-obj-{depth}", "POST", path, ('{"a":' * depth + "1" + "}" * depth).encode()))
        bulk_line = b'{"index":{"_index":"images"}}\n{"t":"x"}\n'
        cases.append(("huge-over-limit", "POST", "/_bulk", bulk_line * (101 * 1024 * 1024 // len(bulk_line))))
        cases.append(("huge-json-string", "POST", "/images/_doc/big", b'{"t":"' + b"x" * (20 * 1024 * 1024) + b'"}'))
        cases.append(("bulk-no-newline", "POST", "/_bulk", b'{"index":{"_index":"images"}}'))
        cases.append(("vector-wrong-dim", "PUT", "/images/_doc/v", b'{"v":[1,2,3]}'))
        cases.append(("vector-nan", "PUT", "/images/_doc/v", b'{"v":[NaN,1,2,3]}'))
        cases.append(("knn-huge-k", "POST", "/images/_search", b'{"query":{"knn":{"v":{"vector":[1,2,3,4],"k":100000000}}}}'))
        cases.append(("size-huge", "POST", "/images/_search?size=2147483648", b"{}"))
        for label, method, path, body in cases:
            status, data = _raw(node.port, method, path, body)
            key = str(status)
            statuses[key] = statuses.get(key, 0) + 1
            text = data[:200_000].decode(errors="replace")
            traceback_seen = "Traceback (most recent call last)" in text or 'File "/' in text
            if status >= 500 or status == -1:
                row = {"case": label, "method": method, "path": path[:120], "status": status,
                       "body_head": (body or b"")[:80].decode(errors="replace"), "answer": text[:300]}
                five_hundreds.append(row)
            if traceback_seen or status == -1:
                defects.append({"case": label, "method": method, "path": path[:120], "status": status,
                                "answer": text[:500]})
        alive = _raw(node.port, "GET", "/_cluster/health", None)[0] == 200
        if not alive:
            defects.append({"case": "node alive afterwards", "status": "dead"})
        return {"requests": len(cases), "statuses": dict(sorted(statuses.items())), "five_hundreds": five_hundreds,
                "node_alive_after": alive, "defects": defects, "ok": not defects and not five_hundreds}
    finally:
        node.kill()


# ----------------------------------------------------------------------------------------- secrets


def scenario_secrets(tmp: Path, n: int) -> dict[str, Any]:
    """Every command with the password in ``--url``, ``-v``, ``--json``, ``plan --out`` and an ingest
    report: the password must appear in no output and no file written."""
    from provision_helpers import copy_default_project

    from kit.node.server import NodeProcess

    serve = FakeServeProcess()
    serve.start()
    ENV["OSKIT_MODEL_SERVER_URL"] = serve.url
    node = NodeProcess(tmp / "node", auth=("admin", PASSWORD))
    node.start()
    work = tmp / "cwd"
    work.mkdir()
    project = copy_default_project(tmp / "project")
    photos = make_photos(tmp / "photos", n)
    photos.joinpath("broken.png").write_bytes(b"not a png")  # so the ingest writes a report
    port = node.port
    url = f"http://admin:{PASSWORD}@127.0.0.1:{port}"
    wrong = f"http://admin:Wr0ng{PASSWORD}@127.0.0.1:{port}"
    dead = f"http://admin:{PASSWORD}@127.0.0.1:9"
    p = ["--project", str(project)]
    runs = [
        ["plan", *p, "--url", url, "-v", "--json", "--out", str(work / "plan.json")],
        ["plan", *p, "--url", url, "-v", "--out", str(work / "plan2.json")],
        ["apply", *p, "--url", url, "-v", "--yes"],
        ["apply", *p, "--url", url, "-v", "--yes", "--plan", str(work / "plan.json")],
        ["diff", *p, "--url", url, "-v", "--json"],
        ["diff", *p, "--url", url, "-v", "--format", "markdown"],
        ["status", *p, "--url", url, "-v", "--json"],
        ["status", *p, "--url", url, "-v"],
        ["ingest", str(photos), "--index", "images", "--url", url, "-v", "--json", "--report", str(work / "r.jsonl")],
        ["ingest", str(photos), "--index", "images", "--url", url, "-v", "--report", str(work / "r2.jsonl")],
        ["search", "red circle", "--url", url, "-v", "--json"],
        ["plan", *p, "--url", wrong, "-v", "--json"],
        ["status", *p, "--url", wrong, "-v"],
        ["ingest", str(photos), "--index", "images", "--url", wrong, "-v", "--json"],
        ["plan", *p, "--url", dead, "-v", "--json", "--timeout", "2"],
        ["diff", *p, "--url", dead, "-v"],
    ]
    rows = []
    defects = []
    try:
        for args in runs:
            r = cli(args, cwd=work)
            leaked = [where for where, text in (("stdout", r.stdout), ("stderr", r.stderr))
                      if PASSWORD in text]
            shown = ["--url " + ("wrong password" if "Wr0ng" in a else "dead port" if ":9\"" in a + '"' else "ok")
                     for a in args if a.startswith("http")]
            rows.append({"command": " ".join([args[0], *[a for a in args[1:] if a.startswith("-")]]), "url": shown[0],
                         "exit": r.returncode, "stdout_bytes": len(r.stdout), "stderr_bytes": len(r.stderr),
                         "leaked_in": leaked})
            if leaked:
                defects.append(f"{args[0]} ({shown[0]}): password in {leaked}")
        files = [f for f in work.rglob("*") if f.is_file()]
        leaked_files = [str(f.relative_to(work)) for f in files if PASSWORD.encode() in f.read_bytes()]
        if leaked_files:
            defects.append(f"password in files {leaked_files}")
        return {"commands": rows, "files_checked": sorted(str(f.relative_to(work)) for f in files),
                "files_with_password": leaked_files, "defects": defects, "ok": not defects}
    finally:
        node.kill()
        serve.kill()


# -------------------------------------------------------------------------------------------- main


SCENARIOS = ["node_kill", "serve_kill", "apply_kill", "fuzz", "overload", "bad_requests", "secrets"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated: " + ", ".join(SCENARIOS))
    ap.add_argument("--n", type=int, default=300, help="images per ingest scenario")
    ap.add_argument("--kills", type=int, default=3, help="node kills in one ingest")
    ap.add_argument("--outage", type=float, default=3.0, help="model server down for this long (s)")
    ap.add_argument("--apply-points", default="model_groups:1,connectors:1,connectors:3,connectors:5,models:1,"
                    "models:3,models:5,ingest_pipelines:1,index:1",
                    help="kill apply as soon as the node holds KIND:COUNT (one fresh node each)")
    ap.add_argument("--fuzz-cases", type=int, default=200)
    ap.add_argument("--hang-s", type=float, default=10.0, help="a fuzz case running longer is a hang")
    ap.add_argument("--flood-clients", type=int, default=16)
    ap.add_argument("--flood-s", type=float, default=8.0, help="how long the overload lasts")
    ap.add_argument("--max-queue", type=int, default=4)
    ap.add_argument("--bad-requests", type=int, default=400)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}")
    runners: dict[str, Callable[[Path], dict[str, Any]]] = {
        "node_kill": lambda t: scenario_node_kill(t, args.n, args.kills),
        "serve_kill": lambda t: scenario_serve_kill(t, args.n, args.outage),
        "apply_kill": lambda t: scenario_apply_kill(t, args.apply_points.split(",")),
        "fuzz": lambda t: scenario_fuzz(t, args.fuzz_cases, args.seed, args.hang_s),
        "overload": lambda t: scenario_overload(t, min(args.n, 60), args.flood_clients, args.max_queue, args.flood_s),
        "bad_requests": lambda t: scenario_bad_requests(t, args.bad_requests, args.seed),
        "secrets": lambda t: scenario_secrets(t, 8),
    }
    out: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load_avg_start": os.getloadavg()[0], "scenarios": {}}
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"oskit-rel-{name}-") as tmp:
            os.environ["OSKIT_DATA_DIR"] = str(Path(tmp) / "data")
            ENV["OSKIT_DATA_DIR"] = os.environ["OSKIT_DATA_DIR"]
            t0 = time.perf_counter()
            try:
                res = runners[name](Path(tmp))
            except Exception as exc:  # noqa: BLE001 — the harness itself failed: reported, next scenario
                import traceback

                res = {"ok": False, "harness_error": traceback.format_exc()[-3000:]}
            res["seconds"] = round(time.perf_counter() - t0, 1)
            res["load_avg"] = os.getloadavg()[0]
            out["scenarios"][name] = res
            print(json.dumps({name: res}, default=str)[:4000], file=sys.stderr, flush=True)
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0 if all(s.get("ok") for s in out["scenarios"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

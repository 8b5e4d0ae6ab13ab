"""Start and stop a real OpenSearch node (assembled by assemble.py) on free loopback ports.

OpenSearch refuses to run as root, so a root caller runs it as a service user (created once with
useradd) through runuser. Each node gets its own run directory (config, data, logs), removed on stop
unless ``keep=True``; the assembled home is shared and read-only.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kit.errors import RealNodeError
from kit.realnode import recipe
from kit.realnode.assemble import assemble, java_env

SERVICE_USER = "oskit-opensearch"
DEFAULT_HEAP = "1g"

# A local dev cluster: one node, no disk watermarks (shared disk), ML Commons on data nodes, remote
# connectors to a model server on loopback, and no memory circuit breakers tripping on a busy box.
DEV_SETTINGS: dict[str, Any] = {
    "discovery.type": "single-node",
    "network.host": "127.0.0.1",
    "cluster.routing.allocation.disk.threshold_enabled": False,
    "plugins.ml_commons.only_run_on_ml_node": False,
    "plugins.ml_commons.connector.private_ip_enabled": True,
    "plugins.ml_commons.trusted_connector_endpoints_regex": [
        r"^http://127\.0\.0\.1:[0-9]+/.*$", r"^http://localhost:[0-9]+/.*$"],
    "plugins.ml_commons.native_memory_threshold": 100,
    "plugins.ml_commons.jvm_heap_memory_threshold": 100,
    "plugins.ml_commons.allow_registering_model_via_local_file": True,
    "plugins.ml_commons.allow_registering_model_via_url": True,
    "action.auto_create_index": True,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_user() -> tuple[int, int] | None:
    """(uid, gid) of the service user, created if missing; None when not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        SERVICE_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _yaml_value(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML: lists, booleans and regexes survive quoting


class RealNode:
    """A real OpenSearch node for the duration of a ``with`` block (or start()/stop()).

    ``url`` is http://127.0.0.1:<port>; ``settings`` are added to (and override) DEV_SETTINGS.
    """

    def __init__(self, version: str = recipe.DEFAULT_VERSION, *, heap: str | None = None,
                 port: int | None = None, settings: dict[str, Any] | None = None,
                 run_dir: Path | None = None, keep: bool = False, start_timeout: float = 240.0,
                 env: dict[str, str] | None = None) -> None:
        self.version = version
        self.heap = heap or os.environ.get("OSKIT_REAL_HEAP", DEFAULT_HEAP)
        self.port = port or free_port()
        self.transport_port = free_port()
        self.settings = {**DEV_SETTINGS, **(settings or {})}
        self.keep = keep
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self._run_dir = run_dir
        self.run_dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --------------------------------------------------------------------------------------- lifecycle
    def start(self) -> "RealNode":
        home = assemble(self.version)
        owner = _ensure_user()
        run = Path(self._run_dir or tempfile.mkdtemp(prefix=f"oskit-realnode-{self.version}-"))
        run.mkdir(parents=True, exist_ok=True)
        self.run_dir = run
        conf = run / "config"
        shutil.rmtree(conf, ignore_errors=True)
        shutil.copytree(home / "config", conf)
        for sub in ("data", "logs"):
            (run / sub).mkdir(exist_ok=True)
        _seed_torch(home, run / "data")
        lines = {
            "cluster.name": f"oskit-real-{self.port}",
            "node.name": "real-1",
            "http.port": self.port,
            "transport.port": self.transport_port,
            "path.data": str(run / "data"),
            "path.logs": str(run / "logs"),
            **self.settings,
        }
        # The launcher runs in the (read-only) home: point its relative log and dump paths at the run dir.
        jvm = (conf / "jvm.options").read_text()
        jvm = jvm.replace("=logs/", f"={run}/logs/").replace(":logs/", f":{run}/logs/")
        (conf / "jvm.options").write_text(jvm.replace("HeapDumpPath=data", f"HeapDumpPath={run}/data"))
        (conf / "opensearch.yml").write_text("".join(f"{k}: {_yaml_value(v)}\n" for k, v in lines.items()))
        if owner is not None:
            run.chmod(0o755)
            for path in [run, *run.rglob("*")]:
                os.chown(path, *owner)
        env = java_env(self.version)
        env.update(OPENSEARCH_PATH_CONF=str(conf), OPENSEARCH_JAVA_OPTS=f"-Xms{self.heap} -Xmx{self.heap}",
                   PYTORCH_LIBRARY_PATH=str(home / "djl" / "libtorch"), PYTORCH_VERSION=recipe.TORCH_VERSION,
                   PYTORCH_FLAVOR=recipe.TORCH_FLAVOR)
        env.update({k: v.replace("{run}", str(run)) for k, v in self.extra_env.items()})
        cmd = [str(home / "bin" / "opensearch"), "-p", str(run / "opensearch.pid")]
        if owner is not None:
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]  # no --login: the environment passes
        t0 = time.monotonic()
        with open(run / "console.log", "wb") as console:
            self.proc = subprocess.Popen(cmd, env=env, cwd=run, stdout=console, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready(t0)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - t0
        self._write_state()
        return self

    def _wait_ready(self, t0: float) -> None:
        assert self.proc is not None
        while time.monotonic() - t0 < self.start_timeout:
            if self.proc.poll() is not None:
                raise RealNodeError(f"OpenSearch {self.version} exited with {self.proc.returncode} while "
                                    f"starting:\n{self.log_tail()}")
            try:
                health = self.request("GET", "/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=5)
                if health.get("status") in ("yellow", "green"):
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(1)
        raise RealNodeError(f"OpenSearch {self.version} did not answer on {self.url} within "
                            f"{self.start_timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        pid_file = self.run_dir / "opensearch.pid" if self.run_dir else None
        pid = None
        if pid_file and pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
            except ValueError:
                pid = None
        _terminate(pid, self.proc.pid if self.proc else None)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.run_dir is not None:
            (self.run_dir / "state.json").unlink(missing_ok=True)
            if not self.keep:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> "RealNode":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------- helpers
    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")

    def log_tail(self, lines: int = 60) -> str:
        if self.run_dir is None:
            return ""
        out = []
        for name in ("console.log", f"logs/oskit-real-{self.port}.log"):
            path = self.run_dir / name
            if path.exists():
                out.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    def memory_rss_mb(self) -> float | None:
        """Resident memory of the node's JVM, from /proc (None when unknown)."""
        pid_file = self.run_dir / "opensearch.pid" if self.run_dir else None
        if not pid_file or not pid_file.exists():
            return None
        try:
            for line in Path(f"/proc/{pid_file.read_text().strip()}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError):
            return None
        return None

    def _write_state(self) -> None:
        assert self.run_dir is not None and self.proc is not None
        (self.run_dir / "state.json").write_text(json.dumps({
            "version": self.version, "url": self.url, "run_dir": str(self.run_dir),
            "runner_pid": self.proc.pid, "heap": self.heap}))


def _seed_torch(home: Path, data: Path) -> None:
    """DJL's JNI where ML Commons' DJL (cache <path.data>/ml_cache) looks before downloading it."""
    api = sorted((home / "plugins" / "opensearch-ml").glob("api-*.jar"))
    if not api:
        raise RealNodeError(f"no DJL api jar in {home / 'plugins' / 'opensearch-ml'}")
    djl_version = api[-1].name[len("api-"):-len(".jar")]
    dest = data / "ml_cache" / "pytorch" / f"{recipe.TORCH_VERSION}-{recipe.TORCH_FLAVOR}-linux-x86_64"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(home / "djl" / "libdjl_torch.so", dest / f"{djl_version}-libdjl_torch.so")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate(java_pid: int | None, runner_pid: int | None, grace: float = 30.0) -> None:
    """SIGTERM the JVM (a clean shutdown), then its runner; SIGKILL what is left after ``grace``."""
    pids = [p for p in (java_pid, runner_pid) if p]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
        if runner_pid:
            try:
                os.waitpid(runner_pid, os.WNOHANG)
            except ChildProcessError:
                pass
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_state(state_file: Path) -> None:
    """Stop a node started by ``python -m kit.realnode start`` (its run dir's state.json)."""
    state = json.loads(state_file.read_text())
    run = Path(state["run_dir"])
    pid_file = run / "opensearch.pid"
    java = int(pid_file.read_text().strip()) if pid_file.exists() else None
    _terminate(java, state.get("runner_pid"))
    shutil.rmtree(run, ignore_errors=True)

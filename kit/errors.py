"""The one exception tree of oskit.

Every error the library raises on purpose is a :class:`KitError`. The CLI has exactly one
``except KitError`` and turns it into a message on stderr and an exit code. Each error carries a
``hint`` (how to fix it) where one is known.

::

    KitError                         root; exit code 1
    ├── ConfigError                  a project file is wrong (file, key path, message, hint)
    │   └── SpecError                a request the kit would send does not fit the OpenSearch API spec
    ├── ClusterError                 the cluster answered with an error (method, path, status, root cause)
    │   ├── Unreachable              no connection / timeout
    │   ├── AuthError                401 / 403
    │   ├── NotFound                 404
    │   ├── Conflict                 409 / resource already exists
    │   └── Unsupported              the target cannot do what the project needs (version, plugin, AOS)
    ├── TaskFailed                   an ML Commons task ended FAILED (carries the server's error text)
    ├── TaskTimeout                  an ML Commons task did not finish by its deadline (task id, last state)
    ├── PlanStale                    the cluster changed between plan and apply
    ├── DestroyRefused               a change would lose data and --allow-destroy was not given
    ├── PackageError                 building or reading a model package failed
    ├── ModelError                   loading or running a model failed
    ├── ServeError                   the model server could not start or answer
    ├── NodeError                    the embedded node could not start / is misconfigured
    ├── RealNodeError                a real OpenSearch (kit.realnode) could not be assembled or started
    ├── IngestError                  ingest could not run at all (per-file failures go to the report)
    └── EvalError                    an evaluation file is wrong or a threshold was missed
        └── ThresholdMissed          a --fail-under threshold was not met (exit code 1)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "ClusterError",
    "ConfigError",
    "Conflict",
    "DestroyRefused",
    "EvalError",
    "IngestError",
    "KitError",
    "ModelError",
    "NodeError",
    "NotFound",
    "PackageError",
    "PlanStale",
    "RealNodeError",
    "ServeError",
    "SpecError",
    "TaskFailed",
    "TaskTimeout",
    "ThresholdMissed",
    "Unreachable",
    "Unsupported",
]


class KitError(Exception):
    """Root of every error oskit raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(KitError):
    """One or more problems in the project's YAML files.

    ``problems`` is a list of ``(file, key_path, message, hint)``; all are reported at once.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        problems: list[tuple[str, str, str, str | None]] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        lines = []
        for file, path, msg, hint in self.problems:
            where = f"{file}: {path}: " if path else f"{file}: "
            lines.append(where + msg + (f" (hint: {hint})" if hint else ""))
        return "\n".join(lines)


class SpecError(ConfigError):
    """A request body or path does not validate against the OpenSearch API spec."""


class ClusterError(KitError):
    """The cluster answered with an error. Keeps method, path, status and the root cause."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        error_type: str | None = None,
        reason: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.method = method
        self.path = path
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.body = body

    def __str__(self) -> str:
        where = " ".join(x for x in (self.method, self.path) if x)
        status = f" -> {self.status}" if self.status is not None else ""
        kind = f" {self.error_type}:" if self.error_type else ""
        reason = f" {self.reason}" if self.reason else ""
        if where or status:
            return f"{self.message} ({where}{status}{kind}{reason})"
        return self.message


class Unreachable(ClusterError):
    """No connection could be made, or it timed out."""


class AuthError(ClusterError):
    """The cluster refused our credentials (401) or our permissions (403)."""


class NotFound(ClusterError):
    """The resource does not exist (404)."""


class Conflict(ClusterError):
    """The resource exists already or is in a state that forbids the change (409)."""


class Unsupported(ClusterError):
    """The target cannot do what the project needs; names the feature and the version it needs."""


class TaskFailed(KitError):
    """An ML Commons task ended in FAILED; ``error`` is the server's text."""

    def __init__(self, message: str, *, task_id: str, error: str | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.task_id = task_id
        self.error = error

    def __str__(self) -> str:
        return f"{self.message} (task {self.task_id}: {self.error})"


class TaskTimeout(KitError):
    """An ML Commons task did not reach a final state before the deadline."""

    def __init__(self, message: str, *, task_id: str, last_state: str | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.task_id = task_id
        self.last_state = last_state

    def __str__(self) -> str:
        return f"{self.message} (task {self.task_id}, last state {self.last_state})"


class PlanStale(KitError):
    """The cluster changed after the plan was made; plan again."""


class DestroyRefused(KitError):
    """A change would destroy data and ``--allow-destroy`` was not given."""


class PackageError(KitError):
    """A model package could not be built or read."""


class ModelError(KitError):
    """A model could not be loaded or run."""


class ServeError(KitError):
    """The model server could not start or answer."""


class NodeError(KitError):
    """The embedded node could not start or is misconfigured."""


class RealNodeError(KitError):
    """A real OpenSearch node (kit.realnode) could not be downloaded, assembled, started or stopped."""


class IngestError(KitError):
    """Ingest could not run at all (per-file failures go to the error report instead)."""


class EvalError(KitError):
    """An evaluation file is wrong."""


class ThresholdMissed(EvalError):
    """A ``--fail-under`` threshold was not met."""

"""The one helper that waits for ML Commons tasks: deadline, exponential backoff, state enums."""

from __future__ import annotations

import enum
import logging
import time
from typing import Any, Callable

from kit.cluster.client import Client
from kit.errors import TaskFailed, TaskTimeout

log = logging.getLogger("kit.cluster")

__all__ = ["TaskState", "wait_for_task"]


class TaskState(str, enum.Enum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    COMPLETED_WITH_ERROR = "COMPLETED_WITH_ERROR"
    CANCELLING = "CANCELLING"
    EXPIRED = "EXPIRED"
    UNREACHABLE = "UNREACHABLE"

    @property
    def final(self) -> bool:
        return self in (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED,
                        TaskState.COMPLETED_WITH_ERROR, TaskState.EXPIRED)


def wait_for_task(client: Client, task_id: str, *, timeout: float = 600.0, first_delay: float = 0.05,
                  max_delay: float = 2.0, what: str = "task",
                  sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll ``GET /_plugins/_ml/tasks/{id}`` until a final state; return the task body.

    COMPLETED → the body; FAILED/CANCELLED/EXPIRED/COMPLETED_WITH_ERROR → :class:`TaskFailed` with the
    server's error text; no final state by ``timeout`` seconds → :class:`TaskTimeout` with the last state.
    """
    deadline = clock() + timeout
    delay = first_delay
    last: str | None = None
    while True:
        task = client.request("GET", f"/_plugins/_ml/tasks/{task_id}") or {}
        raw_state = str(task.get("state", "UNKNOWN"))
        if raw_state != last:
            log.info("%s %s: %s", what, task_id, raw_state)
        last = raw_state
        try:
            state = TaskState(raw_state)
        except ValueError:
            state = None
        if state is TaskState.COMPLETED:
            return dict(task)
        if state is not None and state.final:
            raise TaskFailed(f"{what} ended {raw_state}", task_id=task_id, error=str(task.get("error") or "no error text"),
                             hint="fix the cause and run oskit apply again; it resumes where it stopped")
        if clock() >= deadline:
            raise TaskTimeout(f"{what} did not finish within {timeout:.0f}s", task_id=task_id, last_state=last,
                              hint="the cluster may still finish it; run oskit apply again later")
        sleep(min(delay, max(0.0, deadline - clock())))
        delay = min(delay * 2, max_delay)

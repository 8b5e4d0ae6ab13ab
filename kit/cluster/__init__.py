"""Talking to a cluster: the connection (client.py), reading live state, diff, plan, apply.

Library API (re-exported by :mod:`kit`)::

    project = kit.load_project(".")
    the_plan = kit.plan(project, client)        # read-only; ordered changes + fingerprint
    kit.apply(the_plan, client)                 # converge (PlanStale / DestroyRefused before any write)
    kit.diff(project, client).in_sync           # drift check (same value as plan)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from kit.cluster.apply import ApplyResult, apply
from kit.cluster.client import Client, connect
from kit.cluster.plan import Change, Plan, destroy_plan, plan
from kit.cluster.status import Status, status
from kit.config.loader import Project

__all__ = ["ApplyResult", "Change", "Client", "Plan", "Status", "apply", "connect", "destroy", "destroy_plan", "diff",
           "plan", "status", "validate"]


def diff(project: Project, client: Client, *, environ: Mapping[str, str] | None = None) -> Plan:
    """Drift between the project and the cluster: a plan, with field-level details on each change."""
    return plan(project, client, environ=environ)


def destroy(project: Project, client: Client, *, environ: Mapping[str, str] | None = None,
            progress: Callable[[str], None] | None = None) -> ApplyResult:
    """Remove everything the project created (indices included). Cluster settings are left alone."""
    return apply(destroy_plan(project, client, environ=environ), client, allow_destroy=True, progress=progress)


def validate(project: Project, spec_dir: Any = None, *, use_spec: bool = True) -> Any:
    """Offline checks (target rules, every request against the OpenSearch API spec); raises ConfigError."""
    from kit.cluster.requests import validate_project

    return validate_project(project, spec_dir, use_spec=use_spec)

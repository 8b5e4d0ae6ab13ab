"""Render plans, diffs, status and validation reports as text, Markdown or JSON (no I/O here).

Renderers take the JSON-ready dicts (``Plan.to_dict()`` etc.), which are already free of secrets,
so nothing rendered can leak one.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["SYMBOLS", "render_apply", "render_diff_markdown", "render_json", "render_plan", "render_status",
           "render_validate"]

SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "redeploy": "^", "reindex": "!", "destroy": "-",
           "unmanaged": "?"}


def render_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str)


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _header(plan: dict[str, Any], verb: str) -> str:
    t = plan["target"]
    env = f", environment {plan['environment']}" if plan.get("environment") else ""
    version = f"OpenSearch {t['version']}" if t["distribution"] == "opensearch" else \
        ("Amazon OpenSearch Service " + t["version"] if t["distribution"] == "aos" else "OpenSearch Serverless")
    return f"oskit {verb}: project {plan['project']}{env} → {t['url']} ({version})"


def _summary(plan: dict[str, Any]) -> str:
    n = len(plan["changes"])
    parts = [f"{count} {action}" for action, count in plan["summary"].items() if count]
    return f"{n} change{'s' if n != 1 else ''} ({', '.join(parts)})"


def _rows(changes: list[dict[str, Any]]) -> list[str]:
    if not changes:
        return []
    wk = max(len(c["kind"]) for c in changes)
    wn = max(len(c["name"]) for c in changes)
    out = []
    for c in changes:
        sym = SYMBOLS[c["action"]]
        out.append(f"  {sym:<3} {c['action']:<8}  {c['kind']:<{wk}}  {c['name']:<{wn}}  {c['reason']}")
    return out


def render_plan(plan: dict[str, Any], *, details: bool = False, verb: str = "plan") -> str:
    lines = [_header(plan, verb), ""]
    if plan["in_sync"]:
        lines.append("No changes: the cluster matches the project.")
    else:
        for row, c in zip(_rows(plan["changes"]), plan["changes"]):
            lines.append(row)
            if details:
                for d in c["details"]:
                    lines.append(f"        {d['path']}: {_short(d['live'])} → {_short(d['desired'])}")
        lines += ["", f"Plan: {_summary(plan)}."]
    for note in plan.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def render_diff_markdown(plan: dict[str, Any]) -> str:
    t = plan["target"]
    title = f"### oskit diff: project `{plan['project']}` against {t['url']} (OpenSearch {t['version']})"
    if plan["in_sync"]:
        return f"{title}\n\nNo drift: the cluster matches the project.\n"
    lines = [title, "", f"**{_summary(plan)}**", "", "| | action | kind | name | reason |", "|---|---|---|---|---|"]
    for c in plan["changes"]:
        reason = c["reason"].replace("|", "\\|")
        lines.append(f"| `{SYMBOLS[c['action']]}` | {c['action']} | {c['kind']} | `{c['name']}` | {reason} |")
    detailed = [c for c in plan["changes"] if c["details"]]
    for c in detailed:
        lines += ["", f"<details><summary>{c['action']} {c['kind']} <code>{c['name']}</code></summary>", "",
                  "| field | cluster | project |", "|---|---|---|"]
        for d in c["details"]:
            live = _short(d["live"]).replace("|", "\\|")
            want = _short(d["desired"]).replace("|", "\\|")
            lines.append(f"| `{d['path']}` | `{live}` | `{want}` |")
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render_apply(result: dict[str, Any], plan: dict[str, Any]) -> str:
    n = len(result["applied"])
    if n == 0:
        return "No changes: the cluster matches the project."
    return f"Applied {n} change{'s' if n != 1 else ''} in {result['seconds']:.1f}s."


def render_status(status: dict[str, Any]) -> str:
    rows = status["resources"]
    lines = [f"oskit status: project {status['project']} → {status['target']['url']} "
             f"(OpenSearch {status['target']['version']})", ""]
    if not rows:
        return "\n".join(lines + ["(the project defines no resources)"])
    wk = max(len(r["kind"]) for r in rows)
    wn = max(len(r["name"]) for r in rows)
    ws = max(len(r["state"]) for r in rows)
    for r in rows:
        lines.append(f"  {r['kind']:<{wk}}  {r['name']:<{wn}}  {r['state']:<{ws}}  {r['detail']}".rstrip())
    return "\n".join(lines)


def render_validate(report: dict[str, Any]) -> str:
    spec = "checked against the OpenSearch API spec" if report.get("spec") else "not checked against the API spec"
    lines = [f"ok: project {report['project']} is valid ({report['files']} files; "
             f"{report['requests_checked']} requests {spec})"]
    for note in report.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)

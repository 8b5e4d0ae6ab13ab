"""Shared pieces of the node's ML Commons: ids, clocks, settings with ML Commons' defaults, versions,
system-index names and mappings, and the error helpers that carry ML Commons' real messages.
"""

from __future__ import annotations

import json
import secrets
import time
import unicodedata
from typing import Any

from kit.node.errors import ApiError

__all__ = [
    "check_safe_fields",
    "CONNECTOR_INDEX",
    "MAPPINGS",
    "MODEL_GROUP_INDEX",
    "MODEL_INDEX",
    "NO_ELIGIBLE_NODE",
    "SETTING_DEFAULTS",
    "TASK_INDEX",
    "MLSettings",
    "iae",
    "new_id",
    "now_ms",
    "status_error",
    "version_tuple",
]

MODEL_GROUP_INDEX = ".plugins-ml-model-group"
MODEL_INDEX = ".plugins-ml-model"
TASK_INDEX = ".plugins-ml-task"
CONNECTOR_INDEX = ".plugins-ml-connector"

P = "plugins.ml_commons."

# MLTaskDispatcher#dispatchTaskWithRoundRobin, verbatim.
NO_ELIGIBLE_NODE = (
    "No eligible node found to execute this request. It's best practice to provision ML nodes to serve your "
    "models. You can disable this setting to serve the model on your data node for development purposes by "
    "disabling the \"plugins.ml_commons.only_run_on_ml_node\" configuration using the _cluster/settings api"
)

# Defaults of the settings this node reads (MLCommonsSettings on 3.x; version-dependent ones are
# resolved in MLSettings).
SETTING_DEFAULTS: dict[str, Any] = {
    P + "only_run_on_ml_node": True,
    P + "task_dispatcher.eligible_node_role.local_model": ["data", "ml"],
    P + "task_dispatcher.eligible_node_role.remote_model": ["data", "ml"],
    P + "allow_registering_model_via_url": False,
    P + "allow_registering_model_via_local_file": False,
    P + "trusted_url_regex": "^(https?|ftp|file)://[-a-zA-Z0-9+&@#/%?=~_|!:,.;]*[-a-zA-Z0-9+&@#/%=~_|]",
    P + "connector.private_ip_enabled": False,
    P + "remote_inference.enabled": True,
    P + "local_model.enabled": True,
    P + "model_auto_deploy.enable": True,
    P + "model_auto_redeploy.enable": True,
    P + "model_auto_redeploy.lifetime_retry_times": 3,
    P + "model_auto_redeploy_success_ratio": 0.8,
    P + "allow_custom_deployment_plan": False,
    P + "max_model_on_node": 10,
    P + "model_access_control_enabled": False,
    P + "connector_access_control_enabled": False,
}

# MLCommonsSettings.ML_COMMONS_TRUSTED_CONNECTOR_ENDPOINTS_REGEX (3.x default).
_TRUSTED_3X = [
    "^https://runtime\\.sagemaker\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
    "^https://api\\.sagemaker\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
    "^https://api\\.openai\\.com/.*$",
    "^https://api\\.cohere\\.ai/.*$",
    "^https://api\\.deepseek\\.com/.*$",
    "^https://generativelanguage\\.googleapis\\.com/.*$",
    "^https://bedrock-runtime\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
    "^https://bedrock-agent-runtime\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
    "^https://bedrock\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
    "^https://textract\\..*[a-z0-9-]\\.amazonaws\\.com$",
    "^https://comprehend\\..*[a-z0-9-]\\.amazonaws\\.com$",
    "^https://rekognition(-fips)?\\..*[a-z0-9-]\\.amazonaws\\.com$",
]
# 2.9 / 2.11+ (2.10 dropped bedrock-runtime; see the brief §1.8).
_TRUSTED_2X = [
    "^https://runtime\\.sagemaker\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
    "^https://api\\.openai\\.com/.*$",
    "^https://api\\.cohere\\.ai/.*$",
    "^https://bedrock-runtime\\..*[a-z0-9-]\\.amazonaws\\.com/.*$",
]


def new_id() -> str:
    """A 20-character URL-safe id, the shape of OpenSearch's auto-generated document ids."""
    return secrets.token_urlsafe(15)


def now_ms() -> int:
    return int(time.time() * 1000)


def version_tuple(version: str) -> tuple[int, int, int]:
    parts = []
    for p in (version.split("-")[0].split(".") + ["0", "0", "0"])[:3]:
        try:
            parts.append(int(p))
        except ValueError:
            parts.append(0)
    return parts[0], parts[1], parts[2]


def iae(reason: str) -> ApiError:
    """``IllegalArgumentException`` as ML Commons' REST layer renders it (400)."""
    return ApiError(400, "illegal_argument_exception", reason)


SAFE_INPUT_DESCRIPTION = "can only contain letters, numbers, spaces, and basic punctuation (.,!?():@-_'/\")"
_SAFE_PUNCT = frozenset(" \t\n\x0b\f\r.,!?():@-_/'\"")  # Java's \s is ASCII whitespace only


def _safe_text(value: str) -> bool:
    """``^[\\p{L}\\p{N}\\s.,!?():@\\-_/'"]*$`` (``StringUtils.SAFE_INPUT_PATTERN``)."""
    return all(ch in _SAFE_PUNCT or unicodedata.category(ch)[0] in "LN" for ch in value)


def check_safe_fields(version: tuple[int, int, int], fields: dict[str, Any]) -> None:
    """``StringUtils.validateFields`` (ML Commons 3.1+, ml-commons#3805): the names and descriptions of model
    groups, connectors and models take only letters, digits, whitespace and ``.,!?():@-_'/"``; a request
    with anything else is refused before it does anything. 2.x accepts any text."""
    if version < (3, 1, 0):
        return
    errors = [f"{label} {SAFE_INPUT_DESCRIPTION}" for label, value in fields.items()
              if isinstance(value, str) and value.strip() and not _safe_text(value)]
    if errors:
        raise ApiError(400, "action_request_validation_exception",
                       "Validation Failed: " + "".join(f"{n}: {e};" for n, e in enumerate(errors, 1)))


def status_error(status: int, reason: str) -> ApiError:
    """``OpenSearchStatusException(reason, status)``."""
    return ApiError(status, "status_exception", reason)


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _as_list(value: Any, default: list[str]) -> list[str]:
    if value is None:
        return list(default)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return [str(v) for v in parsed]
        except json.JSONDecodeError:
            pass
    return [v.strip() for v in text.split(",") if v.strip()] if text else []


class MLSettings:
    """Reads ``plugins.ml_commons.*`` cluster settings through the engine, with ML Commons' defaults."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.http: Any = None  # the owning service's connector ClientPool

    @property
    def version(self) -> tuple[int, int, int]:
        return version_tuple(str(getattr(self.engine, "version", "3.3.0")))

    def raw(self, key: str) -> Any:
        settings = getattr(self.engine, "settings", None)
        if settings is None:
            return None
        return settings.get(key, None)

    def defaults(self) -> dict[str, Any]:
        """The settings this node reads, with their defaults for this version (for ``include_defaults``)."""
        out = dict(SETTING_DEFAULTS)
        out[P + "model_auto_redeploy.enable"] = self.version >= (2, 12, 0)
        out[P + "trusted_connector_endpoints_regex"] = self._trusted_default()
        return out

    def _trusted_default(self) -> list[str]:
        v = self.version
        if v >= (3, 0, 0):
            return list(_TRUSTED_3X)
        return [r for r in _TRUSTED_2X if "bedrock" not in r] if v[:2] == (2, 10) else list(_TRUSTED_2X)

    def flag(self, name: str) -> bool:
        key = P + name
        default = SETTING_DEFAULTS.get(key, False)
        if name == "model_auto_redeploy.enable":
            default = self.version >= (2, 12, 0)
        return _as_bool(self.raw(key), bool(default))

    def text(self, name: str) -> str:
        key = P + name
        value = self.raw(key)
        return str(SETTING_DEFAULTS.get(key, "") if value is None else value)

    def strings(self, name: str) -> list[str]:
        key = P + name
        if name == "trusted_connector_endpoints_regex":
            return _as_list(self.raw(key), self._trusted_default())
        return _as_list(self.raw(key), SETTING_DEFAULTS.get(key, []))


# System-index mappings, trimmed from ml-commons' common/src/main/resources/index-mappings/*.json
# to the field types the embedded node supports (``flat_object``/user objects become plain objects).
_DATE = {"type": "date", "format": "strict_date_time||epoch_millis"}
_NAME = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}

MAPPINGS: dict[str, dict[str, Any]] = {
    MODEL_GROUP_INDEX: {
        "properties": {
            "name": _NAME,
            "description": {"type": "text"},
            "latest_version": {"type": "integer"},
            "model_group_id": {"type": "keyword"},
            "backend_roles": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "access": {"type": "keyword"},
            "created_time": _DATE,
            "last_updated_time": _DATE,
        }
    },
    MODEL_INDEX: {
        "properties": {
            "algorithm": {"type": "keyword"},
            "name": _NAME,
            "version": {"type": "long"},
            "model_version": {"type": "keyword"},
            "model_group_id": {"type": "keyword"},
            "model_content": {"type": "binary"},
            "chunk_number": {"type": "long"},
            "total_chunks": {"type": "long"},
            "model_id": {"type": "keyword"},
            "description": {"type": "text"},
            "model_format": {"type": "keyword"},
            "model_state": {"type": "keyword"},
            "model_content_size_in_bytes": {"type": "long"},
            "model_content_hash_value": {"type": "keyword"},
            "planning_worker_node_count": {"type": "integer"},
            "current_worker_node_count": {"type": "integer"},
            "planning_worker_nodes": {"type": "keyword"},
            "deploy_to_all_nodes": {"type": "boolean"},
            "is_hidden": {"type": "boolean"},
            "is_enabled": {"type": "boolean"},
            "connector_id": {"type": "keyword"},
            "auto_redeploy_retry_times": {"type": "integer"},
            "created_time": _DATE,
            "last_updated_time": _DATE,
            "last_registered_time": _DATE,
            "last_deployed_time": _DATE,
            "last_undeployed_time": _DATE,
            "model_config": {
                "properties": {
                    "model_type": {"type": "keyword"},
                    "embedding_dimension": {"type": "integer"},
                    "framework_type": {"type": "keyword"},
                    "all_config": {"type": "text"},
                }
            },
        }
    },
    TASK_INDEX: {
        "properties": {
            "model_id": {"type": "keyword"},
            "task_type": {"type": "keyword"},
            "function_name": {"type": "keyword"},
            "state": {"type": "keyword"},
            "input_type": {"type": "keyword"},
            "progress": {"type": "float"},
            "output_index": {"type": "keyword"},
            "worker_node": {"type": "keyword"},
            "create_time": _DATE,
            "last_update_time": _DATE,
            "error": {"type": "text"},
            "is_async": {"type": "boolean"},
        }
    },
    CONNECTOR_INDEX: {
        "properties": {
            "name": _NAME,
            "version": {"type": "keyword"},
            "description": {"type": "text"},
            "protocol": {"type": "keyword"},
            "access": {"type": "keyword"},
            "created_time": _DATE,
            "last_updated_time": _DATE,
        }
    },
}

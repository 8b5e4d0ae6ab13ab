"""Strict pydantic v2 models of the project files (unknown keys are errors).

One resource per file, named by its stem: ``models/<name>.yaml`` (:class:`ModelSpec`),
``pipelines/<name>.yaml`` (:class:`PipelineSpec`), ``mappings/<name>.yaml`` (:class:`IndexSpec`),
the optional ``cluster.yaml`` (:class:`ClusterSpec`) and ``environments/<env>.yaml``
(:class:`EnvironmentSpec`). Values may contain ``${env:NAME}`` references; they stay unresolved
here and are resolved at plan/apply time.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kit.config.envsubst import ENV_REF

__all__ = [
    "ClientConfig",
    "ClusterSpec",
    "ConnectorAction",
    "ConnectorSpec",
    "EnvironmentSpec",
    "FromModel",
    "IndexSpec",
    "ModelSpec",
    "OpenClipSpec",
    "PackageSpec",
    "PipelineSpec",
    "ProbeSpec",
    "ServeSpec",
    "TargetSpec",
    "SPACE_TYPES",
    "VERSION_RE",
]

SPACE_TYPES = ("l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming", "hammingbit")
SpaceType = Literal["l2", "cosinesimil", "innerproduct", "l1", "linf", "hamming", "hammingbit"]
VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _is_env_ref(value: str) -> bool:
    return bool(ENV_REF.fullmatch(value.strip()))


# --------------------------------------------------------------------------------------- models


class ClientConfig(Strict):
    """ML Commons connector ``client_config``; always sent explicitly (pre-3.6 defaults meant no timeout)."""

    max_connection: int = Field(30, ge=1)
    connection_timeout: int = Field(10, ge=1, description="seconds")
    read_timeout: int = Field(60, ge=1, description="seconds")
    retry_backoff_policy: Literal["constant", "exponential_equal_jitter", "exponential_full_jitter"] | None = None
    max_retry_times: int | None = Field(None, ge=-1)
    retry_backoff_millis: int | None = Field(None, ge=0)
    retry_timeout_seconds: int | None = Field(None, ge=0)


class ConnectorAction(Strict):
    action_type: Literal["predict", "PREDICT"] = "predict"
    method: Literal["POST", "GET", "PUT"] = "POST"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    request_body: str | None = None
    pre_process_function: str | None = None
    post_process_function: str | None = None


class ConnectorSpec(Strict):
    """An inline connector: created as a standalone ML Commons connector owned by the model."""

    description: str | None = None
    protocol: Literal["http", "aws_sigv4"] = "http"
    parameters: dict[str, Any] = Field(default_factory=dict)
    credential: dict[str, str] = Field(default_factory=dict)
    client_config: ClientConfig = Field(default_factory=ClientConfig)
    actions: list[ConnectorAction] = Field(min_length=1)

    @field_validator("credential")
    @classmethod
    def _credentials_from_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, val in value.items():
            if not ENV_REF.search(val) and not val.startswith("arn:"):
                raise ValueError(f"credential '{key}' must come from the environment, e.g. '${{env:MY_API_KEY}}' "
                                 "(secrets are never kept in project files)")
        return value


class PackageSpec(Strict):
    """A model package the kit builds (``kit.models.package.build_package``) and uploads or registers by URL."""

    source: str = Field(min_length=1, description="what to package, e.g. all-MiniLM-L6-v2")
    format: Literal["TORCH_SCRIPT", "ONNX"] = "TORCH_SCRIPT"
    register_via: Literal["upload", "url"] = Field("upload", alias="register")
    url: str | None = None

    @model_validator(mode="after")
    def _url_needed(self) -> "PackageSpec":
        if self.register_via == "url" and not self.url:
            raise ValueError("register: url needs 'url' (where the same zip is served)")
        if self.register_via == "upload" and self.url:
            raise ValueError("'url' is only used with register: url")
        return self


class ProbeSpec(Strict):
    """Input for the predict probe run after deploy: one of text, image or raw parameters."""

    text: str | None = None
    image: str | None = Field(None, description="'builtin:gray' or a path relative to the model spec")
    parameters: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_input(self) -> "ProbeSpec":
        if self.text is None and self.image is None and self.parameters is None:
            raise ValueError("give 'text', 'image' or 'parameters'")
        if self.parameters is not None and (self.text is not None or self.image is not None):
            raise ValueError("'parameters' cannot be combined with 'text' or 'image'")
        return self


class OpenClipSpec(Strict):
    model: str
    pretrained: str | None = None


class ServeSpec(BaseModel):
    """What ``oskit serve`` loads for this model. The model server owns the semantics; extra keys allowed."""

    model_config = ConfigDict(extra="allow")

    kind: Literal["clip", "ocr", "tags", "hash", "captions", "text"]
    open_clip: OpenClipSpec | None = None
    preprocess: str | None = None


class ModelSpec(Strict):
    """``models/<name>.yaml``."""

    description: str = ""
    type: Literal["remote", "local_pretrained", "local_custom"]
    task: Literal["embedding", "inference"] = "embedding"
    modality: Literal["text", "image+text", "image"] = "text"
    dimension: int | None = Field(None, ge=1, le=16000)
    space_type: SpaceType | None = None
    normalized: bool = Field(False, description="outputs are L2-normalised (allows innerproduct)")
    group: str | None = Field(None, description="model group name; default '<project>-models'")
    enabled: bool | str = True
    # local_pretrained
    name: str | None = Field(None, description="OpenSearch-provided model name (local_pretrained)")
    version: str | None = None
    format: Literal["TORCH_SCRIPT", "ONNX"] | None = None
    # local_custom
    package: PackageSpec | None = None
    ml_model_config: dict[str, Any] | None = Field(None, alias="model_config")
    # remote
    connector: ConnectorSpec | None = None
    probe: ProbeSpec | None = None
    serve: ServeSpec | None = None

    @field_validator("enabled")
    @classmethod
    def _enabled(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and not _is_env_ref(value):
            raise ValueError("must be true, false or an environment reference like '${env:OSKIT_CAPTIONS_URL:-}'")
        return value

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and not NAME_RE.match(value):
            raise ValueError("use lower-case letters, digits, '.', '_' and '-'")
        return value

    @model_validator(mode="after")
    def _by_type(self) -> "ModelSpec":
        problems = []
        allowed = {
            "remote": {"connector"},
            "local_pretrained": {"name", "version", "format"},
            "local_custom": {"package", "ml_model_config", "version"},
        }[self.type]
        for key in ("connector", "name", "format", "package", "ml_model_config"):
            if key not in allowed and getattr(self, key) is not None:
                shown = "model_config" if key == "ml_model_config" else key
                problems.append(f"'{shown}' is not used by type {self.type}")
        if self.type == "remote" and self.connector is None:
            problems.append("type remote needs a 'connector'")
        if self.type == "local_pretrained":
            for key in ("name", "version", "format"):
                if getattr(self, key) is None:
                    problems.append(f"type local_pretrained needs '{key}'")
        if self.type == "local_custom" and self.package is None:
            problems.append("type local_custom needs a 'package'")
        if self.type != "remote" and self.modality != "text":
            problems.append("local models are text-only in ML Commons (no local image embedding); use type remote")
        if self.task == "embedding":
            served = self._served_dimension(problems)
            if self.dimension is None and served is not None:
                self.dimension = served
            elif served is not None and self.dimension != served:
                problems.append(f"dimension {self.dimension} does not match serve.open_clip.model "
                                f"{self.serve.open_clip.model} ({served}-d); leave 'dimension' out and it "  # type: ignore[union-attr]
                                "follows the model")
            if self.dimension is None and not problems:
                problems.append("an embedding model needs 'dimension'")
            if self.space_type is None:
                problems.append("an embedding model needs 'space_type'")
        elif self.dimension is not None or self.space_type is not None:
            problems.append("'dimension' and 'space_type' are only for task: embedding")
        if self.version is not None and self.type == "local_custom" and not VERSION_RE.match(self.version):
            problems.append("version must look like 1.0.0")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _served_dimension(self, problems: list[str]) -> int | None:
        """The width of the CLIP named in ``serve.open_clip`` (read from its architecture config), so
        switching CLIP is the one line ``open_clip.model``: dimension and mappings follow it."""
        if self.serve is None or self.serve.kind != "clip" or self.serve.open_clip is None:
            return None
        from kit.models.clip_arch import embed_dim

        name = self.serve.open_clip.model
        dim = embed_dim(name)
        if dim is None and self.dimension is None:
            problems.append(f"serve.open_clip.model {name!r} is not an open_clip architecture this machine "
                            "knows (kit/models/clip_configs/ or open_clip's model_configs/), so its dimension "
                            "is unknown; install open_clip_torch (pip install 'oskit[ml]') or set 'dimension'")
        return dim


# ------------------------------------------------------------------------------------ pipelines


class PipelineSpec(Strict):
    """``pipelines/<name>.yaml``: an ingest or search pipeline body; processors name models by logical name."""

    type: Literal["ingest", "search"] | None = None
    description: str = ""
    version: int | None = None
    processors: list[dict[str, Any]] | None = None
    on_failure: list[dict[str, Any]] | None = None
    request_processors: list[dict[str, Any]] | None = None
    response_processors: list[dict[str, Any]] | None = None
    phase_results_processors: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _kind(self) -> "PipelineSpec":
        has_ingest = self.processors is not None or self.on_failure is not None
        has_search = any(x is not None for x in (self.request_processors, self.response_processors,
                                                  self.phase_results_processors))
        if has_ingest and has_search:
            raise ValueError("a pipeline has either 'processors' (ingest) or request/response/phase_results "
                             "processors (search), not both")
        inferred = "ingest" if has_ingest else "search" if has_search else None
        if self.type is None:
            if inferred is None:
                raise ValueError("no processors: give 'processors' (ingest) or 'request_processors' / "
                                 "'response_processors' / 'phase_results_processors' (search)")
            self.type = inferred
        elif inferred is not None and inferred != self.type:
            raise ValueError(f"type is {self.type} but the processors are those of a {inferred} pipeline")
        if self.type == "ingest" and not self.processors:
            raise ValueError("an ingest pipeline needs 'processors'")
        for group in ("processors", "on_failure", "request_processors", "response_processors",
                      "phase_results_processors"):
            for i, proc in enumerate(getattr(self, group) or []):
                if len(proc) != 1 or not isinstance(next(iter(proc.values())), dict):
                    raise ValueError(f"{group}[{i}]: a processor is a mapping with one key (its type), "
                                     "e.g. {text_embedding: {...}}")
        return self


# ------------------------------------------------------------------------------------- mappings


class FromModel(Strict):
    from_model: str


class IndexSpec(Strict):
    """``mappings/<name>.yaml``: an index (or a composable index template) named by the file stem."""

    kind: Literal["index", "index_template"] = "index"
    description: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    mappings: dict[str, Any] = Field(default_factory=dict)
    aliases: dict[str, dict[str, Any]] = Field(default_factory=dict)
    default_pipeline: str | None = Field(None, description="ingest pipeline (logical name)")
    search_pipeline: str | None = Field(None, description="search pipeline (logical name)")
    index_patterns: list[str] | None = None
    priority: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _template(self) -> "IndexSpec":
        if self.kind == "index_template" and not self.index_patterns:
            raise ValueError("kind index_template needs 'index_patterns'")
        if self.kind == "index" and (self.index_patterns is not None or self.priority is not None):
            raise ValueError("'index_patterns' and 'priority' are for kind: index_template")
        if self.mappings and not isinstance(self.mappings.get("properties", {}), dict):
            raise ValueError("mappings.properties must be a mapping")
        return self


# -------------------------------------------------------------------------------------- cluster


class TargetSpec(Strict):
    """The target profile: what ``oskit validate`` checks version rules against (offline)."""

    distribution: Literal["opensearch", "aos", "aoss"] = "opensearch"
    min_version: str = "2.11"

    @field_validator("min_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not VERSION_RE.match(value):
            raise ValueError("must look like 2.19 or 3.3.0")
        return value


class ClusterSpec(Strict):
    """``cluster.yaml`` (optional)."""

    name: str = Field("oskit", description="project name, prefix of the ML resources the kit creates")
    target: TargetSpec = Field(default_factory=TargetSpec)
    settings: dict[str, Any] = Field(default_factory=dict, description="persistent cluster settings (flat keys)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("use lower-case letters, digits, '.', '_' and '-'")
        return value

    @field_validator("settings")
    @classmethod
    def _flat(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, val in value.items():
            if isinstance(val, dict):
                raise ValueError(f"'{key}': use flat setting keys (plugins.ml_commons.x: value)")
        return value


class EnvironmentSpec(Strict):
    """``environments/<env>.yaml``: deep-merged over the project (mappings merge, lists replace)."""

    description: str = ""
    cluster: dict[str, Any] = Field(default_factory=dict)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    pipelines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mappings: dict[str, dict[str, Any]] = Field(default_factory=dict)

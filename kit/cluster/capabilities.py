"""What the target can do: version, distribution, plugins — checked before any write.

Self-managed OpenSearch 2.11+ and 3.x are supported. Amazon OpenSearch Service (AOS) takes remote
models only (no custom local models, no URL registration, no ML Commons file/URL gates); Serverless
(AOSS) has no local models and no ``ml_inference`` processors. Every refusal names the feature and the
version (or distribution) it needs.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from kit.cluster.client import Client
from kit.config.loader import Project, engine_space_problems, iter_processors, knn_fields, version_tuple
from kit.errors import ClusterError, NotFound, Unsupported

log = logging.getLogger("kit.cluster")

__all__ = ["MIN_VERSION", "Target", "detect", "check", "requirements", "Requirement"]

MIN_VERSION = "2.11.0"

# processor → (feature label, first version)
INGEST_PROCESSORS = {
    "text_embedding": ("the text_embedding ingest processor", "2.9.0"),
    "text_image_embedding": ("the text_image_embedding ingest processor", "2.11.0"),
    "sparse_encoding": ("the sparse_encoding ingest processor", "2.11.0"),
    "text_chunking": ("the text_chunking ingest processor", "2.13.0"),
    "ml_inference": ("the ml_inference ingest processor", "2.14.0"),
}
SEARCH_PROCESSORS = {
    "neural_query_enricher": ("the neural_query_enricher search processor", "2.11.0"),
    "normalization-processor": ("the normalization-processor (hybrid search)", "2.10.0"),
    "score-ranker-processor": ("the score-ranker-processor (RRF)", "2.19.0"),
    "ml_inference": ("the ml_inference search processors", "2.16.0"),
}
CONNECTOR_FUNCTIONS = {
    "connector.pre_process.bedrock.multimodal_embedding": "2.16.0",
    "connector.pre_process.bedrock.embedding": "2.12.0",
    "connector.post_process.bedrock.embedding": "2.12.0",
    "connector.pre_process.default.embedding": "2.11.0",
    "connector.post_process.default.embedding": "2.11.0",
    "connector.pre_process.cohere.multimodal_embedding": "2.19.0",
}
PLUGINS = {"ml": "opensearch-ml", "knn": "opensearch-knn", "neural": "opensearch-neural-search"}


@dataclass
class Target:
    url: str
    version: str
    distribution: str = "opensearch"      # opensearch | aos | aoss
    plugins: set[str] | None = None       # component names, None when the cluster does not say
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        name = {"opensearch": "OpenSearch", "aos": "Amazon OpenSearch Service",
                "aoss": "OpenSearch Serverless"}[self.distribution]
        return f"{name} {self.version}" if self.distribution != "aoss" else name

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "version": self.version, "distribution": self.distribution}


def _aws_kind(url: str) -> str | None:
    host = (urlparse(url).hostname or "").lower()
    if host.endswith(".aoss.amazonaws.com"):
        return "aoss"
    if host.endswith(".es.amazonaws.com") or ".aos." in host and host.endswith(".on.aws"):
        return "aos"
    return None


def detect(client: Client) -> Target:
    """GET / and the plugin list; the distribution also from the endpoint's host name."""
    # SigV4 signing (--aws-region) means a managed service even behind a custom domain name.
    service = getattr(client, "aws_service", None)
    kind = _aws_kind(client.url) or {"aoss": "aoss", "es": "aos"}.get(service or "")
    if kind == "aoss":
        return Target(url=client.url, version="serverless", distribution="aoss")
    info = client.info()
    ver = info.get("version") or {}
    number = str(ver.get("number", "0.0.0"))
    dist = str(ver.get("distribution") or "")
    if dist and dist != "opensearch":
        raise Unsupported(f"the target is not OpenSearch (distribution {dist!r})",
                          hint="oskit provisions OpenSearch 2.11+ and 3.x")
    plugins: set[str] | None
    try:
        rows = client.request("GET", "/_cat/plugins", params={"format": "json"})
        plugins = {str(r.get("component")) for r in rows or [] if isinstance(r, dict)}
    except (NotFound, ClusterError):
        plugins = None  # not every endpoint lists plugins; the features then fail on first use
    return Target(url=client.url, version=number, distribution=kind or "opensearch", plugins=plugins, raw=info)


@dataclass(frozen=True)
class Requirement:
    feature: str
    where: str
    min_version: str | None = None
    plugin: str | None = None
    not_on: tuple[str, ...] = ()   # distributions that cannot do it
    hint: str | None = None


def _private_host(url: str) -> bool:
    host = urlparse(url.replace("${", "").replace("}", "")).hostname or ""
    if host in ("localhost",) or host.endswith(".local") or host.endswith(".internal"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def requirements(project: Project, connector_urls: dict[str, list[str]] | None = None) -> list[Requirement]:
    """Everything the project needs from its target (versions, plugins, distribution limits)."""
    reqs: list[Requirement] = [Requirement("oskit", "the project", MIN_VERSION)]
    for name, spec in sorted(project.models.items()):
        rel = project.file_of("models", name)
        reqs.append(Requirement("ML Commons", rel, "2.9.0", plugin=PLUGINS["ml"]))
        if spec.type == "remote":
            reqs.append(Requirement("remote models (connectors)", rel, "2.9.0"))
            for action in spec.connector.actions if spec.connector else []:
                for fn in (action.pre_process_function, action.post_process_function):
                    if fn in CONNECTOR_FUNCTIONS:
                        reqs.append(Requirement(f"the built-in connector function {fn}", rel, CONNECTOR_FUNCTIONS[fn]))
            for url in (connector_urls or {}).get(name, []):
                if _private_host(url):
                    reqs.append(Requirement(f"connectors to private or loopback hosts ({urlparse(url).hostname}, "
                                            "plugins.ml_commons.connector.private_ip_enabled)", rel, "2.15.0",
                                            not_on=("aos", "aoss"),
                                            hint="use a public HTTPS endpoint for managed services"))
        elif spec.type == "local_custom":
            via = spec.package.register_via if spec.package else "upload"
            feature = "registering custom local models by URL" if via == "url" else \
                "registering custom local models from a file (chunk upload)"
            reqs.append(Requirement(feature, rel, "2.7.0", not_on=("aos", "aoss"),
                                    hint="use a remote model (connector) on Amazon OpenSearch Service"))
        else:
            reqs.append(Requirement("OpenSearch-provided pretrained local models", rel, "2.6.0", not_on=("aoss",),
                                    hint="use a remote model on Serverless"))
    for name, pspec in sorted(project.pipelines.items()):
        rel = project.file_of("pipelines", name)
        table = INGEST_PROCESSORS if pspec.type == "ingest" else SEARCH_PROCESSORS
        for _, ptype, _cfg in iter_processors(pspec):
            if ptype in table:
                label, since = table[ptype]
                plugin = PLUGINS["ml"] if ptype == "ml_inference" else PLUGINS["neural"]
                reqs.append(Requirement(label, rel, since, plugin=plugin,
                                        not_on=("aoss",) if ptype == "ml_inference" else ()))
    for name, ispec in sorted(project.indices.items()):
        rel = project.file_of("mappings", name)
        for _fpath, _k, _d in knn_fields(ispec.mappings):
            reqs.append(Requirement("k-NN vector fields", rel, "2.0.0", plugin=PLUGINS["knn"]))
            break
    for key in project.cluster.settings:
        if key in ("plugins.ml_commons.allow_registering_model_via_url",
                   "plugins.ml_commons.allow_registering_model_via_local_file"):
            reqs.append(Requirement(f"the cluster setting {key}", "cluster.yaml", None, not_on=("aos", "aoss"),
                                    hint="remove it from cluster.yaml for managed services (use an environment overlay)"))
    return reqs


def check(project: Project, target: Target, connector_urls: dict[str, list[str]] | None = None) -> list[str]:
    """Raise :class:`Unsupported` listing every requirement the target misses; return notes."""
    problems: list[str] = []
    seen: set[str] = set()
    tv = version_tuple(target.version) if target.distribution != "aoss" else None
    for req in requirements(project, connector_urls):
        key = f"{req.feature}|{req.where}"
        if key in seen:
            continue
        seen.add(key)
        if target.distribution in req.not_on:
            problems.append(f"{req.where}: {req.feature} is not available on {target.label}"
                            + (f" ({req.hint})" if req.hint else ""))
        elif tv is not None and req.min_version and tv < version_tuple(req.min_version):
            problems.append(f"{req.where}: {req.feature} needs OpenSearch {req.min_version.removesuffix('.0')}+ "
                            f"(target is {target.label})")
        if req.plugin and target.plugins is not None and target.plugins and req.plugin not in target.plugins:
            problems.append(f"{req.where}: {req.feature} needs the {req.plugin} plugin (not installed)")
    if tv is not None:
        for name, ispec in sorted(project.indices.items()):
            for _fpath, kpath, definition in knn_fields(ispec.mappings):
                for msg, _hint in engine_space_problems(definition, tv):
                    problems.append(f"{project.file_of('mappings', name)}: mappings.{kpath}: {msg}")
    if tv is not None and tv >= (3, 1, 0):
        problems += _unsafe_descriptions(project)
    seen_p: list[str] = []
    for p in problems:
        if p not in seen_p:
            seen_p.append(p)
    if seen_p:
        raise Unsupported(f"{target.label} cannot run this project:\n  " + "\n  ".join(seen_p),
                          hint="upgrade the cluster or change the project (nothing was written)")
    return []


# ML Commons 3.1+ (StringUtils.SAFE_INPUT_PATTERN) refuses other characters in the names and descriptions
# of model groups, connectors and models: found before any write instead of half-way through apply.
_SAFE_EXTRA = frozenset(" \t\n\x0b\f\r.,!?():@-_/'\"")


def _unsafe_descriptions(project: Project) -> list[str]:
    import unicodedata

    def bad(text: str) -> str:
        return "".join(sorted({ch for ch in text if ch not in _SAFE_EXTRA and unicodedata.category(ch)[0] not in "LN"}))

    out = []
    for name, spec in sorted(project.models.items()):
        texts = [("description", spec.description or "")]
        if spec.connector is not None:
            texts.append(("connector.description", getattr(spec.connector, "description", None) or ""))
        for key, text in texts:
            if chars := bad(text):
                out.append(f"{project.file_of('models', name)}: {key}: OpenSearch 3.1+ refuses {chars!r} in ML "
                           "descriptions (letters, digits, spaces and .,!?():@-_'/\" only)")
    return out

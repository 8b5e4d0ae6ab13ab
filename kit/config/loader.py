"""Project folder → :class:`Project`: safe_load → strict models → cross-file checks, all errors at once.

Never touches the network and never resolves ``${env:…}`` (that happens at plan/apply time).
Every problem is reported as ``file: dotted.path: message (hint)`` through one
:class:`kit.errors.ConfigError`; no other exception escapes :func:`load_project`.
"""

from __future__ import annotations

import copy
import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from kit.config.envsubst import ENV_REF as ENV_REF_RE
from kit.config.envsubst import find_refs, malformed_refs
from kit.config.known_settings import KNOWN_SETTINGS, NAMESPACES
from kit.config.schema import SPACE_TYPES, ClusterSpec, EnvironmentSpec, IndexSpec, ModelSpec, PipelineSpec
from kit.errors import ConfigError

log = logging.getLogger("kit.config")

__all__ = ["MAX_YAML_NODES", "Project", "load_project", "safe_load_bounded", "version_tuple", "MODEL_REF_KEYS", "iter_processors",
           "knn_fields", "processor_vector_outputs"]

Problem = tuple[str, str, str, "str | None"]

# Keys inside a processor that name models by logical name → the key OpenSearch expects.
MODEL_REF_KEYS = {"model": "model_id", "default_model": "default_model_id"}
RAW_ID_KEYS = ("model_id", "default_model_id", "neural_field_default_id")
EMBEDDING_PROCESSORS = ("text_embedding", "text_image_embedding", "sparse_encoding")


def version_tuple(version: str) -> tuple[int, int, int]:
    parts = [int(p) for p in version.split("-")[0].split(".")[:3] if p.isdigit()]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


@dataclass
class Project:
    """A loaded, validated project. ``files`` maps ``(kind, name)`` to the file it came from."""

    root: Path
    cluster: ClusterSpec
    models: dict[str, ModelSpec]
    pipelines: dict[str, PipelineSpec]
    indices: dict[str, IndexSpec]
    env: str | None = None
    files: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.cluster.name

    def model_group(self, model: str) -> str:
        return self.models[model].group or f"{self.name}-models"

    def file_of(self, kind: str, name: str) -> str:
        return self.files.get((kind, name), f"{kind}/{name}.yaml")


# ------------------------------------------------------------------------------------ YAML input


# A project file is small: a document whose aliases expand past this many values is an alias bomb
# ("billion laughs"), which would otherwise keep every later walk over the data busy for minutes.
MAX_YAML_NODES = 100_000


class AliasBomb(yaml.YAMLError):
    """A YAML document whose aliases expand beyond :data:`MAX_YAML_NODES` values."""


def expanded_size(node: yaml.Node, limit: int = MAX_YAML_NODES) -> int:
    """How many values ``node`` stands for once every alias is expanded (memoised: linear in the nodes)."""
    memo: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        memo[key] = limit + 1  # a cycle through an alias counts as unbounded
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        memo[key] = min(total, limit + 1)
        return memo[key]

    return size(node)


class BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents whose aliases expand beyond :data:`MAX_YAML_NODES` values."""

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None and expanded_size(node) > MAX_YAML_NODES:
            raise AliasBomb(f"YAML aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?)")
        return node


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` with the alias-expansion bound of :class:`BoundedSafeLoader`."""
    return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 - SafeLoader subclass


class _StrictLoader(BoundedSafeLoader):
    """safe_load that rejects duplicate keys (a silent last-wins is a classic config bug)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "found an unhashable key",
                                                    key_node.start_mark) from None
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=deep)  # type: ignore[no-untyped-call]
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path, rel: str, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append((rel, "", "not UTF-8 text", "save the file as UTF-8"))
        return None
    except OSError as exc:
        problems.append((rel, "", f"cannot read: {exc.strerror or exc}", None))
        return None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except AliasBomb as exc:
        problems.append((rel, "", str(exc), "write the values out, or use fewer nested aliases"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append((rel, where, f"invalid YAML: {what}", "check indentation and quoting"))
        return None
    except RecursionError:
        problems.append((rel, "", "invalid YAML: nested too deeply", None))
        return None
    if data is None:
        problems.append((rel, "", "the file is empty", "remove it or describe the resource"))
        return None
    if not isinstance(data, dict):
        problems.append((rel, "", f"expected a mapping at the top level, got {type(data).__name__}", None))
        return None
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        problems.append((rel, "", f"keys must be strings, got {bad_keys[0]!r}", "quote the key"))
        return None
    return data


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _pydantic_problems(rel: str, model: type[BaseModel], exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        # pydantic adds union-member tags (e.g. 'bool', 'str') to the location; keep real keys only.
        loc = tuple(p for p in loc if p not in ("bool", "str", "int", "dict[str,any]", "list[dict[str,any]]"))
        path = _dotted(loc)
        etype = err["type"]
        hint = None
        if etype == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            parent = _dotted(loc[:-1])
            msg = f"unknown key '{key}'"
            path = parent
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else (f"known keys: {', '.join(known)}" if known else None)
        elif etype == "missing":
            msg = f"missing required key '{loc[-1]}'" if loc else "missing value"
            path = _dotted(loc[:-1])
        elif etype == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
        else:
            msg = str(err["msg"])
            if "input" in err and not isinstance(err["input"], (dict, list)):
                shown = repr(err["input"])
                msg += f" (got {shown[:60]})"
        problems.append((rel, path, msg, hint))
    return problems


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names (aliases) valid at ``loc`` inside ``model``, for 'did you mean' hints."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields:
            return []
        target = None
        for fname, finfo in fields.items():
            if part in (fname, finfo.alias):
                target = finfo.annotation
        if target is None:
            return []
        current = _unwrap(target)
    fields = getattr(current, "model_fields", None) or {}
    return sorted(finfo.alias or fname for fname, finfo in fields.items())


def _unwrap(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _deep_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(patch)


# ---------------------------------------------------------------------------- helpers for checks


def iter_processors(spec: PipelineSpec) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(dotted path, processor type, config)`` for every processor, including nested on_failure."""
    for group in ("processors", "on_failure", "request_processors", "response_processors",
                  "phase_results_processors"):
        for i, proc in enumerate(getattr(spec, group) or []):
            (ptype, cfg), = proc.items()
            yield f"{group}[{i}].{ptype}", ptype, cfg
            for j, sub in enumerate(cfg.get("on_failure") or [] if isinstance(cfg, dict) else []):
                if isinstance(sub, dict) and len(sub) == 1:
                    (stype, scfg), = sub.items()
                    if isinstance(scfg, dict):
                        yield f"{group}[{i}].{ptype}.on_failure[{j}].{stype}", stype, scfg


def processor_models(ptype: str, cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key path inside cfg, logical model name)`` referenced by one processor."""
    refs = []
    for key in MODEL_REF_KEYS:
        if isinstance(cfg.get(key), str):
            refs.append((key, cfg[key]))
    nfd = cfg.get("neural_field_default")
    if isinstance(nfd, dict):
        for fld, model in nfd.items():
            if isinstance(model, str):
                refs.append((f"neural_field_default.{fld}", model))
    return refs


def processor_vector_outputs(ptype: str, cfg: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(key path, target field, model)`` for processors that write (or query) a model's vectors."""
    model = cfg.get("model")
    out: list[tuple[str, str, str]] = []
    if ptype == "text_embedding" and isinstance(model, str) and isinstance(cfg.get("field_map"), dict):
        for src, dst in cfg["field_map"].items():
            if isinstance(dst, str):
                out.append((f"field_map.{src}", dst, model))
    if ptype == "text_image_embedding" and isinstance(model, str) and isinstance(cfg.get("embedding"), str):
        out.append(("embedding", cfg["embedding"], model))
    if ptype == "neural_query_enricher" and isinstance(cfg.get("neural_field_default"), dict):
        for fld, m in cfg["neural_field_default"].items():
            if isinstance(m, str):
                out.append((f"neural_field_default.{fld}", fld, m))
    return out


def knn_fields(mappings: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(field path, dotted key path in the file, definition)`` of every knn_vector field."""
    props = mappings.get("properties") if isinstance(mappings, Mapping) else None
    if not isinstance(props, Mapping):
        return
    for name, definition in props.items():
        if not isinstance(definition, Mapping):
            continue
        fpath = f"{prefix}{name}"
        if definition.get("type") == "knn_vector":
            yield fpath, f"properties.{name}", dict(definition)
        for sub_path, key_path, sub in knn_fields(definition, prefix=fpath + "."):
            yield sub_path, f"properties.{name}.{key_path}", sub


def _knn_space(definition: Mapping[str, Any]) -> str:
    method = definition.get("method") if isinstance(definition.get("method"), Mapping) else {}
    return str(definition.get("space_type") or method.get("space_type") or "l2")


def _knn_engine(definition: Mapping[str, Any], version: tuple[int, int, int]) -> str:
    method = definition.get("method") if isinstance(definition.get("method"), Mapping) else {}
    if method.get("engine"):
        return str(method["engine"])
    return "faiss" if version >= (2, 18, 0) else "nmslib"


# The k-NN plugin's enums (KNNEngine, SpaceType, VectorDataType, Mode, CompressionLevel, method names):
# an unknown value is rejected by the cluster at index creation, after models and pipelines were made.
KNN_ENUMS: dict[str, tuple[str, ...]] = {
    "method.engine": ("faiss", "lucene", "nmslib"),
    "method.name": ("hnsw", "ivf"),
    "method.space_type": SPACE_TYPES,
    "space_type": SPACE_TYPES,
    "data_type": ("float", "byte", "binary", "half_float"),
    "mode": ("in_memory", "on_disk"),
    "compression_level": ("1x", "2x", "4x", "8x", "16x", "32x", "64x"),
}


def knn_enum_problems(definition: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """``(key path, message, hint)`` for each value of a knn_vector field outside the plugin's enums."""
    out: list[tuple[str, str, str | None]] = []
    for key_path, allowed in KNN_ENUMS.items():
        value: Any = definition
        for part in key_path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None or value in allowed or (isinstance(value, str) and ENV_REF_RE.search(value)):
            continue
        close = difflib.get_close_matches(str(value), allowed, n=1)
        what = key_path.rpartition(".")[2]
        out.append((key_path, f"unknown {what} {value!r} (known: {', '.join(allowed)})",
                    f"did you mean '{close[0]}'?" if close else None))
    return out


def engine_space_problems(definition: Mapping[str, Any], version: tuple[int, int, int]) -> list[tuple[str, str]]:
    """(message, hint) for engine × space × version rules of the k-NN plugin (brief §6)."""
    engine = _knn_engine(definition, version)
    space = _knn_space(definition)
    vs = ".".join(map(str, version))
    out: list[tuple[str, str]] = []
    if engine == "nmslib" and version >= (3, 0, 0):
        out.append((f"engine nmslib cannot be used for new indices on OpenSearch {vs} (rejected from 3.0)",
                    "use engine: faiss or lucene"))
    if engine == "faiss" and space == "cosinesimil" and version < (2, 19, 0):
        out.append((f"faiss with cosinesimil needs OpenSearch 2.19 (target {vs})",
                    "use engine: lucene, or L2-normalised vectors with innerproduct"))
    if engine == "faiss" and space not in ("l2", "innerproduct", "hamming", "cosinesimil"):
        out.append((f"faiss does not support space_type {space}", "use l2, innerproduct or cosinesimil"))
    if engine == "lucene" and space not in ("l2", "cosinesimil", "innerproduct"):
        out.append((f"lucene does not support space_type {space}", "use l2, cosinesimil or innerproduct"))
    if engine == "lucene" and space == "innerproduct" and version < (2, 13, 0):
        out.append((f"lucene with innerproduct needs OpenSearch 2.13 (target {vs})", "use cosinesimil"))
    return out


def space_fits(model: ModelSpec, space: str) -> bool:
    """A model's vectors fit a field's space type when they match, or any cosine-like space if normalised."""
    if model.space_type == space:
        return True
    if model.normalized or model.space_type == "cosinesimil":
        # cosinesimil ≡ innerproduct ordering only for unit vectors, so only normalised outputs qualify.
        return model.normalized and space in ("cosinesimil", "innerproduct")
    return False


# ---------------------------------------------------------------------------------------- loader


def load_project(path: str | Path = ".", *, env: str | None = None) -> Project:
    """Load and check a project folder; raise one :class:`ConfigError` listing every problem."""
    try:
        return _load(Path(path), env)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError("the project is nested too deeply to read") from None


def _load(root: Path, env: str | None) -> Project:
    problems: list[Problem] = []
    if not root.is_dir():
        raise ConfigError(f"project folder not found: {root}", hint="pass --project DIR")
    if not any((root / d).is_dir() for d in ("models", "pipelines", "mappings")) and not (root / "cluster.yaml").exists():
        raise ConfigError(f"{root} is not an oskit project (no models/, pipelines/, mappings/ or cluster.yaml)",
                          hint="run oskit in the project folder or pass --project DIR")

    raw: dict[str, dict[str, dict[str, Any]]] = {"models": {}, "pipelines": {}, "mappings": {}}
    files: dict[tuple[str, str], str] = {}
    for kind in raw:
        folder = root / kind
        if not folder.is_dir():
            continue
        names = sorted(folder.iterdir())
        for p in names:
            if p.suffix == ".yml":
                problems.append((f"{kind}/{p.name}", "", "use the .yaml extension", f"rename to {p.stem}.yaml"))
            if p.suffix != ".yaml" or p.name.startswith("."):
                continue
            rel = f"{kind}/{p.name}"
            files[(kind, p.stem)] = rel
            if not _valid_name(p.stem):
                problems.append((rel, "", f"invalid resource name '{p.stem}'",
                                 "file stems are resource names: lower-case letters, digits, '-', '_' and '.'"))
                continue
            data = _read_yaml(p, rel, problems)
            if data is not None:
                raw[kind][p.stem] = data

    cluster_raw: dict[str, Any] = {}
    if (root / "cluster.yaml").exists():
        cluster_raw = _read_yaml(root / "cluster.yaml", "cluster.yaml", problems) or {}

    patches: dict[str, tuple[str, dict[str, Any]]] = {}  # base file → (key prefix in the overlay, its patch)
    env_rel = ""
    if env is not None:
        env_rel = f"environments/{env}.yaml"
        env_path = root / "environments" / f"{env}.yaml"
        if not _valid_name(env) or not env_path.is_file():
            known = sorted(p.stem for p in (root / "environments").glob("*.yaml")) if (root / "environments").is_dir() else []
            raise ConfigError(f"unknown environment '{env}' (known: {', '.join(known) or 'none'})",
                              hint=f"create {env_rel}")
        env_data = _read_yaml(env_path, env_rel, problems)
        if env_data is not None:
            try:
                overlay = EnvironmentSpec.model_validate(env_data)
            except ValidationError as exc:
                problems.extend(_pydantic_problems(env_rel, EnvironmentSpec, exc))
            else:
                cluster_raw = _deep_merge(cluster_raw, overlay.cluster)
                if overlay.cluster:
                    patches["cluster.yaml"] = ("cluster", overlay.cluster)
                for kind in ("models", "pipelines", "mappings"):
                    for name, patch in getattr(overlay, kind).items():
                        if name not in raw[kind]:
                            known = ", ".join(sorted(raw[kind])) or "none"
                            problems.append((env_rel, f"{kind}.{name}", f"no such resource in {kind}/ (known: {known})",
                                             None))
                            continue
                        raw[kind][name] = _deep_merge(raw[kind][name], patch)
                        patches[files[(kind, name)]] = (f"{kind}.{name}", patch)

    for rel, data in [("cluster.yaml", cluster_raw)] + [
        (files[(k, n)], d) for k in raw for n, d in raw[k].items()
    ]:
        for ref_path, bad in _malformed(data):
            problems.append((rel, ref_path, f"malformed environment reference {bad!r}",
                             "write ${env:NAME} or ${env:NAME:-default}"))

    cluster = _validate(ClusterSpec, cluster_raw, "cluster.yaml", problems) or ClusterSpec()
    models = {n: m for n, d in raw["models"].items()
              if (m := _validate(ModelSpec, d, files[("models", n)], problems)) is not None}
    pipelines = {n: m for n, d in raw["pipelines"].items()
                 if (m := _validate(PipelineSpec, d, files[("pipelines", n)], problems)) is not None}
    indices = {n: m for n, d in raw["mappings"].items()
               if (m := _validate(IndexSpec, d, files[("mappings", n)], problems)) is not None}

    project = Project(root=root, cluster=cluster, models=models, pipelines=pipelines, indices=indices,
                      env=env, files=files)
    # Cross-file checks only see resources that parsed; skip references to files that failed to parse.
    failed = {(k, n) for k in raw for n in raw[k]} - {("models", n) for n in models} \
        - {("pipelines", n) for n in pipelines} - {("mappings", n) for n in indices}
    problems.extend(_cross_checks(project, {n for k, n in failed if k == "models"},
                                  {n for k, n in failed if k == "pipelines"}))
    if patches:
        problems = [_attribute(p, patches, env_rel) for p in problems]
    if problems:
        count = len(problems)
        raise ConfigError(f"{count} problem{'s' if count != 1 else ''} in the project", problems=problems)
    return project


def _attribute(problem: Problem, patches: dict[str, tuple[str, dict[str, Any]]], env_rel: str) -> Problem:
    """A problem in a value the environment overlay set is reported against the overlay file."""
    rel, path, msg, hint = problem
    if rel not in patches:
        return problem
    prefix, patch = patches[rel]
    key_path = path
    if msg.startswith("unknown key '"):  # the path is the parent; the key is in the message
        key = msg.split("'")[1]
        key_path = f"{path}.{key}" if path else key
    if key_path and _in_patch(patch, key_path):
        return (env_rel, f"{prefix}.{path}" if path else prefix, msg, hint)
    return problem


def _in_patch(patch: Any, dotted: str) -> bool:
    """Whether the overlay ``patch`` sets ``dotted`` (or a mapping or list above it, which it then replaced)."""
    import re

    node = patch
    for m in re.finditer(r"[^.\[\]]+", dotted):
        part = m.group(0)
        if isinstance(node, list):
            return True  # lists replace: everything below came from the overlay
        if not isinstance(node, dict):
            return False
        if part in node:
            node = node[part]
            continue
        rest = dotted[m.start():]  # flat keys with dots (cluster settings): the rest of the path is one key
        return any(rest == k or rest.startswith(k + ".") for k in node)
    return True


def _valid_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name))


def _malformed(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        for bad in malformed_refs(value):
            yield _dotted(path), bad
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _malformed(v, path + (str(k),))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _malformed(v, path + (i,))


def _validate(model: type[Any], data: dict[str, Any], rel: str, problems: list[Problem]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(rel, model, exc))
        return None


def _known(names: Any) -> str:
    return ", ".join(sorted(names)) or "none"


def _cross_checks(project: Project, broken_models: set[str], broken_pipelines: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    models = project.models
    target = project.cluster.target
    tver = version_tuple(target.min_version)

    for key in project.cluster.settings:
        if key.startswith(NAMESPACES) and key not in KNOWN_SETTINGS:
            close = difflib.get_close_matches(key, sorted(KNOWN_SETTINGS), n=1, cutoff=0.8)
            problems.append(("cluster.yaml", f"settings.{key}", f"unknown cluster setting '{key}'",
                             f"did you mean '{close[0]}'?" if close else "see the plugin's settings reference"))

    # Model groups: one name per group, and a group name that is not another project's.
    for name, spec in models.items():
        rel = project.file_of("models", name)
        if spec.probe and spec.probe.image and not spec.probe.image.startswith("builtin:"):
            if not (project.root / "models" / spec.probe.image).is_file():
                problems.append((rel, "probe.image", f"file not found: {spec.probe.image}",
                                 "use 'builtin:gray' or a path relative to models/"))
        if spec.type == "local_pretrained" and spec.name and spec.name.startswith("huggingface/") is False:
            problems.append((rel, "name", f"'{spec.name}' is not an OpenSearch-provided model name",
                             "e.g. huggingface/sentence-transformers/all-MiniLM-L6-v2"))
        if target.distribution in ("aos", "aoss") and spec.type == "local_custom":
            problems.append((rel, "type", f"custom local models cannot be registered on "
                             f"{'Amazon OpenSearch Service' if target.distribution == 'aos' else 'OpenSearch Serverless'}",
                             "use type: remote (a connector)"))
        if target.distribution == "aoss" and spec.type == "local_pretrained":
            problems.append((rel, "type", "OpenSearch Serverless has no local models", "use type: remote"))

    # Pipelines: model references, processor/model fit, raw ids.
    for pname, pspec in project.pipelines.items():
        rel = project.file_of("pipelines", pname)
        for ppath, ptype, cfg in iter_processors(pspec):
            for key in RAW_ID_KEYS:
                if key in cfg:
                    logical = {"model_id": "model", "default_model_id": "default_model",
                               "neural_field_default_id": "neural_field_default"}[key]
                    problems.append((rel, f"{ppath}.{key}", "model ids differ per cluster; name the model instead",
                                     f"use {logical}: <model name from models/>"))
            for key, mname in processor_models(ptype, cfg):
                if mname in broken_models:
                    continue
                if mname not in models:
                    every = set(models) | broken_models
                    close = difflib.get_close_matches(mname, sorted(every), n=1)
                    problems.append((rel, f"{ppath}.{key}", f"unknown model '{mname}' (known: {_known(every)})",
                                     f"did you mean '{close[0]}'?" if close else f"add models/{mname}.yaml"))
                    continue
                m = models[mname]
                if ptype in EMBEDDING_PROCESSORS + ("neural_query_enricher",) and m.task != "embedding":
                    problems.append((rel, f"{ppath}.{key}", f"{ptype} needs an embedding model; '{mname}' has task "
                                     f"{m.task}", "use ml_inference for non-embedding models"))
                if ptype == "text_embedding" and m.modality != "text":
                    problems.append((rel, f"{ppath}.{key}", f"text_embedding needs a text model; '{mname}' is "
                                     f"{m.modality} (its multimodal pre-process would read a second text as an image)",
                                     "use a text model (e.g. models/text.yaml)"))
                if ptype == "text_image_embedding" and m.modality != "image+text":
                    problems.append((rel, f"{ppath}.{key}", f"text_image_embedding needs an image+text model; "
                                     f"'{mname}' is {m.modality}", None))
                if ptype == "ml_inference" and m.type != "remote" and "model_input" not in cfg:
                    problems.append((rel, f"{ppath}", "ml_inference on a local model needs 'model_input'",
                                     "see the ML Commons ml_inference processor docs"))
            if ptype == "text_image_embedding":
                fm = cfg.get("field_map")
                if isinstance(fm, dict):
                    for k, v in fm.items():
                        if k not in ("text", "image"):
                            problems.append((rel, f"{ppath}.field_map.{k}", "text_image_embedding field_map keys "
                                             "are 'text' and 'image'", None))
                        elif isinstance(v, str) and "." in v:
                            problems.append((rel, f"{ppath}.field_map.{k}", "text_image_embedding reads top-level "
                                             "fields only (no dotted paths)", None))
                if not isinstance(cfg.get("embedding"), str):
                    problems.append((rel, ppath, "missing required key 'embedding'", "the knn_vector field to write"))

    # Indices: pipelines exist and fit, knn dims and spaces fit the models.
    for iname, ispec in project.indices.items():
        rel = project.file_of("mappings", iname)
        for key, want in (("default_pipeline", "ingest"), ("search_pipeline", "search")):
            pref = getattr(ispec, key)
            if pref is None or pref in broken_pipelines:
                continue
            if pref not in project.pipelines:
                problems.append((rel, key, f"unknown pipeline '{pref}' (known: {_known(project.pipelines)})",
                                 f"add pipelines/{pref}.yaml"))
            elif project.pipelines[pref].type != want:
                problems.append((rel, key, f"'{pref}' is a {project.pipelines[pref].type} pipeline, "
                                 f"{key} needs {'an' if want == 'ingest' else 'a'} {want} pipeline", None))
        for key in ("index.default_pipeline", "default_pipeline", "index.search.default_pipeline"):
            if _flat_settings(ispec.settings).get(_index_key(key)) is not None:
                problems.append((rel, f"settings.{key}", "set pipelines with the top-level keys 'default_pipeline' "
                                 "/ 'search_pipeline' (logical names)", None))
        knn_by_field: dict[str, dict[str, Any]] = {}
        for fpath, kpath, definition in knn_fields(ispec.mappings):
            knn_by_field[fpath] = definition
            dim = definition.get("dimension")
            if isinstance(dim, dict):
                if set(dim) != {"from_model"} or not isinstance(dim.get("from_model"), str):
                    problems.append((rel, f"mappings.{kpath}.dimension", "expected a number or {from_model: <model>}",
                                     None))
                    continue
                mname = dim["from_model"]
                if mname in broken_models:
                    continue
                if mname not in models:
                    every = set(models) | broken_models
                    close = difflib.get_close_matches(mname, sorted(every), n=1)
                    problems.append((rel, f"mappings.{kpath}.dimension.from_model",
                                     f"unknown model '{mname}' (known: {_known(every)})",
                                     f"did you mean '{close[0]}'?" if close else None))
                    continue
                if models[mname].dimension is None:
                    problems.append((rel, f"mappings.{kpath}.dimension.from_model",
                                     f"model '{mname}' has no dimension (task {models[mname].task})", None))
                    continue
                definition["dimension"] = models[mname].dimension
            elif not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 16000:
                problems.append((rel, f"mappings.{kpath}.dimension", "expected 1..16000 or {from_model: <model>}",
                                 None))
            enum_problems = knn_enum_problems(definition)
            for key_path, msg, hint in enum_problems:
                problems.append((rel, f"mappings.{kpath}.{key_path}", msg, hint))
            for msg, hint in ([] if enum_problems else engine_space_problems(definition, tver)):
                problems.append((rel, f"mappings.{kpath}", msg, hint + " (cluster.yaml target.min_version sets the "
                                 "oldest version checked)"))
            knn_setting = _flat_settings(ispec.settings).get("index.knn")
            if definition.get("method") and str(knn_setting).lower() != "true":
                problems.append((rel, f"mappings.{kpath}.method", "a knn_vector field with a method needs "
                                 "settings index.knn: true", "add settings: {index.knn: true}"))
        # Vectors written by the default pipeline and queried through the search pipeline.
        for key in ("default_pipeline", "search_pipeline"):
            pref = getattr(ispec, key)
            if pref is None or pref not in project.pipelines:
                continue
            prel = project.file_of("pipelines", pref)
            for ppath, ptype, cfg in iter_processors(project.pipelines[pref]):
                for kp, fieldname, mname in processor_vector_outputs(ptype, cfg):
                    if mname not in models:
                        continue
                    m = models[mname]
                    if fieldname not in knn_by_field:
                        problems.append((prel, f"{ppath}.{kp}", f"'{fieldname}' is not a knn_vector field of index "
                                         f"'{iname}' ({rel})", f"map it as knn_vector with dimension "
                                         f"{{from_model: {mname}}}"))
                        continue
                    d = knn_by_field[fieldname]
                    if isinstance(d.get("dimension"), int) and m.dimension is not None and d["dimension"] != m.dimension:
                        problems.append((rel, f"mappings.properties.{fieldname}.dimension",
                                         f"dimension {d['dimension']} does not match model '{mname}' ({m.dimension}) "
                                         f"used by {prel}", f"use dimension: {{from_model: {mname}}}"))
                    space = _knn_space(d)
                    if m.space_type is not None and not space_fits(m, space):
                        problems.append((rel, f"mappings.properties.{fieldname}", f"space_type {space} does not fit "
                                         f"model '{mname}' (space_type {m.space_type})",
                                         f"use space_type: {m.space_type}"))
    return problems


def _index_key(key: str) -> str:
    return key if key.startswith("index.") else f"index.{key}"


def _flat_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested settings and prefix ``index.``: ``{knn: true}`` → ``{"index.knn": True}``."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flat_settings(v, key + "."))
        else:
            out[_index_key(key)] = v
    return out


def flat_index_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    return _flat_settings(settings)


def env_refs(project: Project) -> list[tuple[str, str, str | None]]:
    """``(file, NAME, default)`` for every environment reference in the project (for docs and checks)."""
    out = []
    for (kind, name), rel in sorted(project.files.items()):
        spec: Any = {"models": project.models, "pipelines": project.pipelines, "mappings": project.indices}[kind].get(name)
        if spec is None:
            continue
        for _, var, default in find_refs(spec.model_dump(by_alias=True, exclude_none=True)):
            out.append((rel, var, default))
    return out



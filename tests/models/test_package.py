"""ML Commons packages: layout, register fields, and embeddings proven equal to sentence-transformers.

Each package is loaded twice the way ML Commons does it: by a small loader in this file that mirrors
DJL's translators (torch.jit.load + tokenizers, one text at a time, dict in/out; onnxruntime with
named inputs and ML Commons' pooling), and by the embedded node's own predict path
(``kit.node.ml.local.LocalModel``).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kit.errors import PackageError
from kit.models.package import build_clip_text_package, build_package, read_package

TEXTS = [
    "a red circle on a white background",
    "warm up sentence",
    "The quick brown fox jumps over the lazy dog.",
    "OpenSearch ML Commons deploys TorchScript and ONNX text-embedding models.",
    "Ünïcödé — ☕ emoji and accents, 日本語のテキスト",
    "x",
    " ".join(["a very long document that must be truncated at the model's maximum length"] * 40),
]


# --- a loader that mirrors ML Commons' DJL translators (brief §2.3) -------------------------------


def _unzip(zip_path: Path) -> tuple[str, bytes, Any]:
    from tokenizers import Tokenizer

    name, blob, tok = read_package(zip_path)
    tokenizer = Tokenizer.from_str(json.dumps(tok))
    return name, blob, tokenizer


def djl_predict(zip_path: Path, model_config: dict[str, Any], texts: list[str]) -> np.ndarray:
    name, blob, tokenizer = _unzip(zip_path)
    out = []
    if name.endswith(".pt"):
        import torch

        module = torch.jit.load(io.BytesIO(blob), map_location="cpu").eval()
        for text in texts:  # SentenceTransformerTextEmbeddingTranslator: one dict argument, no pooling
            enc = tokenizer.encode(text)
            feats = {"input_ids": torch.tensor([enc.ids], dtype=torch.long),
                     "attention_mask": torch.tensor([enc.attention_mask], dtype=torch.long)}
            with torch.no_grad():
                result = module(feats)
            out.append(result["sentence_embedding"][0].numpy())
        return np.stack(out)
    import onnxruntime as ort

    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    with_types = model_config["model_type"].lower() in ("bert", "albert")
    expected = {"input_ids", "attention_mask"} | ({"token_type_ids"} if with_types else set())
    assert {i.name for i in sess.get_inputs()} == expected  # DJL feeds exactly these names
    for text in texts:  # ONNXSentenceTransformerTextEmbeddingTranslator
        enc = tokenizer.encode(text)
        feeds = {"input_ids": np.array([enc.ids], dtype=np.int64),
                 "attention_mask": np.array([enc.attention_mask], dtype=np.int64)}
        if with_types:
            feeds["token_type_ids"] = np.array([enc.type_ids], dtype=np.int64)
        emb = sess.run(None, feeds)[0][0]  # output[0], batch dim squeezed → [seq, hidden]
        mask = np.array(enc.attention_mask, dtype=np.float32)[:, None]
        mode = model_config["pooling_mode"]
        if mode == "mean":
            vec = (emb * mask).sum(0) / max(mask.sum(), 1e-9)
        elif mode == "cls":
            vec = emb[0]
        else:  # pragma: no cover - MiniLM is mean-pooled
            raise AssertionError(mode)
        if model_config["normalize_result"]:
            vec = vec / np.linalg.norm(vec)
        out.append(vec)
    return np.stack(out)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- MiniLM, both formats ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from kit.models.export import load_sentence_transformer, resolve_source

    model = load_sentence_transformer(resolve_source("sentence-transformers/all-MiniLM-L6-v2"))
    return np.asarray(model.encode(TEXTS, convert_to_numpy=True))


@pytest.fixture(scope="module", params=["torch_script", "onnx"])
def minilm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("pkg") / f"minilm-{request.param}.zip"
    return build_package("sentence-transformers/all-MiniLM-L6-v2", request.param, out)


def test_layout_and_register_fields(minilm: Any) -> None:
    with zipfile.ZipFile(minilm.zip_path) as zf:
        names = sorted(zf.namelist())
        tok = json.loads(zf.read("tokenizer.json"))
    fmt = minilm.register_fields["model_format"]
    assert names == sorted(["tokenizer.json", "model.pt" if fmt == "TORCH_SCRIPT" else "model.onnx"])
    assert tok["truncation"] == {"direction": "Right", "max_length": 256, "strategy": "LongestFirst", "stride": 0}
    assert tok["padding"] is None
    blob = minilm.zip_path.read_bytes()
    assert minilm.sha256 == hashlib.sha256(blob).hexdigest() and minilm.size == len(blob)
    on_disk = json.loads(minilm.json_path.read_text())
    assert on_disk == minilm.register_fields
    assert minilm.json_path == minilm.zip_path.with_suffix(".json")
    assert {"name", "model_format", "function_name", "model_config", "model_content_hash_value",
            "model_content_size_in_bytes"} <= set(on_disk)
    assert on_disk["function_name"] == "TEXT_EMBEDDING"
    assert on_disk["model_content_hash_value"] == minilm.sha256
    assert on_disk["model_content_size_in_bytes"] == minilm.size
    cfg = on_disk["model_config"]
    assert cfg["model_type"] == "bert" and cfg["embedding_dimension"] == 384
    assert cfg["framework_type"] == "sentence_transformers"
    assert cfg["pooling_mode"] == "mean" and cfg["normalize_result"] is True
    assert json.loads(cfg["all_config"])["hidden_size"] == 384


def test_djl_style_predict_equals_sentence_transformers(minilm: Any, reference: np.ndarray) -> None:
    got = djl_predict(minilm.zip_path, minilm.register_fields["model_config"], TEXTS)
    assert got.shape == reference.shape
    assert cosines(got, reference).min() >= 0.9999


def test_embedded_node_predict_equals_sentence_transformers(minilm: Any, reference: np.ndarray, tmp_path: Path) -> None:
    """The node's ML Commons predict path (zip check, deploy with warm-up, one doc at a time)."""
    from kit.node.ml.local import LocalModel, verify_model_zip

    blob = minilm.zip_path.read_bytes()
    fields = minilm.register_fields
    verify_model_zip(fields["model_format"], blob)
    model = LocalModel("m1", blob, fields["model_format"], fields["model_config"], work_root=tmp_path)
    try:
        model.warm_up()
        got = []
        for text in TEXTS:
            tensors = {t["name"]: t for t in model.predict_one(text)}
            got.append(tensors["sentence_embedding"]["data"])
    finally:
        model.close()
    assert cosines(np.array(got), reference).min() >= 0.9999


def test_deploy_on_embedded_node_over_rest(minilm: Any, reference: np.ndarray, tmp_path: Path) -> None:
    """Upload the package to the embedded node in 10 MB chunks with the register fields of FILE.json,
    deploy it, and predict through ``/_plugins/_ml/_predict/text_embedding`` — as any ML Commons client."""
    import math
    import time

    import httpx

    from kit.node.server import NodeServer

    fields = json.loads(minilm.json_path.read_text())
    blob = minilm.zip_path.read_bytes()
    with NodeServer(tmp_path / "node") as node, httpx.Client(base_url=node.url, timeout=120) as c:
        r = c.put("/_cluster/settings", json={"persistent": {
            "plugins.ml_commons.allow_registering_model_via_local_file": True,
            "plugins.ml_commons.only_run_on_ml_node": False}})
        assert r.status_code == 200, r.text
        chunk = 10_000_000
        total = math.ceil(len(blob) / chunk)
        r = c.post("/_plugins/_ml/models/_register_meta", json={**fields, "total_chunks": total})
        assert r.status_code == 200, r.text
        model_id = r.json()["model_id"]
        for i in range(total):
            r = c.post(f"/_plugins/_ml/models/{model_id}/chunk/{i}", content=blob[i * chunk:(i + 1) * chunk])
            assert r.status_code == 200, r.text
        task_id = c.post(f"/_plugins/_ml/models/{model_id}/_deploy").json()["task_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            task = c.get(f"/_plugins/_ml/tasks/{task_id}").json()
            if task["state"] in ("COMPLETED", "FAILED"):
                break
            time.sleep(0.2)
        assert task["state"] == "COMPLETED", task
        r = c.post(f"/_plugins/_ml/_predict/text_embedding/{model_id}",
                   json={"text_docs": TEXTS, "target_response": ["sentence_embedding"]})
        assert r.status_code == 200, r.text
        got = np.array([res["output"][0]["data"] for res in r.json()["inference_results"]])
    assert got.shape == reference.shape
    assert cosines(got, reference).min() >= 0.9999


def test_bad_sources_and_formats(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="no such local model folder"):
        build_package("some/model-that-is-not-here", "onnx", tmp_path / "x.zip")
    with pytest.raises(PackageError, match="unknown package format"):
        build_package("sentence-transformers/all-MiniLM-L6-v2", "tensorflow", tmp_path / "x.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match="not a sentence-transformers"):
        build_package(str(tmp_path / "empty"), "onnx", tmp_path / "x.zip")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(PackageError, match="not a zip"):
        read_package(tmp_path / "bad.zip")


# --- CLIP's text tower ---------------------------------------------------------------------------

CLIP_TEXTS = [
    "a large red circle and a small striped blue square on a white background",
    "the word SALE",
    "Hello,   World!  It's 3 o'clock; don't panic.",
    "café naïve résumé",
    "",
    " ".join(["many words"] * 60),  # longer than 77 tokens: truncated, end-of-text kept
]


def test_clip_tokenizer_json_matches_open_clip() -> None:
    import open_clip
    from tokenizers import Tokenizer

    from kit.models.export import clip_tokenizer_json

    tok = Tokenizer.from_str(json.dumps(clip_tokenizer_json(77)))
    ref = open_clip.get_tokenizer("ViT-B-32")
    for text in CLIP_TEXTS:
        want = [int(x) for x in ref([text])[0] if int(x) != 0]
        assert tok.encode(text).ids == want, text


def test_clip_text_package_equals_server_text_path(tmp_path: Path) -> None:
    """Package a random-weight oskit-clip-tiny text tower; the DJL-style and node predictions equal
    the model server's /clip/embed text vectors."""
    import asyncio

    import httpx
    import open_clip
    import torch

    from kit.models.clip_arch import register_oskit_configs
    from kit.serve.app import create_app
    from kit.serve.config import ClipConfig, ServeConfig

    register_oskit_configs()
    torch.manual_seed(0)
    weights = tmp_path / "clip-random.pt"
    torch.save(open_clip.create_model("oskit-clip-tiny").state_dict(), weights)
    info = build_clip_text_package("oskit-clip-tiny", tmp_path / "clip-text.zip", pretrained=str(weights))
    cfg = info.register_fields["model_config"]
    assert cfg["embedding_dimension"] == 512 and cfg["model_type"] == "clip"
    got = djl_predict(info.zip_path, cfg, CLIP_TEXTS)

    async def served() -> list[list[float]]:
        app = create_app(ServeConfig(clip=ClipConfig(model="oskit-clip-tiny", pretrained=str(weights)), device="cpu"))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
                out = []
                for text in CLIP_TEXTS:
                    if not text:  # the server needs some input; the empty text goes through embed-texts
                        r = await c.post("/clip/embed-texts", json={"input": [text]})
                        out.append(r.json()[0])
                    else:
                        r = await c.post("/clip/embed", json={"inputText": text, "inputImage": None})
                        out.append(r.json()["embedding"])
                return out

    want = np.array(asyncio.run(served()))
    assert cosines(got, want).min() >= 0.9999

    from kit.node.ml.local import LocalModel

    node = LocalModel("clip", info.zip_path.read_bytes(), "TORCH_SCRIPT", cfg, work_root=tmp_path)
    try:
        node.warm_up()
        vec = {t["name"]: t for t in node.predict_one(CLIP_TEXTS[0])}["sentence_embedding"]["data"]
    finally:
        node.close()
    assert cosines(np.array([vec]), want[:1]).min() >= 0.9999


def test_cli_package(tmp_path: Path) -> None:
    """``oskit models package`` is a thin layer: the same files, exit code 0, --json output."""
    from click.testing import CliRunner

    from kit.cli import cli

    out = tmp_path / "m.zip"
    result = CliRunner().invoke(cli, ["models", "package", "sentence-transformers/all-MiniLM-L6-v2",
                                      "--format", "onnx", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["zip"] == str(out) and payload["register_fields"]["model_format"] == "ONNX"
    assert out.is_file() and out.with_suffix(".json").is_file()
    bad = CliRunner().invoke(cli, ["models", "package", "x", "--format", "pickle", "--out", str(out)])
    assert bad.exit_code == 2

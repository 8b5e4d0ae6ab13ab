"""ML Commons local models on a real node, offline: the default project's MiniLM (the kit's TorchScript
package, uploaded in chunks) registers, deploys and embeds like sentence-transformers does.

On a node of its own (RealNode(local_models=True)): libtorch once aborted a JVM under heavy load, and
the suite's shared node must not go down with it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

import kit.cluster as cluster
from kit.cluster.client import connect
from kit.config.loader import load_project
from tests.conftest import ROOT
from tests.real.conftest import HEAP, VERSION


def test_minilm_deploys_locally_and_embeds_like_sentence_transformers(tmp_path: Path) -> None:
    from kit.models.export import load_sentence_transformer, resolve_source
    from kit.realnode import DEFAULT_VERSION, RealNode

    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    shutil.copy(ROOT / "models" / "text.yaml", project / "models" / "text.yaml")
    shutil.copy(ROOT / "cluster.yaml", project / "cluster.yaml")
    with RealNode(VERSION or DEFAULT_VERSION, heap=HEAP or "1500m", local_models=True) as node:
        client = connect(node.url, timeout=300.0)
        loaded = load_project(project)
        result = cluster.apply(cluster.plan(loaded, client), client)
        assert any("text" in m and "probe 384-d vector" in m for m in result.messages), result.messages
        assert cluster.plan(load_project(project), client).in_sync
        model_id = cluster.plan(load_project(project), client).model_ids["text"]
        texts = ["a photo of a red circle", "HOTEL 42"]
        out = client.request("POST", f"/_plugins/_ml/_predict/text_embedding/{model_id}",
                             body={"text_docs": texts, "target_response": ["sentence_embedding"]})
        got = np.array([r["output"][0]["data"] for r in out["inference_results"]], dtype=np.float32)
        ref = load_sentence_transformer(resolve_source("sentence-transformers/all-MiniLM-L6-v2")).encode(
            texts, normalize_embeddings=True)
        cos = (got * ref).sum(axis=1) / np.linalg.norm(got, axis=1)
        assert (cos > 0.999).all(), cos
        cluster.destroy(loaded, client)
        client.close()
